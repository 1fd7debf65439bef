import datetime
import json
import os
import re
import stat
from pathlib import Path

import pytest
from certdeploy_core import backup
from certdeploy_core import files as cf
from salt.exceptions import CommandExecutionError, SaltInvocationError


def tree_digest(paths) -> dict:
    """``{path: sha256 or None}`` for each path: a cheap proof that no byte changed."""
    return {os.fspath(path): cf.sha256_file(path) for path in paths}


NODE = "cass1"
T0 = datetime.datetime(2026, 11, 26, 20, 15, 0, 123456, tzinfo=datetime.timezone.utc)


def at(seconds: int) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def managed(tmp_path):
    """A node's managed files: two present (different modes), one missing."""
    conf = tmp_path / "etc"
    conf.mkdir()
    keystore, yaml_file = conf / "keystore.p12", conf / "cassandra.yaml"
    keystore.write_bytes(b"\x30\x82PKCS12-private-key")
    yaml_file.write_bytes(b"cluster_name: 'Test Cluster'\n")
    os.chmod(keystore, 0o600)
    os.chmod(yaml_file, 0o644)
    return {
        "keystore": str(keystore),
        "config": str(yaml_file),
        "truststore": str(conf / "truststore.p12"),
    }


@pytest.fixture
def backup_dir(tmp_path):
    return str(tmp_path / "backups")


@pytest.fixture
def umask0():
    old = os.umask(0)
    yield
    os.umask(old)


def test_create_layout_manifest_and_permissions(managed, backup_dir, umask0):
    manifest = backup.create(backup_dir, managed, node=NODE, note={"reason": "deploy"}, now=T0)
    assert manifest["backup_id"] == "20261126T201500123456Z"
    assert re.fullmatch(r"\d{8}T\d{12}Z", manifest["backup_id"])
    assert manifest["created"] == "2026-11-26T20:15:00.123456+00:00"
    assert manifest["node"] == NODE and manifest["note"] == {"reason": "deploy"}

    target = Path(backup_dir) / manifest["backup_id"]
    assert _mode(backup_dir) == 0o700 and _mode(target) == 0o700
    assert sorted(p.name for p in target.iterdir()) == ["config", "keystore", "manifest.json"]
    for child in target.iterdir():
        assert _mode(child) == 0o600, child.name
    assert (target / "keystore").read_bytes() == Path(managed["keystore"]).read_bytes()
    assert json.loads((target / "manifest.json").read_text()) == manifest

    entry = manifest["files"]["config"]
    assert entry["present"] is True and entry["path"] == managed["config"]
    assert entry["mode"] == "0644" and entry["size"] == len(b"cluster_name: 'Test Cluster'\n")
    assert entry["sha256"] == cf.sha256_file(managed["config"])
    assert {"owner", "group", "mtime"} <= set(entry)
    assert manifest["files"]["truststore"] == {
        "path": managed["truststore"],
        "sha256": None,
        "size": None,
        "mode": None,
        "owner": None,
        "group": None,
        "mtime": None,
        "present": False,
    }
    # Nothing in the manifest is file content.
    assert b"PKCS12-private-key" not in (target / "manifest.json").read_bytes()


def test_existing_backup_dir_is_tightened_to_0700(managed, backup_dir):
    os.makedirs(backup_dir, mode=0o755)
    os.chmod(backup_dir, 0o755)
    backup.create(backup_dir, managed, node=NODE, now=T0)
    assert _mode(backup_dir) == 0o700


def test_same_timestamp_gets_numbered_suffix_and_sorts_newest_first(managed, backup_dir):
    ids = [backup.create(backup_dir, managed, node=NODE, now=T0)["backup_id"] for _ in range(3)]
    assert ids == [
        "20261126T201500123456Z",
        "20261126T201500123456Z-2",
        "20261126T201500123456Z-3",
    ]
    assert [m["backup_id"] for m in backup.list_backups(backup_dir)] == ids[::-1]


def test_suffix_ordering_is_numeric(managed, backup_dir):
    for _ in range(11):
        backup.create(backup_dir, managed, node=NODE, now=T0, keep=20)
    assert backup.list_backups(backup_dir)[0]["backup_id"].endswith("-11")


def test_prune_keeps_newest_and_ignores_incomplete(managed, backup_dir):
    incomplete = Path(backup_dir) / "20261126T201400000000Z"
    incomplete.mkdir(parents=True)
    (incomplete / "keystore").write_bytes(b"half")  # no manifest: interrupted backup
    made = [backup.create(backup_dir, managed, node=NODE, keep=2, now=at(i)) for i in range(4)]
    listed = [m["backup_id"] for m in backup.list_backups(backup_dir)]
    assert listed == [made[3]["backup_id"], made[2]["backup_id"]]
    on_disk = sorted(p.name for p in Path(backup_dir).iterdir())
    assert on_disk == sorted([*listed, incomplete.name])


def test_prune_never_deletes_the_backup_just_made(managed, backup_dir):
    newer = backup.create(backup_dir, managed, node=NODE, now=at(100))
    # A clock stepped back: the new backup sorts oldest, yet must survive keep=1.
    older = backup.create(backup_dir, managed, node=NODE, keep=1, now=at(0))
    ids = {m["backup_id"] for m in backup.list_backups(backup_dir)}
    assert older["backup_id"] in ids and newer["backup_id"] in ids


