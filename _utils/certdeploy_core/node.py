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

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import backup as backups
from . import (
    boundary,
    checks,
    errors,
    files,
    health_check,
    journal,
    material,
    profiles,
    space,
    timeutil,
)
from . import bundle as cb
from . import host as host_mod

Host = host_mod.Host  # re-exported: the faces build it
StepFailed = errors.StepFailed  # a step after the backup failed; ``deploy`` rolls back


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


# ----------------------------------------------------------------------------- validate


def validate(
    target, bundle: cb.Bundle, *, peers=None, skip_cross_trust=False, now=None, host=None
) -> dict:
    """Every pre-activation check; changes nothing. With ``host``, also the profile's checks
    of where the target lives (a container's mounts)."""
    findings = checks.validate(
        bundle,
        node=target.node,
        **profiles.get(target).validation(target),
        min_days_remaining=target.min_days_remaining,
        now=now,
        peers=peers,
        skip_cross_trust=skip_cross_trust,
    )
    if host is not None:
        findings += profiles.get(target).preflight(target, host)
    findings.append(space.check(target.managed_files(), target.backup_dir, target.node))
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
    """Make the target's configuration match pillar (the profile says what that is)."""
    return profiles.get(target).configure(target, test=test)


# ----------------------------------------------------------------------------- activate/verify
# The profile (``certdeploy_core.profiles``) owns how a target activates and proves itself.


def resolve_method(target, method: str, restart_required: bool) -> str:
    return profiles.get(target).resolve_method(method, restart_required, target)


def activate(target, host: Host, *, method="auto", restart_required=False) -> dict:
    return profiles.get(target).activate(
        target, host, method=method, restart_required=restart_required
    )


def verify(
    target, host: Host, expected: str, *, known=(), method=None, timeout=None, since=None
) -> dict:
    """``since``: what the activation measured before it changed anything (its
    ``gossip_before``, for a cassandra node), so the proof after it need not wait for it."""
    return profiles.get(target).verify(
        target, host, expected, known=known, method=method, timeout=timeout, since=since
    )


def _baseline(activation: dict | None):
    """The activation's gossip baseline, taken out of the result (it is for verify only)."""
    return (activation or {}).pop("gossip_before", None)


def health(target, expected, *, warn_days=30.0, timeout=3.0) -> dict:
    """Serving what certdeploy last deployed (``expected``), and for how long is it valid?"""
    return profiles.get(target).health(
        target, expected=expected, warn_days=warn_days, timeout=timeout
    )


def _serving(target) -> bool:
    return profiles.get(target).is_serving(target)


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
        since=_baseline(activation),
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
    if evidence["ok"]:
        journal.end(target, host.cachedir)  # on one certificate, verified
    return rolled


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
        "method": resolve_method(target, "auto", config["restart_required"]),
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
    require_serving=None,
) -> dict:
    """validate -> backup -> install -> configure -> activate -> verify; automatic rollback.

    Invalid input raises ``SaltInvocationError`` before anything changes. Afterwards the outcome
    is ``deployed``, ``rolled_back`` or ``rollback_failed``; or ``refused``, with nothing
    changed, when a node of ``require_serving`` (``{node: [[label, address, port], ...]}``,
    the rollout's check before a batch) does not serve TLS on new connections from here.
    """
    resolve_method(target, method, False)
    timings, result = {}, {"node": target.node, "target": target.name}
    started = time.monotonic()
    if require_serving:
        refused = boundary.refusal(target, require_serving, health_check.probe_ctx(target))
        if refused is not None:
            return refused
        timings["check"] = _since(started)

    t = time.monotonic()
    validation = validate(
        target, bundle, peers=peers, skip_cross_trust=skip_cross_trust, now=now, host=host
    )
    timings["validate"] = _since(t)
    if not validation["valid"]:
        checks.raise_on_failures(validation["findings"], target.node)
    result["validation"] = validation["findings"]
    result["old_fingerprint"] = (material.on_disk(target)["keystore"] or {}).get("fingerprint")
    result["new_fingerprint"] = bundle.fingerprint
    host.progress(f"{target.node}: validated {bundle.fingerprint[:16]}")

    if journal.read(target, host.cachedir) is not None:
        t = time.monotonic()
        result["recovered"] = recover(target, host, timeout=verify_timeout)
        timings["recover"] = _since(t)
        if not result["recovered"]["verified"]:
            raise CommandExecutionError(
                f"{target.node}: an earlier deployment was interrupted and the node could not "
                f"be put back on one certificate: {result['recovered']}. Nothing new was "
                f"installed. Fix: see salt {target.node} certdeploy.status, then "
                f"certdeploy.recover"
            )
        result["old_fingerprint"] = (material.on_disk(target)["keystore"] or {}).get("fingerprint")

    t = time.monotonic()
    result["backup"] = backup(target, note={"reason": "deploy", "to": bundle.fingerprint})
    timings["backup"] = _since(t)
    # From here until the record below the files may change: a crash leaves this behind.
    journal.begin(
        target,
        host.cachedir,
        backup_id=result["backup"]["backup_id"],
        old=result["old_fingerprint"],
        new=bundle.fingerprint,
    )
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
        restart_required = result["configure"]["restart_required"] or (
            target.truststore in result["install"]["changed"]
            and profiles.get(target).TRUST_CHANGE_RESTARTS
        )
        result["activation"] = activate(
            target, host, method=method, restart_required=restart_required
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
            since=_baseline(result["activation"]),
        )
        timings["verify"] = _since(t)
        _drill(target, "verify")
        if not result["verification"]["ok"]:
            raise StepFailed(
                f"{target.node}: verification failed: {_why(target, result['verification'])}"
            )
        result["outcome"] = "deployed"
        result["retired"] = profiles.get(target).retire(target, host, result["backup"]["backup_id"])
        if result["retired"].get("ok") is False:
            host.progress(f"{target.node}: deployed, but retire_old failed: {result['retired']}")
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
    if result["outcome"] != "rollback_failed":
        journal.end(target, host.cachedir)  # one certificate, verified: no longer in flight
    return result


