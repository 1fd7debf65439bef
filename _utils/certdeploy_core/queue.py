"""Renewal queue on the master: coalescing, maintenance windows, explicit ``not_before``.

The reactor only *enqueues* (fast, never blocks the reactor); the master's scheduler calls
``process_queue`` every few seconds, which starts a rollout for a cluster once its coalescing
window has passed, its maintenance window is open (or ``force``), ``not_before`` is reached,
and no other rollout holds the cluster lock. Renewals that arrive while a rollout runs stay
queued; nothing is dropped.

Windows (pillar ``certdeploy:maintenance_windows``, UTC), any entry that matches opens it:
    - {days: [mon, tue, ...], start: "01:00", end: "05:00"}   # weekly
    - {start: "2026-11-26T21:00:00Z", end: "2026-11-26T22:00:00Z"}   # one-off
No windows configured means always open.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import time

from salt.exceptions import SaltInvocationError

from . import files, timeutil

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


_parse_iso = timeutil.parse_iso


def parse_not_before(value) -> float | None:
    """A renewal's ``not_before``: epoch seconds (number or numeric string) or ISO 8601 (a
    trailing ``Z`` means UTC; no zone means UTC). ``None`` stays ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return timeutil.parse_iso(value).timestamp()
    except ValueError:
        raise SaltInvocationError(
            f"master: not_before: {value!r} is neither epoch seconds nor ISO 8601. "
            "Fix: pass e.g. not_before=2026-12-03T02:00:00Z"
        ) from None


def window_open(windows, now: float | None = None) -> tuple[bool, float | None]:
    """``(open, next_open_epoch)``; next_open is None when open now or never again."""
    if not windows:
        return True, None
    now_dt = dt.datetime.fromtimestamp(now or time.time(), dt.timezone.utc)
    candidates = []
    for window in windows:
        if "days" in window or len(str(window.get("start", ""))) <= 5:
            days = [d.lower()[:3] for d in window.get("days", DAYS)]
            start_t = dt.time.fromisoformat(window["start"])
            end_t = dt.time.fromisoformat(window["end"])
            for offset in range(-1, 8):  # -1: an overnight window that began yesterday
                day = (now_dt + dt.timedelta(days=offset)).date()
                if DAYS[day.weekday()] not in days:
                    continue
                start = dt.datetime.combine(day, start_t, dt.timezone.utc)
                end = dt.datetime.combine(day, end_t, dt.timezone.utc)
                if end <= start:
                    end += dt.timedelta(days=1)
                if start <= now_dt < end:
                    return True, None
                if start > now_dt:
                    candidates.append(start)
        else:
            start, end = _parse_iso(window["start"]), _parse_iso(window["end"])
            if start <= now_dt < end:
                return True, None
            if start > now_dt:
                candidates.append(start)
    return False, (min(candidates).timestamp() if candidates else None)


# ----------------------------------------------------------------------------- storage


def queue_dir(cachedir: str) -> str:
    return os.path.join(cachedir, "certdeploy", "queue")


@contextlib.contextmanager
def _locked(cachedir: str):
    os.makedirs(queue_dir(cachedir), mode=0o700, exist_ok=True)
    with open(os.path.join(queue_dir(cachedir), ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _path(cachedir: str, cluster: str) -> str:
    files.safe_name(cluster, "cluster", "master")
    return os.path.join(queue_dir(cachedir), f"{cluster}.json")


def _read(path: str) -> dict | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def pending(cachedir: str) -> list[dict]:
    directory = queue_dir(cachedir)
    entries = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        entry = _read(os.path.join(directory, name)) if name.endswith(".json") else None
        if entry is not None:
            entries.append(entry)
    return entries


def enqueue(
    cachedir, cluster, minions, *, not_before=None, force=False, options=None, now=None
) -> dict:
    """Add a renewal; merges with the cluster's pending entry (that is the coalescing).
    ``options``: the rollout's options (method, canary, on_failure ...) the rollout will run
    with; the latest caller that gives some wins. What gets deployed is the store's newest
    version (or the ext_pillar's ``pin``), read when the rollout starts."""
    now = now or time.time()
    with _locked(cachedir):
        path = _path(cachedir, cluster)
        entry = _read(path) or {
            "cluster": cluster,
            "minions": [],
            "first": now,
            "events": 0,
            "not_before": None,
            "force": False,
        }
        entry["minions"] = sorted(set(entry["minions"]) | set(minions))
        entry["events"] += 1
        entry["last"] = now
        entry.pop("versions", None)  # written by older versions; nothing read it
        if options:
            entry["options"] = dict(options)
        if not_before:
            entry["not_before"] = max(float(not_before), entry.get("not_before") or 0)
        entry["force"] = bool(entry.get("force") or force)
        files.atomic_write(path, json.dumps(entry).encode(), mode=0o600)
        return entry


def take(cachedir: str, cluster: str) -> dict | None:
    """Remove and return the cluster's entry (exactly one caller gets it)."""
    with _locked(cachedir):
        path = _path(cachedir, cluster)
        entry = _read(path)
        if entry is not None:
            os.unlink(path)
        return entry


def put_back(cachedir: str, entry: dict) -> dict:
    """Return a taken entry to the queue (its rollout could not start: another rollout took
    the cluster's lock first), merged with whatever was queued for the cluster meanwhile."""
    with _locked(cachedir):
        path = _path(cachedir, entry["cluster"])
        now = _read(path)
        if now is not None:
            entry = {
                **entry,
                "minions": sorted(set(entry["minions"]) | set(now["minions"])),
                "events": entry["events"] + now["events"],
                "last": max(entry.get("last", 0), now.get("last", 0)),
                "options": now.get("options") or entry.get("options"),
                "force": bool(entry.get("force") or now.get("force")),
            }
        files.atomic_write(path, json.dumps(entry).encode(), mode=0o600)
        return entry


def ready(entry: dict, *, coalesce_seconds: float, windows=None, now=None) -> tuple[bool, str]:
    """Whether a queued entry may start now, and why not."""
    now = now or time.time()
    if now < entry["first"] + coalesce_seconds:
        return False, f"coalescing until {entry['first'] + coalesce_seconds:.0f}"
    if entry.get("not_before") and now < entry["not_before"]:
        return False, f"not before {entry['not_before']:.0f}"
    is_open, next_open = window_open(windows, now)
    if not is_open and not entry.get("force"):
        return False, f"maintenance window closed; opens at {next_open}"
    return True, "window overridden by force" if not is_open else "ready"
