"""A rolling, topology-aware, resumable certificate rollout across a cluster.

    plan -> pre-flight (nothing changes anywhere; :mod:`.preflight`) -> per batch: every
    node up -> deploy -> health gate -> next

Every transition is written to the job file before the next one starts, so ``resume``
continues after a crash or a halt. A node that does not answer halts the job (what it did is
unknown); ``resume`` first puts it on one certificate with ``certdeploy.recover``. The runner
passes a :class:`Master` that reaches the targets through a transport (:mod:`.transport`);
this module holds the sequencing and reads no Salt dunders.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import boundary, client_fleet
from . import job as jobs
from . import plan as planner
from . import rollout_gate as gates
from .preflight import (
    already_serving,
    answered,
    clients_only,
    cluster_of,
    explain,
    preflight,
    topology,
)
from .result import REFUSED, BadAnswer, DeployResult
from .rollout_gate import BESIDE_WAIT  # noqa: F401 - part of this module's face
from .transport import PublishFailed

ON_FAILURE = ("rollback_node", "rollback_all", "halt")


@dataclass
class Master:
    """``call(minions, fun, kwargs, timeout) -> {minion: return}`` (missing = no answer);
    ``expected(tgt, tgt_type) -> [minion ids]`` with accepted keys; ``fire(tag, data)`` on the
    master bus; ``progress(message)`` to the person running ``salt-run``."""

    call: Callable
    expected: Callable
    fire: Callable
    progress: Callable
    cachedir: str
    # Orders ids cheapest-to-call first, for facts any node can give (ring, gate).
    prefer: Callable = list

    @classmethod
    def over(cls, transport, fire: Callable, progress: Callable, cachedir: str) -> Master:
        """A Master that reaches targets through ``transport`` (see :mod:`.transport`)."""
        return cls(
            call=transport.call,
            expected=transport.expected,
            fire=fire,
            progress=progress,
            cachedir=cachedir,
            prefer=getattr(transport, "prefer", list),
        )


@dataclass(frozen=True)
class Options:
    target: str = "cassandra"
    method: str = "auto"
    canary: int = 1
    max_unavailable: int = 1
    parallel_racks: bool = False
    on_failure: str = "rollback_node"
    verify_timeout: float | None = None
    gate_timeout: float = 90.0
    settle: float = 10.0  # after a restart: let clients' drivers reconnect before moving on
    health_keyspace: str = "certdeploy_health"
    call_timeout: float = 600.0
    # Client targets: no quorum bounds them, ``max_parallel`` does; cross-trust is checked
    # against the nodes ``nodes`` names (their ``nodes_target`` pillar target).
    max_parallel: int = 10
    nodes: str | None = None
    nodes_target: str = "cassandra"
    # What each node runs: the full deploy, or (CA rotation phases 1 and 3) a truststore-only
    # update with the same backup/verify/rollback safety.
    function: str = "certdeploy.deploy"
    function_kwargs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> Options:
        """Options from a job's params or a queue entry (unknown keys ignored)."""
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


# ----------------------------------------------------------------------------- rollout


