"""Deploy TLS certificates to the Cassandra node (and other targets) on this minion.

A thin Salt face over ``_utils/certdeploy_core/node.py``: validate -> backup -> install -> configure
-> activate -> verify, with automatic rollback. The node is described by pillar
``certdeploy:targets:<target>`` (see ``pillar/certdeploy_example.sls``); the new material comes
from pillar ``certdeploy:bundles:<target>`` or ``certdeploy:bundle`` — never from job
arguments, which the master keeps in its job cache.

Private-key bytes never appear in a return, an event or the log.
"""

from __future__ import annotations

import functools
import logging

from salt.exceptions import CommandExecutionError, SaltInvocationError

# Salt makes the utils dirs importable only while it loads this module: import every shared
# module here, never lazily inside a function.
try:
    from certdeploy_core import bundle as certdeploy_bundle
    from certdeploy_core import cassandra as certdeploy_cassandra
    from certdeploy_core import compliance as certdeploy_compliance
    from certdeploy_core import gate as certdeploy_gate
    from certdeploy_core import material as certdeploy_material
    from certdeploy_core import node as certdeploy_node
    from certdeploy_core import pillar_file as certdeploy_pillar_file
    from certdeploy_core import profiles as certdeploy_profiles
    from certdeploy_core import result as certdeploy_result
    from certdeploy_core import target as certdeploy_target
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


# ----------------------------------------------------------------------------- plumbing


def _face(func):
    """The one error boundary of every public function: certdeploy's errors are already
    Salt's (``certdeploy_core.errors``); a stray ``OSError`` becomes a clean
    ``CommandExecutionError`` naming the minion and the file, never a traceback. It adds
    ``pillar_file=``, the salt-ssh wrapper's pillar (:mod:`certdeploy_core.pillar_file`)."""

    @functools.wraps(func)
    def wrapper(*args, pillar_file=None, **kwargs):
        try:
            if pillar_file:
                _load_pillar_file(pillar_file)
            return func(*args, **kwargs)
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise CommandExecutionError(
                f"{__opts__['id']}: {func.__name__}: {exc.strerror or exc}{where}. "
                "Fix: check that path's existence, owner and mode on this minion"
            ) from exc
        finally:
            __context__.pop("certdeploy.pillar", None)  # one call, one pillar

    return certdeploy_pillar_file.takes_pillar_file(wrapper, func)


def _load_pillar_file(path):
    """Read and delete it; used only when this minion's pillar has no ``certdeploy``."""
    if __pillar__.get("certdeploy"):
        certdeploy_pillar_file.remove(path)
        log.warning("certdeploy: %s has its own pillar; %s deleted unread", __opts__["id"], path)
        return
    __context__["certdeploy.pillar"] = certdeploy_pillar_file.read_and_remove(path, __opts__["id"])


def _pillar():
    """This target's pillar: the minion's own, or the one the salt-ssh wrapper shipped."""
    if __pillar__.get("certdeploy"):
        return __pillar__
    return __context__.get("certdeploy.pillar") or __pillar__


def _agentless():
    return bool(_pillar().get(certdeploy_pillar_file.AGENTLESS))


def _target(target="cassandra"):
    return certdeploy_target.load_target(_pillar(), target, __opts__["id"])


def _host():
    def run(argv, cwd, timeout):
        return __salt__["cmd.run_all"](
            list(argv),
            cwd=cwd,
            timeout=timeout,
            python_shell=False,
            output_loglevel="quiet",
            ignore_retcode=True,
        )

    def service(action, name):
        return bool(__salt__[f"service.{action}"](name))

    def progress(message):
        log.info("certdeploy: %s", message)

    return certdeploy_node.Host(run=run, service=service, cachedir=_state_dir(), progress=progress)


def _state_dir():
    """The last-deploy record's home: pillar ``certdeploy:state_dir``, else the cachedir;
    agentless ``/var/lib/certdeploy`` (salt-ssh's cachedir is in the thin dir)."""
    configured = (_pillar().get("certdeploy") or {}).get("state_dir")
    if configured:
        return str(configured)
    return "/var/lib/certdeploy" if _agentless() else __opts__["cachedir"]


