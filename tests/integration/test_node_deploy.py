"""Issue 3 on the real rig: ``certdeploy`` module and state on node 2 (cass2), through the real
salt-master and salt-minion, against real Cassandra JVMs. Bundles travel by pillar, as they do
in production; fingerprints are checked again from the test process on new connections.
"""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from certdeploy_core import probe

from sandbox import pki

pytestmark = pytest.mark.rig
MINION = "cass2"


class Cass2:
    """Drives node 2: pillar bundles, module calls, and independent observation."""

    def __init__(self, rig, salt_cli):
        self.rig, self.salt_cli, self.node = rig, salt_cli, rig.node(2)

    def give(self, bundle=None, target=None):
        extra = {"bundle": bundle} if bundle is not None else {}
        self.rig.set_pillar(2, extra, target)
        ret = self.salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=MINION)
        assert ret.returncode == 0, ret

    def call(self, fun, *args, **kwargs):
        argv = [f"{k}={v}" for k, v in kwargs.items()]
        return self.salt_cli.run(fun, *args, *argv, minion_tgt=MINION)

    def deploy(self, **kwargs):
        ret = self.call("certdeploy.deploy", skip_cross_trust=True, **kwargs)
        assert isinstance(ret.data, dict), ret
        return ret.data

    def served(self) -> dict:
        ctx = self.rig.probe_context()
        return {
            "client": probe.served_fingerprint(self.node.address, 9042, ctx),
            "internode": probe.served_fingerprint(self.node.address, 7000, ctx),
        }

    def new_leaf(self, **kwargs):
        return self.rig.issuing_ca().issue_node(2, **kwargs)

    def bundle(self, leaf, *trust):
        return pki.bundle_dict(leaf, *(trust or (self.rig.root_ca().cert,)))

    def tree(self) -> dict:
        """sha256 of every file certdeploy may touch on node 2 (and of its backups)."""
        digest = {}
        for sub in ("tls", "conf", "certdeploy-backups"):
            base = self.node.home / sub
            for path in sorted(base.rglob("*")) if base.exists() else ():
                if path.is_file():
                    digest[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        return digest


@pytest.fixture(scope="module")
def cass2(rig, salt_cli, synced):
    driver = Cass2(rig, salt_cli)
    yield driver
    driver.give()  # leave node 2 with its plain pillar


def _both(fp):
    return {"client": fp, "internode": fp}


def test_1_deploy_by_hot_reload_keeps_quorum(cass2, rig):
    leaf = cass2.new_leaf()
    cass2.give(cass2.bundle(leaf))
    result = cass2.deploy()
    assert result["outcome"] == "deployed", result
    assert result["activation"]["method"] == "reload"
    assert result["verification"]["ok"]
    assert cass2.served() == _both(leaf.fingerprint)
    row = rig.cql_roundtrip()  # the driver still reads at QUORUM over mTLS
    assert row["v"] == row["written"]
    assert set(result["timings"]) >= {"validate", "backup", "install", "activate", "verify"}


def test_2_state_apply_test_then_real_then_idempotent(cass2, salt_cli):
    before_served, before_tree = cass2.served(), cass2.tree()
    leaf = cass2.new_leaf()
    cass2.give(cass2.bundle(leaf))

    dry = salt_cli.run("state.apply", "certdeploy", "test=True", minion_tgt=MINION)
    (state,) = dry.data.values()
    assert state["result"] is None, state
    assert state["changes"]["fingerprint"] == {
        "old": before_served["client"],
        "new": leaf.fingerprint,
    }
    assert state["changes"]["method"] == "reload"
    assert state["changes"]["files"] == [str(cass2.rig.keystore_path(cass2.node))]
    assert cass2.tree() == before_tree and cass2.served() == before_served

    real = salt_cli.run("state.apply", "certdeploy", minion_tgt=MINION)
    (state,) = real.data.values()
    assert state["result"] is True, state
    assert state["changes"]["verification"]["client"] == leaf.fingerprint
    assert cass2.served() == _both(leaf.fingerprint)

    again = salt_cli.run("state.apply", "certdeploy", minion_tgt=MINION)
    (state,) = again.data.values()
    assert state["result"] is True and state["changes"] == {}, state
    assert "already serves" in state["comment"]


@pytest.mark.parametrize("trust", ["both_roots", "new_root_only"])
def test_3_foreign_ca_leaf_is_rolled_back_fast(cass2, rig, event_bus, trust):
    """A leaf from a CA the cluster does not trust passes every local check (cross-trust
    skipped explicitly) and activates. Its peers then refuse the node's new certificate (and,
    with ``new_root_only``, the node refuses its peers'): a deterministic failure, so verify
    gives up after two rounds instead of waiting out its timeout, and deploy restores the old
    material and proves it is served. The time is measured by ``make bench``."""
    old = cass2.served()
    other_root = pki.CA.root("certdeploy other root CA")
    leaf = other_root.intermediate("other issuing CA").issue_node(2)
    roots = (rig.root_ca().cert, other_root.cert) if trust == "both_roots" else (other_root.cert,)
    cass2.give(pki.bundle_dict(leaf, *roots))
    started = time.time()
    ret = cass2.call("certdeploy.deploy", skip_cross_trust=True, verify_timeout=60)
    result = ret.data
    assert ret.returncode != 0, ret  # a rolled-back deployment is not a success
    assert result["outcome"] == "rolled_back", result
    assert result["failed_step"] == "verify"
    verification = result["verification"]
    # It did activate: the new leaf was served before the rollback.
    assert verification["client"]["served"] == leaf.fingerprint
    why = {
        "both_roots": "peer 127.0.0.1 refuses cass2's installed certificate",
        "new_root_only": "cass2's installed truststore does not trust peer 127.0.0.1",
    }[trust]
    assert why in (verification["deterministic"] or ""), verification
    assert verification["seconds"] < 60 and not verification["ok"], verification
    assert result["rollback"]["verified"] and result["rollback"]["expected"] == old["client"]
    assert result["rollback"]["verification"]["deterministic"] is None
    assert cass2.served() == old
    event = event_bus.wait_for(f"certdeploy/node/{MINION}/rolled_back", started)
    assert event["data"]["data"]["new_fingerprint"] == leaf.fingerprint


def test_3b_failed_outcome_is_a_failed_exit_for_salt_and_orchestrate(cass2, salt_run_cli):
    """Scripts and orchestration read the exit code: a verify failure (forced by the drill
    pillar) ends rolled_back, ``salt`` exits non-zero and the orchestrate step fails."""
    old = cass2.served()
    cass2.give(cass2.bundle(cass2.new_leaf()), target={"drill_fail_step": "verify"})
    try:
        ret = cass2.call("certdeploy.deploy", skip_cross_trust=True)
        assert ret.returncode != 0, ret
        assert ret.data["outcome"] == "rolled_back" and ret.data["failed_step"] == "verify"
        assert cass2.served() == old

        pillar = json.dumps({"certdeploy_deploy": {"tgt": MINION, "skip_cross_trust": True}})
        orch = salt_run_cli.run("state.orchestrate", "orch.deploy_node", f"pillar={pillar}")
        assert orch.returncode != 0, orch
        (state,) = orch.data["data"]["sandbox-master"].values()
        assert state["result"] is False, state
        assert state["changes"]["ret"][MINION]["outcome"] == "rolled_back", state
        assert cass2.served() == old
    finally:
        cass2.give()
    good = cass2.call("certdeploy.verify")
    assert good.returncode == 0 and good.data["ok"], good


def test_4_keystore_path_change_forces_restart(cass2, rig):
    before_tree = cass2.tree()
    new_path = str(cass2.node.tls_dir / "keystore-v2.p12")
    leaf = cass2.new_leaf()
    cass2.give(cass2.bundle(leaf), target={"keystore": new_path})
    old_pid = cass2.node.pid()
    result = cass2.deploy()
    try:
        assert result["outcome"] == "deployed", result
        assert result["activation"]["method"] == "restart"
        assert result["configure"]["restart_required"]
        assert cass2.node.pid() != old_pid  # a real new JVM
        assert cass2.served() == _both(leaf.fingerprint)
        rows = rig.wait_ring_healthy(timeout=60, via=1)
        assert {r["code"] for r in rows} == {"UN"}
        assert new_path in cass2.node.config_path.read_text()
    finally:
        # Roll back (restart again) to the original yaml and keystore path.
        back = cass2.call("certdeploy.rollback", backup_id=result["backup"]["backup_id"])
        cass2.give()
    assert back.data["verified"], back.data
    assert back.data["activation"]["method"] == "restart"
    assert new_path not in cass2.node.config_path.read_text()
    after = cass2.tree()
    for path, digest in before_tree.items():
        if "certdeploy-backups" not in path:
            assert after.get(path) == digest, path
    rig.wait_ring_healthy(timeout=60, via=1)


def test_5_rollback_by_backup_id_after_success(cass2):
    original = cass2.served()["client"]
    first, second = cass2.new_leaf(), cass2.new_leaf()
    cass2.give(cass2.bundle(first))
    one = cass2.deploy()
    cass2.give(cass2.bundle(second))
    two = cass2.deploy()
    assert (one["outcome"], two["outcome"]) == ("deployed", "deployed")
    assert cass2.served() == _both(second.fingerprint)
    back = cass2.call("certdeploy.rollback", backup_id=one["backup"]["backup_id"])
    assert back.returncode == 0, back
    assert back.data["verified"] and back.data["expected"] == original
    assert cass2.served() == _both(original)
    status = cass2.call("certdeploy.status").data
    assert status["on_disk"]["keystore"]["fingerprint"] == original
    ids = [b["backup_id"] for b in status["backups"]]
    assert two["backup"]["backup_id"] in ids and len(ids) <= 5


def test_6_private_key_never_reaches_returns_events_or_logs(cass2, rig, event_bus, master_opts):
    leaf = cass2.new_leaf()
    cass2.give(cass2.bundle(leaf))
    started = time.time()
    ret = cass2.call("certdeploy.deploy", skip_cross_trust=True)
    assert ret.data["outcome"] == "deployed"
    status = cass2.call("certdeploy.status")
    time.sleep(1)  # let the last events arrive
    key_lines = [
        line
        for line in pki.key_pem(leaf.key).decode().splitlines()
        if line and not line.startswith("-----")
    ]
    assert len(key_lines) > 10
    haystacks = {
        "job return": ret.stdout + json.dumps(ret.data) + status.stdout,
        "events": json.dumps(event_bus.since(started), default=str),
        "minion log": (rig.root / "salt" / MINION / "minion.log").read_text(errors="replace"),
        "master log": (rig.root / "salt" / "logs" / "master.log").read_text(errors="replace"),
    }
    jobs = rig.root / "salt" / "cache" / "master" / "jobs"
    haystacks["master job cache"] = "".join(
        p.read_bytes().decode("latin-1") for p in jobs.rglob("*") if p.is_file()
    )
    assert event_bus.since(started, f"certdeploy/node/{MINION}/deployed")
    hits = {name: [k for k in key_lines if k in text] for name, text in haystacks.items()}
    assert hits == {name: [] for name in haystacks}


def test_7_fresh_pillar_compiles_on_the_master_for_that_call_only(cass2, rig):
    """A direct call reads the minion's in-memory pillar; ``fresh_pillar=True`` has the real
    master compile it for that one call and leaves the in-memory one as it was. A pillar that
    does not render is refused with the count of its errors, never their text, and no key."""
    leaf = cass2.new_leaf()
    before = cass2.call("certdeploy.bundle_public")
    try:
        rig.set_pillar(2, {"bundle": cass2.bundle(leaf)})  # written, not refreshed
        fresh = cass2.call("certdeploy.bundle_public", fresh_pillar=True)
        assert fresh.returncode == 0 and fresh.data["fingerprint"] == leaf.fingerprint, fresh
        assert "PRIVATE KEY" not in fresh.stdout
        after = cass2.call("certdeploy.bundle_public")
        assert after.data == before.data  # the minion's own pillar is unchanged

        sls = rig.root / "pillar" / "certdeploy_nodes" / f"{MINION}.sls"
        sls.write_text(sls.read_text() + "\nbroken: [unclosed\n")
        bad = cass2.call("certdeploy.bundle_public", fresh_pillar=True)
        assert bad.returncode != 0, bad
        message = json.dumps(bad.data)
        assert "cass2: its pillar did not compile on the master (1 error(s))" in message, bad
        assert "pillar.show_pillar cass2" in message
        assert "PRIVATE KEY" not in bad.stdout and "unclosed" not in bad.stdout
    finally:
        cass2.give()
