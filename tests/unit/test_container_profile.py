"""The ``container`` profile's pure parts: its pillar (host and container paths, numeric ids,
the engine's control argv) and the mount checks on ``<engine> inspect`` output. Deployment,
activation and rollback in real containers are proven on the rig
(``tests/integration/test_containers.py``, ``bench/containers.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from certdeploy_core import container, profiles
from certdeploy_core import target as certdeploy_target
from salt.exceptions import SaltInvocationError

ENGINE = ["podman", "--root", "/srv/podman"]


def _app(tmp_path, **overrides):
    target = {
        "profile": "container",
        "runs": "client",
        "engine": ENGINE,
        "container": "cdapp",
        "host_dir": str(tmp_path / "tls"),
        "container_dir": "/etc/cdapp/tls",
        "keystore": "client.pem",
        "truststore": "ca.pem",
        "uid": 999,
        "gid": 999,
        "app": "cdapp",
        "identity": "spiffe://prod/cdapp/{generation}",
        "role": "cdapp_{generation}",
        "contact_points": ["127.0.0.1:9042"],
        "verify_client": {"cert": str(tmp_path / "r.crt"), "key": str(tmp_path / "r.key")},
        "backup_dir": str(tmp_path / "backups"),
        **overrides,
    }
    pillar = {"certdeploy": {"targets": {"cdapp": target}}}
    return certdeploy_target.load_target(pillar, "cdapp", "host1")


def _node(tmp_path, **overrides):
    target = {
        "profile": "container",
        "runs": "cassandra",
        "engine": ENGINE,
        "container": "cass-c1",
        "host_dir": str(tmp_path / "tls"),
        "container_dir": "/etc/cassandra/tls",
        "keystore": "keystore.p12",
        "truststore": "truststore.p12",
        "keystore_password": "k",
        "truststore_password": "t",
        "uid": 998,
        "gid": 998,
        "config_file": str(tmp_path / "conf" / "cassandra.yaml"),
        "listen_address": "127.0.0.4",
        "backup_dir": str(tmp_path / "backups"),
        **overrides,
    }
    pillar = {"certdeploy": {"targets": {"cassandra": target}}}
    return certdeploy_target.load_target(pillar, "cassandra", "cass-c1")


def test_an_app_target_writes_host_paths_as_the_images_ids_and_signals_the_container(tmp_path):
    t = _app(tmp_path)
    assert profiles.get(t) is container and t.runs == "client"
    assert t.keystore == f"{tmp_path}/tls/client.pem"  # where certdeploy writes
    assert t.in_container("keystore") == "/etc/cdapp/tls/client.pem"
    assert (t.owner, t.group, t.mode) == ("999", "999", 0o600)
    assert t.method == "signal"
    assert t.inner.reload == (*ENGINE, "kill", "--signal", "HUP", "cdapp")
    assert t.inner.restart == (*ENGINE, "restart", "-t", "30", "cdapp")
    assert profiles.trait(t, "FLEET") == "clients"
    assert profiles.trait(t.public(), "FLEET") == "clients"
    assert "keystore_password" not in t.public() and t.public()["container"] == "cdapp"


def test_a_node_target_names_container_paths_in_its_yaml_and_execs_nodetool(tmp_path):
    t = _node(tmp_path)
    yaml = t.desired_yaml()["server_encryption_options"]
    assert yaml["keystore"] == "/etc/cassandra/tls/keystore.p12"
    assert t.keystore == f"{tmp_path}/tls/keystore.p12"
    assert t.control.nodetool == (*ENGINE, "exec", "cass-c1", "nodetool")
    assert t.exec == ("nodetool", "reloadssl") and t.method == "exec"
    assert t.control.stop == (*ENGINE, "stop", "-t", "30", "cass-c1")
    assert profiles.trait(t, "FLEET") == "cluster"
    assert container.resolve_method("auto", False, t) == "exec"
    assert container.resolve_method("auto", True, t) == "restart"
    with pytest.raises(SaltInvocationError, match="does not reload on a signal"):
        container.resolve_method("signal", False, t)


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"runs": "kafka"}, "runs: 'kafka' is not a containerised profile"),
        ({"keystore": "/etc/x/client.pem"}, "keystore: '/etc/x/client.pem' is not a file name"),
        ({"keystore": "../client.pem"}, "is not a file name relative"),
        ({"uid": "cassandra"}, "uid: 'cassandra' is not a numeric id"),
        ({"container_dir": "etc/tls"}, "container_dir: 'etc/tls' is not an absolute path"),
        ({"engine": "podman"}, "engine: 'podman' is not an argv list"),
        ({"activate": {"method": "kick"}}, "activate:method: 'kick' is unknown"),
        ({"activate": {"signal": "KILL"}}, "activate:signal: 'KILL' is not offered"),
        ({"identity": None}, "identity: missing"),
    ],
)
def test_bad_pillar_names_the_key_and_the_fix(tmp_path, overrides, match):
    with pytest.raises(SaltInvocationError, match=match) as err:
        _app(tmp_path, **overrides)
    assert "host1: certdeploy:targets:cdapp:" in str(err.value) and "Fix:" in str(err.value)


def _mount(src, dst, kind="bind"):
    return {"Type": kind, "Source": src, "Destination": dst, "RW": False}


def _checks(target, mounts, running=True):
    state = {"Running": running, "Status": "running" if running else "exited"}
    return {f["check"]: f for f in container.mount_findings(target, state, mounts)}


def test_a_mounted_directory_passes(tmp_path):
    t = _app(tmp_path)
    found = _checks(t, [_mount(f"{tmp_path}/tls", "/etc/cdapp/tls")])
    assert all(f["ok"] for f in found.values()), found


def test_a_parent_directory_mount_counts(tmp_path):
    t = _app(tmp_path, host_dir=str(tmp_path / "etc" / "tls"))
    found = _checks(t, [_mount(f"{tmp_path}/etc", "/etc/cdapp")])
    assert found["container_dir_mounted"]["ok"], found


def test_a_single_file_bind_mount_is_refused_with_the_fix(tmp_path):
    t = _app(tmp_path)
    mounts = [
        _mount(f"{tmp_path}/tls/client.pem", "/etc/cdapp/tls/client.pem"),
        _mount(f"{tmp_path}/tls/ca.pem", "/etc/cdapp/tls/ca.pem"),
    ]
    found = _checks(t, mounts)
    single = found["single_file_mounts"]
    assert not single["ok"] and "keystore is a single-file bind mount" in single["message"]
    assert "truststore is a single-file bind mount" in single["message"]
    assert f"-v {tmp_path}/tls:/etc/cdapp/tls:ro" in single["fix"]
    assert not found["container_dir_mounted"]["ok"]  # the directory itself is not mounted


def test_a_single_file_mount_of_the_yaml_is_refused(tmp_path):
    t = _node(tmp_path)
    mounts = [
        _mount(f"{tmp_path}/tls", "/etc/cassandra/tls"),
        _mount(f"{tmp_path}/conf/cassandra.yaml", "/etc/cassandra/cassandra.yaml"),
    ]
    found = _checks(t, mounts)
    assert found["container_dir_mounted"]["ok"]
    assert "config_file is a single-file bind mount" in found["single_file_mounts"]["message"]


def test_a_different_source_and_a_stopped_container_are_refused(tmp_path):
    t = _app(tmp_path)
    found = _checks(t, [_mount("/srv/other", "/etc/cdapp/tls")], running=False)
    assert not found["container_dir_mounted"]["ok"]
    assert "not host_dir" in found["container_dir_mounted"]["message"]
    assert "set host_dir to /srv/other" in found["container_dir_mounted"]["fix"]
    assert (
        not found["container_running"]["ok"] and "exited" in found["container_running"]["message"]
    )


def test_a_volume_is_not_a_bind_mount(tmp_path):
    t = _app(tmp_path)
    found = _checks(t, [_mount("/var/lib/containers/v", "/etc/cdapp/tls", kind="volume")])
    assert not found["container_dir_mounted"]["ok"]


@pytest.mark.parametrize("name, runs", [("orders", "client"), ("cassandra", "cassandra")])
def test_the_pillar_example_loads(name, runs):
    import yaml

    path = Path(__file__).resolve().parents[2] / "pillar" / "certdeploy_container_example.sls"
    t = certdeploy_target.load_target(yaml.safe_load(path.read_text()), name, "host1")
    assert (t.profile, t.runs, t.uid) == ("container", runs, 999)
