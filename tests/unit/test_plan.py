import random

import pytest
from certdeploy_core import plan as cp
from salt.exceptions import SaltInvocationError

JAVA_NTS = "org.apache.cassandra.locator.NetworkTopologyStrategy"


def node(i: int, dc: str = "dc1", rack: str | None = None) -> dict:
    return {"id": f"cass{i}", "address": f"127.0.0.{i}", "dc": dc, "rack": rack or f"rack{i}"}


def nts(name: str = "ks", **rf) -> dict:
    return {"name": name, "class": "NetworkTopologyStrategy", "replication": rf}


def simple(name: str = "ks", rf: int = 3) -> dict:
    return {"name": name, "class": "SimpleStrategy", "replication": {"replication_factor": rf}}


def two_dcs() -> list[dict]:
    return [node(i, "dc1", f"r{i}") for i in (1, 2, 3)] + [
        node(i, "dc2", f"r{i}") for i in (4, 5, 6)
    ]


def dc_counts(batch: list[str], nodes: list[dict]) -> dict[str, int]:
    dc_of = {n["id"]: n["dc"] for n in nodes}
    counts: dict[str, int] = {}
    for node_id in batch:
        counts[dc_of[node_id]] = counts.get(dc_of[node_id], 0) + 1
    return counts


# --- keyspaces -----------------------------------------------------------------------------------


def test_normalise_keyspaces_from_system_schema_rows():
    rows = [
        {"keyspace_name": "system", "replication": {"class": "LocalStrategy"}},
        {"keyspace_name": "system_schema", "replication": {"class": "LocalStrategy"}},
        {
            "keyspace_name": "system_auth",
            "replication": {
                "class": "org.apache.cassandra.locator.SimpleStrategy",
                "replication_factor": "1",
            },
        },
        {"keyspace_name": "dse_like", "replication": {"class": "EverywhereStrategy"}},
        {"keyspace_name": "system_everywhere", "replication": {"class": "EverywhereStrategy"}},
        {"keyspace_name": "app", "replication": {"class": JAVA_NTS, "dc1": "3/1", "dc2": "0"}},
    ]
    assert cp.normalise_keyspaces(rows) == [
        {"name": "app", "class": "NetworkTopologyStrategy", "replication": {"dc1": 3}},
        {"name": "dse_like", "class": "EverywhereStrategy", "replication": {}},
        {
            "name": "system_auth",
            "class": "SimpleStrategy",
            "replication": {"replication_factor": 1},
        },
    ]
    # Idempotent: the planner normalises whatever it is given.
    assert cp.normalise_keyspaces(cp.normalise_keyspaces(rows)) == cp.normalise_keyspaces(rows)


@pytest.mark.parametrize(
    "row, words",
    [
        ({"name": "ks", "class": "OldNetworkTopologyStrategy", "replication": {}}, ["ks", "class"]),
        (
            {"name": "ks", "class": "SimpleStrategy", "replication": {}},
            ["ks", "replication_factor"],
        ),
        (nts(dc1="three"), ["ks", "'three'"]),
        (nts(dc1=-1), ["ks", "whole number"]),
        (nts(replication_factor=3), ["ks", "per-DC map"]),
        ({"replication": {"class": JAVA_NTS}}, ["no name"]),
    ],
)
def test_normalise_keyspaces_rejects_what_it_cannot_reason_about(row, words):
    with pytest.raises(SaltInvocationError) as err:
        cp.normalise_keyspaces([row])
    assert all(word in str(err.value) for word in words), str(err.value)
    assert "Fix:" in str(err.value)


# --- limits --------------------------------------------------------------------------------------


def test_max_safe_unavailable_per_dc():
    ring = two_dcs()
    assert cp.max_safe_unavailable([nts(dc1=3, dc2=5)], ring) == {"dc1": 1, "dc2": 2}
    # The smallest tolerance over keyspaces wins; SimpleStrategy counts against every DC.
    assert cp.max_safe_unavailable([nts(dc1=5, dc2=5), simple("s", 3)], ring) == {
        "dc1": 1,
        "dc2": 1,
    }
    assert cp.max_safe_unavailable([nts(dc1=3, dc2=2)], ring) == {"dc1": 1, "dc2": 0}
    assert cp.max_safe_unavailable([nts(dc1=1)], ring) == {"dc1": 0, "dc2": 3}
    # EverywhereStrategy: RF = the DC's size in the ring.
    everywhere = {"name": "e", "class": "EverywhereStrategy", "replication": {}}
    assert cp.max_safe_unavailable([everywhere], ring) == {"dc1": 1, "dc2": 1}


