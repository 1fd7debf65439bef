"""Deploy TLS certificates to the Cassandra node (and other targets) on this minion.

A thin Salt face over ``_utils/certdeploy_core/node.py``: validate -> backup -> install -> configure
-> activate -> verify, with automatic rollback. The node is described by pillar
``certdeploy:targets:<target>`` (see ``pillar/certdeploy_example.sls``); the new material comes
from pillar ``certdeploy:bundles:<target>`` or ``certdeploy:bundle`` — never from job
arguments, which the master keeps in its job cache.

This file holds what changes a target; ``certdeploy_inspect.py`` what only looks (facts,
status, health, the gate, compliance). Salt merges both into one ``certdeploy`` module; the
plumbing they share is ``_utils/certdeploy_core/face.py``.

Private-key bytes never appear in a return, an event or the log.
"""

from __future__ import annotations

import logging

# Salt makes the utils dirs importable only while it loads this module: import every shared
# module here, never lazily inside a function.
try:
    from certdeploy_core import bundle as certdeploy_bundle
    from certdeploy_core import face as certdeploy_face
    from certdeploy_core import material as certdeploy_material
    from certdeploy_core import node as certdeploy_node
    from certdeploy_core import result as certdeploy_result
    from certdeploy_core import trust as certdeploy_trust

    HAS_UTILS = True
    IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on the minion's sync state
    HAS_UTILS = False
    IMPORT_ERROR = str(exc)

log = logging.getLogger(__name__)
__virtualname__ = "certdeploy"


def __virtual__():
    if not HAS_UTILS:
        return (
            False,
            f"certdeploy: shared utils not importable ({IMPORT_ERROR}); "
            "run saltutil.sync_utils (or sync_all) and make sure cryptography is installed",
        )
    return __virtualname__


def _face():
    """This call's view of Salt (pillar, target, host, bundle, events, retcode)."""
    return certdeploy_face.Face(__opts__, __pillar__, __context__, __salt__)


def _public(func):
    return certdeploy_face.public(func, _face)


# ----------------------------------------------------------------------------- public


@_public
def validate(target="cassandra", peers=None, skip_cross_trust=False):
    """
    Check the new bundle completely and change nothing. Returns structured findings: chain to
    the trust anchors, key match, SANs, validity window, key policy, signature algorithms, EKU,
    keystore build, and cross-trust with ``peers`` (or ``skip_cross_trust=True``).

    Malformed input (empty, truncated, DER, over 1 MiB, wrong passphrase) raises an error that
    names the node, the field and the fix.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.validate skip_cross_trust=True
    """
    face = _face()
    tgt = face.target(target)
    result = certdeploy_node.validate(
        tgt,
        face.bundle(tgt),
        peers=peers,
        skip_cross_trust=skip_cross_trust,
        host=face.host(),
    )
    face.failed(result["valid"])
    return result


@_public
def backup(target="cassandra"):
    """
    Snapshot every managed file (keystore, truststore, cassandra.yaml) into a private,
    versioned backup with a manifest. Returns the ``backup_id``.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.backup
    """
    return certdeploy_node.backup(_face().target(target), note={"reason": "manual"})


@_public
def install(target="cassandra", test=False):
    """
    Write the new keystore and truststore in place (same paths and passwords), atomically, with
    pillar's owner and mode. Idempotent. Does not activate: use ``deploy`` for the safe path.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.install test=True
    """
    face = _face()
    tgt = face.target(target)
    return certdeploy_node.install(tgt, face.bundle(tgt), test=test)


@_public
def configure(target="cassandra", test=False):
    """
    Make the encryption keys of cassandra.yaml match pillar, preserving everything else.
    Reports ``restart_required`` (paths, passwords, protocols cannot be hot-reloaded).

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.configure test=True
    """
    return certdeploy_node.configure(_face().target(target), test=test)


@_public
def activate(target="cassandra", method="auto", restart_required=False):
    """
    Activate installed material: ``reload`` (nodetool reloadssl), ``restart`` (drain, stop,
    start, wait for CQL and UN) or ``auto`` (reload unless ``restart_required``). This proves
    nothing by itself: run ``verify``.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.activate method=reload
    """
    face = _face()
    tgt = face.target(target)
    return certdeploy_node.activate(
        tgt, face.host(), method=method, restart_required=restart_required
    )


@_public
def verify(target="cassandra", expected=None, timeout=None):
    """
    Prove the node serves ``expected`` (default: the installed keystore's fingerprint) on the
    client and internode ports on new connections, that CQL over TLS answers, and that the
    ring is all UN. Returns the evidence.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.verify
    """
    face = _face()
    tgt = face.target(target)
    if expected is None:
        expected = (certdeploy_material.on_disk(tgt)["keystore"] or {}).get("fingerprint")
    result = certdeploy_node.verify(tgt, face.host(), expected, timeout=timeout)
    face.failed(result["ok"])
    return result


