"""The agentless figures of ``make bench``: the same node (cass2) reached as the minion
``cass2`` and as the salt-ssh id ``cass2-ssh`` on one rig, side by side — one read-only call,
one deploy by reload, and a 3-node rollout with cass2 over SSH (mixed) next to the all-minion
one. Nothing here asserts a number."""

from __future__ import annotations

import json
import subprocess
import time

from sandbox import pki
from sandbox.salt_rig import BIN

SSH_ID = "cass2-ssh"


def _run(rig, tool: str, *args: str, etc=None, timeout: int = 1800):
    cmd = [str(BIN / tool), "-c", str(etc or rig.ssh_config_dir), "--out=json", *args]
    started = time.monotonic()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return time.monotonic() - started, res


def _answer(res, target_id):
    try:
        return json.loads(res.stdout)[target_id]
    except (ValueError, KeyError):
        raise SystemExit(f"bench: {target_id}: no JSON answer: {res.stdout[-800:]}") from None


def calls(rig, runs: int) -> dict:
    """``certdeploy.status`` through each route."""
    out = {"status_minion": [], "status_ssh": []}
    for _ in range(runs):
        wall, res = _run(
            rig, "salt", "--static", "cass2", "certdeploy.status", etc=rig.salt_config_dir
        )
        assert isinstance(_answer(res, "cass2"), dict)
        out["status_minion"].append({"wall": wall})
        wall, res = _run(rig, "salt-ssh", SSH_ID, "certdeploy.status")
        assert isinstance(_answer(res, SSH_ID), dict), res.stdout[-800:]
        out["status_ssh"].append({"wall": wall})
        print(f"  status: minion {out['status_minion'][-1]['wall']:.2f}s, ssh {wall:.2f}s")
    return out


def deploys(rig, runs: int) -> list[dict]:
    """``salt-ssh cass2-ssh certdeploy.deploy method=reload`` (the minion's figure is
    ``deploy_reload``)."""
    samples = []
    for i in range(runs):
        leaf = rig.issuing_ca().issue_node(2)
        rig.set_pillar(2, {"bundle": pki.bundle_dict(leaf, rig.root_ca().cert)}, via_ssh=True)
        wall, res = _run(
            rig, "salt-ssh", SSH_ID, "certdeploy.deploy", "method=reload", "skip_cross_trust=True"
        )
        ret = _answer(res, SSH_ID)
        if not isinstance(ret, dict) or ret.get("outcome") != "deployed":
            raise SystemExit(f"bench: ssh deploy {i} did not deploy: {ret}")
        assert ret["verification"]["client"]["served"] == leaf.fingerprint
        samples.append({"wall": wall, **ret["timings"]})
        print(f"  ssh deploy {i + 1}/{runs}: {wall:.2f}s (node work {ret['timings']['total']}s)")
    rig.set_pillar(2, via_ssh=True)
    return samples


def mixed_rollouts(rig, runs: int) -> list[dict]:
    """cass1 and cass3 as minions, cass2 over salt-ssh, by reload."""
    samples = []
    for i in range(runs):
        for n in (1, 3):
            leaf = rig.issuing_ca().issue_node(n)
            rig.set_pillar(n, {"bundle": pki.bundle_dict(leaf, rig.root_ca().cert)})
        leaf = rig.issuing_ca().issue_node(2)
        rig.set_pillar(2, {"bundle": pki.bundle_dict(leaf, rig.root_ca().cert)}, via_ssh=True)
        _run(
            rig,
            "salt",
            "-L",
            "cass1,cass3",
            "saltutil.refresh_pillar",
            "wait=True",
            etc=rig.salt_config_dir,
        )
        wall, res = _run(
            rig,
            "salt-run",
            "certdeploy.rollout",
            f"cass1,cass3,{SSH_ID}",
            "tgt_type=list",
            "method=reload",
        )
        jobs_dir = rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs"
        job = json.loads(sorted(jobs_dir.glob("*.json"))[-1].read_text())
        if res.returncode != 0 or job["status"] != "succeeded":
            raise SystemExit(f"bench: mixed rollout {i} failed: {res.stdout[-2000:]}")
        first = min(s["start"] for v in job["nodes"].values() for s in v.get("steps", []))
        per_node = {
            n: round(sum(s["end"] - s["start"] for s in v["steps"] if s["step"] == "deploy"), 2)
            for n, v in job["nodes"].items()
        }
        samples.append(
            {"wall": wall, "preflight": round(first - job["created"], 2), "deploy_step": per_node}
        )
        print(f"  mixed rollout {i + 1}/{runs}: {wall:.2f}s, deploy steps {per_node}")
    rig.set_pillar(2, via_ssh=True)
    return samples
