"""Load, validate and package a node's TLS bundle (leaf, key, intermediates, trusted CAs).

Pure logic: no Salt dunders, nothing touches the node. Every bad input becomes a
``SaltInvocationError`` naming the node, the field and the fix (see :func:`bad_input`), and
:func:`validate` turns every check into a finding instead of raising, so the caller decides.

Private key material never appears in a message, a repr or a return value: messages name
certificates by subject and fingerprint only, and key-loading errors are raised ``from None``
so the library's own exception text is not chained into logs either.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from salt.exceptions import SaltInvocationError

MAX_INPUT_BYTES = 1024 * 1024
MAX_CHAIN_DEPTH = 8
STORE_TYPES = ("pkcs12", "pem")

# Key types a certificate can carry and a keystore can hold; whether they are *strong enough*
# is the ``key_policy`` check's job, so load_bundle only rejects keys that cannot sign at all.
_SIGNING_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)
_KEY_LABELS = (
    "PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY",
    "RSA PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
)
_CERT_LABEL = "CERTIFICATE"
_PEM_FIX = "copy the complete PEM again, from the -----BEGIN line to the -----END line"

# PKCS#12 object identifiers (DER content bytes) used to count key entries.
_OID_DATA = bytes.fromhex("2a864886f70d010701")  # pkcs7-data
_OID_KEY_BAGS = (
    bytes.fromhex("2a864886f70d010c0a0101"),  # keyBag
    bytes.fromhex("2a864886f70d010c0a0102"),  # pkcs8ShroudedKeyBag
)


def bad_input(node: str, field: str, problem: str, fix: str) -> SaltInvocationError:
    """The one error shape of this module: ``<node>: <field>: <problem>. Fix: <fix>``."""
    return SaltInvocationError(f"{node}: {field}: {problem}. Fix: {fix}")


# ----------------------------------------------------------------------------- small helpers


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex without colons."""
    return cert.fingerprint(hashes.SHA256()).hex()


def cert_pem(*certs: x509.Certificate) -> str:
    """Concatenated PEM of ``certs``, in the order given."""
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def describe(cert: x509.Certificate) -> str:
    """How messages name a certificate: its subject, quoted."""
    return f"'{cert.subject.rfc4514_string()}'"


def describe_key(key) -> str:
    """``RSA 2048``, ``EC secp256r1``, ``Ed25519``... for a private or public key."""
    pub = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(pub, rsa.RSAPublicKey):
        return f"RSA {pub.key_size}"
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"EC {pub.curve.name}"
    if isinstance(pub, dsa.DSAPublicKey):
        return f"DSA {pub.key_size}"
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(pub, ed448.Ed448PublicKey):
        return "Ed448"
    return type(pub).__name__


def spki(key_or_cert) -> bytes:
    """SubjectPublicKeyInfo DER of a certificate, a private key or a public key."""
    pub = key_or_cert.public_key() if hasattr(key_or_cert, "public_key") else key_or_cert
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def iso_utc(when: dt.datetime) -> str:
    """``2026-11-26T20:15:51Z``: the one timestamp format of returns and manifests."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(now: dt.datetime | None) -> dt.datetime:
    # A naive ``now`` is taken as UTC, like the certificate times themselves.
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def extension(cert: x509.Certificate, ext_class):
    """The extension's value, or None when absent (or unreadable: same verdict for a check)."""
    try:
        return cert.extensions.get_extension_for_class(ext_class).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def _dedupe(certs) -> tuple[x509.Certificate, ...]:
    seen, out = set(), []
    for cert in certs:
        if _der(cert) not in seen:
            seen.add(_der(cert))
            out.append(cert)
    return tuple(out)


# ----------------------------------------------------------------------------- PEM parsing


class _Block(NamedTuple):
    label: str
    text: str  # the block, BEGIN to END, for handing to cryptography's PEM loaders
    der: bytes
    encrypted: bool  # traditional "Proc-Type: 4,ENCRYPTED" header or PKCS#8 encrypted label


