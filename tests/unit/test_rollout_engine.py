"""The rollout engine's branches with a fake ``Master`` (no Salt, no Cassandra): batches in
order, the health gate, every ``on_failure`` policy, resume with reconciliation of a node
caught mid-step, job rollback, and the job file's format version. What only the rig can show
(served fingerprints, zero failed requests) stays in tests/integration/test_rollout.py."""

from __future__ import annotations

import json

import pytest
from certdeploy_core import job as jobs
from certdeploy_core import preflight, rollout, transport
from salt.exceptions import CommandExecutionError

NODES = ("cass1", "cass2", "cass3")
OLD = {n: f"{i}old".ljust(64, "0") for i, n in enumerate(NODES, 1)}
NEW = {n: f"{i}new".ljust(64, "0") for i, n in enumerate(NODES, 1)}


class FakeMaster:
    """Answers like minions would; ``fail`` maps (function, node) to a bad answer."""

    def __init__(self, cachedir, fail=None, serving=None):
        self.cachedir = str(cachedir)
        self.fail = dict(fail or {})
        self.serving = {n: OLD[n] for n in NODES} | dict(serving or {})
        self.calls, self.events, self.messages = [], [], []

    def call(self, minions, fun, kwargs, timeout):
        if fun == "certdeploy.facts":  # one round trip, each part as its own function
            out = {}
            for n in minions:
                wanted = list(kwargs["parts"])
                if n == kwargs.get("probe"):  # the probe node adds its view of the cluster
                    wanted += kwargs.get("probe_parts") or []
                parts = {p: self.call([n], f"certdeploy.{p}", kwargs, timeout) for p in wanted}
                out[n] = {p: a[n] for p, a in parts.items() if n in a}
            return out
        answers = {}
        for node in minions:
            self.calls.append((fun, node, dict(kwargs)))
            bad = self.fail.get((fun, node))
            if bad is not None:
                if bad == "no answer":
                    continue
                answers[node] = bad
                continue
            answers[node] = self._answer(fun, node, kwargs)
        return answers

    def _answer(self, fun, node, kwargs):
        if fun == "certdeploy.deploy":
            self.serving[node] = NEW[node]
            return {
                "outcome": "deployed",
                "old_fingerprint": OLD[node],
                "new_fingerprint": NEW[node],
                "backup": {"backup_id": f"b-{node}"},
                "activation": {"method": "reload"},
                "verification": {"client": {"served": NEW[node]}, "ok": True},
                "timings": {"activate": 1.0, "verify": 1.0, "total": 2.5},
            }
        if fun == "certdeploy.health_gate":
            return {"ok": True, "seconds": 0.5, "from": node}
        if fun == "certdeploy.rollback":
            self.serving[node] = OLD[node]
            return {"verified": True, "expected": OLD[node], "backup_id": kwargs["backup_id"]}
        if fun == "certdeploy.recover":  # no interrupted deployment on the node
            return {"interrupted": False, "action": None, "verified": True}
        if fun == "certdeploy.served":
            return {"client": self.serving[node], "internode": self.serving[node]}
        if fun == "certdeploy.status":
            fp = self.serving[node]
            return {"served": {"client": fp, "internode": fp}}
        raise AssertionError(f"unexpected call {fun} on {node}")

    def fire(self, tag, data):
        self.events.append((tag, data))

    def progress(self, message):
        self.messages.append(message)

    def master(self):
        return rollout.Master(
            call=self.call,
            expected=lambda tgt, tgt_type: list(NODES),
            fire=self.fire,
            progress=self.progress,
            cachedir=self.cachedir,
        )

    def called(self, fun):
        return [node for f, node, _ in self.calls if f == fun]


def new_job(fake, batches=(["cass1"], ["cass2"], ["cass3"])):
    plan = {"batches": [list(b) for b in batches], "order": [n for b in batches for n in b]}
    nodes = {
        n: {"address": f"127.0.0.{i}", "dc": "dc1", "rack": f"r{i}", "new_fingerprint": NEW[n]}
        for i, n in enumerate(NODES, 1)
    }
    job = jobs.new_job("rollout", "prod", {"tgt": "cass*"}, plan, nodes)
    jobs.save(fake.cachedir, job)
    return job


def states(job):
    return {n: v["state"] for n, v in job.nodes.items()}


def test_batches_run_in_order_each_gated_from_another_node(tmp_path):
    fake = FakeMaster(tmp_path)
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options())
    assert job.get("status") == "succeeded"
    assert states(job) == {n: "deployed" for n in NODES}
    assert fake.called("certdeploy.deploy") == list(NODES)
    gates = [(node, kw["expect"]) for f, node, kw in fake.calls if f == "certdeploy.health_gate"]
    assert [node for node, _ in gates] == ["cass2", "cass1", "cass1"]  # never the node itself
    assert gates[0][1] == {"127.0.0.1": NEW["cass1"]}
    deploy_kwargs = next(kw for f, _, kw in fake.calls if f == "certdeploy.deploy")
    assert deploy_kwargs["skip_cross_trust"] is True  # checked for the whole plan already
    on_disk = jobs.load(fake.cachedir, job.job_id)
    assert on_disk.data == job.data and on_disk.get("format_version") == jobs.FORMAT_VERSION
    spent = rollout.summary(job)["timings"]  # where the time went, as the report shows it
    assert spent["nodes"] == {n: {"activate": 1.0, "verify": 1.0, "total": 2.5} for n in NODES}
    assert len(spent["gates"]) == 3 and all(g >= 0 for g in spent["gates"])
    assert spent["preflight"] is None  # this job was made by hand, not by a pre-flight
    line = rollout.where_time_went(job)
    assert "cass1 2.5s, cass2 2.5s, cass3 2.5s" in line and line.count("s + ") == 2


