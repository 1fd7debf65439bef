"""The agentless pieces that need no sshd: the pillar file's life (0600 in a 0700 dir, read
once, refused when readable by others or not ours, swept when a killed call left it) and the
SSH transport's reading of salt-ssh returns into results or one-line errors with the fix."""

from __future__ import annotations

import json
import os
import time

import pytest
from certdeploy_core import pillar_file, ssh_transport
from salt.exceptions import CommandExecutionError

PILLAR = {"certdeploy": {"targets": {"cassandra": {"node": "cass2"}}}, "other": "not shipped"}


def test_the_payload_carries_only_certdeploy_and_the_agentless_mark():
    data = pillar_file.payload(PILLAR)
    assert set(data) == {"certdeploy", pillar_file.AGENTLESS}


def test_write_local_is_private_and_read_deletes(tmp_path):
    path = pillar_file.write_local(str(tmp_path / "out"), pillar_file.payload(PILLAR))
    assert os.stat(tmp_path / "out").st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o777 == 0o600
    data = pillar_file.read_and_remove(path, "cass2-ssh")
    assert data["certdeploy"]["targets"]["cassandra"]["node"] == "cass2"
    assert not os.path.exists(path)


@pytest.mark.parametrize(
    "name, mode, body, words",
    [
        ("certdeploy-pillar-x.json", 0o640, "{}", "mode 0640, must be 0600"),
        ("certdeploy-pillar-x.json", 0o600, "not json", "not JSON"),
        ("certdeploy-pillar-x.json", 0o600, json.dumps({"x": 1}), "holds no certdeploy pillar"),
        ("other.json", 0o600, "{}", "not a certdeploy pillar file"),
    ],
)
def test_bad_files_are_refused_with_the_fix(tmp_path, name, mode, body, words):
    path = tmp_path / name
    path.write_text(body)
    os.chmod(path, mode)
    with pytest.raises(CommandExecutionError, match=words) as err:
        pillar_file.read_and_remove(str(path), "cass2-ssh")
    assert "cass2-ssh" in str(err.value) and "Fix:" in str(err.value)
    if name.startswith(pillar_file.PREFIX):
        assert not path.exists()  # deleted unread, whatever was wrong


def test_a_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(pillar_file.payload(PILLAR)))
    link = tmp_path / "certdeploy-pillar-link.json"
    link.symlink_to(target)
    with pytest.raises(CommandExecutionError, match="cannot open"):
        pillar_file.read_and_remove(str(link), "cass2-ssh")
    assert target.exists() and not link.exists()


def test_files_left_by_a_killed_call_are_swept(tmp_path):
    old = tmp_path / "certdeploy-pillar-old.json"
    old.write_text("{}")
    past = time.time() - pillar_file.STALE_SECONDS - 5
    os.utime(old, (past, past))
    fresh = pillar_file.write_local(str(tmp_path), pillar_file.payload(PILLAR))
    assert not old.exists() and os.path.exists(fresh)


WHERE = "cass2-ssh (127.0.0.2:22022)"


@pytest.mark.parametrize(
    "stderr, words",
    [
        ("@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@", "host key verification"),
        ("Host key verification failed.", "replace its line in /kh"),
        ("ssh: connect to host 127.0.0.2 port 1: Connection refused", "host and port"),
        ("ssh: connect to host 10.0.0.9 port 22: Connection timed out", "host and port"),
        ("root@127.0.0.2: Permission denied (publickey).", "user and priv"),
        ("something else entirely", "salt-ssh -l debug cass2-ssh test.ping"),
    ],
)
def test_ssh_failures_name_the_host_and_the_fix(stderr, words):
    message = ssh_transport.ssh_error(
        WHERE, {"retcode": 255, "stderr": stderr}, {"known_hosts_file": "/kh"}
    )
    assert message.startswith(WHERE) and words in message and "Fix:" in message


def test_answers_are_the_return_or_the_error():
    transport = ssh_transport.SSHTransport({"known_hosts_file": "/kh"})
    transport.hosts["cass2-ssh"] = {"host": "127.0.0.2", "port": 22022}
    assert transport.answer("cass2-ssh", {"return": {"outcome": "deployed"}}) == {
        "outcome": "deployed"
    }
    assert transport.answer("cass2-ssh", {"return": "ERROR: cass2: bad"}) == "ERROR: cass2: bad"
    wrapped = {"return": {"local": "An Exception occurred while executing certdeploy.deploy"}}
    assert transport.answer("cass2-ssh", wrapped).startswith("An Exception")
    refused = transport.answer("cass2-ssh", {"retcode": 255, "stderr": "Connection refused"})
    assert refused.startswith(WHERE) and "Fix:" in refused


def test_refresh_pillar_is_answered_without_a_call():
    transport = ssh_transport.SSHTransport({})
    assert transport.call(["cass2-ssh"], "saltutil.refresh_pillar", {}, 5) == {"cass2-ssh": True}


def test_the_node_event_the_master_fires_for_an_agentless_target():
    tag, data = ssh_transport.node_event_for(
        "cass2-ssh",
        "certdeploy.deploy",
        {"outcome": "rolled_back", "target": "cassandra", "node": "cass2", "backup": {}},
    )
    assert tag == "certdeploy/node/cass2-ssh/rolled_back"
    assert data["id"] == "cass2-ssh" and data["transport"] == "ssh"
    assert data["data"]["node"] == "cass2" and data["data"]["outcome"] == "rolled_back"


def test_configured_only_with_a_roster(tmp_path):
    assert not ssh_transport.configured({"conf_file": str(tmp_path / "master")})
    (tmp_path / "roster").write_text("{}")
    assert ssh_transport.configured({"conf_file": str(tmp_path / "master")})