def _as_bytes(value, node: str, field: str) -> bytes:
    """Input as bytes, rejecting missing, empty, oversized and non-text values."""
    if value is None:
        raise bad_input(node, field, "is missing", f"set {field} to the PEM text")
    if isinstance(value, str):
        try:
            value = value.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_input(node, field, "is not text", f"set {field} to the PEM text") from None
    if not isinstance(value, (bytes, bytearray)):
        raise bad_input(
            node, field, f"is a {type(value).__name__}, not PEM text", f"set {field} to PEM text"
        )
    value = bytes(value)
    if not value.strip():
        raise bad_input(node, field, "is empty", f"set {field} to the PEM text")
    if len(value) > MAX_INPUT_BYTES:
        raise bad_input(
            node,
            field,
            f"is {len(value)} bytes, over the {MAX_INPUT_BYTES}-byte limit",
            f"pass only the PEM {field} itself (a certificate bundle is a few KiB)",
        )
    return value


def _looks_like_der(data: bytes) -> bool:
    # DER starts with a SEQUENCE tag; PEM text never holds control or high bytes.
    head = data.lstrip()[:64]
    return head[:1] == b"\x30" and any(b < 9 or b > 126 for b in head)


def _looks_like_path(text: str) -> bool:
    text = text.strip()
    return "\n" not in text and (
        text.startswith(("/", "./", "salt://", "~")) or text.endswith((".pem", ".crt", ".key"))
    )


def _not_pem(data: bytes, node: str, field: str, der_fix: str) -> SaltInvocationError:
    """The error for input without any BEGIN line, as specific as we can make it."""
    if _looks_like_der(data):
        return bad_input(
            node,
            field,
            f"is not PEM: it looks like DER; convert with `{der_fix}`",
            f"convert it with `{der_fix} -in FILE.der -out FILE.pem` and pass the PEM text",
        )
    text = data.decode("latin-1")
    if _looks_like_path(text):
        return bad_input(
            node,
            field,
            "is not PEM: it looks like a file path",
            f"pass the PEM content of the file in {field}, not its path",
        )
    return bad_input(node, field, "is not PEM (no -----BEGIN line)", f"set {field} to PEM text")


def _pem_blocks(data: bytes, node: str, field: str, der_fix: str) -> list[_Block]:
    """Every PEM block of ``data``, checked for truncation and base64 that decodes.

    A line scanner rather than a regex: linear in the input however it is malformed.
    """
    if b"-----BEGIN " not in data:
        raise _not_pem(data, node, field, der_fix)
    blocks, label, lines = [], None, []
    for raw in data.decode("latin-1").splitlines():
        line = raw.strip()
        if label is None:
            if line.startswith("-----BEGIN ") and line.endswith("-----"):
                label, lines = line[len("-----BEGIN ") : -5], [line]
            continue
        lines.append(line)
        if line.startswith("-----BEGIN "):
            raise _truncated(node, field, label, len(blocks) + 1, "a new BEGIN line comes first")
        if line.startswith("-----END "):
            if line != f"-----END {label}-----":
                raise _truncated(node, field, label, len(blocks) + 1, f"it ends with {line}")
            blocks.append(_decode_block(label, lines, node, field, len(blocks) + 1))
            label = None
    if label is not None:
        raise _truncated(node, field, label, len(blocks) + 1, "there is no END line")
    return blocks


def _truncated(node, field, label, number, why) -> SaltInvocationError:
    return bad_input(
        node, field, f"PEM is truncated: block {number} ({label}) is not closed: {why}", _PEM_FIX
    )


