"""A real Python client application on the rig, under MutualTlsAuthenticator: which
certificate its live connections logged in with, as every node sees it
(``system_views.clients``), before and after its files are replaced and it is sent SIGHUP.
This is the server-side proof the ``client`` profile's verify builds on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from certdeploy_core import clients
from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox import pki
from sandbox.rig import REPO, write_private

pytestmark = pytest.mark.rig
APP = "orders"
ROLES = {f"{APP}_g1", f"{APP}_g2"}


def _generation(rig, n: int):
    identity = f"spiffe://certdeploy-sandbox/{APP}/g{n}"
    rig.grant_identity(identity, f"{APP}_g{n}", superuser=False)
    return rig.issuing_ca().issue(
        f"{APP}-g{n}", uris=(identity,), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)
    )


def _install(directory: Path, leaf) -> None:
    """What certdeploy's install does: whole files, replaced atomically."""
    tmp = directory / ".client.crt.tmp"
    tmp.write_bytes(pki.cert_pem(leaf.cert, *leaf.chain))
    os.replace(tmp, directory / "client.crt")
    write_private(directory / "client.key", pki.key_pem(leaf.key))


def _ok_count(status: Path) -> int:
    return json.loads(status.read_text())["ok"] if status.exists() else 0


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        ok, last = predicate()
        if ok:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last}")


def test_python_app_moves_every_connection_to_its_new_identity(rig, tmp_path):
    hosts = [n.address for n in rig.all_nodes()]
    app_dir = tmp_path / APP
    app_dir.mkdir(mode=0o700)
    _install(app_dir, _generation(rig, 1))
    status = app_dir / "status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.client_app", "run", "--name", APP]
        + ["--cert", str(app_dir / "client.crt"), "--key", str(app_dir / "client.key")]
        + ["--ca", str(rig.ca_file), "--status", str(status)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "app.log", "wb"),  # noqa: SIM115 - closed with the process
    )

    def under(role):
        def check():
            ok, problems = clients.only_under(
                clients.connections(hosts, rig.cql_context()), role, ROLES
            )
            return ok, problems

        return check

    try:
        _wait(
            lambda: (status.exists() and json.loads(status.read_text())["ok"] > 0, None),
            60,
            "the app",
        )
        _wait(under(f"{APP}_g1"), 30, "g1 connections on every node")
        _install(app_dir, _generation(rig, 2))
        started = time.monotonic()
        proc.send_signal(signal.SIGHUP)
        _wait(under(f"{APP}_g2"), 60, "only g2 connections on every node")
        moved = time.monotonic() - started
        time.sleep(2)
        final = json.loads(status.read_text())
        print(f"\n[client_app] SIGHUP -> all connections under {APP}_g2: {moved:.1f}s; {final}")
        assert final["reloads"] == 1 and final["failed"] == 0, final
        health = subprocess.run(
            [sys.executable, "-m", "sandbox.client_app", "health", "--status", str(status)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert health.returncode == 0, health.stdout
    finally:
        proc.terminate()
        proc.wait(30)
    assert json.loads(status.read_text())["failed"] == 0
