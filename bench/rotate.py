"""The ``rotate_ca`` figure of ``make bench``: ``salt-run certdeploy.rotate_ca 'cass*' <new CA>``
phase by phase on the 3-node rig, there and back: run 1 moves the cluster from the rig's CA to a
new one, run 2 moves it back, so the rig ends where it started (every later figure still works).

Before phase 3 removes the old CA from the truststores, certdeploy's own CQL checks switch to a
client certificate from the CA that stays, as an operator's would. Nothing here asserts a number.
"""

from __future__ import annotations

import json
import subprocess
import time

from sandbox import pki
from sandbox.hostfiles import write_private
from sandbox.salt_rig import BIN

IDENTITY, ROLE = "spiffe://certdeploy-sandbox/certdeploy/bench-ca2", "certdeploy_bench_ca2"


def _salt(rig, tool: str, *args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    cmd = [str(BIN / tool), "-c", str(rig.salt_config_dir), "--out=json", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _last_json(stdout: str):
    """salt-run prints progress events, then the return, as JSON documents: the last one."""
    decoder, text, i, doc = json.JSONDecoder(), stdout.strip(), 0, None
    while i < len(text):
        doc, i = decoder.raw_decode(text, i)
        while i < len(text) and text[i].isspace():
            i += 1
    return doc


def _pillars(rig, bundles: dict | None, reader: dict) -> None:
    for n in range(1, rig.nodes + 1):
        extra = {"bundle": bundles[n]} if bundles else {}
        rig.set_pillar(n, extra, target={"verify_client": reader})
    res = _salt(rig, "salt", "*", "saltutil.refresh_pillar", "wait=True", timeout=120)
    if res.returncode != 0:
        raise SystemExit(f"bench: refresh_pillar failed: {res.stdout[-800:]}")


def _phase(rig, ca_file, number: int) -> float:
    started = time.monotonic()
    res = _salt(rig, "salt-run", "certdeploy.rotate_ca", "cass*", str(ca_file), f"phase={number}")
    wall = time.monotonic() - started
    try:
        ok = _last_json(res.stdout).get("ok") is True
    except (ValueError, AttributeError):
        ok = False
    if res.returncode != 0 or not ok:
        raise SystemExit(f"bench: rotate_ca phase {number} failed: {res.stdout[-3000:]}")
    return wall


def rotations(rig) -> list[dict]:
    """Two full rotations (there and back); each sample is one rotation's three phases."""
    work = rig.root / "bench-rotate"
    work.mkdir(mode=0o700, exist_ok=True)
    ca1_root, ca1 = rig.root_ca().cert, rig.issuing_ca()
    ca2_root = pki.CA.root("certdeploy bench CA2 root")
    ca2 = ca2_root.intermediate("certdeploy bench CA2 issuing")
    reader2 = ca2.issue("certdeploy-bench-ca2", dns=("certdeploy-bench-ca2",), uris=(IDENTITY,))
    rig.grant_identity(IDENTITY, ROLE)  # while the nodes still trust only the rig's CA
    write_private(work / "ca2-client.crt", pki.cert_pem(reader2.cert, *reader2.chain))
    write_private(work / "ca2-client.key", pki.key_pem(reader2.key))
    readers = {
        "rig": {"cert": str(rig.client_cert), "key": str(rig.client_key)},
        "ca2": {"cert": str(work / "ca2-client.crt"), "key": str(work / "ca2-client.key")},
    }
    runs = (
        ("rig CA -> CA2", ca1_root, ca2_root.cert, ca2, "rig", "ca2"),
        ("CA2 -> rig CA", ca2_root.cert, ca1_root, ca1, "ca2", "rig"),
    )
    samples = []
    try:
        for label, old_root, new_root, issuer, reader, staying in runs:
            ca_file = work / "new-root.pem"
            ca_file.write_bytes(pki.cert_pem(new_root))
            bundles = {
                n: pki.bundle_dict(issuer.issue_node(n), old_root, new_root)
                for n in range(1, rig.nodes + 1)
            }
            _pillars(rig, bundles, readers[reader])
            seconds = {1: _phase(rig, ca_file, 1), 2: _phase(rig, ca_file, 2)}
            _pillars(rig, bundles, readers[staying])  # the old CA's client cert goes away next
            seconds[3] = _phase(rig, ca_file, 3)
            wall = sum(seconds.values())
            samples.append({"wall": wall, **{f"phase{k}": v for k, v in seconds.items()}})
            print(
                f"  rotate_ca {label}: {wall:.1f}s (phase 1 {seconds[1]:.1f}s, "
                f"phase 2 {seconds[2]:.1f}s, phase 3 {seconds[3]:.1f}s)",
                flush=True,
            )
    finally:
        for n in range(1, rig.nodes + 1):
            rig.set_pillar(n)
        _salt(rig, "salt", "*", "saltutil.refresh_pillar", "wait=True", timeout=120)
    return samples