def rollout(master: Master, tgt, tgt_type="glob", *, opts: Options, test=False, force=False):
    if opts.on_failure not in ON_FAILURE:
        raise SaltInvocationError(f"on_failure={opts.on_failure!r}: use one of {ON_FAILURE}")
    minions = sorted(master.expected(tgt, tgt_type))
    if not minions:
        raise SaltInvocationError(f"master: no accepted minion matches {tgt!r} ({tgt_type})")
    master.progress(f"pre-flight on {len(minions)} nodes: {', '.join(minions)}")
    pre_started = time.time()
    pre = preflight(master, minions, opts)
    pre_timing = {"start": pre_started, "end": time.time()}
    pre_timing["seconds"] = round(pre_timing["end"] - pre_started, 3)
    pre_timing["parts"] = pre.get("timings") or {}
    parts = ", ".join(f"{name} {sec}s" for name, sec in pre_timing["parts"].items())
    master.progress(f"pre-flight done in {pre_timing['seconds']}s ({parts or 'no round trip'})")
    if pre["problems"] and not test:
        raise CommandExecutionError(
            "pre-flight refused the rollout; nothing was changed:\n  - "
            + "\n  - ".join(pre["problems"])
        )
    clients = clients_only(pre, minions)
    placed = topology(pre["described"], minions) if "ring" in pre and not clients else []
    the_plan = (
        client_fleet.plan(minions, opts)
        if clients and "pending" in pre
        else (
            planner.plan(
                placed,
                keyspaces=planner.normalise_keyspaces(pre.get("keyspaces", [])),
                ring=[
                    {"id": r["address"], "address": r["address"], "dc": r["dc"], "rack": r["rack"]}
                    for r in pre.get("ring", [])
                ]
                or None,
                canary=opts.canary,
                max_unavailable=opts.max_unavailable,
                parallel_racks=opts.parallel_racks,
            )
            if placed
            else None
        )
    )
    if test:
        diffs = master.call(minions, "certdeploy.plan", {"target": opts.target}, 60)
        keyspaces, ring_rows = pre.get("keyspaces", []), pre.get("ring", [])
        members = [
            {"id": r["address"], "address": r["address"], "dc": r["dc"], "rack": r["rack"]}
            for r in ring_rows
        ]
        allowed, why = planner.rack_parallel_allowed(keyspaces, members)
        return {
            "test": True,
            "changed": False,
            "plan": the_plan,
            # What the topology allows, whatever was asked: to choose max_unavailable and
            # parallel_racks knowingly.
            "limits": {
                "max_unavailable_per_dc": planner.max_safe_unavailable(keyspaces, members),
                "rack_parallel": {"allowed": allowed, "why": why},
            },
            "preflight": {k: v for k, v in pre.items() if k != "described"},
            "diff": diffs,
        }
    cluster = cluster_of(pre["described"], minions)
    serving = [] if clients else already_serving(minions, pre["pending"], pre["served"])
    nodes = {
        m: client_fleet.node_facts(
            pre["described"][m], pre["pending"][m], pre["current_not_after"], m
        )
        if clients
        else {
            "address": pre["described"][m]["listen_address"],
            "endpoints": boundary.endpoints(pre["described"][m]),
            "dc": pre["described"][m]["dc"],
            "rack": pre["described"][m]["rack"],
            "new_fingerprint": pre["pending"][m]["fingerprint"],
            "not_after": pre["pending"][m].get("not_after"),
            "old_not_after": pre["current_not_after"].get(m),
        }
        for m in minions
    }
    job = jobs.new_job(
        "rollout", cluster, {"tgt": tgt, "tgt_type": tgt_type, **opts.as_dict()}, the_plan, nodes
    )
    job = job.with_status("running", preflight=pre_timing)
    for m in serving:  # a rerun (say, of a CA rotation's phase 2) leaves them be
        job = job.with_node(m, state="skipped", note="already serves the pending certificate")
    if serving:
        master.progress(f"already serving the pending certificate, skipped: {serving}")
    lock = jobs.acquire(master.cachedir, cluster, job.job_id, force=force)
    if lock["took_over"]:
        master.progress(f"took over a {lock['took_over']} lock: {lock['previous']}")
    jobs.save(master.cachedir, job)
    master.fire(f"certdeploy/rollout/{job.job_id}/started", {"nodes": minions, "plan": the_plan})
    master.progress(f"job {job.job_id}: batches {the_plan['batches']}")
    try:
        job = execute(master, job, opts, checked=True)
    finally:
        jobs.release(master.cachedir, cluster, job.job_id)
    master.progress(where_time_went(job))
    return finish(master, job)


def resume(master: Master, job_id: str, force=False) -> dict:
    job = jobs.load(master.cachedir, job_id)
    if job.get("status") == "succeeded":
        return finish(master, job)
    opts = Options.from_dict(job.get("params", {}))
    lock = jobs.acquire(master.cachedir, job.get("cluster"), job_id, force=force)
    if lock["took_over"]:
        master.progress(f"took over a {lock['took_over']} lock from {lock['previous']}")
    master.progress(f"resuming job {job_id}; done: {sorted(job.done())}")
    try:
        # A node caught mid-step: put it on one certificate and find out which, first.
        for node_id, node in job.nodes.items():
            if node.get("state") == "running":
                job = _reconcile(master, job, node_id, opts)
                jobs.save(master.cachedir, job)
        job = job.with_status("running", resumed=time.time())
        jobs.save(master.cachedir, job)
        job = execute(master, job, opts)
    finally:
        jobs.release(master.cachedir, job.get("cluster"), job_id)
    return finish(master, job)


