"""Load, validate and package a node's TLS bundle (leaf, key, intermediates, trusted CAs).

Pure logic: no Salt dunders, nothing touches the node. Every bad input becomes a
``SaltInvocationError`` naming the node, the field and the fix (see :func:`bad_input`), and
:func:`validate` turns every check into a finding instead of raising, so the caller decides.

Private key material never appears in a message, a repr or a return value: messages name
certificates by subject and fingerprint only, and key-loading errors are raised ``from None``
so the library's own exception text is not chained into logs either.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from .pem import (
    MAX_INPUT_BYTES as MAX_INPUT_BYTES,
)

# The bundle's public face: the helpers of pem and stores are re-exported for callers.
from .pem import (
    _dedupe,
    _der,
    _load_key,
)
from .pem import (
    as_utc as as_utc,
)
from .pem import (
    bad_input as bad_input,
)
from .pem import (
    cert_pem as cert_pem,
)
from .pem import (
    describe as describe,
)
from .pem import (
    describe_key as describe_key,
)
from .pem import (
    extension as extension,
)
from .pem import (
    fingerprint as fingerprint,
)
from .pem import (
    iso_utc as iso_utc,
)
from .pem import (
    key_type_fix as key_type_fix,
)
from .pem import (
    load_certs as load_certs,
)
from .pem import (
    spki as spki,
)
from .stores import (
    STORE_TYPES as STORE_TYPES,
)
from .stores import (
    build_keystore as build_keystore,
)
from .stores import (
    build_truststore as build_truststore,
)
from .stores import (
    open_keystore as open_keystore,
)
from .stores import (
    read_truststore as read_truststore,
)

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
