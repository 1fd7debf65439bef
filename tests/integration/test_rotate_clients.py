"""CA rotation across the 3 nodes and both sample apps (the Python app on cass1, the java-driver
app on cass2), under QUORUM load: ``salt-run certdeploy.rotate_ca 'cass*' CA2 client_tgt=...
client_targets=orders,billing``. Phase 3 is refused while a client still uses its CA1 identity;
at the end every node and every app is on CA2 only, and neither the load generator nor the apps
counted a failed request. Phase 2 before phase 1 is refused; rerunning phase 2 after the
nodes' part leaves them be (each already serves its new leaf) and moves only the apps.
Nothing is mocked."""

from __future__ import annotations

import json
import time

import pytest
from certdeploy_core import clients, probe

from sandbox import pki
from sandbox.loadgen import LoadGenerator, stats
from tests.integration.test_client_target import CLIENT_EKU, App, _wait
from tests.integration.test_java_client import JavaApp
from tests.integration.test_rollout import ARTIFACTS, NODES, Cluster, last_json

# 9 min on this machine: over make test's budget, so `make test-slow` runs it (issue 13).
pytestmark = [pytest.mark.rig, pytest.mark.slow]
CLUSTER = "sandbox"


@pytest.fixture(scope="module")
def apps(rig, salt_cli, synced, tmp_path_factory):
    started = []
    try:
        for cls, name, n in ((App, "orders", 1), (JavaApp, "billing", 2)):
            app = cls(rig, salt_cli, tmp_path_factory.mktemp(name), n=n, name=name)
            app.dir.chmod(0o700)
            app.install_first(app.generation("g1"))  # a CA1 leaf
            app.start()
            started.append(app)
        yield {a.name: a for a in started}
    finally:
        for app in started:
            app.stop()
        for n in NODES:
            rig.set_pillar(n)
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")


def _pillars(rig, salt_cli, apps, bundles=None, reader=None):
    """Node pillars with their apps' targets; ``reader``: a CA2 identity for every check."""
    override = {"verify_client": reader} if reader else {}
    for n in NODES:
        mine = [a for a in apps.values() if a.n == n]
        targets = {a.name: a.target(**override) for a in mine}
        extra = {"bundles": {a.name: bundles[a.name] for a in mine}} if bundles else {}
        rig.set_pillar(n, extra, target=override, targets=targets)
    ret = salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="*")
    assert ret.returncode == 0, ret


def nodes_only_args(new_ca_file):
    return ("certdeploy.rotate_ca", "cass*", str(new_ca_file))


