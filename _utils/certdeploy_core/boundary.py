"""The check before each batch: every node of the plan serves TLS on both ports, now.

A node that went down after the last gate must halt the rollout before anything in the next
batch changes. Two ways to ask, same question:

- **from the deploying node** (no round trip of its own): when the batch is one node, the
  runner hands the plan's endpoints to that node's ``certdeploy.deploy``
  (``require_serving``), which probes them all on new connections before it changes
  anything and answers ``refused`` when one does not serve (:func:`probe_all`);
- **from every node's own minion** (one round trip, :func:`down_nodes`): for bigger batches,
  for plans whose endpoints a peer cannot reach by address, and to confirm a refusal, so
  that only what a node's own minion sees can halt the job.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from . import probe
from .preflight import explain, gather
from .result import REFUSED

WILDCARDS = ("", "0.0.0.0", "::", "[::]")
PROBE_TIMEOUT = 3.0


def endpoints(described: dict) -> list[list] | None:
    """``[[label, address, port], ...]`` where a node serves, from its ``describe``; None
    when it does not say (a client target) or says a wildcard address a peer cannot use."""
    pairs = (
        ("client", "rpc_address", "client_port"),
        ("internode", "listen_address", "internode_port"),
    )
    out = []
    for label, address_key, port_key in pairs:
        address, port = described.get(address_key), described.get(port_key)
        if str(address or "") in WILDCARDS or not isinstance(port, int):
            return None
        out.append([label, str(address), port])
    return out


def required(job, batch: list[str], function: str) -> dict | None:
    """What to hand the batch's deploy: ``{node: endpoints}`` of every plan node not skipped,
    or None when the check must be a round trip: not ``certdeploy.deploy`` (a truststore
    phase), a batch of several nodes, a node with no usable endpoints (or a job from before
    they were recorded), or two nodes naming the same endpoint (all ``127.0.0.1``, say)."""
    if function != "certdeploy.deploy" or len(batch) != 1:
        return None
    order = [n for n in job.get("plan")["order"] if job.nodes[n].get("state") != "skipped"]
    found = {n: job.nodes[n].get("endpoints") for n in order}
    if not all(found.values()):
        return None
    seen = [(address, port) for eps in found.values() for _, address, port in eps]
    if len(seen) != len(set(seen)):
        return None
    return found


def probe_all(require: dict, ctx, timeout=PROBE_TIMEOUT) -> dict:
    """``{node: why}`` for each node of ``require`` that does not serve TLS on every
    endpoint, probed side by side on new connections with ``ctx``."""
    probes = [(node, label, a, p) for node, eps in require.items() for label, a, p in eps]

    def one(item):
        node, label, address, port = item
        try:
            probe.served_fingerprint(address, int(port), ctx, timeout=timeout)
            return None
        except probe.ProbeError as exc:
            return node, f"{label} {address}:{port}: {exc}"

    down: dict = {}
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(probes)))) as pool:
        for bad in pool.map(one, probes):
            if bad:
                down[bad[0]] = "; ".join(filter(None, (down.get(bad[0]), bad[1])))
    return down


def refusal(target, require: dict, ctx) -> dict | None:
    """The deploy's answer when a plan node does not serve, before anything changed; None
    when every one does."""
    started = time.monotonic()
    down = probe_all(require, ctx)
    if not down:
        return None
    seconds = round(time.monotonic() - started, 3)
    return {
        "node": target.node,
        "target": target.name,
        "outcome": REFUSED,
        "down": down,
        "error": f"{target.node}: refused before any change, seen from here: "
        + "; ".join(f"{n}: not serving TLS ({why})" for n, why in down.items()),
        "timings": {"check": seconds, "total": seconds},
    }


def down_nodes(master, job, opts) -> dict:
    """Plan nodes that do not answer or do not serve TLS on both ports right now (from their
    own minion, on new connections): ``{node: why}``."""
    order = [n for n in job.get("plan")["order"] if job.nodes[n].get("state") != "skipped"]
    served_by = gather(master, order, ("served",), {"target": opts.target})["served"]
    down = {}
    for node_id in order:
        served = served_by.get(node_id)
        if not isinstance(served, dict):
            down[node_id] = f"no answer ({explain(served)})"
            continue
        bad = {port: v for port, v in served.items() if not isinstance(v, str)}
        if bad or not served:
            down[node_id] = f"not serving TLS: {bad or served}"
    return down


def halt_reason(batch: list[str], down: dict, job_id: str) -> str:
    return (
        f"before batch {batch}: {'; '.join(f'{n}: {why}' for n, why in down.items())}"
        f". The batch was not started; nothing in it was changed. Fix: bring "
        f"{', '.join(down)} back (ring all UN), then salt-run certdeploy.resume {job_id}"
    )
