"""Issue 5 on the real rig: the certificate store and its ext_pillar, renewal events through
the real reactor and the master's scheduler, the beacon-driven automatic rollback, the
maintenance window, compliance and the Prometheus textfile. Nothing is mocked.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from certdeploy_core import probe
from prometheus_client.parser import text_string_to_metric_families

from sandbox import pki
from tests.integration.test_rollout import NODES, Cluster, last_json

pytestmark = pytest.mark.rig
CLUSTER = "certdeploy-sandbox"


class Events(Cluster):
    def store_put(self, n: int, leaf, tmp: Path) -> dict:
        """Import a bundle through `salt-run certdeploy.store_put` (files on the master)."""
        files = {
            "cert": pki.cert_pem(leaf.cert, *leaf.chain),
            "key": pki.key_pem(leaf.key),
            "trust": pki.cert_pem(self.rig.root_ca().cert),
        }
        for name, data in files.items():
            (tmp / f"cass{n}.{name}").write_bytes(data)
            (tmp / f"cass{n}.{name}").chmod(0o600)
        ret = self.salt_run(
            "certdeploy.store_put",
            CLUSTER,
            f"cass{n}",
            str(tmp / f"cass{n}.cert"),
            str(tmp / f"cass{n}.key"),
            str(tmp / f"cass{n}.trust"),
            "source=test",
        )
        meta, _ = last_json(ret.stdout)
        assert ret.returncode == 0 and meta["fingerprint"] == leaf.fingerprint, ret.stdout
        return meta

    def fire(self, tag: str, data: dict):
        ret = self.salt_run("event.send", tag, f"data={json.dumps(data)}")
        assert ret.returncode == 0, ret.stderr

    def rollout_jobs(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.job_dir.glob("*.json"))]


@pytest.fixture(scope="module")
def events(rig, salt_cli, synced):
    e = Events(rig, salt_cli)
    e.give()  # no top-file bundles: from now on bundles come from the store's ext_pillar
    yield e
    e.give()


def _rollout_started_after(event_bus, since: float, timeout=60) -> tuple[str, dict]:
    """The first rollout job that started after ``since``, and its finished event."""

    def started():
        hits = [
            e
            for e in event_bus.since(since, "certdeploy/rollout/")
            if e["tag"].endswith("/started")
        ]
        return hits[0] if hits else None

    job_id = _wait(started, timeout, "a rollout to start")["tag"].split("/")[2]

    def finished():
        hits = event_bus.since(since, f"certdeploy/rollout/{job_id}/finished")
        return hits[0] if hits else None

    return job_id, _wait(finished, 300, f"rollout {job_id} to finish")


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_1_renewal_events_coalesce_into_one_rollout(events, event_bus, tmp_path):
    leaves = events.new_leaves()
    for n in NODES:
        events.store_put(n, leaves[n], tmp_path)
    jobs_before = {j["job_id"] for j in events.rollout_jobs()}
    started = time.time()
    for n in NODES:  # three renewals inside the coalescing window
        events.fire("certdeploy/cert/renewed", {"cluster": CLUSTER, "minions": [f"cass{n}"]})
    queued = event_bus.wait_for(f"certdeploy/queue/{CLUSTER}/started", started, timeout=90)
    assert queued["data"]["minions"] == ["cass1", "cass2", "cass3"]
    assert queued["data"]["events"] == 3
    job_id, end = _rollout_started_after(event_bus, queued["received"] - 1)
    assert end["data"]["status"] == "succeeded"
    elapsed = end["received"] - started
    print(f"\n[renewal] first event -> last node verified: {elapsed:.1f}s")
    new_jobs = [j for j in events.rollout_jobs() if j["job_id"] not in jobs_before]
    assert [j["job_id"] for j in new_jobs] == [job_id]  # exactly one rollout
    assert events.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}


def test_3a_no_private_key_anywhere_after_a_full_rollout(events, rig, event_bus):
    """After the store-driven rollout above: no line of any node key in the master's cachedir
    (job cache included), the master and minion logs, or the events seen on the bus."""
    store = rig.root / "store" / CLUSTER
    key_lines = set()
    for key_file in store.glob("*/v*/key.pem"):
        key_lines |= {
            line
            for line in key_file.read_text().splitlines()
            if line and not line.startswith("-----")
        }
    assert len(key_lines) > 30
    haystacks = {
        "master cachedir": rig.root / "salt" / "cache" / "master",
        "master log": rig.root / "salt" / "logs",
    }
    for n in NODES:
        haystacks[f"cass{n} minion log"] = rig.root / "salt" / f"cass{n}" / "minion.log"
    hits = {}
    for name, path in haystacks.items():
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        text = "".join(p.read_bytes().decode("latin-1") for p in files)
        hits[name] = sorted(k for k in key_lines if k in text)
    hits["events"] = sorted(k for k in key_lines if k in json.dumps(event_bus.events, default=str))
    assert hits == {name: [] for name in hits}


def test_2_beacon_detects_drift_and_reactor_rolls_node2_back(events, rig, salt_cli, event_bus):
    previous = events.served()[2][0]
    leaf = rig.issuing_ca().issue_node(2)
    events.rig.set_pillar(2, {"bundle": pki.bundle_dict(leaf, rig.root_ca().cert)})
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="cass2")
    deployed = salt_cli.run("certdeploy.deploy", "skip_cross_trust=True", minion_tgt="cass2")
    assert deployed.data["outcome"] == "deployed", deployed
    textfile = rig.root / "metrics" / "cass2.prom"
    textfile.unlink(missing_ok=True)
    beacon = [{"interval": 2}, {"target": "cassandra"}, {"textfile": str(textfile)}]
    add = salt_cli.run("beacons.add", "certdeploy", json.dumps(beacon), minion_tgt="cass2")
    assert add.returncode == 0, add
    try:
        _wait(textfile.exists, 30, "the beacon's first run")
        # Drift: someone swaps node 2's keystore behind certdeploy's back.
        rogue = rig.issuing_ca().issue_node(2)
        password = rig.store_passwords()["keystore"]
        from sandbox.rig import write_private

        started = time.time()
        write_private(rig.keystore_path(rig.node(2)), pki.keystore_bytes(rogue, "pkcs12", password))
        assert rig.node(2).nodetool("reloadssl").returncode == 0
        failed = event_bus.wait_for("certdeploy/health/failed", started, timeout=60)
        assert failed["data"]["data"]["reason"] == "mismatch"
        rolled = event_bus.wait_for("certdeploy/node/cass2/auto_rollback", started, timeout=120)
        assert rolled["data"]["verified"] is True
        assert events.served()[2] == (previous, previous)
    finally:
        salt_cli.run("beacons.delete", "certdeploy", minion_tgt="cass2")
        events.give()


def test_5_renewal_outside_the_window_waits_for_it(events, rig, event_bus, tmp_path):
    opens = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=40)
    window = [{"start": opens.isoformat(), "end": (opens + dt.timedelta(minutes=30)).isoformat()}]
    for n in NODES:
        rig.set_pillar(n, {"maintenance_windows": window})
    leaves = events.new_leaves()
    for n in NODES:
        events.store_put(n, leaves[n], tmp_path)
    started = time.time()
    events.fire("certdeploy/cert/renewed", {"cluster": CLUSTER})
    try:
        event_bus.wait_for(f"certdeploy/queue/{CLUSTER}/queued", started, timeout=30)
        time.sleep(15)  # well past coalescing; the window is still closed
        assert not event_bus.since(started, f"certdeploy/queue/{CLUSTER}/started")
        queue = last_json(events.salt_run("certdeploy.queue").stdout)[0]
        assert [q["cluster"] for q in queue] == [CLUSTER]
        begun = event_bus.wait_for(f"certdeploy/queue/{CLUSTER}/started", started, timeout=120)
        assert begun["received"] >= opens.timestamp()

        _job_id, end = _rollout_started_after(event_bus, begun["received"] - 1)
        assert end["data"]["status"] == "succeeded"
        assert events.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}
    finally:
        events.give()


def test_6_compliance_green_then_flags_exactly_two_findings(events, rig):
    issuer = rig.issuing_ca().cert.subject.rfc4514_string()
    root_fp = pki.fingerprint(rig.root_ca().cert)
    args = [f"allowed_issuers={json.dumps([issuer])}", f"expected_cas={json.dumps([root_fp])}"]
    green = events.salt_run("certdeploy.compliance", "cass*", *args)
    report, _ = last_json(green.stdout)
    assert green.returncode == 0 and report["ok"], report["failures"]
    assert Path(report["report"]).exists()

    keystore1 = rig.keystore_path(rig.node(1))
    keystore1.chmod(0o644)
    rogue = rig.issuing_ca().issue_node(3)
    from sandbox.rig import write_private

    keystore3 = rig.keystore_path(rig.node(3))
    original3 = keystore3.read_bytes()
    password = rig.store_passwords()["keystore"]
    try:
        write_private(keystore3, pki.keystore_bytes(rogue, "pkcs12", password))
        rig.node(3).nodetool("reloadssl")
        # Node 3 now serves (and holds) a cert certdeploy did not deploy.
        ctx = rig.probe_context()
        seen = probe.wait_for_fingerprint("127.0.0.3", 9042, ctx, rogue.fingerprint, timeout=30)
        assert seen["matched"], seen
        red = events.salt_run("certdeploy.compliance", "cass*", *args)
        report, _ = last_json(red.stdout)
        assert red.returncode != 0 and not report["ok"]
        found = {(f["node"], f["check"]) for f in report["failures"]}
        assert found == {("cass1", "keystore_mode"), ("cass3", "served")}, report["failures"]
    finally:
        keystore1.chmod(0o600)
        write_private(keystore3, original3)
        rig.node(3).nodetool("reloadssl")


def test_7_prometheus_textfile_parses_and_agrees(events, rig, salt_cli):
    textfile = rig.root / "metrics" / "cass1.prom"
    textfile.unlink(missing_ok=True)  # only this beacon run's output counts
    beacon = [{"interval": 2}, {"target": "cassandra"}, {"textfile": str(textfile)}]
    salt_cli.run("beacons.add", "certdeploy", json.dumps(beacon), minion_tgt="cass1")
    try:
        _wait(textfile.exists, 30, "the textfile")
        families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
        assert {
            "certdeploy_cert_expiry_timestamp_seconds",
            "certdeploy_served_matches_expected",
            "certdeploy_last_deployment_timestamp_seconds",
            "certdeploy_last_deployment_success",
        } <= set(families)
        (match,) = families["certdeploy_served_matches_expected"].samples
        assert match.labels["node"] == "cass1" and match.value == 1.0
        status = salt_cli.run("certdeploy.status", minion_tgt="cass1").data
        (expiry,) = families["certdeploy_cert_expiry_timestamp_seconds"].samples
        not_after = dt.datetime.fromisoformat(status["on_disk"]["keystore"]["not_after"])
        assert abs(expiry.value - not_after.timestamp()) < 1
    finally:
        salt_cli.run("beacons.delete", "certdeploy", minion_tgt="cass1")


def test_3b_each_minion_gets_only_its_own_key(events, rig, salt_cli):
    """Last in the module: pillar.items returns cass1's own key into the job cache, which is
    what an operator asking for it gets; cass2's key must never reach cass1."""
    store = rig.root / "store" / CLUSTER
    cass2_key = sorted((store / "cass2").glob("v*/key.pem"))[-1].read_text()
    cass2_lines = [x for x in cass2_key.splitlines() if x and not x.startswith("-----")]
    for args in (
        ("pillar.items", "unmask=True"),
        ("pillar.items",),
        ("pillar.get", "certdeploy", "unmask=True"),
    ):
        ret = salt_cli.run(*args, minion_tgt="cass1")
        assert ret.returncode == 0
        assert not any(line in ret.stdout for line in cass2_lines), args
    own = salt_cli.run("pillar.get", "certdeploy:bundle_version", minion_tgt="cass1").data
    assert own
    get = salt_cli.run(
        "cp.get_file",
        f"salt://store/{CLUSTER}/cass2/v0001/key.pem",
        "/tmp/certdeploy-steal.pem",
        minion_tgt="cass1",
    )
    assert not get.data and not Path("/tmp/certdeploy-steal.pem").exists()
    listing = salt_cli.run("cp.list_master", minion_tgt="cass1").data
    assert not any("key.pem" in path or "store/" in path for path in listing)
