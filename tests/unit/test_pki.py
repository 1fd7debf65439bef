"""The test PKI makes what Cassandra and Java expect: chains, SANs, EKUs, Java truststores."""

import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from sandbox import pki


def test_node_leaf_has_ip_and_dns_sans_and_both_ekus():
    root = pki.CA.root()
    issuing = root.intermediate()
    leaf = issuing.issue_node(2, key_type="ec256")
    san = leaf.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.2")]
    assert "cass2" in san.get_values_for_type(x509.DNSName)
    eku = leaf.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert leaf.chain == (issuing.cert,)
    leaf.cert.verify_directly_issued_by(issuing.cert)
    issuing.cert.verify_directly_issued_by(root.cert)


def test_stores_round_trip(tmp_path):
    root = pki.CA.root()
    leaf = root.intermediate().issue_node(1, key_type="ec256")
    ks = pkcs12.load_pkcs12(pki.pkcs12_keystore(leaf, "pw"), b"pw")
    assert ks.cert.certificate == leaf.cert and len(ks.additional_certs) == 1
    ts = pkcs12.load_pkcs12(pki.pkcs12_truststore("pw", root.cert), b"pw")
    assert [c.certificate for c in ts.additional_certs] == [root.cert]
    pem = pki.pem_keystore(leaf)
    assert pem.startswith(pki.PKCS8_HEADER)
    assert len(x509.load_pem_x509_certificates(pem)) == 2


def test_save_and_load_ca(tmp_path):
    issuing = pki.CA.root().intermediate()
    pki.save_ca(issuing, tmp_path, "issuing")
    assert (tmp_path / "issuing.key").stat().st_mode & 0o777 == 0o600
    again = pki.load_ca(tmp_path, "issuing")
    assert again.cert == issuing.cert and again.chain == (issuing.cert,)
