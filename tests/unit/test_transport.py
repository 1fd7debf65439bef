"""The transport seam: :class:`Routed` puts several transports behind one face, so one
rollout job holds a mixed fleet; :meth:`Master.over` builds the engine's Master on one."""

from __future__ import annotations

import pytest
from certdeploy_core import transport
from certdeploy_core.rollout import Master


class Fake:
    def __init__(self, name, ids):
        self.name, self.ids, self.calls = name, ids, []

    def expected(self, tgt, tgt_type):
        if tgt_type == "list":
            wanted = tgt.split(",") if isinstance(tgt, str) else tgt
            return [i for i in self.ids if i in wanted]
        return [i for i in self.ids if i.startswith(tgt.rstrip("*"))]

    def call(self, ids, fun, kwargs, timeout):
        self.calls.append((list(ids), fun))
        return {i: {"via": self.name, "fun": fun} for i in ids}


def test_routed_unions_targets_and_sends_each_through_its_own_transport():
    minions = Fake("minion", ["cass1", "cass2"])
    ssh = Fake("ssh", ["cass3", "cass2"])  # cass2 also in the roster: the first claim wins
    routed = transport.Routed(minions, ssh)

    assert routed.expected("cass*", "glob") == ["cass1", "cass2", "cass3"]
    answers = routed.call(["cass3", "cass1", "cass2"], "certdeploy.describe", {}, 5)

    assert {i: a["via"] for i, a in answers.items()} == {
        "cass1": "minion",
        "cass2": "minion",
        "cass3": "ssh",
    }
    assert minions.calls == [(["cass1", "cass2"], "certdeploy.describe")]
    assert ssh.calls == [(["cass3"], "certdeploy.describe")]


def test_routed_resolves_an_id_it_has_not_seen_and_drops_unknown_ones():
    minions, ssh = Fake("minion", ["cass1"]), Fake("ssh", ["cass3"])
    routed = transport.Routed(minions, ssh)

    answers = routed.call(["cass3", "ghost"], "certdeploy.status", {}, 5)

    assert answers == {"cass3": {"via": "ssh", "fun": "certdeploy.status"}}  # no answer = missing
    assert minions.calls == []


def test_master_over_a_transport_is_what_the_engine_calls():
    fake = Fake("minion", ["cass1"])
    fired = []
    master = Master.over(fake, lambda tag, data: fired.append(tag), print, "/nonexistent")

    assert master.expected("cass*", "glob") == ["cass1"]
    assert master.call(["cass1"], "certdeploy.ring", {}, 5)["cass1"]["via"] == "minion"
    master.fire("certdeploy/rollout/x/started", {})
    assert fired == ["certdeploy/rollout/x/started"]


class Meeting(Fake):
    """A transport whose call returns only once the other transport's call has started too
    (a barrier for two): calls made one after the other break the barrier."""

    def __init__(self, name, ids, cost, barrier):
        super().__init__(name, ids)
        self.cost, self.barrier = cost, barrier

    def call(self, ids, fun, kwargs, timeout):
        self.barrier.wait(timeout=10)
        return super().call(ids, fun, kwargs, timeout)


def test_routed_calls_its_transports_at_once_and_prefers_the_cheapest():
    import threading

    barrier = threading.Barrier(2)
    minions = Meeting("minion", ["cass1", "cass3"], cost=0, barrier=barrier)
    ssh = Meeting("ssh", ["cass2-ssh"], cost=1, barrier=barrier)
    routed = transport.Routed(minions, ssh)
    routed.expected("cass1,cass3,cass2-ssh", "list")

    answers = routed.call(["cass2-ssh", "cass1", "cass3"], "certdeploy.describe", {}, 5)

    assert {i: a["via"] for i, a in answers.items()} == {
        "cass1": "minion",
        "cass2-ssh": "ssh",
        "cass3": "minion",
    }
    assert not barrier.broken
    assert routed.prefer(["cass2-ssh", "cass3", "cass1"]) == ["cass3", "cass1", "cass2-ssh"]
    master = Master.over(routed, print, print, "/nonexistent")
    assert master.prefer(["cass2-ssh", "cass1"]) == ["cass1", "cass2-ssh"]


