"""Prove activation from outside the process, and tell a failure that will never heal from one
that is only "not yet", so a bad certificate is rolled back in seconds instead of after the
whole ``verify_timeout``.

One poll loop. Each round opens new TLS connections, in parallel:

- to the node's client and internode ports, presenting the probe identity: what is served;
- to a few peers' internode ports, presenting the node's *own* installed identity and checking
  their certificates against its installed truststore: what its internode connections will
  meet. (Open connections keep the old context, so a UN ring alone proves little.)

When both ports serve the expected fingerprint: CQL over mTLS (on a connection that must have
been served the expected certificate), then the ring over CQL
(``system_views.gossip_info``, no JVM) until it is all UN (heartbeats measured from the
activation's own read before it changed anything, when it took one: then one read suffices),
then one more round that reaches every peer the ring named (up to ``PEER_SAMPLE``). After a
reload the first round runs CQL and the ring read beside its handshakes instead of after them,
and keeps them only when that round finds the expected certificate served.

Deterministic, once the same signal is seen in ``CONFIRM`` rounds in a row:

- a certificate alert from the node or from a peer: it refuses the certificate presented;
- the node's truststore refuses a peer's certificate, or CQL refuses the node's own;
- a port serves a fingerprint that is neither the expected nor a known one;
- after a reload, the previous certificate is still served: the reload did not take.

Not yet: connection refused, reset or timed out (starting), CQL not answering, the ring not
all UN (gossip settling). Those wait until the timeout. Pure logic: Salt reaches it through a
:class:`certdeploy_node.Host`.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from salt.exceptions import CommandExecutionError

from . import cassandra_yaml as cyaml
from . import cql, material, probe, ring

CONFIRM = 2  # rounds in a row a deterministic signal must be seen in
INTERVAL = 0.5  # seconds between rounds
PEER_SAMPLE = 4  # peers probed per round
STALE_AFTER = 2.0  # seconds after a reload before "still the previous certificate" counts
CQL_UNTRUSTED = ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed")


def short(fingerprint: str | None) -> str:
    return f"{fingerprint[:16]}…" if fingerprint else "nothing"


@dataclass
class Judge:
    """Turns each round's observations into signals, and confirms them over rounds."""

    node: str
    expected: str
    known: tuple = ()
    method: str | None = None
    confirm: int = CONFIRM
    streak: dict = field(default_factory=dict)

    def signals(self, obs: dict, elapsed: float) -> dict:
        """``{key: reason}`` for one round: ``obs`` holds ``client``/``internode`` handshakes
        (with ``address``), ``peers`` ``{address: handshake}`` and ``cql_error``."""
        found = {}
        for label in ("client", "internode"):
            seen = obs.get(label) or {}
            where = f"{self.node} {label} port {seen.get('address')}"
            if seen.get("rejected"):
                found[f"{label}:rejected"] = (
                    f"{where} refuses the client certificate the probe presents "
                    f"({seen['rejected']}): its truststore does not accept the installed "
                    "certificate's issuer"
                )
            fingerprint = seen.get("fingerprint")
            if not fingerprint or fingerprint == self.expected:
                continue
            if fingerprint not in self.known:
                found[f"{label}:foreign"] = (
                    f"{where} serves {short(fingerprint)}, which is neither the expected "
                    f"{short(self.expected)} nor the previous certificate"
                )
            elif self.method == "reload" and elapsed >= STALE_AFTER:
                found[f"{label}:stale"] = (
                    f"{where} still serves the previous certificate {short(fingerprint)} after "
                    "nodetool reloadssl: the reload did not take (look for 'Failed to hot "
                    "reload' in the node's log)"
                )
        for address, seen in sorted((obs.get("peers") or {}).items()):
            if seen.get("rejected"):
                found[f"peer:{address}:rejected"] = (
                    f"peer {address} refuses {self.node}'s installed certificate "
                    f"({seen['rejected']}): it does not trust the CA that issued it"
                )
            if seen.get("untrusted"):
                found[f"peer:{address}:untrusted"] = (
                    f"{self.node}'s installed truststore does not trust peer {address}'s "
                    f"certificate ({seen['untrusted']})"
                )
        cql_error = obs.get("cql_error") or ""
        if any(word in cql_error for word in CQL_UNTRUSTED):
            found["cql:untrusted"] = (
                f"CQL to {self.node} refuses the certificate it serves: it does not verify "
                "against the node's own installed truststore"
            )
        return found

    def observe(self, obs: dict, elapsed: float) -> str | None:
        """The confirmed reasons ("; "-joined), or None while nothing is confirmed."""
        current = self.signals(obs, elapsed)
        self.streak = {key: self.streak.get(key, 0) + 1 for key in current}
        confirmed = [current[key] for key, n in self.streak.items() if n >= self.confirm]
        return "; ".join(confirmed) or None


