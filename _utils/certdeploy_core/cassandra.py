"""The ``cassandra`` target profile: an Apache Cassandra node's TLS.

Its material: a keystore and a truststore (PKCS#12 or PEM) and the encryption sections of
cassandra.yaml. Activation: ``nodetool reloadssl`` (hot reload; its exit code proves nothing)
or a drain and restart when the yaml changed. Proof: the node serves the new certificate on
9042 and 7000, its peers accept it, CQL over mTLS answers and the ring is all UN
(``certdeploy_core.verify``).
"""

from __future__ import annotations

import os
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import cassandra_yaml as cyaml
from . import cql, errors, health_check, material, probe, ring
from . import verify as verifier
from .cassandra_target import load as load  # the profile's target (addresses, stores, control)
from .poll import poll

FLEET = "cluster"
ONE_PROCESS_PER_ROLE = False
METHODS = ("auto", "reload", "restart")
TRUST_CHANGE_RESTARTS = False  # reloadssl reloads the truststore too
# The ring over CQL: how long heartbeats may take to move (gossip runs every second; under
# load a round can slip), and how often gossip_info is read meanwhile.
GOSSIP_WINDOW = 6.0
GOSSIP_INTERVAL = 0.25
GOSSIP_QUERY = (
    "SELECT address, dc, rack, host_id, generation, heartbeat, status_with_port, status "
    "FROM system_views.gossip_info"
)
StepFailed = errors.StepFailed
# The activation result's key for its gossip baseline (popped by ``node`` and handed to verify).
SINCE = "gossip_before"

# Pillar defaults of a cassandra target; anything not listed here and not given is an error.
DEFAULTS = {
    "client_port": 9042,
    "internode_port": 7000,
    "jmx_port": 7199,
    "store_type": "pkcs12",
    "owner": "cassandra",
    "group": "cassandra",
    "mode": "0600",
    "client_auth": False,
    "backup_dir": "/var/lib/certdeploy/backups",
    "backup_keep": 5,
    "min_days_remaining": 30,
    "verify_timeout": 60,
    "start_timeout": 240,
    "drain_grace": 5,
    "drill_fail_step": None,
    "control": {},
    "verify_client": {},
    "encryption_options": {},
}
REQUIRED = ("node", "listen_address", "config_file", "keystore", "truststore")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def configure(target, *, test=False) -> dict:
    """Make the yaml's encryption keys match pillar; say whether that needs a restart."""
    return cyaml.apply(target.config_file, target.desired_yaml(), node=target.node, test=test)


def retire(target, host, backup_id) -> dict:
    return {"skipped": "a node's identity is its addresses: nothing to retire"}


def preflight(target, host) -> list:
    return []  # nothing about the host to check before a change


def validation(target) -> dict:
    """What the leaf must carry: the node's addresses and names, serverAuth and clientAuth."""
    return {"names": target.names()}


def resolve_method(method: str, restart_required: bool, target=None) -> str:
    if method not in METHODS:
        raise SaltInvocationError(f"method={method!r} is not one of {METHODS}")
    if method == "auto":
        return "restart" if restart_required else "reload"
    return method


def nodetool(target, host, *args, timeout=120) -> dict:
    argv = [*target.control.nodetool, *args]
    return host.run(argv, target.control.cwd, timeout)


def _control(target, host, action: str) -> None:
    argv = getattr(target.control, action)
    if argv:
        res = host.run(list(argv), target.control.cwd, target.start_timeout)
        ok = res["retcode"] == 0
        detail = cause(f"{res.get('stdout') or ''}\n{res.get('stderr') or ''}")
    else:
        ok, detail = host.service(action, target.control.service), ""
    if not ok:
        raise StepFailed(f"{target.node}: {action} failed: {detail}")


def cause(output: str, limit: int = 600) -> str:
    """What an operator needs from a failed start's output: the lines naming an exception
    (a JVM's ``Caused by:`` chain ends with the root cause), not the stack frames; else the
    tail of the output."""
    lines = [line.strip() for line in output.splitlines()]
    named = [
        line
        for line in lines
        if line and not line.startswith(("at ", "...")) and ("Exception" in line or "Error" in line)
    ]
    text = " | ".join(dict.fromkeys(named[-4:])) if named else output.strip()
    return text[-limit:]


