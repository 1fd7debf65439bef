"""The in-flight record tells a deployment still running in another process (its master may
have died; ``resume`` must let it end) from one that was interrupted (its process is gone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types

from certdeploy_core import journal

TARGET = types.SimpleNamespace(name="cassandra")


def claim(cachedir, pid):
    """Hand the in-flight record to ``pid``, as if that process had begun the deployment."""
    entry = journal.read(TARGET, cachedir)
    entry.update(pid=pid, pid_start=journal._process_start(pid))
    with open(journal.path(TARGET, cachedir), "w") as fh:
        json.dump(entry, fh)


def test_a_record_of_a_live_process_is_running_until_it_exits(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        entry = journal.begin(TARGET, str(tmp_path), backup_id="b1", old="a" * 64, new="b" * 64)
        entry = {**entry, "pid": child.pid, "pid_start": journal._process_start(child.pid)}
        assert entry["pid_start"] is not None
        assert journal.running(entry)
        # The same pid with another start time is another process: not the deployment.
        assert not journal.running({**entry, "pid_start": "1"})
    finally:
        child.kill()
        child.wait()
    assert not journal.running(entry)


def test_the_own_process_and_old_records_are_never_running(tmp_path):
    entry = journal.begin(TARGET, str(tmp_path), backup_id="b1", old=None, new="b" * 64)
    assert entry["pid"] == os.getpid() and not journal.running(entry)
    assert not journal.running({"backup_id": "b1", "from": None, "to": None, "started": 1.0})
    assert not journal.running(None)


def test_wait_ended_returns_once_the_deployment_removed_its_record(tmp_path):
    cachedir = str(tmp_path)
    journal.begin(TARGET, cachedir, backup_id="b1", old=None, new="b" * 64)
    script = "import time, os, sys; time.sleep(0.6); os.unlink(sys.argv[1]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", script, journal.path(TARGET, cachedir)])
    try:
        claim(cachedir, child.pid)
        assert journal.wait_ended(TARGET, cachedir, timeout=20, interval=0.1) is None
    finally:
        child.kill()
        child.wait()


def test_wait_ended_gives_up_after_its_timeout(tmp_path):
    cachedir = str(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        journal.begin(TARGET, cachedir, backup_id="b1", old=None, new="b" * 64)
        claim(cachedir, child.pid)
        left = journal.wait_ended(TARGET, cachedir, timeout=0.3, interval=0.1)
        assert left is not None and journal.running(left)
    finally:
        child.kill()
        child.wait()
