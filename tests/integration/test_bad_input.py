"""Issue 3's bad-input catalogue on the real rig: each bad bundle (or bad name) is refused by
``salt cass2 certdeploy.deploy`` with an error naming the node, the field and the fix, and not
one byte changes on the node, nor the certificate it serves."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox import pki

pytestmark = pytest.mark.rig


def _now():
    return dt.datetime.now(dt.timezone.utc)


def _cases(rig):
    """name -> (bundle or None, target overrides or None, extra kwargs, words in the error)."""
    ca, root = rig.issuing_ca(), rig.root_ca()
    good = ca.issue_node(2, key_type="ec256")
    trust = pki.cert_pem(root.cert).decode()

    def bundle(leaf, **over):
        return {**pki.bundle_dict(leaf, root.cert), **over}

    other_root = pki.CA.root("untrusted root")
    unrelated = other_root.intermediate("unrelated CA")
    cert_pem = pki.cert_pem(good.cert, *good.chain).decode()
    der = good.cert.public_bytes(serialization.Encoding.DER)
    p12 = base64.b64encode(pki.pkcs12_keystore(good, "right-password")).decode()
    return {
        "expired": (
            bundle(ca.issue_node(2, not_before=_now() - dt.timedelta(days=400), days=365)),
            None,
            {},
            ["validity", "expired"],
        ),
        "not_yet_valid": (
            bundle(ca.issue_node(2, not_before=_now() + dt.timedelta(days=5))),
            None,
            {},
            ["validity", "not yet valid"],
        ),
        "expiring_within_minimum": (
            bundle(ca.issue_node(2, days=10)),
            None,
            {},
            ["validity", "30"],
        ),
        "key_cert_mismatch": (
            bundle(good, key=pki.key_pem(pki.new_key("ec256")).decode()),
            None,
            {},
            ["key_match"],
        ),
        "wrong_san": (bundle(ca.issue_node(3)), None, {}, ["names", "127.0.0.2"]),
        "untrusted_issuer": (
            {
                **bundle(other_root.issue_node(2)),
                "chain": pki.cert_pem(other_root.cert).decode(),
            },
            None,
            {},
            ["chain", "untrusted"],
        ),
        "missing_intermediate": (
            {**bundle(good), "cert": pki.cert_pem(good.cert).decode()},
            None,
            {},
            ["chain", "intermediate"],
        ),
        "truncated_pem": (bundle(good, cert=cert_pem[: len(cert_pem) // 2]), None, {}, ["cert"]),
        "der_as_pem": (bundle(good, cert=der), None, {}, ["cert", "DER"]),
        "empty_input": ({"cert": "", "key": "", "trust": ""}, None, {}, ["cert"]),
        "over_1_mib": (
            bundle(good, cert=cert_pem + "#" * (1024 * 1024 + 10)),
            None,
            {},
            ["cert", "1048576"],
        ),
        "wrong_passphrase": (
            bundle(good, key=pki.key_pem(good.key, b"secret").decode(), key_passphrase="wrong"),
            None,
            {},
            ["key", "passphrase"],
        ),
        "rsa_1024": (bundle(ca.issue_node(2, key_type="rsa1024")), None, {}, ["key_policy"]),
        "sha1_signature": (bundle(pki.sha1_leaf(ca, 2)), None, {}, ["signature"]),
        "no_client_auth_eku": (
            bundle(ca.issue_node(2, eku=(ExtendedKeyUsageOID.SERVER_AUTH,))),
            None,
            {},
            ["eku", "clientAuth"],
        ),
        "keystore_password_does_not_open": (
            {"pkcs12": p12, "pkcs12_password": "wrong-password", "trust": trust},
            None,
            {},
            ["pkcs12", "password"],
        ),
        "ca_flagged_leaf": (bundle(ca.issue_node(2, ca=True)), None, {}, ["chain", "CA:TRUE"]),
        "key_usage_without_digital_signature": (
            bundle(ca.issue_node(2, key_type="ec256", key_usage=pki.key_usage("key_agreement"))),
            None,
            {},
            ["key_usage", "digitalSignature"],
        ),
        "intermediate_only_in_trust": (
            {
                **bundle(good),
                "cert": pki.cert_pem(good.cert).decode(),
                "trust": pki.cert_pem(root.cert, ca.cert).decode(),
            },
            None,
            {},
            ["chain", "only in the trust bundle", "add", "to the bundle's chain"],
        ),
        "unrelated_ca_in_chain": (
            {**bundle(good), "cert": pki.cert_pem(good.cert, *good.chain, unrelated.cert).decode()},
            None,
            {},
            ["chain", "unrelated CA", "not on the path", "remove it from chain"],
        ),
        "path_traversal_in_target_file": (
            bundle(good),
            {"keystore": str(rig.node(2).tls_dir / ".." / ".." / "x.p12")},
            {},
            ["keystore"],
        ),
    }


@pytest.fixture(scope="module")
def cases(rig):
    return _cases(rig)


CASE_NAMES = [
    "expired",
    "not_yet_valid",
    "expiring_within_minimum",
    "key_cert_mismatch",
    "wrong_san",
    "untrusted_issuer",
    "missing_intermediate",
    "truncated_pem",
    "der_as_pem",
    "empty_input",
    "over_1_mib",
    "wrong_passphrase",
    "rsa_1024",
    "sha1_signature",
    "no_client_auth_eku",
    "keystore_password_does_not_open",
    "ca_flagged_leaf",
    "key_usage_without_digital_signature",
    "intermediate_only_in_trust",
    "unrelated_ca_in_chain",
    "path_traversal_in_target_file",
]


@pytest.fixture(scope="module")
def cass2(rig, salt_cli, synced):
    from tests.integration.test_node_deploy import Cass2

    driver = Cass2(rig, salt_cli)
    yield driver
    driver.give()


def _assert_refused(ret, words):
    assert ret.returncode != 0, ret
    message = ret.stdout if isinstance(ret.data, type(None)) else str(ret.data)
    assert "cass2" in message and "Fix" in message, message
    for word in words:
        assert word.lower() in message.lower(), (word, message)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_bundle_refused_and_nothing_changes(name, cases, cass2):
    bundle, target, kwargs, words = cases[name]
    cass2.give(bundle, target)
    tree, served = cass2.tree(), cass2.served()
    ret = cass2.call("certdeploy.deploy", skip_cross_trust=True, **kwargs)
    _assert_refused(ret, words)
    assert cass2.tree() == tree
    assert cass2.served() == served


@pytest.mark.parametrize("backup_id", ["../../etc", "a/b", ".hidden"])
def test_path_traversal_in_backup_id_refused(backup_id, cass2):
    cass2.give()
    tree, served = cass2.tree(), cass2.served()
    ret = cass2.call("certdeploy.rollback", backup_id=backup_id)
    _assert_refused(ret, ["backup_id"])
    assert cass2.tree() == tree and cass2.served() == served