def activate(target, host, *, method="auto", restart_required=False) -> dict:
    """``reload`` = nodetool reloadssl (exit 0 proves nothing: verify decides);
    ``restart`` = drain, stop, start, then wait for CQL and a ring of UN nodes."""
    chosen = resolve_method(method, restart_required)
    started = time.monotonic()
    steps = []
    since = None
    if chosen == "reload":
        # The ring before the reload: verify's ring read after it then needs no wait for
        # heartbeats to move (they have had the reload's time to).
        since = gossip_baseline(target)
        argv = list(target.control.reloadssl) or [*target.control.nodetool, "reloadssl"]
        res = host.run(argv, target.control.cwd, 120)
        steps.append({"step": "reloadssl", "retcode": res["retcode"]})
        if res["retcode"] != 0:
            raise StepFailed(
                f"{target.node}: {' '.join(argv[:3])}... (the reload) failed: "
                f"{res['stderr'][-300:]}. Fix: check control.reloadssl / control.nodetool and "
                f"that JMX answers on port {target.jmx_port}"
            )
    else:
        # Stop serving clients first and give their drivers a moment to move to other
        # replicas; then drain (flush, stop accepting writes) and stop.
        res = nodetool(target, host, "disablebinary")
        steps.append({"step": "disablebinary", "retcode": res["retcode"]})
        if res["retcode"] == 0 and target.drain_grace:
            time.sleep(target.drain_grace)
        res = nodetool(target, host, "drain", timeout=300)
        steps.append({"step": "drain", "retcode": res["retcode"]})  # a down node cannot drain
        host.progress(f"{target.node}: drained, stopping")
        _control(target, host, "stop")
        steps.append({"step": "stop", "seconds": _since(started)})
        _control(target, host, "start")
        steps.append({"step": "start", "seconds": _since(started)})
        host.progress(f"{target.node}: started, waiting for CQL and UN")
        wait_serving(target, host, timeout=target.start_timeout)
        steps.append({"step": "cql_and_un", "seconds": _since(started)})
    result = {"method": chosen, "seconds": _since(started), "steps": steps}
    if since:
        result[SINCE] = since
    return result


def wait_serving(target, host, timeout: float) -> None:
    """Until the client port completes a TLS handshake and the ring is all UN."""
    ctx = material.probe_context(target)

    def check():
        probe.served_certificate(target.rpc_address, target.client_port, ctx, timeout=3)
        return ring_rows(target, host)

    polled = poll(
        check,
        timeout=timeout,
        done=ring.ring_healthy,
        errors=(probe.ProbeError, CommandExecutionError),
    )
    if not polled.ok:
        last = polled.error or f"ring not all UN: {ring.not_up_normal(polled.value or [])}"
        raise errors.NotServing(f"{target.node}: not serving after {timeout:.0f}s: {last}")


def _gossip_reader(target):
    """``(read, close)``: ``read()`` returns ``system_views.gossip_info`` as the node sees it,
    as rows with only what :mod:`.ring` reads (plain values: safe to return to the master)."""
    from cassandra.query import SimpleStatement

    driver = cql.cluster(
        [target.rpc_address],
        material.cql_context(target),
        port=target.client_port,
        pin=True,
        timeout=10,
        request_timeout=10,
    )
    session = driver.connect()
    statement = SimpleStatement(GOSSIP_QUERY)

    def read() -> list[dict]:
        rows = []
        for row in session.execute(statement):
            entry = row._asdict()
            entry["address"] = str(entry["address"])
            entry["host_id"] = str(entry["host_id"]) if entry.get("host_id") else None
            rows.append(entry)
        return rows

    return read, driver.shutdown


