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
