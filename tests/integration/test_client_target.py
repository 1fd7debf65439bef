"""The ``client`` target profile on the rig: a real Python client application on cass1's host,
its certificate deployed through ``salt cass1 certdeploy.deploy target=orders``, and proof from
the server side: every node accepts a login with the installed files, and ``system_views.
clients`` on every node shows the app only under the new generation's role. Bad leaves are
refused before any change; a failed verification rolls back and the server sees the app under
its old role again. Nothing is mocked."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from certdeploy_core import clients
from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox import pki
from sandbox.rig import REPO, write_private

pytestmark = pytest.mark.rig
APP = "orders"
IDENTITY = "spiffe://certdeploy-sandbox/orders/{generation}"
ROLE = "orders_{generation}"
CLIENT_EKU = (ExtendedKeyUsageOID.CLIENT_AUTH,)


class App:
    """The app's files, process and pillar on minion ``cass<n>``."""

    suffix = "pem"  # the store files' suffix

    def __init__(self, rig, salt_cli, root: Path, n: int = 1, name: str = APP):
        self.rig, self.salt_cli, self.dir, self.n, self.name = rig, salt_cli, root, n, name
        self.minion = f"cass{n}"
        self.keystore = root / f"client.{self.suffix}"
        self.truststore = root / f"ca.{self.suffix}"
        self.status = root / "status.json"
        self.identity = IDENTITY.replace(f"/{APP}/", f"/{name}/")
        self.role = ROLE.replace(APP, name, 1)
        self.reader = None  # the TLS context that reads system_views.clients (default: rig's)

    def generation(self, gen: str, ca=None, uris=None, eku=CLIENT_EKU):
        identity = self.identity.replace("{generation}", gen)
        self.rig.grant_identity(identity, self.role.replace("{generation}", gen), superuser=False)
        issuer = ca or self.rig.issuing_ca()
        subject = f"{self.name}-{gen}"
        return issuer.issue(subject, uris=(identity,) if uris is None else uris, eku=eku)

    def install_first(self, leaf):
        write_private(self.keystore, pki.pem_keystore(leaf))
        write_private(self.truststore, pki.pem_truststore(self.rig.root_ca().cert))

    def control(self, action):
        return [sys.executable, "-m", "sandbox.client_app", action, "--status", str(self.status)]

    def start_args(self) -> list[str]:
        args = ["run", "--name", self.name, "--cert", str(self.keystore)]
        args += ["--key", str(self.keystore), "--ca", str(self.truststore)]
        return args + ["--status", str(self.status)]

    def start(self, timeout: float = 60):
        subprocess.Popen(
            [sys.executable, "-m", "sandbox.client_app", *self.start_args()],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "app.log", "ab"),  # noqa: SIM115 - the app's own log
            start_new_session=True,
        )
        _wait(lambda: self.read().get("ok", 0) > 0, timeout, f"{self.name}'s first request")

    def read(self) -> dict:
        return json.loads(self.status.read_text()) if self.status.exists() else {}

    def stop(self):
        pid = self.read().get("pid")
        if pid:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def pillar(self, bundle_leaf=None, trust=None, **overrides):
        extra = {"bundles": {self.name: self.bundle(bundle_leaf, trust)}} if bundle_leaf else {}
        self.rig.set_pillar(self.n, extra, targets={self.name: self.target(**overrides)})
        ret = self.salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=self.minion)
        assert ret.returncode == 0, ret

    def bundle(self, leaf, trust=None) -> dict:
        anchors = trust or self.rig.root_ca().cert
        anchors = anchors if isinstance(anchors, (list, tuple)) else (anchors,)
        return pki.bundle_dict(leaf, *anchors)

    def target(self, **overrides) -> dict:
        """This app's ``certdeploy:targets:<name>`` pillar."""
        owner = self.rig.pillar_for(self.rig.node(self.n))["certdeploy"]["targets"]["cassandra"]
        return {
            "profile": "client",
            "app": self.name,
            "keystore": str(self.keystore),
            "truststore": str(self.truststore),
            "owner": owner["owner"],
            "group": owner["group"],
            "identity": self.identity,
            "role": self.role,
            "contact_points": [f"{n.address}:9042" for n in self.rig.all_nodes()],
            "activate": {
                "method": "reload",
                "reload": self.control("reload"),
                "restart": self.control("restart"),
                "cwd": str(REPO),
            },
            "health": self.control("health"),
            "pid_command": self.control("pid"),  # two instances of one app share its roles
            "verify_client": {"cert": str(self.rig.client_cert), "key": str(self.rig.client_key)},
            "verify_timeout": 30,
            "backup_dir": str(self.dir / "backups"),
            **self.profile_settings(),
            **overrides,
        }

    def profile_settings(self) -> dict:
        return {}  # the Python app: PEM files, activated by reload (SIGHUP)

    def deploy_generation(self, gen: str, method: str) -> dict:
        """Deploy a new generation's leaf; it must end ``deployed`` with the server's proof:
        every node accepts the login and lists the app's connections only under the new role."""
        leaf = self.generation(gen)
        self.pillar(leaf)
        started = time.monotonic()
        ret = self.deploy(self.peers())
        took = time.monotonic() - started
        result = ret.data
        assert ret.returncode == 0 and result["outcome"] == "deployed", result
        evidence = result["verification"]
        print(
            f"\n[client] {self.name} by {method}: {took:.1f}s wall; new role on every node "
            f"{evidence['seconds_to_new_role']}s after activation; {evidence['connections']}"
        )
        assert result["activation"]["method"] == method, result["activation"]
        role = self.role.replace("{generation}", gen)
        assert evidence["role"] == role and all(e["ok"] for e in evidence["login"].values())
        assert set(evidence["connections"]) == {n.address for n in self.rig.all_nodes()}
        assert self.only(role)
        state = self.read()
        assert state["failed"] == 0 and state["fingerprint"] == leaf.fingerprint, state
        return result

    def deploy(self, *args):
        return self.salt_cli.run(
            "certdeploy.deploy", f"target={self.name}", *args, minion_tgt=self.minion
        )

    def peers(self) -> str:
        ret = self.salt_cli.run("certdeploy.peer_info", minion_tgt="cass*")
        assert ret.returncode == 0, ret
        return "peers=" + json.dumps([ret.data[m] for m in sorted(ret.data)])

    def files(self) -> dict:
        paths = (self.keystore, self.truststore)
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    def only(self, role: str) -> bool:
        """Every node sees the app, and only under ``role``."""
        seen = self.seen_roles()
        return all(set(roles) == {role} for roles in seen.values())

    def seen_roles(self) -> dict:
        hosts = [n.address for n in self.rig.all_nodes()]
        seen = clients.connections(hosts, self.reader or self.rig.cql_context())
        return clients.roles(seen, lambda role: str(role).startswith(f"{self.name}_"))


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def app(rig, salt_cli, synced, tmp_path_factory):
    yield from running(App(rig, salt_cli, tmp_path_factory.mktemp(APP)))


