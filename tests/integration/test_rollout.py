"""Issue 4 on the real rig: rolling rollouts through ``salt-run certdeploy.rollout`` (and
``state.orchestrate``), under a real QUORUM load, with failures, refusals, the lock and resume.
Fingerprints are checked from the test process on new connections; nothing is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from certdeploy_core import probe

from sandbox import pki
from sandbox.loadgen import LoadGenerator, stats
from sandbox.salt_rig import BIN

pytestmark = pytest.mark.rig
NODES = (1, 2, 3)
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


class Cluster:
    def __init__(self, rig, salt_cli):
        self.rig, self.salt_cli = rig, salt_cli

    def give(self, bundles: dict | None = None, targets: dict | None = None):
        """``bundles``: n -> bundle dict (others get no bundle); ``targets``: n -> overrides."""
        for n in NODES:
            extra = {"bundle": bundles[n]} if bundles and n in bundles else {}
            self.rig.set_pillar(n, extra, (targets or {}).get(n))
        ret = self.salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
        assert ret.returncode == 0, ret

    def new_leaves(self) -> dict:
        ca = self.rig.issuing_ca()
        return {n: ca.issue_node(n) for n in NODES}

    def bundles(self, leaves: dict) -> dict:
        root = self.rig.root_ca().cert
        return {n: pki.bundle_dict(leaf, root) for n, leaf in leaves.items()}

    def served(self) -> dict:
        ctx = self.rig.probe_context()
        return {
            n: (
                probe.served_fingerprint(f"127.0.0.{n}", 9042, ctx),
                probe.served_fingerprint(f"127.0.0.{n}", 7000, ctx),
            )
            for n in NODES
        }

    def tree(self) -> dict:
        digest = {}
        for n in NODES:
            home = self.rig.node(n).home
            for sub in ("tls", "conf", "certdeploy-backups"):
                for path in sorted((home / sub).rglob("*")) if (home / sub).exists() else ():
                    if path.is_file():
                        digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return digest

    def salt_run(self, *args, timeout=900) -> subprocess.CompletedProcess:
        cmd = [str(BIN / "salt-run"), "-c", str(self.rig.salt_config_dir), "--out=json", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)

    def popen_run(self, *args) -> subprocess.Popen:
        cmd = [str(BIN / "salt-run"), "-c", str(self.rig.salt_config_dir), "--out=json", *args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @property
    def job_dir(self) -> Path:
        return self.rig.root / "salt" / "cache" / "master" / "certdeploy" / "jobs"

    def jobs(self) -> set[str]:
        return {p.stem for p in self.job_dir.glob("*.json")} if self.job_dir.exists() else set()


def last_json(stdout: str):
    """salt-run prints progress events, then the return, as JSON documents."""
    decoder, docs, i = json.JSONDecoder(), [], 0
    text = stdout.strip()
    while i < len(text):
        doc, end = decoder.raw_decode(text, i)
        docs.append(doc)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return docs[-1], docs[:-1]


def wait_for_job(job_dir: Path, known: set, node: str, state: str, timeout=240) -> Path:
    """The file of the job started after ``known`` was listed, once ``node`` is ``state``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = {p.stem for p in job_dir.glob("*.json")} - known if job_dir.exists() else set()
        if new:
            job_file = job_dir / f"{new.pop()}.json"
            try:
                if json.loads(job_file.read_text())["nodes"][node]["state"] == state:
                    return job_file
            except ValueError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"no new job in {job_dir} with {node} {state} within {timeout}s")


@pytest.fixture(scope="module")
def cluster(rig, salt_cli, synced):
    c = Cluster(rig, salt_cli)
    yield c
    c.give()


