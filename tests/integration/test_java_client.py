"""The ``client`` profile with a real java-driver 4.19 application (``sandbox/java_client``):
PKCS#12 stores, activation ``watch`` (the app notices the new keystore itself: the driver's
``keystore-reload-interval`` plus a session swap that moves open connections), and proof from the
server side that every node sees the app only under its new generation's role. Nothing is
mocked: a real JVM, real Cassandra nodes, real salt."""

from __future__ import annotations

import pytest

from sandbox import pki
from sandbox.rig import REPO, write_private
from tests.integration.test_client_target import App, _wait

pytestmark = pytest.mark.rig
PASSWORD = "billing-store-pass"  # the stores' password, also in the app's 0600 password file


class JavaApp(App):
    suffix = "p12"

    def install_first(self, leaf):
        write_private(self.keystore, pki.pkcs12_keystore(leaf, PASSWORD, alias=self.name))
        write_private(self.truststore, pki.pkcs12_truststore(PASSWORD, self.rig.root_ca().cert))
        write_private(self.dir / "password", PASSWORD.encode())

    def start_args(self) -> list[str]:
        args = ["run-java", "--name", self.name, "--keystore", str(self.keystore)]
        args += ["--truststore", str(self.truststore), "--status", str(self.status)]
        return args + ["--password-file", str(self.dir / "password")]

    def start(self, timeout: float = 90):  # a JVM takes longer to its first request
        super().start(timeout)

    def profile_settings(self) -> dict:
        return {
            "store_type": "pkcs12",
            "keystore_password": PASSWORD,
            "truststore_password": PASSWORD,
            "activate": {
                "method": "watch",
                "watch_seconds": 3,  # the app polls its keystore every 1 s, then swaps sessions
                "restart": self.control("restart"),  # a truststore change restarts it
                "cwd": str(REPO),
            },
        }


@pytest.fixture(scope="module")
def java_app(rig, salt_cli, synced, tmp_path_factory):
    app = JavaApp(rig, salt_cli, tmp_path_factory.mktemp("billing"), name="billing")
    app.dir.chmod(0o700)
    app.install_first(app.generation("g1"))
    app.start()
    yield app
    app.stop()
    rig.set_pillar(1)
    salt_cli.run("saltutil.refresh_pillar", "wait=True", minion_tgt="cass1")


def test_1_deploy_by_watch_moves_every_java_connection_to_the_new_role(java_app):
    app = java_app
    _wait(lambda: app.only("billing_g1"), 30, "g1 connections on every node")
    assert app.read()["driver"] == "java-driver"
    app.deploy_generation("g2", "watch")
    assert app.read()["reloads"] >= 1  # the app swapped its session on the new keystore


def test_2_a_trust_change_restarts_the_java_app(java_app):
    """java-driver never reloads its truststore: a bundle with a new trust anchor set is
    activated by ``restart``, and the restarted JVM is seen under the new role."""
    app = java_app
    pid = app.read()["pid"]
    leaf = app.generation("g3")
    extra_anchor = pki.CA.root("extra anchor").cert  # e.g. rotate_ca phase 1 adds a CA
    app.pillar(leaf, trust=(app.rig.root_ca().cert, extra_anchor))
    ret = app.deploy(app.peers())
    result = ret.data
    assert ret.returncode == 0 and result["outcome"] == "deployed", result
    assert result["activation"]["method"] == "restart", result["activation"]
    state = app.read()
    assert state["pid"] != pid and state["failed"] == 0, state
    assert state["fingerprint"] == leaf.fingerprint
    assert app.only("billing_g3")
