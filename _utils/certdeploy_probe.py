"""Live probes of a node: the certificate it serves on a new TLS connection, and a CQL query.

These are the only proofs of activation this project accepts: ``nodetool reloadssl`` exits 0
even when the reload failed, so what a *new* connection is served is what counts.
Pure functions; no Salt dunders.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import time


class ProbeError(Exception):
    """A probe could not complete (port closed, handshake refused, timeout)."""


def client_context(certfile: str | None = None, keyfile: str | None = None) -> ssl.SSLContext:
    """A TLS client context that accepts any server cert (we *report* what is served; trust is
    checked separately) and presents ``certfile`` for mutual TLS when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def verifying_context(cafile: str, certfile=None, keyfile=None) -> ssl.SSLContext:
    """A TLS client context that verifies the server against ``cafile`` and its IP SANs."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def served_certificate(host: str, port: int, context: ssl.SSLContext, timeout=5.0) -> bytes:
    """DER of the leaf certificate served on a brand-new connection to ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"{host}:{port}: {exc}") from exc
    if not der:
        raise ProbeError(f"{host}:{port}: no certificate served")
    return der


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def served_fingerprint(host: str, port: int, context: ssl.SSLContext, timeout=5.0) -> str:
    return sha256_hex(served_certificate(host, port, context, timeout))


def wait_for_fingerprint(host, port, context, expected: str, timeout=30.0, interval=0.5) -> dict:
    """Poll new connections until ``expected`` is served or ``timeout`` passes.

    Returns evidence: ``{"served": fp|None, "matched": bool, "attempts": n, "seconds": s,
    "error": str|None}``.
    """
    started = time.monotonic()
    attempts, served, error = 0, None, None
    while True:
        attempts += 1
        try:
            served, error = served_fingerprint(host, port, context), None
        except ProbeError as exc:
            served, error = None, str(exc)
        elapsed = time.monotonic() - started
        if served == expected or elapsed >= timeout:
            return {
                "served": served,
                "matched": served == expected,
                "attempts": attempts,
                "seconds": round(elapsed, 3),
                "error": error,
            }
        time.sleep(interval)


def cql_query(hosts, ssl_context: ssl.SSLContext, query: str, timeout=15.0):
    """Run one CQL statement over TLS against ``hosts`` and return the rows as dicts."""
    from cassandra.cluster import Cluster  # heavy import, only when needed
    from cassandra.policies import WhiteListRoundRobinPolicy

    cluster = Cluster(
        contact_points=list(hosts),
        ssl_context=ssl_context,
        load_balancing_policy=WhiteListRoundRobinPolicy(list(hosts)),
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        protocol_version=5,
    )
    try:
        session = cluster.connect()
        return [row._asdict() for row in session.execute(query, timeout=timeout)]
    finally:
        cluster.shutdown()