def _reconcile(master, job, node_id, opts):
    """A node the job left ``running`` (no answer: the minion or the master died mid-call).
    ``certdeploy.recover`` puts it on one certificate, verified (an interrupted install is
    restored from its backup); then a node serving the new certificate is gated, not
    deployed again, and one on the old certificate is deployed again."""
    kw = {"target": opts.target}
    recovered = master.call([node_id], "certdeploy.recover", kw, opts.call_timeout).get(node_id)
    if not answered(recovered) or not recovered.get("verified"):
        raise CommandExecutionError(
            f"resume of {job.job_id}: {node_id} could not be put back on one certificate: "
            f"{explain(recovered) if not answered(recovered) else recovered}. The job stays as "
            "it was. "
            f"Fix: bring {node_id} back (salt {node_id} certdeploy.status), then resume again"
        )
    if recovered.get("interrupted"):
        master.progress(f"{node_id}: interrupted deployment {recovered['action']}")
    status = master.call([node_id], "certdeploy.status", kw, 60).get(node_id)
    new = job.nodes[node_id]["new_fingerprint"]
    if answered(status) and status["served"] == {"client": new, "internode": new}:
        master.progress(f"{node_id}: already serves the new certificate; gating it")
        gate = gates.gate(master, job, [node_id], opts, restart=False)
        state = "deployed" if gate.get("ok") else "pending"
        return job.with_node(
            node_id, state=state, reconciled=True, gate=gate, recovered=recovered, error=None
        )
    master.progress(f"{node_id}: on its old certificate; will deploy it again")
    return job.with_node(node_id, state="pending", reconciled=True, recovered=recovered)


def execute(master: Master, job: jobs.Job, opts: Options, checked=False) -> jobs.Job:
    """Batch after batch until done. Before each batch but a fresh job's first (pre-flight
    has just looked), every node of the plan must be up: a node that went down after the
    last gate halts the job before anything in the next batch changes (:mod:`.boundary`)."""
    while True:
        batch = planner.next_batch(job.get("plan"), job.done())
        if batch is None:
            job = job.with_status("succeeded")
            jobs.save(master.cachedir, job)
            return job
        require = None
        if not checked and job.get("plan").get("mode") != client_fleet.MODE:
            # The deploy checks, before any change; or a round trip does, here.
            require = boundary.required(job, batch, opts.function)
            if require is None:
                down = boundary.down_nodes(master, job, opts)
                if down:
                    return _halt(
                        master, job, list(down), boundary.halt_reason(batch, down, job.job_id)
                    )
        checked = False
        job, failed, unknown, refused = _run_batch(master, job, batch, opts, require)
        jobs.save(master.cachedir, job)
        if refused:
            # Only what each node's own minion sees may halt the job: ask them.
            down = boundary.down_nodes(master, job, opts)
            if down:
                return _halt(master, job, list(down), boundary.halt_reason(batch, down, job.job_id))
            master.progress(
                f"{refused}: their own minions see every plan node serving; deploying {batch}"
            )
            checked = True
            continue
        if unknown:
            return _halt(
                master,
                job,
                unknown,
                "; ".join(f"{n}: {job.nodes[n].get('error')}" for n in unknown)
                + " (minion or master restarted?): what happened there is not known, so "
                "nothing was rolled back or retried. Fix: make sure the minions answer "
                f"(salt {unknown[0]} test.ping), then salt-run certdeploy.resume "
                f"{job.job_id}: resume first puts an interrupted node on one certificate",
            )
        if failed:
            return _on_failure(master, job, failed, opts)


def _halt(master, job, nodes: list[str], why: str) -> jobs.Job:
    master.progress(f"halted: {why}")
    job = job.with_status("halted", failed_nodes=nodes, halted=why)
    jobs.save(master.cachedir, job)
    return job


