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
import ipaddress
from dataclasses import dataclass, field
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import SaltInvocationError

MAX_INPUT_BYTES = 1024 * 1024
MAX_CHAIN_DEPTH = 8
MIN_RSA_BITS = 2048
ALLOWED_CURVES = ("secp256r1", "secp384r1", "secp521r1")
WEAK_HASHES = ("sha1", "md5")
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


def _spki(key_or_cert) -> bytes:
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


def _extension(cert: x509.Certificate, ext_class):
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


def _finding(check: str, ok: bool, message: str, fix: str = "") -> dict:
    return {"check": check, "ok": ok, "message": message, "fix": "" if ok else fix}


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
            node, field, "uses an unsupported key algorithm or encryption", _key_type_fix()
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
        raise bad_input(node, field, f"unsupported key type {describe_key(key)}", _key_type_fix())
    return key


def _key_type_fix() -> str:
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
        san = _extension(self.cert, x509.SubjectAlternativeName)
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


# ----------------------------------------------------------------------------- chain building


@dataclass(frozen=True)
class ChainResult:
    """The outcome of :func:`build_chain`: the path found and, on failure, why and what to do."""

    ok: bool
    path: tuple[x509.Certificate, ...]
    problem: str = ""
    fix: str = ""


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def build_chain(
    leaf: x509.Certificate,
    intermediates,
    anchors,
    now: dt.datetime | None = None,
) -> ChainResult:
    """Walk from ``leaf`` through ``intermediates`` to one of ``anchors`` (by signature).

    Small on purpose: no name constraints or policies, just what a Java trust manager would
    refuse on the spot: missing intermediate, untrusted root, bad signature, non-CA issuer,
    CA outside its validity window.
    """
    now = as_utc(now)
    anchors = list(anchors)
    anchor_ders = {_der(a) for a in anchors}
    path = [leaf]
    for _ in range(MAX_CHAIN_DEPTH):
        current = path[-1]
        if _der(current) in anchor_ders:
            return _check_ca_validity(path, now)
        issuer = next((a for a in anchors if _issued_by(current, a)), None)
        if issuer is not None:
            path.append(issuer)
            return _check_ca_validity(path, now)
        candidates = [c for c in intermediates if all(_der(c) != _der(p) for p in path)]
        issuer = next((c for c in candidates if _issued_by(current, c)), None)
        if issuer is None:
            return _no_issuer(current, path, candidates, anchors)
        if not _is_ca(issuer):
            return ChainResult(
                False,
                tuple(path),
                f"{describe(issuer)} issued {describe(current)} but is not a CA "
                "(no basicConstraints CA:TRUE)",
                "issue the certificate from a proper CA certificate",
            )
        path.append(issuer)
    return ChainResult(
        False,
        tuple(path),
        f"no trusted CA within {MAX_CHAIN_DEPTH} certificates of {describe(leaf)}",
        "pass a shorter chain that ends at a CA in the truststore",
    )


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = _extension(cert, x509.BasicConstraints)
    return bool(constraints and constraints.ca)


def _no_issuer(current, path, candidates, anchors) -> ChainResult:
    """Explain why ``current`` has no issuer: untrusted root, bad signature or missing CA."""
    issuer_name = f"'{current.issuer.rfc4514_string()}'"
    if current.subject == current.issuer and _issued_by(current, current):
        return ChainResult(
            False,
            tuple(path),
            f"untrusted issuer: the chain ends at self-signed {describe(current)}, "
            "which is not a trusted CA",
            "reissue the certificate from a trusted CA; if "
            f"{describe(current)} is the intended new CA, a CA rotation is needed "
            "(phase 1: add it to every truststore first)",
        )
    if any(c.subject == current.issuer for c in [*anchors, *candidates]):
        weak = _weak_hash(current)
        if weak:
            # OpenSSL refuses to verify SHA-1/MD5 signatures at all: say so, not "bad key".
            return ChainResult(
                False,
                tuple(path),
                f"the signature on {describe(current)} uses {weak}, which is refused",
                "reissue it signed with SHA-256 or stronger",
            )
        return ChainResult(
            False,
            tuple(path),
            f"the signature on {describe(current)} does not verify against any CA named "
            f"{issuer_name} (CA re-keyed under the same name, or a refused algorithm)",
            "supply the CA certificate whose key actually signed it, or reissue the certificate",
        )
    return ChainResult(
        False,
        tuple(path),
        f"missing intermediate: issuer {issuer_name} of {describe(current)} is neither in the "
        "chain nor a trusted CA",
        f"add the intermediate CA certificate {issuer_name} to chain (or after the leaf in "
        f"cert); if {issuer_name} is a root CA it is not trusted: reissue from a trusted CA",
    )