def _rollout_under_load(cluster, rig, method, name):
    leaves = cluster.new_leaves()
    cluster.give(cluster.bundles(leaves))
    out = ARTIFACTS / f"load-{name}.json"
    ARTIFACTS.mkdir(exist_ok=True)
    gen = LoadGenerator(rig, out, rate=150).start()
    try:
        time.sleep(10)  # a baseline window
        started = time.time()
        ret = cluster.salt_run("certdeploy.rollout", "cass*", f"method={method}")
        ended = time.time()
        time.sleep(2)
    finally:
        ops = gen.stop()
    result, progress = last_json(ret.stdout)
    load = {"before": stats(ops, None, started), "during": stats(ops, started, ended)}
    (ARTIFACTS / f"rollout-{name}.json").write_text(json.dumps({"load": load, "result": result}))
    print(f"\n[{name}] load before {load['before']}\n[{name}] load during {load['during']}")
    assert ret.returncode == 0, ret.stderr[-2000:]
    assert result["status"] == "succeeded", result
    assert any("deploying cass2" in p["event"]["message"] for p in progress if "event" in p)
    assert cluster.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}
    for node in result["nodes"].values():
        assert node["method"] == method and node["state"] == "deployed"
    assert load["during"]["ops"] > 0 and load["before"]["ops"] > 0
    assert load["during"]["failed"] == 0, load["during"]["errors"]
    assert load["before"]["ops_per_s"] >= 100
    report = Path(result["report"]).read_text()
    assert 'data-state="deployed"' in report and "<svg" in report
    return result


def test_1_rolling_reload_under_load_zero_failed_requests(cluster, rig):
    _rollout_under_load(cluster, rig, "reload", "reload")


@pytest.mark.slow  # 3.7 min: `make test-slow` (the restart path stays in the suite elsewhere)
def test_2_rolling_restart_under_load_zero_failed_requests(cluster, rig):
    pids = {n: rig.node(n).pid() for n in NODES}
    _rollout_under_load(cluster, rig, "restart", "restart")
    assert all(rig.node(n).pid() != pids[n] for n in NODES)  # every JVM really restarted


def test_3_failure_on_node2_with_rollback_all(cluster, rig):
    before = cluster.served()
    leaves = cluster.new_leaves()
    cluster.give(cluster.bundles(leaves), targets={2: {"drill_fail_step": "verify"}})
    ret = cluster.salt_run("certdeploy.rollout", "cass*", "on_failure=rollback_all")
    result, _ = last_json(ret.stdout)
    assert ret.returncode != 0  # a failed rollout fails the salt-run
    assert result["status"] == "rolled_back", result
    states = {n: v["state"] for n, v in result["nodes"].items()}
    assert states == {"cass1": "rolled_back", "cass2": "rolled_back", "cass3": "skipped"}
    assert "drill" in result["nodes"]["cass2"]["error"]
    # cass1 and cass2 are back on their previous certificates, verified; cass3 untouched.
    assert cluster.served() == before
    job = json.loads((cluster.job_dir / f"{result['job_id']}.json").read_text())
    assert job["nodes"]["cass1"]["rollback"]["verified"]
    assert job["nodes"]["cass3"]["steps"] == []


def test_4_preflight_refuses_with_a_node_down_and_changes_nothing(cluster, rig):
    cluster.give(cluster.bundles(cluster.new_leaves()))
    rig.node(3).stop()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(r["code"] == "DN" for r in rig.ring(via=1)):
                break
            time.sleep(1)
        tree, jobs = cluster.tree(), cluster.jobs()
        ret = cluster.salt_run("certdeploy.rollout", "cass*")
        assert ret.returncode != 0
        assert "ring is not all UN" in ret.stdout + ret.stderr
        assert "127.0.0.3=DN" in ret.stdout + ret.stderr
        assert cluster.tree() == tree and cluster.jobs() == jobs
    finally:
        rig.node(3).start()
        rig.wait_ring_healthy(timeout=120)