@pytest.mark.parametrize(
    "policy, status, after",
    [
        (
            "rollback_node",
            "failed",
            {"cass1": "deployed", "cass2": "rolled_back", "cass3": "skipped"},
        ),
        ("halt", "halted", {"cass1": "deployed", "cass2": "rolled_back", "cass3": "pending"}),
        (
            "rollback_all",
            "rolled_back",
            {"cass1": "rolled_back", "cass2": "rolled_back", "cass3": "skipped"},
        ),
    ],
)
def test_on_failure_policies(tmp_path, policy, status, after):
    bad = {"outcome": "rolled_back", "error": "cass2: verification failed", "timings": {"total": 9}}
    fake = FakeMaster(tmp_path, fail={("certdeploy.deploy", "cass2"): bad})
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(on_failure=policy))
    assert job.get("status") == status and job.get("failed_nodes") == ["cass2"]
    assert states(job) == after
    assert fake.called("certdeploy.deploy") == ["cass1", "cass2"]  # cass3 never touched
    rolled = fake.called("certdeploy.rollback")
    assert rolled == (["cass1"] if policy == "rollback_all" else [])
    if policy == "rollback_all":
        assert job.nodes["cass1"]["rollback"]["verified"] is True


def test_a_node_that_does_not_answer_halts_the_job_and_is_not_rolled_back(tmp_path):
    # What it did is unknown (the minion or the master died mid-call): resume reconciles it.
    fake = FakeMaster(tmp_path, fail={("certdeploy.deploy", "cass1"): "no answer"})
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(), checked=True)
    assert job.get("status") == "halted"
    assert job.nodes["cass1"]["state"] == "running"
    assert job.nodes["cass1"]["error"] == "no answer to certdeploy.deploy within 600s"
    assert "certdeploy.resume" in job.get("halted") and "cass1" in job.get("halted")
    assert fake.called("certdeploy.rollback") == [] and fake.called("certdeploy.deploy") == [
        "cass1"
    ]


def test_a_publish_the_master_did_not_take_halts_the_batch_for_resume(tmp_path):
    # A busy master may still send the job later: as for no answer, nothing is rolled back.
    fake = FakeMaster(tmp_path)
    inner = fake.call

    def busy(minions, fun, kwargs, timeout):
        if fun == "certdeploy.deploy":
            raise transport.PublishFailed(f"master: the publish of {fun} failed. Fix: ...")
        return inner(minions, fun, kwargs, timeout)

    fake.call = busy
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(), checked=True)
    assert job.get("status") == "halted" and job.get("failed_nodes") == ["cass1"]
    assert job.nodes["cass1"]["state"] == "running"
    assert job.nodes["cass1"]["error"].startswith("master: the publish of certdeploy.deploy")
    assert "certdeploy.resume" in job.get("halted")
    assert jobs.load(fake.cachedir, job.job_id).get("status") == "halted"
    assert fake.called("certdeploy.rollback") == []


def test_a_node_down_before_the_next_batch_halts_before_it_changes(tmp_path):
    fake = FakeMaster(tmp_path)
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options(), checked=True)
    assert job.get("status") == "succeeded"
    fake = FakeMaster(
        tmp_path,
        fail={
            ("certdeploy.served", "cass3"): {
                "client": {"error": "connection refused"},
                "internode": "ab" * 32,
            }
        },
    )
    job = new_job(fake).with_node("cass1", state="deployed")
    job = rollout.execute(fake.master(), job, rollout.Options())
    assert job.get("status") == "halted" and job.get("failed_nodes") == ["cass3"]
    assert "before batch ['cass2']" in job.get("halted") and "connection refused" in job.get(
        "halted"
    )
    assert fake.called("certdeploy.deploy") == []
    assert job.nodes["cass2"]["state"] == "pending"


def test_failed_health_gate_rolls_the_batch_back(tmp_path):
    fake = FakeMaster(tmp_path, fail={("certdeploy.health_gate", "cass2"): {"ok": False}})
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options())
    assert job.get("status") == "failed"
    assert job.nodes["cass1"]["state"] == "rolled_back"
    assert "health gate failed" in job.nodes["cass1"]["error"]
    assert fake.called("certdeploy.rollback") == ["cass1"]
    assert fake.serving["cass1"] == OLD["cass1"]