def test_rack_parallel_allowed_and_reasons():
    ring = [node(i, "dc1", f"rack{i}") for i in (1, 2, 3)]
    assert cp.rack_parallel_allowed([nts(dc1=3)], ring) == (True, "")

    ok, why = cp.rack_parallel_allowed([nts(dc1=3), simple("legacy", 3)], ring)
    assert not ok and "legacy" in why and "SimpleStrategy" in why

    two_racks = [node(1, "dc1", "a"), node(2, "dc1", "a"), node(3, "dc1", "b")]
    ok, why = cp.rack_parallel_allowed([nts(dc1=3)], two_racks)
    assert not ok and "RF 3 in dc1" in why and "2 rack(s)" in why

    ok, why = cp.rack_parallel_allowed([], ring)
    assert not ok and "no keyspaces" in why


# --- plan ----------------------------------------------------------------------------------------


def test_three_nodes_one_dc_rf3_is_three_batches_of_one_canary_first():
    nodes = [node(3), node(1), node(2)]
    result = cp.plan(nodes, keyspaces=[nts(dc1=3)])
    assert result["order"] == ["cass1", "cass2", "cass3"]
    assert result["canary"] == ["cass1"]
    assert result["batches"] == [["cass1"], ["cass2"], ["cass3"]]
    assert result["per_dc_limit"] == {"dc1": 1}
    assert result["mode"] == "serial"
    assert result["warnings"] == []


def test_two_dcs_max_unavailable_2_never_two_of_one_dc():
    nodes = two_dcs()
    result = cp.plan(nodes, keyspaces=[nts(dc1=3, dc2=3)], max_unavailable=2)
    assert result["per_dc_limit"] == {"dc1": 1, "dc2": 1}
    assert result["batches"][0] == ["cass1"]
    for batch in result["batches"]:
        assert all(count <= 1 for count in dc_counts(batch, nodes).values())
        assert len(batch) <= 2
    # DCs do share batches once max_unavailable > 1.
    assert result["batches"] == [["cass1"], ["cass2", "cass4"], ["cass3", "cass5"], ["cass6"]]


def test_max_unavailable_1_is_strictly_one_per_batch_across_dcs():
    result = cp.plan(two_dcs(), keyspaces=[nts(dc1=5, dc2=5)])
    assert all(len(batch) == 1 for batch in result["batches"])
    assert len(result["batches"]) == 6


def test_canaries_spread_across_dcs():
    result = cp.plan(two_dcs(), keyspaces=[nts(dc1=3, dc2=3)], canary=3)
    assert result["canary"] == ["cass1", "cass4", "cass2"]
    assert result["batches"][:3] == [["cass1"], ["cass4"], ["cass2"]]
    # More canaries than nodes: all of them, one per batch.
    assert cp.plan([node(1), node(2)], keyspaces=[nts(dc1=3)], canary=5)["batches"] == [
        ["cass1"],
        ["cass2"],
    ]
    assert cp.plan([node(1), node(2)], keyspaces=[nts(dc1=3)], canary=0)["canary"] == []


def test_rf5_allows_two_per_dc_with_max_unavailable_2():
    nodes = [node(i, "dc1", f"rack{i % 3}") for i in range(1, 8)]
    result = cp.plan(nodes, keyspaces=[nts(dc1=5)], max_unavailable=2)
    assert result["per_dc_limit"] == {"dc1": 2}
    assert [len(b) for b in result["batches"]] == [1, 2, 2, 2]
    # max_unavailable still caps it.
    result = cp.plan(nodes, keyspaces=[nts(dc1=5)], max_unavailable=1)
    assert all(len(b) == 1 for b in result["batches"])


def test_rf2_and_rf1_warn_but_still_roll_one_at_a_time():
    nodes = two_dcs()
    result = cp.plan(nodes, keyspaces=[nts("app", dc1=2, dc2=3), simple("legacy", 1)])
    assert result["per_dc_limit"] == {"dc1": 1, "dc2": 1}
    assert (
        "keyspace app has RF 2 in dc1: QUORUM requests to its ranges fail while a replica is "
        "down; a reload-only rollout keeps nodes up"
    ) in result["warnings"]
    assert any(w.startswith("keyspace legacy has RF 1 in every DC") for w in result["warnings"])
    assert not any("dc2" in w for w in result["warnings"])
    assert all(len(batch) == 1 for batch in result["batches"])


def test_simple_strategy_caps_batches_across_dcs():
    # SimpleStrategy RF 3 replicas ignore DCs: one down in each DC could be two replicas.
    result = cp.plan(two_dcs(), keyspaces=[simple("s", 3)], max_unavailable=2)
    assert result["cluster_limit"] == 1
    assert all(len(batch) == 1 for batch in result["batches"])
    assert any("SimpleStrategy" in w for w in result["warnings"])


