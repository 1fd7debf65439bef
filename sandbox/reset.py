"""Put a running sandbox back where ``up`` left it: the issued key and trust stores on every
node, its cassandra.yaml and pillar, an empty certificate store, no queued rollout and no lock.

Each integration module starts from here (``tests/integration/conftest.py``), so no module
depends on another having run first. ``python -m sandbox reset`` does the same by hand.
Proof is from outside: every node must serve its issued certificate on 9042 and 7000 to the
rig's own client identity (which also proves the truststore the JVM holds), and the ring must
be all UN. A node that still serves something else after ``reloadssl`` is restarted.
"""

from __future__ import annotations

import shutil
import time

from sandbox import salt_rig
from sandbox.cassandra import NodeError
from sandbox.rig import write_private


def reset(rig, log=print) -> dict:
    """Returns what had to change: ``{"restored": [files], "reloaded": [...], "restarted":
    [...], "seconds": s}``. Raises ``NodeError`` when a node cannot be brought back."""
    started = time.monotonic()
    report = {"restored": [], "reloaded": [], "restarted": []}
    touched = set()
    for node in rig.all_nodes():
        for store, live in (
            ("keystore", rig.keystore_path(node)),
            ("truststore", rig.truststore_path(node)),
        ):
            want = rig.issued_copy(node, store).read_bytes()
            if not live.exists() or live.read_bytes() != want:
                write_private(live, want)
                report["restored"].append(str(live))
                touched.add(node.n)
        config = node.config_text(rig.tls_sections(node), rig.authenticator)
        if node.config_path.read_text() != config:
            node.config_path.write_text(config)
            report["restored"].append(str(node.config_path))
    _reset_master(rig, report)
    _reset_pillar(rig)
    for n in sorted(touched):
        rig.node(n).nodetool("reloadssl")  # exits 0 even on failure: the probe below decides
        report["reloaded"].append(rig.node(n).name)
    wrong = _not_issued(rig)
    for name in wrong:
        node = next(node for node in rig.all_nodes() if node.name == name)
        log(f"[reset] {name} does not serve its issued certificate: restarting it")
        node.stop()
        node.start()
        report["restarted"].append(name)
    if wrong:
        rig.wait_ring_healthy()
        still = _not_issued(rig)
        if still:
            raise NodeError(f"reset: {still} still do not serve their issued certificates")
    rig.wait_ring_healthy()
    report["seconds"] = round(time.monotonic() - started, 1)
    if any(report[key] for key in ("restored", "reloaded", "restarted")):
        log(f"[reset] {report}")
    return report


def _not_issued(rig, timeout: float = 20) -> list[str]:
    """Nodes whose served certificate (either port, the rig's client identity) is not the
    issued one, after a short wait for a reload to take."""
    issued = {n["name"]: n["issued_fingerprint"] for n in rig.descriptor()["nodes"]}
    deadline = time.monotonic() + timeout
    while True:
        served = rig.served_fingerprints()
        wrong = [name for name, fp in issued.items() if set(served[name].values()) != {fp}]
        if not wrong or time.monotonic() > deadline:
            return wrong
        time.sleep(0.5)


def _reset_master(rig, report: dict) -> None:
    """Empty the certificate store, the rollout queue and the cluster locks."""
    cache = rig.root / "salt" / "cache" / "master" / "certdeploy"
    for directory, pattern in (
        (rig.root / "store", "*"),
        (cache / "queue", "*.json"),
        (cache / "locks", "*.lock"),
    ):
        for path in sorted(directory.glob(pattern)) if directory.exists() else ():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
            report["restored"].append(f"removed {path}")


def _reset_pillar(rig) -> None:
    salt_rig.write_pillar(rig.root, rig.pillars())
    res = salt_rig.salt_cmd(
        rig.root, "*", "saltutil.refresh_pillar", "wait=True", "--out=json", timeout=120
    )
    if res.returncode != 0:
        raise NodeError(f"reset: saltutil.refresh_pillar failed: {res.stdout[-400:]}")
