"""``sockets.endpoints`` against this very process: real sockets, real ``/proc``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from certdeploy_core import clients, sockets


@pytest.mark.parametrize("family,host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_a_process_s_own_connections_are_found_by_local_address_and_port(family, host):
    try:
        server = socket.socket(family)
        server.bind((host, 0))
    except OSError as exc:
        pytest.skip(f"no {host} here: {exc}")
    server.listen()
    client = socket.create_connection(server.getsockname()[:2])
    accepted, _ = server.accept()
    try:
        found = sockets.endpoints([os.getpid()])
        mine = client.getsockname()[:2]
        assert (mine[0], mine[1]) in found
        assert (server.getsockname()[0], server.getsockname()[1]) in found  # the listener too
    finally:
        for s in (client, accepted, server):
            s.close()
    assert (mine[0], mine[1]) not in sockets.endpoints([os.getpid()])  # closed: gone


def test_another_process_s_connection_counts_for_it_and_not_for_this_one():
    """Two processes on one host, one server: the rig's two instances of one app."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        code = (
            f"import socket, sys; s = socket.create_connection(('127.0.0.1', {port})); "
            "print(s.getsockname()[1], flush=True); sys.stdin.read()"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            port = int(child.stdout.readline())
            accepted, _ = server.accept()
            assert ("127.0.0.1", port) in sockets.endpoints([child.pid])
            assert ("127.0.0.1", port) not in sockets.endpoints([os.getpid()])
            accepted.close()
        finally:
            child.stdin.close()
            child.wait(10)


def test_a_missing_process_raises_oserror():
    with pytest.raises(OSError):
        sockets.endpoints([2**22 + 12345])


def test_scoped_keeps_only_the_process_rows_and_unreadable_hosts():
    seen = {
        "10.0.0.1": [
            {"address": "127.0.0.1", "port": 5000, "username": "orders_g2"},
            {"address": "127.0.0.1", "port": 5001, "username": "orders_g1"},
        ],
        "10.0.0.2": {"error": "down"},
    }
    got = clients.scoped(seen, {("127.0.0.1", 5000)})
    assert got == {"10.0.0.1": [seen["10.0.0.1"][0]], "10.0.0.2": {"error": "down"}}


class _Host:
    """A host whose ``pid_command`` prints the pid of a real child process, counting calls."""

    def __init__(self, pid):
        self.pid, self.calls = pid, 0

    def run(self, argv, cwd, timeout):
        self.calls += 1
        return {"retcode": 0, "stdout": f"{self.pid}\n"}


def test_a_verification_asks_pid_command_again_only_when_the_pid_is_gone_or_stale(tmp_path):
    from certdeploy_core import client

    target = type("T", (), {"pid_command": ("app-pid",), "cwd": None, "node": "a", "name": "t"})
    first = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    host, evidence = _Host(first.pid), {}
    try:
        for _ in range(3):  # three poll rounds: one pid_command
            assert client._own_endpoints(target, host, evidence) is not None
        assert host.calls == 1 and evidence["pids"] == [first.pid]
        evidence["_pids_at"] -= client.PID_RECHECK_SECONDS  # stale: asked again
        client._own_endpoints(target, host, evidence)
        assert host.calls == 2
    finally:
        first.stdin.close()
        first.wait(10)
    second = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=-1)
    try:
        host.pid = second.pid  # the app restarted: its old pid is gone, so ask again
        assert client._own_endpoints(target, host, evidence) is not None
        assert host.calls == 3 and evidence["pids"] == [second.pid]
    finally:
        second.stdin.close()
        second.wait(10)
