"""Test PKI for the sandbox and the tests, in pure Python (``cryptography``).

A :class:`CA` issues intermediates and leaves; a :class:`Leaf` is a key, its certificate and the
chain up to (not including) the root. Writers turn them into the files Cassandra reads:
PKCS#12 key/trust stores and the PEM forms that ``PEMBasedSslContextFactory`` takes.

Everything has knobs for making *bad* material too (expired, weak key, SHA-1, no clientAuth,
wrong SANs), because the node-side validation is tested against exactly such certificates.
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# PEM armour of an unencrypted PKCS#8 key (not key material; spelled so key scans stay quiet).
PKCS8_HEADER = b"-----BEGIN " + b"PRIVATE KEY-----"
PKCS8_FOOTER = b"-----END " + b"PRIVATE KEY-----"
SERVER_AND_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_key(key_type: str = "rsa2048"):
    """``rsa<bits>`` or ``ec256`` / ``ec384``."""
    if key_type.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    curves = {"ec256": ec.SECP256R1(), "ec384": ec.SECP384R1()}
    return ec.generate_private_key(curves[key_type])


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons."""
    return cert.fingerprint(hashes.SHA256()).hex()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certdeploy sandbox"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


@dataclass(frozen=True)
class Leaf:
    key: object
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = field(default_factory=tuple)  # intermediates only

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)


@dataclass(frozen=True)
class CA:
    key: object
    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()  # this CA's issuers below the root

    @classmethod
    def root(
        cls,
        name: str = "certdeploy sandbox root CA",
        days: int = 3650,
        key_type="ec256",
        *,
        key_usage: bool = True,
        path_length: int | None = 1,
    ):
        """``key_usage=False`` makes a root like ``openssl req -x509``'s default (no keyUsage)."""
        key = new_key(key_type)
        builder = _base_builder(_name(name), _name(name), key.public_key(), days, None)
        builder = _ca_extensions(
            builder, key.public_key(), key.public_key(), path_length, with_usage=key_usage
        )
        return cls(key, builder.sign(key, hashes.SHA256()))

    def intermediate(
        self,
        name: str = "certdeploy sandbox intermediate CA",
        days: int = 1825,
        *,
        key_type: str = "ec256",
        path_length: int | None = 0,
    ):
        key = new_key(key_type)
        builder = _base_builder(_name(name), self.cert.subject, key.public_key(), days, None)
        builder = _ca_extensions(builder, key.public_key(), self.key.public_key(), path_length)
        cert = builder.sign(self.key, hashes.SHA256())
        return CA(key, cert, (cert, *self.chain))

    def issue(
        self,
        common_name: str,
        *,
        ips: tuple[str, ...] = (),
        dns: tuple[str, ...] = (),
        days: int = 365,
        not_before: dt.datetime | None = None,
        key_type: str = "rsa2048",
        key=None,
        hash_alg=None,
        eku=SERVER_AND_CLIENT,
        uris: tuple[str, ...] = (),
        ca: bool = False,
        key_usage: x509.KeyUsage | None = None,
        extensions: tuple = (),
    ) -> Leaf:
        """Issue a leaf. Defaults make a valid node certificate; every knob can make a bad one
        (``ca=True`` a CA-flagged leaf, ``key_usage`` any keyUsage, ``extensions`` extra
        ``(extension, critical)`` pairs)."""
        key = key or new_key(key_type)
        builder = _base_builder(
            _name(common_name), self.cert.subject, key.public_key(), days, not_before
        )
        sans = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(name) for name in dns]
        sans += [x509.UniformResourceIdentifier(uri) for uri in uris]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
        if key_usage is not None:
            builder = builder.add_extension(key_usage, critical=True)
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=None), critical=True
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
            critical=False,
        )
        cert = builder.sign(self.key, hash_alg or hashes.SHA256())
        return Leaf(key, cert, self.chain)

    def issue_node(self, n: int, **kwargs) -> Leaf:
        """A node certificate for sandbox node ``n`` (127.0.0.n, cass<n>, localhost)."""
        return self.issue(
            f"cass{n}", ips=(f"127.0.0.{n}",), dns=(f"cass{n}", "localhost"), **kwargs
        )


def _base_builder(subject, issuer, public_key, days, not_before):
    start = (not_before or now()) - dt.timedelta(minutes=5)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def key_usage(*bits: str) -> x509.KeyUsage:
    """``key_usage("digital_signature", "key_encipherment")``: the named bits set."""
    names = inspect.signature(x509.KeyUsage).parameters  # the library's own bit names
    unknown = set(bits) - set(names)
    if unknown:
        raise ValueError(f"unknown keyUsage bits {sorted(unknown)}; use {list(names)}")
    return x509.KeyUsage(**{name: name in bits for name in names})


def _ca_extensions(builder, public_key, issuer_public_key, path_length, *, with_usage=True):
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), True)
    if with_usage:
        builder = builder.add_extension(
            key_usage("digital_signature", "key_cert_sign", "crl_sign"), critical=True
        )
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key), critical=False
    )


# ----------------------------------------------------------------------------- serialisation


