"""The health-failed policy: roll back only what certdeploy itself just deployed, never
during a rollout; otherwise alert."""

from __future__ import annotations

import os
import socket

import pytest
from certdeploy_core import health_policy

NOW, WINDOW = 1_800_000_000.0, 600.0
LIVE_LOCK = {"job_id": "j", "host": socket.gethostname(), "pid": os.getpid()}
DEAD_LOCK = {"job_id": "j", "host": socket.gethostname(), "pid": 2**22 + 7}


@pytest.mark.parametrize(
    "record, lock, action, words",
    [
        ({"outcome": "deployed", "epoch": NOW - 60}, None, "rollback", "deployed 60s ago"),
        ({"outcome": "deployed", "epoch": NOW - 60}, DEAD_LOCK, "rollback", "window 600s"),
        ({"outcome": "deployed", "epoch": NOW - 60}, LIVE_LOCK, "alert", "rollout in progress"),
        ({"outcome": "deployed", "epoch": NOW - 601}, None, "alert", "within the window"),
        ({"outcome": "rolled_back", "epoch": NOW - 5}, None, "alert", "within the window"),
        (None, None, "alert", "within the window"),
        ({}, None, "alert", "within the window"),
    ],
    ids=["recent", "stale-lock", "rollout-running", "too-old", "not-deployed", "none", "empty"],
)
def test_decide(record, lock, action, words):
    got, why = health_policy.decide(record, lock, NOW, WINDOW)
    assert got == action and words in why, (got, why)
