"""The minion -> master contract read into types."""

from __future__ import annotations

import pytest
from certdeploy_core import result


def deploy_return(outcome="deployed", **extra):
    return {
        "node": "cass2",
        "outcome": outcome,
        "old_fingerprint": "a" * 64,
        "new_fingerprint": "b" * 64,
        "backup": {"backup_id": "20261202T000000Z"},
        "activation": {"method": "reload"},
        "verification": {
            "client": {"served": "b" * 64},
            "internode": {"served": "b" * 64},
            "cql": {"ok": True},
            "ring": {"ok": True, "nodes": {"127.0.0.2": "UN"}},
        },
        "timings": {"validate": 0.1, "backup": 0.1, "activate": 1, "total": 2.5},
        **extra,
    }


def test_round_trip_of_a_deployment():
    res = result.DeployResult.from_dict(deploy_return())
    assert res.deployed and res.method == "reload" and res.backup_id == "20261202T000000Z"
    assert res.evidence.to_dict() == {
        "client": "b" * 64,
        "internode": "b" * 64,
        "cql": True,
        "ring": {"127.0.0.2": "UN"},
    }
    assert res.timings.total == 2.5 and res.timings.completed() == [
        "validate",
        "backup",
        "activate",
    ]
    back = res.to_dict()
    assert back["evidence"] == res.evidence.to_dict() and back["timings"]["total"] == 2.5
    assert back["outcome"] == "deployed" and back["restored"] == []


def test_rolled_back_carries_what_was_restored():
    rollback = {"verified": False, "restored": ["/x/keystore.p12"], "error": None}
    res = result.DeployResult.from_dict(deploy_return("rollback_failed", rollback=rollback))
    assert not res.deployed and res.restored == ("/x/keystore.p12",)
    assert res.rollback_verified is False


@pytest.mark.parametrize(
    "answer",
    ["Minion did not return. [No response]", None, {"outcome": "exploded"}, {"node": "x"}],
)
def test_anything_else_is_a_bad_answer(answer):
    with pytest.raises(result.BadAnswer, match="not a deployment result"):
        result.DeployResult.from_dict(answer)
