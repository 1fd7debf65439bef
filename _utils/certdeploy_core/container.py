"""The ``container`` target profile: a Cassandra node or a client application in a container
(see :mod:`.container_target`). certdeploy writes the files into the host directory the
container bind-mounts, owned by the image's uid and gid, and drives the container through the
engine's CLI (``podman``, ``docker``): no engine API, no new dependency.

Before any change (:func:`preflight`) the container's mounts are inspected: a key or store that
is a *single-file* bind mount is refused (an atomic replace on the host makes a new inode the
container never sees; the same trap as Kubernetes ``subPath``), and so is a ``container_dir``
that is not the bind-mounted ``host_dir``.

Activation: ``exec`` (an argv run inside the container; for Cassandra ``nodetool reloadssl``),
``signal`` (``<engine> kill --signal HUP``) or ``restart`` (``<engine> restart -t <grace>``;
for Cassandra a drain, ``stop -t <grace>`` and ``start``). Proof is the profile the container
runs, from the host: for a node the fingerprint served on its published 9042 and 7000, CQL
over mTLS and a ring of UN nodes; for an app the server's view of its connections.
"""

from __future__ import annotations

import json
import os
import posixpath
import time

from salt.exceptions import SaltInvocationError

from . import cassandra, checks, errors
from .container_target import ACTIVATIONS, RUNS
from .container_target import load as load  # the profile's target

METHODS = ("auto", *ACTIVATIONS)
TRUST_CHANGE_RESTARTS = False  # the signal or exec is expected to reload both stores
FLEET = None  # per target: that of the profile it runs (``profiles.trait``)
ONE_PROCESS_PER_ROLE = None  # likewise
StepFailed = errors.StepFailed
DEFAULTS = {"mode": "0600"}
REQUIRED = ("runs", "engine", "container", "host_dir", "container_dir", "keystore", "truststore")
INNER_METHOD = {"exec": "reload", "signal": "reload", "restart": "restart"}


def _runs(target):
    return RUNS[target.runs]


def validation(target) -> dict:
    return _runs(target).validation(target.inner)


def resolve_method(method: str, restart_required: bool, target=None) -> str:
    if method not in METHODS:
        raise SaltInvocationError(f"method={method!r} is not one of {METHODS}")
    if restart_required:
        return "restart"
    chosen = (target.method if target else "restart") if method == "auto" else method
    if target is not None and target.runs == "cassandra" and chosen == "signal":
        raise SaltInvocationError(
            f"{target.node}: {target.name}: Cassandra does not reload on a signal. "
            "Fix: use method=exec (nodetool reloadssl in the container) or restart"
        )
    return chosen


def configure(target, *, test=False) -> dict:
    """A node's yaml (its host path) names the stores by their paths inside the container."""
    return _runs(target).configure(target.inner, test=test)


def _run(target, host, argv, what: str, timeout=120) -> dict:
    res = host.run(list(argv), None, timeout)
    if res["retcode"] != 0:
        detail = (res.get("stderr") or res.get("stdout") or "")[-300:].strip()
        raise StepFailed(
            f"{target.node}: {target.name}: {what} in container {target.container} exited "
            f"{res['retcode']}: {detail}"
        )
    return {"step": what, "retcode": 0}


def activate(target, host, *, method="auto", restart_required=False) -> dict:
    chosen = resolve_method(method, restart_required, target)
    started = time.monotonic()
    if target.runs == "cassandra" and chosen == "restart":
        done = cassandra.activate(target.inner, host, method="restart")
        return {**done, "method": chosen}
    if chosen == "exec":
        step = _run(
            target, host, target.engine_argv("exec", target.container, *target.exec), "exec"
        )
    elif chosen == "signal":
        step = _run(target, host, target.inner.reload, f"signal {target.signal}")
    else:
        step = _run(
            target, host, target.inner.restart, "restart", timeout=target.restart_grace + 120
        )
    return {"method": chosen, "seconds": round(time.monotonic() - started, 3), "steps": [step]}


def verify(target, host, expected: str, *, known=(), method=None, timeout=None, since=None) -> dict:
    """The proof of the profile the container runs, taken from the host."""
    inner_method = INNER_METHOD.get(method, method)
    evidence = _runs(target).verify(
        target.inner,
        host,
        expected,
        known=known,
        method=inner_method,
        timeout=timeout,
        since=since,
    )
    return {**evidence, "container": target.container}


def is_serving(target) -> bool:
    return _runs(target).is_serving(target.inner)