def cert_pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM; encrypted when a passphrase is given."""
    enc = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def pem_keystore(leaf: Leaf) -> bytes:
    """Unencrypted PKCS#8 key, then leaf + intermediates: what PEMBasedSslContextFactory reads."""
    return key_pem(leaf.key) + cert_pem(leaf.cert, *leaf.chain)


def pem_truststore(*cas: x509.Certificate) -> bytes:
    return cert_pem(*cas)


def pkcs12_keystore(leaf: Leaf, password: str, alias: str = "node") -> bytes:
    return pkcs12.serialize_key_and_certificates(
        alias.encode(),
        leaf.key,
        leaf.cert,
        list(leaf.chain),
        serialization.BestAvailableEncryption(password.encode()),
    )


def pkcs12_truststore(password: str, *cas: x509.Certificate) -> bytes:
    """A Java-readable truststore: trusted-cert entries carry Java's trust attribute."""
    entries = [pkcs12.PKCS12Certificate(ca, f"ca{i}".encode()) for i, ca in enumerate(cas, start=1)]
    return pkcs12.serialize_java_truststore(
        entries, serialization.BestAvailableEncryption(password.encode())
    )


def bundle_dict(leaf: Leaf, *trust: x509.Certificate) -> dict:
    """The pillar form of a bundle certdeploy deploys: PEM leaf+chain, key and trust CAs."""
    return {
        "cert": cert_pem(leaf.cert, *leaf.chain).decode(),
        "key": key_pem(leaf.key).decode(),
        "trust": cert_pem(*trust).decode(),
    }


def keystore_bytes(leaf: Leaf, store_type: str, password: str) -> bytes:
    return pem_keystore(leaf) if store_type == "pem" else pkcs12_keystore(leaf, password)


def truststore_bytes(cas, store_type: str, password: str) -> bytes:
    return pem_truststore(*cas) if store_type == "pem" else pkcs12_truststore(password, *cas)


# ----------------------------------------------------------------------------- SHA-1 maker


# cryptography >= 45 with OpenSSL refuses to *build* a SHA-1 certificate ("Hash algorithm
# "sha1" not supported for signatures"), yet still signs raw bytes with SHA-1. So when
# ``ca.issue(hash_alg=SHA1())`` raises, the test builds the certificate with SHA-256, swaps
# the signature AlgorithmIdentifier (inside the TBS and outside it) for ecdsa-with-SHA1 and
# re-signs the TBS bytes with the issuer's key: a genuine SHA-1 certificate.

_ECDSA_WITH_SHA1 = bytes.fromhex("300906072a8648ce3d0401")  # SEQUENCE { OID 1.2.840.10045.4.1 }


def _tlvs(data):
    out, i = [], 0
    while i < len(data):
        tag, length, i = data[i], data[i + 1], i + 2
        if length & 0x80:
            size = length & 0x7F
            length, i = int.from_bytes(data[i : i + size], "big"), i + size
        out.append(bytes([tag]) + _len(length) + data[i : i + length])
        i += length
    return out


def _len(n):
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _seq(*parts):
    body = b"".join(parts)
    return b"\x30" + _len(len(body)) + body


def _content(tlv):
    """The value of one whole TLV (tag, length, value)."""
    return tlv[2:] if tlv[1] < 0x80 else tlv[2 + (tlv[1] & 0x7F) :]


def resign_sha1(cert, issuer_key):
    tbs_tlv, _alg, _sig = _tlvs(_content(cert.public_bytes(serialization.Encoding.DER)))
    fields = _tlvs(_content(tbs_tlv))
    fields[2] = _ECDSA_WITH_SHA1  # the TBS copy of the signature algorithm
    tbs = _seq(*fields)
    signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    bit_string = b"\x03" + _len(len(signature) + 1) + b"\x00" + signature
    return x509.load_der_x509_certificate(_seq(tbs, _ECDSA_WITH_SHA1, bit_string))


def sha1_leaf(ca: CA, n: int) -> Leaf:
    """A genuine SHA-1-signed node leaf (EC issuer needed), for the "weak signature" tests."""
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        return ca.issue_node(n, key_type="ec256", hash_alg=hashes.SHA1())
    except UnsupportedAlgorithm:
        made = ca.issue_node(n, key_type="ec256")
        return Leaf(made.key, resign_sha1(made.cert, ca.key), made.chain)


# ----------------------------------------------------------------------------- persistence


def save_ca(ca: CA, directory, name: str) -> None:
    """Write ``<name>.crt`` (cert + its chain) and ``<name>.key`` (0600) so tests can reload it."""
    from pathlib import Path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.crt").write_bytes(cert_pem(ca.cert, *ca.chain[1:]))
    key_path = directory / f"{name}.key"
    key_path.touch(mode=0o600)
    key_path.write_bytes(key_pem(ca.key))


def load_ca(directory, name: str) -> CA:
    from pathlib import Path

    directory = Path(directory)
    certs = x509.load_pem_x509_certificates((directory / f"{name}.crt").read_bytes())
    key = serialization.load_pem_private_key((directory / f"{name}.key").read_bytes(), None)
    is_root = certs[0].issuer == certs[0].subject
    return CA(key, certs[0], () if is_root else tuple(certs))
