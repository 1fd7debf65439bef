"""Look at the certdeploy targets on this minion, changing no certificate: facts for the
rollout's pre-flight, status, health, the ring, keyspaces, the health gate and compliance.

Part of the ``certdeploy`` execution module: Salt's loader merges this file into
``certdeploy.py``'s functions (same ``__virtualname__``); the plumbing both use is
``_utils/certdeploy_core/face.py``. Returns carry public material only, never key bytes.
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltInvocationError

# Salt makes the utils dirs importable only while it loads this module: import every shared
# module here, never lazily inside a function.
try:
    from certdeploy_core import bundle as certdeploy_bundle
    from certdeploy_core import cassandra as certdeploy_cassandra
    from certdeploy_core import compliance as certdeploy_compliance
    from certdeploy_core import face as certdeploy_face
    from certdeploy_core import gate as certdeploy_gate
    from certdeploy_core import material as certdeploy_material
    from certdeploy_core import node as certdeploy_node
    from certdeploy_core import profiles as certdeploy_profiles
    from certdeploy_core import target as certdeploy_target

    HAS_UTILS = True
    IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on the minion's sync state
    HAS_UTILS = False
    IMPORT_ERROR = str(exc)

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
    """This call's view of Salt (pillar, target, host, bundle, retcode)."""
    return certdeploy_face.Face(__opts__, __pillar__, __context__, __salt__)


def _public(func):
    return certdeploy_face.public(func, _face)


# ----------------------------------------------------------------------------- public


@_public
def peer_info(target="cassandra"):
    """
    Public facts other nodes need for cross-trust checks: this node's installed leaf + chain
    and the CAs its truststore holds (PEM, no key material).

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.peer_info
    """
    return _peer_info(_face().target(target))


def _peer_info(tgt):
    try:
        return {
            "node": tgt.node,
            "chain_pem": certdeploy_material.current_chain_pem(tgt),
            "trust_pem": certdeploy_bundle.cert_pem(*certdeploy_material.current_trust(tgt)),
            "not_after": (certdeploy_material.on_disk(tgt)["keystore"] or {}).get("not_after"),
        }
    except OSError as exc:
        raise CommandExecutionError(f"{tgt.node}: cannot read installed stores: {exc}") from exc


@_public
def status(target="cassandra"):
    """
    Fingerprints served (client and internode ports) and on disk, expiry, backups and the last
    deployment record.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.status
    """
    face = _face()
    return certdeploy_node.status(face.target(target), face.host())


@_public
def health(target="cassandra", warn_days=30, timeout=3):
    """
    Is the node serving what certdeploy last deployed (or, before any deployment, what is on
    disk), and for how long is it valid? Changes nothing; the beacon's data source. Returns
    ``node``, ``target``, ``cluster``, ``expected``, ``served`` (both ports), ``match``,
    ``serving``, ``not_after``, ``days_left``, ``expiring`` and the last deployment's
    ``last_outcome`` and ``last_deploy_timestamp``.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.health warn_days=30
    """
    face = _face()
    tgt = face.target(target)
    record = certdeploy_node.last_record(tgt, face.host()) or {}
    result = certdeploy_node.health(
        tgt, record.get("expected_fingerprint"), warn_days=float(warn_days), timeout=float(timeout)
    )
    pillar = face.settings()
    return {
        **result,
        "cluster": pillar.get("cluster"),
        "last_outcome": record.get("outcome"),
        "last_deploy_timestamp": record.get("epoch"),
    }


@_public
def targets():
    """
    The certdeploy targets this minion's pillar defines.

    CLI Example:

    .. code-block:: bash

        salt '*' certdeploy.targets
    """
    return certdeploy_target.target_names(_face().pillar())


@_public
def describe(target="cassandra"):
    """
    The target's public description from pillar: node, addresses, ports, dc, rack, store
    type and paths (never passwords). The rollout runner plans from this.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.describe
    """
    face = _face()
    return _describe(face.target(target))


def _describe(tgt):
    pillar = _face().settings()
    return {
        **tgt.public(),
        "cluster": str(pillar.get("cluster") or "default"),
        "maintenance_windows": pillar.get("maintenance_windows") or [],
        "bundle_version": pillar.get("bundle_version"),
    }


@_public
def bundle_public(target="cassandra"):
    """
    The public half of the pending bundle: new leaf + chain and the new trust CAs (PEM), for
    whole-plan cross-trust checks on the master. No key material.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.bundle_public
    """
    face = _face()
    return _bundle_public(face.target(target))


def _bundle_public(tgt):
    new = _face().bundle(tgt)
    return {
        "node": tgt.node,
        "fingerprint": new.fingerprint,
        "chain_pem": certdeploy_bundle.cert_pem(new.cert, *new.chain),
        "trust_pem": certdeploy_bundle.cert_pem(*new.trust),
        "certificate": new.public_summary(),
    }


@_public
def ring(target="cassandra"):
    """
    The ring as this node sees it, over CQL (``system_views.gossip_info``, no JVM): one row
    per ring member with dc, rack and the two-letter state (UN, DN, UJ...). Up means its
    heartbeat moved while we watched.

    CLI Example:

    .. code-block:: bash

        salt cass1 certdeploy.ring
    """
    face = _face()
    tgt = face.target(target)
    return certdeploy_cassandra.ring_rows(tgt, face.host())


