"""The one place for time: every timestamp certdeploy writes is UTC, and a naive time is
taken to be UTC already (like the certificate times themselves)."""

from __future__ import annotations

import datetime as dt
import time

ISO = "%Y-%m-%dT%H:%M:%SZ"  # the format of returns, manifests and reports
STAMP = "%Y%m%dT%H%M%SZ"  # compact, sortable: job ids and report names


def utc(when: dt.datetime | None = None) -> dt.datetime:
    """``when`` as an aware UTC datetime (now when None; naive means UTC)."""
    if when is None:
        return dt.datetime.now(dt.timezone.utc)
    if when.tzinfo is None:
        return when.replace(tzinfo=dt.timezone.utc)
    return when.astimezone(dt.timezone.utc)


def iso_utc(when: dt.datetime) -> str:
    """``2026-11-26T20:15:51Z``."""
    return utc(when).strftime(ISO)


def parse_iso(text: str) -> dt.datetime:
    """ISO 8601 (a trailing ``Z`` allowed; no zone means UTC) as aware UTC. ``ValueError``
    when it is not ISO 8601."""
    return utc(dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")))


def epoch_iso(seconds: float) -> str:
    """Epoch seconds as ISO UTC."""
    return dt.datetime.fromtimestamp(float(seconds), tz=dt.timezone.utc).strftime(ISO)


def stamp(epoch: float | None = None) -> str:
    """``20261126T201551Z`` for ``epoch`` (default now)."""
    return time.strftime(STAMP, time.gmtime(time.time() if epoch is None else epoch))
