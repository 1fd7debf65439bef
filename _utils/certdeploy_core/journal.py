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
    entry = {"backup_id": backup_id, "from": old, "to": new, "started": time.time()}
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
