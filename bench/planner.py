"""The planner at internet scale, by simulation (issue 14): ``plan()`` on a synthetic
10,000-node cluster of 5 DCs with 3 racks each and 16 vnodes per node, with mixed keyspaces
(SimpleStrategy RF 3, NetworkTopologyStrategy RF 3 in every DC, and one NTS RF 5). Its goal is
< 1 s. No rig; it times and reports, asserting nothing about time.

    .venv/bin/python -m bench.planner

The planner reads no tokens (it assumes any two nodes of a DC may share a range); the ring rows
carry them anyway, as a real ring would. Its safety against real token placement is what
``tests/unit/test_plan_properties.py`` checks.
"""

from __future__ import annotations

import random
import statistics
import sys
import time

from salt.exceptions import SaltInvocationError

from _utils.certdeploy_core import plan as cp

NODES, DCS, RACKS, VNODES = 10_000, 5, 3, 16
RUNS = 5


def cluster(nodes: int = NODES, dcs: int = DCS, racks: int = RACKS, vnodes: int = VNODES):
    rng = random.Random(14)
    rows = []
    for i in range(nodes):
        dc = i % dcs
        rows.append(
            {
                "id": f"cass-{dc + 1}-{i // dcs:04d}",
                "address": f"10.{dc + 1}.{(i // dcs) // 256}.{(i // dcs) % 256}",
                "dc": f"dc{dc + 1}",
                "rack": f"rack{(i // dcs) % racks + 1}",
                "tokens": [rng.randrange(-(2**63), 2**63) for _ in range(vnodes)],
            }
        )
    names = [f"dc{d + 1}" for d in range(dcs)]
    keyspaces = [
        {
            "keyspace_name": "legacy",
            "replication": {"class": "SimpleStrategy", "replication_factor": "3"},
        },
        {
            "keyspace_name": "app",
            "replication": {"class": "NetworkTopologyStrategy", **dict.fromkeys(names, "3")},
        },
        {
            "keyspace_name": "ledger",
            "replication": {"class": "NetworkTopologyStrategy", names[0]: "5", names[1]: "5"},
        },
    ]
    return rows, keyspaces


# The SimpleStrategy keyspace caps every batch at one node in all DCs; without it a batch may take
# one node per DC (RF 3 tolerates one down), and parallel_racks is refused (RF 5 > 3 racks).
CASES = {
    "serial, canary 1": ({}, None),
    "serial, max_unavailable 50": ({"max_unavailable": 50}, None),
    "NTS only, max_unavailable 5": ({"max_unavailable": 5}, "legacy"),
    "NTS only, parallel_racks": ({"parallel_racks": True}, "legacy"),
}


def time_plan(rows, keyspaces, kwargs: dict) -> tuple[float, str]:
    started = time.perf_counter()
    try:
        plan = cp.plan(rows, keyspaces=keyspaces, ring=rows, **kwargs)
        outcome = (
            f"{len(plan['batches'])} batches, per-DC limit {min(plan['per_dc_limit'].values())}"
        )
    except SaltInvocationError as exc:
        outcome = f"refused: {str(exc)[:90]}"
    return time.perf_counter() - started, outcome


def planner(runs: int = RUNS, log=print) -> dict[str, list[dict]]:
    """``{case: [{"wall": s, "outcome": ...}, ...]}``, in the shape ``bench`` summarises."""
    rows, keyspaces = cluster()
    results = {}
    for case, (kwargs, without) in CASES.items():
        chosen = [k for k in keyspaces if k["keyspace_name"] != without]
        samples = []
        for _ in range(runs):
            wall, outcome = time_plan(rows, chosen, kwargs)
            samples.append({"wall": wall, "outcome": outcome})
        results[case] = samples
        walls = [s["wall"] for s in samples]
        log(
            f"  plan() {NODES} nodes, {case}: median {statistics.median(walls):.3f}s "
            f"(min {min(walls):.3f}, max {max(walls):.3f}; {samples[-1]['outcome']})",
            flush=True,
        )
    return results


if __name__ == "__main__":
    planner()
    sys.exit(0)
