"""Node-local health evaluation shared by the beacon and the compliance checks.

Is the node serving what is on disk (client and internode ports, on *new* connections)? How
long until that certificate expires? Which TLS protocol versions does a port accept? Are the
key/trust stores and backups locked down? Pure functions; no Salt dunders. Nothing here
returns or logs key material: only fingerprints, dates, modes and owners.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import warnings

from . import files, material, probe, timeutil

# Result key -> ssl.TLSVersion member name, oldest first.
TLS_VERSIONS = {
    "TLSv1": "TLSv1",
    "TLSv1.1": "TLSv1_1",
    "TLSv1.2": "TLSv1_2",
    "TLSv1.3": "TLSv1_3",
}
_HAS = {key: f"HAS_{name}" for key, name in TLS_VERSIONS.items()}  # ssl.HAS_TLSv1_1, ...
BACKUP_DIR_MODE = 0o700
BACKUP_FILE_MODE = 0o600
_MAX_LISTED = 10


# ----------------------------------------------------------------------------- served vs. disk


def _fingerprint_of(disk: dict) -> str | None:
    keystore = disk.get("keystore") or {}
    return keystore.get("fingerprint")


def probe_ctx(target) -> ssl.SSLContext:
    """For reading what is served: trusts anything, presents the target's identity if any."""
    try:
        return material.probe_context(target)
    except Exception:  # noqa: BLE001 - no/unreadable keystore: probe without an identity
        return probe.client_context()


def served(target, ctx=None, timeout=3.0) -> dict:
    """``{"client": fp | {"error": str}, "internode": fp | {"error": str}}`` from brand-new
    TLS connections to ``rpc_address:client_port`` and ``listen_address:internode_port``."""
    if ctx is None:
        ctx = probe_ctx(target)
    result = {}
    for label, address, port in (
        ("client", target.rpc_address, target.client_port),
        ("internode", target.listen_address, target.internode_port),
    ):
        try:
            result[label] = probe.served_fingerprint(address, port, ctx, timeout=timeout)
        except probe.ProbeError as exc:
            result[label] = {"error": str(exc)}
    return result


def days_left(not_after_iso: str, now=None) -> float:
    """Days (fractional, negative once expired) from ``now`` (default: current UTC time)
    until ``not_after_iso``. Naive datetimes are taken as UTC."""
    not_after = timeutil.parse_iso(not_after_iso)
    now = timeutil.utc(now)
    return (not_after - now).total_seconds() / 86400.0


def node_health(target, *, warn_days=30, ctx=None, now=None, timeout=3.0, expected=None) -> dict:
    """Served vs. expected fingerprint and expiry of the installed certificate:
    ``{"node", "target", "expected", "served", "match", "serving", "not_after", "days_left",
    "expiring"}`` (plus ``keystore_error`` when the keystore cannot be read)."""
    disk = material.on_disk(target)
    keystore = disk.get("keystore") or {}
    # What certdeploy last deployed (or rolled back to) wins over what the disk holds: drift
    # that replaced the keystore behind certdeploy's back must not become "expected".
    expected = expected or keystore.get("fingerprint")
    got = served(target, ctx=ctx, timeout=timeout)
    fps = [got["client"], got["internode"]]
    serving = all(isinstance(fp, str) for fp in fps)
    not_after = keystore.get("not_after")
    left = round(days_left(not_after, now), 3) if not_after else None
    result = {
        "node": target.node,
        "target": target.name,
        "expected": expected,
        "served": got,
        "match": expected is not None and serving and fps[0] == fps[1] == expected,
        "serving": serving,
        "not_after": not_after,
        "days_left": left,
        "expiring": left is not None and left < warn_days,
    }
    if keystore.get("error"):
        result["keystore_error"] = keystore["error"]
    return result


# ----------------------------------------------------------------------------- TLS versions


def _pinned_context(version_key: str, ctx_factory) -> ssl.SSLContext:
    """A client context that offers exactly one protocol version (raises if it cannot)."""
    ctx = ctx_factory() if ctx_factory else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    version = getattr(ssl.TLSVersion, TLS_VERSIONS[version_key])
    with warnings.catch_warnings():
        # Python deprecates TLSv1/TLSv1.1 (and the OP_NO_* flags); probing for them is the point.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.options &= ~(
            ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1 | ssl.OP_NO_TLSv1_2 | ssl.OP_NO_TLSv1_3
        )
        # Order matters: never let minimum exceed maximum on the way.
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = version
        ctx.minimum_version = version
    if version_key in ("TLSv1", "TLSv1.1"):
        # OpenSSL 3 refuses SHA-1 based TLS<=1.1 handshakes above security level 0.
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def _can_offer(ctx: ssl.SSLContext) -> str | None:
    """Build a ClientHello in memory: ``None`` when OpenSSL can offer this context's version,
    else the reason (no protocols/ciphers available, ...). No network involved."""
    tls = ctx.wrap_bio(ssl.MemoryBIO(), ssl.MemoryBIO(), server_hostname=None)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return None  # ClientHello written, waiting for the server: the version is offerable
    except ssl.SSLError as exc:
        return f"local OpenSSL cannot offer it: {exc.reason or exc}"
    return None


