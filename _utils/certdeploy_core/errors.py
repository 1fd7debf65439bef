"""certdeploy's one error family. Each class is also the Salt exception its meaning maps to,
so Salt's CLI prints it as a clean error (no traceback) and callers may catch either name:

- :class:`BadInput` (a ``SaltInvocationError``): the input is wrong; nothing was changed.
  Message shape: ``<node>: <field>: <problem>. Fix: <fix>``.
- :class:`StepFailed` (a ``CommandExecutionError``): a step after the backup failed; ``deploy``
  rolls back.
- :class:`NotServing` (a ``StepFailed``): the node did not come back serving in time.
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError, SaltException, SaltInvocationError


class CertdeployError(SaltException):
    """Base of every error certdeploy raises on purpose."""


class BadInput(CertdeployError, SaltInvocationError):
    """Refused input: names the node, the field and the fix."""


class StepFailed(CertdeployError, CommandExecutionError):
    """A step after the backup failed."""


class NotServing(StepFailed):
    """The node is not serving (after a start, or within the wait)."""


def bad_input(node: str, field: str, problem: str, fix: str) -> BadInput:
    """The one shape of a refusal: ``<node>: <field>: <problem>. Fix: <fix>``."""
    return BadInput(f"{node}: {field}: {problem}. Fix: {fix}")
