"""Unit tests of the checks issue 8 added: path validation by ``cryptography.x509.verification``
(CA-flagged leaf, broken served chains, roots only as anchors), keyUsage, CA key strength and
expiry on the whole chain, critical extensions, and the strict-profile advice.

Each bad bundle is built by the test PKI and must be refused with node, field and fix.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from certdeploy_core import bundle as cb
from certdeploy_core import chain, checks
from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier
from salt.exceptions import SaltInvocationError

from sandbox import pki

REPO = Path(__file__).resolve().parents[2]

NODE = "cass1"
NAMES = {"ips": ["127.0.0.1"], "dns": ["cass1"]}


@pytest.fixture(scope="module")
def root():
    return pki.CA.root()


@pytest.fixture(scope="module")
def inter(root):
    return root.intermediate()


@pytest.fixture(scope="module")
def other_root():
    return pki.CA.root("unrelated root CA")


def bundle_of(leaf, *trust, chain_certs=None):
    served = leaf.chain if chain_certs is None else chain_certs
    data = {
        "cert": pki.cert_pem(leaf.cert).decode(),
        "key": pki.key_pem(leaf.key).decode(),
        "trust": pki.cert_pem(*trust).decode(),
    }
    if served:
        data["chain"] = pki.cert_pem(*served).decode()
    return cb.load_bundle(data, NODE)


def findings_for(bundle, **kwargs):
    kwargs.setdefault("names", NAMES)
    kwargs.setdefault("skip_cross_trust", True)
    return checks.validate(bundle, node=NODE, **kwargs)


def refused(findings, check, *words):
    """Only ``check`` failed, its message holds ``words``, and the raised error names the
    node, the field (the check) and a fix."""
    failed = [f["check"] for f in findings if not f["ok"]]
    assert failed == [check], findings
    finding = next(f for f in findings if f["check"] == check)
    for word in words:
        assert word in finding["message"], finding["message"]
    with pytest.raises(SaltInvocationError) as err:
        checks.raise_on_failures(findings, NODE)
    message = str(err.value)
    assert message.startswith(f"{NODE}: {check}: ") and "Fix: " in message, message
    assert message.split("Fix: ", 1)[1].strip(), message
    return finding


def test_good_bundle_passes_and_reports_the_path(inter, root):
    leaf = inter.issue_node(1, key_type="ec256")
    findings = findings_for(bundle_of(leaf, root.cert))
    assert all(f["ok"] for f in findings), findings
    path = next(f for f in findings if f["check"] == "chain")["message"]
    assert "intermediate CA" in path and "root CA" in path
    assert checks.advice(findings) == []


# ----------------------------------------------------------------------------- path (library)


def test_ca_flagged_leaf_is_refused(inter, root):
    leaf = inter.issue_node(1, key_type="ec256", ca=True)
    finding = refused(findings_for(bundle_of(leaf, root.cert)), "chain", "CA:TRUE")
    assert "CA:FALSE" in finding["fix"]


def test_intermediate_only_in_the_trust_bundle_is_refused(inter, root):
    # "builds to a trusted CA" would pass (the trust bundle holds the intermediate), but the
    # node would serve leaf alone and peers that trust only the root would refuse it.
    leaf = inter.issue_node(1, key_type="ec256")
    bundle = bundle_of(leaf, root.cert, inter.cert, chain_certs=())
    finding = refused(findings_for(bundle), "chain", "lacks intermediate", "only in the trust")
    assert finding["fix"] == f"add '{inter.cert.subject.rfc4514_string()}' to the bundle's chain"


def test_unrelated_ca_instead_of_the_intermediate_is_refused(inter, root, other_root):
    leaf = inter.issue_node(1, key_type="ec256")
    bundle = bundle_of(leaf, root.cert, inter.cert, chain_certs=(other_root.cert,))
    refused(findings_for(bundle), "chain", "lacks intermediate")


def test_unrelated_certificate_beside_the_path_is_refused(inter, root, other_root):
    leaf = inter.issue_node(1, key_type="ec256")
    bundle = bundle_of(leaf, root.cert, chain_certs=(inter.cert, other_root.cert))
    finding = refused(findings_for(bundle), "chain", "unrelated root CA", "not on the path")
    assert "remove it from chain" in finding["fix"]


def test_root_in_the_served_chain_is_allowed(inter, root):
    leaf = inter.issue_node(1, key_type="ec256")
    bundle = bundle_of(leaf, root.cert, chain_certs=(inter.cert, root.cert))
    assert all(f["ok"] for f in findings_for(bundle))


def test_trust_without_a_root_is_refused(inter, root):
    # Anchors are self-signed roots only: an intermediate in trust is not one.
    leaf = inter.issue_node(1, key_type="ec256")
    refused(findings_for(bundle_of(leaf, inter.cert)), "chain", "no self-signed root")


def test_path_length_constraint_is_enforced(root):
    # The root allows one CA below it; a second one breaks pathLenConstraint.
    first = root.intermediate("first CA", path_length=None)
    second = first.intermediate("second CA")
    leaf = second.issue_node(1, key_type="ec256")
    bundle = bundle_of(leaf, root.cert)
    assert len(bundle.chain) == 2
    tight = pki.CA.root("tight root", path_length=0)
    below = tight.intermediate("below tight")
    deeper = below.intermediate("deeper")
    leaf = deeper.issue_node(1, key_type="ec256")
    finding = next(f for f in findings_for(bundle_of(leaf, tight.cert)) if f["check"] == "chain")
    assert not finding["ok"] and finding["fix"], finding


def test_unknown_critical_extension_is_refused(inter, root):
    unknown = x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x05\x00")
    leaf = inter.issue_node(1, key_type="ec256", extensions=((unknown, True),))
    finding = refused(findings_for(bundle_of(leaf, root.cert)), "chain", "1.3.6.1.4.1.99999.7")
    assert "non-critical" in finding["fix"]


def test_root_without_key_usage_is_accepted_with_strict_advice():
    # `openssl req -x509` makes roots without keyUsage: Java and OpenSSL accept them.
    bare = pki.CA.root("bare root", key_usage=False)
    leaf = bare.intermediate().issue_node(1, key_type="ec256")
    findings = findings_for(bundle_of(leaf, bare.cert))
    assert all(f["ok"] for f in findings), findings
    (note,) = checks.advice(findings)
    assert "strict RFC 5280" in note and "2.5.29.15" in note


def test_ca_expired_now_is_refused(root):
    short = root.intermediate("short-lived CA", days=40)
    leaf = short.issue_node(1, key_type="ec256", days=30)
    later = pki.now() + dt.timedelta(days=41)
    findings = findings_for(bundle_of(leaf, root.cert), now=later)
    assert (
        "in the chain expired on" in next(f for f in findings if f["check"] == "chain")["message"]
    )


# ----------------------------------------------------------------------------- our policy


def test_key_usage_without_digital_signature_is_refused(inter, root):
    leaf = inter.issue_node(1, key_type="rsa2048", key_usage=pki.key_usage("key_encipherment"))
    finding = refused(findings_for(bundle_of(leaf, root.cert)), "key_usage", "digitalSignature")
    assert "keyEncipherment" in finding["fix"]


@pytest.mark.parametrize(
    ("key_type", "bits", "ok"),
    [
        ("rsa2048", ("digital_signature",), True),
        ("rsa2048", ("digital_signature", "key_encipherment"), True),
        ("ec256", ("digital_signature", "key_agreement"), True),
        ("ec256", ("digital_signature", "content_commitment"), True),
        ("ec256", ("digital_signature", "key_encipherment"), False),
        ("rsa2048", ("digital_signature", "key_agreement"), False),
        ("rsa2048", ("digital_signature", "data_encipherment"), False),
    ],
)
def test_key_usage_bits_by_key_type(inter, root, key_type, bits, ok):
    leaf = inter.issue_node(1, key_type=key_type, key_usage=pki.key_usage(*bits))
    finding = next(f for f in findings_for(bundle_of(leaf, root.cert)) if f["check"] == "key_usage")
    assert finding["ok"] is ok, finding


def test_key_cert_sign_on_a_leaf_is_refused_by_both_layers(inter, root):
    leaf = inter.issue_node(
        1, key_type="ec256", key_usage=pki.key_usage("digital_signature", "key_cert_sign")
    )
    findings = findings_for(bundle_of(leaf, root.cert))
    failed = {f["check"]: f for f in findings if not f["ok"]}
    assert set(failed) == {"chain", "key_usage"}, findings
    assert "keyCertSign" in failed["chain"]["message"]
    assert "key_cert_sign" in failed["key_usage"]["message"]


def test_weak_ca_key_on_the_chain_is_refused(root):
    weak = root.intermediate("weak CA", key_type="rsa1024")
    leaf = weak.issue_node(1, key_type="ec256")
    findings = findings_for(bundle_of(leaf, root.cert))
    # Both layers refuse it: the library's path validation (RSA < 2048) and our key policy.
    failed = {f["check"]: f for f in findings if not f["ok"]}
    assert set(failed) == {"chain", "key_policy"}, findings
    assert "RSA 1024-bit key" in failed["chain"]["message"], failed["chain"]
    assert "'CN=weak CA" in failed["chain"]["message"], failed["chain"]
    assert "RSA 1024" in failed["key_policy"]["message"]
    assert "re-key that CA" in failed["key_policy"]["fix"]


def test_ca_expiring_within_the_minimum_is_refused(root):
    short = root.intermediate("short-lived CA", days=20)
    leaf = short.issue_node(1, key_type="ec256", days=15)
    # The leaf alone has 15 days: lower the minimum below that, the CA still fails at 20.
    findings = findings_for(bundle_of(leaf, root.cert), min_days_remaining=10)
    assert all(f["ok"] for f in findings), findings
    longer = root.intermediate("short-lived CA", days=20)
    leaf = longer.issue_node(1, key_type="ec256", days=200)
    finding = refused(
        findings_for(bundle_of(leaf, root.cert), min_days_remaining=30),
        "validity",
        "short-lived CA",
        "stops working",
    )
    assert "renew CA" in finding["fix"]


# ----------------------------------------------------------------------------- cross trust


def test_cross_trust_uses_the_library_verdict(inter, root, other_root):
    leaf = inter.issue_node(1, key_type="ec256")
    peer = inter.issue_node(2, key_type="ec256")
    ca_peer = inter.issue_node(3, key_type="ec256", ca=True)  # a peer serving a CA-flagged leaf
    bundle = bundle_of(leaf, root.cert)
    peers = [
        {
            "node": "cass2",
            "chain_pem": pki.cert_pem(peer.cert, *peer.chain).decode(),
            "trust_pem": pki.cert_pem(root.cert).decode(),
        },
        {
            "node": "cass3",
            "chain_pem": pki.cert_pem(ca_peer.cert, *ca_peer.chain).decode(),
            "trust_pem": pki.cert_pem(root.cert).decode(),
        },
    ]
    finding = next(
        f
        for f in findings_for(bundle, peers=peers, skip_cross_trust=False)
        if f["check"] == "cross_trust"
    )
    assert not finding["ok"] and "cass3" in finding["message"] and "cass2" not in finding["message"]
    assert "CA:TRUE" in finding["message"]


def test_trusted_by_needs_a_root_anchor(inter, root):
    leaf = inter.issue_node(1, key_type="ec256")
    now = pki.now()
    assert chain.trusted_by((leaf.cert, inter.cert), [root.cert], now=now).ok
    assert not chain.trusted_by((leaf.cert,), [root.cert], now=now).ok
    assert not chain.trusted_by((leaf.cert, inter.cert), [inter.cert], now=now).ok
