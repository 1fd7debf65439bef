"""Rolling certificate rollouts across a Cassandra cluster, from the master.

A thin face over the ``_utils/certdeploy_core`` package: ``rollout`` (sequencing), ``plan``
(topology-aware batches), ``job`` (immutable, atomically written job state and the cluster
lock), ``report`` (HTML + text report), ``store``, ``queue``, ``rotate`` and ``compliance``.
Minions do the per-node work through the ``certdeploy`` execution module.

Progress is streamed while ``salt-run`` runs, and master events
``certdeploy/rollout/<job>/{started,node/<id>/<step>,finished}`` are fired for other tools.
"""

from __future__ import annotations

import logging
import os
import time

# Salt makes the utils dirs importable only while it loads this module, so every shared
# module is imported here, at load time, never lazily inside a function.
try:
    from certdeploy_core import compliance as certdeploy_compliance
    from certdeploy_core import health_policy as certdeploy_health_policy
    from certdeploy_core import job as certdeploy_job
    from certdeploy_core import queue as certdeploy_queue
    from certdeploy_core import report as certdeploy_report
    from certdeploy_core import rollout as certdeploy_rollout
    from certdeploy_core import rotate as certdeploy_rotate
    from certdeploy_core import ssh_transport as certdeploy_ssh_transport
    from certdeploy_core import store as certdeploy_store
    from certdeploy_core import transport as certdeploy_transport

    HAS_UTILS = True
    IMPORT_ERROR = ""
except ImportError as exc:  # pragma: no cover
    HAS_UTILS = False
    IMPORT_ERROR = str(exc)

from salt.exceptions import CommandExecutionError, SaltInvocationError

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
    import salt.utils.event

    def fire(tag, data):
        with salt.utils.event.get_master_event(__opts__, __opts__["sock_dir"], listen=False) as bus:
            bus.fire_event(data, tag)

    def progress(message):
        log.info("certdeploy: %s", message)
        try:
            __jid_event__.fire_event({"message": f"certdeploy: {message}"}, "progress")
        except NameError:  # called outside a runner job (e.g. from orchestration internals)
            pass

    return certdeploy_rollout.Master.over(_transport(), fire, progress, __opts__["cachedir"])


def _transport():
    """Minions, plus the roster's salt-ssh targets when the master has a roster: one job can
    then hold a mixed fleet (an id is reached through the first transport that names it)."""
    minions = certdeploy_transport.MinionTransport(__opts__)
    if not certdeploy_ssh_transport.configured(__opts__):
        return minions
    ssh = certdeploy_ssh_transport.SSHTransport(
        __opts__, max_procs=int(__opts__.get("ssh_max_procs") or 25)
    )
    return certdeploy_transport.Routed(minions, ssh)


def _reports_dir():
    directory = os.path.join(__opts__["cachedir"], "certdeploy", "reports")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    return directory


def _report_path(job_id):
    return os.path.join(_reports_dir(), f"{job_id}.html")


