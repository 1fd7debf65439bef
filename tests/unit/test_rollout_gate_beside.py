"""The health gate started beside a batch's deployment (a fake ``Master``, no Salt): which
rollouts start it, that a pass from it stands for the gate, that anything else falls back to
the gate proper after the deployment, and that the check before the next batch still runs
after it (a node may go down once the gate has looked)."""

from __future__ import annotations

from certdeploy_core import rollout

from tests.unit.test_rollout_engine import NEW, NODES, FakeMaster, new_job, states

ADDRESS = {n: f"127.0.0.{i}" for i, n in enumerate(NODES, 1)}


class GateMaster(FakeMaster):
    """``early``: what a gate asked with ``wait_served`` answers (default: a pass); the gate
    proper always passes."""

    def __init__(self, cachedir, early=None, **kw):
        super().__init__(cachedir, **kw)
        self.early = early

    def _answer(self, fun, node, kwargs):
        if fun != "certdeploy.health_gate":
            return super()._answer(fun, node, kwargs)
        answer = {"ok": True, "seconds": 0.5, "from": node}
        if kwargs.get("wait_served") and self.early is not None:
            return dict(self.early)
        return answer


def gates(fake):
    return [kw for f, _, kw in fake.calls if f == "certdeploy.health_gate"]


def test_a_reload_rollout_gates_beside_each_deployment(tmp_path):
    fake = GateMaster(tmp_path)
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(), checked=True)
    assert job.get("status") == "succeeded" and states(job) == {n: "deployed" for n in NODES}
    asked = gates(fake)
    assert len(asked) == 3 and all(kw["wait_served"] == rollout.BESIDE_WAIT for kw in asked)
    assert asked[0]["expect"] == {ADDRESS["cass1"]: NEW["cass1"]}
    assert all(job.nodes[n]["gate"]["ok"] for n in NODES)
    # Every plan node is still asked to serve TLS before batches 2 and 3, after the gate.
    assert fake.called("certdeploy.served") == list(NODES) * 2


def test_a_gate_beside_that_judged_nothing_is_followed_by_the_gate_proper(tmp_path):
    early = {"ok": False, "from": "cass2", "early": "not served within 30s: nothing judged"}
    fake = GateMaster(tmp_path, early=early)
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(), checked=True)
    assert job.get("status") == "succeeded"
    asked = gates(fake)
    assert [bool(kw.get("wait_served")) for kw in asked] == [True, False] * 3
    assert all("early" not in job.nodes[n]["gate"] for n in NODES)


def test_a_failing_gate_beside_does_not_roll_back_by_itself(tmp_path):
    # Only the gate proper, after the deployment, may fail a batch.
    fake = GateMaster(tmp_path, early={"ok": False, "from": "cass2", "ring": {"x": "DN"}})
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(), checked=True)
    assert job.get("status") == "succeeded" and fake.called("certdeploy.rollback") == []


class TrustMaster(GateMaster):
    """A truststore-only phase (rotate_ca 1 and 3): the served leaf does not change, so a gate
    waiting for it would pass before anything happened."""

    def _answer(self, fun, node, kwargs):
        if fun == "certdeploy.update_trust":
            return super()._answer("certdeploy.deploy", node, kwargs)
        return super()._answer(fun, node, kwargs)


def test_restart_and_truststore_phases_gate_after_the_deployment_only(tmp_path):
    cases = (
        (GateMaster(tmp_path / "restart"), rollout.Options(method="restart", settle=0)),
        (TrustMaster(tmp_path / "trust"), rollout.Options(function="certdeploy.update_trust")),
    )
    for fake, opts in cases:
        job = rollout.execute(fake.master(), new_job(fake), opts, checked=True)
        assert job.get("status") == "succeeded", opts
        asked = gates(fake)
        assert len(asked) == 3 and not any(kw.get("wait_served") for kw in asked), opts


def test_timings_count_what_each_gate_added_after_its_deployment(tmp_path):
    fake = GateMaster(tmp_path)
    job = new_job(fake)
    # A gate beside the deployment (started with it, ended 0.4 s after it) and one after it.
    job = job.with_step("cass1", "deploy", 10.0, 13.0).with_step("cass1", "health_gate", 10.0, 13.4)
    job = job.with_step("cass2", "deploy", 14.0, 16.5).with_step("cass2", "health_gate", 16.5, 17.5)
    assert rollout.timings(job)["gates"] == [0.4, 1.0]
