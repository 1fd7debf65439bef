"""Compliance: check a node live and change nothing (minion side), then gather the fleet's
answers into a table, a JSON result and an HTML page (master side).

A node's findings: the served fingerprint equals the expected one on both ports, days to
expiry, the issuer is allowed, TLS 1.0/1.1 refused and 1.2+ accepted (real handshakes), key
and keystore files 0600 with the right owner, private backups, and the truststore holding
exactly the expected CAs. Only fingerprints, names and dates: never key material.

A client-side target (profiles ``client``, ``cqlsh``) serves no port: its ``served`` and
``expiry`` come from its profile's health (installed leaf, the app's health command), and the
TLS-version findings are replaced by ``server_view``, the profile's own live verification (every
node accepts a login with the installed files and sees the app only under that leaf's role).
"""

from __future__ import annotations

import os

from . import files, material, profiles, templates
from . import health_check as hc


def finding(check: str, ok: bool, message: str) -> dict:
    return {"check": check, "ok": bool(ok), "message": message}


def check_node(
    target, record: dict, *, host=None, allowed_issuers=None, expected_cas=None, min_days=30
):
    """Every compliance finding for ``target``, live. ``record`` is the last deployment's
    (its ``expected_fingerprint`` is what the node should serve); ``host`` runs a client
    target's commands (its health, cqlsh)."""
    profile = profiles.get(target)
    health = profile.health(
        target, warn_days=int(min_days), expected=record.get("expected_fingerprint")
    )
    findings = [
        finding(
            "served", health["match"], f"expected {health['expected']}, served {health['served']}"
        ),
        finding(
            "expiry",
            health["days_left"] is not None and not health["expiring"],
            f"{health['days_left']} days left (policy: at least {min_days})",
        ),
    ]
    disk = material.on_disk(target)
    issuer = (disk.get("keystore") or {}).get("issuer")
    if allowed_issuers is not None:
        findings.append(finding("issuer", issuer in list(allowed_issuers), f"issuer {issuer}"))
    if profiles.trait(target, "FLEET") == "cluster":
        for label, address, port in (
            ("client", target.rpc_address, target.client_port),
            ("internode", target.listen_address, target.internode_port),
        ):
            findings.append(_tls_finding(target, label, address, port))
    else:
        findings.append(_server_view(profile, target, host, health))
    findings.extend(hc.file_findings(target))
    trust = disk.get("truststore")
    if expected_cas is not None:
        same = isinstance(trust, list) and sorted(trust) == sorted(expected_cas)
        findings.append(finding("truststore", same, f"holds {trust}"))
    return {
        "node": target.node,
        "ok": all(f["ok"] for f in findings),
        "findings": findings,
        "served": health["served"],
        "expected": health["expected"],
        "not_after": health["not_after"],
        "days_left": health["days_left"],
    }


def _server_view(profile, target, host, health) -> dict:
    installed = (health.get("served") or {}).get("installed")
    if host is None or not installed:
        return finding("server_view", False, "no installed leaf to verify" if host else "no host")
    timeout = min(float(target.verify_timeout), 30.0)
    evidence = profile.verify(target, host, installed, timeout=timeout)
    seen = evidence.get("connections") or {
        address: run.get("roles") for address, run in (evidence.get("cqlsh") or {}).items()
    }
    why = "; ".join(evidence.get("problems") or []) or f"seen {seen}"
    return finding("server_view", evidence["ok"], f"role {evidence.get('role')}: {why}"[:600])


def _tls_finding(target, label, host, port) -> dict:
    versions = hc.tls_versions(host, port, ctx_factory=lambda: material.probe_context(target))
    legacy_refused = versions.get("TLSv1") is not True and versions.get("TLSv1.1") is not True
    modern = bool(versions.get("TLSv1.2") or versions.get("TLSv1.3"))
    shown = ", ".join(
        f"{v}={'accepted' if ok else 'refused' if ok is False else 'untestable'}"
        for v, ok in versions.items()
        if v != "errors"
    )
    return finding(f"tls_versions_{label}", legacy_refused and modern, shown)


# ----------------------------------------------------------------------------- the fleet


def gather(minions, answers: dict) -> dict:
    """Every minion's result; a minion that did not answer with findings gets one failing
    ``answer`` finding saying what it said."""
    nodes = {}
    for minion in minions:
        ret = answers.get(minion)
        nodes[minion] = (
            ret
            if isinstance(ret, dict) and "findings" in ret
            else {"node": minion, "ok": False, "findings": [finding("answer", False, str(ret))]}
        )
    return nodes


def failures(nodes: dict) -> list[dict]:
    return [
        {"node": m, "check": f["check"], "message": f["message"]}
        for m, r in nodes.items()
        for f in r["findings"]
        if not f["ok"]
    ]


def table(nodes: dict) -> str:
    lines = [f"{'node':<8}{'check':<24}{'ok':<5}message"]
    for m, r in nodes.items():
        for f in r["findings"]:
            lines.append(
                f"{m:<8}{f['check']:<24}{'yes' if f['ok'] else 'NO':<5}{f['message'][:90]}"
            )
    return "\n".join(lines)


def render_html(nodes: dict) -> str:
    return templates.render(templates.COMPLIANCE_HTML, nodes=nodes, failures=failures(nodes))


def write_html(nodes: dict, path: str) -> str:
    """The HTML page, written atomically (mode 0644: reports are public)."""
    os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
    files.atomic_write(path, render_html(nodes).encode("utf-8"), mode=0o644, always=True)
    return path
