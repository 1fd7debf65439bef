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
