"""Target profiles: *what* is deployed on a target and how it is activated and proven. The
node steps (``node``) and the rollout engine call a profile only through these names, so a
new kind of target is one new module here plus its pillar documentation:

``DEFAULTS`` and ``REQUIRED``
    pillar keys of ``certdeploy:targets:<name>`` (defaults; the keys that must be given)
``load(name, profile, data, node, bad)``
    the target object from merged pillar: its ``names()`` (what the leaf must cover),
    ``managed_files()`` (what is backed up and restored), stores, owner and mode
``METHODS``, ``resolve_method(method, restart_required)``
    the activation methods and how ``auto`` chooses
``configure(target, test)``
    make the target's own configuration match pillar (``changes``, ``restart_required``)
``activate(target, host, method, restart_required)``
    make the installed material live
``verify(target, host, expected, known, method, timeout)``
    proof from outside the process, with ``ok`` and ``deterministic``
``FLEET``
    how a rollout batches them: ``"cluster"`` (replicas: topology-aware, health gate) or
    ``"clients"`` (canary then ``max_parallel``; each target proves itself)
``ONE_PROCESS_PER_ROLE``
    whether instances sharing a role need ``pid_command`` to tell their connections apart
``retire(target, host, backup_id)``
    after a verified deployment: retire what it replaced (``retire_old``), with proof
``preflight(target, host)``
    findings (``checks.finding``) about the place the target lives, before any change: the
    ``container`` profile inspects the container's mounts
``is_serving(target)``
    whether the target serves at all (a rollback of a stopped target restarts it)

*How the master reaches a target* is the other seam: :mod:`.transport` (``MinionTransport``
today; ``Routed`` puts several behind the one ``rollout.Master`` the engine sees).
"""

from __future__ import annotations

from salt.exceptions import SaltInvocationError

from . import cassandra, client, container, cqlsh

PROFILES = {"cassandra": cassandra, "client": client, "cqlsh": cqlsh, "container": container}
HOOKS = (
    "DEFAULTS",
    "REQUIRED",
    "load",
    "METHODS",
    "TRUST_CHANGE_RESTARTS",
    "FLEET",
    "ONE_PROCESS_PER_ROLE",
    "validation",
    "resolve_method",
    "configure",
    "activate",
    "verify",
    "is_serving",
    "served",
    "explain",
    "health",
    "retire",
    "preflight",
)


def get(target_or_name):
    """The profile module of a target (or of a profile name)."""
    name = getattr(target_or_name, "profile", target_or_name)
    try:
        return PROFILES[name]
    except KeyError:
        raise SaltInvocationError(
            f"profile: {name!r} is not a certdeploy profile. Fix: use one of {sorted(PROFILES)}"
        ) from None


def trait(item, attr: str):
    """A fleet-level constant (``FLEET``, ``ONE_PROCESS_PER_ROLE``) of a target, a ``describe``
    entry or a profile name: a ``container`` target has those of the profile it ``runs``."""
    if isinstance(item, dict):
        name, runs = item.get("profile", "cassandra"), item.get("runs")
    else:
        name, runs = getattr(item, "profile", item), getattr(item, "runs", None)
    return getattr(get(runs if name == "container" and runs else name), attr)
