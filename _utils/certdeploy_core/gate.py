"""Cluster-level checks run *from* a node: the health gate between rollout steps, the
keyspace replication the planner needs, and the public material peers exchange.

The gate runs on a node other than the one just changed, so it proves what the rest of the
cluster sees: the ring is all UN, a QUORUM write and read over TLS succeed (at RF 3 that
crosses internode TLS to the changed node), and the changed node serves the new certificate.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor

from . import cassandra, cql, material, probe, ring
from .poll import poll

DEFAULT_KEYSPACE = "certdeploy_health"


def _session(target, timeout=10):
    driver = cql.cluster(
        [target.rpc_address],
        material.cql_context(target),
        port=target.client_port,
        pin=True,
        timeout=timeout,
    )
    return driver, driver.connect()


def keyspaces(target) -> list[dict]:
    """Replication of every keyspace, for the planner: ``{name, class, replication}``."""
    cluster, session = _session(target)
    try:
        rows = session.execute("SELECT keyspace_name, replication FROM system_schema.keyspaces")
        result = []
        for row in rows:
            replication = dict(row.replication)
            klass = replication.pop("class", "")
            result.append({"name": row.keyspace_name, "class": klass, "replication": replication})
        return result
    finally:
        cluster.shutdown()


def quorum_roundtrip(target, keyspace: str, replication: dict, timeout=15.0) -> dict:
    """CREATE IF NOT EXISTS the health keyspace, then write and read a row at QUORUM."""
    from cassandra import ConsistencyLevel
    from cassandra.query import SimpleStatement

    started = time.monotonic()
    cluster, session = _session(target, timeout)
    try:
        options = ", ".join(f"'{k}': '{v}'" for k, v in sorted(replication.items()))
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {{{options}}}",
            timeout=timeout,
        )
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {keyspace}.gate (k text PRIMARY KEY, v text)",
            timeout=timeout,
        )
        value = f"{target.node}@{time.time():.3f}"
        write = SimpleStatement(
            f"INSERT INTO {keyspace}.gate (k, v) VALUES (%s, %s)",
            consistency_level=ConsistencyLevel.QUORUM,
        )
        read = SimpleStatement(
            f"SELECT v FROM {keyspace}.gate WHERE k = %s",
            consistency_level=ConsistencyLevel.QUORUM,
        )
        session.execute(write, (target.node, value), timeout=timeout)
        row = session.execute(read, (target.node,), timeout=timeout).one()
        ok = row is not None and row.v == value
        return {"ok": ok, "seconds": round(time.monotonic() - started, 3)}
    finally:
        cluster.shutdown()


def gate(
    target,
    host,
    expect: dict,
    *,
    keyspace=DEFAULT_KEYSPACE,
    replication=None,
    timeout=60.0,
    settle=0.0,
    wait_served=0.0,
) -> dict:
    """The health gate, retried until ``timeout``. ``expect`` maps the changed nodes'
    addresses to the fingerprint each must serve (client and internode ports).

    ``wait_served`` > 0: the gate was started beside the deployment, before the change. It
    reads the ring first (a baseline), waits up to ``wait_served`` seconds for every changed
    node to serve its new certificate, and only then judges: the ring read after the change
    then needs no wait for heartbeats, so the gate is done about when the deployment's own
    verification is. Not served in time: ``{"ok": False, "early": "not served ..."}`` and
    nothing judged (the rollout then gates after the deployment as usual)."""
    replication = replication or {"class": "SimpleStrategy", "replication_factor": 3}
    started = time.monotonic()
    ctx = material.probe_context(target)
    since = cassandra.gossip_baseline(target) if wait_served else None
    if wait_served:
        waited = poll(
            lambda: _served(expect, target, ctx),
            timeout=float(wait_served),
            interval=0.2,
            done=_all_served,
            errors=(),
        )
        if not waited.ok:
            return {
                "ok": False,
                "from": target.node,
                "early": f"not served within {wait_served:.0f}s: nothing judged",
                "served": waited.value,
                "seconds": round(time.monotonic() - started, 3),
            }

    def ring_state():
        nonlocal since
        first, since = since, None  # the baseline serves the first read only
        try:
            rows = cassandra.ring_rows(target, host, since=first)
            return {r["address"]: r["code"] for r in rows}, ring.ring_healthy(rows)
        except Exception as exc:  # noqa: BLE001 - report, retry
            return {"error": str(exc)[:300]}, False

    def cql_state():
        try:
            return quorum_roundtrip(target, keyspace, replication)
        except Exception as exc:  # noqa: BLE001 - driver errors are many; all mean "no"
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}

    def attempt() -> dict:
        # The ring read (it may wait for heartbeats) and the CQL round trip side by side.
        # (The thread gets a copy of this context: Salt's dunders live in context variables.)
        with ThreadPoolExecutor(max_workers=1) as pool:
            ring_future = pool.submit(contextvars.copy_context().run, ring_state)
            result = {"from": target.node, "served": _served(expect, target, ctx)}
            result["cql"] = cql_state()
            result["ring"], ring_ok = ring_future.result()
        result["ok"] = ring_ok and result["cql"]["ok"] and _all_served(result["served"])
        return result

    result = poll(attempt, timeout=timeout, done=lambda r: r["ok"], errors=()).value
    if result["ok"] and settle:
        # Give clients' drivers time to see a restarted node up again before the next one
        # goes down; otherwise they briefly have only RF-2 replicas to talk to.
        time.sleep(settle)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _all_served(served: dict) -> bool:
    return all(v["client"] == v["expected"] == v["internode"] for v in served.values())


def _served(expect: dict, target, ctx) -> dict:
    """``{address: {"expected", "client", "internode"}}`` from new TLS connections, all
    handshakes side by side (a failed one reads ``"error: ..."``)."""
    ports = (("client", target.client_port), ("internode", target.internode_port))

    def one(address, port):
        try:
            return probe.served_fingerprint(address, port, ctx)
        except probe.ProbeError as exc:
            return f"error: {exc}"

    workers = max(1, min(16, 2 * len(expect)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {
            (address, label): pool.submit(one, address, port)
            for address in expect
            for label, port in ports
        }
        served = {address: {"expected": fingerprint} for address, fingerprint in expect.items()}
        for (address, label), future in futures.items():
            served[address][label] = future.result()
    return served
