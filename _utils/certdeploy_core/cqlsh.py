"""The ``cqlsh`` target profile: cqlsh's client certificate (see :mod:`.cqlsh_target`).

cqlsh reads its cqlshrc and files on every run, so deploying is the PEM files plus the
sections of the cqlshrc certdeploy owns, and there is nothing to activate (method ``none``):

- ``[connection] ssl = true``;
- ``[ssl] certfile`` (the truststore), ``validate = true``, ``usercert`` and ``userkey`` (the
  keystore: chain and key in one 0600 file);
- ``[auth_provider]``: the driver's ``SaslAuthProvider`` with mechanism ``EXTERNAL`` (an empty
  initial response: the certificate is the credential, what ``MutualTlsAuthenticator`` wants).
  No module of certdeploy's is needed where cqlsh runs, only cassandra-driver and pure-sasl,
  which cqlsh depends on.

Other sections and keys are kept (comments are not: cqlshrc is rewritten by configparser).

Proof (:func:`verify`), all of: the installed keystore is the expected one and the cqlshrc names
the installed files; a fresh login with them is accepted by every contact point; and a real
``cqlsh --ssl -e`` against every contact point succeeds, its own connection listed by the
server in ``system_views.clients`` under the new generation's role.
"""

from __future__ import annotations

import configparser
import io
import os
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import client, files
from .cqlsh_target import load as load  # the profile's target

METHODS = ("auto", "none")
TRUST_CHANGE_RESTARTS = False  # cqlsh reads its truststore on every run too
FLEET = "clients"
ONE_PROCESS_PER_ROLE = False  # verification needs one row under the role, not all of them
DEFAULTS = {**client.DEFAULTS, "cqlsh": ["cqlsh"], "cqlshrc": None}
REQUIRED = (*client.REQUIRED, "cqlshrc")
QUERY = "SELECT username FROM system_views.clients"
HEADER = "; [connection] ssl, [ssl] and [auth_provider] are managed by certdeploy\n"

retire = client.retire
preflight = client.preflight
validation = client.validation
served = client.served
explain = client.explain
health = client.health


def desired(target) -> dict:
    return {
        "connection": {"ssl": "true"},
        "ssl": {
            "certfile": target.truststore,
            "validate": "true",
            "usercert": target.keystore,
            "userkey": target.keystore,
        },
        "auth_provider": {
            "module": "cassandra.auth",
            "classname": "SaslAuthProvider",
            "service": "cassandra",
            "mechanism": "EXTERNAL",
        },
    }


def render(text: str, want: dict, where: str) -> dict:
    """What enforcing ``want`` on a cqlshrc's ``text`` changes: ``{"changes": [{"section",
    "key", "old", "new"}], "new_text"}``; no difference -> ``new_text`` is ``text``."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise CommandExecutionError(
            f"{where}: not a valid cqlshrc: {exc}. Fix: correct the file (or remove it)"
        ) from None
    changes = []
    for section, keys in want.items():
        for key, value in keys.items():
            old = parser.get(section, key, fallback=None)
            if old != value:
                changes.append({"section": section, "key": key, "old": old, "new": value})
    if not changes:
        return {"changes": [], "new_text": text}
    for change in changes:
        if not parser.has_section(change["section"]):
            parser.add_section(change["section"])
        parser.set(change["section"], change["key"], change["new"])
    out = io.StringIO()
    parser.write(out)
    return {"changes": changes, "new_text": HEADER + out.getvalue()}


def _current(target) -> str:
    try:
        with open(target.cqlshrc, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandExecutionError(
            f"{target.node}: {target.cqlshrc}: cannot read: {exc}. Fix: check the path in "
            f"certdeploy:targets:{target.name}:cqlshrc and its permissions"
        ) from None


def configure(target, *, test=False) -> dict:
    """Make the cqlshrc's managed sections name the installed files (0600, target's owner)."""
    where = f"{target.node}: {target.cqlshrc}"
    result = render(_current(target), desired(target), where)
    written = False
    if result["changes"] and not test:
        os.makedirs(os.path.dirname(target.cqlshrc), mode=0o700, exist_ok=True)
        data = result["new_text"].encode()
        files.atomic_write(
            target.cqlshrc, data, mode=target.mode, owner=target.owner, group=target.group
        )
        written = True
    return {"changes": result["changes"], "restart_required": False, "written": written}


def resolve_method(method: str, restart_required: bool, target=None) -> str:
    if method not in METHODS:
        raise SaltInvocationError(
            f"method={method!r}: a cqlsh target has nothing to activate (cqlsh reads its files "
            "on every run). Fix: use method=auto"
        )
    return "none"


def activate(target, host, *, method="auto", restart_required=False) -> dict:
    resolve_method(method, restart_required, target)
    step = {"step": "none", "why": "cqlsh reads its cqlshrc and files on every run"}
    return {"method": "none", "seconds": 0.0, "steps": [step]}


def is_serving(target) -> bool:
    return True  # no process: nothing to restart on a rollback


def roles_in(output: str) -> list[str]:
    """The ``username`` column of cqlsh's table output."""
    lines = [line.strip() for line in (output or "").splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line and set(line) <= {"-", "+"})
    except StopIteration:
        return []
    rows = []
    for line in lines[start + 1 :]:
        if not line or line.startswith("("):
            break
        rows.append(line)
    return rows


def _run(target, host, address: str, port: int, timeout: float) -> dict:
    argv = [*target.cqlsh, "--cqlshrc", target.cqlshrc, "--ssl", address, str(port)]
    argv += ["--connect-timeout", "10", "-e", QUERY]
    started = time.monotonic()
    res = host.run(argv, None, timeout)
    out = (res.get("stdout") or "") + (res.get("stderr") or "")
    seen = roles_in(res.get("stdout") or "")
    return {
        "retcode": res["retcode"],
        "roles": sorted(set(seen)),
        "seconds": round(time.monotonic() - started, 3),
        "output": out.strip()[-300:] if res["retcode"] else None,
    }


def verify(target, host, expected: str, *, known=(), method=None, timeout=None, since=None) -> dict:
    """The installed files are ``expected``, the cqlshrc names them, every node accepts a login
    with them, and a real cqlsh is listed by every node under the new generation's role."""
    timeout = float(timeout or target.verify_timeout)
    evidence = client.installed_evidence(target, expected)
    role = evidence["role"]
    drift = render(_current(target), desired(target), target.cqlshrc)["changes"]
    if drift:
        keys = ", ".join(f"[{c['section']}] {c['key']}" for c in drift)
        evidence["problems"].append(f"{target.cqlshrc} does not name the installed files: {keys}")
    client.login_evidence(target, evidence)
    evidence["cqlsh"] = {}
    if not evidence["problems"]:
        for address, port in target.contact_points:
            run = _run(target, host, address, port, timeout)
            evidence["cqlsh"][address] = run
            if run["retcode"] != 0:
                evidence["problems"].append(
                    f"cqlsh against {address}:{port} exited {run['retcode']}: {run['output']}"
                )
            elif role not in run["roles"]:
                evidence["problems"].append(
                    f"{address} lists no connection under {role} while cqlsh was connected "
                    f"(roles seen: {run['roles']})"
                )
    evidence["ok"] = not evidence["problems"]
    return evidence