def test_no_keyspaces_means_one_at_a_time_with_a_warning():
    result = cp.plan(two_dcs(), max_unavailable=3)
    assert all(len(batch) == 1 for batch in result["batches"])
    assert any("no keyspaces given" in w for w in result["warnings"])
    assert not any("SimpleStrategy" in w for w in result["warnings"])


def test_rack_parallel_yields_whole_rack_batches():
    nodes = [node(i, "dc1", f"rack{(i - 1) % 3 + 1}") for i in range(1, 10)]
    result = cp.plan(nodes, keyspaces=[nts(dc1=3)], parallel_racks=True, max_unavailable=2)
    assert result["mode"] == "rack_parallel"
    assert result["canary"] == ["cass1"]
    assert result["batches"] == [
        ["cass1"],
        ["cass4", "cass7"],
        ["cass2", "cass5", "cass8"],
        ["cass3", "cass6", "cass9"],
    ]
    assert any("max_unavailable=2 is ignored" in w for w in result["warnings"])


def test_rack_parallel_uses_ring_racks_not_just_targets():
    # Only rack1 is targeted, but the ring shows dc1 has 3 racks: allowed.
    ring = [node(i, "dc1", f"rack{i}") for i in (1, 2, 3)] + [node(4, "dc1", "rack1")]
    targets = [ring[0], ring[3]]
    result = cp.plan(targets, keyspaces=[nts(dc1=3)], ring=ring, canary=0, parallel_racks=True)
    assert result["batches"] == [["cass1", "cass4"]]


@pytest.mark.parametrize(
    "keyspaces, nodes, words",
    [
        ([simple("legacy", 3)], [node(i) for i in (1, 2, 3)], ["legacy", "SimpleStrategy"]),
        ([nts("app", dc1=3)], [node(1, rack="a"), node(2, rack="b")], ["app", "RF 3 in dc1"]),
        ([], [node(i) for i in (1, 2, 3)], ["no keyspaces"]),
    ],
)
def test_rack_parallel_refused_with_reason(keyspaces, nodes, words):
    with pytest.raises(SaltInvocationError) as err:
        cp.plan(nodes, keyspaces=keyspaces, parallel_racks=True)
    message = str(err.value)
    assert message.startswith("parallel_racks refused:")
    assert all(word in message for word in words), message


def test_next_batch_resumes():
    result = cp.plan(two_dcs(), keyspaces=[nts(dc1=3, dc2=3)], max_unavailable=2)
    assert cp.next_batch(result, set()) == ["cass1"]
    assert cp.next_batch(result, {"cass1"}) == result["batches"][1]
    # A half-done batch returns only its pending nodes.
    second = result["batches"][1]
    assert cp.next_batch(result, {"cass1", second[0]}) == second[1:]
    assert cp.next_batch(result, set(result["order"])) is None


def test_plan_is_deterministic_under_shuffled_input():
    nodes = two_dcs() + [
        {"id": "cass10", "address": "127.0.0.10", "dc": "dc1", "rack": "r1"},
        {"id": "cass9", "address": "127.0.0.9", "dc": "dc1", "rack": "r1"},
    ]
    keyspaces = [nts("a", dc1=3, dc2=3), simple("system_auth", 3)]
    expected = cp.plan(nodes, keyspaces=keyspaces, max_unavailable=2, canary=2)
    # Addresses sort as IPs, not strings.
    assert expected["order"][:4] == ["cass1", "cass9", "cass10", "cass2"]
    rng = random.Random(7)
    for _ in range(20):
        shuffled, ks = nodes[:], keyspaces[:]
        rng.shuffle(shuffled)
        rng.shuffle(ks)
        assert cp.plan(shuffled, keyspaces=ks, max_unavailable=2, canary=2) == expected


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"canary": -1}, ["canary=-1"]),
        ({"canary": True}, ["canary=True"]),
        ({"max_unavailable": 0}, ["max_unavailable=0"]),
        ({"max_unavailable": "2"}, ["max_unavailable='2'"]),
        ({"parallel_racks": "yes"}, ["parallel_racks='yes'"]),
    ],
)
def test_bad_params(kwargs, words):
    with pytest.raises(SaltInvocationError) as err:
        cp.plan([node(1)], **kwargs)
    assert all(word in str(err.value) for word in words) and "Fix:" in str(err.value)