def _with_report(result, success="succeeded"):
    # A non-zero retcode makes `salt-run` exit non-zero (it reads the return's "retcode") and a
    # `salt.runner` orchestration step fail (it reads the context's).
    result["retcode"] = 0 if result.get("status") == success else 1
    if result["retcode"]:
        __context__["retcode"] = 1
    job = certdeploy_job.load(__opts__["cachedir"], result["job_id"], strict=False)
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
    not_before=None,
    max_parallel=10,
    nodes=None,
    nodes_target="cassandra",
):
    """
    Roll the pillar bundles out to the targeted Cassandra nodes (or ``client`` targets):
    plan (topology-aware batches, canaries first), pre-flight (all answer, ring all UN, lock
    free, every bundle valid, cross-trust for the whole plan), then per batch
    ``certdeploy.deploy`` and a health gate checked from another node. On failure:
    ``rollback_node`` (stop; the node is already rolled back), ``rollback_all`` (also roll back
    the nodes done, in reverse) or ``halt`` (stop,
    resumable). ``test=True`` prints the plan, per-node diff and pre-flight findings and
    changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.rollout 'cass*' test=True
        salt-run certdeploy.rollout 'cass*' method=reload on_failure=rollback_all
        salt-run certdeploy.rollout 'cass*' not_before=2026-12-01T02:00:00Z
        salt-run certdeploy.rollout 'app*' target=orders nodes='cass*' max_parallel=50

    ``not_before`` (ISO time or epoch) queues the rollout instead; the master's scheduler
    starts it then (and inside the cluster's maintenance window, unless ``force``).

    Client targets (profile ``client``) have no quorum to respect: after the canary they go
    ``max_parallel`` at a time, cross-trust is checked against the nodes ``nodes`` names, and
    each target's own verification (the server sees it under its new role) replaces the gate.
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
        max_parallel=int(max_parallel),
        nodes=nodes,
        nodes_target=nodes_target,
    )
    if not_before:
        master = _master()
        minions = sorted(master.expected(tgt, tgt_type))
        described = master.call(minions[:1], "certdeploy.describe", {"target": target}, 60)
        cluster = next(iter(described.values()), {}).get("cluster", "default")
        return _enqueue(cluster, minions, not_before, force, opts.as_dict())
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
    reverse order, each verified. ``latest`` names the newest rollout job.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.rollback 20261126T203000Z-ab12cd
        salt-run certdeploy.rollback latest
    """
    if job_id == "latest":
        rollouts = [
            j for j in certdeploy_job.list_jobs(__opts__["cachedir"]) if j.get("kind") == "rollout"
        ]
        if not rollouts:
            raise SaltInvocationError("job_id=latest: there is no rollout job on this master")
        job_id = rollouts[0]["job_id"]
    return _with_report(certdeploy_rollout.rollback_job(_master(), job_id), success="rolled_back")


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
    return certdeploy_job.load(__opts__["cachedir"], job_id, strict=False).data


def report(job_id, load=None):
    """
    Write the self-contained HTML report of a job (timeline, fingerprints, expiry, evidence,
    load counts when given) and return its path with a text table.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.report 20261126T203000Z-ab12cd
    """
    data = certdeploy_job.load(__opts__["cachedir"], job_id, strict=False).data
    if load:
        data = {**data, "load": load}
    return {
        "report": certdeploy_report.write_report(data, _report_path(job_id)),
        "table": certdeploy_report.render_text(data),
    }


# ----------------------------------------------------------------------------- event-driven


def _settings():
    """Master config ``certdeploy:`` (store root, coalescing, auto-rollback window)."""

    conf = dict(__opts__.get("certdeploy") or {})
    conf.setdefault("store_root", certdeploy_store.DEFAULT_ROOT)
    conf.setdefault("coalesce_seconds", 30)
    conf.setdefault("auto_rollback_seconds", 3600)
    return conf


def store_put(cluster, minion, cert_file, key_file, trust_file, chain_file=None, source=""):
    """
    Import a bundle into the master's certificate store after validating it. Takes *paths on
    the master* (job arguments are cached, so key material never goes on the command line).
    The ext_pillar ``certdeploy_store`` then hands it to that minion only.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.store_put prod cass-a1 /in/a1.crt /in/a1.key /in/ca.pem
    """

    def read(path):
        if not path:
            return None
        try:
            with open(path) as fh:
                return fh.read()
        except OSError as exc:
            raise CommandExecutionError(f"master: cannot read {path}: {exc}") from exc

    bundle = {"cert": read(cert_file), "key": read(key_file), "trust": read(trust_file)}
    if chain_file:
        bundle["chain"] = read(chain_file)
    return certdeploy_store.put(_settings()["store_root"], cluster, minion, bundle, source=source)


def enqueue(cluster=None, minions=None, not_before=None, force=False):
    """
    Queue a renewal (what the ``certdeploy/cert/renewed`` reactor calls). Renewals of one
    cluster within ``coalesce_seconds`` become one rollout; a renewal for a cluster whose
    rollout runs stays queued. The master's scheduler runs ``process_queue``.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.enqueue cluster=prod minions='[cass-a1, cass-a2]'
    """

    root = _settings()["store_root"]
    if not minions:
        if not cluster:
            raise SaltInvocationError("master: enqueue needs cluster or minions")
        minions = certdeploy_store.minions(root, cluster)
    if not cluster:
        found = {c for m in minions for c, _ in certdeploy_store.find_minion(root, m)}
        if len(found) != 1:
            raise SaltInvocationError(
                f"master: minions {minions} belong to clusters {sorted(found)}; pass cluster="
            )
        cluster = found.pop()
    return _enqueue(cluster, minions, not_before, force)


