"""Pre-flight of a rollout: everything checked before anything changes anywhere.

Every target answers and describes itself; one kind of target per rollout; the ring is all UN
and the keyspaces' replication is known (for the planner); every pending bundle validates on
its node, and trusts and is trusted by every node's current *and* future material (mid-rollout
both coexist; judged here from public material); no
other rollout holds the cluster's lock. The answers come in few round trips
(``certdeploy.facts``). Also the helpers the rollout shares with it for reading minions'
answers. No Salt dunders.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from . import bundle as cb
from . import checks, client_fleet, profiles
from . import job as jobs


def answered(ret) -> bool:
    return isinstance(ret, dict)


def explain(ret) -> str:
    if isinstance(ret, str) and "is not available" in ret:
        # Salt's answer when the minion has not got the extension (or an old copy of it).
        return f"{ret.strip()} Fix: salt '*' saltutil.sync_all"
    return ret if isinstance(ret, str) else f"no answer ({ret!r})"


# ----------------------------------------------------------------------------- pre-flight

NODE_PARTS = ("describe", "peer_info", "bundle_public", "served")  # from every target
CLUSTER_PARTS = ("ring", "keyspaces")  # from one node: its view of the cluster


def preflight(master, minions: list[str], opts) -> dict:
    """Everything checked before anything changes. Returns facts, ``problems`` and
    ``timings``: the seconds its round trips took (``refresh``, ``facts``, and ``side``, the
    call beside them), for the report's "where time went"."""
    spent: dict = {}
    return {**_preflight(master, minions, opts, spent), "timings": spent}


def _preflight(master, minions: list[str], opts, spent: dict) -> dict:
    problems: list[str] = []
    kw = {"target": opts.target}
    probe_node = master.prefer(minions)[0]
    facts = _facts(master, minions, opts, kw, probe_node, spent)
    described = facts["describe"]
    down = [m for m in minions if not answered(described.get(m))]
    if down:
        problems.append(
            "targets not answering or misconfigured: "
            + "; ".join(f"{m}: {explain(described.get(m))}" for m in down)
        )
        return {"problems": problems, "described": described}
    kinds = sorted({kind(described[m]) for m in minions})
    if len(kinds) > 1:
        problems.append(
            f"one rollout deploys one kind of target; these are mixed: {kinds}. "
            "Fix: roll each kind out on its own"
        )
        return {"problems": problems, "described": described}
    if profiles.trait(described[minions[0]], "FLEET") == client_fleet.MODE:
        facts = client_fleet.preflight(minions, opts, facts)
        check_lock(master, facts["problems"], described, minions)
        return facts
    ring_rows = facts["ring"].get(probe_node)
    if not isinstance(ring_rows, list):
        problems.append(f"cannot read the ring from {probe_node}: {explain(ring_rows)}")
        ring_rows = []
    not_un = [f"{r['address']}={r['code']}" for r in ring_rows if r["code"] != "UN"]
    if not_un:
        problems.append(f"ring is not all UN: down or moving nodes {not_un}")
    keyspace_rows = facts["keyspaces"].get(probe_node)
    if not isinstance(keyspace_rows, list):
        problems.append(f"cannot read keyspaces via {probe_node}: {explain(keyspace_rows)}")
        keyspace_rows = []
    current, pending = facts["peer_info"], facts["bundle_public"]
    for name, answers in (("installed material", current), ("pending bundle", pending)):
        bad = [m for m in minions if not answered(answers.get(m))]
        if bad:
            problems.append(
                f"{name} unreadable on " + "; ".join(f"{m}: {explain(answers.get(m))}" for m in bad)
            )
    validations = {}
    if not problems:
        # Cross-trust for the whole plan: every new bundle against every node's current
        # *and* future material, because mid-rollout old and new certificates coexist. The
        # nodes validated their bundles in the facts round trip; public material suffices
        # for cross-trust, so it is judged here.
        peers = [{"node": f"{m} (current)", **pick(current[m])} for m in minions] + [
            {"node": f"{m} (new)", **pick(pending[m])} for m in minions
        ]
        for m in minions:
            report = facts["validate"].get(m)
            if not answered(report):
                problems.append(f"{m}: validation error: {explain(report)}")
                continue
            report = validations[m] = with_cross_trust(report, pending[m], peers)
            for finding in report["findings"]:
                if not finding["ok"]:
                    problems.append(
                        f"{m}: {finding['check']}: {finding['message']} Fix: {finding['fix']}"
                    )
    check_lock(master, problems, described, minions)
    return {
        "problems": problems,
        "described": described,
        "ring": ring_rows,
        "keyspaces": keyspace_rows,
        "served": facts["served"],
        "pending": {m: public_summary(pending.get(m)) for m in minions},
        "current": {m: answered(current.get(m)) for m in minions},
        "current_not_after": {
            m: current[m].get("not_after") for m in minions if answered(current.get(m))
        },
        "validations": {
            m: {"valid": v.get("valid"), "fingerprint": v.get("fingerprint")}
            for m, v in validations.items()
            if answered(v)
        },
    }