def _decode_block(label: str, lines: list[str], node: str, field: str, number: int) -> _Block:
    # Header lines ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ...") hold a colon; base64 never does.
    body = [ln for ln in lines[1:-1] if ln and ":" not in ln]
    encrypted = label == "ENCRYPTED PRIVATE KEY" or any(
        "ENCRYPTED" in ln for ln in lines if ":" in ln
    )
    try:
        der = base64.b64decode("".join(body), validate=True)
    except (binascii.Error, ValueError):
        der = b""
    if not der:
        raise bad_input(
            node,
            field,
            f"PEM block {number} ({label}) is truncated or corrupt: its base64 does not decode",
            _PEM_FIX,
        )
    return _Block(label, "\n".join(lines) + "\n", der, encrypted)


def load_certs(value, node: str, field: str) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM input (at least one), in order; nothing else is allowed."""
    data = _as_bytes(value, node, field)
    certs = []
    for number, block in enumerate(_pem_blocks(data, node, field, "openssl x509 -inform der"), 1):
        if block.label != _CERT_LABEL:
            # Name the label only: a private key pasted here must not be echoed.
            raise bad_input(
                node,
                field,
                f"PEM block {number} is a {block.label}, not a CERTIFICATE",
                f"{field} takes certificates only; remove that block",
            )
        try:
            certs.append(x509.load_der_x509_certificate(block.der))
        except ValueError:
            raise bad_input(
                node,
                field,
                f"PEM block {number} is truncated or corrupt: it does not parse as a certificate",
                _PEM_FIX,
            ) from None
    if not certs:
        raise bad_input(node, field, "holds no certificate", f"set {field} to PEM certificates")
    return tuple(certs)


def _load_key(value, passphrase, node: str, field: str, pass_field: str):
    """The single private key of a PEM input, decrypted with ``passphrase`` when encrypted."""
    data = _as_bytes(value, node, field)
    blocks = _pem_blocks(data, node, field, "openssl pkey -inform der")
    # "EC PARAMETERS" precedes keys made by `openssl ecparam -genkey`; it carries no secret.
    blocks = [b for b in blocks if b.label != "EC PARAMETERS"]
    others = sorted({b.label for b in blocks if b.label not in _KEY_LABELS})
    if others:
        raise bad_input(
            node,
            field,
            f"holds {', '.join(others)} block(s) besides the key",
            f"{field} takes the private key only; put certificates in cert/chain",
        )
    if len(blocks) != 1:
        raise bad_input(
            node, field, f"holds {len(blocks)} private keys", f"{field} takes exactly one key"
        )
    block = blocks[0]
    return _decrypt_key(
        block, _passphrase_bytes(passphrase, node, pass_field), node, field, pass_field
    )


def _passphrase_bytes(passphrase, node: str, pass_field: str) -> bytes | None:
    if passphrase is None or passphrase in ("", b""):
        return None
    if isinstance(passphrase, str):
        return passphrase.encode("utf-8")
    if isinstance(passphrase, (bytes, bytearray)):
        return bytes(passphrase)
    raise bad_input(node, pass_field, "is not a string", f"set {pass_field} to the passphrase text")


def _decrypt_key(block: _Block, password: bytes | None, node, field, pass_field):
    # Every failure below is raised "from None": the library's text is not chained into logs.
    if block.encrypted and password is None:
        raise bad_input(
            node,
            pass_field,
            f"is not set but {field} is encrypted",
            f"set {pass_field} to the key's passphrase (or pass an unencrypted key)",
        )
    # A passphrase given for a plain key is ignored: it cannot change which key this is.
    password = password if block.encrypted else None
    try:
        key = serialization.load_pem_private_key(block.text.encode("ascii"), password)
    except UnsupportedAlgorithm:
        raise bad_input(
            node, field, "uses an unsupported key algorithm or encryption", key_type_fix()
        ) from None
    except (ValueError, TypeError):
        if block.encrypted:
            raise bad_input(
                node,
                pass_field,
                f"does not decrypt {field} (wrong passphrase, or a corrupt key)",
                f"set {pass_field} to the passphrase the key was encrypted with",
            ) from None
        raise bad_input(
            node, field, "is truncated or corrupt: it does not parse as a private key", _PEM_FIX
        ) from None
    if not isinstance(key, _SIGNING_KEYS):
        raise bad_input(node, field, f"unsupported key type {describe_key(key)}", key_type_fix())
    return key


def key_type_fix() -> str:
    return "use an RSA (>= 2048 bits) or EC P-256/P-384/P-521 key in PKCS#8 or traditional PEM"


# ----------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class Bundle:
    """A node's leaf certificate, its private key, intermediates and the CAs it will trust."""

    cert: x509.Certificate
    key: object = field(repr=False)  # never shown: reprs end up in logs and job returns
    chain: tuple[x509.Certificate, ...] = ()  # intermediates, leaf excluded, issuer order
    trust: tuple[x509.Certificate, ...] = ()  # CA certs that become the node's truststore

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the leaf's DER, lowercase hex without colons."""
        return fingerprint(self.cert)

    def public_summary(self) -> dict:
        """What may be reported or logged about the bundle: public facts only."""
        san = extension(self.cert, x509.SubjectAlternativeName)
        return {
            "fingerprint": self.fingerprint,
            "subject": self.cert.subject.rfc4514_string(),
            "issuer": self.cert.issuer.rfc4514_string(),
            "serial": format(self.cert.serial_number, "x"),
            "not_before": iso_utc(self.cert.not_valid_before_utc),
            "not_after": iso_utc(self.cert.not_valid_after_utc),
            "sans": {
                "ips": [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] if san else [],
                "dns": san.get_values_for_type(x509.DNSName) if san else [],
            },
            "key": describe_key(self.key),
            "chain_fingerprints": [fingerprint(c) for c in self.chain],
            "trust_fingerprints": [fingerprint(c) for c in self.trust],
        }