def _enqueue(cluster, minions, not_before, force, options=None):
    entry = certdeploy_queue.enqueue(
        __opts__["cachedir"],
        cluster,
        list(minions),
        not_before=certdeploy_queue.parse_not_before(not_before),
        force=bool(force),
        options=options,
    )
    if force:
        log.warning("certdeploy: maintenance window overridden (force) for %s", cluster)
    _master().fire(
        f"certdeploy/queue/{cluster}/queued",
        {"minions": entry["minions"], "events": entry["events"]},
    )
    return entry


def process_queue():
    """
    Start the queued rollouts that are ready (coalescing window passed, maintenance window
    open or forced, ``not_before`` reached, cluster not locked). Run by the master's scheduler.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.process_queue
    """

    settings = _settings()
    master = _master()
    started = []
    for entry in certdeploy_queue.pending(__opts__["cachedir"]):
        cluster = entry["cluster"]
        holder = certdeploy_job.lock_holder(__opts__["cachedir"], cluster)
        if holder and not certdeploy_job.is_stale(holder):
            continue  # a rollout runs: keep the renewal queued
        windows = _windows(master, entry["minions"])
        ok, why = certdeploy_queue.ready(
            entry, coalesce_seconds=float(settings["coalesce_seconds"]), windows=windows
        )
        if not ok:
            log.debug("certdeploy: queue %s waits: %s", cluster, why)
            continue
        taken = certdeploy_queue.take(__opts__["cachedir"], cluster)
        if not taken:
            continue
        master.fire(
            f"certdeploy/queue/{cluster}/started",
            {"minions": taken["minions"], "events": taken["events"], "why": why},
        )
        try:
            opts = certdeploy_rollout.Options.from_dict(taken.get("options") or {})
            result = certdeploy_rollout.rollout(
                master, taken["minions"], "list", opts=opts, force=False
            )
            started.append(_with_report(result))
        except (CommandExecutionError, SaltInvocationError) as exc:
            holder = certdeploy_job.lock_holder(__opts__["cachedir"], cluster)
            if holder and not certdeploy_job.is_stale(holder):
                # Another rollout took the lock between our look and our pre-flight: the
                # renewal waits for it, as if it had been there first.
                certdeploy_queue.put_back(__opts__["cachedir"], taken)
                log.info("certdeploy: %s locked by %s; renewal stays queued", cluster, holder)
                master.fire(f"certdeploy/queue/{cluster}/requeued", {"locked_by": holder})
                continue
            log.error("certdeploy: queued rollout of %s refused: %s", cluster, exc)
            master.fire(f"certdeploy/queue/{cluster}/refused", {"error": str(exc)[:2000]})
            started.append({"cluster": cluster, "refused": str(exc)})
    return started


def _windows(master, minions):
    # Windows live in the minions' pillar; read them fresh, not from a stale compile.
    master.call(minions[:1], "saltutil.refresh_pillar", {"wait": True}, 60)
    described = master.call(minions[:1], "certdeploy.describe", {}, 60)
    info = next(iter(described.values()), None)
    return (info or {}).get("maintenance_windows") if isinstance(info, dict) else None


def queue():
    """
    The pending renewals per cluster.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.queue
    """

    return certdeploy_queue.pending(__opts__["cachedir"])


def health_failed(minion, node=None, reason=None, target="cassandra"):
    """
    React to ``certdeploy/health/failed``: roll the node back when certdeploy deployed to it
    within ``auto_rollback_seconds`` (and no rollout is running on its cluster); otherwise only
    fire ``certdeploy/alert``.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.health_failed minion=cass2 reason=mismatch
    """
    master = _master()
    window = float(_settings()["auto_rollback_seconds"])
    status = master.call([minion], "certdeploy.status", {"target": target}, 60).get(minion)
    described = master.call([minion], "certdeploy.describe", {"target": target}, 60).get(minion)
    record = (status or {}).get("last_deployment") if isinstance(status, dict) else None
    cluster = (described or {}).get("cluster", "default") if isinstance(described, dict) else None
    holder = certdeploy_job.lock_holder(__opts__["cachedir"], cluster) if cluster else None
    action, why = certdeploy_health_policy.decide(record, holder, time.time(), window)
    if action == "alert":
        master.fire(
            "certdeploy/alert", {"minion": minion, "reason": reason, "action": "none", "why": why}
        )
        return {"minion": minion, "action": "alert", "why": why}
    master.progress(f"{minion}: health failed ({reason}) after a recent deployment; rolling back")
    ret = master.call([minion], "certdeploy.rollback", {"target": target}, 600).get(minion)
    verified = isinstance(ret, dict) and ret.get("verified")
    master.fire(
        f"certdeploy/node/{minion}/auto_rollback",
        {
            "reason": reason,
            "verified": bool(verified),
            "expected": ret.get("expected") if isinstance(ret, dict) else None,
        },
    )
    return {"minion": minion, "action": "rollback", "verified": bool(verified), "result": ret}


