"""The ``container`` target profile on the rig: the sample Python client app runs in a real
podman container (runc, host network, ``--init``), its TLS files in a bind-mounted host
directory; ``salt cass1 certdeploy.deploy target=cdapp`` writes them as the image's uid, HUPs
the container, and the proof comes from outside it: the server lists the app's connections
only under the new generation's role, and the status file the app writes (bind-mounted) shows
the leaf it loaded. A single-file bind mount is refused before any change; the rollback drill
brings the old identity back. Nothing is mocked."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from sandbox import containers
from sandbox.container_rig import APP_INSIDE, app_target, write_app_files
from tests.integration.test_client_target import App, _wait, running

pytestmark = pytest.mark.rig
NAME = "cdapp"
INSIDE = APP_INSIDE
UID = containers.USERS["app"]


class ContainerApp(App):
    """The sample app in container ``name``, on minion cass1's host."""

    def __init__(self, rig, salt_cli, root, name=NAME, single_file=False):
        super().__init__(rig, salt_cli, root, n=1, name=name)
        self.tls, self.state = root / "tls", root / "state"
        self.keystore, self.truststore = self.tls / "client.pem", self.tls / "ca.pem"
        self.status = self.state / "status.json"
        self.single_file = single_file
        self.identity = f"spiffe://certdeploy-sandbox/{name}/{{generation}}"
        self.role = f"{name.replace('-', '_')}_{{generation}}"

    def install_first(self, leaf):
        write_app_files(self.rig, self.tls, leaf)

    def start(self, timeout: float = 90):
        containers.start_app(
            self.rig.root, self.name, self.tls, self.state, single_file=self.single_file
        )
        _wait(lambda: self.read().get("ok", 0) > 0, timeout, f"{self.name}'s first request")

    def stop(self):
        self.engine("rm", "-f", "-t", "5", self.name)

    def engine(self, *args) -> subprocess.CompletedProcess:
        argv = [*containers.engine(self.rig.root), *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=120)

    def control(self, action):
        return [sys.executable, "-m", "sandbox.client_app", action, "--status", str(self.status)]

    def target(self, **overrides) -> dict:
        backups = self.dir / "backups"
        return {**app_target(self.rig, self.name, self.tls, self.status, backups), **overrides}

    def inside(self) -> dict:
        """Owner, group and mode of the TLS files as the container sees them."""
        res = self.engine("exec", self.name, "stat", "-c", "%n %u %g %a", *self._paths())
        assert res.returncode == 0, res.stderr
        return {line.split()[0]: tuple(line.split()[1:]) for line in res.stdout.splitlines()}

    def _paths(self):
        return [f"{INSIDE}/client.pem", f"{INSIDE}/ca.pem"]


@pytest.fixture(scope="module")
def capp(rig, salt_cli, synced, tmp_path_factory):
    why = containers.available()
    if why:
        pytest.fail(f"containers cannot run on this machine: {why}")
    yield from running(ContainerApp(rig, salt_cli, tmp_path_factory.mktemp(NAME)))


def test_1_deploy_by_signal_is_seen_from_the_host_and_from_system_views_clients(capp):
    _wait(lambda: capp.only("cdapp_g1"), 30, "g1 connections on every node")
    result = capp.deploy_generation("g2", "signal")  # asserts the server's view and failed == 0
    assert result["verification"]["container"] == NAME
    state = capp.read()  # written by the app inside the container, read on the host
    assert state["reloads"] == 1 and state["failed"] == 0, state
    steps = result["activation"]["steps"]
    assert steps == [{"step": "signal HUP", "retcode": 0}], steps


def test_2_files_inside_the_container_are_the_images_uid_and_gid_mode_0600(capp):
    seen = capp.inside()
    print(f"\n[container] as the container sees them: {seen}")
    assert seen == {p: (str(UID), str(UID), "600") for p in capp._paths()}, seen
    for path in (capp.keystore, capp.truststore):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, UID, 0o600)
    leftovers = [p.name for p in capp.tls.iterdir() if p.name not in ("client.pem", "ca.pem")]
    assert leftovers == [], leftovers  # no temp file left in the mounted directory


def test_3_a_single_file_bind_mount_is_refused_before_any_change(capp, tmp_path):
    single = ContainerApp(capp.rig, capp.salt_cli, tmp_path / "single", "cdapp-single", True)
    single.dir.mkdir(mode=0o700)
    single.install_first(single.generation("g1"))
    single.start()
    try:
        single.pillar(single.generation("g2"))
        before, files_before = single.read()["fingerprint"], single.files()
        ret = single.deploy(capp.peers())
        text = ret.data if isinstance(ret.data, str) else json.dumps(ret.data)
        print(f"\n[container] single-file mount: {text[:400]}")
        assert ret.returncode != 0 and "single_file_mounts" in text, text
        assert "keystore is a single-file bind mount" in text and "-v " in text, text
        assert single.files() == files_before and not (single.dir / "backups").exists()
        assert single.read()["fingerprint"] == before and single.read()["reloads"] == 0
    finally:
        single.stop()


def test_4_a_container_dir_that_is_not_mounted_is_refused(capp):
    leaf = capp.generation("g3")
    capp.pillar(leaf, container_dir="/etc/elsewhere")
    before = capp.files()
    ret = capp.salt_cli.run("certdeploy.validate", f"target={NAME}", minion_tgt="cass1")
    findings = {f["check"]: f for f in ret.data["findings"]}
    assert ret.returncode != 0 and not findings["container_dir_mounted"]["ok"], ret.data
    assert "/etc/elsewhere is not bind-mounted" in findings["container_dir_mounted"]["message"]
    assert findings["container_running"]["ok"] and findings["single_file_mounts"]["ok"]
    ret = capp.deploy(capp.peers())
    assert ret.returncode != 0 and "container_dir_mounted" in json.dumps(ret.data), ret.data
    assert capp.files() == before


def test_5_rollback_drill_brings_the_old_certificate_back(capp):
    leaf = capp.generation("g4")
    capp.pillar(leaf)
    old = capp.read()["fingerprint"]
    capp.status.with_suffix(".unhealthy").write_text(leaf.fingerprint)  # the app's drill
    try:
        ret = capp.deploy(capp.peers())
    finally:
        capp.status.with_suffix(".unhealthy").unlink()
    result = ret.data
    assert ret.returncode != 0 and result["outcome"] == "rolled_back", result
    back = result["rollback"]["verification"]
    print(f"\n[container] rollback drill: {result['timings']}")
    assert back["ok"] and back["role"] == "cdapp_g2" and back["container"] == NAME, back
    assert capp.only("cdapp_g2")
    _wait(lambda: capp.read()["fingerprint"] == old, 10, "the app on its old leaf")
    assert capp.read()["failed"] == 0


def test_6_deploy_by_restart_with_a_grace_period(capp):
    leaf = capp.generation("g5")
    capp.pillar(leaf)
    ret = capp.deploy(capp.peers(), "method=restart")
    result = ret.data
    assert ret.returncode == 0 and result["outcome"] == "deployed", result
    assert result["activation"]["method"] == "restart", result["activation"]
    assert result["activation"]["steps"] == [{"step": "restart", "retcode": 0}]
    assert capp.only("cdapp_g5")
    state = capp.read()  # the counters carried across the container's restart
    assert state["restarts"] >= 1 and state["failed"] == 0, state
    assert state["fingerprint"] == leaf.fingerprint
