"""Certification-path validation of the chain a target will *serve*, by the maintained library.

The verdict is ``cryptography.x509.verification``'s (RFC 5280 path building, signature and
validity checks, name constraints, basicConstraints, critical extensions): its client verifier,
and its server verifier for each of the target's names, with a ``Store`` of the truststore's
self-signed roots only. The served chain (leaf + the intermediates in the keystore) must reach
a root on its own: peers and drivers that trust only the root cannot borrow intermediates from
this node's truststore.

Two profiles, both the library's:

* **tls** decides. It is the WebPKI profile with the three RFC 5280 MUSTs that Java's PKIX and
  OpenSSL (the node's peers and drivers) do not enforce relaxed: keyUsage may be absent on a CA
  (if present it must assert keyCertSign), a CA's basicConstraints may be non-critical, and a
  leaf may lack authorityKeyIdentifier. extendedKeyUsage and the SAN are the caller's own
  checks, so the path verdict does not depend on them.
* **strict** is the unmodified WebPKI profile; what it refuses on top of **tls** is returned as
  advice (Python 3.13 clients verify with ``VERIFY_X509_STRICT``, which is close to it).

The library's terse errors are mapped to messages naming the certificate and the fix; the small
walk in :func:`_explain` only explains a failure, it never passes a chain.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import verification as xv

from . import timeutil

MAX_CHAIN_DEPTH = 8
WEAK_HASHES = ("sha1", "md5")


@dataclass(frozen=True)
class PathResult:
    """``path`` runs leaf -> ... -> root when ``ok``; otherwise ``problem`` and ``fix`` say why."""

    ok: bool
    path: tuple[x509.Certificate, ...] = ()
    problem: str = ""
    fix: str = ""
    advice: str = ""  # what the strict RFC 5280 profile refuses besides, when ok


# ----------------------------------------------------------------------------- small helpers


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def describe(cert: x509.Certificate) -> str:
    return f"'{cert.subject.rfc4514_string()}'"


iso_utc = timeutil.iso_utc


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name chaining plus the signature: only used to *explain* failures."""
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and issued_by(cert, cert)


def roots(trust) -> list[x509.Certificate]:
    """The trust anchors: the self-signed certificates of a trust bundle, nothing else."""
    return [c for c in trust if is_self_signed(c)]


def weak_hash(cert: x509.Certificate) -> str | None:
    """``SHA1``/``MD5`` (or a note for an unknown algorithm) when the signature hash is weak."""
    try:
        alg = cert.signature_hash_algorithm  # None for Ed25519/Ed448: not a weak hash
    except UnsupportedAlgorithm:
        return "an unrecognised signature algorithm"
    return alg.name.upper() if alg is not None and alg.name in WEAK_HASHES else None


def _small_rsa(cert: x509.Certificate) -> int:
    """The modulus size of an RSA key under 2048 bits, else 0."""
    key = cert.public_key()
    return key.key_size if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048 else 0


# ----------------------------------------------------------------------------- profiles


def _ca_key_usage(_policy, _cert, key_usage) -> None:
    if key_usage is not None and not key_usage.key_cert_sign:
        raise ValueError("a CA's keyUsage must assert keyCertSign")


def _ca_basic_constraints(_policy, _cert, constraints) -> None:
    if not constraints.ca:
        raise ValueError("basicConstraints.cA is not asserted: the issuer is not a CA")


def _policies(profile: str, *, check_san: bool) -> tuple:
    ca, ee = xv.ExtensionPolicy.webpki_defaults_ca(), xv.ExtensionPolicy.webpki_defaults_ee()
    if profile == "strict":
        return ca, ee
    agnostic = xv.Criticality.AGNOSTIC
    ca = ca.may_be_present(x509.KeyUsage, agnostic, _ca_key_usage).require_present(
        x509.BasicConstraints, agnostic, _ca_basic_constraints
    )
    ee = ee.may_be_present(x509.ExtendedKeyUsage, agnostic, None).may_be_present(
        x509.AuthorityKeyIdentifier, agnostic, None
    )
    if not check_san:
        ee = ee.may_be_present(x509.SubjectAlternativeName, agnostic, None)
    return ca, ee


def _builder(anchors, at: dt.datetime, profile: str, *, check_san: bool) -> xv.PolicyBuilder:
    ca, ee = _policies(profile, check_san=check_san)
    return (
        xv.PolicyBuilder()
        .store(xv.Store(list(anchors)))
        .time(at)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca, ee_policy=ee)
    )


def _subject(name: str):
    try:
        return xv.IPAddress(ipaddress.ip_address(str(name).strip()))
    except ValueError:
        return xv.DNSName(str(name).strip())


def _path_time(leaf: x509.Certificate, now: dt.datetime) -> dt.datetime:
    """``now``, or the nearest moment inside the leaf's validity: the leaf's own dates are the
    validity check's to report, and must not hide what is wrong with the path."""
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        return start
    if now >= end:
        return end - dt.timedelta(seconds=1)
    return now


def _library_message(exc: Exception) -> str:
    text = str(exc).removeprefix("validation failed: ")
    return text.split(" (encountered processing", 1)[0].strip()


