"""The ``client`` target profile: a client application's certificate (see :mod:`.client_target`).

Validation: the leaf carries the target's URI SAN ``identity`` and clientAuth (instead of node
names); cross-trust is with every node. Activation: ``reload`` (a signal the app handles by
reloading its files and reconnecting), ``restart``, or ``watch`` (the app polls its files, e.g.
java-driver's ``keystore-reload-interval``: wait ``watch_seconds``). A truststore change
always restarts: java-driver never reloads its truststore.

Proof, from the server side (:func:`verify`), all of:
- a fresh login with the installed files is accepted by every contact point (the node trusts
  the chain and MutualTlsAuthenticator maps the identity);
- ``system_views.clients`` on every contact point shows the app's connections only under the
  role of the new generation (``role`` with the leaf's ``{generation}``), read with
  ``verify_client`` (an identity that is not the app's, so the reader does not count itself);
  with ``pid_command``, only the connections whose ``(address, port)`` are the app process's own
  sockets count (:mod:`.sockets`), so other instances of the same app do not;
- the app's own ``health`` command exits 0.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import time

from salt.exceptions import SaltInvocationError

from . import checks, clients, cql, errors, health_check, material, sockets
from . import pem as pem_util
from .client_target import ACTIVATION_METHODS
from .client_target import load as load  # the profile's target
from .poll import poll
from .retire import retire as retire  # retire_old: drop the replaced leaf's identity

METHODS = ("auto", *ACTIVATION_METHODS)
TRUST_CHANGE_RESTARTS = True
FLEET = "clients"
ONE_PROCESS_PER_ROLE = True  # verification counts connections: instances sharing a role clash
StepFailed = errors.StepFailed

DEFAULTS = {
    "store_type": "pem",
    "owner": "root",
    "group": "root",
    "mode": "0600",
    "role": "{generation}",
    "activate": {},
    "health": [],
    "verify_client": {},
    "verify_timeout": 60,
    "backup_dir": "/var/lib/certdeploy/backups",
    "backup_keep": 5,
    "min_days_remaining": 30,
    "drill_fail_step": None,
    "retire_old": False,
}
REQUIRED = ("app", "keystore", "truststore", "identity", "contact_points")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def preflight(target, host) -> list:
    return []  # nothing about the host to check before a change


def validation(target) -> dict:
    return {"identity": target.identity, "eku": ("clientAuth",)}


def resolve_method(method: str, restart_required: bool, target=None) -> str:
    if method not in METHODS:
        raise SaltInvocationError(f"method={method!r} is not one of {METHODS}")
    if restart_required:
        return "restart"
    return (target.method if target else "restart") if method == "auto" else method


def configure(target, *, test=False) -> dict:
    """Nothing to configure: the app keeps reading the paths it always read."""
    return {"changes": [], "restart_required": False}


def activate(target, host, *, method="auto", restart_required=False) -> dict:
    chosen = resolve_method(method, restart_required, target)
    started = time.monotonic()
    if chosen == "watch":
        time.sleep(target.watch_seconds)  # the app notices the new files itself
        return {"method": chosen, "seconds": _since(started), "steps": [{"step": "watch"}]}
    argv = target.reload if chosen == "reload" else target.restart
    if not argv:
        raise StepFailed(f"{target.node}: {target.name}: no activate:{chosen} argv in pillar")
    res = host.run(list(argv), target.cwd, 120)
    if res["retcode"] != 0:
        detail = (res.get("stderr") or res.get("stdout") or "")[-300:]
        raise StepFailed(
            f"{target.node}: {target.name}: {chosen} exited {res['retcode']}: {detail}"
        )
    step = {"step": chosen, "retcode": 0}
    return {"method": chosen, "seconds": _since(started), "steps": [step]}


def _trust_context(target) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False  # node certificates name nodes, not the contact point strings
    ctx.load_verify_locations(cadata=pem_util.cert_pem(*material.current_trust(target)))
    return ctx


def _reader_context(target) -> ssl.SSLContext:
    ctx = _trust_context(target)
    ctx.load_cert_chain(target.verify_client["cert"], target.verify_client.get("key"))
    return ctx


def _app_context(target) -> ssl.SSLContext:
    ctx = _trust_context(target)
    material.load_identity(ctx, target, own=True)  # the installed files, through a 0600 temp
    return ctx


def app_roles(target):
    """A predicate: is this ``username`` one of the app's roles (any generation)?"""
    pattern = re.compile(re.escape(target.role).replace(r"\{generation\}", r"[A-Za-z0-9._-]+"))
    return lambda role: isinstance(role, str) and pattern.fullmatch(role) is not None


def _logins(target) -> dict:
    ctx, seen = _app_context(target), {}
    for host, port in target.contact_points:
        try:
            cql.query([host], ctx, "SELECT release_version FROM system.local", 10, port=port)
            seen[host] = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - the driver raises many types; all mean "no"
            seen[host] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400]}
    return seen


def _health(target, host) -> dict:
    if not target.health:
        return {"ok": True, "skipped": "no health command in pillar"}
    res = host.run(list(target.health), target.cwd, 30)
    out = (res.get("stdout") or res.get("stderr") or "").strip()[-300:]
    return {"ok": res["retcode"] == 0, "retcode": res["retcode"], "output": out}


PID_RECHECK_SECONDS = 5.0  # how long a verification trusts the pids pid_command printed