def test_unverified_rollback_is_named_rollback_failed(tmp_path):
    fake = FakeMaster(
        tmp_path,
        fail={
            ("certdeploy.health_gate", "cass2"): {"ok": False},
            ("certdeploy.rollback", "cass1"): {"verified": False, "expected": OLD["cass1"]},
        },
    )
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options())
    assert job.nodes["cass1"]["state"] == "rollback_failed"
    assert job.nodes["cass1"]["rollback"]["verified"] is False


@pytest.mark.parametrize("already_new", [True, False], ids=["serves-new", "serves-old"])
def test_resume_reconciles_a_node_caught_mid_step(tmp_path, already_new):
    serving = {"cass2": NEW["cass2"]} if already_new else {}
    fake = FakeMaster(tmp_path, serving=serving)
    job = new_job(fake)
    job = job.with_node("cass1", state="deployed").with_node("cass2", state="running")
    jobs.save(fake.cachedir, job.with_status("running"))
    result = rollout.resume(fake.master(), job.job_id)
    assert result["status"] == "succeeded"
    resumed = jobs.load(fake.cachedir, job.job_id)
    assert resumed.nodes["cass2"]["reconciled"] is True
    # Only what was not proven done is deployed again; cass1 is never redeployed.
    expected = ["cass3"] if already_new else ["cass2", "cass3"]
    assert fake.called("certdeploy.deploy") == expected
    assert fake.called("certdeploy.recover") == ["cass2"]  # put on one certificate first
    # The reconcile's look at cass2; then every plan node's ports before each batch left.
    batches = 1 if already_new else 2
    assert fake.called("certdeploy.status") == ["cass2"]
    assert fake.called("certdeploy.served") == list(NODES) * batches


def test_rollback_job_reverses_deployed_nodes_in_reverse_order(tmp_path):
    fake = FakeMaster(tmp_path)
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options())
    result = rollout.rollback_job(fake.master(), job.job_id)
    assert result["status"] == "rolled_back"
    assert fake.called("certdeploy.rollback") == ["cass3", "cass2", "cass1"]
    assert fake.serving == OLD
    assert not jobs.lock_holder(fake.cachedir, "prod")  # the lock is released


def test_resume_refuses_a_job_file_of_another_format(tmp_path):
    fake = FakeMaster(tmp_path)
    job = new_job(fake)
    path = tmp_path / "certdeploy" / "jobs" / f"{job.job_id}.json"
    data = json.loads(path.read_text())
    data["format_version"] = jobs.FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(CommandExecutionError, match="format_version 2.*Fix: "):
        rollout.resume(fake.master(), job.job_id)
    assert fake.calls == []  # nothing was asked of any node
    assert jobs.load(fake.cachedir, job.job_id, strict=False).get("format_version") == 2


def test_rollback_job_that_cannot_roll_a_node_back_is_failed(tmp_path):
    fake = FakeMaster(tmp_path)
    job = rollout.execute(fake.master(), new_job(fake), rollout.Options())
    fake.fail[("certdeploy.rollback", "cass2")] = {"verified": False, "expected": OLD["cass2"]}
    result = rollout.rollback_job(fake.master(), job.job_id)
    assert result["status"] == "failed"
    assert jobs.load(fake.cachedir, job.job_id).nodes["cass2"]["state"] == "rollback_failed"


def test_a_node_already_serving_its_pending_leaf_on_both_ports_is_left_alone():
    pending = {n: {"fingerprint": NEW[n]} for n in NODES}
    served = {n: {"client": OLD[n], "internode": OLD[n]} for n in NODES}
    served["cass2"] = {"client": NEW["cass2"], "internode": NEW["cass2"]}
    assert preflight.already_serving(list(NODES), pending, served) == ["cass2"]
    # Half served (the internode port still on the old leaf) is not done; no answer is not.
    served["cass2"] = {"client": NEW["cass2"], "internode": OLD["cass2"]}
    del served["cass3"]
    assert preflight.already_serving(list(NODES), pending, served) == []


@pytest.mark.parametrize("policy", ["rollback_node", "rollback_all"])
def test_a_failure_in_a_batch_leaves_its_verified_siblings_deployed(tmp_path, policy):
    """A batch of two: cass2 fails, cass1 deployed and verified. cass1 is ``deployed`` (not
    left ``running``), so rollback_all takes it back as well."""
    bad = {"outcome": "rolled_back", "error": "cass2: verification failed", "timings": {"total": 9}}
    fake = FakeMaster(tmp_path, fail={("certdeploy.deploy", "cass2"): bad})
    job = new_job(fake, batches=(["cass1", "cass2"], ["cass3"]))
    job = rollout.execute(fake.master(), job, rollout.Options(on_failure=policy), checked=True)
    assert job.get("failed_nodes") == ["cass2"]
    if policy == "rollback_node":
        assert states(job) == {"cass1": "deployed", "cass2": "rolled_back", "cass3": "skipped"}
        assert job.nodes["cass1"]["note"] == "not gated: batch failed"
        assert fake.called("certdeploy.rollback") == []
    else:
        assert states(job) == {"cass1": "rolled_back", "cass2": "rolled_back", "cass3": "skipped"}
        assert fake.called("certdeploy.rollback") == ["cass1"]
