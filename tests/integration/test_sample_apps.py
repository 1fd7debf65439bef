"""``python -m sandbox apps start|stop`` (also ``up --apps``): the sandbox's two sample client
applications, a Python and a java-driver app, each serving QUORUM requests under its own
certificate identity, which every node sees in ``system_views.clients``; and the pillar of
their targets, which certdeploy loads as client targets. Real processes, real nodes."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from certdeploy_core import clients
from certdeploy_core import target as certdeploy_target

from sandbox import apps as sample_apps
from sandbox.rig import REPO

pytestmark = pytest.mark.rig


def _sandbox(rig, *args):
    cmd = [sys.executable, "-m", "sandbox", "--dir", str(rig.root), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=180)


def test_apps_start_serve_under_their_roles_and_stop(rig):
    ret = _sandbox(rig, "apps", "start")
    try:
        assert ret.returncode == 0, ret.stdout + ret.stderr
        hosts = [n.address for n in rig.all_nodes()]
        deadline = time.monotonic() + 30
        while True:
            seen = clients.roles(
                clients.connections(hosts, rig.cql_context()),
                lambda role: str(role) in ("shop_g1", "ledger_g1"),
            )
            if all(set(roles) == {"shop_g1", "ledger_g1"} for roles in seen.values()):
                break
            assert time.monotonic() < deadline, seen
            time.sleep(0.5)
        pillar = json.loads((rig.root / "apps" / "apps.json").read_text())
        for name, entry in pillar.items():
            data = {"certdeploy": {"targets": {name: entry["target"]}}}
            target = certdeploy_target.load_target(data, name, entry["minion"])
            assert target.profile == "client" and target.role_for("g1") == f"{name}_g1"
            status = json.loads((rig.root / "apps" / name / "status.json").read_text())
            assert status["ok"] > 0 and status["failed"] == 0, status
    finally:
        stopped = _sandbox(rig, "apps", "stop")
    assert stopped.returncode == 0 and "shop" in stopped.stdout and "ledger" in stopped.stdout
    for name, _, _ in sample_apps.APPS:
        pid = json.loads((rig.root / "apps" / name / "status.json").read_text())["pid"]
        deadline = time.monotonic() + 20
        while sample_apps._read(rig.root / "apps" / name / "status.json") and _alive(pid):
            assert time.monotonic() < deadline, f"{name} (pid {pid}) still runs"
            time.sleep(0.3)


def _alive(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return not stat.split(") ", 1)[1].startswith("Z")