# ----------------------------------------------------------------------------- the verdict


def verify_served(
    leaf: x509.Certificate,
    served,
    trust,
    *,
    now: dt.datetime,
    names=(),
    complete: bool = True,
) -> PathResult:
    """Does ``leaf`` + ``served`` (the intermediates the target sends) verify to a self-signed
    root of ``trust``, as a TLS client and as a server for each of ``names``?

    ``complete`` adds the served-chain rules: nothing in ``served`` off the leaf's path, and
    every CA on it valid *now* (the library checked them at the path time).
    """
    served, trust = list(served), list(trust)
    anchors = roots(trust)
    if not anchors:
        held = ", ".join(describe(c) for c in trust) or "nothing"
        return PathResult(
            False,
            problem=f"the trust bundle holds no self-signed root CA (it holds {held})",
            fix="add the root CA that anchors the chain to trust; intermediates belong in chain",
        )
    at = _path_time(leaf, now)
    try:
        verified = _builder(anchors, at, "tls", check_san=False).build_client_verifier()
        path = tuple(verified.verify(leaf, served).chain)
    except xv.VerificationError as exc:
        if at != now:
            # The leaf is outside its validity (the validity check's finding); the library
            # cannot judge the path then, so the name-and-signature walk does, at ``now``.
            return _walk(leaf, served, trust, anchors, now)
        return _explain(leaf, served, trust, anchors, at, _library_message(exc))
    if complete:
        on_path = {der(c) for c in path}
        extra = [c for c in served if der(c) not in on_path]
        if extra:
            return PathResult(
                False,
                path,
                f"the served chain holds {', '.join(describe(c) for c in extra)}, which is not "
                f"on the path {arrow(path)}",
                "remove it from chain: the node sends every chain certificate to each peer",
            )
        expired = _ca_validity(path, now)
        if expired:
            return expired
    for name in names:
        try:
            _builder(anchors, at, "tls", check_san=True).build_server_verifier(
                _subject(name)
            ).verify(leaf, served)
        except (xv.VerificationError, ValueError) as exc:
            return PathResult(
                False,
                path,
                f"the TLS server verifier refuses {describe(leaf)} for {name}: "
                f"{_library_message(exc)}",
                f"reissue it with subjectAltName covering {name}",
            )
    return PathResult(True, path, advice=_strict_advice(leaf, served, anchors, at, names))


def trusted_by(chain, trust, *, now: dt.datetime) -> PathResult:
    """Would a peer holding ``trust`` accept the leaf + intermediates ``chain``? (cross-trust,
    CA rotation): the same verdict, without the served-chain rules."""
    chain = list(chain)
    return verify_served(chain[0], chain[1:], trust, now=now, complete=False)


def _strict_advice(leaf, served, anchors, at, names) -> str:
    try:
        builder = _builder(anchors, at, "strict", check_san=True)
        builder.build_client_verifier().verify(leaf, served)
        for name in names:
            builder.build_server_verifier(_subject(name)).verify(leaf, served)
    except (xv.VerificationError, ValueError) as exc:
        return (
            f"the strict RFC 5280 profile (as Python 3.13's VERIFY_X509_STRICT) refuses it: "
            f"{_library_message(exc)}; Java and OpenSSL peers accept it"
        )
    return ""


def arrow(path) -> str:
    return " -> ".join(describe(c) for c in path)


def _ca_validity(path, now: dt.datetime) -> PathResult | None:
    """Every CA of the path must be valid now (the leaf's dates are the validity check's)."""
    for ca in path[1:]:
        if now < ca.not_valid_before_utc:
            return PathResult(
                False,
                tuple(path),
                f"CA {describe(ca)} in the chain is not valid until "
                f"{iso_utc(ca.not_valid_before_utc)}",
                "check the clock, or wait until that CA is valid",
            )
        if now >= ca.not_valid_after_utc:
            return PathResult(
                False,
                tuple(path),
                f"CA {describe(ca)} in the chain expired on {iso_utc(ca.not_valid_after_utc)}",
                f"renew CA {describe(ca)}, reissue from it and distribute it to every truststore",
            )
    return None


# ----------------------------------------------------------------------------- explanations


