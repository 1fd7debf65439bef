"""The ``client`` profile's pure parts: its pillar, the identity a leaf must carry instead of
node names, and how it picks an activation. Its verification is proven on the rig
(``tests/integration/test_client_target.py``)."""

from __future__ import annotations

import pytest
from certdeploy_core import checks, client, material, node
from certdeploy_core import target as certdeploy_target
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import SaltInvocationError

from sandbox import pki

IDENTITY = "spiffe://prod/orders/{generation}"
CLIENT_EKU = (ExtendedKeyUsageOID.CLIENT_AUTH,)
SERVER_EKU = (ExtendedKeyUsageOID.SERVER_AUTH,)


def _pillar(tmp_path, **overrides):
    target = {
        "profile": "client",
        "app": "orders",
        "keystore": str(tmp_path / "client.pem"),
        "truststore": str(tmp_path / "ca.pem"),
        "owner": None,
        "group": None,
        "identity": IDENTITY,
        "role": "orders_{generation}",
        "contact_points": ["127.0.0.1:9042", "127.0.0.2"],
        "activate": {"method": "reload", "reload": ["kill", "-HUP", "1"], "restart": ["true"]},
        "backup_dir": str(tmp_path / "backups"),
        "verify_client": {"cert": str(tmp_path / "reader.crt"), "key": str(tmp_path / "r.key")},
        **overrides,
    }
    return {"certdeploy": {"targets": {"orders": target}}}


def _load(tmp_path, **overrides):
    return certdeploy_target.load_target(_pillar(tmp_path, **overrides), "orders", "app1")


def test_pillar_builds_a_client_target(tmp_path):
    target = _load(tmp_path)
    assert (target.profile, target.node, target.app, target.method) == (
        "client",
        "app1",
        "orders",
        "reload",
    )
    assert target.contact_points == (("127.0.0.1", 9042), ("127.0.0.2", 9042))
    assert target.role_for("g7") == "orders_g7"
    assert target.managed_files() == {"keystore": target.keystore, "truststore": target.truststore}
    assert "keystore_password" not in target.public()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"activate": {"method": "reload", "restart": ["true"]}}, r"activate:reload: missing"),
        ({"activate": {"method": "poke", "restart": ["true"]}}, r"activate:method: 'poke'"),
        ({"activate": {"method": "restart"}}, r"activate:restart: missing"),
        ({"contact_points": []}, r"contact_points: missing"),
        ({"contact_points": ["127.0.0.1:cql"]}, r"contact_points: '127.0.0.1:cql' has no numeric"),
        ({"mode": "0644"}, r"mode: 0644 lets others read"),
        ({"identity": "spiffe://prod/orders"}, r"role: uses \{generation\} but identity"),
        ({"identity": None}, r"orders:identity: missing"),
        ({"verify_client": {}}, r"verify_client: missing \(the identity that reads"),
    ],
)
def test_bad_pillar_names_the_key_and_the_fix(tmp_path, overrides, message):
    with pytest.raises(SaltInvocationError, match=message) as exc:
        _load(tmp_path, **overrides)
    assert "app1: certdeploy:targets:orders:" in str(exc.value) and "Fix:" in str(exc.value)


def test_identity_template_gives_the_generation():
    assert checks.identity_match(IDENTITY, "spiffe://prod/orders/g2") == "g2"
    assert checks.identity_match(IDENTITY, "spiffe://prod/billing/g2") is None
    assert checks.identity_match(IDENTITY, "spiffe://prod/orders/g2/x") is None


def _findings(tmp_path, leaf, root):
    target = _load(tmp_path)
    bundle = material.read_bundle(target, pki.bundle_dict(leaf, root.cert))
    result = node.validate(target, bundle, skip_cross_trust=True)
    return result, {f["check"]: f for f in result["findings"]}


def test_a_client_leaf_with_its_identity_and_client_auth_is_valid(tmp_path, root, ca):
    leaf = ca.issue("orders", uris=("spiffe://prod/orders/g2",), eku=CLIENT_EKU)
    result, found = _findings(tmp_path, leaf, root)
    assert result["valid"], result["findings"]
    assert "generation 'g2'" in found["identity"]["message"]
    assert "names" not in found  # a client has no node names to cover


@pytest.mark.parametrize(
    ("uris", "eku", "check", "message"),
    [
        (("spiffe://prod/billing/g2",), CLIENT_EKU, "identity", "no URI SAN that fits"),
        ((), CLIENT_EKU, "identity", "its URIs: none"),
        (("spiffe://prod/orders/g2",), SERVER_EKU, "eku", "lacks clientAuth"),
    ],
)
def test_a_wrong_identity_or_no_client_auth_is_refused(
    tmp_path, root, ca, uris, eku, check, message
):
    leaf = ca.issue("orders", uris=uris, eku=eku)
    result, found = _findings(tmp_path, leaf, root)
    assert not result["valid"]
    assert not found[check]["ok"] and message in found[check]["message"], found[check]
    assert found[check]["fix"]


def test_app_roles_match_every_generation_of_this_app_only(tmp_path):
    among = client.app_roles(_load(tmp_path))
    assert among("orders_g1") and among("orders_2027-01")
    assert not among("orders") and not among("billing_g1") and not among(None)


def test_activation_auto_uses_the_pillar_method_and_a_trust_change_restarts(tmp_path):
    target = _load(tmp_path)
    assert client.resolve_method("auto", False, target) == "reload"
    assert client.resolve_method("auto", True, target) == "restart"
    assert client.resolve_method("watch", False, target) == "watch"
    assert client.TRUST_CHANGE_RESTARTS
    with pytest.raises(SaltInvocationError, match="method='drain'"):
        client.resolve_method("drain", False, target)


def test_health_is_the_installed_leaf_the_app_answering_and_the_days_left(tmp_path, root, ca):
    leaf = ca.issue("orders", uris=("spiffe://prod/orders/g2",), eku=CLIENT_EKU)
    target = _load(tmp_path, health=["true"])
    (tmp_path / "client.pem").write_bytes(pki.pem_keystore(leaf))
    (tmp_path / "ca.pem").write_bytes(pki.pem_truststore(root.cert))
    good = client.health(target, expected=leaf.fingerprint)
    assert good["match"] and good["serving"] and good["days_left"] > 300
    assert good["served"]["role"] == "orders_g2"
    down = client.health(_load(tmp_path, health=["false"]), expected=leaf.fingerprint)
    assert not down["match"] and not down["serving"]
    drifted = client.health(target, expected="0" * 64)
    assert not drifted["match"] and drifted["serving"]
