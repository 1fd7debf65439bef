"""State: the Cassandra node on this minion serves the certificate in its pillar bundle.

.. code-block:: yaml

    cassandra-tls:
      certdeploy.deployed:
        - target: cassandra
        - method: auto
        - skip_cross_trust: true   # a single-node apply; the runner passes peers instead

Idempotent: when the served (client and internode) and on-disk fingerprints already equal the
bundle's and cassandra.yaml needs no change, nothing happens. ``test=True`` shows the real
diff (old -> new fingerprint, files, yaml keys, activation method) and changes nothing.
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltInvocationError

try:  # importable while Salt loads this module (utils dirs), or as an installed package
    from certdeploy_core import result as certdeploy_result

    IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover - depends on the minion's sync state
    certdeploy_result, IMPORT_ERROR = None, str(exc)

__virtualname__ = "certdeploy"


def __virtual__():
    if certdeploy_result is None or "certdeploy.deploy" not in __salt__:
        return (
            False,
            f"certdeploy execution module or utils not loaded ({IMPORT_ERROR or 'module'}): "
            "run saltutil.sync_all",
        )
    return __virtualname__


def deployed(name, target="cassandra", method="auto", skip_cross_trust=False, peers=None):
    """
    Ensure ``target`` serves the pillar bundle's certificate, verified; roll back on failure.

    name
        A label for the state.
    target
        The pillar target (``certdeploy:targets:<target>``).
    method
        ``auto`` (reload unless the yaml change needs a restart), ``reload`` or ``restart``.
    skip_cross_trust
        Skip the peer cross-trust check (explicit; the rollout runner passes ``peers``).
    peers
        Peer chain/trust data for the cross-trust check.
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    try:
        plan = __salt__["certdeploy.plan"](target=target)
        served = __salt__["certdeploy.status"](target=target)["served"]
        validation = __salt__["certdeploy.validate"](
            target=target, peers=peers, skip_cross_trust=skip_cross_trust
        )
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret

    new = plan["new_fingerprint"]
    in_place = served == {"client": new, "internode": new} and not plan["files"]
    if in_place:
        ret["comment"] = f"{target} already serves {new} on both ports; nothing to do"
        return ret
    failed = [f for f in validation["findings"] if not f["ok"]]
    if failed:
        ret.update(
            result=False,
            comment="; ".join(f"{f['check']}: {f['message']} Fix: {f['fix']}" for f in failed),
        )
        return ret

    diff = {
        "fingerprint": {"old": plan["old_fingerprint"], "new": new},
        "served": {"old": served, "new": {"client": new, "internode": new}},
        "files": plan["files"],
        "config_changes": plan["config_changes"],
        "method": plan["method"] if method == "auto" else method,
    }
    if __opts__["test"]:
        ret.update(result=None, changes=diff, comment=f"{target} would be deployed: {new}")
        return ret

    try:
        result = __salt__["certdeploy.deploy"](
            target=target, method=method, peers=peers, skip_cross_trust=skip_cross_trust
        )
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    res = certdeploy_result.DeployResult.from_dict(result)
    if res.deployed:
        diff["method"] = res.method
        diff["backup_id"] = res.backup_id
        diff["verification"] = res.evidence.to_dict() if res.evidence else None
        ret.update(changes=diff, comment=f"{target} deployed and verified: {new}")
        return ret
    ret["result"] = False
    ret["changes"] = {
        "outcome": res.outcome,
        "failed_step": res.failed_step,
        # The steps that completed, as deploy timed them (failed_step says where it stopped).
        "done": [s for s in res.timings.completed() if s != "rollback"],
        "undone": (
            f"restored backup {res.backup_id}: " + ", ".join(res.restored)
            if res.restored
            else f"nothing restored: {res.rollback_error or 'the rollback did not run'}"
        ),
        "rollback_verified": bool(res.rollback_verified),
    }
    ret["comment"] = f"{target} {res.outcome.replace('_', ' ')}: {res.error}"
    return ret