def verify(target, host, expected: str, *, ring_rows, known=(), method=None, timeout=None):
    """Evidence that ``expected`` is served and works, or why it never will.

    ``known``: fingerprints that may legitimately still be served (the previous one);
    ``method``: the activation just run (``reload`` enables the stale-reload signal);
    ``ring_rows(target, host)``: the ring as the node sees it (``certdeploy_core.ring``).
    """
    timeout = target.verify_timeout if timeout is None else float(timeout)
    started = time.monotonic()
    deadline = started + timeout
    judge = Judge(target.node, expected, tuple(k for k in known if k and k != expected), method)
    ctx, peer_ctx = material.probe_context(target), material.peer_context(target)
    ports = {
        "client": (target.rpc_address, target.client_port),
        "internode": (target.listen_address, target.internode_port),
    }
    evidence = {
        "expected": expected,
        **{label: {"served": None, "matched": False, "attempts": 0} for label in ports},
        "peers": {},
        "cql": {"ok": False, "error": "not attempted: the expected certificate is not served"},
        "ring": {"ok": False, "error": "not attempted", "nodes": {}},
        "deterministic": None,
    }
    self_addresses = {target.listen_address, target.rpc_address}
    seeds = cyaml.seed_addresses(target.config_file)
    peers, required = _sample(seeds, self_addresses), set()  # required: ring members
    rounds = 0
    with ThreadPoolExecutor(max_workers=len(ports) + PEER_SAMPLE + 2) as pool:
        while True:
            rounds += 1
            # After a reload the new certificate is most likely served at once: the first
            # round runs CQL and the ring read beside its handshakes (which linger for a
            # refusal) and keeps them only if that round finds it served (:func:`_early`).
            # A copy of this context goes with the ring read: Salt's dunders live in context
            # variables.
            early = (
                {
                    "cql": pool.submit(_cql_once, target, expected),
                    "ring": pool.submit(
                        contextvars.copy_context().run, _ring_once, target, host, ring_rows
                    ),
                }
                if rounds == 1 and method == "reload"
                else {}
            )
            obs = _probe_round(pool, ports, ctx, peers, target.internode_port, peer_ctx)
            for label in ports:
                _tally(evidence[label], obs[label], expected, started)
            evidence["peers"] = {a: _peer_entry(h) for a, h in obs["peers"].items()}
            served = all(evidence[label]["matched"] for label in ports)
            ring_future = early.get("ring") if served else None
            if served and ring_future is None and not evidence["ring"]["ok"]:
                # The ring read (it waits for heartbeats) beside the CQL check, not after it.
                ring_future = pool.submit(
                    contextvars.copy_context().run, _ring_once, target, host, ring_rows
                )
            if served and not evidence["cql"]["ok"]:
                evidence["cql"] = _early(early.get("cql"), expected) or _cql_once(target, expected)
                obs["cql_error"] = evidence["cql"].get("error")
            if ring_future is not None:
                evidence["ring"], rows = ring_future.result()
                peers = _sample([*(r["address"] for r in rows), *seeds], self_addresses)
                required = {r["address"] for r in rows} & set(peers)
            probed = evidence["peers"]
            peers_ok = all(not (p["rejected"] or p["untrusted"]) for p in probed.values()) and all(
                a in probed and probed[a]["accepted"] for a in required
            )
            evidence["deterministic"] = judge.observe(obs, time.monotonic() - started)
            evidence["ok"] = (
                served and evidence["cql"]["ok"] and evidence["ring"]["ok"] and peers_ok
            )
            if evidence["ok"] or evidence["deterministic"] or time.monotonic() >= deadline:
                break
            time.sleep(INTERVAL)
    evidence["rounds"] = rounds
    evidence["seconds"] = round(time.monotonic() - started, 3)
    if evidence["ok"]:
        evidence["deterministic"] = None
    return evidence


