"""A Cassandra node in a real podman container (``sandbox/container_node.py``): its own
single-node cluster on 127.0.0.4, the JVM and the jars bind-mounted read-only, its stores in a
bind-mounted directory. ``salt cass1 certdeploy.deploy target=cass4c`` writes them as the
image's uid 998 and activates with ``podman exec cass4c nodetool reloadssl``; the proof is
taken from the host: the new fingerprint served on 9042 and 7000, CQL over mTLS, the ring all
UN. A forced verify failure rolls back and the old certificate is served again. Nothing is
mocked. Marked ``bench``: ``make bench`` runs it (the node adds a container start to the
suite's budget)."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest
from certdeploy_core import cql, probe, ring

from sandbox import containers, pki
from sandbox.container_node import INSIDE, NAME, STORES, UID, ContainerNode

pytestmark = [pytest.mark.rig, pytest.mark.bench]
MINION = "cass1"  # the container runs on cass1's host


class Deployer:
    def __init__(self, rig, salt_cli, node: ContainerNode):
        self.rig, self.salt_cli, self.node = rig, salt_cli, node

    def give(self, leaf=None, **overrides):
        extra = {"bundles": {NAME: pki.bundle_dict(leaf, self.rig.root_ca().cert)}} if leaf else {}
        self.rig.set_pillar(1, extra, targets={NAME: self.node.target(**overrides)})
        ret = self.salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=MINION)
        assert ret.returncode == 0, ret

    def call(self, fun, *args):
        return self.salt_cli.run(fun, f"target={NAME}", *args, minion_tgt=MINION)

    def peers(self) -> str:
        """Cross-trust against the cluster: this node is all of it."""
        ret = self.call("certdeploy.peer_info")
        assert ret.returncode == 0, ret.data
        return "peers=" + json.dumps([ret.data])

    def served(self) -> dict:
        ctx = self.rig.probe_context()
        return {
            label: probe.served_fingerprint(self.node.address, port, ctx)
            for label, port in (("client", 9042), ("internode", 7000))
        }

    def ring_codes(self) -> list[str]:
        res = self.node.nodetool("status")
        assert res.returncode == 0, res.stderr
        return [row["code"] for row in ring.parse_status(res.stdout)]

    def files(self) -> dict:
        paths = [self.node.on_host(s) for s in STORES] + [self.node.dirs["conf"] / "cassandra.yaml"]
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def cnode(rig, salt_cli, synced):
    why = containers.available()
    if why:
        pytest.fail(f"containers cannot run on this machine: {why}")
    node = ContainerNode(rig)
    first = node.prepare()
    node.start(log=lambda msg: print(f"\n[container-node] {msg}"))
    deployer = Deployer(rig, salt_cli, node)
    deployer.first = first
    try:
        deployer.give()
        yield deployer
    finally:
        node.stop()
        rig.set_pillar(1)
        salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=MINION)


def test_1_the_containerised_node_serves_its_first_leaf_and_validates(cnode):
    assert cnode.served() == {"client": cnode.first, "internode": cnode.first}
    assert cnode.ring_codes() == ["UN"]
    before = cnode.files()
    cnode.give(cnode.rig.issuing_ca().issue_node(4))
    ret = cnode.call("certdeploy.validate", cnode.peers())
    assert ret.returncode == 0, ret.data
    assert cnode.files() == before  # validation changes nothing
    findings = {f["check"]: f["ok"] for f in ret.data["findings"]}
    for check in ("container_running", "single_file_mounts", "container_dir_mounted"):
        assert findings[check], ret.data
    assert all(findings.values()), ret.data


def test_2_deploy_by_exec_nodetool_reloadssl_serves_the_new_leaf_on_9042_and_7000(cnode):
    leaf = cnode.rig.issuing_ca().issue_node(4)
    cnode.give(leaf)
    ret = cnode.call("certdeploy.deploy", cnode.peers())
    result = ret.data
    assert ret.returncode == 0 and result["outcome"] == "deployed", result
    print(f"\n[container-node] deploy by exec: {result['timings']}")
    assert result["activation"]["method"] == "exec", result["activation"]
    assert result["activation"]["steps"] == [{"step": "exec", "retcode": 0}]
    verification = result["verification"]
    assert verification["container"] == NAME and verification["ok"], verification
    # From the host, on new connections: both ports, CQL over mTLS, the ring.
    assert cnode.served() == {"client": leaf.fingerprint, "internode": leaf.fingerprint}
    assert cnode.ring_codes() == ["UN"]
    driver = cql.cluster([cnode.node.address], cnode.rig.cql_context(), pin=True)
    try:  # CQL over mTLS with the rig's client certificate, on the new server leaf
        assert driver.connect().execute("SELECT release_version FROM system.local").one()
    finally:
        driver.shutdown()
    seen = cnode.node.inside()
    assert seen == {f"{INSIDE['tls']}/{n}": (str(UID), str(UID), "600") for n in STORES.values()}
    for store in STORES:
        st = os.stat(cnode.node.on_host(store))
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, UID, 0o600)
    leftovers = sorted(p.name for p in cnode.node.dirs["tls"].iterdir())
    assert leftovers == sorted(STORES.values()), leftovers
    yaml_text = (cnode.node.dirs["conf"] / "cassandra.yaml").read_text()
    assert f"{INSIDE['tls']}/keystore.p12" in yaml_text and str(cnode.node.dirs["tls"]) not in (
        yaml_text
    )


def test_3_rollback_drill_serves_the_old_certificate_again(cnode):
    old = cnode.served()
    before = cnode.files()
    leaf = cnode.rig.issuing_ca().issue_node(4)
    cnode.give(leaf, drill_fail_step="verify")
    try:
        ret = cnode.call("certdeploy.deploy", cnode.peers())
    finally:
        cnode.give()
    result = ret.data
    assert ret.returncode != 0 and result["outcome"] == "rolled_back", result
    print(f"\n[container-node] rollback drill: {result['timings']}")
    back = result["rollback"]
    assert back["verified"] and back["expected"] == old["client"], back
    assert cnode.served() == old
    assert cnode.ring_codes() == ["UN"]
    assert cnode.files() == before
