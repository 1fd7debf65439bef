"""Targets: what certdeploy manages on one minion, read from pillar.

A *target* is one consumer of a certificate on a minion. Pillar lists them under
``certdeploy:targets:<name>``; each names a *profile* (``certdeploy_core.profiles``) that fixes
how its material is stored, activated and verified, and builds the target itself (its
``load`` hook; the cassandra profile's is :mod:`.cassandra_target`).
"""

from __future__ import annotations

from salt.exceptions import SaltInvocationError

from . import profiles


def plain(value):
    """Copy pillar data into plain dicts/lists: Salt 3008 wraps pillar in masking containers
    whose repr (and so our returns) would read ``**********``."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def target_names(pillar: dict) -> list[str]:
    return sorted((pillar.get("certdeploy") or {}).get("targets") or {})


def load_target(pillar: dict, name: str = "cassandra", minion_id: str = ""):
    """Build the target ``certdeploy:targets:<name>`` describes, through its profile's
    ``load``; raise ``SaltInvocationError`` naming the minion, key and fix on bad config."""
    where = f"{minion_id or 'this minion'}"
    targets = plain((pillar.get("certdeploy") or {}).get("targets") or {})
    if name not in targets:
        raise SaltInvocationError(
            f"{where}: pillar certdeploy:targets:{name} is missing. Fix: give this minion a "
            f"target (see pillar/certdeploy_example.sls); known targets: {sorted(targets)}"
        )
    raw = targets[name]
    profile = raw.get("profile", "cassandra")
    if profile not in profiles.PROFILES:
        raise SaltInvocationError(
            f"{where}: certdeploy:targets:{name}:profile={profile!r} is unknown. "
            f"Fix: use one of {sorted(profiles.PROFILES)}"
        )
    data = {**profiles.get(profile).DEFAULTS, **raw}
    node = data.get("node") or minion_id
    data["node"] = node

    def bad(key, problem, fix):
        return SaltInvocationError(
            f"{node}: certdeploy:targets:{name}:{key}: {problem}. Fix: {fix}"
        )

    for key in profiles.get(profile).REQUIRED:
        if not data.get(key):
            raise bad(key, "missing", "set it in this minion's pillar")
    return profiles.get(profile).load(name, profile, data, node, bad)
