"""The client part of ``rotate_ca`` with a fake ``Master``: which minions take part, and the
refusals of phases 2 and 3 that protect a CA rotation, made before anything changes. The rig
runs the whole rotation with real apps (tests/integration/test_rotate_clients.py)."""

from __future__ import annotations

import pytest
from certdeploy_core import rotate_clients
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import CommandExecutionError, SaltInvocationError

from sandbox import pki

CLIENT_EKU = (ExtendedKeyUsageOID.CLIENT_AUTH,)
ROOT1 = pki.CA.root("CA1 root")
ROOT2 = pki.CA.root("CA2 root")


def _peer(node, leaf, *trust):
    return {
        "node": node,
        "chain_pem": pki.cert_pem(leaf.cert, *leaf.chain).decode(),
        "trust_pem": pki.cert_pem(*trust).decode(),
    }


class Fake:
    """Minions app1 (target orders) and app2 (target billing); ``app3`` has neither."""

    def __init__(self, minions=("app1", "app2"), leaf_ca=ROOT1, verified=True):
        self.minions, self.calls, self.verified = list(minions), [], verified
        self.leaves = {
            m: leaf_ca.issue(m, uris=(f"spiffe://t/{m}/g1",), eku=CLIENT_EKU) for m in self.minions
        }
        self.targets = {"app1": "orders", "app2": "billing"}

    def expected(self, tgt, tgt_type):
        return list(self.minions)

    def call(self, ids, fun, kwargs, timeout):
        self.calls.append((fun, list(ids), dict(kwargs)))
        answers = {}
        for m in ids:
            if self.targets.get(m) != kwargs.get("target"):
                answers[m] = f"ERROR: no target {kwargs.get('target')!r}"
            elif fun == "certdeploy.describe":
                answers[m] = {"profile": "client", "node": m}
            elif fun in ("certdeploy.peer_info", "certdeploy.bundle_public"):
                answers[m] = _peer(m, self.leaves[m], ROOT1.cert, ROOT2.cert)
            elif fun == "certdeploy.verify":
                answers[m] = {"ok": self.verified, "problems": [] if self.verified else ["old"]}
        return answers

    def changed(self):
        return [c for c in self.calls if c[0] in ("certdeploy.deploy", "certdeploy.trust_update")]


def test_groups_pair_each_target_name_with_the_minions_that_have_it():
    fake = Fake()
    found = rotate_clients.groups(fake, "app*", rotate_clients.names("orders, billing"))
    assert found == {"orders": ["app1"], "billing": ["app2"]}


def test_a_minion_with_none_of_the_targets_is_refused_with_the_fix():
    fake = Fake(minions=("app1", "app2", "app3"))
    with pytest.raises(SaltInvocationError, match=r"\['app3'\] match client_tgt.*Fix: narrow"):
        rotate_clients.groups(fake, "app*", ["orders", "billing"])


def test_client_tgt_without_target_names_is_refused():
    with pytest.raises(SaltInvocationError, match="client_targets=orders,billing"):
        rotate_clients.names(None)


def test_phase_2_refuses_pending_client_bundles_not_from_the_new_ca():
    fake = Fake(leaf_ca=ROOT1)
    with pytest.raises(CommandExecutionError, match=r"app1:orders.*not signed by the new CA"):
        rotate_clients.check_leaves_pending(fake, {"orders": ["app1"]}, ROOT2.cert)
    rotate_clients.check_leaves_pending(fake, {"orders": ["app1"]}, ROOT1.cert)  # passes
    assert fake.changed() == []


def test_phase_3_refuses_an_old_ca_leaf_and_connections_not_under_the_new_role():
    old = Fake(leaf_ca=ROOT1)
    with pytest.raises(CommandExecutionError, match=r"app1:orders: its installed leaf does not"):
        rotate_clients.check_no_old_identity(old, {"orders": ["app1"]}, ROOT2.cert)
    lingering = Fake(leaf_ca=ROOT2, verified=False)
    with pytest.raises(CommandExecutionError, match=r"app2:billing: connections not all under"):
        rotate_clients.check_no_old_identity(lingering, {"billing": ["app2"]}, ROOT2.cert)
    moved = Fake(leaf_ca=ROOT2)
    rotate_clients.check_no_old_identity(
        moved, {"orders": ["app1"], "billing": ["app2"]}, ROOT2.cert
    )
    assert old.changed() == lingering.changed() == moved.changed() == []
