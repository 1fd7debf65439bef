"""CA rotation for client targets: ``rotate_ca(..., client_tgt=..., client_targets=...)``.

The clients' part of each phase, after the nodes' part succeeded:

1. every client truststore gets the new CA too (``trust_update``; a truststore change restarts
   a client whose driver never reloads it, e.g. java-driver);
2. after the nodes serve new-CA leaves, the clients get theirs: a client rollout of each
   target's pending bundle, which must chain to the new CA (refused up front otherwise);
3. refused while any client connection is seen under an old-CA identity: each client's
   installed leaf must chain to the new CA and its server-side verification (every node sees
   its connections only under the role of that leaf) must pass now. Then the old CA leaves the
   client truststores as well.

Each step is a job on the rollout engine (kind ``rotate_ca_phase<N>_clients``: canary, then
``max_parallel``; backup, verify and rollback per target), one per client target name.
"""

from __future__ import annotations

import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import bundle as cb
from . import chain, client_fleet, profiles
from . import job as jobs
from . import rollout as rollouts


def _ok(ret) -> bool:
    return isinstance(ret, dict)


def names(value) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",")]
    found = [str(v) for v in value or () if str(v)]
    if not found:
        raise SaltInvocationError(
            "master: client_tgt needs client_targets: the pillar target names of the client "
            "applications on those minions. Fix: add client_targets=orders,billing"
        )
    return found


def groups(master, client_tgt: str, targets: list[str]) -> dict[str, list[str]]:
    """``{target name: [minions that have it]}``; every matched minion must have one."""
    minions = sorted(master.expected(client_tgt, "glob"))
    if not minions:
        raise SaltInvocationError(f"master: client_tgt={client_tgt!r} matches no accepted minion")
    found, used = {}, set()
    for name in targets:
        described = master.call(minions, "certdeploy.describe", {"target": name}, 60)
        members = [
            m
            for m in minions
            if _ok(described.get(m)) and _fleet(described[m]) == client_fleet.MODE
        ]
        if not members:
            raise SaltInvocationError(
                f"master: no minion of client_tgt={client_tgt!r} has a client target {name!r}. "
                "Fix: check certdeploy:targets on those minions, or the name"
            )
        found[name] = members
        used.update(members)
    idle = sorted(set(minions) - used)
    if idle:
        raise SaltInvocationError(
            f"master: {idle} match client_tgt but have none of the client targets {targets}. "
            "Fix: narrow client_tgt, or name their targets in client_targets"
        )
    return found


def _fleet(entry: dict) -> str | None:
    try:
        return profiles.trait({"profile": "", **entry}, "FLEET")
    except SaltInvocationError:
        return None


def _chains_to(peer, anchor) -> bool:
    certs = cb.load_certs(peer["chain_pem"], peer["node"], "chain")
    return chain.trusted_by(certs, [anchor], now=cb.as_utc(None)).ok


def _trust_fps(peer) -> set[str]:
    return {cb.fingerprint(c) for c in cb.load_certs(peer["trust_pem"], peer["node"], "trust")}


def _answers(master, minions, fun, name, what) -> dict:
    answers = master.call(minions, fun, {"target": name}, 120)
    bad = [m for m in minions if not _ok(answers.get(m))]
    if bad:
        detail = "; ".join(f"{m}: {answers.get(m)!r}"[:300] for m in bad)
        raise CommandExecutionError(f"CA rotation: {what} of {name} unreadable on {detail}")
    return answers


def check_leaves_pending(master, found, new_ca) -> None:
    """Phase 2: every client target's pending bundle chains to the new CA."""
    wrong = []
    for name, members in found.items():
        pending = _answers(master, members, "certdeploy.bundle_public", name, "pending bundle")
        wrong += [f"{m}:{name}" for m in members if not _chains_to(pending[m], new_ca)]
    if wrong:
        raise CommandExecutionError(
            f"CA rotation phase 2 refused: the pending client bundles of {wrong} are not signed "
            "by the new CA. Fix: put new-CA client leaves in their pillar. Nothing was changed."
        )