def tls_versions(host, port, ctx_factory=None, timeout=3.0) -> dict:
    """Which protocol versions ``host:port`` completes a real handshake with.

    ``{"TLSv1": bool|None, "TLSv1.1": ..., "TLSv1.2": ..., "TLSv1.3": ..., "errors": {}}``:
    ``True`` = handshake completed at that version, ``False`` = the server refused it,
    ``None`` = undetermined (the local OpenSSL cannot offer the version, or the port could not
    be reached). ``errors`` gives the reason for every version that is not ``True``.

    ``ctx_factory()``, when given, must return a *new* ``ssl.SSLContext(PROTOCOL_TLS_CLIENT)``
    with a client identity loaded (``load_cert_chain``) for mutual-TLS ports; its verification
    and versions are overridden here.
    """
    result, errors = {}, {}
    for key in TLS_VERSIONS:
        if not getattr(ssl, _HAS[key], False):
            result[key], errors[key] = None, f"local OpenSSL was built without {key}"
            continue
        try:
            ctx = _pinned_context(key, ctx_factory)
        except (ValueError, ssl.SSLError) as exc:
            result[key], errors[key] = None, f"local OpenSSL cannot offer it: {exc}"
            continue
        reason = _can_offer(ctx)
        if reason:
            result[key], errors[key] = None, reason
            continue
        result[key], error = _handshake(host, port, ctx, timeout)
        if error:
            errors[key] = error
    result["errors"] = errors
    return result


def _handshake(host, port, ctx, timeout) -> tuple[bool | None, str | None]:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return None, f"{host}:{port}: cannot connect: {exc}"
    try:
        with ctx.wrap_socket(sock, server_hostname=host):
            return True, None
    except ssl.SSLError as exc:
        return False, f"{host}:{port}: handshake refused: {exc.reason or exc}"
    except OSError as exc:  # reset/EOF mid-handshake: the server dropped this version
        return False, f"{host}:{port}: handshake failed: {exc}"
    finally:
        sock.close()


# ----------------------------------------------------------------------------- file hygiene


def _finding(check: str, ok: bool, message: str) -> dict:
    return {"check": check, "ok": ok, "message": message}


def _store_findings(label: str, path: str, target) -> list[dict]:
    meta = files.file_meta(path)
    if meta is None:
        return [_finding(f"{label}_present", False, f"{path}: missing")]
    want_mode = format(target.mode, "04o")
    return [
        _finding(f"{label}_present", True, f"{path}: present"),
        _finding(
            f"{label}_mode",
            meta["mode"] == want_mode,
            f"{path}: mode {meta['mode']} (want {want_mode})",
        ),
        _finding(
            f"{label}_owner",
            str(meta["owner"]) == str(target.owner),
            f"{path}: owner {meta['owner']} (want {target.owner})",
        ),
        _finding(
            f"{label}_group",
            str(meta["group"]) == str(target.group),
            f"{path}: group {meta['group']} (want {target.group})",
        ),
    ]


def _backup_findings(backup_dir: str) -> list[dict]:
    try:
        st = os.lstat(backup_dir)
    except FileNotFoundError:
        return [_finding("backup_dir_mode", True, f"{backup_dir}: absent (no backups yet)")]
    if not stat.S_ISDIR(st.st_mode):
        return [_finding("backup_dir_mode", False, f"{backup_dir}: not a directory")]
    mode = stat.S_IMODE(st.st_mode)
    findings = [
        _finding(
            "backup_dir_mode",
            mode == BACKUP_DIR_MODE,
            f"{backup_dir}: mode {mode:04o} (want {BACKUP_DIR_MODE:04o})",
        )
    ]
    bad_dirs, bad_files, count = [], [], 0
    for root, dirs, names in os.walk(backup_dir):
        for name in dirs:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                bad_files.append(f"{path} (symlink)")
            elif stat.S_IMODE(st.st_mode) != BACKUP_DIR_MODE:
                bad_dirs.append(f"{path} ({stat.S_IMODE(st.st_mode):04o})")
        for name in names:
            path = os.path.join(root, name)
            st = os.lstat(path)
            count += 1
            if not stat.S_ISREG(st.st_mode):
                bad_files.append(f"{path} (not a regular file)")
            elif stat.S_IMODE(st.st_mode) != BACKUP_FILE_MODE:
                bad_files.append(f"{path} ({stat.S_IMODE(st.st_mode):04o})")
    findings.append(
        _finding(
            "backup_subdirs_mode",
            not bad_dirs,
            f"{len(bad_dirs)} director(ies) below {backup_dir} not {BACKUP_DIR_MODE:04o}: "
            f"{_listing(bad_dirs)}"
            if bad_dirs
            else f"every directory below {backup_dir} is {BACKUP_DIR_MODE:04o}",
        )
    )
    findings.append(
        _finding(
            "backup_files_mode",
            not bad_files,
            f"{len(bad_files)} of {count} file(s) below {backup_dir} not {BACKUP_FILE_MODE:04o}: "
            f"{_listing(bad_files)}"
            if bad_files
            else f"all {count} file(s) below {backup_dir} are {BACKUP_FILE_MODE:04o}",
        )
    )
    return findings


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def file_findings(target) -> list[dict]:
    """Stores present with the target's mode/owner/group; backups 0700 dirs, 0600 files."""
    return [
        *_store_findings("keystore", target.keystore, target),
        *_store_findings("truststore", target.truststore, target),
        *_backup_findings(target.backup_dir),
    ]
