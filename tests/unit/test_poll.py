"""The one poll loop, on a fake clock."""

from __future__ import annotations

from certdeploy_core.poll import poll


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_returns_as_soon_as_done_and_counts_attempts():
    clock, values = Clock(), iter([0, 0, 3])
    got = poll(
        lambda: next(values), timeout=10, done=lambda v: v == 3, clock=clock, sleep=clock.sleep
    )
    assert (got.ok, got.value, got.attempts, got.seconds) == (True, 3, 3, 2.0)


def test_keeps_the_last_error_and_gives_up_at_the_timeout():
    clock = Clock()

    def check():
        raise OSError("connection refused")

    got = poll(check, timeout=5, errors=(OSError,), clock=clock, sleep=clock.sleep)
    assert not got.ok and got.error == "connection refused" and got.value is None
    assert got.attempts == 6 and got.seconds == 5.0


def test_unlisted_errors_propagate():
    clock = Clock()

    def check():
        raise KeyError("bug")

    try:
        poll(check, timeout=5, errors=(OSError,), clock=clock, sleep=clock.sleep)
    except KeyError:
        return
    raise AssertionError("a bug must not be retried")


def test_the_wait_grows_to_max_interval_and_stops_at_the_timeout():
    clock, asked = Clock(), []

    def check():
        asked.append(clock.now)
        return False

    got = poll(check, timeout=6, interval=0.5, max_interval=2, clock=clock, sleep=clock.sleep)
    gaps = [round(b - a, 3) for a, b in zip(asked, asked[1:], strict=False)]
    # 0.5, then half as much again each time, capped at 2; the last wait ends at the timeout
    assert gaps == [0.5, 0.75, 1.125, 1.688, 1.938]
    assert not got.ok and got.seconds == 6.0 and got.attempts == 6
