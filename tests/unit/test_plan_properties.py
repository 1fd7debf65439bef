"""Property tests of the rollout planner (issue 14) against a simulated token ring.

Hypothesis draws a topology (DCs, racks, nodes, vnode tokens), keyspaces (SimpleStrategy and
NetworkTopologyStrategy, RF 1-5) and plan parameters. The ring's replicas are placed the way
Cassandra places them (SimpleStrategy: the next RF distinct nodes clockwise;
NetworkTopologyStrategy: per DC, distinct racks first, then the skipped nodes), and every batch of
the plan is checked against every token range: the replicas it takes down stay within what
QUORUM, and LOCAL_QUORUM in each DC, tolerate. The planner knows no tokens, so this checks its
model (any two nodes of a DC may share a range; a rack holds one replica when NTS has the racks)
against real placement. A keyspace with RF 1 or 2 tolerates no replica down; the planner still
takes one node at a time there, and must say so in a warning.
"""

from __future__ import annotations

import pytest
from certdeploy_core import plan as cp
from salt.exceptions import SaltInvocationError

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies
given, settings = hypothesis.given, hypothesis.settings
# Drawing a cluster is slow on a loaded 2-core box; that is the box, not a failed property.
SETTINGS = {"deadline": None, "suppress_health_check": [hypothesis.HealthCheck.too_slow]}