def load_bundle(data: dict, node: str) -> Bundle:
    """Parse ``{cert, key, key_passphrase?, chain?, trust}`` PEM input into a :class:`Bundle`.

    ``cert`` holds the leaf first; certificates after it join the intermediates. Only
    well-formedness is checked here; whether the bundle is *fit* is :func:`validate`'s job.
    """
    if not isinstance(data, dict) or not data:
        raise bad_input(
            node, "data", "is empty or not a mapping", "pass {cert, key, trust[, chain]} as PEM"
        )
    certs = load_certs(data.get("cert"), node, "cert")
    key = _load_key(data.get("key"), data.get("key_passphrase"), node, "key", "key_passphrase")
    extra = load_certs(data["chain"], node, "chain") if _given(data.get("chain")) else ()
    trust = load_certs(data.get("trust"), node, "trust")
    leaf = certs[0]
    chain = _issuer_order(leaf, [c for c in _dedupe((*certs[1:], *extra)) if _der(c) != _der(leaf)])
    return Bundle(cert=leaf, key=key, chain=chain, trust=_dedupe(trust))


def _given(value) -> bool:
    # An optional field left blank in pillar ("chain: ''") means "not given".
    return value is not None and not (isinstance(value, (str, bytes)) and not value.strip())


def _issuer_order(leaf, certs) -> tuple[x509.Certificate, ...]:
    """``certs`` ordered leaf-issuer first, then its issuer...; unrelated ones keep their order
    at the end. Keystores are written in this order, which is what TLS peers expect."""
    ordered, rest, current = [], list(certs), leaf
    while True:
        issuer = next((c for c in rest if c.subject == current.issuer and c is not current), None)
        if issuer is None or current.subject == current.issuer:
            break
        ordered.append(issuer)
        rest.remove(issuer)
        current = issuer
    return tuple(ordered + rest)


# ----------------------------------------------------------------------------- stores


def _store_type(store_type, node: str) -> str:
    kind = str(store_type or "").strip().lower()
    if kind not in STORE_TYPES:
        raise bad_input(
            node,
            "store_type",
            f"{store_type!r} is not supported",
            "use 'pkcs12' (Java reads it natively) or 'pem' (PEMBasedSslContextFactory)",
        )
    return kind