def running(the_app):
    """A module fixture's body: start ``the_app`` on its first generation; afterwards stop it
    and give its minion its own pillar back."""
    the_app.dir.chmod(0o700)
    the_app.install_first(the_app.generation("g1"))
    the_app.start()
    yield the_app
    the_app.stop()
    the_app.rig.set_pillar(the_app.n)
    the_app.salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt=the_app.minion)


def test_1_deploy_by_reload_moves_every_connection_to_the_new_role(app):
    _wait(lambda: app.only("orders_g1"), 30, "g1 connections on every node")
    app.deploy_generation("g2", "reload")
    assert app.only("orders_g2")
    state = app.read()
    assert state["failed"] == 0 and state["reloads"] == 1, state


@pytest.mark.parametrize("case", ["wrong_identity", "no_client_auth", "foreign_ca"])
def test_2_bad_leaves_are_refused_before_any_change(app, case):
    if case == "wrong_identity":
        leaf = app.generation("g3", uris=("spiffe://certdeploy-sandbox/billing/g3",))
    elif case == "no_client_auth":
        leaf = app.generation("g3", eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    else:
        foreign_root = pki.CA.root("foreign root")
        leaf = app.generation("g3", ca=foreign_root.intermediate("foreign issuing"))
    app.pillar(leaf, trust=foreign_root.cert if case == "foreign_ca" else None)
    before, roles_before = app.files(), app.seen_roles()
    ret = app.deploy(app.peers())
    assert ret.returncode != 0, ret
    text = json.dumps(ret.data) if not isinstance(ret.data, str) else ret.data
    expected = {"wrong_identity": "identity", "no_client_auth": "eku", "foreign_ca": "cross_trust"}
    assert expected[case] in text, text
    assert app.files() == before
    assert {h: set(r) for h, r in app.seen_roles().items()} == {
        h: set(r) for h, r in roles_before.items()
    }
    assert app.read()["failed"] == 0


def test_3_an_app_that_does_not_come_back_healthy_is_rolled_back_to_its_old_role(app):
    leaf = app.generation("g4")
    app.pillar(leaf)
    app.status.with_suffix(".unhealthy").write_text(leaf.fingerprint)  # the app's drill
    try:
        ret = app.deploy(app.peers())
    finally:
        app.status.with_suffix(".unhealthy").unlink()
    result = ret.data
    assert ret.returncode != 0 and result["outcome"] == "rolled_back", result
    health = result["verification"]["health"]
    assert not health["ok"] and "drill: unhealthy" in health["output"], health
    back = result["rollback"]["verification"]
    assert back["ok"] and back["role"] == "orders_g2", back
    assert app.only("orders_g2")
    assert app.read()["failed"] == 0


def test_4_salt_run_rollout_deploys_two_apps_and_every_node_sees_both_moved(app, tmp_path):
    """One ``salt-run certdeploy.rollout`` over the app on cass1 and a second instance on
    cass2: canary, then a batch of max_parallel; each target verified from the server side."""
    from tests.integration.test_rollout import Cluster, last_json

    second = App(app.rig, app.salt_cli, tmp_path / "second", n=2)
    second.dir.mkdir(mode=0o700)
    second.install_first(second.generation("g2"))
    second.start()
    try:
        leaves = {a.n: a.generation("g5") for a in (app, second)}
        for a in (app, second):
            a.pillar(leaves[a.n])
        started = time.monotonic()
        ret = Cluster(app.rig, app.salt_cli).salt_run(
            "certdeploy.rollout", "cass[12]", f"target={APP}", "nodes=cass*", "max_parallel=2"
        )
        took = time.monotonic() - started
        result, progress = last_json(ret.stdout)
        assert ret.returncode == 0 and result["status"] == "succeeded", ret.stdout[-3000:]
        print(f"\n[client] salt-run rollout of 2 apps: {took:.1f}s wall; plan {result['plan']}")
        assert result["plan"]["mode"] == "clients" and result["plan"]["batches"] == [
            ["cass1"],
            ["cass2"],
        ]
        assert app.only("orders_g5")  # both apps, on every node, only under the new role
        for a in (app, second):
            assert a.read()["failed"] == 0 and a.read()["reloads"] >= 1, a.read()
            assert a.read()["fingerprint"] == leaves[a.n].fingerprint  # the app loaded it
    finally:
        second.stop()
        app.rig.set_pillar(2)


def test_5_compliance_checks_the_app_from_the_server_side(app):
    """``salt-run certdeploy.compliance`` over a client target: files, expiry and the server's
    view (every node sees the app only under its installed leaf's role), changing nothing."""
    from tests.integration.test_rollout import Cluster, last_json

    before = app.files()
    ret = Cluster(app.rig, app.salt_cli).salt_run("certdeploy.compliance", "cass1", f"target={APP}")
    result, _ = last_json(ret.stdout)
    assert ret.returncode == 0 and result["ok"], ret.stdout[-3000:]
    findings = {f["check"]: f for f in result["nodes"]["cass1"]["findings"]}
    assert findings["server_view"]["ok"] and "orders_g5" in findings["server_view"]["message"]
    assert "tls_versions_client" not in findings  # a client serves no port
    assert app.files() == before

    app.stop()  # the app is gone: the server no longer sees it, and compliance says so
    _wait(lambda: not any(app.seen_roles().values()), 30, "the app's connections to close")
    ret = app.salt_cli.run("certdeploy.compliance", f"target={APP}", minion_tgt="cass1")
    findings = {f["check"]: f for f in ret.data["findings"]}
    assert ret.returncode != 0 and not findings["server_view"]["ok"], ret.data
    app.start()


def test_6_retire_old_drops_the_old_identity_and_the_old_certificate_is_refused(app):
    _wait(lambda: app.only("orders_g5"), 30, "the app under g5 again")
    leaf = app.generation("g6")
    app.pillar(leaf, retire_old=True)
    ret = app.deploy(app.peers())
    result = ret.data
    assert ret.returncode == 0 and result["outcome"] == "deployed", result
    retired = result["retired"]
    print(f"\n[client] retire_old: {retired}")
    assert retired["ok"] and retired["identity"].endswith("/orders/g5"), retired
    assert set(retired["refused"]) == {n.address for n in app.rig.all_nodes()}
    assert all(r["refused"] for r in retired["refused"].values()), retired
    assert app.only("orders_g6")
    assert app.read()["failed"] == 0, app.read()
