"""A rollout over ``client`` targets: what differs from a rollout over Cassandra nodes.

- Pre-flight: every target answers and holds a valid pending bundle; cross-trust is with the
  cluster's *nodes* (``nodes``: their target expression; their current chain and truststore),
  because a client talks to nodes, not to other clients.
- Plan: clients hold no replicas, so no quorum limits them: canaries first, then batches of
  ``max_parallel``.
- No cluster health gate: each target's own verification is the server-side proof (every node
  accepts the new login and shows the app under its new role).
"""

from __future__ import annotations

from . import profiles

MODE = "clients"


def _ok(ret) -> bool:
    return isinstance(ret, dict)


def preflight(minions: list[str], opts, gathered: dict) -> dict:
    """``gathered``: what :func:`.preflight.preflight` fetched: the nodes' material
    (``node_ids``, ``node_info``) beside the pillar refresh, and these targets' facts round
    trip (describe, peer_info, bundle_public, and ``validate`` against the nodes when every
    node's material was read). No round trip of its own."""
    described = gathered["describe"]
    problems: list[str] = []
    facts = {"problems": problems, "described": described, "ring": [], "keyspaces": []}
    if not opts.nodes:
        problems.append(
            f"client targets ({opts.target}): the cluster's nodes are not named, so cross-trust "
            "cannot be checked. Fix: add nodes='<their target>', e.g. nodes='cass*'"
        )
        return facts
    problems += _shared_roles(minions, described)
    node_ids, node_info = gathered["node_ids"], gathered["node_info"]
    pending, current = gathered["bundle_public"], gathered["peer_info"]
    for what, ids, answers in (
        ("node material", node_ids, node_info),
        ("pending bundle", minions, pending),
        ("installed material", minions, current),
    ):
        bad = [i for i in ids if not _ok(answers.get(i))]
        if bad:
            problems.append(
                f"{what} unreadable on " + "; ".join(f"{i}: {answers.get(i)!r}" for i in bad)
            )
    if not node_ids:
        problems.append(f"nodes={opts.nodes!r} matches no accepted minion")
    validations = {}
    if not problems:
        # Every node's material was read, so the facts round trip validated against it.
        validations = gathered["validate"]
        for m in minions:
            report = validations.get(m)
            if not _ok(report):
                problems.append(f"{m}: validation error: {report!r}")
                continue
            problems += [
                f"{m}: {f['check']}: {f['message']} Fix: {f['fix']}"
                for f in report["findings"]
                if not f["ok"]
            ]
    facts.update(
        pending={
            m: {"fingerprint": p["fingerprint"], **p.get("certificate", {})}
            for m, p in pending.items()
            if _ok(p)
        },
        current={m: _ok(current.get(m)) for m in minions},
        current_not_after={m: c.get("not_after") for m, c in current.items() if _ok(c)},
        validations={
            m: {"valid": v.get("valid"), "fingerprint": v.get("fingerprint")}
            for m, v in validations.items()
            if _ok(v)
        },
    )
    return facts


def node_peers(node_ids: list[str], node_info: dict) -> list[dict]:
    """The cluster's nodes as cross-trust peers of a client bundle (empty when any node's
    material is missing: pre-flight then names them)."""
    if not node_ids or not all(_ok(node_info.get(n)) for n in node_ids):
        return []
    return [
        {"node": n, "chain_pem": node_info[n]["chain_pem"], "trust_pem": node_info[n]["trust_pem"]}
        for n in node_ids
    ]


def _shared_roles(minions: list[str], described: dict) -> list[str]:
    """Instances of one app share its roles: the server cannot tell them apart by role, so
    while one is verified the others (on the old generation until their batch) would fail it.
    Each needs ``pid_command``, which scopes its verification to its own process's sockets."""
    by_role: dict = {}
    for m in minions:
        if profiles.trait(described[m], "ONE_PROCESS_PER_ROLE"):
            by_role.setdefault(described[m].get("role"), []).append(m)
    return [
        f"{', '.join(ids)}: their targets share role {role!r} and "
        f"{', '.join(m for m in ids if not described[m].get('pid_command'))} "
        "have no pid_command, so one instance's verification would count the others' "
        "connections. Fix: give each target pid_command (argv printing the app's pid)"
        for role, ids in sorted(by_role.items(), key=lambda kv: str(kv[0]))
        if len(ids) > 1 and not all(described[m].get("pid_command") for m in ids)
    ]


def plan(minions: list[str], opts) -> dict:
    if int(opts.max_parallel) < 1:
        raise ValueError(f"max_parallel={opts.max_parallel}: use 1 or more")
    order = sorted(minions)
    canary, rest = order[: opts.canary], order[opts.canary :]
    size = int(opts.max_parallel)
    return {
        "order": order,
        "batches": [[c] for c in canary] + [rest[i : i + size] for i in range(0, len(rest), size)],
        "canary": canary,
        "per_dc_limit": {},
        "cluster_limit": None,
        "mode": MODE,
        "warnings": [],
    }


def node_facts(described: dict, pending: dict, current_not_after: dict, m: str) -> dict:
    return {
        "address": None,
        "dc": None,
        "rack": None,
        "app": described.get("app"),
        "new_fingerprint": pending["fingerprint"],
        "not_after": pending.get("not_after"),
        "old_not_after": current_not_after.get(m),
    }