def _bundle(tgt):
    """The new material, from pillar only: a job argument would put the key in the master's
    job cache."""
    pillar = certdeploy_target.plain(_pillar().get("certdeploy") or {})
    bundle = (pillar.get("bundles") or {}).get(tgt.name) or pillar.get("bundle")
    return certdeploy_material.read_bundle(tgt, bundle)


def _failed(ok):
    """Make ``salt`` (and orchestrate's ``salt.function``) see a non-success outcome: the
    minion's job return carries retcode 1."""
    if not ok:
        __context__["retcode"] = 1


def _fire(tgt, outcome, data):
    if _agentless():
        return  # no event bus under salt-ssh: the master fires it from the return
    tag = f"certdeploy/node/{__opts__['id']}/{outcome}"
    try:
        __salt__["event.send"](tag, {"target": tgt.name, "node": tgt.node, **data})
    except Exception as exc:  # noqa: BLE001 - a lost event must not fail a deployment
        log.warning("certdeploy: could not fire %s: %s", tag, exc)


# ----------------------------------------------------------------------------- public


@_face
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
    tgt = _target(target)
    result = certdeploy_node.validate(
        tgt, _bundle(tgt), peers=peers, skip_cross_trust=skip_cross_trust, host=_host()
    )
    _failed(result["valid"])
    return result


@_face
def peer_info(target="cassandra"):
    """
    Public facts other nodes need for cross-trust checks: this node's installed leaf + chain
    and the CAs its truststore holds (PEM, no key material).

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.peer_info
    """
    return _peer_info(_target(target))


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


@_face
def backup(target="cassandra"):
    """
    Snapshot every managed file (keystore, truststore, cassandra.yaml) into a private,
    versioned backup with a manifest. Returns the ``backup_id``.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.backup
    """
    return certdeploy_node.backup(_target(target), note={"reason": "manual"})


@_face
def install(target="cassandra", test=False):
    """
    Write the new keystore and truststore in place (same paths and passwords), atomically, with
    pillar's owner and mode. Idempotent. Does not activate: use ``deploy`` for the safe path.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.install test=True
    """
    tgt = _target(target)
    return certdeploy_node.install(tgt, _bundle(tgt), test=test)


@_face
def configure(target="cassandra", test=False):
    """
    Make the encryption keys of cassandra.yaml match pillar, preserving everything else.
    Reports ``restart_required`` (paths, passwords, protocols cannot be hot-reloaded).

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.configure test=True
    """
    return certdeploy_node.configure(_target(target), test=test)


@_face
def activate(target="cassandra", method="auto", restart_required=False):
    """
    Activate installed material: ``reload`` (nodetool reloadssl), ``restart`` (drain, stop,
    start, wait for CQL and UN) or ``auto`` (reload unless ``restart_required``). This proves
    nothing by itself: run ``verify``.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.activate method=reload
    """
    tgt = _target(target)
    return certdeploy_node.activate(tgt, _host(), method=method, restart_required=restart_required)


@_face
def verify(target="cassandra", expected=None, timeout=None):
    """
    Prove the node serves ``expected`` (default: the installed keystore's fingerprint) on the
    client and internode ports on new connections, that CQL over TLS answers, and that the
    ring is all UN. Returns the evidence.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.verify
    """
    tgt = _target(target)
    if expected is None:
        expected = (certdeploy_material.on_disk(tgt)["keystore"] or {}).get("fingerprint")
    result = certdeploy_node.verify(tgt, _host(), expected, timeout=timeout)
    _failed(result["ok"])
    return result


