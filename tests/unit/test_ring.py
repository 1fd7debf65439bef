from certdeploy_core import ring

STATUS = """Datacenter: dc1
===============
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load        Tokens  Owns (effective)  Host ID                               Rack
UN  127.0.0.3  104.36 KiB  1       100.0%            0c4d3b0e-8d4b-4a8e-9f1e-3f1a2b3c4d5e  rack3
DN  127.0.0.2  ?           1       100.0%            1c4d3b0e-8d4b-4a8e-9f1e-3f1a2b3c4d5e  rack2
UJ  127.0.0.1  99 bytes    1       ?                 2c4d3b0e-8d4b-4a8e-9f1e-3f1a2b3c4d5e  rack1
"""


def test_parse_status_rows_and_states():
    rows = ring.parse_status(STATUS)
    assert [(r["address"], r["code"], r["rack"], r["dc"]) for r in rows] == [
        ("127.0.0.3", "UN", "rack3", "dc1"),
        ("127.0.0.2", "DN", "rack2", "dc1"),
        ("127.0.0.1", "UJ", "rack1", "dc1"),
    ]
    assert ring.not_up_normal(rows) == ["127.0.0.2=DN", "127.0.0.1=UJ"]
    assert not ring.ring_healthy(rows)


def test_ring_healthy_needs_all_un_and_size():
    rows = ring.parse_status(STATUS.replace("DN", "UN").replace("UJ", "UN"))
    assert ring.ring_healthy(rows, 3)
    assert not ring.ring_healthy(rows, 4)
    assert not ring.ring_healthy([])


# A single-token node: nodetool prints a Token column after the host id (measured on the
# rig's containerised node, Cassandra 5.0).
ONE_TOKEN = """Datacenter: dc1
===============
Status=Up/Down
|/ State=Normal/Leaving/Joining/Moving
--  Address    Load        Owns (effective)  Host ID                               Token  Rack
UN  127.0.0.4  114.37 KiB  100.0%            34e1061f-8d96-47c3-9e42-462e94adb216  0      rack1
"""


def test_parse_status_with_a_token_column():
    (row,) = ring.parse_status(ONE_TOKEN)
    assert (row["address"], row["code"], row["rack"]) == ("127.0.0.4", "UN", "rack1")
    assert row["host_id"] == "34e1061f-8d96-47c3-9e42-462e94adb216"
    assert ring.ring_healthy([row], 1)


def _gossip(address, heartbeat, generation=100, status="NORMAL,-9223372036854775808"):
    return {
        "address": address,
        "dc": "dc1",
        "rack": f"rack{address[-1]}",
        "host_id": f"host-{address}",
        "generation": generation,
        "heartbeat": heartbeat,
        "status_with_port": status,
    }


def test_from_gossip_up_only_when_the_heartbeat_moved():
    first = [_gossip("127.0.0.1", 10), _gossip("127.0.0.2", 10), _gossip("127.0.0.3", 10)]
    last = [_gossip("127.0.0.1", 11), _gossip("127.0.0.2", 10), _gossip("127.0.0.3", 12)]
    rows = ring.from_gossip(first, last)
    assert [(r["address"], r["code"], r["rack"], r["host_id"]) for r in rows] == [
        ("127.0.0.1", "UN", "rack1", "host-127.0.0.1"),
        ("127.0.0.2", "DN", "rack2", "host-127.0.0.2"),
        ("127.0.0.3", "UN", "rack3", "host-127.0.0.3"),
    ]
    assert not ring.ring_healthy(rows)
    assert not ring.all_advanced(first, last)


def test_from_gossip_restart_shutdown_joining_and_left():
    first = [
        _gossip("127.0.0.1", 500, generation=100),
        _gossip("127.0.0.2", 9, status="shutdown,true"),
        _gossip("127.0.0.3", 1),
        _gossip("127.0.0.4", 7, status="LEFT,12,1700000000000"),
    ]
    last = [
        _gossip("127.0.0.1", 2, generation=200),  # restarted: a new generation, heartbeat anew
        _gossip("127.0.0.2", 10, status="shutdown,true"),  # shut down is Down
        _gossip("127.0.0.3", 2, status="BOOT,42"),
        _gossip("127.0.0.4", 8, status="LEFT,12,1700000000000"),  # not a member any more
        _gossip("127.0.0.5", 3),  # new to this node: not seen moving yet
    ]
    codes = {r["address"]: r["code"] for r in ring.from_gossip(first, last)}
    assert codes == {
        "127.0.0.1": "UN",
        "127.0.0.2": "DN",
        "127.0.0.3": "UJ",
        "127.0.0.5": "DN",
    }
    # An older generation is not "advanced" (a stale row), nor is an unknown status healthy.
    assert not ring.advanced(
        {"generation": 200, "heartbeat": 1}, {"generation": 100, "heartbeat": 9}
    )
    (odd,) = ring.from_gossip([_gossip("127.0.0.1", 1)], [_gossip("127.0.0.1", 2, status="X,1")])
    assert odd["code"] == "U?" and not ring.ring_healthy([odd])


def test_all_advanced_waits_for_every_member_but_not_for_a_shut_down_one():
    first = [_gossip("127.0.0.1", 1), _gossip("127.0.0.2", 1, status="shutdown,true")]
    assert ring.all_advanced(first, [_gossip("127.0.0.1", 2), first[1]])
    assert not ring.all_advanced(first, [_gossip("127.0.0.1", 1), first[1]])
