"""Phased CA rotation, the operation that breaks clusters when done in one step:

1. every truststore gets old + new CA (a verified rolling reload);
2. leaves signed by the new CA, node by node, with the full health gate (a normal rollout);
3. the old CA leaves every truststore (a verified rolling reload).

Each phase is its own resumable job (kinds ``rotate_ca_phase1/2/3``) on the rollout engine.
Phase 2 refuses until phase 1 holds on every node; phase 3 refuses while any node still
serves a leaf that does not chain to the new CA.

Client applications belong to every phase (``client_tgt`` and ``client_targets``, see
:mod:`.rotate_clients`): their truststores in phases 1 and 3, their new-CA leaves after the
nodes' in phase 2, and phase 3 refuses while any client connection uses an old-CA identity.
"""

from __future__ import annotations

import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import bundle as cb
from . import chain, rotate_clients
from . import job as jobs
from . import plan as planner
from . import rollout as rollouts

PHASES = (1, 2, 3)


def _current(master, minions, opts):
    kw = {"target": opts.target}
    master.call(minions, "saltutil.refresh_pillar", {"wait": True}, 60)
    described = master.call(minions, "certdeploy.describe", kw, 60)
    peers = master.call(minions, "certdeploy.peer_info", kw, 60)
    status = master.call(minions, "certdeploy.status", kw, 60)
    bad = [
        m
        for m in minions
        if not all(isinstance(x.get(m), dict) for x in (described, peers, status))
    ]
    if bad:
        raise CommandExecutionError(f"CA rotation pre-flight: no usable answer from {bad}")
    ring = master.call(minions[:1], "certdeploy.ring", kw, 120).get(minions[0])
    not_un = [f"{r['address']}={r['code']}" for r in ring or [] if r["code"] != "UN"]
    if not isinstance(ring, list) or not_un:
        raise CommandExecutionError(f"CA rotation pre-flight: ring is not all UN: {not_un or ring}")
    return described, peers, status


def _trust_fps(peer) -> set[str]:
    return {cb.fingerprint(c) for c in cb.load_certs(peer["trust_pem"], peer["node"], "trust")}


def _chains_to(peer, anchor) -> bool:
    certs = cb.load_certs(peer["chain_pem"], peer["node"], "chain")
    return chain.trusted_by(certs, [anchor], now=cb.as_utc(None)).ok


