"""Issue 13's fault suite on the real rig: real processes killed, a real master restarted, a
real filesystem full, a real JVM that refuses its configuration. After every fault each node
ends on the new certificate or on the old one, proven from this process on new connections;
no file is half-written; the job record tells what happened. Nothing is mocked.

The faults are injected with :mod:`sandbox.faults` (SIGKILL of a process group, ``strace``
signal injection at an exact syscall, a tmpfs mounted over a node's TLS directory).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from certdeploy_core import bundle as cb
from certdeploy_core import cassandra_yaml, probe

from sandbox import faults, pki
from tests.integration.test_events import CLUSTER, Events, _wait
from tests.integration.test_rollout import NODES, last_json, wait_for_job

pytestmark = pytest.mark.rig


class Faults(Events):
    def on_disk(self, n: int) -> tuple[str, list[str]]:
        """(keystore leaf fingerprint, sorted truststore CA fingerprints) read from the files
        themselves, not through any minion (which may be dead)."""
        node, kind = self.rig.node(n), self.rig.store_type
        passwords = self.rig.store_passwords()
        _key, cert, _chain = cb.open_keystore(
            self.rig.keystore_path(node).read_bytes(), kind, passwords["keystore"], node.name
        )
        trust = cb.read_truststore(
            self.rig.truststore_path(node).read_bytes(), kind, passwords["truststore"], node.name
        )
        return cb.fingerprint(cert), sorted(cb.fingerprint(c) for c in trust)

    def deploy_backups(self, n: int, since: float, to: str) -> list[dict]:
        """Backups the deployments to fingerprint ``to`` took on node ``n`` after ``since``:
        every deployment that reached its backup step took exactly one."""
        out = []
        for manifest in (self.rig.node(n).home / "certdeploy-backups").glob("*/manifest.json"):
            data = json.loads(manifest.read_text())
            note = data.get("note") or {}
            if note.get("reason") == "deploy" and note.get("to") == to:
                if manifest.stat().st_mtime >= since:
                    out.append(data)
        return out

    def served_some(self, nodes) -> dict:
        ctx = self.rig.probe_context()
        return {
            n: tuple(probe.served_fingerprint(f"127.0.0.{n}", port, ctx) for port in (9042, 7000))
            for n in nodes
        }

    def job(self, job_id: str) -> dict:
        return json.loads((self.job_dir / f"{job_id}.json").read_text())

    def new_job_after(self, known: set) -> dict:
        (job_id,) = self.jobs() - known
        return self.job(job_id)


@pytest.fixture(scope="module")
def fx(rig, salt_cli, synced):
    f = Faults(rig, salt_cli)
    yield f
    f.give()


def _without_section(text: str, section: str) -> list[str]:
    """The lines of a yaml text outside one top-level mapping (its key and indented body)."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith(f"{section}:"):
            inside = True
            continue
        if inside and (line[:1] in (" ", "-") or not line.strip()):
            continue
        inside = False
        out.append(line)
    return out


def _ring_un(rig):
    return all(r["code"] == "UN" for r in rig.ring(via=1))


# ------------------------------------------------------------------ 5. full disk


def test_5_full_disk_refuses_before_any_change_and_names_the_disk(fx, rig, salt_cli):
    before = fx.served()
    leaves = fx.new_leaves()
    fx.give(fx.bundles(leaves))
    tls = rig.node(2).tls_dir
    jobs = fx.jobs()
    with faults.full_tmpfs(tls):
        files = {p.name: p.read_bytes() for p in tls.iterdir()}
        ret = fx.salt_run("certdeploy.rollout", "cass*")
        text = ret.stdout + ret.stderr
        assert ret.returncode != 0
        assert "pre-flight refused the rollout; nothing was changed" in text
        assert "cass2: disk_space" in text and f"filesystem mounted on {tls}" in text
        assert f"df -h {tls}" in text
        # The node's own call says the same, and changes nothing either.
        direct = salt_cli.run("certdeploy.deploy", "skip_cross_trust=True", minion_tgt="cass2")
        assert f"filesystem mounted on {tls}" in str(direct.data), direct
        assert {p.name: p.read_bytes() for p in tls.iterdir()} == files
        assert not list(tls.glob(".*certdeploy-*"))  # no temp file left behind
    assert fx.jobs() == jobs
    assert fx.served() == before