# How long recover waits for a deployment still running on the node to end by itself.
IN_FLIGHT_WAIT = 900.0


def recover(target, host: Host, *, timeout=None) -> dict:
    """Put a node whose deployment was interrupted (its in-flight record is still there) back
    on one certificate, verified. When it already serves the new certificate on both ports
    and verifies, the deployment had got through activation: it is completed as deployed.
    Otherwise the deployment's backup is restored, reactivated and the old certificate proven
    served (a rollback). Without an in-flight record this changes nothing."""
    entry = journal.read(target, host.cachedir)
    if journal.running(entry):
        # Not interrupted: still deploying (its master died, or resume came quickly). Let it
        # end; restoring under it would race its own verify and rollback.
        host.progress(f"{target.node}: a deployment is still running (pid {entry['pid']})")
        entry = journal.wait_ended(target, host.cachedir, timeout=IN_FLIGHT_WAIT)
        if journal.running(entry):
            raise CommandExecutionError(
                f"{target.node}: a deployment (pid {entry['pid']}, started {entry['started']}) "
                f"is still running after {IN_FLIGHT_WAIT:.0f}s; nothing was changed. Fix: "
                f"wait for it (salt {target.node} saltutil.running), then recover again"
            )
    out = {"node": target.node, "target": target.name, "interrupted": entry is not None}
    if entry is None:
        return {**out, "action": None, "verified": True}
    host.progress(f"{target.node}: an interrupted deployment ({entry}) is being recovered")
    new = entry.get("to")
    served = profiles.get(target).served(target)
    disk = (material.on_disk(target)["keystore"] or {}).get("fingerprint")
    if new and served.get("client") == served.get("internode") == disk == new:
        evidence = verify(target, host, new, known=(entry.get("from"),), timeout=timeout)
        if evidence["ok"]:
            record(
                target,
                host,
                {
                    "outcome": "deployed",
                    "old_fingerprint": entry.get("from"),
                    "new_fingerprint": new,
                    "backup": {"backup_id": entry.get("backup_id")},
                },
            )
            journal.end(target, host.cachedir)
            return {**out, "entry": entry, "action": "completed", "verified": True, "on": new}
    rolled = rollback(target, host, entry.get("backup_id"), timeout=timeout)
    if rolled["verified"]:
        journal.end(target, host.cachedir)
    return {
        **out,
        "entry": entry,
        "action": "restored",
        "verified": rolled["verified"],
        "on": rolled["expected"] if rolled["verified"] else None,
        "rollback": rolled,
    }


def _drill(target, step: str) -> None:
    if target.drill_fail_step == step:
        raise StepFailed(f"{target.node}: drill: {step} forced to fail (pillar drill_fail_step)")


def _why(target, evidence: dict) -> str:
    return profiles.get(target).explain(evidence)


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


def status_served(target) -> dict:
    """What the target serves now, on new connections (the profile says where)."""
    return profiles.get(target).served(target)


def status(target, host: Host) -> dict:
    served = status_served(target)
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
        "interrupted": journal.read(target, host.cachedir),
    }
