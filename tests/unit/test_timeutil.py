"""Every timestamp is UTC; a naive time is UTC already."""

from __future__ import annotations

import datetime as dt

import pytest
from certdeploy_core import timeutil

UTC = dt.timezone.utc


def test_utc_iso_and_parse_round_trip():
    naive = dt.datetime(2026, 12, 3, 2, 0)
    aware = dt.datetime(2026, 12, 3, 3, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert timeutil.utc(naive) == timeutil.utc(aware) == dt.datetime(2026, 12, 3, 2, tzinfo=UTC)
    assert timeutil.iso_utc(aware) == "2026-12-03T02:00:00Z"
    assert timeutil.parse_iso("2026-12-03T02:00:00Z") == timeutil.utc(naive)
    assert timeutil.parse_iso("2026-12-03T02:00:00") == timeutil.utc(naive)
    assert timeutil.epoch_iso(1796263200) == "2026-12-03T02:00:00Z"
    assert timeutil.stamp(1796263200) == "20261203T020000Z"
    assert timeutil.utc().tzinfo is UTC


def test_parse_refuses_what_is_not_iso():
    with pytest.raises(ValueError):
        timeutil.parse_iso("tomorrow")