@pytest.mark.parametrize("keep", [0, -1, "3", True])
def test_keep_must_be_a_positive_int(managed, backup_dir, keep):
    with pytest.raises(SaltInvocationError):
        backup.create(backup_dir, managed, node=NODE, keep=keep)
    assert not os.path.exists(backup_dir)


@pytest.mark.parametrize(
    "files",
    [
        {"../keystore": "/etc/cassandra/keystore.p12"},
        {"keystore": "etc/keystore.p12"},
        {"keystore": "/etc/cassandra/../shadow"},
        {"manifest.json": "/etc/cassandra/cassandra.yaml"},
        {},
    ],
)
def test_create_rejects_bad_roles_and_paths(backup_dir, files):
    with pytest.raises(SaltInvocationError) as err:
        backup.create(backup_dir, files, node=NODE)
    assert str(err.value).startswith(f"{NODE}:")
    assert not os.path.exists(backup_dir)


def test_failed_copy_leaves_no_listed_backup(managed, backup_dir, monkeypatch):
    real = cf.atomic_write

    def flaky(path, data, **kwargs):
        if str(path).endswith("/config"):
            raise CommandExecutionError(f"{path}: write failed")
        return real(path, data, **kwargs)

    monkeypatch.setattr(cf, "atomic_write", flaky)
    with pytest.raises(CommandExecutionError):
        backup.create(backup_dir, managed, node=NODE, now=T0)
    assert backup.list_backups(backup_dir) == []


def test_list_latest_get(managed, backup_dir, tmp_path):
    assert backup.list_backups(str(tmp_path / "absent")) == []
    with pytest.raises(CommandExecutionError, match="run certdeploy.backup first") as err:
        backup.latest(backup_dir, NODE)
    assert str(err.value).startswith(f"{NODE}: no backup in {backup_dir}")
    first = backup.create(backup_dir, managed, node=NODE, now=at(0))
    second = backup.create(backup_dir, managed, node=NODE, now=at(1))
    (Path(backup_dir) / "not-a-backup").mkdir()
    assert backup.latest(backup_dir, NODE) == second
    assert backup.get(backup_dir, first["backup_id"], NODE) == first


@pytest.mark.parametrize("bad", ["../x", "../../etc/passwd", "a/b", "", ".hidden", "x\x00"])
def test_get_rejects_traversal(managed, backup_dir, bad):
    backup.create(backup_dir, managed, node=NODE, now=T0)
    with pytest.raises(SaltInvocationError, match=f"^{NODE}: backup_id"):
        backup.get(backup_dir, bad, NODE)


def test_get_unknown_id_lists_available(managed, backup_dir):
    made = backup.create(backup_dir, managed, node=NODE, now=T0)
    with pytest.raises(SaltInvocationError) as err:
        backup.get(backup_dir, "20200101T000000000000Z", NODE)
    assert made["backup_id"] in str(err.value)


def test_restore_round_trip_bytes_and_mode(managed, backup_dir):
    manifest = backup.create(backup_dir, managed, node=NODE, now=T0)
    before = tree_digest(managed.values())
    Path(managed["keystore"]).write_bytes(b"new key")
    os.chmod(managed["config"], 0o600)
    Path(managed["truststore"]).write_bytes(b"created after the backup")

    result = backup.restore(backup_dir, manifest, node=NODE)

    assert sorted(result["restored"]) == sorted([managed["keystore"], managed["config"]])
    assert result["unchanged"] == []
    assert Path(managed["keystore"]).read_bytes() == b"\x30\x82PKCS12-private-key"
    assert _mode(managed["keystore"]) == 0o600 and _mode(managed["config"]) == 0o644
    # Recorded absent: left alone, not deleted.
    assert Path(managed["truststore"]).read_bytes() == b"created after the backup"
    after = tree_digest([managed["keystore"], managed["config"]])
    assert after == {k: before[k] for k in after}

    again = backup.restore(backup_dir, manifest, node=NODE)
    assert again["restored"] == []
    assert sorted(again["unchanged"]) == sorted([managed["keystore"], managed["config"]])


def _corrupt_copy(backup_dir, manifest):
    copy = Path(backup_dir) / manifest["backup_id"] / "keystore"
    copy.write_bytes(b"bit rot")


def _missing_copy(backup_dir, manifest):
    (Path(backup_dir) / manifest["backup_id"] / "config").unlink()


def _traversal_in_manifest(backup_dir, manifest):
    manifest["files"]["config"]["path"] = "/etc/../etc/passwd"


@pytest.mark.parametrize("damage", [_corrupt_copy, _missing_copy, _traversal_in_manifest])
def test_corrupt_backup_is_refused_with_nothing_changed(managed, backup_dir, damage):
    manifest = backup.create(backup_dir, managed, node=NODE, now=T0)
    Path(managed["keystore"]).write_bytes(b"current key")
    Path(managed["config"]).write_bytes(b"current: yaml\n")
    damage(backup_dir, manifest)
    before = tree_digest(managed.values())

    problems = backup.verify(backup_dir, manifest)
    assert problems
    with pytest.raises(CommandExecutionError) as err:
        backup.restore(backup_dir, manifest, node=NODE)

    assert "corrupt" in str(err.value) and "nothing was changed" in str(err.value)
    assert str(err.value).startswith(f"{NODE}:")
    assert tree_digest(managed.values()) == before


def test_verify_clean_backup_has_no_problems(managed, backup_dir):
    manifest = backup.create(backup_dir, managed, node=NODE, now=T0)
    assert backup.verify(backup_dir, manifest) == []
    assert backup.verify(backup_dir, {"backup_id": "../x", "files": {}})