def rotate(
    master,
    tgt,
    tgt_type="glob",
    *,
    phase,
    new_ca_pem: str,
    opts: rollouts.Options,
    old_ca_fingerprint=None,
    client_tgt=None,
    client_targets=None,
) -> dict:
    phase = int(phase)
    if phase not in PHASES:
        raise SaltInvocationError(f"master: phase={phase}: use 1, 2 or 3 (or run them in order)")
    (new_ca,) = cb.load_certs(new_ca_pem, "master", "new_ca")[:1]
    new_fp = cb.fingerprint(new_ca)
    minions = sorted(master.expected(tgt, tgt_type))
    if not minions:
        raise SaltInvocationError(f"master: no accepted minion matches {tgt!r}")
    found = {}
    if client_tgt:
        if tgt_type != "glob":
            raise SaltInvocationError(
                f"master: tgt_type={tgt_type!r}: with client_tgt the nodes are named by a glob "
                "(clients check cross-trust against them). Fix: pass tgt as a glob"
            )
        found = rotate_clients.groups(master, client_tgt, rotate_clients.names(client_targets))
    described, peers, status = _current(master, minions, opts)

    if phase == 2:
        missing = [m for m in minions if new_fp not in _trust_fps(peers[m])]
        if missing:
            raise CommandExecutionError(
                f"CA rotation phase 2 refused: phase 1 has not completed on {missing} (their "
                f"truststores lack the new CA {new_fp[:16]}). Fix: salt-run certdeploy.rotate_ca "
                "phase=1 first. Nothing was changed."
            )
        pending = master.call(minions, "certdeploy.bundle_public", {"target": opts.target}, 60)
        wrong = [
            m
            for m in minions
            if not isinstance(pending.get(m), dict) or not _chains_to(pending[m], new_ca)
        ]
        if wrong:
            raise CommandExecutionError(
                f"CA rotation phase 2 refused: the pending bundles of {wrong} are not signed "
                "by the new CA. Fix: put new-CA leaves in the store. Nothing was changed."
            )
        if found:
            rotate_clients.check_leaves_pending(master, found, new_ca)
        result = rollouts.rollout(master, minions, "list", opts=opts)
        return _with_clients(
            result,
            lambda: rotate_clients.leaves_step(master, found, opts=opts, nodes_tgt=tgt),
            found,
        )

    if phase == 3:
        old_leaf = [
            m
            for m in minions
            if not _chains_to(peers[m], new_ca)
            or status[m]["served"].get("client") != status[m]["on_disk"]["keystore"]["fingerprint"]
        ]
        if old_leaf:
            raise CommandExecutionError(
                f"CA rotation phase 3 refused: {old_leaf} still serve a leaf that does not chain "
                "to the new CA. Fix: finish phase 2 first. Nothing was changed."
            )
        if found:
            rotate_clients.check_no_old_identity(master, found, new_ca)
        remove = (
            [old_ca_fingerprint]
            if old_ca_fingerprint
            else sorted({fp for m in minions for fp in _trust_fps(peers[m])} - {new_fp})
        )
        kwargs = {"remove": remove}
        todo = {m for m in minions if _trust_fps(peers[m]) & set(remove)}
    else:
        kwargs = {"add": [cb.cert_pem(new_ca)]}
        todo = {m for m in minions if new_fp not in _trust_fps(peers[m])}

    topology = [
        {
            "id": m,
            "address": described[m]["listen_address"],
            "dc": described[m]["dc"],
            "rack": described[m]["rack"],
        }
        for m in minions
    ]
    the_plan = planner.plan(topology, canary=opts.canary, max_unavailable=1)
    nodes = {
        m: {
            "address": described[m]["listen_address"],
            "dc": described[m]["dc"],
            "rack": described[m]["rack"],
            # A truststore change must leave the served certificate exactly as it was.
            "new_fingerprint": status[m]["on_disk"]["keystore"]["fingerprint"],
            "old_fingerprint": status[m]["on_disk"]["keystore"]["fingerprint"],
        }
        for m in minions
    }
    phase_opts = rollouts.Options(
        **{
            **opts.as_dict(),
            "method": "reload",
            "function": "certdeploy.trust_update",
            "function_kwargs": kwargs,
        }
    )
    cluster = described[minions[0]].get("cluster", "default")
    job = jobs.new_job(
        f"rotate_ca_phase{phase}",
        cluster,
        {"tgt": minions, "tgt_type": "list", **phase_opts.as_dict(), "new_ca_fingerprint": new_fp},
        the_plan,
        nodes,
    )
    for m in sorted(set(minions) - todo):
        job = job.with_node(m, state="skipped", note="already done")
    jobs.acquire(master.cachedir, cluster, job.job_id)
    jobs.save(master.cachedir, job)
    master.fire(f"certdeploy/rollout/{job.job_id}/started", {"kind": job.get("kind")})
    master.progress(f"CA rotation phase {phase}: job {job.job_id}, nodes to change {sorted(todo)}")
    started = time.time()
    try:
        job = rollouts.execute(master, job, phase_opts, checked=True)
    finally:
        jobs.release(master.cachedir, cluster, job.job_id)
    result = rollouts.finish(master, job)
    result["phase"], result["seconds"] = phase, round(time.time() - started, 2)
    trust = {"remove": remove} if phase == 3 else {"add": [cb.cert_pem(new_ca)]}
    return _with_clients(
        result,
        lambda: rotate_clients.trust_step(
            master, found, phase, **trust, opts=opts, cluster=cluster
        ),
        found,
    )


def _with_clients(result: dict, step, found: dict) -> dict:
    """The clients' part of a phase runs once the nodes' part succeeded; the phase succeeds
    only when both did."""
    if not found or result["status"] != "succeeded":
        return result
    clients = step()
    result["clients"] = clients
    if any(c["status"] != "succeeded" for c in clients) or len(clients) < len(found):
        result["status"] = "failed"
    return result