def _check_ca_validity(path: list, now: dt.datetime) -> ChainResult:
    """Every CA of a complete path (not the leaf: that is the validity check) must be current."""
    for ca in path[1:]:
        if now < ca.not_valid_before_utc:
            return ChainResult(
                False,
                tuple(path),
                f"CA {describe(ca)} in the chain is not valid until "
                f"{iso_utc(ca.not_valid_before_utc)}",
                "check the clock, or wait until that CA is valid",
            )
        if now >= ca.not_valid_after_utc:
            return ChainResult(
                False,
                tuple(path),
                f"CA {describe(ca)} in the chain expired on {iso_utc(ca.not_valid_after_utc)}",
                f"renew CA {describe(ca)}, reissue from it and distribute it to every truststore",
            )
    return ChainResult(True, tuple(path))


# ----------------------------------------------------------------------------- the checks


def validate(
    bundle: Bundle,
    *,
    node: str,
    names: dict,
    trust_anchors: list[x509.Certificate] | None = None,
    min_days_remaining: int = 30,
    now: dt.datetime | None = None,
    peers: list[dict] | None = None,
    skip_cross_trust: bool = False,
) -> list[dict]:
    """Run every check; one ``{check, ok, message, fix}`` finding each, in a fixed order.

    Nothing is raised for a failed check: pass the result to :func:`raise_on_failures`
    (or report it) as the caller sees fit.
    """
    now = as_utc(now)
    anchors = list(bundle.trust if trust_anchors is None else trust_anchors)
    return [
        _check_chain(bundle, anchors, now),
        _check_key_match(bundle),
        _check_names(bundle, names),
        _check_validity(bundle, min_days_remaining, now),
        _check_key_policy(bundle),
        _check_signature(bundle),
        _check_eku(bundle),
        _check_cross_trust(bundle, node, peers, skip_cross_trust, now),
    ]


def _check_chain(bundle: Bundle, anchors, now) -> dict:
    result = build_chain(bundle.cert, bundle.chain, anchors, now)
    if result.ok:
        path = " -> ".join(describe(c) for c in result.path)
        return _finding("chain", True, f"chain builds to a trusted CA: {path}")
    return _finding("chain", False, result.problem, result.fix)


def _check_key_match(bundle: Bundle) -> dict:
    if _spki(bundle.key) == _spki(bundle.cert):
        return _finding("key_match", True, "the key matches the certificate's public key")
    return _finding(
        "key_match",
        False,
        f"the key ({describe_key(bundle.key)}) is not the key of certificate "
        f"{describe(bundle.cert)} ({describe_key(bundle.cert.public_key())})",
        "pass the private key the certificate was issued for (or the certificate for this key)",
    )


def _check_names(bundle: Bundle, names: dict) -> dict:
    wanted_ips, wanted_dns = _as_list((names or {}).get("ips")), _as_list((names or {}).get("dns"))
    if not wanted_ips and not wanted_dns:
        return _finding(
            "names",
            False,
            "no node names were given to check against the SAN",
            "pass names={'ips': [listen/rpc addresses], 'dns': [hostnames]}",
        )
    san = _extension(bundle.cert, x509.SubjectAlternativeName)
    wanted = ", ".join([*(f"IP:{i}" for i in wanted_ips), *(f"DNS:{d}" for d in wanted_dns)])
    if san is None:
        return _finding(
            "names",
            False,
            f"certificate {describe(bundle.cert)} has no subjectAltName extension",
            f"reissue it with subjectAltName {wanted}",
        )
    san_ips = list(san.get_values_for_type(x509.IPAddress))
    san_dns = san.get_values_for_type(x509.DNSName)
    missing = []
    for ip in wanted_ips:
        try:
            if ipaddress.ip_address(str(ip).strip()) not in san_ips:
                missing.append(f"IP:{ip}")
        except ValueError:
            missing.append(f"IP:{ip} (not an IP address: check names.ips)")
    missing += [f"DNS:{d}" for d in wanted_dns if not any(_dns_matches(p, d) for p in san_dns)]
    has = ", ".join([*(f"IP:{i}" for i in san_ips), *(f"DNS:{d}" for d in san_dns)]) or "nothing"
    if missing:
        return _finding(
            "names",
            False,
            f"not covered by the certificate's SAN: {', '.join(missing)} (the SAN has {has})",
            f"reissue the certificate with subjectAltName {wanted}",
        )
    return _finding("names", True, f"the SAN covers {wanted}")


