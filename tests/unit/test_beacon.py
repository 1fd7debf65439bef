"""The certdeploy beacon, loaded as Salt would (a module with injected dunders) over the real
execution module (``certdeploy.health`` through Salt's minion loader), run against a real local
TLS server: events with the reactor's exact tags, and the textfile metrics."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from certdeploy_core import node as certdeploy_node
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_health_check import TLSServer, closed_port, install


def minion_functions(opts, pillar):
    """The real ``certdeploy`` execution module, loaded by Salt's minion loader."""
    import salt.config
    import salt.loader

    full = salt.config.minion_config(None)
    full.update(
        opts,
        file_client="local",
        pillar=pillar,
        module_dirs=[str(REPO / "_modules")],
        utils_dirs=[str(REPO / "_utils")],
    )
    utils = salt.loader.utils(full)
    return salt.loader.minion_mods(full, utils=utils, whitelist=["certdeploy", "cmd", "service"])


def load_beacon(opts, pillar, salt):
    spec = importlib.util.spec_from_file_location(
        "certdeploy_beacon_under_test", REPO / "_beacons" / "certdeploy.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.__opts__ = opts
    module.__pillar__ = pillar
    module.__salt__ = salt
    return module


class Events:
    """Stands in for ``__salt__["event.send"]``: records what was fired."""

    def __init__(self, fail=False):
        self.sent = []
        self.fail = fail

    def __call__(self, tag, data=None, **kwargs):
        if self.fail:
            raise RuntimeError("master unreachable")
        self.sent.append((tag, data))
        return True

    def tags(self):
        return [tag for tag, _ in self.sent]


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.issue("srv", ips=("127.0.0.1",), key_type="ec256")


@pytest.fixture
def server(tmp_path, leaf):
    srv = TLSServer(tmp_path, leaf)
    yield srv
    srv.close()


@pytest.fixture
def rig(tmp_path, root):
    """Build (target, beacon module, recorder, textfile path) for a leaf on a port."""

    def make(leaf, port, fail=False):
        target, pillar = install(tmp_path, leaf, root, port)
        events = Events(fail=fail)
        opts = {"id": "cass1-minion", "cachedir": str(tmp_path / "cache")}
        funcs = minion_functions(opts, pillar)
        salt = {
            "event.send": events,
            "certdeploy.health": funcs["certdeploy.health"],
            "certdeploy.targets": funcs["certdeploy.targets"],
        }
        module = load_beacon(opts, pillar, salt)
        return target, module, events, str(tmp_path / "textfile" / "certdeploy.prom")

    return make


def config(textfile, **extra):
    items = [{"interval": 60}, {"target": "cassandra"}, {"warn_days": 30}, {"textfile": textfile}]
    items += [{k: v} for k, v in extra.items()]
    return [*items, {"_beacon_name": "certdeploy"}]  # Salt appends this before calling


def families(path) -> dict:
    with open(path) as fh:
        return {
            f.name: [(s.labels, s.value) for s in f.samples]
            for f in text_string_to_metric_families(fh.read())
        }


def test_virtual_and_validate(rig, leaf):
    _, beacon, _, textfile = rig(leaf, 1)
    assert beacon.__virtual__() == "certdeploy"
    assert beacon.validate(config(textfile))[0] is True
    assert beacon.validate({"interval": 60, "target": ["cassandra"], "whatever": 1})[0] is True
    assert beacon.validate([{"unknown_key": "fine"}])[0] is True
    for bad in (
        [{"interval": "60"}],
        [{"interval": 1.5}],
        [{"interval": True}],
        [{"interval": 0}],
        [{"warn_days": "30"}],
        [{"target": 3}],
        [{"textfile": "relative.prom"}],
        [{"textfile": "/var/lib/node_exporter/textfile/certdeploy.txt"}],
        "interval: 60",
        ["interval"],
    ):
        ok, message = beacon.validate(bad)
        assert ok is False and message, bad


def test_matching_node_fires_nothing_and_writes_metrics(rig, server, leaf):
    target, beacon, events, textfile = rig(leaf, server.port)
    assert beacon.beacon(config(textfile)) == []
    assert events.sent == []
    assert stat.S_IMODE(os.stat(textfile).st_mode) == 0o644
    got = families(textfile)
    labels = {"node": "cass1", "target": "cassandra", "cluster": "Test Cluster"}
    assert got["certdeploy_served_matches_expected"] == [(labels, 1.0)]
    assert got["certdeploy_cert_expiry_timestamp_seconds"] == [
        (labels, leaf.cert.not_valid_after_utc.timestamp())
    ]
    assert got["certdeploy_last_deployment_success"] == []  # no deployment recorded yet

    # After a recorded deployment the last-deployment metrics appear.
    host = certdeploy_node.Host(run=None, service=None, cachedir=beacon.__opts__["cachedir"])
    certdeploy_node.record(target, host, {"outcome": "deployed"})
    beacon.beacon(config(textfile))
    got = families(textfile)
    assert got["certdeploy_last_deployment_success"] == [({**labels, "outcome": "deployed"}, 1.0)]
    ((_, when),) = got["certdeploy_last_deployment_timestamp_seconds"]
    assert when == certdeploy_node.last_record(target, host)["epoch"]


def test_mismatch_fires_health_failed(rig, server, leaf, ca, caplog):
    _, beacon, events, textfile = rig(leaf, server.port)
    other = ca.issue("other", ips=("127.0.0.1",), key_type="ec256")
    server.serve(other)
    with caplog.at_level(logging.DEBUG):
        returned = beacon.beacon(config(textfile))
    assert events.tags() == ["certdeploy/health/failed"]
    data = events.sent[0][1]
    assert data == {
        "node": "cass1",
        "target": "cassandra",
        "minion": "cass1-minion",
        "expected": leaf.fingerprint,
        "served": {"client": other.fingerprint, "internode": other.fingerprint},
        "reason": "mismatch",
    }
    assert returned == [{"tag": "health/failed", **data}]
    got = families(textfile)
    assert got["certdeploy_served_matches_expected"][0][1] == 0.0
    # No key material anywhere: not in events, returns or the log.
    for text in (repr(events.sent), repr(returned), caplog.text):
        assert "PRIVATE KEY" not in text and "BEGIN" not in text


def test_not_serving_fires_health_failed(rig, leaf):
    _, beacon, events, textfile = rig(leaf, closed_port())
    returned = beacon.beacon(config(textfile, timeout=1))
    assert events.tags() == ["certdeploy/health/failed"]
    assert events.sent[0][1]["reason"] == "not_serving"
    assert "error" in events.sent[0][1]["served"]["client"]
    assert [e["tag"] for e in returned] == ["health/failed"]


def test_short_lived_cert_fires_expiry_warning(rig, server, ca):
    short = ca.issue("short", ips=("127.0.0.1",), key_type="ec256", days=10)
    server.serve(short)
    _, beacon, events, textfile = rig(short, server.port)
    returned = beacon.beacon(config(textfile))
    assert events.tags() == ["certdeploy/expiry/warning"]
    data = events.sent[0][1]
    assert set(data) == {"node", "target", "minion", "not_after", "days_left"}
    assert data["not_after"] == short.cert.not_valid_after_utc.isoformat()
    assert 9 < data["days_left"] <= 10
    assert returned == [{"tag": "expiry/warning", **data}]


def test_event_send_failure_is_logged_and_data_still_returned(rig, leaf, caplog):
    _, beacon, events, textfile = rig(leaf, closed_port(), fail=True)
    with caplog.at_level(logging.WARNING):
        returned = beacon.beacon({"target": "cassandra", "textfile": textfile, "timeout": 1})
    assert [e["tag"] for e in returned] == ["health/failed"]
    assert "could not send certdeploy/health/failed" in caplog.text
    assert os.path.exists(textfile)


def test_unknown_target_is_skipped(rig, server, leaf, caplog):
    _, beacon, events, textfile = rig(leaf, server.port)
    with caplog.at_level(logging.WARNING):
        assert beacon.beacon(config(textfile, target=["cassandra", "nope"])) == []
    assert "nope" in caplog.text
    assert len(families(textfile)["certdeploy_served_matches_expected"]) == 1


logging.disable(logging.CRITICAL)

REPO = Path(__file__).resolve().parents[2]
LOADER_SCRIPT = """
import json, sys
import salt.config, salt.loader
assert "certdeploy_core" not in sys.modules
sent = []
opts = salt.config.minion_config(None)
opts.update(json.loads(sys.argv[1]))
utils = salt.loader.utils(opts)  # as the minion does: utils_dirs become importable
mods = salt.loader.minion_mods(opts, utils=utils, whitelist=["certdeploy", "cmd", "service"])
funcs = {k: mods[k] for k in ("certdeploy.health", "certdeploy.targets")}
beacons = salt.loader.beacons(opts, {**funcs, "event.send": lambda tag, data: sent.append(tag)})
ok = "certdeploy.beacon" in beacons
why = "" if ok else beacons.missing_fun_string("certdeploy.beacon")
conf = [{"target": "cassandra"}, {"timeout": 1}]
result = beacons["certdeploy.beacon"](conf) if ok else None
print(json.dumps({"ok": ok, "why": why, "tags": [e["tag"] for e in result or []], "sent": sent}))
"""


def test_loads_through_salts_beacon_loader(tmp_path, leaf, root):
    """Salt's beacon loader gives beacons no utils path: the beacon imports nothing of ours
    and reaches the package through the execution module."""
    _, pillar = install(tmp_path, leaf, root, closed_port())
    opts = {
        "id": "cass1-minion",
        "cachedir": str(tmp_path / "cache"),
        "extension_modules": str(tmp_path / "cache" / "extmods"),
        "file_client": "local",
        "beacons_dirs": [str(REPO / "_beacons")],
        "module_dirs": [str(REPO / "_modules")],
        "utils_dirs": [str(REPO / "_utils")],
        "pillar": pillar,
    }
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOADER_SCRIPT, json.dumps(opts)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ok"], out["why"]
    assert out["tags"] == ["health/failed"]
    assert out["sent"] == ["certdeploy/health/failed"]
