"""Which command the cassandra profile's reload runs: ``nodetool reloadssl`` by default, the
``control.reloadssl`` argv when pillar gives one (the same JMX call without nodetool's JVM),
and a failed reload names the command and the fix. The reload itself is the rig's to prove
(tests/integration/test_node_deploy.py); here the host records the argv."""

from __future__ import annotations

import pytest
from certdeploy_core import cassandra, errors, node

from tests.unit.test_health_check import install

RELOAD = ["java", "-cp", "/opt/certdeploy/reloadssl", "ReloadSsl", "127.0.0.1", "7199"]


class Recorder:
    def __init__(self, retcode=0):
        self.argv, self.retcode = [], retcode

    def run(self, argv, cwd, timeout):
        self.argv.append(list(argv))
        return {"retcode": self.retcode, "stdout": "", "stderr": "Connection refused"}


def activate(tmp_path, leaf, root, retcode=0, **overrides):
    target, _ = install(tmp_path, leaf, root, 19042, **overrides)
    recorder = Recorder(retcode)
    host = node.Host(run=recorder.run, service=None, cachedir=str(tmp_path / "cache"))
    return recorder, cassandra.activate(target, host, method="reload")


@pytest.fixture(autouse=True)
def no_baseline(monkeypatch):
    # The gossip baseline reads CQL; it is only an optimisation and not what is tested here.
    monkeypatch.setattr(cassandra, "gossip_baseline", lambda target: None)


def test_reload_runs_nodetool_reloadssl_by_default(tmp_path, ca, root):
    leaf = ca.issue("cass1", ips=("127.0.0.1",), key_type="ec256")
    recorder, result = activate(tmp_path, leaf, root)
    assert recorder.argv == [["nodetool", "-h", "127.0.0.1", "-p", "7199", "reloadssl"]]
    assert result["method"] == "reload" and "gossip_before" not in result


def test_control_reloadssl_replaces_nodetool_for_the_reload(tmp_path, ca, root):
    leaf = ca.issue("cass1", ips=("127.0.0.1",), key_type="ec256")
    recorder, _ = activate(tmp_path, leaf, root, control={"reloadssl": RELOAD})
    assert recorder.argv == [RELOAD]


def test_a_failed_reload_names_the_command_and_the_fix(tmp_path, ca, root):
    leaf = ca.issue("cass1", ips=("127.0.0.1",), key_type="ec256")
    with pytest.raises(errors.StepFailed, match="java -cp /opt/certdeploy/reloadssl.*JMX"):
        activate(tmp_path, leaf, root, retcode=1, control={"reloadssl": RELOAD})