@_face
def rollback(target="cassandra", backup_id=None, method="auto", timeout=None):
    """
    Restore a backup (default: the latest) atomically, reactivate, and verify that the old
    certificate is served again.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.rollback backup_id=20261126T201500123456Z
    """
    tgt = _target(target)
    result = certdeploy_node.rollback(tgt, _host(), backup_id, method=method, timeout=timeout)
    outcome = "rolled_back" if result["verified"] else "failed"
    _fire(tgt, outcome, {"outcome": outcome, "backup_id": result["backup_id"]})
    _failed(result["verified"])
    return result


@_face
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
    tgt = _target(target)
    result = certdeploy_node.deploy(
        tgt,
        _host(),
        _bundle(tgt),
        method=method,
        peers=peers,
        skip_cross_trust=skip_cross_trust,
        verify_timeout=verify_timeout,
        require_serving=require_serving,
    )
    _fire(tgt, *certdeploy_result.node_event(result))
    if result["outcome"] == "rollback_failed":
        log.error("certdeploy: %s ROLLBACK FAILED: %s", tgt.node, result.get("rollback"))
    _failed(result["outcome"] == "deployed")
    return result


@_face
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
    tgt = _target(target)
    key, cert, chain = certdeploy_material.open_current_keystore(tgt)
    trust = certdeploy_trust.updated(
        certdeploy_material.current_trust(tgt), add=add, remove=remove, node=tgt.node
    )
    bundle = certdeploy_bundle.Bundle(cert=cert, key=key, chain=tuple(chain), trust=tuple(trust))
    result = certdeploy_node.deploy(
        tgt,
        _host(),
        bundle,
        method=method,
        skip_cross_trust=True,
        verify_timeout=verify_timeout,
    )
    result["trust"] = sorted(certdeploy_bundle.fingerprint(ca) for ca in trust)
    _fire(tgt, *certdeploy_result.node_event(result))
    _failed(result["outcome"] == "deployed")
    return result


@_face
def plan(target="cassandra"):
    """
    What ``deploy`` would change, without changing anything: old and new fingerprint, files,
    cassandra.yaml keys and the activation method.

    CLI Example:

    .. code-block:: bash

        salt cass2 certdeploy.plan
    """
    tgt = _target(target)
    return certdeploy_node.plan(tgt, _bundle(tgt))


@_face
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
    tgt = _target(target)
    result = certdeploy_node.recover(tgt, _host(), timeout=timeout)
    if result["interrupted"]:
        outcome = "recovered" if result["verified"] else "failed"
        _fire(tgt, outcome, {"outcome": outcome, "action": result["action"]})
    _failed(result["verified"])
    return result


@_face
def status(target="cassandra"):
    """
    Fingerprints served (client and internode ports) and on disk, expiry, backups and the last
    deployment record.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.status
    """
    return certdeploy_node.status(_target(target), _host())


@_face
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
    tgt = _target(target)
    record = certdeploy_node.last_record(tgt, _host()) or {}
    result = certdeploy_node.health(
        tgt, record.get("expected_fingerprint"), warn_days=float(warn_days), timeout=float(timeout)
    )
    pillar = certdeploy_target.plain(_pillar().get("certdeploy") or {})
    return {
        **result,
        "cluster": pillar.get("cluster"),
        "last_outcome": record.get("outcome"),
        "last_deploy_timestamp": record.get("epoch"),
    }


@_face
def targets():
    """
    The certdeploy targets this minion's pillar defines.

    CLI Example:

    .. code-block:: bash

        salt '*' certdeploy.targets
    """
    return certdeploy_target.target_names(_pillar())


@_face
def describe(target="cassandra"):
    """
    The target's public description from pillar: node, addresses, ports, dc, rack, store
    type and paths (never passwords). The rollout runner plans from this.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.describe
    """
    return _describe(_target(target))


def _describe(tgt):
    pillar = certdeploy_target.plain(_pillar().get("certdeploy") or {})
    return {
        **tgt.public(),
        "cluster": str(pillar.get("cluster") or "default"),
        "maintenance_windows": pillar.get("maintenance_windows") or [],
        "bundle_version": pillar.get("bundle_version"),
    }


