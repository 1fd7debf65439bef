"""Issue 2 (a)-(f): the rig is real — TLS on both ports, hot reload, the reloadssl trap, restart."""

from __future__ import annotations

import subprocess
import time

import pytest
from cassandra import ConsistencyLevel
from certdeploy_core import clients, cql, probe, ring

from sandbox import pki
from sandbox.rig import write_private

pytestmark = pytest.mark.rig


def test_a_cql_over_mtls_quorum_rf3(rig):
    """The driver reaches every node over TLS with a client cert; RF=3 QUORUM exercises
    internode TLS."""
    cluster = cql.cluster(
        ["127.0.0.1", "127.0.0.2", "127.0.0.3"],
        rig.cql_context(),
        consistency=ConsistencyLevel.QUORUM,
        request_timeout=20,
    )
    try:
        session = cluster.connect()
        session.execute(
            "CREATE KEYSPACE IF NOT EXISTS rigtest WITH replication = "
            "{'class': 'NetworkTopologyStrategy', 'dc1': 3}"
        )
        session.execute("CREATE TABLE IF NOT EXISTS rigtest.t (k int PRIMARY KEY, v text)")
        for k in range(20):
            session.execute("INSERT INTO rigtest.t (k, v) VALUES (%s, %s)", (k, f"v{k}"))
        rows = {r.k: r.v for r in session.execute("SELECT k, v FROM rigtest.t")}
        assert rows == {k: f"v{k}" for k in range(20)}
        hosts = {str(h.endpoint.address) for h in cluster.metadata.all_hosts() if h.is_up}
        assert hosts == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    finally:
        cluster.shutdown()


def test_b_served_fingerprints_match_issued(rig):
    issued = {n["name"]: n["issued_fingerprint"] for n in rig.descriptor()["nodes"]}
    served = rig.served_fingerprints()
    for name, fp in issued.items():
        assert served[name] == {"client": fp, "internode": fp}, name


def _served(rig, node):
    ctx = rig.probe_context()
    return {port: probe.served_fingerprint(node.address, port, ctx) for port in (9042, 7000)}


def _install_in_place(rig, node, leaf):
    password = rig.store_passwords()["keystore"]
    write_private(rig.keystore_path(node), pki.keystore_bytes(leaf, rig.store_type, password))


def test_c_hot_reload_serves_new_leaf_on_new_connections(rig):
    node = rig.node(2)
    keystore = rig.keystore_path(node)
    original = keystore.read_bytes()
    leaf = rig.issuing_ca().issue_node(2)
    try:
        _install_in_place(rig, node, leaf)
        res = node.nodetool("reloadssl")
        assert res.returncode == 0, res.stderr
        for port in (9042, 7000):
            evidence = probe.wait_for_fingerprint(
                node.address, port, rig.probe_context(), leaf.fingerprint, timeout=30
            )
            assert evidence["matched"], (port, evidence)
    finally:
        keystore.write_bytes(original)
        node.nodetool("reloadssl")