def _as_list(value) -> list:
    # A lone string is one name, not a list of characters.
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _dns_matches(pattern: str, name: str) -> bool:
    """Case-insensitive; ``*.example.com`` matches exactly one extra leading label."""
    pattern, name = pattern.lower().rstrip("."), str(name).strip().lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "." not in pattern[2:]:
        return False  # no wildcard, or one as broad as "*.com"
    suffix = pattern[1:]
    label = name[: -len(suffix)] if name.endswith(suffix) else ""
    return bool(label) and "." not in label


def _check_validity(bundle: Bundle, min_days: int, now: dt.datetime) -> dict:
    start, end = bundle.cert.not_valid_before_utc, bundle.cert.not_valid_after_utc
    if now < start:
        return _finding(
            "validity",
            False,
            f"not yet valid: valid from {iso_utc(start)} (now is {iso_utc(now)})",
            "check the clocks of the issuing host and the node, or reissue with a start time "
            "in the past",
        )
    if now >= end:
        return _finding(
            "validity", False, f"expired on {iso_utc(end)}", "renew the certificate and deploy that"
        )
    if now + dt.timedelta(days=min_days) >= end:
        left = (end - now).days
        return _finding(
            "validity",
            False,
            f"expires within {min_days} days: on {iso_utc(end)} ({left} days left, "
            f"minimum is {min_days})",
            "renew the certificate (or lower min_days_remaining deliberately)",
        )
    return _finding("validity", True, f"valid from {iso_utc(start)} until {iso_utc(end)}")


def _check_key_policy(bundle: Bundle) -> dict:
    pub = bundle.cert.public_key()
    desc = describe_key(pub)
    ok = (isinstance(pub, rsa.RSAPublicKey) and pub.key_size >= MIN_RSA_BITS) or (
        isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name in ALLOWED_CURVES
    )
    if ok:
        return _finding("key_policy", True, f"key is {desc}")
    return _finding(
        "key_policy",
        False,
        f"key {desc} is not allowed (RSA >= {MIN_RSA_BITS} bits or EC "
        f"{'/'.join(ALLOWED_CURVES)} only)",
        f"reissue with a new key: {_key_type_fix()}",
    )


def _weak_hash(cert: x509.Certificate) -> str | None:
    """``SHA1``/``MD5`` (or a note for an unknown algorithm) when the signature hash is weak."""
    try:
        alg = cert.signature_hash_algorithm  # None for Ed25519/Ed448: not a weak hash
    except UnsupportedAlgorithm:
        return "an unrecognised signature algorithm"
    return alg.name.upper() if alg is not None and alg.name in WEAK_HASHES else None


def _check_signature(bundle: Bundle) -> dict:
    weak = [
        f"{describe(cert)} ({_weak_hash(cert)})"
        for cert in (bundle.cert, *bundle.chain)
        if _weak_hash(cert)
    ]
    if weak:
        return _finding(
            "signature",
            False,
            f"weak signature hash on {', '.join(weak)}",
            "reissue those certificates signed with SHA-256 or stronger",
        )
    return _finding("signature", True, "no SHA-1/MD5 signature on the leaf or the chain")


