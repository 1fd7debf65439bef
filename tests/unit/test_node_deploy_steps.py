"""``node.deploy``'s orchestration with a fake ``Host`` and a fake profile registered through
the profile seam: real files, real validation, real backups and restores, while activation
and verification are scripted. (That the cassandra profile really activates and verifies is
the rig's job: tests/integration/test_node_deploy.py.)"""

from __future__ import annotations

import types

import pytest
from certdeploy_core import backup as backups
from certdeploy_core import cassandra, errors, material, node, profiles
from certdeploy_core import target as certdeploy_target
from salt.exceptions import SaltInvocationError

from sandbox import pki
from tests.unit.test_health_check import closed_port, install


class FakeProfile:
    """Serves whatever keystore was on disk at the last activation; ``fail`` scripts the
    verification of a fingerprint (or the activation) to fail."""

    def __init__(self):
        self.live = None
        self.calls = []
        self.fail_verify = set()
        self.fail_activate = False

    def module(self):
        return types.SimpleNamespace(
            DEFAULTS=cassandra.DEFAULTS,
            REQUIRED=cassandra.REQUIRED,
            load=cassandra.load,
            METHODS=cassandra.METHODS,
            TRUST_CHANGE_RESTARTS=False,
            validation=cassandra.validation,
            resolve_method=cassandra.resolve_method,
            served=lambda target: {},
            explain=cassandra.explain,
            health=cassandra.health,
            configure=lambda target, test=False: {"changes": [], "restart_required": False},
            activate=self.activate,
            verify=self.verify,
            is_serving=lambda target: True,
            retire=cassandra.retire,
            preflight=cassandra.preflight,
            FLEET=cassandra.FLEET,
            ONE_PROCESS_PER_ROLE=False,
        )

    def activate(self, target, host, *, method="auto", restart_required=False):
        self.calls.append(("activate", method))
        if self.fail_activate:
            self.fail_activate = False  # only the first activation fails
            raise errors.StepFailed(f"{target.node}: reload failed (scripted)")
        self.live = material.on_disk(target)["keystore"]["fingerprint"]
        return {"method": "reload", "seconds": 0.0, "steps": []}

    def verify(self, target, host, expected, *, known=(), method=None, timeout=None, since=None):
        self.calls.append(("verify", expected, tuple(known), method))
        ok = self.live == expected and expected not in self.fail_verify
        return {
            "expected": expected,
            "client": {"served": self.live, "matched": ok},
            "internode": {"served": self.live, "matched": ok},
            "cql": {"ok": ok},
            "ring": {"ok": True, "nodes": {}},
            "deterministic": None if ok else "scripted failure",
            "ok": ok,
        }


@pytest.fixture
def fake(monkeypatch):
    profile = FakeProfile()
    monkeypatch.setitem(profiles.PROFILES, "fake", profile.module())
    return profile


@pytest.fixture
def setup(tmp_path, root, ca, fake):
    old = ca.issue("cass1", ips=("127.0.0.1",), dns=("cass1",), key_type="ec256")
    _, pillar = install(tmp_path, old, root, 1, profile="fake", hostname="cass1")
    target = certdeploy_target.load_target(pillar, "cassandra", "cass1")
    host = node.Host(run=None, service=None, cachedir=str(tmp_path / "cache"))
    fake.live = old.fingerprint
    new = ca.issue("cass1", ips=("127.0.0.1",), dns=("cass1",), key_type="ec256")
    bundle = material.read_bundle(target, pki.bundle_dict(new, root.cert))
    return target, host, old, new, bundle


def on_disk(target):
    return material.on_disk(target)["keystore"]["fingerprint"]


def test_deploy_installs_activates_and_verifies(setup, fake):
    target, host, old, new, bundle = setup
    result = node.deploy(target, host, bundle, skip_cross_trust=True)
    assert result["outcome"] == "deployed", result
    assert on_disk(target) == new.fingerprint
    assert fake.calls == [
        ("activate", "auto"),
        ("verify", new.fingerprint, (old.fingerprint,), "reload"),
    ]
    assert set(result["timings"]) >= {"validate", "backup", "install", "activate", "verify"}
    assert node.last_record(target, host)["expected_fingerprint"] == new.fingerprint


def test_failed_verification_restores_reactivates_and_proves_the_old(setup, fake):
    target, host, old, new, bundle = setup
    fake.fail_verify.add(new.fingerprint)
    result = node.deploy(target, host, bundle, skip_cross_trust=True)
    assert result["outcome"] == "rolled_back" and result["failed_step"] == "verify"
    assert "scripted failure" in result["error"]
    assert on_disk(target) == old.fingerprint and fake.live == old.fingerprint
    assert fake.calls[-1] == ("verify", old.fingerprint, (new.fingerprint,), "reload")
    assert result["rollback"]["verified"] and result["rollback"]["expected"] == old.fingerprint


def test_failed_activation_rolls_back(setup, fake):
    target, host, old, new, bundle = setup
    fake.fail_activate = True
    result = node.deploy(target, host, bundle, skip_cross_trust=True)
    assert result["outcome"] == "rolled_back" and result["failed_step"] == "activate"
    assert on_disk(target) == old.fingerprint
    assert "activate" not in result["timings"] and "rollback" in result["timings"]


def test_unverified_rollback_is_rollback_failed(setup, fake):
    target, host, old, new, bundle = setup
    fake.fail_verify |= {new.fingerprint, old.fingerprint}
    result = node.deploy(target, host, bundle, skip_cross_trust=True)
    assert result["outcome"] == "rollback_failed"
    assert result["rollback"]["verified"] is False
    assert on_disk(target) == old.fingerprint  # the files are back even so
    assert node.last_record(target, host)["expected_fingerprint"] is None


def test_bad_bundle_changes_nothing_and_activates_nothing(setup, fake, root):
    target, host, old, _new, _bundle = setup
    stranger = pki.CA.root("stranger").issue(
        "cass1", ips=("127.0.0.1",), dns=("cass1",), key_type="ec256"
    )
    bad = material.read_bundle(target, pki.bundle_dict(stranger, root.cert))
    with pytest.raises(SaltInvocationError, match="cass1: chain: "):
        node.deploy(target, host, bad, skip_cross_trust=True)
    assert on_disk(target) == old.fingerprint and fake.calls == []


def test_a_plan_node_not_serving_refuses_the_deploy_before_any_change(setup, fake):
    target, host, old, _new, bundle = setup
    dead = closed_port()
    require = {"cass3": [["client", "127.0.0.1", dead], ["internode", "127.0.0.1", dead]]}
    result = node.deploy(target, host, bundle, skip_cross_trust=True, require_serving=require)
    assert result["outcome"] == "refused" and list(result["down"]) == ["cass3"]
    assert f"cass3: not serving TLS (client 127.0.0.1:{dead}" in result["error"]
    assert on_disk(target) == old.fingerprint and fake.calls == []
    assert backups.list_backups(target.backup_dir) == []  # not even a backup was taken
    assert node.last_record(target, host) is None
