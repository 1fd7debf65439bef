"""Live probes of a node: the certificate it serves on a new TLS connection, and a CQL query.

These are the only proofs of activation this project accepts: ``nodetool reloadssl`` exits 0
even when the reload failed, so what a *new* connection is served is what counts.
Pure functions; no Salt dunders.
"""

from __future__ import annotations

import hashlib
import socket
import ssl

from .poll import poll


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


# OpenSSL reason codes of alerts a TLS peer sends when it refuses a certificate.
CERT_ALERTS = (
    "ALERT_UNKNOWN_CA",
    "ALERT_BAD_CERTIFICATE",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_CERTIFICATE_REQUIRED",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_ACCESS_DENIED",
    "ALERT_DECRYPT_ERROR",
)


def cert_alert(exc: BaseException) -> str | None:
    """The alert's name when ``exc`` is the peer refusing our certificate, else None."""
    text = f"{getattr(exc, 'reason', '') or ''} {exc}".upper()
    return next((a.removeprefix("ALERT_") for a in CERT_ALERTS if a in text), None)


def handshake(host: str, port: int, context: ssl.SSLContext, timeout=3.0, linger=0.5) -> dict:
    """One new TLS connection, classified: what a verifier needs to tell "not yet" from "never".

    TLS 1.3 servers judge the client certificate *after* the client's handshake finished, so
    the refusal arrives as an alert on the first read: read for ``linger`` seconds (a server
    that accepted us waits for our first message and sends nothing). Cassandra 5.0 answers a
    client certificate it does not trust with an ``internal_error`` alert at that point
    (measured on the rig), so that alert, *after* the handshake, counts as a refusal too.

    Returns ``{"fingerprint", "rejected", "untrusted", "error"}``: ``rejected`` is the alert
    the server refused our certificate with; ``untrusted`` is our context's verification
    error on the server's certificate; ``error`` is anything else (refused, reset, timeout).
    """
    out = {"fingerprint": None, "rejected": None, "untrusted": None, "error": None}
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        out["error"] = f"{host}:{port}: {exc}"
        return out
    with sock:
        try:
            tls = context.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as exc:
            out["untrusted"] = f"{host}:{port}: {exc.verify_message or exc}"
            return out
        except (OSError, ssl.SSLError) as exc:
            out["rejected"] = cert_alert(exc)
            out["error"] = None if out["rejected"] else f"{host}:{port}: {exc}"
            return out
        with tls:
            der = tls.getpeercert(binary_form=True)
            out["fingerprint"] = sha256_hex(der) if der else None
            tls.settimeout(linger)
            try:
                if tls.recv(1) == b"":
                    out["error"] = f"{host}:{port}: closed right after the handshake"
            except TimeoutError:
                pass  # accepted: the server waits for our first message
            except (OSError, ssl.SSLError) as exc:
                out["rejected"] = cert_alert(exc) or post_handshake_alert(exc)
                out["error"] = None if out["rejected"] else f"{host}:{port}: {exc}"
    return out


def post_handshake_alert(exc: BaseException) -> str | None:
    """``INTERNAL_ERROR`` when a server sent that alert right after the handshake: how
    Cassandra refuses an untrusted client certificate under TLS 1.3."""
    text = f"{getattr(exc, 'reason', '') or ''} {exc}".upper()
    return "INTERNAL_ERROR" if "ALERT_INTERNAL_ERROR" in text else None


def sha256_hex(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest()


def served_fingerprint(host: str, port: int, context: ssl.SSLContext, timeout=5.0) -> str:
    return sha256_hex(served_certificate(host, port, context, timeout))


def wait_for_fingerprint(host, port, context, expected: str, timeout=30.0, interval=0.5) -> dict:
    """Poll new connections until ``expected`` is served or ``timeout`` passes.

    Returns evidence: ``{"served": fp|None, "matched": bool, "attempts": n, "seconds": s,
    "error": str|None}``.
    """
    polled = poll(
        lambda: served_fingerprint(host, port, context),
        timeout=timeout,
        interval=interval,
        done=lambda served: served == expected,
        errors=(ProbeError,),
    )
    return {
        "served": polled.value,
        "matched": polled.ok,
        "attempts": polled.attempts,
        "seconds": polled.seconds,
        "error": polled.error,
    }
