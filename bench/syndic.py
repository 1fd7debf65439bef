"""The syndic figure of ``make bench``: the same ``salt-run certdeploy.rollout 'cass*'`` run on a
master of masters, with the 3-node rig's minions one level down, on Salt's own distribution.

    top master (order_masters: True, syndic_wait: 1)      <- salt-run certdeploy.rollout here
      └─ salt-syndic "syndic1" beside the rig's master   (forwards publishes and returns)
           └─ the rig's master and its minions cass1-3    (keys, pillar and bundles live here)

The top master holds only the syndic's key; it learns the minions from the syndic (see
``transport.MinionTransport._through_syndics``). Between the top master and the syndic the
transport is ``tcp``: with Salt 3008.4's zeromq, the syndic connects to the top master's
publisher but never reads a publish from it (measured: nothing forwarded, no return); the
syndic still talks zeromq to its own master, whose file it reads as it is.

The rollout must succeed, and every node must then serve its new leaf on 9042 and 7000,
checked from here on new TLS connections. The top master and the syndic are stopped and their
files removed afterwards; the rig is left as the other rollouts leave it (new leaves served).
"""

from __future__ import annotations

import json
import subprocess
import time

import yaml

from sandbox import pki, salt_rig
from sandbox.salt_rig import BIN

SYNDIC_ID = "syndic1"


class Topology:
    def __init__(self, rig):
        self.rig = rig
        self.top = rig.root / "top"
        self.syn = rig.root / "salt" / "syn"
        self.pids: list[int] = []

    def top_config(self) -> dict:
        config = salt_rig.master_config(self.rig.root, salt_rig.free_port(), salt_rig.free_port())
        for key in ("ext_pillar", "reactor", "schedule"):
            config.pop(key, None)  # those stay with the rig's master, where the minions are
        config.update(
            id="top-master",
            root_dir=str(self.top),
            pki_dir=str(self.top / "pki"),
            cachedir=str(self.top / "cache"),
            sock_dir=str(self.top / "s"),
            pidfile=str(self.top / "master.pid"),
            log_file=str(self.top / "master.log"),
            order_masters=True,
            # Each publish waits this long for syndics beyond the returns it already has
            # (Salt's default is 5 s: 5 s more on every call of the rollout).
            syndic_wait=1,
            transport="tcp",
        )
        return config

    def up(self) -> None:
        (self.top / "etc").mkdir(parents=True, exist_ok=True)
        top = self.top_config()
        (self.top / "etc" / "master").write_text(yaml.safe_dump(top))
        log = self.top / "master.stdout"
        self.pids.append(
            salt_rig._spawn([str(BIN / "salt-master"), "-c", str(self.top / "etc")], log)
        )
        lower = yaml.safe_load((self.rig.salt_config_dir / "master").read_text())
        etc = self.syn / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        lower.update(
            syndic_master="127.0.0.1",
            syndic_master_port=top["ret_port"],
            # The syndic reads this file for its lower master's sock_dir, ret_port and cache,
            # but subscribes to its upper master's publisher on ``publish_port`` whenever that
            # is not Salt's default (channel/client.py: "assume it was intentional"): the
            # lower master's own port here would make it listen to itself.
            publish_port=top["publish_port"],
            syndic_log_file=str(self.syn / "syndic.log"),
            syndic_pidfile=str(self.syn / "syndic.pid"),
        )
        (etc / "master").write_text(yaml.safe_dump(lower))
        # salt-syndic reads a minion file too: its id and keys; its event bus is the lower
        # master's (sock_dir), its cache that master's. Salt puts every path under root_dir,
        # so root_dir is the lower master's.
        minion = {
            "id": SYNDIC_ID,
            "root_dir": lower["root_dir"],
            "pki_dir": str(self.syn / "pki"),
            "sock_dir": lower["sock_dir"],
            "user": lower["user"],
            "acceptance_wait_time": 1,
            "transport": "tcp",
        }
        (etc / "minion").write_text(yaml.safe_dump(minion))
        time.sleep(3)  # the top master binds its ports
        self.pids.append(
            salt_rig._spawn(
                [str(BIN / "salt-syndic"), "-c", str(etc), "-l", "warning"],
                self.syn / "syndic.stdout",
            )
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            res = self.salt("cass*", "test.ping", "-t", "5")
            try:
                answered = json.loads(res.stdout or "{}")
            except ValueError:
                answered = {}
            if all(answered.get(f"cass{n}") is True for n in range(1, self.rig.nodes + 1)):
                return
            time.sleep(2)
        raise SystemExit(
            f"bench: the minions did not answer through the syndic; see {self.top}/master.log "
            f"and {self.syn}/syndic.log"
        )

    def salt(self, *args: str, cli: str = "salt", timeout: int = 120):
        cmd = [str(BIN / cli), "-c", str(self.top / "etc"), "--out=json", "--static", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def down(self) -> None:
        salt_rig.stop_groups(self.pids)
        subprocess.run(["rm", "-rf", str(self.top), str(self.syn)], check=False)


def rollouts(rig, runs: int) -> list[dict]:
    """``runs`` 3-node rollouts by reload from the top master; each proven by the served
    fingerprints afterwards."""
    topology = Topology(rig)
    samples = []
    try:
        topology.up()
        print("  top master + syndic up; cass1-3 answer through it", flush=True)
        for i in range(runs):
            wanted = {}
            for n in range(1, rig.nodes + 1):
                leaf = rig.issuing_ca().issue_node(n)
                rig.set_pillar(n, {"bundle": pki.bundle_dict(leaf, rig.root_ca().cert)})
                wanted[f"cass{n}"] = leaf.fingerprint
            salt_rig.salt_cmd(rig.root, "*", "saltutil.refresh_pillar", "wait=True")
            cmd = [str(BIN / "salt-run"), "-c", str(topology.top / "etc"), "--out=json"]
            cmd += ["certdeploy.rollout", "cass*", "method=reload"]
            started = time.monotonic()
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
            wall = time.monotonic() - started
            jobs_dir = topology.top / "cache" / "certdeploy" / "jobs"
            job = json.loads(sorted(jobs_dir.glob("*.json"))[-1].read_text())
            served = rig.served_fingerprints()
            wrong = {
                node: ports
                for node, ports in served.items()
                if set(ports.values()) != {wanted[node]}
            }
            if res.returncode != 0 or job["status"] != "succeeded" or wrong:
                raise SystemExit(
                    f"bench: rollout through the syndic {i} failed (job {job['status']}, "
                    f"not serving the new leaf: {wrong}): {res.stdout[-2000:]}"
                )
            samples.append(
                {
                    "wall": wall,
                    "preflight": (job.get("preflight") or {}).get("seconds"),
                    "nodes": sorted(job["nodes"]),
                }
            )
            print(
                f"  rollout via syndic {i + 1}/{runs}: {wall:.1f}s (pre-flight "
                f"{samples[-1]['preflight']}s); every node serves its new leaf on 9042 and 7000",
                flush=True,
            )
    finally:
        topology.down()
    return samples
