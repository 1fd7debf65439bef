"""Renewal queue: coalescing, maintenance windows, not_before, exactly-once take."""

import datetime as dt

import pytest
from certdeploy_core import queue
from salt.exceptions import SaltInvocationError

T0 = dt.datetime(2026, 11, 26, 20, 0, tzinfo=dt.timezone.utc).timestamp()  # a Thursday


def test_renewals_of_one_cluster_coalesce(tmp_path):
    queue.enqueue(str(tmp_path), "prod", ["a"], now=T0)
    queue.enqueue(str(tmp_path), "prod", ["b", "a"], options={"method": "restart"}, now=T0 + 2)
    (entry,) = queue.pending(str(tmp_path))
    assert entry["minions"] == ["a", "b"] and entry["events"] == 2
    assert entry["first"] == T0 and entry["options"] == {"method": "restart"}


def test_take_is_exactly_once(tmp_path):
    queue.enqueue(str(tmp_path), "prod", ["a"], now=T0)
    assert queue.take(str(tmp_path), "prod")["minions"] == ["a"]
    assert queue.take(str(tmp_path), "prod") is None
    assert queue.pending(str(tmp_path)) == []


def test_a_taken_entry_put_back_merges_with_renewals_queued_meanwhile(tmp_path):
    queue.enqueue(str(tmp_path), "prod", ["cass1", "cass2"], now=100)
    taken = queue.take(str(tmp_path), "prod")
    queue.enqueue(str(tmp_path), "prod", ["cass3"], now=105)  # while its rollout was refused
    back = queue.put_back(str(tmp_path), taken)
    assert back["minions"] == ["cass1", "cass2", "cass3"] and back["events"] == 2
    assert back["first"] == 100  # it keeps its place: coalescing is not restarted
    assert queue.pending(str(tmp_path)) == [back]


def test_ready_waits_for_coalescing_not_before_and_window():
    entry = {"first": T0, "not_before": None, "force": False}
    assert not queue.ready(entry, coalesce_seconds=30, now=T0 + 10)[0]
    assert queue.ready(entry, coalesce_seconds=30, now=T0 + 31) == (True, "ready")
    later = {**entry, "not_before": T0 + 100}
    assert not queue.ready(later, coalesce_seconds=30, now=T0 + 31)[0]
    weekly = [{"days": ["thu"], "start": "21:00", "end": "22:00"}]
    ok, why = queue.ready(entry, coalesce_seconds=0, windows=weekly, now=T0)
    assert not ok and "window closed" in why
    assert queue.ready(entry, coalesce_seconds=0, windows=weekly, now=T0 + 3600)[0]
    forced = {**entry, "force": True}
    assert queue.ready(forced, coalesce_seconds=0, windows=weekly, now=T0) == (
        True,
        "window overridden by force",
    )


def test_window_open_weekly_one_off_and_overnight():
    assert queue.window_open([], T0) == (True, None)
    one_off = [{"start": "2026-11-26T20:30:00Z", "end": "2026-11-26T21:00:00Z"}]
    assert queue.window_open(one_off, T0) == (False, T0 + 1800)
    assert queue.window_open(one_off, T0 + 1800)[0]
    overnight = [{"days": ["thu"], "start": "19:00", "end": "02:00"}]
    assert queue.window_open(overnight, T0)[0]
    assert queue.window_open(overnight, T0 + 5 * 3600)[0]  # 01:00 Friday, still open


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        (1800000000, 1800000000.0),
        ("1800000000.5", 1800000000.5),
        ("2026-12-03T02:00:00Z", 1796263200.0),
        ("2026-12-03T02:00:00", 1796263200.0),  # no zone: UTC, not the master's local time
        ("2026-12-03T03:00:00+01:00", 1796263200.0),
    ],
)
def test_not_before_parsing(value, expected):
    assert queue.parse_not_before(value) == expected


def test_not_before_garbage_is_refused_with_a_fix():
    with pytest.raises(SaltInvocationError, match="not_before: 'tomorrow'.*Fix: "):
        queue.parse_not_before("tomorrow")
