"""The minion -> master contract: what ``certdeploy.deploy`` returns, read once into types.

The minion returns plain dicts (Salt serialises them); the master, the state and the report
read them back through :meth:`DeployResult.from_dict`, which says clearly what is wrong with
an answer that is not a deployment result, instead of each caller guarding ``.get`` chains.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .job import NodeState

STEPS = ("check", "validate", "backup", "install", "configure", "activate", "verify", "rollback")
REFUSED = "refused"  # a plan node did not serve before the deploy began: nothing changed
OUTCOMES = (
    NodeState.DEPLOYED.value,
    NodeState.ROLLED_BACK.value,
    NodeState.ROLLBACK_FAILED.value,
    REFUSED,
)


class BadAnswer(ValueError):
    """A minion's answer is not a deployment result (a Salt error string, a traceback...)."""


@dataclass(frozen=True)
class Evidence:
    """What verification saw: the fingerprints served on new connections, CQL, the ring."""

    client: str | None = None
    internode: str | None = None
    cql: bool | None = None
    ring: dict | None = None
    role: str | None = None  # client targets: the role every node sees the app under
    connections: dict | None = None  # client targets: {node: {role: connections}}

    @classmethod
    def from_verification(cls, verification) -> Evidence | None:
        if not isinstance(verification, dict):
            return None
        return cls(
            client=(verification.get("client") or {}).get("served"),
            internode=(verification.get("internode") or {}).get("served"),
            cql=(verification.get("cql") or {}).get("ok"),
            ring=(verification.get("ring") or {}).get("nodes"),
            role=verification.get("role"),
            connections=verification.get("connections"),
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("role", "connections"):  # a node's evidence keeps its own four keys
            if data[key] is None:
                data.pop(key)
        return data


@dataclass(frozen=True)
class Timings:
    """Seconds per step that completed (``total`` for the whole call)."""

    steps: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data) -> Timings:
        data = data if isinstance(data, dict) else {}
        return cls({k: float(v) for k, v in data.items() if isinstance(v, (int, float))})

    @property
    def total(self) -> float | None:
        return self.steps.get("total")

    def completed(self) -> list[str]:
        return [s for s in STEPS if s in self.steps]

    def to_dict(self) -> dict:
        return dict(self.steps)


@dataclass(frozen=True)
class DeployResult:
    outcome: str
    node: str | None = None
    old_fingerprint: str | None = None
    new_fingerprint: str | None = None
    backup_id: str | None = None
    method: str | None = None
    failed_step: str | None = None
    error: str | None = None
    evidence: Evidence | None = None
    timings: Timings = field(default_factory=Timings)
    rollback_verified: bool | None = None
    restored: tuple = ()
    rollback_error: str | None = None
    down: dict | None = None  # refused: {node: why} as the deploying node saw it

    @classmethod
    def from_dict(cls, ret) -> DeployResult:
        if not isinstance(ret, dict) or ret.get("outcome") not in OUTCOMES:
            shown = ret if isinstance(ret, str) else repr(ret)[:300]
            raise BadAnswer(f"not a deployment result: {shown}")
        rollback = ret.get("rollback") if isinstance(ret.get("rollback"), dict) else {}
        return cls(
            outcome=ret["outcome"],
            node=ret.get("node"),
            old_fingerprint=ret.get("old_fingerprint"),
            new_fingerprint=ret.get("new_fingerprint"),
            backup_id=(ret.get("backup") or {}).get("backup_id"),
            method=(ret.get("activation") or {}).get("method"),
            failed_step=ret.get("failed_step"),
            error=ret.get("error"),
            evidence=Evidence.from_verification(ret.get("verification")),
            timings=Timings.from_dict(ret.get("timings")),
            rollback_verified=rollback.get("verified") if rollback else None,
            restored=tuple(rollback.get("restored") or ()),
            rollback_error=rollback.get("error"),
            down=ret.get("down") if isinstance(ret.get("down"), dict) else None,
        )

    @property
    def deployed(self) -> bool:
        return self.outcome == NodeState.DEPLOYED.value

    def to_dict(self) -> dict:
        data = asdict(self)
        data["evidence"] = self.evidence.to_dict() if self.evidence else None
        data["timings"] = self.timings.to_dict()
        data["restored"] = list(self.restored)
        return data


def node_event(result: dict) -> tuple[str, dict]:
    """``(outcome, data)`` of the ``certdeploy/node/<id>/<outcome>`` event a deployment's
    return makes: fired by the minion, or by the master for an agentless target. Public
    facts only."""
    outcome = {"deployed": "deployed", "rolled_back": "rolled_back", REFUSED: REFUSED}.get(
        result.get("outcome"), "failed"
    )
    keys = ("outcome", "old_fingerprint", "new_fingerprint", "failed_step", "error", "timings")
    data = {k: result.get(k) for k in keys}
    data["backup_id"] = (result.get("backup") or {}).get("backup_id")
    return outcome, data