@_public
def keyspaces(target="cassandra"):
    """
    Replication settings of every keyspace (CQL over TLS from this node), for the planner.

    CLI Example:

    .. code-block:: bash

        salt cass1 certdeploy.keyspaces
    """
    face = _face()
    return _keyspaces(face.target(target))


def _keyspaces(tgt):
    try:
        return certdeploy_gate.keyspaces(tgt)
    except Exception as exc:  # noqa: BLE001 - the driver raises many types
        raise CommandExecutionError(f"{tgt.node}: cannot read keyspaces over CQL: {exc}") from exc


# The parts ``facts`` can give, each what the function of that name returns.


_FACTS = {
    "describe": _describe,
    "peer_info": _peer_info,
    "bundle_public": _bundle_public,
    "served": lambda tgt: certdeploy_node.status_served(tgt),
    "ring": lambda tgt: certdeploy_cassandra.ring_rows(tgt, _face().host()),
    "keyspaces": _keyspaces,
}


@_public
def facts(
    target="cassandra", parts=None, probe=None, probe_parts=None, peers=None, skip_cross_trust=False
):
    """
    Several read-only facts in one round trip, for the rollout's pre-flight: ``describe``,
    ``peer_info``, ``bundle_public``, ``served`` (the certificate on both ports), ``ring``,
    ``keyspaces`` and ``validate`` (the pending bundle against ``peers``, or with
    ``skip_cross_trust``; default: the first four). Each part is what the function of that
    name returns, or its error as
    ``"ERROR: ..."``; ``ring`` and ``keyspaces`` run side by side. ``probe_parts`` are added
    on the minion named ``probe`` only, if it is a cluster node: one round trip gives every
    node's facts and one node's view of the cluster. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.facts
        salt cass1 certdeploy.facts parts='[ring, keyspaces]'
        salt 'cass*' certdeploy.facts probe=cass1 probe_parts='[ring, keyspaces]'
    """
    face = _face()
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    wanted = list(parts or ("describe", "peer_info", "bundle_public", "served"))
    extra = list(probe_parts or ())
    unknown = [p for p in wanted + extra if p not in _FACTS and p != "validate"]
    if unknown:
        raise SaltInvocationError(
            f"{face.minion_id}: facts: unknown parts {unknown}. Fix: use "
            f"{sorted([*_FACTS, 'validate'])}"
        )
    tgt = face.target(target)
    if probe == face.minion_id and certdeploy_profiles.trait(tgt, "FLEET") == "cluster":
        wanted += [p for p in extra if p not in wanted]

    def one(part):
        try:
            if part == "validate":  # what certdeploy.validate answers, with ``peers``
                return certdeploy_node.validate(
                    tgt,
                    face.bundle(tgt),
                    peers=peers,
                    skip_cross_trust=skip_cross_trust,
                    host=face.host(),
                )
            return _FACTS[part](tgt)
        except (CommandExecutionError, SaltInvocationError, OSError) as exc:
            return f"ERROR: {exc}"

    slow = [p for p in wanted if p in ("ring", "keyspaces")]
    out = {p: one(p) for p in wanted if p not in slow}
    if len(slow) > 1:  # two CQL sessions, one waiting for heartbeats: side by side
        # Salt's dunders live in context variables, which a new thread does not inherit.
        with ThreadPoolExecutor(max_workers=len(slow)) as pool:
            futures = {p: pool.submit(contextvars.copy_context().run, one, p) for p in slow}
            out.update({p: f.result() for p, f in futures.items()})
    else:
        out.update({p: one(p) for p in slow})
    return out


@_public
def health_gate(
    expect,
    target="cassandra",
    keyspace="certdeploy_health",
    replication=None,
    timeout=60,
    settle=0,
    wait_served=0,
):
    """
    The health gate, checked from this node: ring all UN, a QUORUM write + read over TLS in
    ``keyspace`` (created if absent with ``replication``), and every address in ``expect``
    serving its expected fingerprint on the client and internode ports. ``wait_served``: the
    gate runs beside the deployment and first waits that long for the new certificates.

    CLI Example:

    .. code-block:: bash

        salt cass1 certdeploy.health_gate expect='{"127.0.0.2": "<sha256>"}'
    """
    face = _face()
    tgt = face.target(target)
    result = certdeploy_gate.gate(
        tgt,
        face.host(),
        dict(expect),
        keyspace=keyspace,
        replication=replication,
        timeout=float(timeout),
        settle=float(settle),
        wait_served=float(wait_served),
    )
    face.failed(result["ok"])
    return result


@_public
def compliance(target="cassandra", allowed_issuers=None, expected_cas=None, min_days=30):
    """
    Check this node live, changing nothing: served fingerprint equals the expected one on both
    ports, days to expiry, issuer allowed, TLS 1.0/1.1 refused and 1.2+ accepted (real
    handshakes), key/keystore files 0600 with the right owner, private backups, and the
    truststore holding exactly ``expected_cas`` (SHA-256 fingerprints).

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.compliance min_days=30
    """
    face = _face()
    tgt = face.target(target)
    host = face.host()
    record = certdeploy_node.last_record(tgt, host) or {}
    result = certdeploy_compliance.check_node(
        tgt,
        record,
        host=host,
        allowed_issuers=allowed_issuers,
        expected_cas=expected_cas,
        min_days=min_days,
    )
    face.failed(result["ok"])
    return result
