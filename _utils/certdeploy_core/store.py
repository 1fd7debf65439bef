"""The master-side bundle store: versioned TLS bundles per cluster and minion.

Upstream (a CA or renewal tool) puts new bundles here; the ``certdeploy_store`` ext_pillar
hands each minion only its own bundle as pillar ``certdeploy:bundle``. Private keys therefore
travel only in that minion's (encrypted) pillar, never through ``salt://`` or job arguments.

Layout::

    <root>/<cluster>/<minion_id>/<version>/cert.pem     leaf (+ intermediates, as given)
                                           chain.pem    intermediates (only when given)
                                           trust.pem    CA certificates for the truststore
                                           key.pem      unencrypted PKCS#8 private key
                                           meta.json    public facts only; written last

Every directory is 0700 and every file 0600, whatever the umask. Versions are ``v0001``,
``v0002``... per minion, never reused. A version directory is complete only once its
``meta.json`` exists; readers ignore incomplete ones (an interrupted or in-progress put).

Pure functions; no Salt dunders. Nothing here logs, returns or raises key material, except
:func:`read`, whose return holds the key and is meant for the ext_pillar alone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import shutil
import stat

from cryptography.hazmat.primitives import serialization
from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import bundle as bundle_util
from . import checks
from . import files as files_util

log = logging.getLogger(__name__)

DEFAULT_ROOT = "/srv/certdeploy/store"
CERT, CHAIN, TRUST, KEY, META = "cert.pem", "chain.pem", "trust.pem", "key.pem", "meta.json"
DIR_MODE, FILE_MODE = 0o700, 0o600
STORE = "certdeploy_store"  # the "node" named by errors that concern no particular minion

_VERSION = re.compile(r"v(?P<number>[0-9]{4,})")
_MAX_CLAIM_TRIES = 1000


# ----------------------------------------------------------------------------- names


def _root(root) -> str:
    return files_util.safe_path(os.fspath(root) if root is not None else root, "root", STORE)


def _names(cluster, minion_id) -> tuple[str, str]:
    minion_id = files_util.safe_name(minion_id, "minion_id", STORE)
    cluster = files_util.safe_name(cluster, "cluster", minion_id)
    return cluster, minion_id


def version_name(number: int) -> str:
    """``7`` -> ``v0007``."""
    return f"v{number:04d}"


def _version_number(name: str) -> int | None:
    match = _VERSION.fullmatch(name) if isinstance(name, str) else None
    return int(match["number"]) if match else None


def _check_version(version, minion_id: str) -> str:
    if _version_number(version) is None:
        raise bundle_util.bad_input(
            minion_id,
            "version",
            f"{version!r} is not a store version",
            "use a version name such as 'v0003' (see versions())",
        )
    return version


# ----------------------------------------------------------------------------- filesystem


def _io_error(path: str, action: str, exc: OSError) -> CommandExecutionError:
    return CommandExecutionError(
        f"{path}: cannot {action}: {exc.strerror or exc}. "
        "Fix: check the store exists and is owned by (and private to) the user running this"
    )


def _subdirs(path: str) -> list[str]:
    """Names of the real (non-symlink) subdirectories of ``path``; [] when it is missing."""
    try:
        with os.scandir(path) as entries:
            return sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise _io_error(path, "list", exc) from exc


def _private_dir(path: str) -> None:
    """Create ``path`` if needed and force it to 0700 (mkdir's mode is filtered by umask)."""
    try:
        if os.path.islink(path):
            raise CommandExecutionError(
                f"{path}: is a symlink; refusing to store keys through it. "
                "Fix: replace it with a real directory"
            )
        os.makedirs(path, mode=DIR_MODE, exist_ok=True)
        if stat.S_IMODE(os.stat(path).st_mode) != DIR_MODE:
            os.chmod(path, DIR_MODE)
    except OSError as exc:
        raise _io_error(path, "create a private directory at", exc) from exc


def _read_text(path: str) -> str | None:
    """The file's text (no symlinks followed); None when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _io_error(path, "open", exc) from exc
    try:
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise _io_error(path, "read", exc) from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandExecutionError(
            f"{path}: is not UTF-8 text (corrupt store). Fix: put the bundle again"
        ) from None


def _version_dirs(minion_dir: str) -> list[tuple[int, str]]:
    """``(number, name)`` of every version directory, complete or not, oldest first."""
    found = [(_version_number(name), name) for name in _subdirs(minion_dir)]
    return sorted((number, name) for number, name in found if number is not None)


def _meta(version_dir: str, version: str) -> dict | None:
    """The version's meta.json, or None while the version is incomplete."""
    path = os.path.join(version_dir, META)
    text = _read_text(path)
    if text is None:
        return None
    try:
        meta = json.loads(text)
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or meta.get("version") != version or not meta.get("fingerprint"):
        raise CommandExecutionError(
            f"{path}: is not a valid meta.json for {version} (corrupt store). "
            "Fix: remove that version directory, or put the bundle again"
        )
    return meta


def _no_symlink(path: str) -> None:
    """Refuse a symlinked cluster or minion directory: it could serve another minion's key."""
    if os.path.islink(path):
        raise CommandExecutionError(
            f"{path}: is a symlink; refusing to read keys through it. "
            "Fix: replace it with a real directory holding only this minion's bundles"
        )


def _complete(root: str, cluster: str, minion_id: str) -> list[tuple[str, dict]]:
    """``(version, meta)`` of every complete version, oldest first."""
    minion_dir = os.path.join(root, cluster, minion_id)
    _no_symlink(os.path.join(root, cluster))
    _no_symlink(minion_dir)
    out = []
    for _number, name in _version_dirs(minion_dir):
        meta = _meta(os.path.join(minion_dir, name), name)
        if meta is not None:
            out.append((name, meta))
    return out


# ----------------------------------------------------------------------------- writing


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def _given(value) -> bool:
    # An optional field left blank ("chain: ''") means "not given", as in load_bundle.
    text = _text(value)
    return value is not None and not (isinstance(text, str) and not text.strip())


def _pem(value, node: str, field: str) -> bytes:
    """The certificates of a field, re-encoded as clean PEM in the order given.

    Same certificates, same order, same split between cert and chain as the input: only
    comments and whitespace around the blocks are dropped, so the files are plain ASCII.
    """
    return bundle_util.cert_pem(*bundle_util.load_certs(value, node, field)).encode("ascii")


def _claim_version(minion_dir: str) -> str:
    """Atomically create the next version directory (never reusing a name); returns it."""
    existing = _version_dirs(minion_dir)
    number = (existing[-1][0] if existing else 0) + 1
    for _ in range(_MAX_CLAIM_TRIES):
        name = version_name(number)
        path = os.path.join(minion_dir, name)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:  # a concurrent put took it: take the next one
            number += 1
            continue
        except OSError as exc:
            raise _io_error(path, "create", exc) from exc
        try:
            os.chmod(path, DIR_MODE)
        except OSError as exc:
            raise _io_error(path, "chmod", exc) from exc
        return name
    raise CommandExecutionError(
        f"{minion_dir}: could not claim a new version directory. "
        "Fix: check for a runaway writer, then prune the store"
    )


def put(
    root,
    cluster: str,
    minion_id: str,
    bundle: dict,
    *,
    source: str = "",
    validate_names: dict | None = None,
    now: dt.datetime | None = None,
    min_days_remaining: int = 30,
) -> dict:
    """Validate ``bundle`` for ``minion_id`` and store it as that minion's next version.

    ``bundle`` is ``{"cert", "key", "trust", "chain"?, "key_passphrase"?}`` (PEM). Everything
    is checked before anything is written: a refused bundle leaves the store untouched. The
    SAN check runs only when ``validate_names`` (``{"ips": [...], "dns": [...]}``) is given:
    the store does not know node addresses, and the node validates again on deploy.

    The key is stored as unencrypted PKCS#8 (the passphrase is consumed here). Returns the
    version's public meta plus ``cluster`` and ``minion``.
    """
    root = _root(root)
    cluster, minion_id = _names(cluster, minion_id)
    now = bundle_util.as_utc(now)
    loaded = bundle_util.load_bundle(bundle, minion_id)
    findings = checks.validate(
        loaded,
        node=minion_id,
        names=validate_names or {"ips": [], "dns": []},
        min_days_remaining=min_days_remaining,
        now=now,
        skip_cross_trust=True,
    )
    if validate_names is None:
        findings = [f for f in findings if f["check"] != "names"]
    checks.raise_on_failures(findings, minion_id)

    files = {
        CERT: _pem(bundle["cert"], minion_id, "cert"),
        TRUST: _pem(bundle["trust"], minion_id, "trust"),
        KEY: loaded.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    }
    if _given(bundle.get("chain")):
        files[CHAIN] = _pem(bundle["chain"], minion_id, "chain")
    summary = loaded.public_summary()

    cluster_dir = os.path.join(root, cluster)
    minion_dir = os.path.join(cluster_dir, minion_id)
    for path in (root, cluster_dir, minion_dir):
        _private_dir(path)
    version = _claim_version(minion_dir)
    version_dir = os.path.join(minion_dir, version)
    meta = {
        "version": version,
        "created": bundle_util.iso_utc(now),
        "fingerprint": summary["fingerprint"],
        "not_after": summary["not_after"],
        "subject": summary["subject"],
        "issuer": summary["issuer"],
        "source": str(source or ""),
    }
    try:
        for name, data in files.items():
            files_util.atomic_write(os.path.join(version_dir, name), data, mode=FILE_MODE)
        # meta.json last: its presence is what makes the version complete.
        files_util.atomic_write(
            os.path.join(version_dir, META),
            (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"),
            mode=FILE_MODE,
        )
    except BaseException:
        shutil.rmtree(version_dir, ignore_errors=True)  # no half version with a key lying about
        raise
    log.info(
        "certdeploy_store: stored %s/%s %s (fingerprint %s)",
        cluster,
        minion_id,
        version,
        meta["fingerprint"],
    )
    return {**meta, "cluster": cluster, "minion": minion_id}


# ----------------------------------------------------------------------------- reading


def versions(root, cluster: str, minion_id: str) -> list[dict]:
    """The meta of every complete version, oldest first (public facts only)."""
    root = _root(root)
    cluster, minion_id = _names(cluster, minion_id)
    return [meta for _name, meta in _complete(root, cluster, minion_id)]


def latest(root, cluster: str, minion_id: str) -> dict | None:
    """The meta of the newest complete version, or None."""
    found = versions(root, cluster, minion_id)
    return found[-1] if found else None


def read(root, cluster: str, minion_id: str, version: str | None = None) -> dict | None:
    """``{"cert", "key", "trust", "chain"?, "version", "fingerprint"}`` of ``version`` (the
    newest complete one when None); None when there is no such complete version.

    The return holds the PRIVATE KEY: only the ext_pillar calls this, and nothing may log it.
    """
    root = _root(root)
    cluster, minion_id = _names(cluster, minion_id)
    if version is not None:
        _check_version(version, minion_id)
    complete = dict(_complete(root, cluster, minion_id))
    if version is None:
        if not complete:
            return None
        version = max(complete, key=_version_number)
    meta = complete.get(version)
    if meta is None:
        return None
    version_dir = os.path.join(root, cluster, minion_id, version)
    out = {}
    for field, name in (("cert", CERT), ("key", KEY), ("trust", TRUST), ("chain", CHAIN)):
        text = _read_text(os.path.join(version_dir, name))
        if text is None and field != "chain":
            if not os.path.isdir(version_dir):
                return None  # pruned between listing and reading
            raise CommandExecutionError(
                f"{version_dir}: {name} is missing from a complete version (corrupt store). "
                "Fix: remove that version directory, or put the bundle again"
            )
        if text is not None:
            out[field] = text
    try:
        leaf = bundle_util.load_certs(out["cert"], minion_id, "cert")[0]
    except SaltInvocationError as exc:
        raise CommandExecutionError(f"{version_dir}: {CERT} is unreadable: {exc}") from None
    if bundle_util.fingerprint(leaf) != meta["fingerprint"]:
        raise CommandExecutionError(
            f"{version_dir}: {CERT} has fingerprint {bundle_util.fingerprint(leaf)}, but "
            f"meta.json says {meta['fingerprint']} (corrupt or tampered store). "
            "Fix: remove that version directory, or put the bundle again"
        )
    out["version"] = version
    out["fingerprint"] = meta["fingerprint"]
    return out


def clusters(root) -> list[str]:
    """Cluster names in the store, sorted."""
    return [name for name in _subdirs(_root(root)) if _is_safe(name)]


def minions(root, cluster: str) -> list[str]:
    """Minion ids stored under ``cluster`` (with or without complete versions), sorted."""
    root = _root(root)
    cluster = files_util.safe_name(cluster, "cluster", STORE)
    return [name for name in _subdirs(os.path.join(root, cluster)) if _is_safe(name)]


def find_minion(root, minion_id: str) -> list[tuple[str, str]]:
    """``[(cluster, minion_id), ...]`` for every cluster holding a complete version of it."""
    root = _root(root)
    minion_id = files_util.safe_name(minion_id, "minion_id", STORE)
    return [
        (cluster, minion_id) for cluster in clusters(root) if _complete(root, cluster, minion_id)
    ]


def _is_safe(name: str) -> bool:
    try:
        files_util.safe_name(name, "name", STORE)
    except SaltInvocationError:
        return False
    return True


# ----------------------------------------------------------------------------- pruning


def prune(root, cluster: str, minion_id: str, keep: int = 5) -> list[str]:
    """Remove all but the newest ``keep`` complete versions; returns the removed names.

    Incomplete versions are left alone (one may be a put in progress).
    """
    root = _root(root)
    cluster, minion_id = _names(cluster, minion_id)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise bundle_util.bad_input(
            minion_id, "keep", f"{keep!r} is not a whole number >= 1", "keep at least 1 version"
        )
    complete = _complete(root, cluster, minion_id)
    removed = []
    for name, _meta_dict in complete[: max(len(complete) - keep, 0)]:
        version_dir = os.path.join(root, cluster, minion_id, name)
        try:
            # meta.json first: from then on readers treat the version as gone.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(version_dir, META))
            shutil.rmtree(version_dir)
        except OSError as exc:
            raise _io_error(version_dir, "remove", exc) from exc
        removed.append(name)
    if removed:
        log.info("certdeploy_store: pruned %s/%s: %s", cluster, minion_id, ", ".join(removed))
    return removed
