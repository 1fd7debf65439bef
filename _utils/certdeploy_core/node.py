"""The per-node deployment steps, each callable on its own:

    validate -> backup -> install -> configure -> activate -> verify   (and rollback)

``deploy`` chains them and rolls back automatically when anything after the backup fails.
Nothing here reads Salt dunders: the execution module passes a :class:`Host` that runs
commands, controls the service, fires events and reports progress.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import backup as backups
from . import bundle as cb
from . import cassandra_yaml as cyaml
from . import checks, errors, files, material, probe, ring, timeutil
from . import verify as verifier
from .poll import poll

METHODS = ("auto", "reload", "restart")


@dataclass
class Host:
    """What the steps need from the minion. ``run(argv, cwd, timeout)`` returns a dict with
    ``retcode``, ``stdout``, ``stderr``; ``service(action, name)`` returns bool."""

    run: Callable
    service: Callable
    cachedir: str
    progress: Callable = lambda message: None


StepFailed = errors.StepFailed  # a step after the backup failed; ``deploy`` rolls back


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


# ----------------------------------------------------------------------------- validate


def validate(target, bundle: cb.Bundle, *, peers=None, skip_cross_trust=False, now=None) -> dict:
    """Every pre-activation check; changes nothing."""
    findings = checks.validate(
        bundle,
        node=target.node,
        names=target.names(),
        min_days_remaining=target.min_days_remaining,
        now=now,
        peers=peers,
        skip_cross_trust=skip_cross_trust,
    )
    if all(f["ok"] for f in findings if f["check"] == "key_match"):
        # Building a keystore from a key that does not match its cert cannot succeed.
        findings.append(
            checks.keystore_check(bundle, target.store_type, target.keystore_password, target.node)
        )
    return {
        "node": target.node,
        "valid": all(f["ok"] for f in findings),
        "fingerprint": bundle.fingerprint,
        "findings": findings,
        "advice": checks.advice(findings),
        "certificate": bundle.public_summary(),
    }


# ----------------------------------------------------------------------------- backup/install


def backup(target, note=None) -> dict:
    """Snapshot the managed files. The note records the fingerprint the node had, which is
    what a rollback to this backup must prove is served again."""
    fingerprint = material.configured_fingerprint(target)
    manifest = backups.create(
        target.backup_dir,
        target.managed_files(),
        node=target.node,
        keep=target.backup_keep,
        note={**(note or {}), "fingerprint": fingerprint},
    )
    return {"backup_id": manifest["backup_id"], "files": sorted(manifest["files"])}


def install(target, bundle: cb.Bundle, *, test=False) -> dict:
    """Write keystore and truststore in place (same paths, same passwords), atomically.
    Idempotent: material already installed is left alone."""
    plan = {
        "keystore": not material.keystore_matches(target, bundle),
        "truststore": not material.truststore_matches(target, bundle),
    }
    changed = [target.keystore] * plan["keystore"] + [target.truststore] * plan["truststore"]
    if test or not changed:
        return {"changed": changed, "written": False}
    if plan["keystore"]:
        data = cb.build_keystore(bundle, target.store_type, target.keystore_password)
        _write(target, target.keystore, data)
    if plan["truststore"]:
        data = cb.build_truststore(bundle.trust, target.store_type, target.truststore_password)
        _write(target, target.truststore, data)
    return {"changed": changed, "written": True}


def _write(target, path, data: bytes) -> None:
    files.atomic_write(path, data, mode=target.mode, owner=target.owner, group=target.group)


def configure(target, *, test=False) -> dict:
    """Make the yaml's encryption keys match pillar; say whether that needs a restart."""
    return cyaml.apply(target.config_file, target.desired_yaml(), node=target.node, test=test)


# ----------------------------------------------------------------------------- activate


def resolve_method(method: str, restart_required: bool) -> str:
    if method not in METHODS:
        raise SaltInvocationError(f"method={method!r} is not one of {METHODS}")
    if method == "auto":
        return "restart" if restart_required else "reload"
    return method