def _own_endpoints(target, host, evidence) -> set | None:
    """The ``(address, port)`` of the app process's sockets, from ``pid_command``; ``None`` (and
    a problem in ``evidence``) when the pid cannot be had. Within one verification the pids are
    asked again only when one is gone or ``PID_RECHECK_SECONDS`` have passed, not every round
    (``pid_command`` is a process of its own, and the rounds come every half second)."""
    cached, asked = evidence.get("pids"), evidence.get("_pids_at", float("-inf"))
    if cached and time.monotonic() - asked < PID_RECHECK_SECONDS:
        try:
            return sockets.endpoints(cached)
        except OSError:
            pass  # gone (a restart): ask pid_command again
    res = host.run(list(target.pid_command), target.cwd, 30)
    pids = [int(w) for w in (res.get("stdout") or "").split() if w.isdigit() and int(w) > 0]
    evidence["pids"], evidence["_pids_at"] = pids, time.monotonic()
    try:
        if res["retcode"] != 0 or not pids:
            raise OSError(f"pid_command exited {res['retcode']}, printed {res.get('stdout')!r}")
        own = sockets.endpoints(pids)
        evidence.pop("pid_error", None)  # an earlier round's (e.g. mid-restart) is over
        return own
    except OSError as exc:
        evidence["pids"] = []
        evidence["pid_error"] = f"{target.node}: {target.name}: {exc}"[:300]
        return None


def installed_evidence(target, expected: str) -> dict:
    """The start of every client-side verification: is the installed keystore ``expected``,
    and which role does its leaf's identity map to."""
    on_disk = material.on_disk(target)["keystore"] or {}
    cert = material.open_current_keystore(target)[1]
    _, generation = checks.leaf_identity(cert, target.identity)
    role = target.role_for(generation or "")
    evidence = {"expected": expected, "installed": on_disk.get("fingerprint"), "role": role}
    evidence.update(deterministic=None, problems=[])
    if evidence["installed"] != expected:
        evidence["problems"].append(f"the installed keystore is {evidence['installed']}")
    return evidence


def login_evidence(target, evidence: dict) -> None:
    """A fresh login with the installed files on every contact point; a refusal is final."""
    evidence["login"] = _logins(target)
    refused = {h: e["error"] for h, e in evidence["login"].items() if not e["ok"]}
    if refused:
        evidence["deterministic"] = f"a node refuses the login with the installed files: {refused}"
        evidence["problems"].append(evidence["deterministic"])


def verify(target, host, expected: str, *, known=(), method=None, timeout=None, since=None) -> dict:
    """The installed files are ``expected``, every node accepts a login with them, and the
    server sees the app only under the new generation's role (see the module docstring)."""
    timeout = float(timeout or target.verify_timeout)
    evidence = installed_evidence(target, expected)
    role = evidence["role"]
    login_evidence(target, evidence)
    if not evidence["problems"]:
        among = app_roles(target)

        def seen(readers):
            rows = readers.read()
            if not target.pid_command:
                return rows
            own = _own_endpoints(target, host, evidence)
            return clients.scoped(rows, own) if own is not None else rows

        def moved(value):
            ok, _ = clients.only_under(value, role, among)
            return ok

        with clients.Readers(target.contact_points, _reader_context(target)) as readers:
            polled = poll(
                lambda: seen(readers), timeout=timeout, done=moved, interval=0.5, max_interval=2
            )
        ok, problems = clients.only_under(polled.value or {}, role, among)
        evidence["connections"] = clients.roles(polled.value or {}, among)
        evidence["seconds_to_new_role"] = polled.seconds if ok else None
        evidence["problems"] += problems
        if evidence.get("pid_error"):
            evidence["problems"].append(
                f"{evidence['pid_error']}: the app's own connections cannot be told from other "
                "instances'. Fix: pid_command must print the app's pid, and the minion must be "
                "allowed to read /proc/<pid>/fd"
            )
    evidence.pop("_pids_at", None)
    evidence["health"] = _health(target, host)
    if not evidence["health"]["ok"]:
        evidence["problems"].append(f"health check failed: {evidence['health']}")
    evidence["ok"] = not evidence["problems"]
    return evidence


def is_serving(target) -> bool:
    if not target.health:
        return True
    try:
        res = subprocess.run(list(target.health), cwd=target.cwd, capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0


def served(target) -> dict:
    """What ``status`` shows: the identity the installed leaf carries."""
    cert = material.open_current_keystore(target)[1]
    uri, generation = checks.leaf_identity(cert, target.identity)
    return {"identity": uri, "role": target.role_for(generation or "") if uri else None}


def explain(evidence: dict) -> str:
    return "; ".join(evidence.get("problems") or ["unknown"])


def health(target, *, expected=None, warn_days=30.0, timeout=3.0) -> dict:
    """The beacon's question for an app: are the installed files what certdeploy deployed,
    does the app answer its health check, and for how long is the leaf valid?"""
    keystore = material.on_disk(target).get("keystore") or {}
    installed = keystore.get("fingerprint")
    expected = expected or installed
    serving = is_serving(target)
    not_after = keystore.get("not_after")
    left = round(health_check.days_left(not_after), 3) if not_after else None
    return {
        "node": target.node,
        "target": target.name,
        "expected": expected,
        "served": {"installed": installed, **served(target)},
        "match": expected is not None and serving and installed == expected,
        "serving": serving,
        "not_after": not_after,
        "days_left": left,
        "expiring": left is not None and left < warn_days,
    }
