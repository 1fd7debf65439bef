"""Unit tests of ``_utils/certdeploy_core/bundle.py``: loading, every validation check, the stores.

Certificates come from the test PKI (``sandbox/pki.py``); keys are EC unless a test is about
RSA, and are made once per module so the whole file runs in a few seconds.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from certdeploy_core import bundle as cb
from certdeploy_core import checks, stores
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import SaltInvocationError

from sandbox import pki
from sandbox.pki import _content, _len, _seq, _tlvs

REPO = Path(__file__).resolve().parents[2]

NODE = "cass1"
NAMES = {"ips": ["127.0.0.1"], "dns": ["cass1"]}
CHECKS = [
    "chain",
    "key_match",
    "names",
    "validity",
    "key_policy",
    "key_usage",
    "signature",
    "eku",
]
ALL_CHECKS = [*CHECKS, "cross_trust"]


# ----------------------------------------------------------------------------- PKI fixtures


@pytest.fixture(scope="module")
def root():
    return pki.CA.root()


@pytest.fixture(scope="module")
def inter(root):
    return root.intermediate()


@pytest.fixture(scope="module")
def other_root():
    return pki.CA.root("some other root CA")


@pytest.fixture(scope="module")
def leaf(inter):
    return inter.issue_node(1, key_type="ec256")


@pytest.fixture(scope="module")
def peer(inter):
    return inter.issue_node(2, key_type="ec256")


@pytest.fixture(scope="module")
def peers(peer, root):
    return [peer_entry("cass2", peer, root)]


def peer_entry(name, leaf, *cas):
    return {
        "node": name,
        "chain_pem": pki.cert_pem(leaf.cert, *leaf.chain).decode(),
        "trust_pem": pki.cert_pem(*(ca.cert for ca in cas)).decode(),
    }


def data_for(leaf, *trust, **overrides):
    """The load_bundle input for ``leaf``: cert, key, chain and the given trusted CAs."""
    data = {
        "cert": pki.cert_pem(leaf.cert).decode(),
        "key": pki.key_pem(leaf.key).decode(),
        "chain": pki.cert_pem(*leaf.chain).decode(),
        "trust": pki.cert_pem(*(ca.cert for ca in trust)).decode(),
    }
    data.update(overrides)
    return data


def run(leaf, root, **kwargs):
    bundle = cb.load_bundle(data_for(leaf, root), NODE)
    kwargs.setdefault("names", NAMES)
    kwargs.setdefault("skip_cross_trust", True)
    return bundle, checks.validate(bundle, node=NODE, **kwargs)


def by_check(findings):
    return {f["check"]: f for f in findings}


def assert_only_failure(findings, check, *words):
    """``check`` failed (with ``words`` in its message) and every other check passed."""
    failed = [f["check"] for f in findings if not f["ok"]]
    assert failed == [check], findings
    finding = by_check(findings)[check]
    assert finding["fix"], finding
    for word in words:
        assert word in finding["message"], finding["message"]
    with pytest.raises(SaltInvocationError) as err:
        checks.raise_on_failures(findings, NODE)
    assert str(err.value).startswith(f"{NODE}: {check}: ")
    assert "Fix: " in str(err.value)
    return finding


def load_error(data, field, *words):
    """load_bundle refuses ``data``, naming the node, ``field`` and a fix."""
    with pytest.raises(SaltInvocationError) as err:
        cb.load_bundle(data, NODE)
    message = str(err.value)
    assert message.startswith(f"{NODE}: {field}: "), message
    assert "Fix: " in message and message.split("Fix: ", 1)[1].strip(), message
    for word in words:
        assert word in message, message
    return message


@pytest.fixture(scope="module")
def sha1_leaf(inter):
    return pki.sha1_leaf(inter, 1)


def test_sha1_leaf_is_a_genuine_sha1_certificate(sha1_leaf, inter):
    cert = sha1_leaf.cert
    assert cert.signature_hash_algorithm.name == "sha1"
    inter.key.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA1())
    )


# ----------------------------------------------------------------------------- the good case


def test_good_bundle_passes_every_check(leaf, root, peers):
    bundle = cb.load_bundle(data_for(leaf, root), NODE)
    findings = checks.validate(bundle, node=NODE, names=NAMES, peers=peers)
    assert [f["check"] for f in findings] == ALL_CHECKS
    assert all(f["ok"] for f in findings), findings
    assert all(f["fix"] == "" and f["message"] for f in findings)
    checks.raise_on_failures(findings, NODE)  # no failure, no exception
    assert bundle.chain == leaf.chain and bundle.trust == (root.cert,)


def test_public_summary(leaf, root):
    bundle = cb.load_bundle(data_for(leaf, root), NODE)
    summary = bundle.public_summary()
    assert summary["fingerprint"] == bundle.fingerprint == pki.fingerprint(leaf.cert)
    assert len(summary["fingerprint"]) == 64 and summary["fingerprint"].islower()
    assert summary["serial"] == format(leaf.cert.serial_number, "x")
    assert summary["sans"] == {"ips": ["127.0.0.1"], "dns": ["cass1", "localhost"]}
    assert summary["key"] == "EC secp256r1"
    assert summary["trust_fingerprints"] == [pki.fingerprint(root.cert)]
    assert summary["not_after"].endswith("Z")
    assert dt.datetime.fromisoformat(summary["not_before"].replace("Z", "+00:00"))


def test_rsa_traditional_encrypted_key_and_summary(inter, root):
    rsa_leaf = inter.issue_node(1)  # the only RSA 2048 key of the module
    traditional = rsa_leaf.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"s3cret"),
    ).decode()
    assert "Proc-Type: 4,ENCRYPTED" in traditional
    data = data_for(rsa_leaf, root, key=traditional)
    load_error({**data, "key_passphrase": "wrong"}, "key_passphrase", "does not decrypt")
    bundle = cb.load_bundle({**data, "key_passphrase": "s3cret"}, NODE)
    assert bundle.public_summary()["key"] == "RSA 2048"
    assert all(f["ok"] for f in checks.validate(bundle, node=NODE, names=NAMES, peers=[]))


def test_intermediates_after_the_leaf_join_the_chain(leaf, root, inter):
    # Full chain in cert, chain repeated in chain: one copy, issuer order, leaf excluded.
    data = data_for(leaf, root, cert=pki.cert_pem(leaf.cert, inter.cert).decode())
    bundle = cb.load_bundle(data, NODE)
    assert bundle.cert == leaf.cert and bundle.chain == (inter.cert,)
    bundle = cb.load_bundle({**data, "chain": ""}, NODE)
    assert bundle.chain == (inter.cert,)


# ----------------------------------------------------------------------------- failed checks


def test_expired(inter, root):
    bad = inter.issue_node(1, key_type="ec256", days=30, not_before=pki.now() - dt.timedelta(40))
    assert_only_failure(run(bad, root)[1], "validity", "expired on")


def test_not_yet_valid(inter, root):
    bad = inter.issue_node(1, key_type="ec256", not_before=pki.now() + dt.timedelta(days=2))
    assert_only_failure(run(bad, root)[1], "validity", "not yet valid")


def test_expiring_within_the_minimum(inter, root):
    bad = inter.issue_node(1, key_type="ec256", days=10)
    finding = assert_only_failure(run(bad, root)[1], "validity", "expires within 30 days")
    assert "renew" in finding["fix"]
    # ...and a lower minimum is the caller's deliberate choice.
    assert all(f["ok"] for f in run(bad, root, min_days_remaining=5)[1])


def test_key_does_not_match_cert(leaf, peer, root):
    data = data_for(leaf, root, key=pki.key_pem(peer.key).decode())
    findings = checks.validate(
        cb.load_bundle(data, NODE), node=NODE, names=NAMES, skip_cross_trust=True
    )
    assert_only_failure(findings, "key_match", "is not the key of certificate")


def test_wrong_san(peer, root):
    finding = assert_only_failure(run(peer, root)[1], "names", "IP:127.0.0.1", "DNS:cass1")
    assert "IP:127.0.0.2" in finding["message"]  # what the SAN does have
    assert "subjectAltName" in finding["fix"]


def test_missing_san(inter, root):
    bad = inter.issue("cass1", key_type="ec256")
    assert_only_failure(run(bad, root)[1], "names", "no subjectAltName")


def test_untrusted_issuer(other_root, root):
    # A full chain up to a root this node does not trust.
    foreign = other_root.issue_node(1, key_type="ec256")
    data = data_for(foreign, root, chain=pki.cert_pem(other_root.cert).decode())
    findings = checks.validate(
        cb.load_bundle(data, NODE), node=NODE, names=NAMES, skip_cross_trust=True
    )
    assert_only_failure(findings, "chain", "untrusted issuer", "some other root CA")


def test_missing_intermediate(leaf, root):
    data = data_for(leaf, root, chain=None)
    findings = checks.validate(
        cb.load_bundle(data, NODE), node=NODE, names=NAMES, skip_cross_trust=True
    )
    finding = assert_only_failure(findings, "chain", "missing intermediate", "intermediate CA")
    assert "add the intermediate CA certificate" in finding["fix"]


def test_explicit_trust_anchors_override_bundle_trust(leaf, root, other_root):
    _, findings = run(leaf, root, trust_anchors=[other_root.cert])
    assert not by_check(findings)["chain"]["ok"]
    _, findings = run(leaf, root, trust_anchors=[root.cert])
    assert by_check(findings)["chain"]["ok"]


def test_expired_ca_in_the_chain(leaf, root):
    # Five years on, the intermediate (1825 days) has expired; so has the leaf.
    later = pki.now() + dt.timedelta(days=1900)
    findings = run(leaf, root, now=later)[1]
    assert "in the chain expired on" in by_check(findings)["chain"]["message"]
    assert "expired on" in by_check(findings)["validity"]["message"]


def test_rsa_1024(inter, root):
    bad = inter.issue_node(1, key_type="rsa1024")
    finding = assert_only_failure(run(bad, root)[1], "key_policy", "RSA 1024")
    assert "2048" in finding["fix"]


def test_sha1_signature(sha1_leaf, root):
    findings = run(sha1_leaf, root)[1]
    failed = [f["check"] for f in findings if not f["ok"]]
    # OpenSSL may also refuse to *verify* SHA-1, which then fails the chain check as well.
    assert "signature" in failed and set(failed) <= {"signature", "chain"}, findings
    assert "SHA1" in by_check(findings)["signature"]["message"]
    assert "SHA-256" in by_check(findings)["signature"]["fix"]
    if "chain" in failed:
        assert "uses SHA1, which is refused" in by_check(findings)["chain"]["message"]


def test_missing_client_auth(inter, root):
    bad = inter.issue_node(1, key_type="ec256", eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    finding = assert_only_failure(run(bad, root)[1], "eku", "clientAuth")
    assert "serverAuth" not in finding["message"]


def test_missing_eku(inter, root):
    bad = inter.issue_node(1, key_type="ec256", eku=())
    assert_only_failure(run(bad, root)[1], "eku", "no extendedKeyUsage")


def test_raise_on_failures_names_every_failed_check(inter, root):
    bad = inter.issue("cass9", key_type="rsa1024", days=5, eku=())
    _, findings = run(bad, root)
    with pytest.raises(SaltInvocationError) as err:
        checks.raise_on_failures(findings, NODE)
    message = str(err.value)
    assert message.startswith(f"{NODE}: names: ")
    assert "failed checks: names, validity, key_policy, eku" in message


@pytest.mark.parametrize(
    "pattern, name, ok",
    [
        ("cass1.example.com", "CASS1.Example.com", True),
        ("*.example.com", "cass1.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.cass1.example.com", False),
        ("*.com", "example.com", False),
        ("cass*.example.com", "cass1.example.com", False),
    ],
)
def test_dns_matching(pattern, name, ok):
    assert checks.dns_matches(pattern, name) is ok


def test_wildcard_san_covers_the_hostname(inter, root):
    wild = inter.issue("cass1", key_type="ec256", ips=("127.0.0.1",), dns=("*.dc1.example",))
    _, findings = run(wild, root, names={"ips": ["127.0.0.1"], "dns": ["Cass1.DC1.example"]})
    assert by_check(findings)["names"]["ok"]


def test_names_must_be_given(leaf, root):
    _, findings = run(leaf, root, names={})
    assert not by_check(findings)["names"]["ok"]


# ----------------------------------------------------------------------------- cross trust


def test_cross_trust_needs_peers_or_an_explicit_skip(leaf, root):
    _, findings = run(leaf, root, skip_cross_trust=False)
    finding = by_check(findings)["cross_trust"]
    assert not finding["ok"] and "peers were not given" in finding["message"]
    assert "skip_cross_trust=True" in finding["fix"]
    _, findings = run(leaf, root, skip_cross_trust=True)
    assert by_check(findings)["cross_trust"] == {
        "check": "cross_trust",
        "ok": True,
        "message": "skipped by caller (skip_cross_trust=True)",
        "fix": "",
    }


def test_cross_trust_direction_2_new_ca_unknown_to_peers(other_root, root, peers):
    # The new cert comes from a new root; the new truststore holds both roots, but the peers
    # still trust only the old one: they would refuse this node.
    new = other_root.issue_node(1, key_type="ec256")
    bundle = cb.load_bundle(data_for(new, other_root, root), NODE)
    finding = by_check(checks.validate(bundle, node=NODE, names=NAMES, peers=peers))["cross_trust"]
    assert not finding["ok"]
    assert "direction 2: cass2's current truststore" in finding["message"]
    assert "direction 1" not in finding["message"]
    assert "CA rotation" in finding["fix"]
    assert "phase 1: add the new CA to every truststore first" in finding["fix"]


def test_cross_trust_direction_1_peer_ca_missing_from_new_trust(other_root, root, inter):
    # This node trusts only the new root; the peer still serves a cert from the old one,
    # though it already trusts both (phase 1 was done there).
    new = other_root.issue_node(1, key_type="ec256")
    old_peer = inter.issue_node(3, key_type="ec256")
    bundle = cb.load_bundle(data_for(new, other_root), NODE)
    peers = [peer_entry("cass3", old_peer, root, other_root)]
    finding = by_check(checks.validate(bundle, node=NODE, names=NAMES, peers=peers))["cross_trust"]
    assert not finding["ok"]
    assert "direction 1: the new truststore of cass1 does not trust cass3" in finding["message"]
    assert "direction 2" not in finding["message"]
    assert "CA rotation" in finding["fix"]
    assert "the new truststore must include the CA of cass3" in finding["fix"]
    assert "phase 1" not in finding["fix"]


def test_cross_trust_names_each_failing_peer(other_root, root, inter, peer):
    new = other_root.issue_node(1, key_type="ec256")
    bundle = cb.load_bundle(data_for(new, other_root, root), NODE)
    peers = [
        peer_entry("cass2", peer, root),  # fails direction 2 only
        peer_entry("cass3", inter.issue_node(3, key_type="ec256"), root, other_root),  # fine
    ]
    finding = by_check(checks.validate(bundle, node=NODE, names=NAMES, peers=peers))["cross_trust"]
    assert "cass2" in finding["message"] and "cass3" not in finding["message"]


def test_cross_trust_bad_peer_pem_is_a_finding_not_an_exception(leaf, root):
    peers = [{"node": "cass2", "chain_pem": "garbage", "trust_pem": ""}]
    finding = by_check(run(leaf, root, peers=peers, skip_cross_trust=False)[1])["cross_trust"]
    assert not finding["ok"] and "cass2" in finding["message"]


# ----------------------------------------------------------------------------- load errors


def test_truncated_pem_no_end_line(leaf, root):
    pem = pki.cert_pem(leaf.cert).decode()
    cut = pem[: pem.index("-----END")]
    load_error(data_for(leaf, root, cert=cut), "cert", "truncated", "no END line", "-----BEGIN")


def test_truncated_pem_base64_cut(leaf, root):
    lines = pki.cert_pem(leaf.cert).decode().splitlines()
    cut = "\n".join([lines[0], *lines[1:4], lines[-1]]) + "\n"  # body cut short, END kept
    load_error(data_for(leaf, root, cert=cut), "cert", "truncated or corrupt")
    bad_base64 = "\n".join([lines[0], lines[1][:-3], lines[-1]]) + "\n"
    load_error(data_for(leaf, root, trust=bad_base64), "trust", "base64 does not decode")


def test_der_passed_as_pem(leaf, root):
    der = leaf.cert.public_bytes(serialization.Encoding.DER)
    load_error(data_for(leaf, root, cert=der), "cert", "looks like DER", "openssl x509 -inform der")
    key_der = leaf.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    load_error(data_for(leaf, root, key=key_der), "key", "looks like DER", "openssl pkey")


@pytest.mark.parametrize("field", ["cert", "key", "trust"])
@pytest.mark.parametrize("value, word", [("", "is empty"), ("  \n", "is empty"), (None, "missing")])
def test_empty_input(leaf, root, field, value, word):
    load_error(data_for(leaf, root, **{field: value}), field, word)


def test_empty_data(leaf):
    for data in ({}, None):
        load_error(data, "data", "is empty")


def test_over_one_mib(leaf, root):
    pem = pki.cert_pem(leaf.cert).decode()
    huge = pem * (cb.MAX_INPUT_BYTES // len(pem) + 1)
    load_error(data_for(leaf, root, chain=huge), "chain", "over the 1048576-byte limit")


def test_not_pem_and_file_paths(leaf, root):
    load_error(data_for(leaf, root, cert="hello"), "cert", "is not PEM")
    load_error(data_for(leaf, root, trust="/etc/ssl/ca.pem"), "trust", "looks like a file path")


def test_encrypted_key_passphrase(leaf, root):
    encrypted = pki.key_pem(leaf.key, b"correct horse").decode()
    data = data_for(leaf, root, key=encrypted)
    load_error(data, "key_passphrase", "is not set but key is encrypted")
    load_error({**data, "key_passphrase": "wrong"}, "key_passphrase", "does not decrypt")
    bundle = cb.load_bundle({**data, "key_passphrase": "correct horse"}, NODE)
    assert cb.spki(bundle.key) == cb.spki(leaf.cert)


def test_unsupported_key_type(leaf, root):
    x_key = pki.key_pem(x25519.X25519PrivateKey.generate()).decode()
    load_error(data_for(leaf, root, key=x_key), "key", "unsupported key type X25519")


def test_key_in_the_cert_field_is_refused_without_echo(leaf, root):
    key_text = pki.key_pem(leaf.key).decode()
    message = load_error(data_for(leaf, root, cert=key_text), "cert", "PRIVATE KEY")
    assert_no_key_lines(message, key_text)


def test_key_field_takes_exactly_one_key(leaf, root, peer):
    both = pki.key_pem(leaf.key).decode() + pki.key_pem(peer.key).decode()
    load_error(data_for(leaf, root, key=both), "key", "holds 2 private keys")
    with_cert = pki.key_pem(leaf.key).decode() + pki.cert_pem(leaf.cert).decode()
    load_error(data_for(leaf, root, key=with_cert), "key", "CERTIFICATE")


# ----------------------------------------------------------------------------- stores


@pytest.fixture(scope="module")
def bundle(leaf, root):
    return cb.load_bundle(data_for(leaf, root), NODE)


def test_pkcs12_keystore_round_trip(bundle, leaf):
    store = cb.build_keystore(bundle, "pkcs12", "storepass")
    key, cert, chain = cb.open_keystore(store, "pkcs12", "storepass", NODE)
    assert cert == leaf.cert and chain == leaf.chain
    assert cb.spki(key) == cb.spki(leaf.cert)
    # ...and the test PKI's own writer (another alias) opens the same way.
    key, cert, _ = cb.open_keystore(pki.pkcs12_keystore(leaf, "pw"), "PKCS12", "pw", NODE)
    assert cert == leaf.cert


def test_pem_keystore_round_trip(bundle, leaf):
    store = cb.build_keystore(bundle, "pem", None)
    assert store.startswith(pki.PKCS8_HEADER)  # unencrypted PKCS#8 first
    key, cert, chain = cb.open_keystore(store, "pem", None, NODE)
    assert cert == leaf.cert and chain == leaf.chain and cb.spki(key) == cb.spki(leaf.cert)
    assert cb.open_keystore(pki.pem_keystore(leaf), "pem", None, NODE)[1] == leaf.cert


@pytest.mark.parametrize("store_type", ["pkcs12", "pem"])
def test_keystore_check(bundle, store_type):
    finding = checks.keystore_check(bundle, store_type, "storepass", NODE)
    assert finding["check"] == "keystore" and finding["ok"], finding
    assert bundle.fingerprint in finding["message"]


def test_keystore_check_refuses_unknown_store_type(bundle):
    with pytest.raises(SaltInvocationError, match=r"^cass1: store_type: 'jks' is not supported"):
        checks.keystore_check(bundle, "jks", "storepass", NODE)


def test_pkcs12_keystore_needs_a_password(bundle):
    with pytest.raises(SaltInvocationError, match=r"^cass1: keystore_password: is empty"):
        cb.build_keystore(bundle, "pkcs12", "", node=NODE)


def test_keystore_wrong_password(bundle):
    store = cb.build_keystore(bundle, "pkcs12", "storepass")
    with pytest.raises(SaltInvocationError) as err:
        cb.open_keystore(store, "pkcs12", "not-the-password", NODE)
    assert str(err.value).startswith("cass1: keystore: password does not open it. Fix: ")
    assert "keystore_password" in str(err.value).split("Fix: ")[1]
    with pytest.raises(SaltInvocationError, match="password does not open it"):
        cb.open_keystore(store, "pkcs12", None, NODE)


def test_keystore_not_pkcs12(bundle):
    with pytest.raises(SaltInvocationError, match="is not a PKCS12 file"):
        cb.open_keystore(b"plain text, not a keystore", "pkcs12", "pw", NODE)


def test_truststore_passed_as_keystore(root):
    trust = cb.build_truststore([root.cert], "pkcs12", "pw")
    with pytest.raises(SaltInvocationError, match="holds no private key entry"):
        cb.open_keystore(trust, "pkcs12", "pw", NODE)


def test_keystore_with_two_key_entries(bundle):
    # cryptography writes one key entry per store and load_pkcs12 returns only the first, so
    # build the two-entry store by hand: duplicate the key bag, drop the (now wrong) MAC.
    store = cb.build_keystore(bundle, "pkcs12", "pw")
    assert stores._pkcs12_key_bag_count(store) == 1
    doubled = _double_key_bag(store)
    assert stores._pkcs12_key_bag_count(doubled) == 2
    with pytest.raises(SaltInvocationError, match="holds 2 key entries"):
        cb.open_keystore(doubled, "pkcs12", "pw", NODE)


def _double_key_bag(pfx_der):
    version, auth_safe, _mac = _tlvs(_content(pfx_der))
    oid, explicit = _tlvs(_content(auth_safe))
    infos = _tlvs(_content(_tlvs(_content(_tlvs(_content(explicit))[0]))[0]))
    rebuilt = []
    for info in infos:
        info_oid, *rest = _tlvs(_content(info))
        if info_oid == b"\x06\x09" + stores._OID_DATA:
            octets = _tlvs(_content(rest[0]))[0]
            bags = _tlvs(_content(_content(octets)))
            safe = _seq(*bags, *bags)
            rest = [_wrap(0xA0, _wrap(0x04, safe))]
        rebuilt.append(_seq(info_oid, *rest))
    auth = _wrap(0xA0, _wrap(0x04, _seq(*rebuilt)))
    return _seq(version, _seq(oid, auth))


def _wrap(tag, body):
    return bytes([tag]) + _len(len(body)) + body


def test_java_truststore_round_trip(root, other_root):
    store = cb.build_truststore([root.cert, other_root.cert, root.cert], "pkcs12", "trustpass")
    assert cb.read_truststore(store, "pkcs12", "trustpass", NODE) == [root.cert, other_root.cert]
    assert cb.read_truststore(pki.pkcs12_truststore("pw", root.cert), "pkcs12", "pw", NODE) == [
        root.cert
    ]
    with pytest.raises(SaltInvocationError) as err:
        cb.read_truststore(store, "pkcs12", "nope", NODE)
    assert "truststore: password does not open it" in str(err.value)
    assert "truststore_password" in str(err.value)


def test_pem_truststore_round_trip(root, other_root):
    store = cb.build_truststore([root.cert, other_root.cert], "pem", None)
    assert cb.read_truststore(store, "pem", None, NODE) == [root.cert, other_root.cert]
    with pytest.raises(SaltInvocationError, match="cass1: trust: holds no CA"):
        cb.build_truststore([], "pem", None, node=NODE)


def test_cert_pem_and_fingerprint(leaf, root):
    pem = cb.cert_pem(leaf.cert, root.cert)
    assert isinstance(pem, str) and pem.count("BEGIN CERTIFICATE") == 2
    assert cb.fingerprint(leaf.cert) == pki.fingerprint(leaf.cert)


# ----------------------------------------------------------------------------- no key leaks


def assert_no_key_lines(text, *key_pems):
    for key_pem in key_pems:
        for line in key_pem.splitlines():
            if line.strip() and not line.startswith("-----"):
                assert line not in text


def test_no_private_key_material_anywhere(leaf, peer, root, inter, peers):
    key_text = pki.key_pem(leaf.key).decode()
    peer_key_text = pki.key_pem(peer.key).decode()
    encrypted = pki.key_pem(leaf.key, b"pw").decode()
    outputs = []
    good = cb.load_bundle(data_for(leaf, root), NODE)
    mismatch = cb.load_bundle(data_for(leaf, root, key=peer_key_text), NODE)
    for bundle in (good, mismatch):
        findings = checks.validate(bundle, node=NODE, names={"ips": ["10.0.0.9"]}, peers=peers)
        findings.append(checks.keystore_check(bundle, "pem", None, NODE))
        outputs += [repr(bundle), str(bundle), repr(findings), repr(bundle.public_summary())]
        with pytest.raises(SaltInvocationError) as err:
            checks.raise_on_failures(findings, NODE)
        outputs.append(str(err.value))
    assert "key=" not in repr(good)
    for bad in (
        {"key": encrypted},
        {"key": encrypted, "key_passphrase": "wrong"},
        {"key": key_text[: len(key_text) // 2]},
        {"key": key_text.replace("\n", "\n!", 2)},
        {"cert": key_text},
        {"trust": key_text},
        {"key": key_text + peer_key_text},
    ):
        with pytest.raises(SaltInvocationError) as err:
            cb.load_bundle(data_for(leaf, root, **bad), NODE)
        outputs.append(str(err.value))
        assert err.value.__cause__ is None
    everything = "\n".join(outputs)
    assert_no_key_lines(everything, key_text, peer_key_text, encrypted)


@pytest.mark.parametrize(
    "password, words",
    [
        (
            "wrong",
            ["cass2: pkcs12: password does not open it", "set pkcs12_password", "the pkcs12"],
        ),
        ("", ["cass2: pkcs12: password does not open it", "Fix: set pkcs12_password"]),
    ],
)
def test_pkcs12_bundle_errors_name_the_pkcs12_fields(inter, password, words):
    import base64
    import types

    from certdeploy_core import material

    leaf = inter.issue_node(2)
    data = {
        "pkcs12": base64.b64encode(pki.pkcs12_keystore(leaf, "right")).decode(),
        "pkcs12_password": password,
        "trust": pki.cert_pem(inter.cert).decode(),
    }
    with pytest.raises(SaltInvocationError) as err:
        material.read_bundle(types.SimpleNamespace(node="cass2"), data)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert "pkcs12_password: password" not in str(err.value)


def test_pkcs12_without_a_key_entry_names_the_pkcs12_field(inter):
    import base64
    import types

    from certdeploy_core import material

    data = {
        "pkcs12": base64.b64encode(pki.pkcs12_truststore("pw", inter.cert)).decode(),
        "pkcs12_password": "pw",
        "trust": pki.cert_pem(inter.cert).decode(),
    }
    with pytest.raises(SaltInvocationError) as err:
        material.read_bundle(types.SimpleNamespace(node="cass2"), data)
    assert str(err.value).startswith("cass2: pkcs12: "), str(err.value)