def nodetool(target, host: Host, *args, timeout=120) -> dict:
    argv = [*target.control.nodetool, *args]
    return host.run(argv, target.control.cwd, timeout)


def _control(target, host: Host, action: str) -> None:
    argv = getattr(target.control, action)
    if argv:
        res = host.run(list(argv), target.control.cwd, target.start_timeout)
        ok = res["retcode"] == 0
        detail = (res.get("stderr") or res.get("stdout") or "")[-300:]
    else:
        ok, detail = host.service(action, target.control.service), ""
    if not ok:
        raise StepFailed(f"{target.node}: {action} failed: {detail}")


def activate(target, host: Host, *, method="auto", restart_required=False) -> dict:
    """``reload`` = nodetool reloadssl (exit 0 proves nothing: verify decides);
    ``restart`` = drain, stop, start, then wait for CQL and a ring of UN nodes."""
    chosen = resolve_method(method, restart_required)
    started = time.monotonic()
    steps = []
    if chosen == "reload":
        res = nodetool(target, host, "reloadssl")
        steps.append({"step": "reloadssl", "retcode": res["retcode"]})
        if res["retcode"] != 0:
            raise StepFailed(f"{target.node}: nodetool reloadssl failed: {res['stderr'][-300:]}")
    else:
        # Stop serving clients first and give their drivers a moment to move to other
        # replicas; then drain (flush, stop accepting writes) and stop.
        res = nodetool(target, host, "disablebinary")
        steps.append({"step": "disablebinary", "retcode": res["retcode"]})
        if res["retcode"] == 0 and target.drain_grace:
            time.sleep(target.drain_grace)
        res = nodetool(target, host, "drain", timeout=300)
        steps.append({"step": "drain", "retcode": res["retcode"]})  # a down node cannot drain
        host.progress(f"{target.node}: drained, stopping")
        _control(target, host, "stop")
        steps.append({"step": "stop", "seconds": _since(started)})
        _control(target, host, "start")
        steps.append({"step": "start", "seconds": _since(started)})
        host.progress(f"{target.node}: started, waiting for CQL and UN")
        wait_serving(target, host, timeout=target.start_timeout)
        steps.append({"step": "cql_and_un", "seconds": _since(started)})
    return {"method": chosen, "seconds": _since(started), "steps": steps}


def wait_serving(target, host: Host, timeout: float) -> None:
    """Until the client port completes a TLS handshake and the ring is all UN."""
    ctx = material.probe_context(target)

    def check():
        probe.served_certificate(target.rpc_address, target.client_port, ctx, timeout=3)
        return ring_rows(target, host)

    polled = poll(
        check,
        timeout=timeout,
        done=ring.ring_healthy,
        errors=(probe.ProbeError, CommandExecutionError),
    )
    if not polled.ok:
        last = polled.error or f"ring not all UN: {ring.not_up_normal(polled.value or [])}"
        raise errors.NotServing(f"{target.node}: not serving after {timeout:.0f}s: {last}")


def ring_rows(target, host: Host) -> list[dict]:
    res = nodetool(target, host, "status", timeout=60)
    if res["retcode"] != 0:
        raise CommandExecutionError(f"{target.node}: nodetool status: {res['stderr'][-300:]}")
    return ring.parse_status(res["stdout"])


# ----------------------------------------------------------------------------- verify


def verify(target, host: Host, expected: str, *, known=(), method=None, timeout=None) -> dict:
    """Prove activation: ``expected`` is served on the client and internode ports on new
    connections, peers accept the node's certificate, CQL over mTLS answers and the ring is
    all UN. A deterministic failure ends it early (see ``certdeploy_verify``)."""
    return verifier.verify(
        target, host, expected, ring_rows=ring_rows, known=known, method=method, timeout=timeout
    )


# ----------------------------------------------------------------------------- rollback


