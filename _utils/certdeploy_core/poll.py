"""One poll loop for everything that waits: call ``check`` until ``done`` says its value is
final or the time is up, keeping the last value and the last error. Pure; the clock and the
sleep are parameters so tests need not wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Polled:
    ok: bool  # ``done`` accepted the last value
    value: Any  # the last value ``check`` returned (None if it only raised)
    error: str | None  # the last exception's text, if the last attempt raised
    attempts: int
    seconds: float


def poll(
    check: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 1.0,
    max_interval: float | None = None,
    done: Callable[[Any], bool] = bool,
    errors: tuple = (Exception,),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Polled:
    """At least one attempt; ``errors`` raised by ``check`` count as "not yet". With
    ``max_interval`` the wait grows by half after every attempt, up to that: a check that
    costs something is asked often at first and less often the longer the wait."""
    started = clock()
    attempts, value, error = 0, None, None
    while True:
        attempts += 1
        try:
            value, error = check(), None
        except errors as exc:
            value, error = None, str(exc) or type(exc).__name__
        elapsed = clock() - started
        if error is None and done(value):
            return Polled(True, value, None, attempts, round(elapsed, 3))
        if elapsed >= timeout:
            return Polled(False, value, error, attempts, round(elapsed, 3))
        sleep(min(interval, max(0.0, timeout - elapsed)))
        if max_interval is not None:
            interval = min(max_interval, interval * 1.5)