# ------------------------------------------------------------------ 6. racing rollouts


def test_6_two_renewals_and_a_manual_rollout_race_one_runs_and_no_node_twice(
    fx, rig, event_bus, tmp_path, store_emptied
):
    fx.give()  # bundles from the store's ext_pillar, as renewals deliver them
    leaves = fx.new_leaves()
    for n in NODES:
        fx.store_put(n, leaves[n], tmp_path)
    known, since = fx.jobs(), time.time()
    manual = fx.popen_run("certdeploy.rollout", "cass*")
    fx.fire("certdeploy/cert/renewed", {"cluster": CLUSTER, "minions": ["cass1", "cass2"]})
    fx.fire("certdeploy/cert/renewed", {"cluster": CLUSTER, "minions": ["cass3"]})
    out, err = manual.communicate(timeout=600)
    queued = event_bus.wait_for(f"certdeploy/queue/{CLUSTER}/started", since, timeout=180)
    assert queued["data"]["events"] == 2 and queued["data"]["minions"] == list(
        f"cass{n}" for n in NODES
    )

    # The manual rollout made a job unless it was refused; the queued renewals make one.
    expected = 2 if manual.returncode == 0 else 1

    def all_finished():
        jobs = [fx.job(j) for j in fx.jobs() - known]
        done = len(jobs) >= expected and all(j["status"] != "running" for j in jobs)
        return jobs if done else None

    jobs = sorted(_wait(all_finished, 300, "the rollouts to finish"), key=lambda j: j["created"])
    assert len(jobs) == expected, [j["job_id"] for j in jobs]
    if manual.returncode == 0:
        assert last_json(out)[0]["status"] == "succeeded"
    else:  # the queue got there first: the manual one was refused, changing nothing
        assert "locked by rollout" in out + err, err[-2000:]
    # One at a time: each job ended before the next began, and each node was deployed once.
    for first, second in zip(jobs, jobs[1:], strict=False):
        assert first["updated"] <= second["created"], (first["job_id"], second["job_id"])
    for n in NODES:
        deployed = [j["job_id"] for j in jobs if j["nodes"][f"cass{n}"]["state"] == "deployed"]
        assert len(deployed) == 1, (n, [j["nodes"] for j in jobs])
        assert len(fx.deploy_backups(n, since, leaves[n].fingerprint)) == 1
    assert all(j["status"] == "succeeded" for j in jobs)
    assert fx.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}


@pytest.fixture
def store_emptied(fx, rig):
    """The store's bundles would outrank the top-file pillar the other faults use."""
    yield
    shutil.rmtree(rig.root / "store", ignore_errors=True)
    fx.give()


# ------------------------------------------------------------------ 2. minion killed


