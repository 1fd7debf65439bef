"""Issue 11 on the real rig: certdeploy without a minion, over salt-ssh through a real sshd.

cass2 is served as ``cass2-ssh`` from the roster in ``salt/etc-ssh`` (same master, cachedir
and bus; its minion stays for the other modules, and no test here addresses it). The
wrapper ships each call's pillar privately; the leak scan at the end looks for every private
key these tests handed out, everywhere the issue names. Nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import salt.config
from certdeploy_core import probe
from cryptography import x509

from sandbox import pki, sshd
from sandbox.loadgen import LoadGenerator, stats
from sandbox.salt_rig import BIN
from tests.integration.test_rollout import last_json, wait_for_job

pytestmark = pytest.mark.rig
SSH_ID = "cass2-ssh"
MIXED = "cass1,cass3,cass2-ssh"
NODES = (1, 2, 3)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


class Agentless:
    """The rig as an operator with a roster sees it: ``salt-ssh`` and ``salt-run`` with the
    master config that names the roster, and the keys handed out (for the leak scan)."""

    def __init__(self, rig):
        self.rig = rig
        self.etc = rig.ssh_config_dir
        self.keys: list[str] = []
        self.snapshots: list[bytes] = []

    def cli(self, tool, *args, timeout=900, popen=False):
        cmd = [str(BIN / tool), "-c", str(self.etc), "--out=json", *args]
        if popen:
            return subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def ssh(self, fun, *args, timeout=600):
        res = self.cli("salt-ssh", SSH_ID, fun, *args, timeout=timeout)
        try:
            return res, json.loads(res.stdout)[SSH_ID]
        except (ValueError, KeyError):
            return res, None

    def leaf(self, n):
        leaf = self.rig.issuing_ca().issue_node(n)
        self.keys.append(pki.key_pem(leaf.key).decode())
        return leaf

    def bundle(self, leaf):
        return pki.bundle_dict(leaf, self.rig.root_ca().cert)

    def give_ssh(self, bundle=None, target=None):
        """cass2-ssh's pillar on the master: compiled again on every salt-ssh call."""
        self.rig.set_pillar(2, {"bundle": bundle} if bundle else {}, target, via_ssh=True)

    def give_minions(self, bundles: dict):
        for n, bundle in bundles.items():
            self.rig.set_pillar(n, {"bundle": bundle})
        ret = subprocess.run(
            [
                str(BIN / "salt"),
                "-c",
                str(self.rig.salt_config_dir),
                "-L",
                "cass1,cass3",
                "saltutil.refresh_pillar",
                "wait=True",
                "--out=json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert ret.returncode == 0, ret.stdout + ret.stderr

    def served(self, n):
        ctx = self.rig.probe_context()
        return tuple(probe.served_fingerprint(f"127.0.0.{n}", p, ctx) for p in (9042, 7000))

    def tree(self, n=2):
        home = self.rig.node(n).home
        return {
            str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for sub in ("tls", "conf", "certdeploy-backups")
            for p in sorted((home / sub).rglob("*"))
            if p.is_file()
        }

    def watch_processes(self):
        """Snapshot every /proc/*/cmdline and /proc/*/environ until the returned stop()."""
        done = threading.Event()

        def loop():
            while not done.is_set():
                for entry in Path("/proc").iterdir():
                    if entry.name.isdigit():
                        for name in ("cmdline", "environ"):
                            try:
                                self.snapshots.append((entry / name).read_bytes())
                            except OSError:
                                pass
                time.sleep(0.05)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()

        def stop():
            done.set()
            thread.join(10)

        return stop


@pytest.fixture(scope="module")
def agentless(rig, synced):
    a = Agentless(rig)
    yield a
    a.give_ssh()


def test_1_salt_ssh_deploy_by_reload_proves_the_new_fingerprint(agentless, event_bus):
    old = agentless.served(2)
    leaf = agentless.leaf(2)
    agentless.give_ssh(agentless.bundle(leaf))
    stop = agentless.watch_processes()
    started = time.time()
    try:
        res, ret = agentless.ssh("certdeploy.deploy", "method=reload", "skip_cross_trust=True")
    finally:
        stop()
    took = time.time() - started
    print(f"\n[ssh] salt-ssh certdeploy.deploy: {took:.1f}s wall, node work {ret['timings']}")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert ret["outcome"] == "deployed", ret
    assert ret["old_fingerprint"] == old[0] and ret["new_fingerprint"] == leaf.fingerprint
    assert agentless.served(2) == (leaf.fingerprint,) * 2
    # No event bus on the target: the master fired the event a minion would have.
    event = event_bus.wait_for(f"certdeploy/node/{SSH_ID}/deployed", started, timeout=30)
    assert event["data"]["data"]["new_fingerprint"] == leaf.fingerprint
    # The record lives outside salt-ssh's thin dir.
    state = agentless.rig.node(2).home / "certdeploy-state" / "certdeploy" / "cassandra-last.json"
    assert json.loads(state.read_text())["expected_fingerprint"] == leaf.fingerprint
    _, status = agentless.ssh("certdeploy.status")
    assert status["last_deployment"]["expected_fingerprint"] == leaf.fingerprint


def test_2_drill_over_ssh_rolls_back_and_proves_the_old_fingerprint(agentless):
    old = agentless.served(2)
    leaf = agentless.leaf(2)
    agentless.give_ssh(agentless.bundle(leaf), target={"drill_fail_step": "verify"})
    res, ret = agentless.ssh("certdeploy.deploy", "method=reload", "skip_cross_trust=True")
    assert res.returncode != 0, res.stdout[-2000:]
    assert ret["outcome"] == "rolled_back", ret
    assert ret["rollback"]["verified"] is True
    assert agentless.served(2) == old
    agentless.give_ssh()


def test_3_mixed_fleet_rollout_under_quorum_load_zero_failed(agentless, rig):
    leaves = {n: agentless.leaf(n) for n in NODES}
    agentless.give_minions({n: agentless.bundle(leaves[n]) for n in (1, 3)})
    agentless.give_ssh(agentless.bundle(leaves[2]))
    ARTIFACTS.mkdir(exist_ok=True)
    gen = LoadGenerator(rig, ARTIFACTS / "load-ssh-mixed.json", rate=150).start()
    try:
        time.sleep(8)
        started = time.time()
        res = agentless.cli(
            "salt-run", "certdeploy.rollout", MIXED, "tgt_type=list", "method=reload"
        )
        ended = time.time()
        time.sleep(2)
    finally:
        ops = gen.stop()
    result, progress = last_json(res.stdout)
    load = {"before": stats(ops, None, started), "during": stats(ops, started, ended)}
    print(f"\n[ssh-mixed] {ended - started:.1f}s; load during {load['during']}")
    for line in progress:
        print("  ", line.get("event", {}).get("message"))
    assert res.returncode == 0, res.stderr[-2000:]
    assert result["status"] == "succeeded", result
    assert sorted(result["nodes"]) == ["cass1", SSH_ID, "cass3"]
    assert all(n["state"] == "deployed" for n in result["nodes"].values())
    assert {n: agentless.served(n) for n in NODES} == {
        n: (leaves[n].fingerprint,) * 2 for n in NODES
    }
    assert load["during"]["ops"] > 0 and load["during"]["failed"] == 0, load["during"]["errors"]


def test_4_resume_a_mixed_rollout_after_the_runner_is_killed(agentless):
    leaves = {n: agentless.leaf(n) for n in NODES}
    agentless.give_minions({n: agentless.bundle(leaves[n]) for n in (1, 3)})
    agentless.give_ssh(agentless.bundle(leaves[2]))
    jobs = agentless.rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs"
    known = {p.stem for p in jobs.glob("*.json")}
    proc = agentless.cli(
        "salt-run", "certdeploy.rollout", MIXED, "tgt_type=list", "method=reload", popen=True
    )
    job_file = wait_for_job(jobs, known, "cass1", "deployed")
    os.killpg(proc.pid, signal.SIGKILL)  # the runner and its salt-ssh children die mid-job
    proc.communicate()
    job = json.loads(job_file.read_text())
    assert job["status"] == "running" and job["nodes"]["cass3"]["state"] == "pending", job
    res = agentless.cli("salt-run", "certdeploy.resume", job["job_id"])
    result, _ = last_json(res.stdout)
    assert res.returncode == 0, res.stderr[-2000:]
    assert result["status"] == "succeeded", result
    assert {n: agentless.served(n) for n in NODES} == {
        n: (leaves[n].fingerprint,) * 2 for n in NODES
    }
    # Nobody was deployed twice: cass1 kept the one deployment the killed run made.
    done = json.loads(job_file.read_text())["nodes"]
    assert [s["step"] for s in done["cass1"]["steps"]].count("deploy") == 1, done["cass1"]


def test_5_bad_bundle_over_ssh_is_refused_and_changes_nothing(agentless):
    before, served = agentless.tree(), agentless.served(2)
    leaf = agentless.leaf(2)
    bad = {**agentless.bundle(leaf), "key": pki.key_pem(pki.new_key("ec256")).decode()}
    agentless.keys.append(bad["key"])
    agentless.give_ssh(bad)
    res, ret = agentless.ssh("certdeploy.deploy", "method=reload", "skip_cross_trust=True")
    text = json.dumps(ret)
    assert res.returncode != 0
    assert "cass2" in text and "key_match" in text and "Fix" in text, text[:2000]
    assert agentless.tree() == before and agentless.served(2) == served
    agentless.give_ssh()


def _roster_with(agentless, extra: dict):
    import yaml

    path = sshd.roster_path(agentless.rig.root)
    original = path.read_text()
    roster = yaml.safe_load(original)
    roster.update(extra)
    path.write_text(yaml.safe_dump(roster))
    return path, original


def test_6_a_target_that_does_not_answer_is_named_with_the_fix(agentless):
    before = agentless.tree()
    entry = {**yaml_entry(agentless), "port": 1}
    path, original = _roster_with(agentless, {"cass2-gone": entry})
    try:
        res = agentless.cli("salt-run", "certdeploy.rollout", "cass1,cass2-gone", "tgt_type=list")
    finally:
        path.write_text(original)
    problems = res.stdout + res.stderr
    assert res.returncode != 0 and "pre-flight refused the rollout" in problems, problems
    assert "cass2-gone (127.0.0.2:1): ssh: Connection refused" in problems, problems
    assert "Fix: check the roster entry's host and port" in problems, problems
    assert agentless.tree() == before


def yaml_entry(agentless):
    import yaml

    return yaml.safe_load(sshd.roster_path(agentless.rig.root).read_text())[SSH_ID]


def test_7_a_host_key_mismatch_is_refused_before_anything_is_sent(agentless):
    before, served = agentless.tree(), agentless.served(2)
    leaf = agentless.leaf(2)
    agentless.give_ssh(agentless.bundle(leaf))
    known_hosts = Path(salt.config.master_config(str(agentless.etc / "master"))["known_hosts_file"])
    original = known_hosts.read_text()
    impostor = agentless.rig.root / "ssh" / "impostor"
    for stale in (impostor, impostor.with_suffix(".pub")):  # a reused rig keeps the last pair
        stale.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    host, _ = original.split(" ", 1)
    sshd.close_masters(agentless.rig.root)  # a live ControlMaster would skip the key check
    known_hosts.write_text(f"{host} {impostor.with_suffix('.pub').read_text()}")
    try:
        res = agentless.cli("salt-run", "certdeploy.rollout", SSH_ID, "tgt_type=list")
    finally:
        known_hosts.write_text(original)
        agentless.give_ssh()
    problems = res.stdout + res.stderr
    assert res.returncode != 0 and "pre-flight refused the rollout" in problems, problems
    assert f"{SSH_ID} (127.0.0.2:" in problems and "host key verification failed" in problems
    assert str(known_hosts) in problems and "Fix:" in problems, problems
    assert agentless.tree() == before and agentless.served(2) == served


def test_8_rollback_latest_and_compliance_over_the_mixed_fleet(agentless):
    """test_4's mixed job is the newest rollout: rolling it back puts test_3's certificates
    back on all three nodes (cass2 through salt-ssh), each verified; compliance reads all
    three through their own transports."""
    before = {n: agentless.served(n) for n in NODES}
    res = agentless.cli("salt-run", "certdeploy.rollback", "latest")
    result, _ = last_json(res.stdout)
    assert res.returncode == 0, res.stdout[-3000:]
    assert sorted(result["nodes"]) == ["cass1", SSH_ID, "cass3"]
    assert all(n["state"] == "rolled_back" for n in result["nodes"].values()), result
    after = {n: agentless.served(n) for n in NODES}
    assert all(after[n] != before[n] and after[n][0] == after[n][1] for n in NODES), after
    res = agentless.cli("salt-run", "certdeploy.compliance", MIXED, "tgt_type=list")
    report, _ = last_json(res.stdout)
    assert res.returncode == 0 and report["ok"], report.get("failures")
    assert sorted(report["nodes"]) == ["cass1", SSH_ID, "cass3"]


def test_9_rotate_ca_phase_1_over_the_mixed_fleet(agentless, rig, tmp_path):
    """CA rotation's trust phase reaches the salt-ssh node too: every truststore then holds
    the old and the new root (read back through each node's own transport)."""
    new_root = pki.CA.root("certdeploy SSH-rotation root")
    new_ca_file = tmp_path / "new-root.pem"
    new_ca_file.write_bytes(pki.cert_pem(new_root.cert))
    res = agentless.cli(
        "salt-run", "certdeploy.rotate_ca", MIXED, str(new_ca_file), "phase=1", "tgt_type=list"
    )
    assert res.returncode == 0, res.stdout[-3000:]
    fingerprint = pki.fingerprint(new_root.cert)
    _, info = agentless.ssh("certdeploy.peer_info")
    assert fingerprint in {
        pki.fingerprint(c) for c in x509.load_pem_x509_certificates(info["trust_pem"].encode())
    }
    ret = subprocess.run(
        [
            str(BIN / "salt"),
            "-c",
            str(rig.salt_config_dir),
            "-L",
            "cass1,cass3",
            "certdeploy.peer_info",
            "--out=json",
            "--static",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    for n, answer in json.loads(ret.stdout).items():
        pems = answer["trust_pem"].encode()
        held = {pki.fingerprint(c) for c in x509.load_pem_x509_certificates(pems)}
        assert fingerprint in held and pki.fingerprint(rig.root_ca().cert) in held, n


def _key_lines(keys):
    lines = set()
    for pem in keys:
        for line in pem.splitlines():
            if len(line) >= 40 and "-----" not in line:
                lines.add(line.encode())
    return lines


def test_10_leak_scan_no_private_key_line_anywhere(agentless, rig, event_bus):
    lines = _key_lines([*agentless.keys, rig.client_key.read_text()])
    assert len(agentless.keys) >= 8 and len(lines) > 20
    assert agentless.snapshots, "no /proc snapshot was taken during the deployment"
    places = {
        "master cachedir": rig.root / "salt" / "cache" / "master",
        "thin dir": rig.root / "ssh" / "thin",
        "logs": rig.root / "salt" / "logs",
        "sshd log": rig.root / "ssh" / "sshd.log",
    }
    found = []
    for label, place in places.items():
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        assert files, f"nothing to scan under {place}"
        for path in files:
            data = path.read_bytes()
            found += [f"{label}: {path}" for line in lines if line in data][:1]
    events = json.dumps(event_bus.events, default=str).encode()
    found += ["events" for line in lines if line in events][:1]
    found += [
        "a /proc cmdline/environ snapshot"
        for snap in agentless.snapshots
        for line in lines
        if line in snap
    ][:1]
    assert not found, found
    leftovers = list((rig.root / "ssh" / "thin").rglob("certdeploy-pillar-*"))
    assert not leftovers, leftovers
