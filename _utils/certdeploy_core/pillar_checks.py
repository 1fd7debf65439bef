"""What every target profile shares: pillar checks (safe paths, the store type and its
passwords, a private file mode, the ``verify_client`` files, the drill) and the public view.
``bad(key, problem, fix)`` builds the error that names the minion, the pillar key and the fix."""

from __future__ import annotations

from dataclasses import asdict

from . import files as certdeploy_files
from .pem import STORE_TYPES


def stores_and_mode(name: str, data: dict, node: str, bad, paths) -> int:
    """Check the ``paths`` keys, ``store_type`` and its passwords; return the octal mode."""
    for key in paths:
        certdeploy_files.safe_path(data[key], f"certdeploy:targets:{name}:{key}", node)
    if data["store_type"] not in STORE_TYPES:
        raise bad("store_type", f"{data['store_type']!r} is not supported", "use pkcs12 or pem")
    if data["store_type"] == "pkcs12":
        for key in ("keystore_password", "truststore_password"):
            if not data.get(key):
                raise bad(key, "empty (a PKCS12 store needs one)", "set the store's password")
    try:
        mode = int(str(data["mode"]), 8)
    except ValueError:
        raise bad("mode", f"{data['mode']!r} is not octal", "use e.g. '0600'") from None
    if mode & 0o077:
        raise bad("mode", f"{data['mode']} lets others read a private key", "use '0600'")
    return mode


def verify_client(data: dict, node: str) -> dict:
    found = data.get("verify_client") or {}
    for key in ("cert", "key"):
        if found.get(key):
            certdeploy_files.safe_path(found[key], f"verify_client:{key}", node)
    return found


def drill(value, bad):
    if value not in (None, "", "activate", "verify"):
        raise bad("drill_fail_step", f"{value!r} is not a drillable step", "use activate or verify")
    return value or None


def public(target) -> dict:
    """A target's fields without the store passwords, mode in octal: for returns and events."""
    data = asdict(target)
    data.pop("keystore_password")
    data.pop("truststore_password")
    data["mode"] = f"{target.mode:04o}"
    return data
