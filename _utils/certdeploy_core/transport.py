"""How the master reaches targets: the transport seam under :class:`rollout.Master`.

A transport answers two questions for the rollout engine, and nothing else:

- ``expected(tgt, tgt_type) -> [target ids]``: who a target expression names;
- ``call(ids, fun, kwargs, timeout) -> {id: return}``: run one certdeploy function on each
  (a missing id means "no answer").

:class:`MinionTransport` reaches salt-minions through the master's ``LocalClient``. An SSH
transport (salt-ssh targets from the roster) plugs in beside it, and :class:`Routed` puts
several behind one face so that one job with one plan can hold a mixed fleet. The engine
never learns which transport a target came through.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from salt.exceptions import CommandExecutionError, SaltClientError, SaltReqTimeoutError

log = logging.getLogger(__name__)


class Transport(Protocol):
    name: str
    cost: int  # relative price of one call: facts any node can give come from the cheapest

    def expected(self, tgt: str, tgt_type: str) -> list[str]: ...

    def call(self, ids: list[str], fun: str, kwargs: dict, timeout: float) -> dict: ...


class MinionTransport:
    """salt-minions with accepted keys, through ``salt.client.LocalClient.cmd_iter``; on a
    master of masters, also the minions under its syndics (Salt's own distribution)."""

    name = "minion"
    cost = 0

    def __init__(self, opts: dict):
        self.opts = opts
        # One LocalClient per thread: its event subscription is not shared safely, and the
        # rollout runs a health gate beside a deployment.
        self._clients = threading.local()

    def _local(self):
        client = getattr(self._clients, "client", None)
        if client is None:
            import salt.client

            client = self._clients.client = salt.client.get_local_client(self.opts["conf_file"])
        return client

    def expected(self, tgt: str, tgt_type: str) -> list[str]:
        import salt.utils.minions

        found = salt.utils.minions.CkMinions(self.opts).check_minions(tgt, tgt_type)["minions"]
        if not self.opts.get("order_masters"):
            return found
        return self._through_syndics(tgt, tgt_type, found)

    def _through_syndics(self, tgt: str, tgt_type: str, found: list[str]) -> list[str]:
        """A master of masters (``order_masters``) holds the keys of its syndics, not of the
        minions under them: each syndic matches the expression on its own master and reports
        whom it expects. Salt's own publish answers who they are; a minion its master expects
        but that does not answer is still named (as ``failed``), so pre-flight reports it
        instead of the plan leaving it out. The syndics themselves are not targets."""
        import os

        syndic_dir = self.opts.get("syndic_dir") or ""
        named = set(found)
        wait = float(self.opts.get("timeout") or 5)
        for ret in self._local().cmd_iter(
            tgt, "test.ping", tgt_type=tgt_type, timeout=wait, expect_minions=True
        ):
            named.update(ret)
        return sorted(
            target_id
            for target_id in named
            if not (syndic_dir and os.path.exists(os.path.join(syndic_dir, target_id)))
        )

    def call(self, ids: list[str], fun: str, kwargs: dict, timeout: float) -> dict:
        """Raises :class:`PublishFailed` when the master did not take the publish: no minion
        was asked, as far as this side knows (a busy master may still send it later).

        When the master took it (Salt has given the job id) and Salt's client then fails
        while it waits (a busy master's request timing out), the returns are read from the
        master's job cache until every id has answered or ``timeout`` has passed since the
        publish; ids still silent then raise :class:`ReturnsLost`, which carries the answers
        that did come."""
        answers: dict = {}
        published: dict | None = None
        started = time.monotonic()
        client = self._local()
        try:
            for ret in client.cmd_iter(
                list(ids), fun, kwarg=kwargs, tgt_type="list", timeout=timeout,
                yield_pub_data=True,
            ):  # fmt: skip
                if published is None:  # Salt yields the publish's own data first
                    published = ret if isinstance(ret, dict) else {}
                    continue
                for target_id, data in ret.items():
                    answers[target_id] = data.get("ret") if isinstance(data, dict) else data
        except (SaltClientError, SaltReqTimeoutError) as exc:
            jid = (published or {}).get("jid")
            if not jid:
                raise PublishFailed.of(fun, ids, exc, self.opts) from exc
            log.warning(
                "certdeploy: job %s (%s) was published, then Salt's client failed while "
                "waiting (%s); reading the returns from the master's job cache",
                jid,
                fun,
                exc,
            )
            # With the master's job cache off (job_cache: False) one read finds nothing.
            deadline = started + timeout if self.opts.get("job_cache", True) else 0.0
            answers.update(
                from_job_cache(client, jid, [i for i in ids if i not in answers], deadline)
            )
            silent = [i for i in ids if i not in answers]
            if silent:
                raise ReturnsLost.of(fun, jid, ids, silent, exc, self.opts, answers) from exc
        return answers


def from_job_cache(client, jid: str, ids, deadline: float, every: float = 2.0) -> dict:
    """The returns of job ``jid`` for ``ids`` from the master's job cache (read on disk by
    this process, not through the master's busy workers), read again every ``every`` seconds
    until all of ``ids`` have one or ``deadline`` (monotonic) has passed."""
    found: dict = {}
    while True:
        try:
            cached = client.get_cache_returns(jid) or {}
        except SaltClientError as exc:
            log.warning("certdeploy: job cache unreadable for %s: %s", jid, exc)
            cached = {}
        for target_id in ids:
            data = cached.get(target_id)
            if isinstance(data, dict) and "ret" in data:
                found[target_id] = data["ret"]
        if len(found) == len(ids) or time.monotonic() >= deadline:
            return found
        time.sleep(min(every, max(0.0, deadline - time.monotonic())))


class PublishFailed(CommandExecutionError):
    """The master did not take a publish (a ``CommandExecutionError``): no answer from
    anyone, and possibly no job. A deployment batch is halted on it, never rolled back.
    ``answers``: what did answer (only :class:`ReturnsLost` has any)."""

    answers: dict = {}

    @classmethod
    def of(cls, fun: str, ids: list[str], exc: Exception, opts: dict) -> PublishFailed:
        """What an operator reads: which call, to how many targets, and what to change."""
        return cls(
            f"master: the publish of {fun} to {len(ids)} minion(s) failed: {_reason(exc)} "
            f"({type(exc).__name__}). The master did not take the job in time: it is short of "
            f"{_fix(opts)}"
        )


class ReturnsLost(PublishFailed):
    """The master took the job, Salt's client failed while waiting, and the job cache did
    not hold every return by the deadline: ``answers`` holds what came; the rest is unknown,
    as for a minion that did not answer."""

    @classmethod
    def of(cls, fun, jid, ids, silent, exc, opts, answers) -> ReturnsLost:
        shown = ", ".join(sorted(silent)[:5]) + (" ..." if len(silent) > 5 else "")
        lost = cls(
            f"master: job {jid} ({fun} to {len(ids)} minion(s)) was published, but Salt's "
            f"client failed while waiting: {_reason(exc)} ({type(exc).__name__}); "
            f"{len(ids) - len(silent)} answered (read from the master's job cache), "
            f"{len(silent)} did not by the deadline ({shown}): what happened there is not "
            f"known. The master is short of {_fix(opts)}"
        )
        lost.answers = dict(answers)
        return lost


def _reason(exc: Exception) -> str:
    # Salt's own text goes on to suggest ``--async``, which a rollout cannot use.
    return (str(exc) or "no reason given").split(" You may")[0]


def _fix(opts: dict) -> str:
    return (
        f"worker threads or CPU. Fix: raise worker_threads in the master config (now "
        f"{opts.get('worker_threads', 5)}) and restart the master, or lower max_parallel"
    )


class Routed:
    """Several transports as one. ``expected`` is the union, in transport order, each id
    claimed by the first transport that names it; ``call`` sends each id through the
    transport that claimed it, all transports at once. Ids nobody has claimed yet are
    resolved against ``"list"``."""

    name = "routed"

    def __init__(self, *transports: Transport):
        if not transports:
            raise ValueError("Routed needs at least one transport")
        self.transports = transports
        self._owner: dict[str, Transport] = {}

    def expected(self, tgt: str, tgt_type: str) -> list[str]:
        found: list[str] = []
        for transport in self.transports:
            for target_id in transport.expected(tgt, tgt_type):
                if target_id not in self._owner:
                    self._owner[target_id] = transport
                if self._owner[target_id] is transport and target_id not in found:
                    found.append(target_id)
        return found

    def owner(self, target_id: str) -> Transport | None:
        if target_id not in self._owner:
            self.expected(target_id, "list")
        return self._owner.get(target_id)

    def call(self, ids: list[str], fun: str, kwargs: dict, timeout: float) -> dict:
        groups: dict[int, tuple[Transport, list[str]]] = {}
        for target_id in ids:
            transport = self.owner(target_id)
            if transport is not None:
                groups.setdefault(id(transport), (transport, []))[1].append(target_id)
        answers: dict = {}
        if len(groups) == 1:
            ((transport, members),) = groups.values()
            return dict(transport.call(members, fun, kwargs, timeout))
        with ThreadPoolExecutor(max_workers=len(groups)) as pool:
            futures = [
                pool.submit(transport.call, members, fun, kwargs, timeout)
                for transport, members in groups.values()
            ]
            for future in futures:
                answers.update(future.result())
        return answers

    def prefer(self, ids: list[str]) -> list[str]:
        """``ids`` cheapest transport first (stable): where any node will do, ask a minion
        before a salt-ssh target."""

        def cost(target_id):
            owner = self.owner(target_id)
            return getattr(owner, "cost", 0) if owner is not None else 99

        return sorted(ids, key=cost)