def _sample(addresses, exclude) -> list[str]:
    """Up to ``PEER_SAMPLE`` distinct peer addresses, in the order first seen."""
    unique = [a for a in dict.fromkeys(addresses) if a and a not in exclude]
    return unique[:PEER_SAMPLE]


def _probe_round(pool, ports, ctx, peers, peer_port, peer_ctx) -> dict:
    own = {label: pool.submit(probe.handshake, a, p, ctx) for label, (a, p) in ports.items()}
    theirs = {a: pool.submit(probe.handshake, a, peer_port, peer_ctx) for a in peers}
    obs = {}
    for label, future in own.items():
        address, port = ports[label]
        obs[label] = {**future.result(), "address": f"{address}:{port}"}
    obs["peers"] = {a: f.result() for a, f in theirs.items()}
    return obs


def _tally(entry: dict, seen: dict, expected: str, started: float) -> None:
    """Fold one handshake into the port's evidence: ``served``/``matched``/``attempts``/
    ``seconds``/``error`` as before, plus ``rejected`` (the alert, if any)."""
    entry["attempts"] += 1
    if entry["matched"] and seen["fingerprint"] == expected and not seen["rejected"]:
        return  # keep the first time it matched
    entry["served"] = seen["fingerprint"]
    entry["matched"] = seen["fingerprint"] == expected and not seen["rejected"]
    entry["rejected"] = seen["rejected"]
    entry["error"] = seen["error"] or seen["untrusted"]
    entry["seconds"] = round(time.monotonic() - started, 3)


def _peer_entry(seen: dict) -> dict:
    return {
        "accepted": not (seen["rejected"] or seen["untrusted"]) and bool(seen["fingerprint"]),
        "served": seen["fingerprint"],
        "rejected": seen["rejected"],
        "untrusted": seen["untrusted"],
        "error": seen["error"],
    }


def _cql_once(target, expected=None) -> dict:
    """CQL over mTLS verified against the node's installed truststore; ``served`` is the
    certificate on the connection the query ran on, which must be ``expected`` when known."""
    started = time.monotonic()
    try:
        rows, served = cql.query_served(
            [target.rpc_address],
            material.cql_context(target),
            "SELECT release_version FROM system.local",
            timeout=10,
            port=target.client_port,
        )
    except Exception as exc:  # noqa: BLE001 - the driver raises many types; all mean "no"
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}
    if expected and served and served != expected:
        return {"ok": False, "served": served, "error": f"CQL was served {short(served)}"}
    return {
        "ok": True,
        "release_version": rows[0]["release_version"],
        "served": served,
        "seconds": round(time.monotonic() - started, 3),
    }


def _early(future, expected) -> dict | None:
    """The first round's CQL check, if it proves ``expected``: it ran on a connection that
    was served ``expected`` (and so after the reload took). None: run it again."""
    if future is None:
        return None
    result = future.result()
    return result if result.get("ok") and result.get("served") == expected else None


def _ring_once(target, host, ring_rows) -> tuple[dict, list]:
    try:
        rows = ring_rows(target, host)
    except CommandExecutionError as exc:
        return {"ok": False, "error": str(exc), "nodes": {}}, []
    nodes = {r["address"]: r["code"] for r in rows}
    if ring.ring_healthy(rows):
        return {"ok": True, "nodes": nodes}, rows
    return {"ok": False, "error": f"not all UN: {ring.not_up_normal(rows)}", "nodes": nodes}, rows