def test_5_preflight_refuses_cross_trust_failure_and_changes_nothing(cluster, rig):
    before = cluster.served()
    leaves = cluster.new_leaves()
    other_root = pki.CA.root("certdeploy next root CA")
    leaves[2] = other_root.intermediate("next issuing CA").issue_node(2)
    bundles = cluster.bundles(leaves)
    # Node 2's own bundle trusts both CAs; the peers' current truststores do not trust the
    # new CA: activating it would break internode and client TLS at once.
    bundles[2] = pki.bundle_dict(leaves[2], other_root.cert, rig.root_ca().cert)
    cluster.give(bundles)
    tree, jobs = cluster.tree(), cluster.jobs()
    ret = cluster.salt_run("certdeploy.rollout", "cass*")
    text = ret.stdout + ret.stderr
    assert ret.returncode != 0
    assert "cross_trust" in text and "phase 1" in text and "CA rotation" in text
    assert cluster.tree() == tree and cluster.jobs() == jobs
    assert cluster.served() == before


def test_6_lock_refuses_a_second_concurrent_rollout(cluster, rig):
    cluster.give(cluster.bundles(cluster.new_leaves()))
    first = cluster.popen_run("certdeploy.rollout", "cass*")
    lock = (
        rig.root / "salt" / "cache" / "master" / "certdeploy" / "locks" / "certdeploy-sandbox.lock"
    )
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert lock.exists(), first.communicate()
    second = cluster.salt_run("certdeploy.rollout", "cass*")
    out, err = first.communicate(timeout=600)
    assert second.returncode != 0
    assert "locked by rollout" in second.stdout + second.stderr
    result, _ = last_json(out)
    assert first.returncode == 0 and result["status"] == "succeeded", err[-2000:]


def test_7_resume_after_the_rollout_process_is_killed(cluster, rig):
    leaves = cluster.new_leaves()
    cluster.give(cluster.bundles(leaves))
    known = cluster.jobs()
    proc = cluster.popen_run("certdeploy.rollout", "cass*")
    job_file = wait_for_job(cluster.job_dir, known, "cass1", "deployed")
    os.kill(proc.pid, signal.SIGKILL)  # the master-side rollout process dies mid-job
    proc.communicate()
    job = json.loads(job_file.read_text())
    assert job["status"] == "running" and job["nodes"]["cass3"]["state"] == "pending", job
    ret = cluster.salt_run("certdeploy.resume", job["job_id"])
    result, _ = last_json(ret.stdout)
    assert ret.returncode == 0, ret.stderr[-2000:]
    assert result["status"] == "succeeded", result
    assert cluster.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}


def test_8_state_orchestrate_orch_rollout(cluster):
    leaves = cluster.new_leaves()
    cluster.give(cluster.bundles(leaves))
    pillar = json.dumps({"certdeploy_rollout": {"tgt": "cass*", "method": "reload"}})
    ret = cluster.salt_run("state.orchestrate", "orch.rollout", f"pillar={pillar}")
    result, _ = last_json(ret.stdout)
    assert ret.returncode == 0, ret.stdout[-2000:]
    (state,) = result["data"]["sandbox-master"].values()
    assert state["result"] is True, state
    assert state["changes"]["return"]["status"] == "succeeded"
    assert cluster.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}


def test_9_dry_run_changes_nothing(cluster):
    before = cluster.served()
    cluster.give(cluster.bundles(cluster.new_leaves()))
    tree, jobs = cluster.tree(), cluster.jobs()
    ret = cluster.salt_run("certdeploy.rollout", "cass*", "test=True")
    result, _ = last_json(ret.stdout)
    assert ret.returncode == 0, ret.stderr[-2000:]
    assert result["test"] is True and result["plan"]["batches"] == [["cass1"], ["cass2"], ["cass3"]]
    assert result["preflight"]["problems"] == []
    assert result["limits"]["max_unavailable_per_dc"] == {"dc1": 1}  # RF 3: QUORUM tolerates 1
    assert result["diff"]["cass2"]["method"] == "reload"
    assert result["diff"]["cass2"]["old_fingerprint"] == before[2][0]
    assert cluster.tree() == tree and cluster.jobs() == jobs and cluster.served() == before
