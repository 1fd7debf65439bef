"""Safe file primitives for certdeploy: name/path validation, hashes, metadata, atomic writes.

Everything here handles key material (keystores, passwords in cassandra.yaml), so nothing ever
logs or returns file *contents*: only hashes, sizes, modes and owners.
Pure functions; no Salt dunders.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import hashlib
import os
import pwd
import re
import secrets
import stat

from salt.exceptions import CommandExecutionError, SaltInvocationError

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024


def safe_name(value: str, field: str, node: str) -> str:
    """Return ``value`` if it is a plain file name (``[A-Za-z0-9._-]+``, no leading dot, no
    ``..``); it becomes a path component (backup ids, roles), so anything else is refused."""
    ok = (
        isinstance(value, str)
        and _SAFE_NAME.fullmatch(value) is not None
        and not value.startswith(".")
        and ".." not in value
    )
    if not ok:
        raise SaltInvocationError(
            f"{node}: {field}: invalid name {value!r}. Fix: use only letters, digits, '.', '_' "
            "and '-', not starting with '.' and without '..'"
        )
    return value


def safe_path(path: str, field: str, node: str) -> str:
    """Return ``path`` if it is absolute, already normalised and free of ``..`` and NUL."""
    problem = None
    if not isinstance(path, str) or not path:
        problem = "must be a non-empty string"
    elif "\x00" in path:
        problem = "contains a NUL byte"
    elif not os.path.isabs(path):
        problem = "is not absolute"
    elif ".." in path.split("/"):
        problem = "contains a '..' component"
    elif os.path.normpath(path) != path:
        problem = f"is not normalised (normalised form: {os.path.normpath(path)!r})"
    if problem:
        raise SaltInvocationError(
            f"{node}: {field}: path {path!r} {problem}. Fix: give an absolute, normalised path"
        )
    return path


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path) -> str | None:
    """Hex SHA-256 of the file at ``path``; ``None`` when it does not exist."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"{path}: cannot read: {exc.strerror}") from exc
    return digest.hexdigest()


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # uid without a passwd entry: keep the number so it can be restored
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def file_meta(path) -> dict | None:
    """``{"sha256", "size", "mode" ("0600"), "owner", "group", "mtime"}``; ``None`` if missing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"{path}: cannot stat: {exc.strerror}") from exc
    return {
        "sha256": sha256_file(path),
        "size": st.st_size,
        "mode": format(stat.S_IMODE(st.st_mode), "04o"),
        "owner": _user_name(st.st_uid),
        "group": _group_name(st.st_gid),
        "mtime": st.st_mtime,
    }


def _uid(owner: str | None, path) -> int:
    """Numeric uid for ``owner`` (-1 = leave unchanged, as os.chown expects)."""
    return _numeric_id(owner, path, "user", "owner", lambda name: pwd.getpwnam(name).pw_uid)


def _gid(group: str | None, path) -> int:
    return _numeric_id(group, path, "group", "group", lambda name: grp.getgrnam(name).gr_gid)


def _numeric_id(name, path, kind: str, key: str, lookup) -> int:
    if name is None:
        return -1
    try:
        return lookup(name)
    except KeyError:
        if str(name).isdigit():  # recorded numerically by file_meta for unnamed ids
            return int(name)
        raise SaltInvocationError(
            f"{path}: unknown {kind} {name!r}. Fix: create the {kind} or correct the {key}"
        ) from None


def _already_current(path, data: bytes, mode: int, uid: int, gid: int) -> bool:
    """True when ``path`` is a regular file with exactly these bytes, mode and ids."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode) or st.st_size != len(data):
        return False
    if stat.S_IMODE(st.st_mode) != mode:
        return False
    if (uid != -1 and st.st_uid != uid) or (gid != -1 and st.st_gid != gid):
        return False
    return sha256_file(path) == sha256_bytes(data)


def mount_point(path: str) -> str:
    """The mount point of the filesystem holding ``path`` (or its nearest existing parent)."""
    path = os.path.realpath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    dev = os.stat(path).st_dev
    while path != os.path.dirname(path):
        parent = os.path.dirname(path)
        if os.stat(parent).st_dev != dev:
            return path
        path = parent
    return path


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (a crash after os.replace could otherwise lose it)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path,
    data: bytes,
    *,
    mode: int = 0o600,
    owner: str | None = None,
    group: str | None = None,
    always: bool = False,
) -> bool:
    """Replace ``path`` with ``data`` atomically; readers see the old or the new file, never a
    torn one. Returns ``False`` (and writes nothing) when the file already matches, unless
    ``always`` (e.g. a metrics textfile whose mtime tells its freshness).

    The temp file is created 0600 with O_EXCL in the same directory (same filesystem, so
    os.replace is atomic) and only gets its final mode/owner after the bytes are on disk.
    """
    path = os.fspath(path)
    if not isinstance(data, bytes):
        raise SaltInvocationError(f"{path}: atomic_write needs bytes, got {type(data).__name__}")
    uid, gid = _uid(owner, path), _gid(group, path)
    if os.path.islink(path):
        # os.replace would swap the link for a plain file and silently break the layout.
        raise CommandExecutionError(
            f"{path}: is a symlink; refusing to replace it. "
            f"Fix: manage the real file ({os.path.realpath(path)}) instead"
        )
    try:
        if not always and _already_current(path, data, mode, uid, gid):
            return False
    except OSError as exc:
        raise CommandExecutionError(f"{path}: cannot inspect: {exc.strerror}") from exc

    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.certdeploy-{secrets.token_hex(6)}")
    fd = None
    try:
        # 0600 at creation: the bytes are never readable by others, whatever the umask.
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o600)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        st = os.fstat(fd)
        # chown only when needed: an unprivileged caller may not chown even to itself.
        if (uid != -1 and uid != st.st_uid) or (gid != -1 and gid != st.st_gid):
            os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # after chown, which may clear setuid/setgid bits
        os.close(fd)
        fd = None
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException as exc:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            mount = mount_point(directory)
            raise CommandExecutionError(
                f"{path}: write failed: {exc.strerror} on the filesystem mounted on {mount}; "
                f"the file was left as it was. Fix: free space on {mount} (df -h {directory}), "
                "then deploy again"
            ) from exc
        if isinstance(exc, OSError):
            raise CommandExecutionError(
                f"{path}: write failed: {exc.strerror or exc}. "
                "Fix: check the directory exists, is writable and the disk has space"
            ) from exc
        raise
    return True