def tolerance(rf: int) -> int:
    return rf - (rf // 2 + 1)


@st.composite
def clusters(draw):
    dcs = [f"dc{d + 1}" for d in range(draw(st.integers(1, 3)))]
    nodes = []
    for dc in dcs:
        racks = draw(st.integers(1, 4))
        for j in range(draw(st.integers(1, 7))):
            i = len(nodes) + 1
            # Mostly spread over the racks, as operators place nodes; sometimes lopsided.
            rack = f"r{j % racks + 1}" if draw(st.booleans()) else f"r{draw(st.integers(1, racks))}"
            nodes.append(
                {"id": f"n{i}", "address": f"10.0.{i // 256}.{i % 256}", "dc": dc, "rack": rack}
            )
    vnodes = draw(st.integers(1, 4))
    tokens = draw(
        st.lists(
            st.integers(-(2**63), 2**63 - 1),
            min_size=len(nodes) * vnodes,
            max_size=len(nodes) * vnodes,
            unique=True,
        )
    )
    ring = sorted((tokens[k], nodes[k % len(nodes)]["id"]) for k in range(len(tokens)))
    by_dc = {dc: [n for n in nodes if n["dc"] == dc] for dc in dcs}
    keyspaces = []
    for k in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            rf = draw(st.integers(1, min(5, len(nodes))))
            keyspaces.append(
                {
                    "name": f"ks{k}",
                    "class": "SimpleStrategy",
                    "replication": {"replication_factor": rf},
                }
            )
        else:
            replication = {dc: draw(st.integers(0, min(5, len(by_dc[dc])))) for dc in dcs}
            if not any(replication.values()):
                replication[dcs[0]] = 1
            keyspaces.append(
                {"name": f"ks{k}", "class": "NetworkTopologyStrategy", "replication": replication}
            )
    targets = draw(st.lists(st.sampled_from(nodes), min_size=1, unique_by=lambda n: n["id"]))
    return nodes, ring, keyspaces, targets


def simple_replicas(ring, start: int, rf: int) -> list[str]:
    out: list[str] = []
    for step in range(len(ring)):
        node = ring[(start + step) % len(ring)][1]
        if node not in out:
            out.append(node)
        if len(out) == rf:
            break
    return out


def nts_replicas(ring, start: int, dc: str, rf: int, nodes: dict) -> list[str]:
    """NetworkTopologyStrategy's placement in one DC: walking clockwise, a node on a rack not yet
    used is taken; one on a used rack is skipped until every rack of the DC is used, and then the
    skipped nodes are taken first, in the order they were met."""
    racks = {n["rack"] for n in nodes.values() if n["dc"] == dc}
    out: list[str] = []
    seen: set[str] = set()
    skipped: list[str] = []
    for step in range(len(ring)):
        if len(out) >= rf:
            break
        node = ring[(start + step) % len(ring)][1]
        if nodes[node]["dc"] != dc or node in out or node in skipped:
            continue
        if len(seen) == len(racks):
            out.append(node)
        elif nodes[node]["rack"] in seen:
            skipped.append(node)
        else:
            out.append(node)
            seen.add(nodes[node]["rack"])
            if len(seen) == len(racks):
                while skipped and len(out) < rf:
                    out.append(skipped.pop(0))
    return out[:rf]


def violations(plan: dict, nodes: list[dict], ring, keyspaces) -> list[tuple]:
    """Every (batch, keyspace, range, place) where the batch takes more replicas of the range
    down than QUORUM (or LOCAL_QUORUM in a DC) tolerates."""
    by_id = {n["id"]: n for n in nodes}
    found = []
    for start in range(len(ring)):
        for ks in keyspaces:
            if ks["class"] == "SimpleStrategy":
                rf = ks["replication"]["replication_factor"]
                placed = {"all": (simple_replicas(ring, start, rf), rf)}
            else:
                placed = {
                    dc: (nts_replicas(ring, start, dc, rf, by_id), rf)
                    for dc, rf in ks["replication"].items()
                    if rf > 0
                }
                total = sum(rf for _, rf in placed.values())
                placed["all"] = ([r for reps, _ in placed.values() for r in reps], total)
            for b, batch in enumerate(plan["batches"]):
                down = set(batch)
                for place, (replicas, rf) in placed.items():
                    if len(down.intersection(replicas)) > tolerance(rf):
                        found.append((b, ks["name"], start, place, rf))
    return found


def warned(plan: dict, keyspace: str) -> bool:
    return any(f"keyspace {keyspace} has RF" in w for w in plan["warnings"])


@settings(max_examples=300, **SETTINGS)
@given(
    clusters(),
    st.integers(0, 3),
    st.integers(1, 6),
    st.booleans(),
)
def test_no_batch_takes_more_replicas_of_a_range_down_than_quorum_tolerates(
    cluster, canary, max_unavailable, parallel_racks
):
    nodes, ring, keyspaces, targets = cluster
    kwargs = {"keyspaces": keyspaces, "ring": nodes, "canary": canary}
    try:
        plan = cp.plan(
            targets, max_unavailable=max_unavailable, parallel_racks=parallel_racks, **kwargs
        )
    except SaltInvocationError as exc:
        assert parallel_racks and "parallel_racks refused" in str(exc)
        plan = cp.plan(targets, max_unavailable=max_unavailable, **kwargs)

    # Every target in exactly one batch, nothing else in any; canaries first, one per batch.
    flat = [node for batch in plan["batches"] for node in batch]
    assert sorted(flat) == sorted(t["id"] for t in targets)
    assert all(plan["batches"])
    wanted = min(canary, len(targets))
    assert len(plan["canary"]) == wanted
    assert plan["batches"][:wanted] == [[c] for c in plan["canary"]]

    # Safety against the simulated placement: a violation is allowed only for a keyspace the
    # planner warned about (RF 1 or 2 somewhere: no replica may go down, yet one node must).
    for b, keyspace, start, place, rf in violations(plan, nodes, ring, keyspaces):
        assert warned(plan, keyspace), (
            f"batch {b} {plan['batches'][b]} takes {place} replicas of range {start} of "
            f"{keyspace} (RF {rf}) past QUORUM, with no warning; plan {plan}"
        )


@settings(max_examples=300, **SETTINGS)
@given(clusters())
def test_rack_parallel_batches_are_whole_racks_and_keep_quorum(cluster):
    nodes, ring, keyspaces, targets = cluster
    try:
        plan = cp.plan(targets, keyspaces=keyspaces, ring=nodes, canary=0, parallel_racks=True)
    except SaltInvocationError as exc:
        assert "parallel_racks refused" in str(exc)
        return
    place = {n["id"]: (n["dc"], n["rack"]) for n in nodes}
    for batch in plan["batches"]:
        assert len({place[node] for node in batch}) == 1
    assert len(plan["batches"]) == len({place[t["id"]] for t in targets})
    for b, keyspace, start, where, rf in violations(plan, nodes, ring, keyspaces):
        assert warned(plan, keyspace), (
            f"rack batch {b} {plan['batches'][b]} takes {where} replicas of range {start} of "
            f"{keyspace} (RF {rf}) past QUORUM, with no warning; plan {plan}"
        )
