"""The sandbox's two sample client applications, each doing QUORUM writes and reads over mTLS
and counting failures: ``shop`` (Python, cassandra-driver with an ``ssl_context``, SIGHUP
reloads) on cass1's host and ``ledger`` (java-driver 4.19, PKCS#12, keystore-reload-interval)
on cass2's. Started by ``python -m sandbox up --apps`` or ``python -m sandbox apps start``,
stopped by ``apps stop`` and by ``down``.

Each app gets a first-generation leaf (``spiffe://certdeploy-sandbox/<app>/g1``, role
``<app>_g1``) from the sandbox CA in ``<dir>/apps/<app>/`` (0700). ``<dir>/apps/apps.json``
holds each app's ``certdeploy:targets:<app>`` pillar, ready to give to its minion.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox import pki
from sandbox.rig import REPO, Rig, write_private

APPS = (("shop", "python", 1), ("ledger", "java", 2))
PASSWORD = "sandbox-store-pass"  # the Java app's stores; also in its 0600 password file


def _control(status: Path, action: str) -> list[str]:
    return [sys.executable, "-m", "sandbox.client_app", action, "--status", str(status)]


def _files(rig: Rig, name: str, driver: str, leaf, home: Path) -> tuple[dict, list[str]]:
    status = home / "status.json"
    if driver == "java":
        keystore, truststore = home / "client.p12", home / "ca.p12"
        write_private(keystore, pki.pkcs12_keystore(leaf, PASSWORD, alias=name))
        write_private(truststore, pki.pkcs12_truststore(PASSWORD, rig.root_ca().cert))
        write_private(home / "password", PASSWORD.encode())
        args = ["run-java", "--name", name, "--keystore", str(keystore)]
        args += ["--truststore", str(truststore), "--password-file", str(home / "password")]
        stores = {"store_type": "pkcs12", "keystore_password": PASSWORD}
        stores["truststore_password"] = PASSWORD
        activate = {"method": "watch", "watch_seconds": 3}
    else:
        keystore, truststore = home / "client.pem", home / "ca.pem"
        write_private(keystore, pki.pem_keystore(leaf))
        write_private(truststore, pki.pem_truststore(rig.root_ca().cert))
        args = ["run", "--name", name, "--cert", str(keystore), "--key", str(keystore)]
        args += ["--ca", str(truststore)]
        stores = {"store_type": "pem"}
        activate = {"method": "reload", "reload": _control(status, "reload")}
    target = {
        "profile": "client",
        "app": name,
        **stores,
        "keystore": str(keystore),
        "truststore": str(truststore),
        "identity": f"spiffe://certdeploy-sandbox/{name}/{{generation}}",
        "role": f"{name}_{{generation}}",
        "contact_points": [f"{n.address}:9042" for n in rig.all_nodes()],
        "activate": {**activate, "restart": _control(status, "restart"), "cwd": str(REPO)},
        "health": _control(status, "health"),
        "pid_command": _control(status, "pid"),
        "verify_client": {"cert": str(rig.client_cert), "key": str(rig.client_key)},
        "backup_dir": str(home / "backups"),
    }
    return target, [*args, "--status", str(status)]


def start(rig: Rig, log=print, timeout: float = 90) -> dict:
    """Issue each app's first leaf, map its identity to its role, start it, and wait until
    it has served a request."""
    root = rig.root / "apps"
    root.mkdir(mode=0o700, exist_ok=True)
    started, targets = {}, {}
    for name, driver, n in APPS:
        home = root / name
        home.mkdir(mode=0o700, exist_ok=True)
        identity = f"spiffe://certdeploy-sandbox/{name}/g1"
        rig.grant_identity(identity, f"{name}_g1", superuser=False)
        leaf = rig.issuing_ca().issue(
            f"{name}-g1", uris=(identity,), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)
        )
        target, args = _files(rig, name, driver, leaf, home)
        (home / "status.json").unlink(missing_ok=True)
        with open(home / "app.log", "ab") as out:
            subprocess.Popen(
                [sys.executable, "-m", "sandbox.client_app", *args],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        started[name] = {"status": str(home / "status.json"), "minion": rig.node(n).name}
        targets[name] = {"minion": rig.node(n).name, "target": target}
    deadline = time.monotonic() + timeout
    for name, info in started.items():
        while True:
            status = _read(Path(info["status"]))
            if status.get("ok", 0) > 0:
                log(f"app {name} ({status.get('driver', 'python')}) up, pid {status['pid']}")
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"app {name} served no request in {timeout}s: see app.log")
            time.sleep(0.3)
    write_private(root / "apps.json", json.dumps(targets, indent=2).encode())
    return started


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def stop(rig: Rig, log=print) -> list[str]:
    """SIGTERM every app that ``start`` started (by the pid in its status file)."""
    stopped = []
    for name, _, _ in APPS:
        pid = _read(rig.root / "apps" / name / "status.json").get("pid")
        if not pid:
            continue
        try:
            os.kill(int(pid), signal.SIGTERM)
            stopped.append(name)
        except ProcessLookupError:
            pass
    if stopped:
        log(f"apps stopped: {', '.join(stopped)}")
    return stopped