def _password_field(field: str) -> str:
    """The setting that holds ``field``'s password (``keystore`` -> ``keystore_password``)."""
    return field if field.endswith("_password") else f"{field}_password"


def _store_password(password, node: str, field: str) -> bytes:
    """PKCS#12 stores are always password-protected: Cassandra's config requires one."""
    if password is None or password == "":
        raise bad_input(
            node,
            _password_field(field),
            f"is empty; a PKCS12 {field} needs a password",
            f"set {_password_field(field)}",
        )
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def build_keystore(
    bundle: Bundle,
    store_type: str,
    password: str | None,
    alias: str = "cassandra",
    *,
    node: str = "this node",
) -> bytes:
    """The keystore bytes: PKCS#12 with one key entry, or PEM key + leaf + chain.

    The PEM form holds an *unencrypted* PKCS#8 key, so it must be written mode 0600.
    """
    kind = _store_type(store_type, node)
    if kind == "pem":
        key = bundle.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return key + cert_pem(bundle.cert, *bundle.chain).encode("ascii")
    return pkcs12.serialize_key_and_certificates(
        alias.encode("utf-8"),
        bundle.key,
        bundle.cert,
        list(bundle.chain) or None,
        serialization.BestAvailableEncryption(_store_password(password, node, "keystore")),
    )


def build_truststore(
    certs, store_type: str, password: str | None, *, node: str = "this node"
) -> bytes:
    """The truststore bytes: a Java PKCS#12 truststore (trusted-cert entries) or PEM."""
    kind = _store_type(store_type, node)
    certs = _dedupe(certs)
    if not certs:
        raise bad_input(node, "trust", "holds no CA certificate", "pass at least one CA")
    if kind == "pem":
        return cert_pem(*certs).encode("ascii")
    # serialize_java_truststore sets Java's trusted-cert attribute; plain PKCS#12 cert bags
    # without it load as an *empty* truststore in Java.
    entries = [pkcs12.PKCS12Certificate(c, f"ca{i}".encode()) for i, c in enumerate(certs, 1)]
    return pkcs12.serialize_java_truststore(
        entries,
        serialization.BestAvailableEncryption(_store_password(password, node, "truststore")),
    )


def _load_pkcs12(data: bytes, password, node: str, field: str):
    """``load_pkcs12`` with its one ValueError split into "not PKCS12" and "wrong password"."""
    pw = None if password in (None, "", b"") else _store_password(password, node, field)
    try:
        return pkcs12.load_pkcs12(data, pw)
    except UnsupportedAlgorithm:
        raise bad_input(
            node,
            field,
            "is encrypted with an algorithm this host cannot read (legacy RC2/3DES?)",
            "re-export it with AES (`openssl pkcs12 -export -keypbe AES-256-CBC "
            "-certpbe AES-256-CBC`, or keytool with a current JDK)",
        ) from None
    except ValueError:
        # A PFX is a DER SEQUENCE we can walk (or BER: 0x30 0x80); anything else is not one.
        walkable = _pkcs12_key_bag_count(data) is not None or data[:2] == b"\x30\x80"
        if not walkable:
            raise bad_input(
                node,
                field,
                "is not a PKCS12 file (it does not parse)",
                f"pass the PKCS12 {field} bytes, or use store_type 'pem' for PEM",
            ) from None
        raise bad_input(
            node,
            field,
            "password does not open it",
            f"set {_password_field(field)} to the password the {field} was written with",
        ) from None


def open_keystore(
    data: bytes, store_type: str, password: str | None, node: str, field: str = "keystore"
) -> tuple:
    """``(key, cert, chain)`` of a keystore that must hold exactly one key entry with a cert."""
    kind = _store_type(store_type, node)
    data = _as_bytes(data, node, field)
    if kind == "pem":
        return _open_pem_keystore(data, password, node, field)
    store = _load_pkcs12(data, password, node, field)
    if store.key is None:
        raise bad_input(
            node,
            field,
            "holds no private key entry (is it a truststore?)",
            f"pass the {field} holding the node's key and certificate",
        )
    count = _pkcs12_key_bag_count(data)
    if count is not None and count > 1:
        raise bad_input(
            node,
            field,
            f"holds {count} key entries; Cassandra needs exactly one",
            f"rebuild the {field} with only this node's key entry",
        )
    if store.cert is None:
        raise bad_input(
            node,
            field,
            "its key entry has no certificate",
            f"rebuild the {field} with the key and its certificate",
        )
    return store.key, store.cert.certificate, tuple(c.certificate for c in store.additional_certs)