def _explain(leaf, served, trust, anchors, at, library: str) -> PathResult:
    """Turn the library's refusal into what is wrong and what to do."""
    if "must not be asserted in an EE" in library and "basicConstraints" in library:
        return PathResult(
            False,
            problem=f"{describe(leaf)} is a CA certificate (basicConstraints CA:TRUE); a TLS "
            "leaf must be an end-entity certificate",
            fix="reissue it with basicConstraints CA:FALSE from the issuing CA",
        )
    if "keyUsage must not assert keyCertSign" in library:
        return PathResult(
            False,
            problem=f"{describe(leaf)} asserts keyUsage keyCertSign: a leaf must not sign "
            "certificates",
            fix="reissue it with keyUsage digitalSignature (plus keyEncipherment for RSA)",
        )
    if "unaccounted-for critical extensions" in library:
        oid = library.split("invalid extension: ", 1)[-1].split(":", 1)[0]
        return PathResult(
            False,
            problem=f"a certificate of the chain carries critical extension {oid}, which TLS "
            "peers do not understand (Java and OpenSSL refuse the chain)",
            fix="reissue it without that extension, or with it marked non-critical",
        )
    if "Forbidden signature algorithm" in library:
        weak = [c for c in (leaf, *served) if weak_hash(c)]
        if weak:
            return PathResult(
                False,
                problem=f"the signature on {describe(weak[0])} uses {weak_hash(weak[0])}, "
                "which is refused",
                fix="reissue it signed with SHA-256 or stronger",
            )
    if "key is too weak" in library:
        weak = [c for c in (leaf, *served, *trust) if _small_rsa(c)]
        if weak:
            return PathResult(
                False,
                problem=f"{describe(weak[0])} has an RSA {_small_rsa(weak[0])}-bit key; TLS "
                "path validation refuses RSA keys under 2048 bits",
                fix=f"re-key {describe(weak[0])} with RSA 2048+ or EC P-256 and reissue from it",
            )
    walked = _walk(leaf, served, trust, anchors, at)
    if not walked.ok:
        return walked
    return PathResult(
        False,
        problem=f"the chain of {describe(leaf)} does not verify (RFC 5280 path validation): "
        f"{library}",
        fix="reissue the certificate from the CA in trust, and put every intermediate in chain",
    )


def _walk(leaf, served, trust, anchors, at) -> PathResult:
    """Follow issuers by name and signature to say *where* the path breaks (``ok`` when the
    walk itself finds nothing wrong)."""
    anchor_ders = {der(a) for a in anchors}
    borrowed = [c for c in trust if der(c) not in anchor_ders]
    path, current = [leaf], leaf
    for _ in range(MAX_CHAIN_DEPTH):
        if der(current) in anchor_ders:
            return PathResult(True, tuple(path))
        anchor = next((a for a in anchors if issued_by(current, a)), None)
        if anchor is not None:
            full = [*path, anchor]
            return (
                _ca_validity(full, at) or _off_path(served, full) or PathResult(True, tuple(full))
            )
        issuer = next((c for c in served if c not in path and issued_by(current, c)), None)
        if issuer is None:
            lent = next((c for c in borrowed if issued_by(current, c)), None)
            if lent is not None:
                return PathResult(
                    False,
                    tuple(path),
                    f"the served chain lacks intermediate {describe(lent)}: it is only in the "
                    "trust bundle, so a peer or driver that trusts only the root refuses this "
                    "node ('unable to get local issuer certificate')",
                    f"add {describe(lent)} to the bundle's chain",
                )
            return _no_issuer(current, path, served, trust)
        constraints = _basic_constraints(issuer)
        if not (constraints and constraints.ca):
            return PathResult(
                False,
                tuple(path),
                f"{describe(issuer)} issued {describe(current)} but is not a CA "
                "(no basicConstraints CA:TRUE)",
                "issue the certificate from a proper CA certificate",
            )
        path.append(issuer)
        current = issuer
    return PathResult(
        False,
        tuple(path),
        f"no trusted CA within {MAX_CHAIN_DEPTH} certificates of {describe(leaf)}",
        "pass a shorter chain that ends at a CA in the truststore",
    )


def _off_path(served, path) -> PathResult | None:
    on_path = {der(c) for c in path}
    extra = [c for c in served if der(c) not in on_path]
    if not extra:
        return None
    return PathResult(
        False,
        tuple(path),
        f"the served chain holds {', '.join(describe(c) for c in extra)}, which is not on the "
        f"path {arrow(path)}",
        "remove it from chain: the node sends every chain certificate to each peer",
    )


def _basic_constraints(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def _no_issuer(current, path, served, trust) -> PathResult:
    issuer_name = f"'{current.issuer.rfc4514_string()}'"
    if is_self_signed(current):
        return PathResult(
            False,
            tuple(path),
            f"untrusted issuer: the chain ends at self-signed {describe(current)}, which is "
            "not a trusted CA",
            "reissue the certificate from a trusted CA; if "
            f"{describe(current)} is the intended new CA, a CA rotation is needed "
            "(phase 1: add it to every truststore first)",
        )
    if any(c.subject == current.issuer for c in [*trust, *served]):
        weak = weak_hash(current)
        if weak:
            return PathResult(
                False,
                tuple(path),
                f"the signature on {describe(current)} uses {weak}, which is refused",
                "reissue it signed with SHA-256 or stronger",
            )
        return PathResult(
            False,
            tuple(path),
            f"the signature on {describe(current)} does not verify against any CA named "
            f"{issuer_name} (CA re-keyed under the same name, or a refused algorithm)",
            "supply the CA certificate whose key actually signed it, or reissue the certificate",
        )
    return PathResult(
        False,
        tuple(path),
        f"missing intermediate: issuer {issuer_name} of {describe(current)} is neither in the "
        "chain nor a trusted CA",
        f"add the intermediate CA certificate {issuer_name} to chain (or after the leaf in "
        f"cert); if {issuer_name} is a root CA it is not trusted: reissue from a trusted CA",
    )