@_public
def rollback(target="cassandra", backup_id=None, method="auto", timeout=None):
    """
    Restore a backup (default: the latest) atomically, reactivate, and verify that the old
    certificate is served again.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.rollback backup_id=20261126T201500123456Z
    """
    face = _face()
    tgt = face.target(target)
    result = certdeploy_node.rollback(tgt, face.host(), backup_id, method=method, timeout=timeout)
    outcome = "rolled_back" if result["verified"] else "failed"
    face.fire(tgt, outcome, {"outcome": outcome, "backup_id": result["backup_id"]})
    face.failed(result["verified"])
    return result


@_public
def deploy(
    target="cassandra",
    method="auto",
    peers=None,
    skip_cross_trust=False,
    verify_timeout=None,
    require_serving=None,
):
    """
    The safe path: validate -> backup -> install -> configure -> activate -> verify. Any
    failure after the backup rolls back automatically. Returns per-step timings, the evidence,
    and the outcome: ``deployed``, ``rolled_back`` or ``rollback_failed``. ``verify_timeout``
    (seconds) overrides the target's ``verify_timeout`` for the verification and the rollback.
    ``require_serving`` (``{node: [[label, address, port], ...]}``, what the rollout passes):
    first probe those endpoints from here, and answer ``refused``, with nothing changed, if
    one does not serve TLS.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.deploy skip_cross_trust=True
        salt cass2 certdeploy.deploy method=restart peers='[...]'
    """
    face = _face()
    tgt = face.target(target)
    result = certdeploy_node.deploy(
        tgt,
        face.host(),
        face.bundle(tgt),
        method=method,
        peers=peers,
        skip_cross_trust=skip_cross_trust,
        verify_timeout=verify_timeout,
        require_serving=require_serving,
    )
    face.fire(tgt, *certdeploy_result.node_event(result))
    if result["outcome"] == "rollback_failed":
        log.error("certdeploy: %s ROLLBACK FAILED: %s", tgt.node, result.get("rollback"))
    face.failed(result["outcome"] == "deployed")
    return result


@_public
def trust_update(
    add=None,
    remove=None,
    target="cassandra",
    method="reload",
    verify_timeout=None,
    skip_cross_trust=True,
):
    """
    Change only the truststore: add CA certificates (PEM) and/or remove CAs by SHA-256
    fingerprint, keeping this node's own key and certificate. Runs the same safe path as
    ``deploy`` (validate that the node still trusts its own chain, backup, atomic install,
    reload, verify, automatic rollback). Used by CA rotation phases 1 and 3.
    ``skip_cross_trust`` is accepted for the rollout's common keywords and always holds: the
    node's own certificate does not change, and the rotation checks trust for the whole plan.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.trust_update add='["-----BEGIN CERTIFICATE-----..."]'
    """
    face = _face()
    tgt = face.target(target)
    key, cert, chain = certdeploy_material.open_current_keystore(tgt)
    trust = certdeploy_trust.updated(
        certdeploy_material.current_trust(tgt), add=add, remove=remove, node=tgt.node
    )
    bundle = certdeploy_bundle.Bundle(cert=cert, key=key, chain=tuple(chain), trust=tuple(trust))
    result = certdeploy_node.deploy(
        tgt,
        face.host(),
        bundle,
        method=method,
        skip_cross_trust=True,
        verify_timeout=verify_timeout,
    )
    result["trust"] = sorted(certdeploy_bundle.fingerprint(ca) for ca in trust)
    face.fire(tgt, *certdeploy_result.node_event(result))
    face.failed(result["outcome"] == "deployed")
    return result


@_public
def plan(target="cassandra"):
    """
    What ``deploy`` would change, without changing anything: old and new fingerprint, files,
    cassandra.yaml keys and the activation method.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.plan
    """
    face = _face()
    tgt = face.target(target)
    return certdeploy_node.plan(tgt, face.bundle(tgt))


@_public
def recover(target="cassandra", timeout=None):
    """
    After an interrupted deployment (the minion killed mid-install, the host rebooted), put
    the node back on one certificate, verified: completed as deployed when it already serves
    and verifies the new certificate, else its backup restored and the old one proven served.
    Changes nothing when no deployment was interrupted. ``deploy`` and a rollout's ``resume``
    call it first.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.recover
    """
    face = _face()
    tgt = face.target(target)
    result = certdeploy_node.recover(tgt, face.host(), timeout=timeout)
    if result["interrupted"]:
        outcome = "recovered" if result["verified"] else "failed"
        face.fire(tgt, outcome, {"outcome": outcome, "action": result["action"]})
    face.failed(result["verified"])
    return result
