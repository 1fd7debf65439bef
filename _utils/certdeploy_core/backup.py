"""Versioned, private snapshots of the files certdeploy manages (keystores, truststores,
cassandra.yaml), so any deployment can be rolled back byte-for-byte.

Layout: ``<backup_dir>/<backup_id>/<role>`` plus ``manifest.json``, all 0700/0600. The manifest
is written last, so a directory without one is an interrupted backup and is ignored.
Pure functions; no Salt dunders.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import files as files_util
from . import timeutil

BACKUP_ID_FORMAT = "%Y%m%dT%H%M%S%fZ"
MANIFEST = "manifest.json"
_META_KEYS = ("sha256", "size", "mode", "owner", "group", "mtime")
_BACKUP_ID = re.compile(r"(?P<stamp>\d{8}T\d{12}Z)(?:-(?P<seq>[1-9]\d*))?")


def _sort_key(backup_id: str) -> tuple:
    """Chronological order, with ``-10`` after ``-9`` (plain string order would not)."""
    match = _BACKUP_ID.fullmatch(backup_id)
    return (match["stamp"], int(match["seq"] or 1))


_utc = timeutil.utc


def _private_dir(path: str) -> None:
    """Create ``path`` if needed and force it to 0700 (mkdir's mode is filtered by umask)."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def _new_backup_dir(backup_dir: str, created: datetime.datetime) -> str:
    """Atomically claim a fresh ``<backup_dir>/<id>``; returns the id."""
    base = created.strftime(BACKUP_ID_FORMAT)
    seq = 1
    while True:
        backup_id = base if seq == 1 else f"{base}-{seq}"
        try:
            os.mkdir(os.path.join(backup_dir, backup_id), 0o700)
        except FileExistsError:  # same microsecond (or clock step back): take the next suffix
            seq += 1
            continue
        os.chmod(os.path.join(backup_dir, backup_id), 0o700)
        return backup_id


def _snapshot(path: str, copy_path: str) -> dict:
    """Copy ``path`` to ``copy_path`` (0600) and describe it; ``present`` False if missing."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return {"path": path, **dict.fromkeys(_META_KEYS), "present": False}
    meta = files_util.file_meta(path) or {}
    files_util.atomic_write(copy_path, data, mode=0o600)
    # Hash/size of the bytes actually copied, not a second read that might race a writer.
    meta.update(sha256=files_util.sha256_bytes(data), size=len(data))
    return {"path": path, **meta, "present": True}


def create(
    backup_dir: str,
    files: dict[str, str],
    *,
    node: str,
    keep: int = 5,
    note: dict | None = None,
    now=None,
) -> dict:
    """Snapshot ``files`` (``{role: absolute path}``) into a new backup; prune to ``keep``.

    Returns the manifest. Missing files are recorded with ``present: false``.
    """
    files_util.safe_path(backup_dir, "backup_dir", node)
    if not isinstance(files, dict) or not files:
        raise SaltInvocationError(
            f"{node}: files: expected a non-empty mapping of role -> path. "
            "Fix: pass e.g. {'keystore': '/etc/cassandra/keystore.p12'}"
        )
    for role, path in files.items():
        files_util.safe_name(role, "files role", node)
        if role == MANIFEST:
            raise SaltInvocationError(f"{node}: files role {role!r} is reserved. Fix: rename it")
        files_util.safe_path(path, f"files[{role}]", node)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise SaltInvocationError(f"{node}: keep={keep!r}: must be an integer >= 1")

    created = _utc(now)
    try:
        _private_dir(backup_dir)
        backup_id = _new_backup_dir(backup_dir, created)
    except OSError as exc:
        raise CommandExecutionError(
            f"{node}: {backup_dir}: cannot create backup directory: {exc.strerror}. "
            "Fix: check the parent directory exists and is writable"
        ) from exc
    target = os.path.join(backup_dir, backup_id)
    try:
        entries = {
            role: _snapshot(path, os.path.join(target, role)) for role, path in files.items()
        }
    except OSError as exc:
        raise CommandExecutionError(
            f"{node}: {exc.filename}: cannot back up: {exc.strerror}. "
            f"Fix: check permissions; the incomplete backup {target} has no manifest and is ignored"
        ) from exc
    manifest = {
        "backup_id": backup_id,
        "created": created.isoformat(),
        "node": node,
        "note": note,
        "files": entries,
    }
    payload = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    files_util.atomic_write(os.path.join(target, MANIFEST), payload, mode=0o600)
    _prune(backup_dir, keep, protect=backup_id, node=node)
    return manifest


def _prune(backup_dir: str, keep: int, *, protect: str, node: str) -> list[str]:
    """Delete complete backups beyond the ``keep`` newest; never ``protect``.

    Directories without a manifest are left alone: one may be a backup still being written.
    """
    removed = []
    for manifest in list_backups(backup_dir)[keep:]:
        backup_id = manifest["backup_id"]
        if backup_id == protect:
            continue
        files_util.safe_name(backup_id, "backup_id", node)
        try:
            shutil.rmtree(os.path.join(backup_dir, backup_id))
        except OSError as exc:
            raise CommandExecutionError(
                f"{node}: {backup_dir}/{backup_id}: cannot prune old backup: {exc.strerror}. "
                "Fix: check permissions on the backup directory"
            ) from exc
        removed.append(backup_id)
    return removed


def _read_manifest(backup_dir: str, backup_id: str) -> dict | None:
    """The manifest of one backup, or ``None`` if absent/invalid (incomplete backup)."""
    try:
        with open(os.path.join(backup_dir, backup_id, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError):
        return None
    valid = (
        isinstance(manifest, dict)
        and manifest.get("backup_id") == backup_id
        and isinstance(manifest.get("files"), dict)
    )
    return manifest if valid else None


def list_backups(backup_dir: str) -> list[dict]:
    """Manifests of complete backups, newest first."""
    try:
        names = os.listdir(backup_dir)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise CommandExecutionError(f"{backup_dir}: cannot list backups: {exc.strerror}") from exc
    ids = sorted((n for n in names if _BACKUP_ID.fullmatch(n)), key=_sort_key, reverse=True)
    manifests = (_read_manifest(backup_dir, backup_id) for backup_id in ids)
    return [manifest for manifest in manifests if manifest is not None]


def latest(backup_dir: str, node: str) -> dict:
    """The newest complete backup's manifest."""
    backups = list_backups(backup_dir)
    if not backups:
        raise CommandExecutionError(
            f"{node}: no backup in {backup_dir}; run certdeploy.backup first"
        )
    return backups[0]


def get(backup_dir: str, backup_id: str, node: str) -> dict:
    """The manifest of ``backup_id`` (validated first: it becomes a path component)."""
    files_util.safe_name(backup_id, "backup_id", node)
    backups = list_backups(backup_dir)
    for manifest in backups:
        if manifest["backup_id"] == backup_id:
            return manifest
    available = ", ".join(m["backup_id"] for m in backups) or "none"
    raise SaltInvocationError(
        f"{node}: backup_id {backup_id!r} not found in {backup_dir}. "
        f"Fix: use one of the available ids: {available}"
    )


def _check_entry(role, entry) -> str | None:
    """A structural problem with one manifest entry (a tampered manifest must not steer
    restore into writing arbitrary paths), or ``None``."""
    try:
        files_util.safe_name(role, "role", "manifest")
        if not isinstance(entry, dict):
            return f"{role}: manifest entry is not a mapping"
        files_util.safe_path(entry.get("path"), f"{role}.path", "manifest")
        if entry.get("present"):
            int(str(entry.get("mode")), 8)
    except SaltInvocationError as exc:
        return f"{role}: {exc}"
    except ValueError:
        return f"{role}: invalid mode {entry.get('mode')!r} in manifest"
    return None


def verify(backup_dir, manifest) -> list[str]:
    """Problems that make a backup unusable: bad manifest entries, copies missing or whose
    sha256 differs from the manifest. Empty list = restorable."""
    backup_id = manifest.get("backup_id") if isinstance(manifest, dict) else None
    try:
        files_util.safe_name(backup_id, "backup_id", "manifest")
    except SaltInvocationError:
        return [f"manifest: invalid backup_id {backup_id!r}"]
    entries = manifest.get("files")
    if not isinstance(entries, dict):
        return [f"{backup_id}: manifest has no 'files' mapping"]
    problems = []
    for role, entry in entries.items():
        problem = _check_entry(role, entry)
        if problem:
            problems.append(problem)
            continue
        if not entry.get("present"):
            continue
        copy = os.path.join(backup_dir, backup_id, role)
        digest = files_util.sha256_file(copy)
        if digest is None:
            problems.append(f"{role}: copy missing ({copy})")
        elif digest != entry.get("sha256"):
            problems.append(f"{role}: sha256 mismatch ({copy}: {digest} != {entry.get('sha256')})")
    return problems


def _load_copies(backup_dir: str, manifest: dict, node: str) -> dict[str, bytes]:
    """Read every saved copy into memory and re-check its hash, so a copy changing after
    verify() still cannot cause a partial restore."""
    copies = {}
    for role, entry in manifest["files"].items():
        if not entry.get("present"):
            continue
        copy = os.path.join(backup_dir, manifest["backup_id"], role)
        try:
            with open(copy, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise CommandExecutionError(
                f"{node}: {copy}: cannot read backup copy: {exc.strerror}; nothing was changed"
            ) from exc
        if files_util.sha256_bytes(data) != entry["sha256"]:
            raise CommandExecutionError(
                f"{node}: {copy}: changed since verification; nothing was changed. "
                "Fix: restore another backup"
            )
        copies[role] = data
    return copies


def restore(backup_dir: str, manifest: dict, *, node: str) -> dict:
    """Put every saved file back at its recorded path with its recorded mode/owner/group.

    Refuses (changing nothing) if the backup is corrupt. Roles recorded as absent are left
    alone. Returns ``{"restored": [paths changed], "unchanged": [paths]}``.
    """
    problems = verify(backup_dir, manifest)
    if problems:
        raise CommandExecutionError(
            f"{node}: backup {manifest.get('backup_id')!r} in {backup_dir} is corrupt; "
            f"nothing was changed: {'; '.join(problems)}. "
            "Fix: restore another backup (list them with certdeploy.backups)"
        )
    copies = _load_copies(backup_dir, manifest, node)
    result = {"restored": [], "unchanged": []}
    for role, data in copies.items():
        entry = manifest["files"][role]
        try:
            changed = files_util.atomic_write(
                entry["path"],
                data,
                mode=int(entry["mode"], 8),
                owner=entry.get("owner"),
                group=entry.get("group"),
            )
        except (CommandExecutionError, SaltInvocationError) as exc:
            done = ", ".join(result["restored"]) or "none"
            raise CommandExecutionError(
                f"{node}: restore of backup {manifest['backup_id']} stopped at {entry['path']} "
                f"({exc}); already restored: {done}. Fix: correct the cause and run the "
                "restore again (it is idempotent)"
            ) from exc
        result["restored" if changed else "unchanged"].append(entry["path"])
    return result
