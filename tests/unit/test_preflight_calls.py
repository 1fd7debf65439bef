"""Pre-flight's round trips with a fake master (no Salt): for cluster nodes the probe node's
ring and keyspaces come from a call beside the pillar refresh and the nodes' facts (which
validate too), and they reach the plan; cross-trust is judged on the master from real public
material; nothing is changed anywhere (no deploy, no state-changing call)."""

from __future__ import annotations

import threading

import pytest
from certdeploy_core import preflight, rollout

from sandbox import pki

NODES = ["cass1", "cass2", "cass3"]


class Fake:
    def __init__(self, cachedir, current, pending):
        self.cachedir = str(cachedir)
        self.current, self.pending = current, pending  # {node: (chain_pem, trust_pem)}
        self.calls, self.lock = [], threading.Lock()

    def call(self, ids, fun, kwargs, timeout):
        with self.lock:
            self.calls.append((fun, list(ids), dict(kwargs)))
        if fun == "saltutil.refresh_pillar":
            return dict.fromkeys(ids, True)
        assert fun == "certdeploy.facts", fun
        out = {}
        for i in ids:
            parts = list(kwargs["parts"])
            if i == kwargs.get("probe"):
                parts += kwargs.get("probe_parts") or []
            out[i] = {p: self.part(p, i) for p in parts}
        return out

    def part(self, part, node):
        n = NODES.index(node) + 1
        return {
            "describe": {
                "profile": "cassandra",
                "cluster": "prod",
                "listen_address": f"127.0.0.{n}",
                "dc": "dc1",
                "rack": f"r{n}",
            },
            "peer_info": {
                "chain_pem": self.current[node][0],
                "trust_pem": self.current[node][1],
                "not_after": None,
            },
            "bundle_public": {
                "node": node,
                "fingerprint": f"{n}" * 64,
                "chain_pem": self.pending[node][0],
                "trust_pem": self.pending[node][1],
            },
            # What the node answers with skip_cross_trust: its own checks, cross-trust skipped.
            "validate": {
                "valid": True,
                "fingerprint": f"{n}" * 64,
                "findings": [{"check": "cross_trust", "ok": True, "message": "skipped"}],
            },
            "served": {"client": "0" * 64, "internode": "0" * 64},
            "ring": [
                {"address": f"127.0.0.{k}", "code": "UN", "dc": "dc1", "rack": f"r{k}"}
                for k in (1, 2, 3)
            ],
            "keyspaces": [{"name": "ks", "class": "SimpleStrategy", "replication": {}}],
        }[part]


def material(ca, root, nodes=NODES):
    out = {}
    for node in nodes:
        leaf = ca.issue(node, ips=("127.0.0.1",), key_type="ec256")
        out[node] = (pki.cert_pem(leaf.cert, *leaf.chain), pki.cert_pem(root.cert))
    return out


@pytest.fixture(scope="module")
def same_ca(ca, root):
    return material(ca, root), material(ca, root)


def test_ring_and_keyspaces_come_from_the_probe_beside_the_refresh(tmp_path, same_ca):
    fake = Fake(tmp_path, *same_ca)
    master = rollout.Master(fake.call, lambda *a: NODES, lambda *a: None, print, fake.cachedir)
    pre = preflight.preflight(master, NODES, rollout.Options())
    assert pre["problems"] == []
    assert [r["code"] for r in pre["ring"]] == ["UN"] * 3 and pre["keyspaces"][0]["name"] == "ks"
    facts = [(ids, kw) for f, ids, kw in fake.calls if f == "certdeploy.facts"]
    probe = [(ids, kw) for ids, kw in facts if kw.get("probe_parts")]
    assert probe == [(["cass1"], {**probe[0][1], "probe": "cass1"})]
    nodes = [kw for ids, kw in facts if ids == NODES and not kw.get("probe_parts")]
    assert len(nodes) == 1 and "validate" in nodes[0]["parts"] and nodes[0]["skip_cross_trust"]
    # Three round trips in all: the refresh, the probe's view beside it, the nodes' facts.
    assert sorted(f for f, _, _ in fake.calls) == [
        "certdeploy.facts",
        "certdeploy.facts",
        "saltutil.refresh_pillar",
    ]
    judged = {m: v["valid"] for m, v in pre["validations"].items()}
    assert judged == dict.fromkeys(NODES, True)
    # Each round trip timed, for the report's "where time went".
    assert sorted(pre["timings"]) == ["facts", "refresh", "side"]
    assert all(isinstance(s, float) and s >= 0 for s in pre["timings"].values())


def test_cross_trust_is_judged_on_the_master_from_public_material(tmp_path, ca, root, same_ca):
    """cass2's new leaf comes from a CA no node trusts yet: refused before anything changes,
    with the rotation advice, though cass2 itself found nothing wrong."""
    other = pki.CA.root("another root CA")
    current, pending = same_ca
    stranger = other.issue("cass2", ips=("127.0.0.2",), key_type="ec256")
    pending = {**pending, "cass2": (pki.cert_pem(stranger.cert), pki.cert_pem(other.cert))}
    fake = Fake(tmp_path, current, pending)
    master = rollout.Master(fake.call, lambda *a: NODES, lambda *a: None, print, fake.cachedir)
    pre = preflight.preflight(master, NODES, rollout.Options())
    cross = [p for p in pre["problems"] if "cross_trust" in p]
    assert cross and all(p.startswith(("cass1: ", "cass2: ", "cass3: ")) for p in cross)
    assert any(
        p.startswith("cass2: cross_trust: direction 1: the new truststore of cass2") for p in cross
    )
    assert any("direction 2: cass2 (new)'s current truststore" in p for p in cross)
    assert any("a CA rotation is needed" in p for p in cross)
    assert pre["validations"]["cass2"]["valid"] is False
