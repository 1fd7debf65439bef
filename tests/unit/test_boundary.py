"""The check before each batch (:mod:`certdeploy_core.boundary`): which endpoints a deploy
can probe for the runner, the probe itself against a real local TLS server and a closed port,
and the rollout engine's use of it with a fake ``Master``: the check rides in the deploy (no
round trip), a refusal is confirmed by the nodes' own minions before it halts the job, and a
refusal they do not confirm runs the batch after all."""

from __future__ import annotations

import pytest
from certdeploy_core import boundary, probe, rollout
from certdeploy_core import job as jobs

from tests.unit.test_health_check import TLSServer, closed_port
from tests.unit.test_rollout_engine import NEW, NODES, FakeMaster, new_job, states


def described(i, **over):
    return {
        "rpc_address": f"127.0.0.{i}",
        "client_port": 9042,
        "listen_address": f"127.0.0.{i}",
        "internode_port": 7000,
        **over,
    }


def test_endpoints_come_from_describe_and_a_wildcard_gives_none():
    assert boundary.endpoints(described(2)) == [
        ["client", "127.0.0.2", 9042],
        ["internode", "127.0.0.2", 7000],
    ]
    assert boundary.endpoints(described(2, rpc_address="0.0.0.0")) is None
    assert boundary.endpoints({"role": "app"}) is None  # a client target says no ports


def with_endpoints(fake, **per_node):
    job = new_job(fake)
    for i, n in enumerate(NODES, 1):
        job = job.with_node(n, endpoints=per_node.get(n, boundary.endpoints(described(i))))
    jobs.save(fake.cachedir, job)
    return job


def test_required_only_for_a_one_node_deploy_batch_with_distinct_endpoints(tmp_path):
    fake = FakeMaster(tmp_path)
    job = with_endpoints(fake)
    got = boundary.required(job, ["cass2"], "certdeploy.deploy")
    assert set(got) == set(NODES) and got["cass3"][1] == ["internode", "127.0.0.3", 7000]
    assert boundary.required(job, ["cass2", "cass3"], "certdeploy.deploy") is None
    assert boundary.required(job, ["cass2"], "certdeploy.trust_update") is None
    same = boundary.endpoints(described(1))
    assert (
        boundary.required(with_endpoints(fake, cass3=same), ["cass2"], "certdeploy.deploy") is None
    )
    assert boundary.required(new_job(fake), ["cass2"], "certdeploy.deploy") is None  # old job
    skipped = with_endpoints(fake, cass3=None).with_node("cass3", state="skipped")
    assert set(boundary.required(skipped, ["cass2"], "certdeploy.deploy")) == {"cass1", "cass2"}


@pytest.fixture(scope="module")
def leaf(ca):
    return ca.issue("srv", ips=("127.0.0.1",), key_type="ec256")


def test_probe_all_names_the_node_and_endpoint_that_does_not_serve(tmp_path, leaf):
    server = TLSServer(tmp_path, leaf)
    try:
        up = [["client", "127.0.0.1", server.port], ["internode", "127.0.0.1", server.port]]
        dead = closed_port()
        down = [["client", "127.0.0.1", server.port], ["internode", "127.0.0.1", dead]]
        got = boundary.probe_all({"cass1": up, "cass3": down}, probe.client_context(), timeout=2)
    finally:
        server.close()
    assert list(got) == ["cass3"] and f"internode 127.0.0.1:{dead}" in got["cass3"]
    assert server.handshakes >= 3


class Refusing(FakeMaster):
    """cass2's deploy refuses (it sees cass3 down) while ``refuse`` holds."""

    def __init__(self, cachedir, refuse=1, **kw):
        super().__init__(cachedir, **kw)
        self.refuse = refuse

    def _answer(self, fun, node, kwargs):
        if fun == "certdeploy.deploy" and kwargs.get("require_serving") and node == "cass2":
            if self.refuse:
                self.refuse -= 1
                return {
                    "node": node,
                    "outcome": "refused",
                    "down": {"cass3": "internode 127.0.0.3:7000: connection refused"},
                    "error": "cass2: refused before any change, seen from here: cass3: ...",
                    "timings": {"check": 0.01, "total": 0.01},
                }
        return super()._answer(fun, node, kwargs)


def test_the_check_rides_in_the_deploy_and_costs_no_round_trip(tmp_path):
    fake = FakeMaster(tmp_path)
    job = rollout.execute(fake.master(), with_endpoints(fake), rollout.Options(), checked=True)
    assert job.get("status") == "succeeded"
    assert fake.called("certdeploy.served") == []
    deploys = {node: kw for f, node, kw in fake.calls if f == "certdeploy.deploy"}
    assert "require_serving" not in deploys["cass1"]  # pre-flight has just looked
    assert set(deploys["cass2"]["require_serving"]) == set(NODES)
    assert set(deploys["cass3"]["require_serving"]) == set(NODES)


def test_a_refusal_the_minions_confirm_halts_before_the_batch_changes(tmp_path):
    down = {"client": {"error": "connection refused"}, "internode": {"error": "refused"}}
    fake = Refusing(tmp_path, fail={("certdeploy.served", "cass3"): down})
    job = rollout.execute(fake.master(), with_endpoints(fake), rollout.Options(), checked=True)
    assert job.get("status") == "halted" and job.get("failed_nodes") == ["cass3"]
    assert "before batch ['cass2']" in job.get("halted")
    assert "nothing in it was changed" in job.get("halted")
    assert states(job) == {"cass1": "deployed", "cass2": "pending", "cass3": "pending"}
    assert fake.called("certdeploy.deploy") == ["cass1", "cass2"]  # cass2 refused, unchanged
    assert job.nodes["cass2"].get("steps", []) == []  # no deploy step recorded
    assert "refused before any change" in job.nodes["cass2"]["refused"]


def test_a_refusal_the_minions_do_not_confirm_runs_the_batch(tmp_path):
    fake = Refusing(tmp_path)  # cass2 cannot reach cass3, but cass3's minion sees it serving
    job = rollout.execute(fake.master(), with_endpoints(fake), rollout.Options(), checked=True)
    assert job.get("status") == "succeeded"
    assert states(job) == {n: "deployed" for n in NODES}
    assert fake.called("certdeploy.deploy") == ["cass1", "cass2", "cass2", "cass3"]
    second = [kw for f, node, kw in fake.calls if f == "certdeploy.deploy" and node == "cass2"][1]
    assert "require_serving" not in second  # the round trip has just looked
    assert any("their own minions see every plan node serving" in m for m in fake.messages)
    assert job.nodes["cass2"]["new_fingerprint"] == NEW["cass2"]
