"""A full filesystem, for real: a small tmpfs mounted here (root works on this machine kind),
filled up. The pre-activation ``disk_space`` check refuses with the mount point and the fix,
and an atomic write that hits ENOSPC leaves the file as it was and no temp file behind."""

from __future__ import annotations

import os
import subprocess

import pytest
from certdeploy_core import files, space
from salt.exceptions import CommandExecutionError

from sandbox.faults import fill


@pytest.fixture
def small_fs(tmp_path):
    mount = tmp_path / "tls"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_disk_space_passes_with_room_and_names_the_mount_when_full(small_fs, tmp_path):
    keystore = small_fs / "keystore.p12"
    keystore.write_bytes(b"k" * 3000)
    backups = tmp_path / "backups"
    backups.mkdir()
    managed = {"keystore": str(keystore), "truststore": str(small_fs / "truststore.p12")}
    assert space.check(managed, str(backups), "cass2")["ok"] is True
    fill(small_fs, "filler")
    found = space.check(managed, str(backups), "cass2")
    assert found["ok"] is False and found["check"] == "disk_space"
    assert f"mounted on {small_fs}" in found["message"] and "cass2" in found["message"]
    assert f"df -h {small_fs}" in found["fix"] and "nothing was changed" in found["fix"]


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_leaves_no_temp(small_fs):
    target = small_fs / "truststore.p12"
    target.write_bytes(b"old")
    fill(small_fs, "filler")
    with pytest.raises(CommandExecutionError) as err:
        files.atomic_write(target, b"n" * 200_000, mode=0o600)
    assert f"mounted on {small_fs}" in str(err.value) and "Fix: free space" in str(err.value)
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(small_fs)) == ["filler", "truststore.p12"]


def test_mount_point_of_a_path_not_yet_created(small_fs):
    assert files.mount_point(str(small_fs / "not" / "yet")) == str(small_fs)
