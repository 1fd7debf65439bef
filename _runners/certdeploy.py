"""Rolling certificate rollouts across a Cassandra cluster, from the master.

A thin face over ``_utils/certdeploy_rollout.py`` (sequencing), ``certdeploy_plan.py``
(topology-aware batches), ``certdeploy_job.py`` (immutable, atomically written job state and
the cluster lock) and ``certdeploy_report.py`` (HTML + text report). Minions do the per-node
work through the ``certdeploy`` execution module.

Progress is streamed while ``salt-run`` runs, and master events
``certdeploy/rollout/<job>/{started,node/<id>/<step>,finished}`` are fired for other tools.
"""

from __future__ import annotations

import logging
import os

try:
    import certdeploy_job
    import certdeploy_report
    import certdeploy_rollout

    HAS_UTILS = True
    IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover
    HAS_UTILS = False
    IMPORT_ERROR = str(exc)

log = logging.getLogger(__name__)
__virtualname__ = "certdeploy"


def __virtual__():
    if not HAS_UTILS:
        return (
            False,
            f"certdeploy runner: utils not importable ({IMPORT_ERROR}); set utils_dirs or run "
            "salt-run saltutil.sync_utils",
        )
    return __virtualname__


def _master():
    import salt.client
    import salt.utils.event
    import salt.utils.minions

    client = salt.client.get_local_client(__opts__["conf_file"])

    def call(minions, fun, kwargs, timeout):
        answers = {}
        for ret in client.cmd_iter(
            list(minions), fun, kwarg=kwargs, tgt_type="list", timeout=timeout
        ):
            for minion, data in ret.items():
                answers[minion] = data.get("ret") if isinstance(data, dict) else data
        return answers

    def expected(tgt, tgt_type):
        return salt.utils.minions.CkMinions(__opts__).check_minions(tgt, tgt_type)["minions"]

    def fire(tag, data):
        with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
            bus.fire_event(data, tag)

    def progress(message):
        log.info("certdeploy: %s", message)
        try:
            __jid_event__.fire_event({"message": f"certdeploy: {message}"}, "progress")
        except NameError:  # called outside a runner job (e.g. from orchestration internals)
            pass

    return certdeploy_rollout.Master(
        call=call, expected=expected, fire=fire, progress=progress, cachedir=__opts__["cachedir"]
    )


def _report_path(job_id):
    directory = os.path.join(__opts__["cachedir"], "certdeploy", "reports")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    return os.path.join(directory, f"{job_id}.html")


def _with_report(result):
    # A non-zero retcode makes `salt-run` exit non-zero (it reads the return's "retcode") and a
    # `salt.runner` orchestration step fail (it reads the context's).
    result["retcode"] = 0 if result.get("status") == "succeeded" else 1
    if result["retcode"]:
        __context__["retcode"] = 1
    job = certdeploy_job.load(__opts__["cachedir"], result["job_id"])
    result["report"] = certdeploy_report.write_report(job.data, _report_path(job.job_id))
    result["table"] = certdeploy_report.render_text(job.data)
    return result


def rollout(
    tgt,
    tgt_type="glob",
    method="auto",
    canary=1,
    max_unavailable=1,
    parallel_racks=False,
    on_failure="rollback_node",
    test=False,
    force=False,
    target="cassandra",
    verify_timeout=None,
    gate_timeout=90,
    settle=10,
    health_keyspace="certdeploy_health",
):
    """
    Roll the pillar bundles out to the targeted Cassandra nodes: plan (topology-aware batches,
    canaries first), pre-flight (all answer, ring all UN, lock free, every bundle valid,
    cross-trust for the whole plan), then per batch ``certdeploy.deploy`` and a health gate
    checked from another node. On failure: ``rollback_node`` (stop; the node is already rolled
    back), ``rollback_all`` (also roll back the nodes done, in reverse) or ``halt`` (stop,
    resumable). ``test=True`` prints the plan, per-node diff and pre-flight findings and
    changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.rollout 'cass*' test=True
        salt-run certdeploy.rollout 'cass*' method=reload on_failure=rollback_all
    """
    opts = certdeploy_rollout.Options(
        target=target,
        method=method,
        canary=int(canary),
        max_unavailable=int(max_unavailable),
        parallel_racks=bool(parallel_racks),
        on_failure=on_failure,
        verify_timeout=float(verify_timeout) if verify_timeout else None,
        gate_timeout=float(gate_timeout),
        settle=float(settle),
        health_keyspace=health_keyspace,
    )
    result = certdeploy_rollout.rollout(
        _master(), tgt, tgt_type, opts=opts, test=bool(test), force=bool(force)
    )
    return result if test else _with_report(result)


def resume(job_id, force=False):
    """
    Continue a rollout interrupted by a master restart, a killed ``salt-run`` or a halt. Nodes
    caught mid-step are reconciled from what they actually serve.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.resume 20261126T203000Z-ab12cd
    """
    return _with_report(certdeploy_rollout.resume(_master(), job_id, force=bool(force)))


def rollback(job_id):
    """
    Put every node a finished or halted job changed back on its previous certificate, in
    reverse order, each verified.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.rollback 20261126T203000Z-ab12cd
    """
    return _with_report(certdeploy_rollout.rollback_job(_master(), job_id))


def jobs(limit=20):
    """
    Recent rollout jobs, newest first: id, kind, cluster, status, node states.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.jobs
    """
    return [
        {
            "job_id": j["job_id"],
            "kind": j.get("kind"),
            "cluster": j.get("cluster"),
            "status": j.get("status"),
            "nodes": {n: v.get("state") for n, v in j.get("nodes", {}).items()},
        }
        for j in certdeploy_job.list_jobs(__opts__["cachedir"])[: int(limit)]
    ]


def job(job_id):
    """
    The full record of one job (no key material: fingerprints, ids, timings, evidence).

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.job 20261126T203000Z-ab12cd
    """
    return certdeploy_job.load(__opts__["cachedir"], job_id).data


def report(job_id, load=None):
    """
    Write the self-contained HTML report of a job (timeline, fingerprints, expiry, evidence,
    load counts when given) and return its path with a text table.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.report 20261126T203000Z-ab12cd
    """
    data = certdeploy_job.load(__opts__["cachedir"], job_id).data
    if load:
        data = {**data, "load": load}
    return {
        "report": certdeploy_report.write_report(data, _report_path(job_id)),
        "table": certdeploy_report.render_text(data),
    }