@_face
def bundle_public(target="cassandra"):
    """
    The public half of the pending bundle: new leaf + chain and the new trust CAs (PEM), for
    whole-plan cross-trust checks on the master. No key material.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.bundle_public
    """
    return _bundle_public(_target(target))


def _bundle_public(tgt):
    new = _bundle(tgt)
    return {
        "node": tgt.node,
        "fingerprint": new.fingerprint,
        "chain_pem": certdeploy_bundle.cert_pem(new.cert, *new.chain),
        "trust_pem": certdeploy_bundle.cert_pem(*new.trust),
        "certificate": new.public_summary(),
    }


@_face
def ring(target="cassandra"):
    """
    The ring as this node sees it, over CQL (``system_views.gossip_info``, no JVM): one row
    per ring member with dc, rack and the two-letter state (UN, DN, UJ...). Up means its
    heartbeat moved while we watched.

    CLI Example:

    .. code-block:: bash

        salt cass1 certdeploy.ring
    """
    tgt = _target(target)
    return certdeploy_cassandra.ring_rows(tgt, _host())


@_face
def keyspaces(target="cassandra"):
    """
    Replication settings of every keyspace (CQL over TLS from this node), for the planner.

    CLI Example:

    .. code-block:: bash

        salt cass1 certdeploy.keyspaces
    """
    return _keyspaces(_target(target))


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
    "ring": lambda tgt: certdeploy_cassandra.ring_rows(tgt, _host()),
    "keyspaces": _keyspaces,
}


@_face
def facts(target="cassandra", parts=None, probe=None, probe_parts=None, peers=None):
    """
    Several read-only facts in one round trip, for the rollout's pre-flight: ``describe``,
    ``peer_info``, ``bundle_public``, ``served`` (the certificate on both ports), ``ring``,
    ``keyspaces`` and ``validate`` (the pending bundle against ``peers``; default: the first
    four). Each part is what the function of that name returns, or its error as
    ``"ERROR: ..."``; ``ring`` and ``keyspaces`` run side by side. ``probe_parts`` are added
    on the minion named ``probe`` only, if it is a cluster node: one round trip gives every
    node's facts and one node's view of the cluster. Changes nothing.

    CLI Example:

    .. code-block:: bash

        salt 'cass*' certdeploy.facts
        salt cass1 certdeploy.facts parts='[ring, keyspaces]'
        salt 'cass*' certdeploy.facts probe=cass1 probe_parts='[ring, keyspaces]'
    """
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    wanted = list(parts or ("describe", "peer_info", "bundle_public", "served"))
    extra = list(probe_parts or ())
    unknown = [p for p in wanted + extra if p not in _FACTS and p != "validate"]
    if unknown:
        raise SaltInvocationError(
            f"{__opts__['id']}: facts: unknown parts {unknown}. Fix: use "
            f"{sorted([*_FACTS, 'validate'])}"
        )
    tgt = _target(target)
    if probe == __opts__["id"] and certdeploy_profiles.trait(tgt, "FLEET") == "cluster":
        wanted += [p for p in extra if p not in wanted]

    def one(part):
        try:
            if part == "validate":  # what certdeploy.validate answers, with ``peers``
                return certdeploy_node.validate(tgt, _bundle(tgt), peers=peers, host=_host())
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


@_face
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
    tgt = _target(target)
    result = certdeploy_gate.gate(
        tgt,
        _host(),
        dict(expect),
        keyspace=keyspace,
        replication=replication,
        timeout=float(timeout),
        settle=float(settle),
        wait_served=float(wait_served),
    )
    _failed(result["ok"])
    return result


@_face
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
    tgt = _target(target)
    record = certdeploy_node.last_record(tgt, _host()) or {}
    result = certdeploy_compliance.check_node(
        tgt,
        record,
        host=_host(),
        allowed_issuers=allowed_issuers,
        expected_cas=expected_cas,
        min_days=min_days,
    )
    _failed(result["ok"])
    return result