def _check_eku(bundle: Bundle) -> dict:
    eku = _extension(bundle.cert, x509.ExtendedKeyUsage)
    if eku is None:
        return _finding(
            "eku",
            False,
            "the certificate has no extendedKeyUsage extension",
            "reissue it with extendedKeyUsage serverAuth, clientAuth (internode mTLS needs both)",
        )
    wanted = {
        "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
        "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    }
    missing = [name for name, oid in wanted.items() if oid not in eku]
    if missing:
        return _finding(
            "eku",
            False,
            f"extendedKeyUsage lacks {', '.join(missing)}",
            "reissue it with extendedKeyUsage serverAuth, clientAuth (internode mTLS needs both)",
        )
    return _finding("eku", True, "extendedKeyUsage has serverAuth and clientAuth")


def _check_cross_trust(bundle: Bundle, node: str, peers, skip: bool, now) -> dict:
    """Would the cluster still talk after this node swaps its cert and truststore?

    (1) the new truststore must trust each peer's current chain (this node as server and
    client); (2) each peer's current truststore must trust the new chain.
    """
    if skip:
        return _finding("cross_trust", True, "skipped by caller (skip_cross_trust=True)")
    if peers is None:
        return _finding(
            "cross_trust",
            False,
            "peers were not given, so cross-trust with the cluster is unchecked",
            "pass peers=[{node, chain_pem, trust_pem}, ...] or skip_cross_trust=True",
        )
    failures, fixes, unreadable = [], [], []
    for index, peer in enumerate(peers):
        name = (
            str(peer.get("node") or f"peers[{index}]")
            if isinstance(peer, dict)
            else f"peers[{index}]"
        )
        try:
            chain = load_certs(peer.get("chain_pem"), name, "chain_pem")
            trust = load_certs(peer.get("trust_pem"), name, "trust_pem")
        except (SaltInvocationError, AttributeError) as exc:
            failures.append(f"peer {name} unreadable: {exc}")
            unreadable.append(f"pass a valid chain_pem and trust_pem for {name}")
            continue
        to_peer = build_chain(chain[0], chain[1:], bundle.trust, now)
        if not to_peer.ok:
            failures.append(
                f"direction 1: the new truststore of {node} does not trust {name}'s current "
                f"certificate ({to_peer.problem})"
            )
            top = to_peer.path[-1]
            fixes.append(
                f"the new truststore must include the CA of {name} "
                f"('{top.issuer.rfc4514_string()}')"
            )
        from_peer = build_chain(bundle.cert, bundle.chain, trust, now)
        if not from_peer.ok:
            failures.append(
                f"direction 2: {name}'s current truststore does not trust the new certificate "
                f"of {node} ({from_peer.problem})"
            )
            fixes.append(
                "phase 1: add the new CA to every truststore first "
                f"({name} included), then deploy the new certificate"
            )
    if failures:
        rotation = ["a CA rotation is needed: " + "; ".join(dict.fromkeys(fixes))] if fixes else []
        return _finding("cross_trust", False, "; ".join(failures), "; ".join(unreadable + rotation))
    return _finding("cross_trust", True, f"trust holds both ways with {len(peers)} peer(s)")


def raise_on_failures(findings: list[dict], node: str) -> None:
    """Raise :func:`bad_input` for the first failed finding, naming every failed check."""
    failed = [f for f in findings if not f["ok"]]
    if not failed:
        return
    first = failed[0]
    names = ", ".join(f["check"] for f in failed)
    raise bad_input(
        node, first["check"], f"{first['message']} (failed checks: {names})", first["fix"]
    )


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


def keystore_check(bundle: Bundle, store_type: str, password: str | None, node: str) -> dict:
    """Build the keystore, reopen it with ``password`` and confirm it holds this bundle."""
    kind = _store_type(store_type, node)
    data = build_keystore(bundle, kind, password, node=node)
    fix = "report this: the keystore writer produced a store that does not round-trip"
    try:
        key, cert, chain = open_keystore(data, kind, password, node)
    except SaltInvocationError as exc:
        return _finding("keystore", False, f"the built {kind} keystore does not reopen: {exc}", fix)
    problems = []
    if fingerprint(cert) != bundle.fingerprint:
        problems.append(f"it holds certificate {fingerprint(cert)}, not {bundle.fingerprint}")
    if _spki(key) != _spki(bundle.cert):
        problems.append("its key is not the certificate's key")
    if [fingerprint(c) for c in chain] != [fingerprint(c) for c in bundle.chain]:
        problems.append(f"it holds {len(chain)} chain certificate(s), expected {len(bundle.chain)}")
    if problems:
        return _finding("keystore", False, f"the built {kind} keystore: {'; '.join(problems)}", fix)
    return _finding(
        "keystore",
        True,
        f"the {kind} keystore opens with the password and holds exactly the key entry "
        f"{bundle.fingerprint} with {len(chain)} chain certificate(s)",
    )


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