def _run_batch(master, job, batch, opts, require=None):
    """Deploy ``batch`` and gate it: ``(job, failed, unknown, refused)``. ``refused`` holds
    what a deploy refused before any change because a plan node of ``require`` did not
    serve: those nodes are ``pending`` again."""
    for node_id in batch:
        job = job.with_node(node_id, state="running")
        _event(master, job, node_id, "deploying")
    jobs.save(master.cachedir, job)
    master.progress(f"deploying {', '.join(batch)}")
    started = time.time()
    # Cross-trust was checked for the whole plan in pre-flight.
    kwargs = {
        "target": opts.target,
        "method": opts.method,
        "skip_cross_trust": True,
        **opts.function_kwargs,
    }
    if opts.verify_timeout:
        kwargs["verify_timeout"] = opts.verify_timeout
    if require:
        kwargs["require_serving"] = require
    beside = gates.beside(master, job, batch, opts)
    try:
        results, no_answer = master.call(batch, opts.function, kwargs, opts.call_timeout), None
    except PublishFailed as exc:
        # A busy master may still have sent it: what happened is not known, as for no answer.
        # When it did take the job, the answers that came are kept (ReturnsLost).
        results, no_answer = exc.answers, str(exc)
    ended = time.time()
    failed, restarted, unknown, refused = [], False, [], []
    for node_id in batch:
        if node_id not in results or results[node_id] is None:
            # No answer is not a failure: the node may have deployed, or died half-way.
            job = job.with_node(
                node_id,
                error=no_answer or f"no answer to {opts.function} within {opts.call_timeout:.0f}s",
            )
            _event(master, job, node_id, "no_answer")
            unknown.append(node_id)
            continue
        try:
            res = DeployResult.from_dict(results.get(node_id))
        except BadAnswer:
            job = job.with_node(node_id, state="failed", error=explain(results.get(node_id)))
            failed.append(node_id)
            continue
        if res.outcome == REFUSED:
            job = job.with_node(node_id, state="pending", refused=res.error)
            _event(master, job, node_id, REFUSED)
            master.progress(f"{node_id}: {res.error}")
            refused.append(node_id)
            continue
        timings = res.timings.to_dict()
        job = job.with_step(node_id, "deploy", started, ended, timings=timings)
        restarted |= res.method == "restart"
        job = job.with_node(
            node_id,
            old_fingerprint=res.old_fingerprint,
            backup_id=res.backup_id,
            method=res.method,
            timings=timings,
            evidence=res.evidence.to_dict() if res.evidence else None,
            outcome=res.outcome,
        )
        if not res.deployed:
            job = job.with_node(node_id, state=res.outcome, error=res.error)
            failed.append(node_id)
        _event(master, job, node_id, res.outcome)
        steps = ", ".join(
            f"{step} {seconds}s" for step, seconds in timings.items() if step != "total"
        )
        master.progress(f"{node_id}: {res.outcome} in {res.timings.total}s ({steps})")
    if failed or unknown or refused:
        # The batch's other nodes deployed and verified (their minion proved it): they are
        # deployed, so that rollback_all takes them back too and the report counts them; no
        # gate judged them, since the batch failed elsewhere.
        for node_id in batch:
            if (
                node_id not in (*failed, *unknown, *refused)
                and job.nodes[node_id].get("outcome") == "deployed"
            ):
                job = job.with_node(node_id, state="deployed", note="not gated: batch failed")
        return job, failed, unknown, refused
    gate_started = time.time()
    early = beside.result() if beside is not None and not restarted else None
    if job.get("plan").get("mode") == client_fleet.MODE:
        gate = {"ok": True, "skipped": "client targets: each one's verification is the proof"}
    elif early is not None and early.get("ok"):
        gate, gate_started = early, beside.started
    else:
        # Not started beside the deployment, or it judged nothing (a restart, or the new
        # certificate was not served in its wait), or it failed: the gate proper decides.
        gate = gates.gate(master, job, batch, opts, restart=restarted)
    for node_id in batch:
        job = job.with_step(node_id, "health_gate", gate_started, time.time(), ok=gate.get("ok"))
        job = job.with_node(node_id, gate=gate)
    if gate.get("no_answer"):
        # Deployed and verified by their minions, but nobody could judge the cluster: they
        # stay ``running`` for resume to reconcile and gate, never rolled back blind.
        for node_id in batch:
            job = job.with_node(node_id, error=gate["error"])
        return job, [], list(batch), []
    if not gate.get("ok"):
        master.progress(f"health gate failed after {batch}: {gate}; rolling them back")
        for node_id in batch:
            job = _rollback_node(master, job, node_id, opts, state="rolled_back")
            job = job.with_node(node_id, error=f"health gate failed: {gate}")
        return job, list(batch), [], []
    for node_id in batch:
        job = job.with_node(node_id, state="deployed")
        _event(master, job, node_id, "gated")
    master.progress(f"health gate passed ({gate.get('seconds')}s from {gate.get('from')})")
    return job, [], [], []


def _rollback_node(master, job, node_id, opts, state):
    backup_id = job.nodes[node_id].get("backup_id")
    started = time.time()
    master.progress(f"{node_id}: rolling back to backup {backup_id}")
    ret = master.call(
        [node_id],
        "certdeploy.rollback",
        {"target": opts.target, "backup_id": backup_id},
        opts.call_timeout,
    ).get(node_id)
    ok = answered(ret) and ret.get("verified")
    job = job.with_step(node_id, "rollback", started, time.time(), ok=bool(ok))
    job = job.with_node(
        node_id,
        state=state if ok else "rollback_failed",
        rollback={
            "verified": bool(ok),
            "expected": ret.get("expected") if answered(ret) else None,
            "error": None if answered(ret) else explain(ret),
        },
    )
    _event(master, job, node_id, "rolled_back" if ok else "rollback_failed")
    return job