def test_2_minion_killed_mid_install_resume_puts_the_node_on_one_certificate(fx, rig, tmp_path):
    extra = pki.CA.root("certdeploy extra trusted root")  # the truststore changes too
    leaves = fx.new_leaves()
    root = rig.root_ca().cert
    fx.give({n: pki.bundle_dict(leaf, root, extra.cert) for n, leaf in leaves.items()})
    old_leaf, old_trust = fx.on_disk(2)
    new_trust = sorted([cb.fingerprint(root), cb.fingerprint(extra.cert)])
    assert old_trust != new_trust
    before = fx.served()
    killer = faults.KillAtDirOpen(
        faults.minion_pids(rig, "cass2"), rig.node(2).tls_dir, tmp_path / "strace.log"
    )
    proc = fx.popen_run("certdeploy.rollout", "cass*")
    try:
        caught = killer.wait(300)
    finally:
        killer.stop()
    if not caught:
        out, err = proc.communicate(timeout=600)
        raise AssertionError(f"cass2's install was never caught: {out[-3000:]} {err[-3000:]}")
    faults.kill_minion(rig, "cass2")  # and the rest of the minion with it
    out, err = proc.communicate(timeout=600)
    result, _ = last_json(out)
    # The job tells the truth: cass2's state is unknown, nothing after it was started.
    assert proc.returncode != 0 and result["status"] == "halted", err[-2000:]
    assert result["nodes"]["cass1"]["state"] == "deployed"
    assert result["nodes"]["cass2"]["state"] == "running"
    assert "no answer to certdeploy.deploy" in result["nodes"]["cass2"]["error"]
    assert result["nodes"]["cass3"]["state"] == "pending"
    assert "certdeploy.resume" in result["halted"]
    # The fault really struck half-way: the new keystore is in place, the truststore is not.
    assert fx.on_disk(2) == (leaves[2].fingerprint, old_trust)
    assert fx.served()[2] == before[2]  # never activated
    faults.start_minion(rig, "cass2")
    ret = fx.salt_run("certdeploy.resume", result["job_id"])
    resumed, progress = last_json(ret.stdout)
    assert ret.returncode == 0 and resumed["status"] == "succeeded", ret.stderr[-2000:]
    messages = " | ".join(p["event"]["message"] for p in progress if "event" in p)
    assert "cass2: interrupted deployment restored" in messages, messages
    job = fx.job(result["job_id"])
    assert job["nodes"]["cass2"]["recovered"]["action"] == "restored"
    assert job["nodes"]["cass2"]["recovered"]["rollback"]["verified"] is True
    # Now all new, on every node, files and served certificate alike.
    for n in NODES:
        assert fx.on_disk(n) == (leaves[n].fingerprint, new_trust)
    assert fx.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}
    assert _ring_un(rig)


# ------------------------------------------------------------------ 3. master restarted


def test_3_master_restarted_mid_rollout_resume_completes_no_node_deployed_twice(fx, rig, event_bus):
    leaves = fx.new_leaves()
    fx.give(fx.bundles(leaves))
    known, since = fx.jobs(), time.time()
    proc = fx.popen_run("certdeploy.rollout", "cass*")
    wait_for_job(fx.job_dir, known, "cass2", "running")
    time.sleep(0.5)  # cass2's deploy is under way on its minion
    try:
        took = faults.restart_master(rig)
    finally:
        event_bus.restart()  # the session's listener, on the new master's bus
    print(f"\n[fault 3] master restarted in {took:.1f}s")
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    job = fx.new_job_after(known)
    print(f"[fault 3] rollout after the restart: {job['status']}, rc {proc.returncode}")
    if job["status"] != "succeeded":
        # The record is honest about what it does not know: nothing is marked failed.
        states = {n: v["state"] for n, v in job["nodes"].items()}
        assert job["status"] in ("halted", "running"), (job["status"], err[-2000:])
        assert "failed" not in states.values() and "rolled_back" not in states.values()
        ret = fx.salt_run("certdeploy.resume", job["job_id"])
        resumed, _ = last_json(ret.stdout)
        assert ret.returncode == 0 and resumed["status"] == "succeeded", ret.stderr[-2000:]
    assert fx.job(job["job_id"])["status"] == "succeeded"
    assert fx.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}
    for n in NODES:  # no node deployed twice
        assert len(fx.deploy_backups(n, since, leaves[n].fingerprint)) == 1, n


# ------------------------------------------------------------------ 4. node down between batches


def test_4_node_down_between_batches_halts_before_the_next_and_resume_continues(fx, rig):
    leaves = fx.new_leaves()
    fx.give(fx.bundles(leaves))
    before = fx.served()
    known = fx.jobs()
    proc = fx.popen_run("certdeploy.rollout", "cass*")
    node3 = rig.node(3)
    try:
        wait_for_job(fx.job_dir, known, "cass1", "deployed")  # cass1's gate has passed
        os.kill(node3.pid(), signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        result, _ = last_json(out)
        assert proc.returncode != 0 and result["status"] == "halted", err[-2000:]
        assert "before batch ['cass2']" in result["halted"] and "cass3" in result["halted"]
        assert "nothing in it was changed" in result["halted"]
        assert result["nodes"]["cass2"]["state"] == "pending"
        served = fx.served_some((1, 2))
        assert served == {1: (leaves[1].fingerprint,) * 2, 2: before[2]}
    finally:
        if node3.pid() is None:
            node3.start()
        rig.wait_ring_healthy(timeout=180)
    ret = fx.salt_run("certdeploy.resume", result["job_id"])
    resumed, _ = last_json(ret.stdout)
    assert ret.returncode == 0 and resumed["status"] == "succeeded", ret.stderr[-2000:]
    assert fx.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}