def compliance(
    tgt,
    tgt_type="glob",
    allowed_issuers=None,
    expected_cas=None,
    min_days=30,
    target="cassandra",
    html=None,
):
    """
    Check every targeted node live and change nothing (see ``certdeploy.compliance`` on the
    minion). Prints a table, returns JSON, and writes an HTML report.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.compliance 'cass*' allowed_issuers='["CN=Issuing CA,O=Example"]'
    """
    master = _master()
    minions = sorted(master.expected(tgt, tgt_type))
    kwargs = {"target": target, "min_days": min_days}
    if allowed_issuers is not None:
        kwargs["allowed_issuers"] = list(allowed_issuers)
    if expected_cas is not None:
        kwargs["expected_cas"] = list(expected_cas)
    nodes = certdeploy_compliance.gather(
        minions, master.call(minions, "certdeploy.compliance", kwargs, 120)
    )
    failures = certdeploy_compliance.failures(nodes)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = html or os.path.join(_reports_dir(), f"compliance-{stamp}.html")
    certdeploy_compliance.write_html(nodes, path)
    if failures:
        __context__["retcode"] = 1
    return {
        "ok": not failures,
        "failures": failures,
        "nodes": nodes,
        "report": path,
        "table": certdeploy_compliance.table(nodes),
        "retcode": 1 if failures else 0,
    }


def rotate_ca(
    tgt,
    new_ca_file,
    phase="all",
    tgt_type="glob",
    old_ca_fingerprint=None,
    client_tgt=None,
    target="cassandra",
    settle=10,
    gate_timeout=90,
    client_targets=None,
    max_parallel=10,
):
    """
    Rotate the cluster to a new CA in three verified rolling phases: (1) every truststore gets
    old + new CA; (2) leaves signed by the new CA (the pending bundles), node by node with the
    health gate; (3) the old CA leaves every truststore. ``phase=all`` runs 1-3 in order and
    stops at the first failure. Phase 2 refuses until phase 1 holds everywhere; phase 3 refuses
    while any node serves an old-CA leaf. ``new_ca_file`` is a PEM path on the master.

    With ``client_tgt`` (a glob of client minions) and ``client_targets`` (their pillar target
    names, comma-separated) the client applications take part: phase 1 adds the new CA to
    their truststores too, phase 2 deploys their pending new-CA leaves after the nodes' (canary,
    then ``max_parallel``), and phase 3 is refused while any client connection is seen under an
    old-CA identity, then removes the old CA from their truststores as well.

    CLI Example:

    .. code-block:: bash

        salt-run certdeploy.rotate_ca 'cass*' /srv/pki/new-root.pem
        salt-run certdeploy.rotate_ca 'cass*' /srv/pki/new-root.pem phase=1
        salt-run certdeploy.rotate_ca 'cass*' /srv/pki/new-root.pem \
            client_tgt='app*' client_targets=orders,billing
    """

    try:
        with open(new_ca_file) as fh:
            new_ca_pem = fh.read()
    except OSError as exc:
        raise CommandExecutionError(f"master: cannot read {new_ca_file}: {exc}") from exc
    opts = certdeploy_rollout.Options(
        target=target,
        settle=float(settle),
        gate_timeout=float(gate_timeout),
        max_parallel=int(max_parallel),
    )
    phases = (1, 2, 3) if str(phase) == "all" else (int(phase),)
    results = []
    for number in phases:
        result = certdeploy_rotate.rotate(
            _master(),
            tgt,
            tgt_type,
            phase=number,
            new_ca_pem=new_ca_pem,
            opts=opts,
            old_ca_fingerprint=old_ca_fingerprint,
            client_tgt=client_tgt,
            client_targets=client_targets,
        )
        results.append(_with_report(result))
        if result["status"] != "succeeded":
            break
    ok = all(r["status"] == "succeeded" for r in results) and len(results) == len(phases)
    if not ok:
        __context__["retcode"] = 1
    return {"ok": ok, "phases": results, "retcode": 0 if ok else 1}