def served(target) -> dict:
    return {**_runs(target).served(target.inner), "container": target.container}


def explain(evidence: dict) -> str:
    if "problems" in evidence:  # an app's evidence
        return RUNS["client"].explain(evidence)
    return RUNS["cassandra"].explain(evidence)


def health(target, *, expected=None, warn_days=30.0, timeout=3.0) -> dict:
    return _runs(target).health(
        target.inner, expected=expected, warn_days=warn_days, timeout=timeout
    )


def retire(target, host, backup_id) -> dict:
    return _runs(target).retire(target.inner, host, backup_id)


# ----------------------------------------------------------------------------- preflight


def preflight(target, host) -> list[dict]:
    """Inspect the container (``<engine> inspect``) and check its mounts: see
    :func:`mount_findings`. Changes nothing."""
    argv = target.engine_argv("inspect", "--format", "{{json .State}}\t{{json .Mounts}}")
    res = host.run([*argv, target.container], None, 60)
    if res["retcode"] != 0:
        detail = (res.get("stderr") or res.get("stdout") or "").strip()[-300:]
        return [
            checks.finding(
                "container",
                False,
                f"{target.node}: {' '.join(target.engine)} inspect {target.container} exited "
                f"{res['retcode']}: {detail}",
                f"check certdeploy:targets:{target.name}:container and :engine",
            )
        ]
    state, mounts = (json.loads(part) for part in res["stdout"].strip().split("\t", 1))
    return mount_findings(target, state or {}, mounts or [], realpath=os.path.realpath)


def mount_findings(target, state: dict, mounts: list[dict], realpath=posixpath.normpath) -> list:
    """``container_running``; ``single_file_mounts``: no managed file is bind-mounted on its
    own (first: it is the error a deploy names); ``container_dir_mounted``: ``container_dir``
    is (inside) a bind mount of ``host_dir``."""
    name, where = target.container, f"{target.node}: container {target.container}"
    found = [
        checks.finding(
            "container_running",
            bool(state.get("Running")),
            f"{where} is {state.get('Status') or 'not running'}",
            f"start container {name}: certdeploy activates a running container",
        )
    ]
    fix = f"run it with -v {target.host_dir}:{target.container_dir}:ro (a directory)"
    singles = _single_files(target, mounts, realpath)
    found.append(
        checks.finding(
            "single_file_mounts",
            not singles,
            f"{where}: "
            + (
                "; ".join(singles) + ": a file replaced atomically on the host is a new inode, "
                "which a single-file bind mount never shows (the container keeps the old "
                "certificate; Kubernetes subPath has the same trap)"
                if singles
                else "no managed file is bind-mounted on its own"
            ),
            f"drop those mounts and bind-mount the directory: {fix}",
        )
    )
    host_dir = realpath(target.host_dir)
    covering = [
        m
        for m in mounts
        if _under(target.container_dir, posixpath.normpath(m.get("Destination") or "/"))
    ]
    best = max(covering, key=lambda m: len(m.get("Destination") or ""), default=None)
    if best is None or best.get("Type") not in ("bind", None):
        found.append(
            checks.finding(
                "container_dir_mounted",
                False,
                f"{where}: {target.container_dir} is not bind-mounted, so files written to "
                f"{target.host_dir} never reach it",
                fix,
            )
        )
    else:
        dst = posixpath.normpath(best["Destination"])
        source = posixpath.normpath(best["Source"] + target.container_dir[len(dst) :])
        found.append(
            checks.finding(
                "container_dir_mounted",
                source == host_dir,
                f"{where} sees {source} at {target.container_dir}"
                + ("" if source == host_dir else f", not host_dir {target.host_dir}"),
                f"set host_dir to {source}, or {fix}",
            )
        )
    return found


def _under(path: str, top: str) -> bool:
    path = posixpath.normpath(path)
    return path == top or path.startswith(top.rstrip("/") + "/")


def _single_files(target, mounts, realpath) -> list[str]:
    inside = {target.in_container(label): label for label in target.files}
    on_host = {realpath(target.on_host(label)): label for label in target.files}
    config = getattr(target.inner, "config_file", None)
    if config:
        on_host[realpath(config)] = "config_file"
    hits = []
    for m in mounts:
        src = realpath(m.get("Source") or "/")
        dst = posixpath.normpath(m.get("Destination") or "/")
        label = inside.get(dst) or on_host.get(src)
        if label:
            hits.append(f"{label} is a single-file bind mount ({m.get('Source')} -> {dst})")
    return hits