def check_no_old_identity(master, found, new_ca) -> None:
    """Phase 3: no client leaf off the new CA, and no connection under an old identity."""
    problems = []
    for name, members in found.items():
        peers = _answers(master, members, "certdeploy.peer_info", name, "installed material")
        old = [m for m in members if not _chains_to(peers[m], new_ca)]
        problems += [f"{m}:{name}: its installed leaf does not chain to the new CA" for m in old]
        rest = [m for m in members if m not in old]
        if not rest:
            continue
        proofs = master.call(rest, "certdeploy.verify", {"target": name}, 180)
        for m in rest:
            proof = proofs.get(m)
            if not (_ok(proof) and proof.get("ok")):
                why = (proof or {}).get("problems") if _ok(proof) else proof
                problems.append(f"{m}:{name}: connections not all under its new-CA role: {why}")
    if problems:
        raise CommandExecutionError(
            "CA rotation phase 3 refused while client connections may use an old-CA identity:"
            "\n  - " + "\n  - ".join(problems) + "\nFix: finish the clients' phase 2 (their "
            "new-CA leaves, activated and verified) first. Nothing was changed."
        )


def _job(master, kind, cluster, name, members, opts, nodes) -> dict:
    the_plan = client_fleet.plan(members, opts)
    job = jobs.new_job(
        kind, cluster, {"tgt": members, "tgt_type": "list", **opts.as_dict()}, the_plan, nodes
    )
    for m, facts in nodes.items():
        if facts.get("skip"):
            job = job.with_node(m, state="skipped", note="already done")
    jobs.acquire(master.cachedir, cluster, job.job_id)
    jobs.save(master.cachedir, job)
    master.fire(f"certdeploy/rollout/{job.job_id}/started", {"kind": kind, "target": name})
    todo = sorted(m for m in members if not nodes[m].get("skip"))
    master.progress(f"{kind} {name}: job {job.job_id}, targets to change {todo}")
    try:
        job = rollouts.execute(master, job, opts, checked=True)
    finally:
        jobs.release(master.cachedir, cluster, job.job_id)
    return rollouts.finish(master, job)


def trust_step(master, found, phase, *, add=None, remove=None, opts, cluster) -> list[dict]:
    """Phase 1 (``add``) or 3 (``remove``) on every client truststore."""
    results = []
    for name, members in found.items():
        peers = _answers(master, members, "certdeploy.peer_info", name, "installed material")
        status = _answers(master, members, "certdeploy.status", name, "status")
        if add:
            (anchor,) = cb.load_certs(add[0], "master", "new_ca")[:1]
            skip = {m: cb.fingerprint(anchor) in _trust_fps(peers[m]) for m in members}
            kwargs = {"add": add}
        else:
            skip = {m: not (_trust_fps(peers[m]) & set(remove)) for m in members}
            kwargs = {"remove": sorted(remove)}
        nodes = {}
        for m in members:
            installed = status[m]["on_disk"]["keystore"]["fingerprint"]
            nodes[m] = {"new_fingerprint": installed, "old_fingerprint": installed, "skip": skip[m]}
        step_opts = rollouts.Options(
            **{
                **opts.as_dict(),
                "target": name,
                "method": "auto",  # the profile decides: a truststore change may restart
                "function": "certdeploy.trust_update",
                "function_kwargs": kwargs,
            }
        )
        kind = f"rotate_ca_phase{phase}_clients"
        results.append(_job(master, kind, cluster, name, members, step_opts, nodes))
        if results[-1]["status"] != "succeeded":
            break
    return results


def leaves_step(master, found, *, opts, nodes_tgt: str) -> list[dict]:
    """Phase 2's client part: a client rollout of each target's new-CA bundle."""
    results = []
    for name, members in found.items():
        step_opts = rollouts.Options(
            **{
                **opts.as_dict(),
                "target": name,
                "nodes": nodes_tgt,
                "nodes_target": opts.target,
                "method": "auto",
            }
        )
        started = time.time()
        result = rollouts.rollout(master, members, "list", opts=step_opts)
        result["seconds"] = round(time.time() - started, 2)
        results.append(result)
        if result["status"] != "succeeded":
            break
    return results