# ------------------------------------------------------------------ 1. JVM refuses to start


def test_1_cassandra_refuses_to_start_on_the_new_config_rollback_restarts_it_on_the_old(fx, rig):
    before = fx.served()
    node2 = rig.node(2)
    yaml_before = node2.config_path.read_bytes()
    pid = node2.pid()
    leaves = fx.new_leaves()
    # A protocol name the JVM's SSLContext does not know: Cassandra refuses to start with it.
    bad = {"encryption_options": {"server": {"protocol": "TLSv9"}}}
    fx.give({2: fx.bundles(leaves)[2]}, targets={2: bad})
    ret = fx.salt_run("certdeploy.rollout", "cass2")
    result, _ = last_json(ret.stdout)
    node = result["nodes"]["cass2"]
    assert ret.returncode != 0 and result["status"] == "failed", ret.stderr[-2000:]
    assert node["state"] == "rolled_back", node
    print(f"\n[fault 1] {node['error'][:600]}")
    assert "cass2: start failed" in node["error"], node
    assert "Protocol TLSv9 is not supported" in node["error"], node  # the cause, named
    job = fx.job(result["job_id"])
    deployed = job["nodes"]["cass2"]
    assert deployed["outcome"] == "rolled_back"
    assert node2.config_path.read_bytes() == yaml_before  # the old yaml, byte for byte
    assert node2.pid() not in (None, pid)  # restarted, on the old material
    assert fx.served() == before
    assert _ring_un(rig)
    fx.give()


# ------------------------------------------------------------------ 7. yaml edited by hand


def test_7_cassandra_yaml_edited_by_hand_during_a_rollout_keeps_the_edit(fx, rig):
    leaves = fx.new_leaves()
    protocols = ["TLSv1.3", "TLSv1.2"]
    fx.give(
        {n: b for n, b in fx.bundles(leaves).items() if n in (2, 3)},
        targets={3: {"encryption_options": {"client": {"accepted_protocols": protocols}}}},
    )
    path = rig.node(3).config_path
    known = fx.jobs()
    proc = fx.popen_run("certdeploy.rollout", "cass[23]")
    wait_for_job(fx.job_dir, known, "cass2", "running")
    # The operator, meanwhile, on cass3: a comment, an unrelated key changed and one added.
    original = path.read_text()
    assert "commitlog_sync_period: 10000ms\n" in original
    edited = original.replace(
        "commitlog_sync_period: 10000ms\n",
        "# CHG-1234: longer read timeout for the nightly batch\n"
        "read_request_timeout: 6000ms\n"
        "commitlog_sync_period: 9000ms\n",
    )
    path.write_text(edited)
    out, err = proc.communicate(timeout=600)
    result, _ = last_json(out)
    assert proc.returncode == 0 and result["status"] == "succeeded", err[-2000:]
    assert result["nodes"]["cass3"]["method"] == "restart"  # its yaml really changed
    after = path.read_text()
    assert "# CHG-1234: longer read timeout for the nightly batch\n" in after
    assert "read_request_timeout: 6000ms\n" in after and "commitlog_sync_period: 9000ms\n" in after
    tls = cassandra_yaml.read_tls(str(path))
    assert tls["client_encryption_options"]["accepted_protocols"] == protocols
    # Only certdeploy's own keys changed: every line outside its section is the operator's.
    assert _without_section(after, "client_encryption_options") == _without_section(
        edited, "client_encryption_options"
    )
    assert fx.served_some((2, 3)) == {n: (leaves[n].fingerprint,) * 2 for n in (2, 3)}
    assert _ring_un(rig)
    fx.give()