class BusyLocalClient:
    """A ``LocalClient`` whose master does not take the publish, as Salt 3008 raises it."""

    def cmd_iter(self, *args, **kwargs):
        from salt.exceptions import SaltReqTimeoutError

        raise SaltReqTimeoutError(
            "Salt request timed out. The master is not responding. You may need to run your "
            "command with `--async` in order to bypass the congested event bus."
        )
        yield  # pragma: no cover - a generator, like the real one


def test_a_publish_the_master_did_not_take_is_a_command_execution_error_with_the_fix():
    from salt.exceptions import CommandExecutionError

    minions = transport.MinionTransport({"worker_threads": 4, "conf_file": "/nonexistent"})
    minions._clients.client = BusyLocalClient()

    with pytest.raises(CommandExecutionError) as raised:
        minions.call([f"app{i:03d}" for i in range(100)], "certdeploy.facts", {}, 60)

    message = str(raised.value)
    assert isinstance(raised.value, transport.PublishFailed)
    assert "publish of certdeploy.facts to 100 minion(s) failed" in message
    assert "The master is not responding" in message and "--async" not in message
    assert "worker_threads in the master config (now 4)" in message
    assert "max_parallel" in message


class LostLocalClient:
    """A ``LocalClient`` whose master took the job (Salt yields the jid first) and whose
    wait then fails after one return, as a busy master's request timeout does; the other
    returns land in the master's job cache, ``late`` of them only on a later read."""

    def __init__(self, ids, never=(), late=1):
        self.ids, self.never, self.late, self.reads = list(ids), set(never), late, 0

    def cmd_iter(self, ids, fun, kwarg=None, yield_pub_data=False, **_):
        from salt.exceptions import SaltClientError

        assert yield_pub_data, "the transport must learn the jid before any return"
        yield {"jid": "20261207000000000001", "minions": list(ids)}
        yield {ids[0]: {"ret": {"outcome": "deployed", "from": "event"}, "retcode": 0}}
        raise SaltClientError("Salt request timed out. The master is not responding.")

    def get_cache_returns(self, jid):
        assert jid == "20261207000000000001"
        self.reads += 1
        ready = [i for i in self.ids[1:] if i not in self.never]
        if self.reads <= self.late:
            ready = ready[:1]
        return {i: {"ret": {"outcome": "deployed", "from": "cache"}} for i in ready}


def test_returns_of_a_published_job_are_read_from_the_job_cache_when_salt_loses_track():
    ids = ["app001", "app002", "app003"]
    minions = transport.MinionTransport({"worker_threads": 4, "conf_file": "/nonexistent"})
    client = minions._clients.client = LostLocalClient(ids)
    answers = minions.call(ids, "certdeploy.deploy", {}, 30)
    assert answers == {
        "app001": {"outcome": "deployed", "from": "event"},
        "app002": {"outcome": "deployed", "from": "cache"},
        "app003": {"outcome": "deployed", "from": "cache"},
    }
    assert client.reads == 2  # read again until every id had answered


def test_ids_still_silent_at_the_deadline_are_returns_lost_with_the_answers_kept():
    ids = ["app001", "app002", "app003"]
    minions = transport.MinionTransport({"worker_threads": 4, "conf_file": "/nonexistent"})
    minions._clients.client = LostLocalClient(ids, never={"app003"}, late=0)
    with pytest.raises(transport.ReturnsLost) as raised:
        minions.call(ids, "certdeploy.deploy", {}, 0.5)
    lost = raised.value
    assert isinstance(lost, transport.PublishFailed)  # the engine halts on it, as before
    assert sorted(lost.answers) == ["app001", "app002"]
    message = str(lost)
    assert message.startswith("master: job 20261207000000000001 (certdeploy.deploy to 3")
    assert "2 answered (read from the master's job cache), 1 did not by the deadline (app003)" in (
        message
    )
    assert "worker_threads in the master config (now 4)" in message
