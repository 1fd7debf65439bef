import grp
import hashlib
import os
import pwd
import stat

import pytest
from certdeploy_core import files as cf
from salt.exceptions import CommandExecutionError, SaltInvocationError


def tree_digest(paths) -> dict:
    """``{path: sha256 or None}`` for each path: a cheap proof that no byte changed."""
    return {os.fspath(path): cf.sha256_file(path) for path in paths}


@pytest.fixture
def umask():
    """Set a umask for one test and always put the old one back."""
    saved = []

    def _set(value):
        saved.append(os.umask(value))

    yield _set
    if saved:
        os.umask(saved[0])


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _me():
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


# --- safe_name / safe_path ---------------------------------------------------------------------


@pytest.mark.parametrize("value", ["keystore", "20261126T201500123456Z-2", "a.b_c-d", "X9"])
def test_safe_name_accepts_plain_names(value):
    assert cf.safe_name(value, "backup_id", "cass1") == value


@pytest.mark.parametrize(
    "value", ["../etc/passwd", "a/b", "", ".hidden", "x\x00", "a..b", "..", "a b", None, 5]
)
def test_safe_name_rejects_traversal_and_odd_names(value):
    with pytest.raises(SaltInvocationError) as err:
        cf.safe_name(value, "backup_id", "cass1")
    message = str(err.value)
    assert message.startswith("cass1: backup_id:")
    assert "Fix:" in message


@pytest.mark.parametrize("value", ["/etc/cassandra/keystore.p12", "/", "/var/lib/x.y"])
def test_safe_path_accepts_absolute_normalised_paths(value):
    assert cf.safe_path(value, "keystore", "cass1") == value


@pytest.mark.parametrize(
    "value",
    [
        "../etc/passwd",
        "etc/passwd",
        "/etc/../etc/passwd",
        "/etc/cassandra/..",
        "/etc//passwd",
        "/etc/cassandra/",
        "/etc/./passwd",
        "",
        "/etc/x\x00",
        None,
    ],
)
def test_safe_path_rejects_relative_traversal_and_unnormalised(value):
    with pytest.raises(SaltInvocationError) as err:
        cf.safe_path(value, "keystore", "cass2")
    assert str(err.value).startswith("cass2: keystore:")
    assert "Fix:" in str(err.value)


# --- hashes and metadata -----------------------------------------------------------------------


def test_sha256_helpers(tmp_path):
    path = tmp_path / "f"
    assert cf.sha256_file(path) is None
    path.write_bytes(b"abc")
    expected = hashlib.sha256(b"abc").hexdigest()
    assert cf.sha256_file(path) == expected == cf.sha256_bytes(b"abc")


def test_file_meta(tmp_path):
    path = tmp_path / "keystore.p12"
    assert cf.file_meta(path) is None
    path.write_bytes(b"\x00secret-bytes")
    os.chmod(path, 0o640)
    meta = cf.file_meta(path)
    owner, group = _me()
    assert meta == {
        "sha256": hashlib.sha256(b"\x00secret-bytes").hexdigest(),
        "size": 13,
        "mode": "0640",
        "owner": owner,
        "group": group,
        "mtime": os.stat(path).st_mtime,
    }


def test_tree_digest(tmp_path):
    present, absent = tmp_path / "a", tmp_path / "b"
    present.write_bytes(b"x")
    assert tree_digest([present, absent]) == {
        str(present): hashlib.sha256(b"x").hexdigest(),
        str(absent): None,
    }


# --- atomic_write ------------------------------------------------------------------------------


def test_atomic_write_creates_0600_even_with_umask_0(tmp_path, umask):
    umask(0)
    path = tmp_path / "keystore.p12"
    assert cf.atomic_write(path, b"key material") is True
    assert path.read_bytes() == b"key material"
    assert _mode(path) == 0o600


def test_atomic_write_applies_requested_mode_despite_restrictive_umask(tmp_path, umask):
    umask(0o077)
    path = tmp_path / "cassandra.yaml"
    cf.atomic_write(path, b"a: 1\n", mode=0o644)
    assert _mode(path) == 0o644


def test_atomic_write_is_idempotent(tmp_path):
    path = tmp_path / "truststore.p12"
    owner, group = _me()
    assert cf.atomic_write(path, b"v1", owner=owner, group=group) is True
    before = os.stat(path)
    assert cf.atomic_write(path, b"v1", owner=owner, group=group) is False
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # Same bytes, different mode: that is a change.
    assert cf.atomic_write(path, b"v1", mode=0o640) is True
    assert _mode(path) == 0o640
    assert cf.atomic_write(path, b"v2", mode=0o640) is True
    assert path.read_bytes() == b"v2"


def test_atomic_write_temp_file_is_private_while_bytes_are_written(tmp_path, monkeypatch, umask):
    umask(0)
    seen = []
    real_fsync = os.fsync

    def spy(fd):
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_fsync(fd)

    monkeypatch.setattr(cf.os, "fsync", spy)
    path = tmp_path / "cassandra.yaml"
    cf.atomic_write(path, b"x", mode=0o644)
    assert seen[0] == 0o600  # temp file, before its final chmod
    assert _mode(path) == 0o644


def _leftovers(directory, keep):
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_atomic_write_cleans_temp_and_keeps_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "keystore.p12"
    path.write_bytes(b"old")

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cf.os, "replace", boom)
    with pytest.raises(CommandExecutionError) as err:
        cf.atomic_write(path, b"new")
    assert str(path) in str(err.value)
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path, {"keystore.p12"}) == []


def test_atomic_write_cleans_temp_on_non_oserror(tmp_path, monkeypatch):
    path = tmp_path / "keystore.p12"

    def interrupted(fd, mode):
        raise KeyboardInterrupt

    monkeypatch.setattr(cf.os, "fchmod", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cf.atomic_write(path, b"new")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_missing_directory_names_the_path(tmp_path):
    path = tmp_path / "nope" / "keystore.p12"
    with pytest.raises(CommandExecutionError) as err:
        cf.atomic_write(path, b"x")
    assert str(path) in str(err.value)


def test_atomic_write_refuses_symlink_and_bad_input(tmp_path):
    real = tmp_path / "real.yaml"
    real.write_bytes(b"a")
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    with pytest.raises(CommandExecutionError, match="symlink"):
        cf.atomic_write(link, b"b")
    assert real.read_bytes() == b"a" and link.is_symlink()
    with pytest.raises(SaltInvocationError):
        cf.atomic_write(tmp_path / "x", "text, not bytes")
    with pytest.raises(SaltInvocationError, match="unknown user"):
        cf.atomic_write(tmp_path / "x", b"x", owner="no-such-user-certdeploy")
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_atomic_write_sets_owner_and_group(tmp_path):
    other = next((p for p in pwd.getpwall() if p.pw_uid not in (0, os.getuid())), None)
    if other is None:
        pytest.skip("no second user on this system")
    group = grp.getgrgid(other.pw_gid).gr_name
    path = tmp_path / "keystore.p12"
    assert cf.atomic_write(path, b"x", owner=other.pw_name, group=group) is True
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (other.pw_uid, other.pw_gid)
    assert cf.atomic_write(path, b"x", owner=other.pw_name, group=group) is False
    assert cf.atomic_write(path, b"x", owner="root", group=group) is True
    assert os.stat(path).st_uid == 0