def _open_pem_keystore(data: bytes, password, node: str, field: str) -> tuple:
    blocks = _pem_blocks(data, node, field, "openssl pkey -inform der")
    key_blocks = [b for b in blocks if b.label in _KEY_LABELS]
    cert_blocks = [b for b in blocks if b.label == _CERT_LABEL]
    if len(key_blocks) != 1:
        raise bad_input(
            node,
            field,
            f"holds {len(key_blocks)} private keys; Cassandra needs exactly one",
            f"the PEM {field} is one private key followed by the leaf and its chain",
        )
    if not cert_blocks:
        raise bad_input(
            node, field, "holds no certificate", f"append the leaf and its chain to the {field}"
        )
    pass_field = _password_field(field)
    key = _decrypt_key(
        key_blocks[0], _passphrase_bytes(password, node, pass_field), node, field, pass_field
    )
    certs = load_certs("".join(b.text for b in cert_blocks), node, field)
    return key, certs[0], certs[1:]


def read_truststore(
    data: bytes, store_type: str, password: str | None, node: str, field: str = "truststore"
) -> list[x509.Certificate]:
    """The CA certificates of a truststore (PKCS#12 or PEM); an empty one is an error."""
    kind = _store_type(store_type, node)
    data = _as_bytes(data, node, field)
    if kind == "pem":
        return list(load_certs(data, node, field))
    store = _load_pkcs12(data, password, node, field)
    certs = [c.certificate for c in store.additional_certs]
    certs = ([store.cert.certificate] if store.cert else []) + certs
    if not certs:
        raise bad_input(node, field, "holds no certificate", f"rebuild the {field} with the CAs")
    return certs


# ----------------------------------------------------------------------------- PKCS#12 walking


def _der_items(data: bytes):
    """(tag, content) of each DER TLV in ``data``; ValueError on BER or truncation."""
    items, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("truncated")
        tag, length, i = data[i], data[i + 1], i + 2
        if length == 0x80:
            raise ValueError("indefinite length (BER)")
        if length & 0x80:
            size = length & 0x7F
            length, i = int.from_bytes(data[i : i + size], "big"), i + size
        if i + length > len(data):
            raise ValueError("truncated")
        items.append((tag, data[i : i + length]))
        i += length
    return items


def _pkcs12_key_bag_count(data: bytes) -> int | None:
    """Key bags in the unencrypted SafeContents of a PFX, or None when it cannot be walked.

    ``load_pkcs12`` returns only the first key of a store holding several; counting the bags
    is how "exactly one key entry" is enforced. Keys live in plain ``data`` content (their
    bag is itself encrypted), so encrypted content never needs opening for this.
    """
    try:
        ((_, pfx),) = _der_items(data)
        _version, (_, auth_safe), *_mac = _der_items(pfx)
        _oid, (_, explicit) = _der_items(auth_safe)
        ((_, octets),) = _der_items(explicit)
        ((_, infos),) = _der_items(octets)
        count = 0
        for _, info in _der_items(infos):
            (_, oid), *content = _der_items(info)
            if oid != _OID_DATA or not content:
                continue
            ((_, inner),) = _der_items(content[0][1])
            ((_, safe_contents),) = _der_items(inner)
            for _, bag in _der_items(safe_contents):
                if _der_items(bag)[0][1] in _OID_KEY_BAGS:
                    count += 1
        return count
    except (ValueError, IndexError, TypeError):
        return None
