"""The profile seam: every registered profile provides every hook the node steps call."""

from __future__ import annotations

import pytest
from certdeploy_core import profiles
from salt.exceptions import SaltInvocationError


@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_every_profile_provides_every_hook(name):
    profile = profiles.get(name)
    missing = [hook for hook in profiles.HOOKS if not hasattr(profile, hook)]
    assert missing == [], (name, missing)
    assert "auto" in profile.METHODS and set(profile.REQUIRED) >= {"keystore", "truststore"}
    for hook in profiles.HOOKS:
        if hook.islower():
            assert callable(getattr(profile, hook)), (name, hook)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(
        SaltInvocationError, match=r"'kafka' is not a certdeploy profile.*cassandra"
    ):
        profiles.get("kafka")
