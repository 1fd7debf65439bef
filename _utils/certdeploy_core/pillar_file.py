"""The agentless pillar hand-over: a private file that lives for one call.

salt-ssh runs a plain module call as ``salt-call --local`` on the target, where ``__pillar__``
is empty. The master-side wrapper (``_wrapper/certdeploy.py``) therefore writes this target's
``certdeploy`` pillar to a 0600 file in a 0700 directory, copies it into the target's 0700
thin dir and names it in the call (``pillar_file=<path>``). The execution module reads it here
and deletes it at once; the wrapper deletes both copies again in ``finally``.

The file never travels in argv, environment variables, ``minion_opts`` or the roster: only
its path does.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
import time

from salt.exceptions import CommandExecutionError

PREFIX = "certdeploy-pillar-"
# Marks pillar that came through this file: the call runs agentless (no minion event bus,
# the master fires the events; no minion cachedir outside the thin dir).
AGENTLESS = "__certdeploy_agentless__"
# A file is read within seconds of its copy; one older than this was left by a call that
# was killed (SIGKILL skips ``finally``) and is swept by the next call on that side.
STALE_SECONDS = 30


def payload(pillar: dict) -> dict:
    """What is shipped: this target's ``certdeploy`` pillar and nothing else."""
    return {"certdeploy": pillar.get("certdeploy") or {}, AGENTLESS: True}


def remote_path(directory: str) -> str:
    return os.path.join(directory, f"{PREFIX}{secrets.token_hex(8)}.json")


def write_local(directory: str, data: dict) -> str:
    """Write ``data`` to a new 0600 file in ``directory`` (made 0700). Files older than
    :data:`STALE_SECONDS` left by a killed call are swept first."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    sweep(directory)
    path = remote_path(directory)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
    except BaseException:
        remove(path)
        raise
    return path


def sweep(directory: str, older_than: float = STALE_SECONDS) -> list[str]:
    removed = []
    now = time.time()
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                if name.startswith(PREFIX) and now - os.lstat(path).st_mtime > older_than:
                    os.unlink(path)
                    removed.append(path)
    return removed


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def read_and_remove(path: str, node: str) -> dict:
    """The pillar in ``path``, which is deleted whatever happens. Refused (and still deleted)
    unless it is a regular file owned by this user, mode 0600 (no group or other bits), named
    like a certdeploy pillar file and holding a JSON object with ``certdeploy``."""
    where = f"{node}: pillar_file={path}"
    if not os.path.basename(path).startswith(PREFIX):
        raise CommandExecutionError(
            f"{where}: not a certdeploy pillar file (its name must start with {PREFIX}). "
            "Fix: call through the salt-ssh wrapper, which ships the pillar itself"
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise CommandExecutionError(
            f"{where}: cannot open: {exc.strerror}. Fix: call through the salt-ssh wrapper "
            "(salt-ssh <id> certdeploy.<function>), which ships a fresh file per call"
        ) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise CommandExecutionError(
                f"{where}: not a regular file owned by uid {os.geteuid()}. Fix: check the "
                "roster user and the thin_dir"
            )
        if info.st_mode & 0o077:
            raise CommandExecutionError(
                f"{where}: mode {stat.S_IMODE(info.st_mode):04o}, must be 0600. Fix: check "
                "the target's umask and scp; the file was deleted unread"
            )
        with os.fdopen(fd, encoding="utf-8") as handle:
            fd = -1
            try:
                data = json.load(handle)
            except ValueError as exc:
                raise CommandExecutionError(
                    f"{where}: not JSON ({exc.msg}). Fix: re-run the call"
                ) from exc
    finally:
        if fd >= 0:
            os.close(fd)
        remove(path)
        sweep(os.path.dirname(path))
    if not isinstance(data, dict) or not isinstance(data.get("certdeploy"), dict):
        raise CommandExecutionError(
            f"{where}: holds no certdeploy pillar. Fix: give {node} a certdeploy pillar on "
            "the master (pillar top or the store)"
        )
    return data