def rollback(target, host: Host, backup_id=None, *, method="auto", timeout=None) -> dict:
    """Restore a backup (default: the latest), reactivate, and prove the *old* certificate is
    served again."""
    started = time.monotonic()
    if backup_id:
        manifest = backups.get(target.backup_dir, backup_id, target.node)
    else:
        manifest = backups.latest(target.backup_dir, target.node)
    restored = backups.restore(target.backup_dir, manifest, node=target.node)
    config_changed = target.config_file in restored["restored"]
    host.progress(f"{target.node}: restored backup {manifest['backup_id']}")
    expected = (manifest.get("note") or {}).get("fingerprint") or (
        material.on_disk(target)["keystore"] or {}
    ).get("fingerprint")
    if not expected:
        raise CommandExecutionError(
            f"{target.node}: backup {manifest['backup_id']} restored, but no keystore fingerprint "
            f"is known to verify against. Fix: check {target.keystore} and run certdeploy.verify"
        )
    try:
        activation = activate(
            target, host, method=method, restart_required=config_changed or not _serving(target)
        )
        activation_error = None
    except StepFailed as exc:
        activation, activation_error = None, str(exc)
    evidence = verify(
        target,
        host,
        expected,
        known=((manifest.get("note") or {}).get("to"),),
        method=(activation or {}).get("method"),
        timeout=timeout,
    )
    rolled = {
        "backup_id": manifest["backup_id"],
        "restored": restored["restored"],
        "activation": activation,
        "activation_error": activation_error,
        "expected": expected,
        "verification": evidence,
        "verified": evidence["ok"],
        "seconds": _since(started),
    }
    record(
        target,
        host,
        {
            "outcome": "rolled_back" if evidence["ok"] else "rollback_failed",
            "new_fingerprint": expected,
            "backup": {"backup_id": manifest["backup_id"]},
            "rollback": rolled,
        },
    )
    return rolled


def _serving(target) -> bool:
    try:
        probe.served_certificate(
            target.rpc_address, target.client_port, material.probe_context(target), timeout=3
        )
        return True
    except (probe.ProbeError, SaltInvocationError, CommandExecutionError):
        return False


# ----------------------------------------------------------------------------- deploy


def plan(target, bundle: cb.Bundle) -> dict:
    """What ``deploy`` would do, with no side effect: the diff ``test=True`` shows."""
    disk = material.on_disk(target)
    old = (disk["keystore"] or {}).get("fingerprint")
    installing = install(target, bundle, test=True)
    config = configure(target, test=True)
    return {
        "old_fingerprint": old,
        "new_fingerprint": bundle.fingerprint,
        "files": installing["changed"] + ([target.config_file] if config["changes"] else []),
        "config_changes": config["changes"],
        "method": resolve_method("auto", config["restart_required"]),
    }


def deploy(
    target,
    host: Host,
    bundle: cb.Bundle,
    *,
    method="auto",
    peers=None,
    skip_cross_trust=False,
    now=None,
    verify_timeout=None,
) -> dict:
    """validate -> backup -> install -> configure -> activate -> verify; automatic rollback.

    Invalid input raises ``SaltInvocationError`` before anything changes. Afterwards the outcome
    is ``deployed``, ``rolled_back`` or ``rollback_failed``.
    """
    resolve_method(method, False)
    timings, result = {}, {"node": target.node, "target": target.name}
    started = time.monotonic()

    t = time.monotonic()
    validation = validate(target, bundle, peers=peers, skip_cross_trust=skip_cross_trust, now=now)
    timings["validate"] = _since(t)
    if not validation["valid"]:
        checks.raise_on_failures(validation["findings"], target.node)
    result["validation"] = validation["findings"]
    result["old_fingerprint"] = (material.on_disk(target)["keystore"] or {}).get("fingerprint")
    result["new_fingerprint"] = bundle.fingerprint
    host.progress(f"{target.node}: validated {bundle.fingerprint[:16]}")

    t = time.monotonic()
    result["backup"] = backup(target, note={"reason": "deploy", "to": bundle.fingerprint})
    timings["backup"] = _since(t)
    step = "install"
    try:
        t = time.monotonic()
        result["install"] = install(target, bundle)
        timings["install"] = _since(t)
        step = "configure"
        t = time.monotonic()
        result["configure"] = configure(target)
        timings["configure"] = _since(t)
        step = "activate"
        host.progress(f"{target.node}: activating")
        t = time.monotonic()
        result["activation"] = activate(
            target, host, method=method, restart_required=result["configure"]["restart_required"]
        )
        timings["activate"] = _since(t)
        _drill(target, "activate")
        step = "verify"
        t = time.monotonic()
        result["verification"] = verify(
            target,
            host,
            bundle.fingerprint,
            known=(result["old_fingerprint"],),
            method=result["activation"]["method"],
            timeout=verify_timeout,
        )
        timings["verify"] = _since(t)
        _drill(target, "verify")
        if not result["verification"]["ok"]:
            raise StepFailed(f"{target.node}: verification failed: {_why(result['verification'])}")
        result["outcome"] = "deployed"
    except (StepFailed, CommandExecutionError, OSError) as exc:
        result["failed_step"], result["error"] = step, str(exc)
        host.progress(f"{target.node}: {step} failed, rolling back")
        t = time.monotonic()
        try:
            result["rollback"] = rollback(
                target, host, result["backup"]["backup_id"], timeout=verify_timeout
            )
            verified = result["rollback"]["verified"]
        except (StepFailed, CommandExecutionError, SaltInvocationError, OSError) as rb_exc:
            result["rollback"] = {"error": str(rb_exc)}
            verified = False
        timings["rollback"] = _since(t)
        result["outcome"] = "rolled_back" if verified else "rollback_failed"
    timings["total"] = _since(started)
    result["timings"] = timings
    record(target, host, result)
    return result


