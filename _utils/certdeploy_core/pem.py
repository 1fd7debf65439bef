"""Reading certificate material: PEM (and the DER, path and truncation mistakes people make),
private keys with or without a passphrase, and the small certificate helpers every other part
uses. Every refusal names the node, the field and a fix (:func:`bad_input`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from salt.exceptions import SaltInvocationError

from . import errors, timeutil

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
# SHA-256 digests of key blocks this process has already loaded with the full RSA consistency
# check (~40 ms for RSA-2048): one deployment reads the same installed key up to seven times
# (validate, on_disk, matches, evidence, login). A later load of the very same bytes skips the
# check. Only digests are kept, never a key; bounded.
_CHECKED: set[bytes] = set()
_CHECKED_MAX = 64
_PEM_FIX = "copy the complete PEM again, from the -----BEGIN line to the -----END line"

# PKCS#12 object identifiers (DER content bytes) used to count key entries.
_OID_DATA = bytes.fromhex("2a864886f70d010701")  # pkcs7-data
_OID_KEY_BAGS = (
    bytes.fromhex("2a864886f70d010c0a0101"),  # keyBag
    bytes.fromhex("2a864886f70d010c0a0102"),  # pkcs8ShroudedKeyBag
)


bad_input = errors.bad_input  # the one refusal shape: <node>: <field>: <problem>. Fix: <fix>


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


iso_utc = timeutil.iso_utc
as_utc = timeutil.utc


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


def _load_pem_key(data: bytes, password: bytes | None):
    digest = hashlib.sha256(data).digest()
    key = serialization.load_pem_private_key(
        data, password, unsafe_skip_rsa_key_validation=digest in _CHECKED
    )
    if len(_CHECKED) >= _CHECKED_MAX:
        _CHECKED.clear()
    _CHECKED.add(digest)
    return key


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
        key = _load_pem_key(block.text.encode("ascii"), password)
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