def _on_failure(master, job, failed, opts):
    policy = opts.on_failure
    master.progress(f"failure on {failed}; on_failure={policy}")
    if policy == "rollback_all":
        done = [
            n for n in reversed(job.get("plan")["order"]) if job.nodes[n]["state"] == "deployed"
        ]
        for node_id in done:
            job = _rollback_node(master, job, node_id, opts, state="rolled_back")
            jobs.save(master.cachedir, job)
        status = "rolled_back"
    else:
        status = "halted" if policy == "halt" else "failed"
    for node_id, node in job.nodes.items():
        if node["state"] == "pending":
            job = job.with_node(node_id, state="skipped" if status != "halted" else "pending")
    job = job.with_status(status, failed_nodes=failed)
    jobs.save(master.cachedir, job)
    return job


def rollback_job(master: Master, job_id: str) -> dict:
    """Put every node a job changed back on its previous certificate, verified."""
    job = jobs.load(master.cachedir, job_id)
    opts = Options.from_dict(job.get("params", {}))
    lock = jobs.acquire(master.cachedir, job.get("cluster"), job_id)
    try:
        for node_id in reversed(job.get("plan")["order"]):
            if job.nodes[node_id].get("state") in ("deployed", "running"):
                job = _rollback_node(master, job, node_id, opts, state="rolled_back")
                jobs.save(master.cachedir, job)
        failed = [n for n, v in job.nodes.items() if v.get("state") == "rollback_failed"]
        job = job.with_status("failed" if failed else "rolled_back", failed_nodes=failed)
        jobs.save(master.cachedir, job)
    finally:
        jobs.release(master.cachedir, job.get("cluster"), lock["job_id"])
    return finish(master, job)


def finish(master: Master, job: jobs.Job) -> dict:
    master.fire(f"certdeploy/rollout/{job.job_id}/finished", {"status": job.get("status")})
    return summary(job)


def summary(job: jobs.Job) -> dict:
    data = job.data
    return {
        "job_id": job.job_id,
        "status": data["status"],
        "cluster": data["cluster"],
        "plan": data.get("plan"),
        "wall_seconds": round(data["updated"] - data["created"], 2),
        "halted": data.get("halted") if data["status"] == "halted" else None,
        "timings": timings(job),
        "nodes": {
            n: {
                "state": v["state"],
                "old_fingerprint": v.get("old_fingerprint"),
                "new_fingerprint": v.get("new_fingerprint"),
                "method": v.get("method"),
                "seconds": (v.get("timings") or {}).get("total"),
                "backup_id": v.get("backup_id"),
                "evidence": v.get("evidence"),
                "error": v.get("error"),
            }
            for n, v in data["nodes"].items()
        },
    }


def timings(job: jobs.Job) -> dict:
    """Where the rollout's time went: pre-flight, each node's steps (as its minion timed
    them) and each health gate, in seconds. A gate counts what it added after its batch's
    deployment returned: one started beside the deployment mostly overlaps it."""
    gates = {}
    for node in job.nodes.values():
        steps = node.get("steps") or []
        deployed = max((s["end"] for s in steps if s["step"] == "deploy"), default=None)
        for step in steps:
            if step["step"] == "health_gate":  # one gate per batch: its nodes share it
                after = step["start"] if deployed is None else max(step["start"], deployed)
                gates[step["start"]] = round(max(0.0, step["end"] - after), 3)
    return {
        "preflight": (job.get("preflight") or {}).get("seconds"),
        # Its round trips: the pillar refresh, the facts, and the call beside them.
        "preflight_parts": dict((job.get("preflight") or {}).get("parts") or {}),
        "nodes": {n: dict(v.get("timings") or {}) for n, v in job.nodes.items()},
        "gates": [gates[start] for start in sorted(gates)],
        # From the start of pre-flight (a resumed job's own record starts at its creation).
        "wall": round(
            job.get("updated") - ((job.get("preflight") or {}).get("start") or job.get("created")),
            3,
        ),
    }


def where_time_went(job: jobs.Job) -> str:
    spent = timings(job)
    nodes = ", ".join(
        f"{n} {t['total']}s" for n, t in spent["nodes"].items() if t.get("total") is not None
    )
    gates = " + ".join(f"{g}s" for g in spent["gates"]) or "none"
    return (
        f"time: pre-flight {spent['preflight']}s; nodes {nodes or 'none'}; gates {gates}; "
        f"in all {spent['wall']}s"
    )


def _event(master, job, node_id, step):
    node = job.nodes[node_id]
    master.fire(
        f"certdeploy/rollout/{job.job_id}/node/{node_id}/{step}",
        {k: node.get(k) for k in ("state", "old_fingerprint", "new_fingerprint", "method")},
    )
