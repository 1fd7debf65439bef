"""What to do when the beacon reports a node unhealthy (``certdeploy/health/failed``): roll
back only a node certdeploy itself deployed to recently, and never while a rollout holds its
cluster; otherwise alert. A pure decision: the runner does the calls."""

from __future__ import annotations

from . import job as jobs


def decide(record: dict | None, lock: dict | None, now: float, window: float) -> tuple[str, str]:
    """``("rollback", why)`` or ``("alert", why)``.

    ``record``: the node's last deployment record (``outcome``, ``epoch``); ``lock``: the
    cluster's lock holder, if any; ``window``: ``auto_rollback_seconds``.
    """
    if lock and not jobs.is_stale(lock):
        return "alert", "rollout in progress"
    if not record or record.get("outcome") != "deployed":
        return "alert", "no certdeploy deployment within the window"
    age = now - float(record.get("epoch") or 0)
    if age > window:
        return "alert", "no certdeploy deployment within the window"
    return "rollback", f"certdeploy deployed {age:.0f}s ago (window {window:.0f}s)"
