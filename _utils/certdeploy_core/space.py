"""Free space where a deployment writes, checked before anything changes.

An atomic replace needs room for the new file beside the old one until the rename, and the
backup needs room for a copy of every managed file. A full filesystem caught here refuses the
deployment with the mount point and the fix; caught later (it filled up in between),
``files.atomic_write`` fails cleanly and the automatic rollback restores the backup.
"""

from __future__ import annotations

import os

from .checks import finding
from .files import mount_point

MARGIN = 64 * 1024  # bytes beyond the estimate: a keystore grows with a longer chain


def free_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _existing_dir(path: str) -> str:
    while not os.path.isdir(path):
        path = os.path.dirname(path) or "."
    return path


def needs(managed: dict, backup_dir: str) -> dict[str, int]:
    """Bytes needed per directory: each managed file's size (plus the margin) beside itself,
    and all of them again in the backup directory."""
    sizes = {}
    for path in managed.values():
        try:
            sizes[path] = os.path.getsize(path)
        except OSError:
            sizes[path] = 0
    out: dict[str, int] = {}
    for path, size in sizes.items():
        where = _existing_dir(os.path.dirname(path) or ".")
        out[where] = out.get(where, 0) + size + MARGIN
    where = _existing_dir(backup_dir)
    out[where] = out.get(where, 0) + sum(sizes.values()) + MARGIN
    return out


def check(managed: dict, backup_dir: str, node: str) -> dict:
    """One ``disk_space`` finding for every filesystem a deployment writes to."""
    per_fs: dict[int, dict] = {}
    for directory, need in needs(managed, backup_dir).items():
        dev = os.stat(directory).st_dev
        entry = per_fs.setdefault(dev, {"dirs": [], "need": 0, "at": directory})
        entry["dirs"].append(directory)
        entry["need"] += need
    short = []
    for entry in per_fs.values():
        free = free_bytes(entry["at"])
        if free < entry["need"]:
            short.append((mount_point(entry["at"]), entry, free))
    if not short:
        return finding("disk_space", True, "enough free space for install and backup")
    mount, entry, free = short[0]
    return finding(
        "disk_space",
        False,
        f"{node}: the filesystem mounted on {mount} (holding {', '.join(entry['dirs'])}) has "
        f"{free} bytes free; installing and backing up needs about {entry['need']}",
        f"free space on {mount} (df -h {entry['at']}), then deploy again; nothing was changed",
    )
