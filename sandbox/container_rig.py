"""``python -m sandbox up --containers``: the rig's real containers, on podman.

- ``cdapp``: the sample Python client app (``sandbox.client_app``) in a container on cass1's
  host, over mTLS to the 3-node cluster, its identity ``spiffe://certdeploy-sandbox/cdapp/g1``
  (role ``cdapp_g1``); its TLS files in ``<dir>/container-apps/cdapp/tls``, bind-mounted as a
  directory at ``/etc/cdapp/tls`` and owned by the image's uid 999.
- ``cass4c`` (unless ``--containers=app``): one Cassandra node in a container
  (:mod:`sandbox.container_node`), a single-node cluster of its own on 127.0.0.4.

``<dir>/container-apps/targets.json`` holds each one's ``certdeploy:targets:<name>`` pillar
(for minion cass1), ready to give; ``down`` removes the containers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox import containers, pki
from sandbox.container_node import ContainerNode
from sandbox.rig import REPO, Rig, write_private

APP = "cdapp"
APP_INSIDE = "/etc/cdapp/tls"
MINION = "cass1"


def app_home(rig: Rig, name: str = APP) -> Path:
    return rig.root / "container-apps" / name


def app_target(rig: Rig, name: str, tls: Path, status: Path, backup_dir: Path) -> dict:
    """The ``container`` target pillar of the sample app in container ``name``."""
    uid = containers.USERS["app"]
    control = [sys.executable, "-m", "sandbox.client_app"]
    return {
        "profile": "container",
        "runs": "client",
        "engine": containers.engine(rig.root),
        "container": name,
        "host_dir": str(tls),
        "container_dir": APP_INSIDE,
        "keystore": "client.pem",
        "truststore": "ca.pem",
        "uid": uid,
        "gid": uid,
        "mode": "0600",
        "app": name,
        "identity": f"spiffe://certdeploy-sandbox/{name}/{{generation}}",
        "role": f"{name.replace('-', '_')}_{{generation}}",
        "contact_points": [f"{n.address}:9042" for n in rig.all_nodes()],
        "activate": {"method": "signal", "restart_grace": 10, "cwd": str(REPO)},
        # reads the bind-mounted status file, on the host
        "health": [*control, "health", "--status", str(status)],
        "verify_client": {"cert": str(rig.client_cert), "key": str(rig.client_key)},
        "verify_timeout": 30,
        "backup_dir": str(backup_dir),
    }


def write_app_files(rig: Rig, tls: Path, leaf) -> None:
    uid = containers.USERS["app"]
    tls.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("client.pem", pki.pem_keystore(leaf)),
        ("ca.pem", pki.pem_truststore(rig.root_ca().cert)),
    ):
        write_private(tls / name, data)
        os.chown(tls / name, uid, uid)


def start(rig: Rig, node: bool = True, log=print, timeout: float = 90) -> dict:
    """Start ``cdapp`` (and ``cass4c``); write their pillar to ``targets.json``."""
    why = containers.available()
    if why:
        raise RuntimeError(f"containers cannot run here: {why}")
    home = app_home(rig)
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    identity = f"spiffe://certdeploy-sandbox/{APP}/g1"
    rig.grant_identity(identity, f"{APP}_g1", superuser=False)
    leaf = rig.issuing_ca().issue(
        f"{APP}-g1", uris=(identity,), eku=(ExtendedKeyUsageOID.CLIENT_AUTH,)
    )
    tls, state = home / "tls", home / "state"
    write_app_files(rig, tls, leaf)
    (state / "status.json").unlink(missing_ok=True)
    containers.start_app(rig.root, APP, tls, state, log=log)
    deadline = time.monotonic() + timeout
    while _ok(state / "status.json") <= 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"container {APP} served no request in {timeout}s")
        time.sleep(0.3)
    log(f"container {APP} (sample app) up, over mTLS to {len(rig.all_nodes())} nodes")
    targets = {
        APP: {
            "minion": MINION,
            "target": app_target(rig, APP, tls, state / "status.json", home / "backups"),
        }
    }
    if node:
        cnode = ContainerNode(rig)
        cnode.prepare()
        cnode.start(log=log)
        targets[cnode.name] = {"minion": MINION, "target": cnode.target()}
    path = home.parent / "targets.json"
    write_private(path, json.dumps(targets, indent=2).encode())  # it holds store passwords
    return {"targets": str(path), "containers": sorted(targets)}


def _ok(path: Path) -> int:
    try:
        return int(json.loads(path.read_text()).get("ok", 0))
    except (OSError, ValueError):
        return 0
