"""certdeploy's error family maps onto Salt's exceptions, so the CLI prints them cleanly."""

from __future__ import annotations

import pytest
from certdeploy_core import errors, node, pem
from salt.exceptions import CommandExecutionError, SaltException, SaltInvocationError


def test_the_family_is_salts():
    assert issubclass(errors.BadInput, SaltInvocationError)
    assert issubclass(errors.StepFailed, CommandExecutionError)
    assert issubclass(errors.NotServing, errors.StepFailed)
    for cls in (errors.BadInput, errors.StepFailed, errors.NotServing):
        assert issubclass(cls, errors.CertdeployError) and issubclass(cls, SaltException)
    assert node.StepFailed is errors.StepFailed


def test_bad_input_shape():
    with pytest.raises(errors.BadInput, match=r"^cass2: cert: is empty\. Fix: paste it$"):
        raise pem.bad_input("cass2", "cert", "is empty", "paste it")
