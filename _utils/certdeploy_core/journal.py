"""The in-flight record of a deployment on its node: written after the backup and before the
first file changes, removed once the deployment has ended (deployed or rolled back).

A deployment killed half-way (the minion SIGKILLed, the host rebooted) leaves it behind. Its
presence means the managed files may be mixed, some new and some old; the next ``deploy``,
``recover`` or a rollout's ``resume`` first puts the node back on one certificate from it.
Public facts only: the backup id and fingerprints, never key material.
"""

from __future__ import annotations

import json
import os
import time

from . import files


def path(target, cachedir: str) -> str:
    return os.path.join(cachedir, "certdeploy", f"{target.name}-inflight.json")


def begin(target, cachedir: str, *, backup_id: str, old: str | None, new: str) -> dict:
    entry = {
        "backup_id": backup_id,
        "from": old,
        "to": new,
        "started": time.time(),
        # Who is deploying: a record whose process still runs is a deployment in flight,
        # not an interrupted one (the master that asked for it may have died meanwhile).
        "pid": os.getpid(),
        "pid_start": _process_start(os.getpid()),
    }
    where = path(target, cachedir)
    os.makedirs(os.path.dirname(where), mode=0o700, exist_ok=True)
    files.atomic_write(where, json.dumps(entry).encode(), mode=0o600, always=True)
    return entry


def read(target, cachedir: str) -> dict | None:
    try:
        with open(path(target, cachedir)) as fh:
            entry = json.load(fh)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # Torn or unreadable: still an interrupted deployment, of an unknown backup.
        return {"backup_id": None, "from": None, "to": None, "started": None}
    return entry if isinstance(entry, dict) else None


def end(target, cachedir: str) -> None:
    try:
        os.unlink(path(target, cachedir))
    except FileNotFoundError:
        pass


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), so
    that a reused pid is not taken for the deploying process; ``None`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def running(entry: dict | None) -> bool:
    """The deployment that wrote ``entry`` is still running (in another process)."""
    pid = (entry or {}).get("pid")
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    start = _process_start(pid)
    return start is not None and start == entry.get("pid_start")


def wait_ended(target, cachedir: str, timeout: float, interval: float = 0.5) -> dict | None:
    """Until no deployment of ``target`` is in flight in another process, or ``timeout``:
    the in-flight record then (``None``: the deployment ended and removed it)."""
    deadline = time.monotonic() + timeout
    entry = read(target, cachedir)
    while running(entry) and time.monotonic() < deadline:
        time.sleep(interval)
        entry = read(target, cachedir)
    return entry