@pytest.mark.parametrize(
    "nodes, words",
    [
        ([node(1), node(1)], ["cass1", "twice"]),
        ([node(1), {**node(2), "address": "127.0.0.1"}], ["cass2", "127.0.0.1", "cass1"]),
        ([{**node(1), "dc": None}], ["cass1", "dc", "certdeploy:targets:cassandra:dc"]),
        ([{**node(1), "rack": None}], ["cass1", "rack", "certdeploy:targets:cassandra:rack"]),
        ([{**node(1), "id": ""}], ["no id"]),
        ([], ["no targets"]),
    ],
)
def test_bad_nodes(nodes, words):
    with pytest.raises(SaltInvocationError) as err:
        cp.plan(nodes, keyspaces=[nts(dc1=3)])
    assert all(word in str(err.value) for word in words), str(err.value)


def test_target_placement_must_match_ring():
    ring = [node(1, "dc1", "rack2")]
    with pytest.raises(SaltInvocationError) as err:
        cp.plan([node(1, "dc1", "rack1")], ring=ring)
    assert "cass1" in str(err.value) and "dc1/rack2" in str(err.value)


# --- property-style ------------------------------------------------------------------------------


def random_case(rng: random.Random):
    dcs = [f"dc{d}" for d in range(1, rng.randint(1, 3) + 1)]
    ring, i = [], 0
    for dc in dcs:
        racks = rng.randint(1, 4)
        for _ in range(rng.randint(1, 7)):
            i += 1
            ring.append(
                {
                    "id": f"n{i}",
                    "address": f"10.0.{i // 256}.{i % 256}",
                    "dc": dc,
                    "rack": f"rack{rng.randint(1, racks)}",
                }
            )
    targets = rng.sample(ring, rng.randint(1, len(ring)))
    keyspaces = []
    for k in range(rng.randint(0, 3)):
        if rng.random() < 0.25:
            keyspaces.append(simple(f"s{k}", rng.randint(1, 5)))
        else:
            rf = {dc: rng.randint(0, 6) for dc in dcs if rng.random() < 0.8}
            keyspaces.append(nts(f"k{k}", **rf))
    return ring, targets, keyspaces


def expected_tolerance(keyspaces, ring, dc) -> int | None:
    """Independent re-statement of the QUORUM rule: min over keyspaces of r - (r//2 + 1)."""
    tolerances = []
    for ks in keyspaces:
        repl = ks["replication"]
        r = repl["replication_factor"] if ks["class"] == "SimpleStrategy" else repl.get(dc, 0)
        if r:
            tolerances.append(r - (r // 2 + 1))
    return min(tolerances) if tolerances else None


def test_property_random_topologies():
    rng = random.Random(20261126)
    checked = {"serial": 0, "rack_parallel": 0}
    for _ in range(400):
        ring, targets, keyspaces = random_case(rng)
        canary, max_unavailable = rng.randint(0, 3), rng.randint(1, 4)
        parallel = rng.random() < 0.3
        kwargs = dict(
            keyspaces=keyspaces, ring=ring, canary=canary, max_unavailable=max_unavailable
        )
        if parallel and not cp.rack_parallel_allowed(keyspaces, ring)[0]:
            with pytest.raises(SaltInvocationError):
                cp.plan(targets, parallel_racks=True, **kwargs)
            continue
        result = cp.plan(targets, parallel_racks=parallel, **kwargs)
        checked[result["mode"]] += 1
        batches = result["batches"]
        ids = sorted(t["id"] for t in targets)

        # Every target exactly once; no empty batch; order is the flattened batches' set.
        flat = [i for batch in batches for i in batch]
        assert sorted(flat) == ids and len(flat) == len(set(flat))
        assert all(batches) and sorted(result["order"]) == ids

        # Canaries first, one per batch.
        n_canary = min(canary, len(targets))
        assert len(result["canary"]) == n_canary
        assert [b for b in batches[:n_canary]] == [[c] for c in result["canary"]]

        if result["mode"] == "serial":
            for batch in batches:
                assert len(batch) <= max_unavailable
                if result["cluster_limit"] is not None:
                    assert len(batch) <= result["cluster_limit"]
                for dc, count in dc_counts(batch, targets).items():
                    assert count <= min(max_unavailable, result["per_dc_limit"][dc])
                    tolerance = expected_tolerance(keyspaces, ring, dc)
                    if keyspaces and tolerance is not None:
                        assert count <= max(1, tolerance)
                    if not keyspaces:
                        assert count == 1
        else:
            for batch in batches[n_canary:]:
                placed = {(t["dc"], t["rack"]) for t in targets if t["id"] in batch}
                assert len(placed) == 1  # one rack of one DC per batch
    assert checked["serial"] > 50 and checked["rack_parallel"] > 5, checked
