"""The rollout's health gate, asked of a node outside the batch: after the batch's
deployment (:func:`gate`), or beside it (:func:`beside`) where that proves the same.
:mod:`.rollout` decides which one stands for the batch."""

from __future__ import annotations

import threading
import time

from . import client_fleet
from .preflight import answered


def _kwargs(job, batch, opts, restart) -> dict:
    expect = {job.nodes[n]["address"]: job.nodes[n]["new_fingerprint"] for n in batch}
    replication = {"class": "NetworkTopologyStrategy"}
    for node in job.nodes.values():
        replication[node["dc"]] = min(3, replication.get(node["dc"], 0) + 1)
    return {
        "target": opts.target,
        "expect": expect,
        "keyspace": opts.health_keyspace,
        "replication": replication,
        "timeout": opts.gate_timeout,
        "settle": opts.settle if restart else 0,
    }


def _nodes(master, job, batch) -> list[str]:
    return master.prefer([n for n in job.get("plan")["order"] if n not in batch] or list(batch))


def gate(master, job, batch, opts, restart):
    kwargs = _kwargs(job, batch, opts, restart)
    others = _nodes(master, job, batch)
    for gate_node in others:
        ret = master.call([gate_node], "certdeploy.health_gate", kwargs, opts.gate_timeout + 60)
        gate = ret.get(gate_node)
        if answered(gate):
            return gate
    return {"ok": False, "no_answer": True, "error": f"no node answered the health gate: {others}"}


# A gate started beside the deployment waits this long for the new certificate to be served.
BESIDE_WAIT = 30.0


class Beside:
    """The health gate asked of another node while the batch deploys (a daemon thread: a
    deployment that fails leaves it to time out on its own, unread). The gate waits for the
    new certificates to be served and judges only after that, so a pass proves the same
    thing as a gate after the deployment: nothing changes on the node between its
    activation and the end of its (read-only) verification."""

    def __init__(self, master, gate_node, kwargs, opts):
        self.started = time.time()
        self._answer: dict = {}
        self._done = threading.Event()
        timeout = BESIDE_WAIT + opts.gate_timeout + 60

        def run():
            try:
                ret = master.call([gate_node], "certdeploy.health_gate", kwargs, timeout)
                self._answer = ret.get(gate_node)
            except Exception as exc:  # noqa: BLE001 - only a shortcut: the gate proper decides
                self._answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            finally:
                self._done.set()

        threading.Thread(target=run, name="certdeploy-gate-beside", daemon=True).start()

    def result(self) -> dict | None:
        self._done.wait()
        return self._answer if answered(self._answer) else None


def beside(master, job, batch, opts) -> Beside | None:
    """Start the gate beside a batch's deployment where that proves the same: a certificate
    deployment (the served fingerprint changes, so the gate can wait for it) of cluster
    nodes that is not meant to restart them. ``None`` otherwise."""
    if (
        job.get("plan").get("mode") == client_fleet.MODE
        or opts.function != "certdeploy.deploy"
        or opts.method == "restart"
        or len(job.get("plan")["order"]) < 2
    ):
        return None
    kwargs = {**_kwargs(job, batch, opts, restart=False), "wait_served": BESIDE_WAIT}
    return Beside(master, _nodes(master, job, batch)[0], kwargs, opts)