def test_d_reloadssl_exits_0_on_corrupt_keystore_and_old_cert_stays(rig):
    """The trap: nodetool says success, the node keeps serving the old cert."""
    node = rig.node(2)
    keystore = rig.keystore_path(node)
    original = keystore.read_bytes()
    before = _served(rig, node)
    try:
        log_offset = node.log_path.stat().st_size
        write_private(keystore, original[: len(original) // 2])  # truncated = corrupt
        res = node.nodetool("reloadssl")
        assert res.returncode == 0, "nodetool reloadssl is expected to exit 0 even on failure"
        assert _served(rig, node) == before
        with open(node.log_path, "rb") as fh:
            fh.seek(log_offset)
            assert b"Failed to hot reload" in fh.read()
    finally:
        write_private(keystore, original)
        assert node.nodetool("reloadssl").returncode == 0
    assert _served(rig, node) == before


def test_e_restart_through_pillar_control_returns_ring_to_un(rig, salt_cli, synced):
    pillar = salt_cli.run("pillar.items", "unmask=True", minion_tgt="cass3").data
    control = pillar["certdeploy"]["targets"]["cassandra"]["control"]

    old_pid = rig.node(3).pid()
    stop = subprocess.run(control["stop"], cwd=control["cwd"], capture_output=True, text=True)
    assert stop.returncode == 0, stop.stderr
    assert rig.node(3).pid() is None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        codes = {r["address"]: r["code"] for r in rig.ring(via=1)}
        if codes.get("127.0.0.3", "").startswith("D"):
            break
        time.sleep(1)
    assert codes["127.0.0.3"].startswith("D"), codes
    start = subprocess.run(control["start"], cwd=control["cwd"], capture_output=True, text=True)
    assert start.returncode == 0, start.stderr
    assert rig.node(3).pid() not in (None, old_pid)
    rows = rig.wait_ring_healthy(timeout=120)
    assert ring.ring_healthy(rows, 3)
    assert {r["address"] for r in rows} == {"127.0.0.1", "127.0.0.2", "127.0.0.3"}


def test_f_master_and_minions_answer_with_node_pillar(rig, salt_cli):
    ping = salt_cli.run("test.ping", minion_tgt="*")
    assert ping.returncode == 0
    assert ping.data == {"cass1": True, "cass2": True, "cass3": True}
    for node in rig.all_nodes():
        data = salt_cli.run("pillar.items", "unmask=True", minion_tgt=node.name).data
        target = data["certdeploy"]["targets"]["cassandra"]
        assert target["node"] == node.name
        assert target["listen_address"] == node.address
        assert target["config_file"] == str(node.config_path)
        assert target["jmx_port"] == node.jmx_port
        assert (target["dc"], target["rack"]) == (node.dc, node.rack)
        assert set(target["control"]) >= {"start", "stop", "nodetool"}
        # Each minion sees only its own node.
        assert "cass" in data["certdeploy"]["targets"]["cassandra"]["node"]
        others = {n.name for n in rig.all_nodes()} - {node.name}
        assert not any(other in str(data) for other in others)


def test_g_mutual_tls_authenticator_maps_certificates_to_roles(rig, tmp_path):
    """Under MutualTlsAuthenticator the client certificate is the login: every node shows the
    rig's connections under the role its SPIFFE identity maps to (never ``anonymous``), and a
    certificate from the trusted CA whose identity is not mapped, or that has none, is
    refused at login although its TLS handshake succeeds."""
    from cassandra.cluster import NoHostAvailable

    from sandbox.rig import RIG_ROLE

    assert rig.mtls_auth and rig.descriptor()["mtls_auth"]
    hosts = [n.address for n in rig.all_nodes()]
    seen = clients.connections(hosts, rig.cql_context())
    for host in hosts:
        assert isinstance(seen[host], list), seen[host]
        ready = {r["username"] for r in seen[host] if r["connection_stage"] == "ready"}
        assert ready == {RIG_ROLE}, (host, seen[host])
    ca = rig.issuing_ca()
    for name, uris in (("unmapped", ("spiffe://certdeploy-sandbox/nobody/g1",)), ("none", ())):
        leaf = ca.issue(f"stranger-{name}", dns=(f"stranger-{name}",), uris=uris)
        cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        cert.write_bytes(pki.cert_pem(leaf.cert, *leaf.chain))
        write_private(key, pki.key_pem(leaf.key))
        ctx = probe.verifying_context(str(rig.ca_file), str(cert), str(key))
        handshake = probe.client_context(str(cert), str(key))
        assert probe.served_fingerprint("127.0.0.1", 9042, handshake)  # TLS accepts it
        with pytest.raises(NoHostAvailable) as refused:
            cql.query(["127.0.0.1"], ctx, "SELECT release_version FROM system.local")
        assert "AuthenticationFailed" in str(refused.value), (name, refused.value)
