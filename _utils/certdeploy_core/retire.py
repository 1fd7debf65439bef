"""``retire_old: true`` for client-side targets: after a verified deployment, drop the old
leaf's identity (``DROP IDENTITY``, run as ``verify_client``, which needs the right to), then
prove from outside that a login with the old certificate is now refused by every contact point.

The old leaf is read from this deployment's backup (a 0600 file in a 0700 dir), never copied
elsewhere. A rollback past a retired identity needs it added again (``ADD IDENTITY``).
"""

from __future__ import annotations

import dataclasses
import os
import ssl
import time

from . import checks, cql, material
from . import pem as pem_util

REFUSAL_TIMEOUT = 30.0  # the nodes' identity cache (credentials_validity) may hold it a while


def _context(target, keystore: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=pem_util.cert_pem(*material.current_trust(target)))
    material.load_identity(ctx, dataclasses.replace(target, keystore=keystore), own=True)
    return ctx


def _reader(target) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=pem_util.cert_pem(*material.current_trust(target)))
    ctx.load_cert_chain(target.verify_client["cert"], target.verify_client.get("key"))
    return ctx


def _refused(target, ctx) -> dict:
    seen = {}
    for host, port in target.contact_points:
        try:
            cql.query([host], ctx, "SELECT release_version FROM system.local", 10, port=port)
            seen[host] = {"refused": False}
        except Exception as exc:  # noqa: BLE001 - only the server's "no" is a refusal
            text = f"{type(exc).__name__}: {exc}"
            refused = "AuthenticationFailed" in text or "Bad credentials" in text
            seen[host] = {"refused": refused, "error": text[:200]}
    return seen


def retire(target, host, backup_id: str | None) -> dict:
    """Drop the identity of the leaf this deployment replaced; prove it is refused."""
    if not getattr(target, "retire_old", False):
        return {"skipped": "retire_old is off"}
    old_keystore = os.path.join(target.backup_dir, str(backup_id), "keystore")
    if not backup_id or not os.path.exists(old_keystore):
        return {"skipped": "no old keystore in the backup (first deployment)"}
    old_cert = material.open_current_keystore(dataclasses.replace(target, keystore=old_keystore))[1]
    new_cert = material.open_current_keystore(target)[1]
    old_uri, _ = checks.leaf_identity(old_cert, target.identity)
    new_uri, _ = checks.leaf_identity(new_cert, target.identity)
    if not old_uri or old_uri == new_uri:
        return {"skipped": f"the old leaf's identity {old_uri!r} is the new one's"}
    started = time.monotonic()
    statement = "DROP IDENTITY IF EXISTS '{}'".format(old_uri.replace("'", "''"))
    evidence = {"identity": old_uri, "ok": False}
    try:
        cql.query(
            target.hosts()[:1], _reader(target), statement, 15, port=target.contact_points[0][1]
        )
        evidence["dropped"] = True
    except Exception as exc:  # noqa: BLE001 - reported with the fix
        evidence["error"] = (
            f"{target.node}: {target.name}: DROP IDENTITY failed: {type(exc).__name__}: {exc}. "
            "Fix: give the verify_client role the right to drop identities"
        )[:400]
        return evidence
    old_ctx = _context(target, old_keystore)
    deadline = time.monotonic() + REFUSAL_TIMEOUT
    while True:
        evidence["refused"] = _refused(target, old_ctx)
        if all(v["refused"] for v in evidence["refused"].values()):
            evidence["ok"] = True
            break
        if time.monotonic() > deadline:
            evidence["error"] = f"the old certificate is still accepted after {REFUSAL_TIMEOUT}s"
            break
        time.sleep(1)
    evidence["seconds"] = round(time.monotonic() - started, 3)
    return evidence
