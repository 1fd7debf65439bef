"""ext_pillar: hand each minion its own TLS bundle from the certdeploy store.

The store (``_utils/certdeploy_core/store.py``) lives on the master; this module gives a minion
exactly its own bundle as pillar ``certdeploy:bundle``, which the ``certdeploy`` execution
module reads. Pillar is rendered per minion and encrypted in transit, so a private key reaches
only the minion it belongs to, and never passes through ``salt://`` or the job cache.

Master config:

.. code-block:: yaml

    ext_pillar:
      - certdeploy_store:
          root: /srv/certdeploy/store     # default
          # cluster: prod-cassandra       # only needed when a minion id is in two clusters
          # pin: {cass-a1: v0003}         # serve this store version instead of the newest

Result for a minion with a bundle in the store::

    certdeploy:
      bundle: {cert: ..., key: ..., trust: ..., chain: ...}   # chain only when stored
      bundle_version: v0003
      bundle_fingerprint: <sha256 of the leaf>

and ``{}`` when the store holds nothing (or nothing unambiguous) for it. Only the minion id,
the version and the fingerprint are ever logged.
"""

from __future__ import annotations

import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    from certdeploy_core import files as files_util
    from certdeploy_core import store as store_util

    HAS_UTILS = True
    IMPORT_ERROR = ""
    DEFAULT_ROOT = store_util.DEFAULT_ROOT
except ImportError as exc:  # pragma: no cover - depends on the master's sync state
    HAS_UTILS = False
    IMPORT_ERROR = str(exc)
    DEFAULT_ROOT = "/srv/certdeploy/store"

log = logging.getLogger(__name__)
__virtualname__ = "certdeploy_store"


def __virtual__():
    if not HAS_UTILS:
        return (
            False,
            f"certdeploy_store: the certdeploy_core utils package is not importable "
            f"({IMPORT_ERROR}); run salt-run saltutil.sync_utils (and make sure cryptography "
            "is installed for the master's Python)",
        )
    return __virtualname__


def _pinned(pin, minion_id: str):
    """The version pinned for ``minion_id`` (``v0003``; a bare number is accepted), or None."""
    if not pin:
        return None
    if not isinstance(pin, dict):
        raise SaltInvocationError(
            f"{minion_id}: pin: is a {type(pin).__name__}, not a mapping. "
            "Fix: set pin to {minion_id: version}, e.g. {cass-a1: v0003}"
        )
    version = pin.get(minion_id)
    if isinstance(version, int) and not isinstance(version, bool):
        return store_util.version_name(version)
    return version


def _cluster_of(root: str, minion_id: str) -> str | None:
    found = store_util.find_minion(root, minion_id)
    if len(found) > 1:
        log.warning(
            "certdeploy_store: minion %s is in clusters %s; serving no bundle. "
            "Fix: set cluster in this ext_pillar's config, or remove it from all but one",
            minion_id,
            ", ".join(cluster for cluster, _ in found),
        )
        return None
    return found[0][0] if found else None


def _bundle_pillar(minion_id: str, root, cluster, pin) -> dict:
    try:
        files_util.safe_name(minion_id, "minion_id", "certdeploy_store")
    except SaltInvocationError:
        log.debug("certdeploy_store: minion id %r cannot be in the store", minion_id)
        return {}
    version = _pinned(pin, minion_id)
    if cluster is None:
        cluster = _cluster_of(root, minion_id)
        if cluster is None:
            log.debug("certdeploy_store: no bundle for %s", minion_id)
            return {}
    data = store_util.read(root, str(cluster), minion_id, version)
    if data is None:
        if version is not None:
            log.warning(
                "certdeploy_store: %s is pinned to %s, which is not a complete version in "
                "cluster %s; serving no bundle. Fix: correct the pin or remove it",
                minion_id,
                version,
                cluster,
            )
        else:
            log.debug("certdeploy_store: no bundle for %s in cluster %s", minion_id, cluster)
        return {}
    log.debug(
        "certdeploy_store: serving %s %s (fingerprint %s)%s",
        minion_id,
        data["version"],
        data["fingerprint"],
        " (pinned)" if version is not None else "",
    )
    bundle = {k: v for k, v in data.items() if k not in ("version", "fingerprint")}
    return {
        "certdeploy": {
            "bundle": bundle,
            "bundle_version": data["version"],
            "bundle_fingerprint": data["fingerprint"],
        }
    }


def ext_pillar(minion_id, pillar, root=DEFAULT_ROOT, cluster=None, pin=None):
    """``{"certdeploy": {"bundle", "bundle_version", "bundle_fingerprint"}}`` for exactly
    ``minion_id``, or ``{}``. ``pillar`` (the minion's pillar so far) is not used.

    Failures are logged (never with key material) and yield ``{}``: the minion then has no
    bundle and certdeploy refuses to deploy, rather than deploying something unintended.
    """
    try:
        return _bundle_pillar(minion_id, root, cluster, pin)
    except (SaltInvocationError, CommandExecutionError) as exc:
        log.error("certdeploy_store: no bundle for %s: %s", minion_id, exc)
    except Exception as exc:  # noqa: BLE001 - the text of an unknown error is not logged
        log.error(
            "certdeploy_store: no bundle for %s: unexpected %s", minion_id, type(exc).__name__
        )
    return {}