def _drill(target, step: str) -> None:
    if target.drill_fail_step == step:
        raise StepFailed(f"{target.node}: drill: {step} forced to fail (pillar drill_fail_step)")


def _why(evidence: dict) -> str:
    if evidence.get("deterministic"):
        return f"{evidence['deterministic']} (seen in {verifier.CONFIRM} rounds in a row)"
    parts = []
    for label in ("client", "internode"):
        e = evidence[label]
        if not e["matched"]:
            parts.append(f"{label} port serves {e['served'] or e['error']}")
    for label in ("cql", "ring"):
        if not evidence[label]["ok"]:
            parts.append(f"{label}: {evidence[label].get('error')}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------- record/status


def record_path(target, host: Host) -> str:
    return os.path.join(host.cachedir, "certdeploy", f"{target.name}-last.json")


def record(target, host: Host, result: dict) -> None:
    """Keep the last deployment's public facts on the minion (no key material)."""
    summary = {
        "at": timeutil.epoch_iso(time.time()),
        "epoch": time.time(),
        **{
            k: result.get(k)
            for k in ("outcome", "old_fingerprint", "new_fingerprint", "failed_step", "error")
        },
        "expected_fingerprint": _serving_after(result),
        "backup_id": (result.get("backup") or {}).get("backup_id"),
        "timings": result.get("timings"),
    }
    path = record_path(target, host)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    files.atomic_write(path, json.dumps(summary, indent=2).encode(), mode=0o600)


def _serving_after(result: dict) -> str | None:
    """The fingerprint the node should serve after this operation (None when unknown)."""
    if result.get("outcome") == "deployed":
        return result.get("new_fingerprint")
    rollback_result = result.get("rollback") or {}
    return rollback_result.get("expected") if rollback_result.get("verified") else None


def last_record(target, host: Host) -> dict | None:
    try:
        with open(record_path(target, host)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def status(target, host: Host) -> dict:
    ctx = material.probe_context(target) if os.path.exists(target.keystore) else None
    served = {}
    for label, address, port in (
        ("client", target.rpc_address, target.client_port),
        ("internode", target.listen_address, target.internode_port),
    ):
        try:
            served[label] = probe.served_fingerprint(address, port, ctx or probe.client_context())
        except probe.ProbeError as exc:
            served[label] = {"error": str(exc)}
    return {
        "node": target.node,
        "target": target.name,
        "served": served,
        "on_disk": material.on_disk(target),
        "backups": [
            {"backup_id": m["backup_id"], "created": m["created"]}
            for m in backups.list_backups(target.backup_dir)
        ],
        "last_deployment": last_record(target, host),
    }