def _facts(master, minions: list[str], opts, kw: dict, probe_node: str, spent: dict) -> dict:
    """The pillar refresh, then the targets' facts round trip, with one side call beside them:
    the probe node's view of the cluster (ring and keyspaces; the ring read waits for
    heartbeats), or, for a client rollout (``nodes`` named), the nodes' material, against
    which the clients then validate inside the facts round trip (one round trip fewer over
    what may be many targets)."""
    node_ids = sorted(master.expected(opts.nodes, "glob")) if opts.nodes else []
    side_call = (
        partial(_node_material, master, node_ids, opts.nodes_target)
        if opts.nodes
        else partial(
            gather, master, [probe_node], ("describe",), kw, 120, (probe_node, CLUSTER_PARTS)
        )
    )
    with ThreadPoolExecutor(max_workers=1) as pool:
        side = pool.submit(_timed, spent, "side", side_call)
        # Pick up the newest bundles (the store's ext_pillar, or edited pillar files) first.
        refresh = partial(master.call, minions, "saltutil.refresh_pillar", {"wait": True}, 60)
        _timed(spent, "refresh", refresh)
        if not opts.nodes:
            parts, skip = (*NODE_PARTS, "validate"), {"skip_cross_trust": True}
            facts = _timed(
                spent, "facts", partial(gather, master, minions, parts, {**kw, **skip}, 120)
            )
            view = side.result()
            return {**facts, **{part: view[part] for part in CLUSTER_PARTS}}
        node_info = side.result()
        peers = client_fleet.node_peers(node_ids, node_info)
        parts = (*NODE_PARTS, "validate") if peers else NODE_PARTS
        facts = _timed(
            spent, "facts", partial(gather, master, minions, parts, {**kw, "peers": peers}, 120)
        )
        return {**facts, "node_ids": node_ids, "node_info": node_info, "ring": {}, "keyspaces": {}}


def _timed(spent: dict, name: str, call):
    """``call()``, its seconds kept in ``spent[name]`` (also when it raises)."""
    started = time.monotonic()
    try:
        return call()
    finally:
        spent[name] = round(time.monotonic() - started, 3)


def _node_material(master, node_ids: list[str], nodes_target: str) -> dict:
    if not node_ids:
        return {}
    return master.call(node_ids, "certdeploy.peer_info", {"target": nodes_target}, 60)


def gather(master, minions: list[str], parts, kw: dict, timeout: float = 60, probe=None) -> dict:
    """``certdeploy.facts`` on ``minions``: ``{part: {minion: answer}}``, each answer what the
    function of that name returns or its error string; a minion that did not answer is
    missing, one that answered with an error (say, an unsynced extension) has that error in
    every part. ``probe=(minion, parts)``: those parts from that minion too, in the same
    round trip."""
    probe_node, probe_parts = probe or (None, ())
    call_kw = {**kw, "parts": list(parts)}
    if probe_node:
        call_kw.update(probe=probe_node, probe_parts=list(probe_parts))
    answers = master.call(minions, "certdeploy.facts", call_kw, timeout)
    out: dict = {part: {} for part in (*parts, *probe_parts)}
    for m in minions:
        answer = answers.get(m)
        if answer is None:
            continue
        for part in (*parts, *probe_parts) if m == probe_node else parts:
            out[part][m] = answer.get(part) if isinstance(answer, dict) else answer
    return out


def already_serving(minions: list[str], pending: dict, served_by: dict) -> list[str]:
    """Nodes that serve their pending bundle's leaf on both ports already (new connections,
    from outside the process, as pre-flight saw them): nothing to deploy there."""
    out = []
    for m in minions:
        want = (pending.get(m) or {}).get("fingerprint")
        served = served_by.get(m)
        if (
            want
            and isinstance(served, dict)
            and served.get("client") == served.get("internode") == want
        ):
            out.append(m)
    return out


def check_lock(master, problems: list, described: dict, minions: list[str]) -> None:
    holder = jobs.lock_holder(master.cachedir, cluster_of(described, minions))
    if holder and not jobs.is_stale(holder):
        problems.append(
            f"cluster is locked by rollout {holder['job_id']} (pid {holder['pid']} on "
            f"{holder['host']})"
        )


def clients_only(pre: dict, minions: list[str]) -> bool:
    described = pre.get("described") or {}
    return any(
        profiles.trait(described.get(m) or {}, "FLEET") == client_fleet.MODE for m in minions
    )


def kind(entry: dict) -> str:
    """What one rollout may not mix: a containerised node is still a node."""
    profile = entry.get("profile", "cassandra")
    return f"{profile}:{entry.get('runs')}" if profile == "container" else profile


def with_cross_trust(report: dict, pending: dict, peers: list[dict]) -> dict:
    """A node's validation report (made with ``skip_cross_trust``) with its cross-trust
    finding judged here, from the pending bundle's public half, against ``peers``."""
    node = pending.get("node") or report.get("node")
    certs = cb.load_certs(pending["chain_pem"], node, "chain_pem")
    trust = cb.load_certs(pending["trust_pem"], node, "trust_pem")
    public = cb.Bundle(cert=certs[0], key=None, chain=tuple(certs[1:]), trust=tuple(trust))
    judged = checks.cross_trust(public, node, peers)
    findings = [judged if f["check"] == "cross_trust" else f for f in report["findings"]]
    return {**report, "findings": findings, "valid": all(f["ok"] for f in findings)}


def pick(info: dict) -> dict:
    return {"chain_pem": info["chain_pem"], "trust_pem": info["trust_pem"]}


def public_summary(info) -> dict | None:
    if not answered(info):
        return None
    return {"fingerprint": info["fingerprint"], **info.get("certificate", {})}


def cluster_of(described: dict, minions: list[str]) -> str:
    for m in minions:
        if answered(described.get(m)) and described[m].get("cluster"):
            return described[m]["cluster"]
    return "default"


def topology(described: dict, minions: list[str]) -> list[dict]:
    return [
        {
            "id": m,
            "address": described[m]["listen_address"],
            "dc": described[m]["dc"],
            "rack": described[m]["rack"],
        }
        for m in minions
    ]
