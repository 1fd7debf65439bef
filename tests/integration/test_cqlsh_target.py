"""The ``cqlsh`` profile on the rig: ``salt cass1 certdeploy.deploy target=ops`` installs the PEM
files and the cqlshrc sections for a real cqlsh (6.2.2, from PyPI), and verification runs that
cqlsh against every node: each lists cqlsh's own connection under the new generation's role.
Afterwards the test runs the same cqlsh itself. A failed verification (drill) restores the files
and the cqlshrc. Nothing is mocked."""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from sandbox import pki
from sandbox.rig import REPO, write_private
from tests.integration.test_client_target import CLIENT_EKU

pytestmark = pytest.mark.rig
NAME = "ops"
IDENTITY = "spiffe://certdeploy-sandbox/ops/{generation}"
CQLSH = str(REPO / ".venv" / "bin" / "cqlsh")


class Ops:
    def __init__(self, rig, salt_cli, root):
        self.rig, self.salt_cli, self.dir = rig, salt_cli, root
        self.keystore, self.truststore = root / "ops.pem", root / "ca.pem"
        self.cqlshrc = root / "cassandra" / "cqlshrc"

    def generation(self, gen: str):
        identity = IDENTITY.replace("{generation}", gen)
        self.rig.grant_identity(identity, f"{NAME}_{gen}", superuser=False)
        return self.rig.issuing_ca().issue(f"{NAME}-{gen}", uris=(identity,), eku=CLIENT_EKU)

    def pillar(self, leaf, **overrides):
        owner = self.rig.pillar_for(self.rig.node(1))["certdeploy"]["targets"]["cassandra"]
        target = {
            "profile": "cqlsh",
            "app": NAME,
            "keystore": str(self.keystore),
            "truststore": str(self.truststore),
            "cqlshrc": str(self.cqlshrc),
            "cqlsh": [CQLSH],
            "owner": owner["owner"],
            "group": owner["group"],
            "identity": IDENTITY,
            "role": f"{NAME}_{{generation}}",
            "contact_points": [f"{n.address}:9042" for n in self.rig.all_nodes()],
            "verify_client": {"cert": str(self.rig.client_cert), "key": str(self.rig.client_key)},
            "verify_timeout": 60,
            "backup_dir": str(self.dir / "backups"),
            **overrides,
        }
        bundles = {NAME: pki.bundle_dict(leaf, self.rig.root_ca().cert)}
        self.rig.set_pillar(1, {"bundles": bundles}, targets={NAME: target})
        ret = self.salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="cass1")
        assert ret.returncode == 0, ret

    def deploy(self, *args):
        ret = self.salt_cli.run("certdeploy.peer_info", minion_tgt="cass*")
        assert ret.returncode == 0, ret
        peers = "peers=" + json.dumps([ret.data[m] for m in sorted(ret.data)])
        return self.salt_cli.run(
            "certdeploy.deploy", f"target={NAME}", peers, *args, minion_tgt="cass1"
        )

    def files(self) -> dict:
        paths = (self.keystore, self.truststore, self.cqlshrc)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    def cqlsh(self, host: str) -> subprocess.CompletedProcess:
        argv = [CQLSH, "--cqlshrc", str(self.cqlshrc), "--ssl", host, "9042"]
        argv += ["-e", "SELECT username FROM system_views.clients"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def ops(rig, salt_cli, synced, tmp_path_factory):
    the_ops = Ops(rig, salt_cli, tmp_path_factory.mktemp(NAME))
    the_ops.dir.chmod(0o700)
    first = the_ops.generation("g1")
    write_private(the_ops.keystore, pki.pem_keystore(first))
    write_private(the_ops.truststore, pki.pem_truststore(rig.root_ca().cert))
    the_ops.cqlshrc.parent.mkdir(mode=0o700)
    the_ops.cqlshrc.write_text("[ui]\ncolor = off\n")  # an operator's own settings stay
    yield the_ops
    rig.set_pillar(1)
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="cass1")


def test_1_deploy_installs_files_and_cqlshrc_and_a_real_cqlsh_logs_in_as_the_new_role(ops):
    leaf = ops.generation("g2")
    ops.pillar(leaf)
    preview = ops.salt_cli.run("certdeploy.plan", f"target={NAME}", minion_tgt="cass1")
    assert preview.returncode == 0, preview
    assert str(ops.cqlshrc) in preview.data["files"], preview.data  # the diff names it
    keys = {(c["section"], c["key"]) for c in preview.data["config_changes"]}
    assert ("ssl", "usercert") in keys and ("auth_provider", "mechanism") in keys, keys
    assert "usercert" not in ops.cqlshrc.read_text()  # the plan changed nothing

    ret = ops.deploy()
    result = ret.data
    assert ret.returncode == 0 and result["outcome"] == "deployed", result
    evidence = result["verification"]
    print(f"\n[cqlsh] deploy: {result['timings']}; cqlsh runs {evidence['cqlsh']}")
    assert evidence["role"] == "ops_g2" and result["activation"]["method"] == "none"
    assert set(evidence["cqlsh"]) == {n.address for n in ops.rig.all_nodes()}
    assert all("ops_g2" in run["roles"] for run in evidence["cqlsh"].values()), evidence
    text = ops.cqlshrc.read_text()
    assert f"usercert = {ops.keystore}" in text and "color = off" in text
    for node in ops.rig.all_nodes():  # the same cqlsh, run by the test itself
        run = ops.cqlsh(node.address)
        assert run.returncode == 0 and "ops_g2" in run.stdout, run.stdout + run.stderr


def test_2_failed_verification_restores_the_files_and_the_cqlshrc(ops):
    before = ops.files()
    leaf = ops.generation("g3")
    ops.pillar(leaf, drill_fail_step="verify")
    ret = ops.deploy()
    result = ret.data
    assert ret.returncode != 0 and result["outcome"] == "rolled_back", result
    assert result["rollback"]["verification"]["ok"], result["rollback"]
    assert ops.files() == before
    run = ops.cqlsh(ops.rig.node(2).address)
    assert run.returncode == 0 and "ops_g2" in run.stdout, run.stdout + run.stderr


def test_3_compliance_runs_cqlsh_against_every_node(ops):
    ret = ops.salt_cli.run("certdeploy.compliance", f"target={NAME}", minion_tgt="cass1")
    assert ret.returncode == 0 and ret.data["ok"], ret.data
    findings = {f["check"]: f for f in ret.data["findings"]}
    assert findings["server_view"]["ok"] and "ops_g2" in findings["server_view"]["message"]
