"""A rollout over ``client`` targets with a fake ``Master``: cross-trust against the nodes,
canary then ``max_parallel`` batches, no cluster gate, and a clear refusal when the nodes are
not named. The rig proves the server-side part (tests/integration/test_client_target.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from certdeploy_core import job as jobs
from certdeploy_core import report, rollout
from salt.exceptions import CommandExecutionError

APPS = [f"app{i}" for i in range(1, 6)]
NODES = ["cass1", "cass2", "cass3"]
FP = "ab" * 32


class FakeFleet:
    def __init__(self, cachedir):
        self.cachedir, self.calls = str(cachedir), []

    def expected(self, tgt, tgt_type):
        return list(APPS) if tgt.startswith("app") else list(NODES)

    def call(self, ids, fun, kwargs, timeout):
        self.calls.append((fun, list(ids), dict(kwargs)))
        return {i: self.answer(fun, i, kwargs) for i in ids}

    def answer(self, fun, target_id, kwargs):
        if fun == "certdeploy.facts":  # one round trip, each part as its own function
            # probe_parts are for cluster nodes: a client target, probe or not, adds none.
            return {p: self.answer(f"certdeploy.{p}", target_id, kwargs) for p in kwargs["parts"]}
        if fun == "certdeploy.served":
            return {"client": "ERROR: a client target serves no port"}
        if fun == "saltutil.refresh_pillar":
            return True
        if fun == "certdeploy.describe":
            return {
                "profile": "client",
                "app": "orders",
                "cluster": "prod",
                "node": target_id,
                "role": "orders_{generation}",
                "pid_command": ["pidof", "orders"],
            }
        if fun == "certdeploy.peer_info":
            return {"node": target_id, "chain_pem": f"chain {target_id}", "trust_pem": "ca"}
        if fun == "certdeploy.bundle_public":
            return {"fingerprint": FP, "certificate": {"not_after": "2027-12-01T00:00:00Z"}}
        if fun == "certdeploy.validate":
            return {"valid": True, "fingerprint": FP, "findings": []}
        if fun == "certdeploy.deploy":
            return {
                "outcome": "deployed",
                "old_fingerprint": "cd" * 32,
                "new_fingerprint": FP,
                "backup": {"backup_id": f"b-{target_id}"},
                "activation": {"method": "reload"},
                "verification": {"ok": True, "role": "orders_g2", "connections": {}},
                "timings": {"total": 1.0},
            }
        raise AssertionError(f"unexpected {fun} on {target_id}")

    def master(self):
        return rollout.Master(
            self.call, self.expected, lambda *a: None, lambda m: None, self.cachedir
        )

    def batches(self, fun="certdeploy.deploy"):
        return [ids for f, ids, _ in self.calls if f == fun]


def test_clients_go_canary_first_then_max_parallel_with_no_cluster_gate(tmp_path):
    fake = FakeFleet(tmp_path)
    opts = rollout.Options(target="orders", nodes="cass*", max_parallel=2)
    result = rollout.rollout(fake.master(), "app*", opts=opts)

    assert result["status"] == "succeeded", result
    assert fake.batches() == [["app1"], ["app2", "app3"], ["app4", "app5"]]
    assert result["plan"]["batches"] == fake.batches()  # the summary says what was planned
    assert fake.batches("certdeploy.health_gate") == []
    # Cross-trust with the nodes, validated in the facts round trip (the nodes' material was
    # fetched beside the pillar refresh): no round trip of its own.
    facts = next(kw for f, _, kw in fake.calls if f == "certdeploy.facts")
    assert "validate" in facts["parts"] and [p["node"] for p in facts["peers"]] == NODES
    assert [f for f, _, _ in fake.calls if f == "certdeploy.validate"] == []
    assert [f for f, _, _ in fake.calls].index("certdeploy.peer_info") < [
        f for f, _, _ in fake.calls
    ].index("certdeploy.facts")
    peer_info = [(ids, kw) for f, ids, kw in fake.calls if f == "certdeploy.peer_info"]
    assert (NODES, {"target": "cassandra"}) in peer_info
    job = jobs.load(fake.cachedir, result["job_id"])  # the report renders a client job too
    html = report.write_report(job.data, str(tmp_path / "report.html"))
    assert "app5" in Path(html).read_text() and "app5" in report.render_text(job.data)


def test_a_client_rollout_without_nodes_is_refused_with_the_fix(tmp_path):
    fake = FakeFleet(tmp_path)
    with pytest.raises(CommandExecutionError, match=r"nodes='cass\*'"):
        rollout.rollout(fake.master(), "app*", opts=rollout.Options(target="orders"))
    assert fake.batches() == []


def test_mixed_kinds_in_one_rollout_are_refused(tmp_path):
    fake = FakeFleet(tmp_path)
    original = fake.answer

    def answer(fun, target_id, kwargs):
        got = original(fun, target_id, kwargs)
        if fun == "certdeploy.describe" and target_id == "app3":
            return {**got, "profile": "cassandra"}
        return got

    fake.answer = answer
    opts = rollout.Options(target="orders", nodes="cass*")
    with pytest.raises(CommandExecutionError, match="mixed"):
        rollout.rollout(fake.master(), "app*", opts=opts)


def test_instances_sharing_roles_without_pid_command_are_refused_before_any_change(tmp_path):
    fake = FakeFleet(tmp_path)
    original = fake.answer

    def answer(fun, target_id, kwargs):
        got = original(fun, target_id, kwargs)
        if fun == "certdeploy.describe" and target_id in ("app2", "app4"):
            return {**got, "pid_command": []}
        return got

    fake.answer = answer
    opts = rollout.Options(target="orders", nodes="cass*")
    with pytest.raises(CommandExecutionError) as refused:
        rollout.rollout(fake.master(), "app*", opts=opts)
    message = str(refused.value)
    assert (
        "share role 'orders_{generation}'" in message
        and "app2, app4 have no pid_command" in message
    )
    assert "Fix: give each target pid_command" in message
    assert fake.batches() == [] and fake.batches("certdeploy.validate") == []


def test_a_batch_whose_returns_salt_lost_keeps_the_answers_that_came(tmp_path):
    """The master took the batch's job; Salt's client failed while waiting and the job cache
    held two of its three returns: those two are recorded, the third stays running (not known,
    nothing rolled back) and the job halts for resume."""
    from certdeploy_core import transport

    fake = FakeFleet(tmp_path)
    inner = fake.call

    def lost(ids, fun, kwargs, timeout):
        answers = inner(ids, fun, kwargs, timeout)
        if fun == "certdeploy.deploy" and len(ids) > 1:
            kept = {i: answers[i] for i in ids[:-1]}
            raise transport.ReturnsLost.of(
                fun, "jid1", ids, ids[-1:], TimeoutError("timed out"), {}, kept
            )
        return answers

    fake.call = lost
    opts = rollout.Options(target="orders", nodes="cass*", max_parallel=3)
    result = rollout.rollout(fake.master(), "app*", opts=opts)
    job = jobs.load(fake.cachedir, result["job_id"])
    assert job.get("status") == "halted"
    assert {n: job.nodes[n]["state"] for n in APPS[:4]} == {
        "app1": "deployed",
        "app2": "deployed",
        "app3": "deployed",
        "app4": "running",
    }
    assert job.nodes["app4"]["error"].startswith("master: job jid1 (certdeploy.deploy to 3")
    assert job.nodes["app5"]["state"] == "pending"
    assert [f for f, _, _ in fake.calls if f == "certdeploy.rollback"] == []