def _unread(target, exc) -> CommandExecutionError:
    return CommandExecutionError(
        f"{target.node}: cannot read the ring over CQL ({target.rpc_address}:"
        f"{target.client_port}, system_views.gossip_info): {type(exc).__name__}: {exc}"[:500]
    )


def gossip_baseline(target) -> list[dict] | None:
    """One read of the node's gossip view, taken before a change so that a later
    :func:`ring_rows` (``since=``) sees heartbeats moved without waiting; ``None`` when it
    cannot be read (the later read then waits as usual)."""
    try:
        read, close = _gossip_reader(target)
        try:
            return read()
        finally:
            close()
    except Exception:  # noqa: BLE001 - only an optimisation: the ring read decides
        return None


def ring_rows(target, host=None, since=None) -> list[dict]:
    """The ring as this node sees it, over CQL and without a JVM (``certdeploy_core.ring``):
    ``system_views.gossip_info`` read until every member's heartbeat has moved, or for
    ``GOSSIP_WINDOW`` seconds (then the ones that did not are Down). ``since``: an earlier
    read (:func:`gossip_baseline`) to measure the movement from, so that a ring that has
    gossiped since needs one read. ``host`` is unused: kept for the callers that pass the Salt
    host to every check."""
    try:
        read, close = _gossip_reader(target)
        try:
            first = list(since) if since else read()
            read_at = time.monotonic()
            last = read() if since else first
            while not ring.all_advanced(first, last) and (
                time.monotonic() - read_at < GOSSIP_WINDOW
            ):
                time.sleep(GOSSIP_INTERVAL)
                last = read()
        finally:
            close()
    except Exception as exc:  # noqa: BLE001 - the driver raises many types; all mean "unread"
        raise _unread(target, exc) from exc
    return ring.from_gossip(first, last)


def is_serving(target) -> bool:
    try:
        probe.served_certificate(
            target.rpc_address, target.client_port, material.probe_context(target), timeout=3
        )
        return True
    except (probe.ProbeError, SaltInvocationError, CommandExecutionError):
        return False


def verify(target, host, expected: str, *, known=(), method=None, timeout=None, since=None) -> dict:
    """Prove activation: ``expected`` is served on the client and internode ports on new
    connections, peers accept the node's certificate, CQL over mTLS answers and the ring is
    all UN. A deterministic failure ends it early (see ``certdeploy_core.verify``). ``since``:
    the activation's gossip baseline (its ``SINCE`` entry), for the first ring read."""

    baseline = since

    def rows(tgt, hst):
        # The baseline serves the first ring read only; a later one waits as usual.
        nonlocal baseline
        first, baseline = baseline, None
        return ring_rows(tgt, hst, since=first)

    return verifier.verify(
        target, host, expected, ring_rows=rows, known=known, method=method, timeout=timeout
    )


def served(target) -> dict:
    """The certificate served on the client and internode ports, to new connections."""
    ctx = material.probe_context(target) if os.path.exists(target.keystore) else None
    result = {}
    for label, address, port in (
        ("client", target.rpc_address, target.client_port),
        ("internode", target.listen_address, target.internode_port),
    ):
        try:
            result[label] = probe.served_fingerprint(address, port, ctx or probe.client_context())
        except probe.ProbeError as exc:
            result[label] = {"error": str(exc)}
    return result


def explain(evidence: dict) -> str:
    """One line on why a verification failed."""
    if evidence.get("deterministic"):
        return f"{evidence['deterministic']} (seen in {verifier.CONFIRM} rounds in a row)"
    parts = []
    for label in ("client", "internode"):
        e = evidence[label]
        if not e["matched"]:
            parts.append(f"{label} port serves {e['served'] or e['error']}")
    for label in ("cql", "ring"):
        if not evidence[label]["ok"]:
            parts.append(f"{label}: {evidence[label].get('error')}")
    return "; ".join(parts)


def health(target, *, expected=None, warn_days=30.0, timeout=3.0) -> dict:
    """Both ports serve ``expected`` (the beacon's question), and days to expiry."""
    return health_check.node_health(target, expected=expected, warn_days=warn_days, timeout=timeout)