def test_rotate_ca_over_nodes_and_both_apps_under_load(rig, salt_cli, apps, tmp_path):
    ARTIFACTS.mkdir(exist_ok=True)
    cluster = Cluster(rig, salt_cli)
    ca1_root = rig.root_ca().cert
    ca2_root = pki.CA.root("certdeploy CA2 root")
    ca2 = ca2_root.intermediate("certdeploy CA2 issuing")
    new_ca_file = tmp_path / "ca2-root.pem"
    new_ca_file.write_bytes(pki.cert_pem(ca2_root.cert))
    both = tmp_path / "both-roots.pem"
    both.write_bytes(pki.cert_pem(ca1_root, ca2_root.cert))
    leaves = {n: ca2.issue_node(n) for n in NODES}
    for n in NODES:  # the nodes' phase-2 bundles: CA2 leaves trusting both CAs
        bundle = pki.bundle_dict(leaves[n], ca1_root, ca2_root.cert)
        for part in ("cert", "key", "trust"):
            (tmp_path / f"r{n}.{part}").write_text(bundle[part])
        parts = (str(tmp_path / f"r{n}.{part}") for part in ("cert", "key", "trust"))
        ret = cluster.salt_run("certdeploy.store_put", CLUSTER, f"cass{n}", *parts)
        assert ret.returncode == 0, ret.stdout[-1000:]
    client_leaves = {}
    for app in apps.values():  # the apps' phase-2 bundles: CA2 leaves of a new generation
        identity = app.identity.replace("{generation}", "g2")
        app.rig.grant_identity(identity, app.role.replace("{generation}", "g2"), superuser=False)
        client_leaves[app.name] = ca2.issue(f"{app.name}-g2", uris=(identity,), eku=CLIENT_EKU)
    bundles = {
        name: pki.bundle_dict(leaf, ca1_root, ca2_root.cert) for name, leaf in client_leaves.items()
    }
    _pillars(rig, salt_cli, apps, bundles)
    tree = cluster.tree()  # phase 2 before phase 1 is refused and changes nothing
    early = cluster.salt_run(*nodes_only_args(new_ca_file), "phase=2")
    assert early.returncode != 0 and "phase 1 has not completed" in early.stdout, early.stdout
    assert cluster.tree() == tree
    for name in apps:
        _wait(lambda a=apps[name]: a.only(f"{a.name}_g1"), 30, f"{name} under its g1 role")

    # The rig's own CQL identity, again under CA2: the checks and the load present it later.
    identity2, role2 = "spiffe://certdeploy-sandbox/certdeploy/rig-ca2", "certdeploy_rig_ca2"
    reader2 = ca2.issue("certdeploy-client-2", dns=("certdeploy-client-2",), uris=(identity2,))
    rig.grant_identity(identity2, role2)
    (tmp_path / "c2.crt").write_bytes(pki.cert_pem(reader2.cert, *reader2.chain))
    (tmp_path / "c2.key").write_bytes(pki.key_pem(reader2.key))
    reader = {"cert": str(tmp_path / "c2.crt"), "key": str(tmp_path / "c2.key")}

    nodes_only = nodes_only_args(new_ca_file)
    run = (*nodes_only, "client_tgt=cass[12]", "client_targets=orders,billing", "max_parallel=2")
    phases, loads = [], {}

    def phase(args, number, ok=True):
        t0 = time.time()
        ret = cluster.salt_run(*args, f"phase={number}")
        phases.append((number, round(time.time() - t0, 1), ok))
        assert (ret.returncode == 0) == ok, ret.stdout[-4000:]
        return ret

    gen = LoadGenerator(rig, ARTIFACTS / "load-rotate-clients-12.json", 150).start()
    try:
        time.sleep(3)
        result = last_json(phase(run, 1).stdout)[0]
        assert result["ok"] and len(result["phases"][0]["clients"]) == 2, result  # a job per app
        phase(nodes_only, 2)  # the nodes only: the apps still present their CA1 identities
        tree = cluster.tree()
        refused = phase(run, 3, ok=False)
        assert "phase 3 refused while client connections may use an old-CA" in refused.stdout
        assert "cass1:orders" in refused.stdout and "cass2:billing" in refused.stdout
        assert cluster.tree() == tree  # nothing was changed
        result = last_json(phase(run, 2).stdout)[0]
        assert result["ok"] and len(result["phases"][0]["clients"]) == 2, result
        states = {n: v["state"] for n, v in result["phases"][0]["nodes"].items()}
        assert set(states.values()) == {"skipped"}, states  # they serve their new leaves
    finally:
        loads["phases 1-2"] = stats(gen.stop())
    both_ctx = probe.verifying_context(str(both), str(rig.client_cert), str(rig.client_key))
    for app in apps.values():  # both apps moved to their CA2 identity
        app.reader = both_ctx  # the nodes serve CA2 leaves now
        assert app.only(f"{app.name}_g2"), (app.name, app.seen_roles())

    _pillars(rig, salt_cli, apps, bundles, reader=reader)
    client2_tls = (str(both), reader["cert"], reader["key"])
    client2_ctx = probe.verifying_context(*client2_tls)
    gen = LoadGenerator(rig, ARTIFACTS / "load-rotate-clients-3.json", 150, tls=client2_tls)
    gen.start()
    try:
        time.sleep(3)
        # The rig's own identity (the load, this query, certdeploy's checks) is on CA2 now:
        # every node sees it only under the new role; nothing logs in with a CA1 certificate.
        seen = clients.connections([f"127.0.0.{n}" for n in NODES], client2_ctx)
        ok, problems = clients.only_under(seen, role2, {"certdeploy_rig", role2})
        assert ok, problems
        assert not any(r["username"] == "anonymous" for rows in seen.values() for r in rows)
        assert last_json(phase(run, 3).stdout)[0]["ok"]
    finally:
        loads["phase 3"] = stats(gen.stop())
    for app in apps.values():
        app.reader = client2_ctx  # CA1 identities are refused now
    print(f"\n[rotate_ca+clients] phases (phase, seconds, succeeded) {phases}")
    print(f"[rotate_ca+clients] load {loads}")
    print(f"[rotate_ca+clients] apps {[(a.name, a.read()) for a in apps.values()]}")
    (ARTIFACTS / "rotate-ca-clients.json").write_text(json.dumps({"phases": phases, "load": loads}))
    assert all(load["failed"] == 0 and load["ops"] > 0 for load in loads.values()), loads
    assert cluster.served() == {n: (leaves[n].fingerprint,) * 2 for n in NODES}
    ca2_fp = pki.fingerprint(ca2_root.cert)
    for n in NODES:
        status = salt_cli.run("certdeploy.status", minion_tgt=f"cass{n}").data
        assert status["on_disk"]["truststore"] == [ca2_fp], status["on_disk"]
    for app in apps.values():
        status = salt_cli.run("certdeploy.status", f"target={app.name}", minion_tgt=app.minion)
        assert status.data["on_disk"]["truststore"] == [ca2_fp], status.data
        state = app.read()
        assert state["failed"] == 0 and state["restarts"] >= 2, state  # phases 1 and 3
        assert state["fingerprint"] == client_leaves[app.name].fingerprint, state
        assert app.only(f"{app.name}_g2"), (app.name, app.seen_roles())
