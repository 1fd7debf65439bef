"""Pre-flight's round trips with a fake master (no Salt): for cluster nodes the probe node's
ring and keyspaces come from a call beside the pillar refresh and the nodes' facts, and they
reach the plan; nothing is changed anywhere (no deploy, no state-changing call)."""

from __future__ import annotations

import threading

from certdeploy_core import preflight, rollout

NODES = ["cass1", "cass2", "cass3"]


class Fake:
    def __init__(self, cachedir):
        self.cachedir = str(cachedir)
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
            "peer_info": {"chain_pem": "c", "trust_pem": "t", "not_after": None},
            "bundle_public": {"fingerprint": f"{n}" * 64, "chain_pem": "c", "trust_pem": "t"},
            "served": {"client": "0" * 64, "internode": "0" * 64},
            "ring": [
                {"address": f"127.0.0.{k}", "code": "UN", "dc": "dc1", "rack": f"r{k}"}
                for k in (1, 2, 3)
            ],
            "keyspaces": [{"name": "ks", "class": "SimpleStrategy", "replication": {}}],
        }[part]


def test_ring_and_keyspaces_come_from_the_probe_beside_the_refresh(tmp_path):
    fake = Fake(tmp_path)
    master = rollout.Master(fake.call, lambda *a: NODES, lambda *a: None, print, fake.cachedir)
    # Validation is its own round trip for nodes (against every node's current and new
    # material); answered here so pre-flight can finish.
    master.call = lambda ids, fun, kw, t: (
        dict.fromkeys(ids, {"valid": True, "findings": []})
        if fun == "certdeploy.validate"
        else fake.call(ids, fun, kw, t)
    )
    pre = preflight.preflight(master, NODES, rollout.Options())
    assert pre["problems"] == []
    assert [r["code"] for r in pre["ring"]] == ["UN"] * 3 and pre["keyspaces"][0]["name"] == "ks"
    facts = [(ids, kw) for f, ids, kw in fake.calls if f == "certdeploy.facts"]
    probe = [(ids, kw) for ids, kw in facts if kw.get("probe_parts")]
    assert probe == [(["cass1"], {**probe[0][1], "probe": "cass1"})]
    assert any(ids == NODES and not kw.get("probe_parts") for ids, kw in facts)
    assert [f for f, _, _ in fake.calls].count("saltutil.refresh_pillar") == 1
