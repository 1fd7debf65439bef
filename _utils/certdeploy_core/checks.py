"""Every pre-activation check of a bundle, as findings: ``{check, ok, message, fix}``.

Path validation is the library's (:mod:`certdeploy_chain`); the checks here are the policy the
library leaves open: days left, key types and sizes on the whole chain, keyUsage, both EKUs,
key match, the node's names, and cross-trust with the cluster. ``docs/validation.md`` lists
each check, the error it gives and which layer makes it.

Nothing is raised for a failed check: :func:`raise_on_failures` turns the first into the
``<node>: <check>: <problem>. Fix: <fix>`` error when the caller wants one.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from salt.exceptions import SaltInvocationError

from . import bundle as cb
from . import chain

MIN_RSA_BITS = 2048
EKU_OIDS = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
}
NODE_EKU = ("serverAuth", "clientAuth")
ALLOWED_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def finding(check: str, ok: bool, message: str, fix: str = "") -> dict:
    return {"check": check, "ok": ok, "message": message, "fix": "" if ok else fix}


def validate(
    bundle: cb.Bundle,
    *,
    node: str,
    names: dict | None = None,
    identity: str | None = None,
    eku: tuple[str, ...] = NODE_EKU,
    trust_anchors: list[x509.Certificate] | None = None,
    min_days_remaining: int = 30,
    now: dt.datetime | None = None,
    peers: list[dict] | None = None,
    skip_cross_trust: bool = False,
) -> list[dict]:
    """Run every check; one finding each, in a fixed order. ``trust_anchors`` (default: the
    bundle's own trust) is what the chain must verify to.

    A node's leaf must cover ``names`` (its addresses and hostnames) and carry both EKUs; a
    client application's leaf carries the URI SAN ``identity`` names instead (a template with
    ``{generation}``, see :func:`identity_match`) and ``eku=("clientAuth",)``."""
    now = cb.as_utc(now)
    trust = list(bundle.trust if trust_anchors is None else trust_anchors)
    if identity is not None:
        names_finding, names = _check_identity(bundle, identity), {}
    else:
        names_finding = _check_names(bundle, names)
    eku_finding = _check_eku(bundle, eku)
    # The server verifier runs for each name only once names and EKUs are known good: their
    # own checks explain those failures better than the library's one-line refusal.
    verified_names = _name_list(names) if names_finding["ok"] and eku_finding["ok"] else []
    path = chain.verify_served(bundle.cert, bundle.chain, trust, now=now, names=verified_names)
    return [
        _check_chain(path),
        _check_key_match(bundle),
        names_finding,
        _check_validity(bundle, path, min_days_remaining, now),
        _check_key_policy(bundle, path),
        _check_key_usage(bundle),
        _check_signature(bundle),
        eku_finding,
        cross_trust(bundle, node, peers, skip_cross_trust, now),
    ]


def identity_match(template: str, uri: str) -> str | None:
    """The generation ``uri`` carries under ``template`` (``spiffe://x/orders/{generation}``),
    or None when it does not fit. A template without ``{generation}`` must match exactly."""
    pattern = re.escape(template).replace(r"\{generation\}", r"(?P<generation>[A-Za-z0-9._-]+)")
    found = re.fullmatch(pattern, uri)
    if not found:
        return None
    return found.groupdict().get("generation") or ""


def leaf_identity(cert: x509.Certificate, template: str) -> tuple[str | None, str | None]:
    """``(uri, generation)`` of the first URI SAN that fits ``template``."""
    san = cb.extension(cert, x509.SubjectAlternativeName)
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if san else ():
        generation = identity_match(template, uri)
        if generation is not None:
            return uri, generation
    return None, None


def _check_identity(bundle: cb.Bundle, template: str) -> dict:
    san = cb.extension(bundle.cert, x509.SubjectAlternativeName)
    uris = san.get_values_for_type(x509.UniformResourceIdentifier) if san else []
    uri, generation = leaf_identity(bundle.cert, template)
    if uri is None:
        return finding(
            "identity",
            False,
            f"certificate {cb.describe(bundle.cert)} carries no URI SAN that fits {template} "
            f"(its URIs: {', '.join(uris) or 'none'})",
            f"reissue it with subjectAltName URI:{template.replace('{generation}', '<gen>')}",
        )
    return finding("identity", True, f"the SAN carries {uri} (generation {generation!r})")


def raise_on_failures(findings: list[dict], node: str) -> None:
    """Raise :func:`certdeploy_bundle.bad_input` for the first failed finding, naming every
    failed check."""
    failed = [f for f in findings if not f["ok"]]
    if not failed:
        return
    first = failed[0]
    names = ", ".join(f["check"] for f in failed)
    raise cb.bad_input(
        node, first["check"], f"{first['message']} (failed checks: {names})", first["fix"]
    )


def advice(findings: list[dict]) -> list[str]:
    """Non-blocking notes attached to passed findings (e.g. the strict RFC 5280 profile)."""
    return [f["advice"] for f in findings if f.get("advice")]


# ----------------------------------------------------------------------------- the checks


def _check_chain(path: chain.PathResult) -> dict:
    if not path.ok:
        return finding("chain", False, path.problem, path.fix)
    result = finding(
        "chain", True, f"the served chain verifies to a root: {chain.arrow(path.path)}"
    )
    if path.advice:
        result["advice"] = path.advice
    return result


def _check_key_match(bundle: cb.Bundle) -> dict:
    if cb.spki(bundle.key) == cb.spki(bundle.cert):
        return finding("key_match", True, "the key matches the certificate's public key")
    return finding(
        "key_match",
        False,
        f"the key ({cb.describe_key(bundle.key)}) is not the key of certificate "
        f"{cb.describe(bundle.cert)} ({cb.describe_key(bundle.cert.public_key())})",
        "pass the private key the certificate was issued for (or the certificate for this key)",
    )


def _name_list(names: dict) -> list[str]:
    return [str(n) for n in (*_as_list((names or {}).get("ips")), *_as_list(names.get("dns")))]


def _check_names(bundle: cb.Bundle, names: dict) -> dict:
    wanted_ips, wanted_dns = _as_list((names or {}).get("ips")), _as_list((names or {}).get("dns"))
    if not wanted_ips and not wanted_dns:
        return finding(
            "names",
            False,
            "no node names were given to check against the SAN",
            "pass names={'ips': [listen/rpc addresses], 'dns': [hostnames]}",
        )
    san = cb.extension(bundle.cert, x509.SubjectAlternativeName)
    wanted = ", ".join([*(f"IP:{i}" for i in wanted_ips), *(f"DNS:{d}" for d in wanted_dns)])
    if san is None:
        return finding(
            "names",
            False,
            f"certificate {cb.describe(bundle.cert)} has no subjectAltName extension",
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
    missing += [f"DNS:{d}" for d in wanted_dns if not any(dns_matches(p, d) for p in san_dns)]
    has = ", ".join([*(f"IP:{i}" for i in san_ips), *(f"DNS:{d}" for d in san_dns)]) or "nothing"
    if missing:
        return finding(
            "names",
            False,
            f"not covered by the certificate's SAN: {', '.join(missing)} (the SAN has {has})",
            f"reissue the certificate with subjectAltName {wanted}",
        )
    return finding("names", True, f"the SAN covers {wanted}")


def _as_list(value) -> list:
    # A lone string is one name, not a list of characters.
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def dns_matches(pattern: str, name: str) -> bool:
    """Case-insensitive; ``*.example.com`` matches exactly one extra leading label."""
    pattern, name = pattern.lower().rstrip("."), str(name).strip().lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "." not in pattern[2:]:
        return False  # no wildcard, or one as broad as "*.com"
    suffix = pattern[1:]
    label = name[: -len(suffix)] if name.endswith(suffix) else ""
    return bool(label) and "." not in label


def _check_validity(bundle: cb.Bundle, path: chain.PathResult, min_days: int, now) -> dict:
    start, end = bundle.cert.not_valid_before_utc, bundle.cert.not_valid_after_utc
    iso = cb.iso_utc
    if now < start:
        return finding(
            "validity",
            False,
            f"not yet valid: valid from {iso(start)} (now is {iso(now)})",
            "check the clocks of the issuing host and the node, or reissue with a start time "
            "in the past",
        )
    if now >= end:
        return finding(
            "validity", False, f"expired on {iso(end)}", "renew the certificate and deploy that"
        )
    horizon = now + dt.timedelta(days=min_days)
    if horizon >= end:
        return finding(
            "validity",
            False,
            f"expires within {min_days} days: on {iso(end)} ({(end - now).days} days left, "
            f"minimum is {min_days})",
            "renew the certificate (or lower min_days_remaining deliberately)",
        )
    # A leaf stops working when any CA above it expires: hold the path to the same minimum.
    soon = [ca for ca in path.path[1:] if now < ca.not_valid_after_utc <= horizon]
    if soon:
        ca = min(soon, key=lambda c: c.not_valid_after_utc)
        return finding(
            "validity",
            False,
            f"CA {cb.describe(ca)} on the chain expires within {min_days} days, on "
            f"{iso(ca.not_valid_after_utc)}: the certificate stops working then",
            f"renew CA {cb.describe(ca)} and reissue from it (or lower min_days_remaining "
            "deliberately)",
        )
    return finding("validity", True, f"valid from {iso(start)} until {iso(end)}")


def _strong(public_key) -> bool:
    return (isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size >= MIN_RSA_BITS) or (
        isinstance(public_key, ec.EllipticCurvePublicKey)
        and public_key.curve.name in ALLOWED_CURVES
    )


def _check_key_policy(bundle: cb.Bundle, path: chain.PathResult) -> dict:
    """RSA >= 2048 or EC P-256/384/521 on the leaf *and* every CA above it: OpenSSL's default
    security level checks each certificate's key, not only the leaf's."""
    desc = cb.describe_key(bundle.cert.public_key())
    allowed = f"RSA >= {MIN_RSA_BITS} bits or EC {'/'.join(ALLOWED_CURVES)} only"
    if not _strong(bundle.cert.public_key()):
        return finding(
            "key_policy",
            False,
            f"key {desc} is not allowed ({allowed})",
            f"reissue with a new key: {cb.key_type_fix()}",
        )
    cas = list(path.path[1:]) or list(bundle.chain)
    weak = [ca for ca in cas if not _strong(ca.public_key())]
    if weak:
        listed = ", ".join(f"{cb.describe(c)} ({cb.describe_key(c.public_key())})" for c in weak)
        return finding(
            "key_policy",
            False,
            f"CA key too weak on the chain: {listed} ({allowed}; TLS peers refuse the chain)",
            "re-key that CA and reissue the certificates below it",
        )
    return finding("key_policy", True, f"key is {desc}; every CA key on the chain is allowed")


_KEY_USAGE_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _usage_bits(key_usage: x509.KeyUsage) -> set[str]:
    bits = {name for name in _KEY_USAGE_BITS if getattr(key_usage, name)}
    if key_usage.key_agreement:
        bits |= {n for n in ("encipher_only", "decipher_only") if getattr(key_usage, n)}
    return bits


def _check_key_usage(bundle: cb.Bundle) -> dict:
    """keyUsage, when present, must allow TLS 1.2/1.3 handshakes both ways (digitalSignature:
    Java's EndEntityChecker and OpenSSL require it for ECDHE and TLS 1.3) and must not make
    the leaf a certificate signer. keyEncipherment is allowed for RSA (RSA key exchange) and
    keyAgreement for EC; contentCommitment is harmless and common in enterprise templates."""
    key_usage = cb.extension(bundle.cert, x509.KeyUsage)
    if key_usage is None:
        return finding("key_usage", True, "no keyUsage extension: every key use is allowed")
    bits = _usage_bits(key_usage)
    is_rsa = isinstance(bundle.cert.public_key(), rsa.RSAPublicKey)
    allowed = {"digital_signature", "content_commitment"}
    allowed |= {"key_encipherment"} if is_rsa else {"key_agreement"}
    fix = (
        "reissue it with keyUsage digitalSignature"
        + (", keyEncipherment" if is_rsa else "")
        + " (or without keyUsage)"
    )
    if "digital_signature" not in bits:
        return finding(
            "key_usage",
            False,
            f"keyUsage lacks digitalSignature (it has {', '.join(sorted(bits)) or 'nothing'}): "
            "TLS 1.3 and ECDHE handshakes sign with the key, so peers refuse it",
            fix,
        )
    extra = sorted(bits - allowed)
    if extra:
        return finding(
            "key_usage",
            False,
            f"keyUsage asserts {', '.join(extra)}, which a TLS leaf with a "
            f"{cb.describe_key(bundle.cert.public_key())} key must not",
            fix,
        )
    return finding("key_usage", True, f"keyUsage {', '.join(sorted(bits))}")


def _check_signature(bundle: cb.Bundle) -> dict:
    weak = [
        f"{cb.describe(cert)} ({chain.weak_hash(cert)})"
        for cert in (bundle.cert, *bundle.chain)
        if chain.weak_hash(cert)
    ]
    if weak:
        return finding(
            "signature",
            False,
            f"weak signature hash on {', '.join(weak)}",
            "reissue those certificates signed with SHA-256 or stronger",
        )
    return finding("signature", True, "no SHA-1/MD5 signature on the leaf or the chain")


def _check_eku(bundle: cb.Bundle, wanted: tuple[str, ...] = NODE_EKU) -> dict:
    purpose = "internode mTLS needs both" if len(wanted) > 1 else "a client presents it"
    fix = f"reissue it with extendedKeyUsage {', '.join(wanted)} ({purpose})"
    eku = cb.extension(bundle.cert, x509.ExtendedKeyUsage)
    if eku is None:
        return finding("eku", False, "the certificate has no extendedKeyUsage extension", fix)
    missing = [name for name in wanted if EKU_OIDS[name] not in eku]
    if missing:
        return finding("eku", False, f"extendedKeyUsage lacks {', '.join(missing)}", fix)
    return finding("eku", True, f"extendedKeyUsage has {' and '.join(wanted)}")


def cross_trust(bundle: cb.Bundle, node: str, peers, skip: bool = False, now=None) -> dict:
    """Would the cluster still talk after this node swaps its cert and truststore? Public
    material only (the bundle's key is not read): the rollout's pre-flight runs it on the
    master, for the whole plan.

    (1) the new truststore must trust each peer's current chain (this node as server and
    client); (2) each peer's current truststore must trust the new chain.
    """
    if skip:
        return finding("cross_trust", True, "skipped by caller (skip_cross_trust=True)")
    if peers is None:
        return finding(
            "cross_trust",
            False,
            "peers were not given, so cross-trust with the cluster is unchecked",
            "pass peers=[{node, chain_pem, trust_pem}, ...] or skip_cross_trust=True",
        )
    now = cb.as_utc(now)
    failures, fixes, unreadable = [], [], []
    for index, peer in enumerate(peers):
        name = (
            str(peer.get("node") or f"peers[{index}]")
            if isinstance(peer, dict)
            else f"peers[{index}]"
        )
        try:
            peer_chain = cb.load_certs(peer.get("chain_pem"), name, "chain_pem")
            peer_trust = cb.load_certs(peer.get("trust_pem"), name, "trust_pem")
        except (SaltInvocationError, AttributeError) as exc:
            failures.append(f"peer {name} unreadable: {exc}")
            unreadable.append(f"pass a valid chain_pem and trust_pem for {name}")
            continue
        to_peer = chain.trusted_by(peer_chain, bundle.trust, now=now)
        if not to_peer.ok:
            failures.append(
                f"direction 1: the new truststore of {node} does not trust {name}'s current "
                f"certificate ({to_peer.problem})"
            )
            top = (to_peer.path or peer_chain)[-1]
            fixes.append(
                f"the new truststore must include the CA of {name} "
                f"('{top.issuer.rfc4514_string()}')"
            )
        from_peer = chain.trusted_by((bundle.cert, *bundle.chain), peer_trust, now=now)
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
        return finding("cross_trust", False, "; ".join(failures), "; ".join(unreadable + rotation))
    return finding("cross_trust", True, f"trust holds both ways with {len(peers)} peer(s)")


def keystore_check(bundle: cb.Bundle, store_type: str, password: str | None, node: str) -> dict:
    """Build the keystore, reopen it with ``password`` and confirm it holds this bundle."""
    data = cb.build_keystore(bundle, store_type, password, node=node)
    kind = str(store_type).lower()
    fix = "report this: the keystore writer produced a store that does not round-trip"
    try:
        key, cert, served = cb.open_keystore(data, kind, password, node)
    except SaltInvocationError as exc:
        return finding("keystore", False, f"the built {kind} keystore does not reopen: {exc}", fix)
    problems = []
    if cb.fingerprint(cert) != bundle.fingerprint:
        problems.append(f"it holds certificate {cb.fingerprint(cert)}, not {bundle.fingerprint}")
    if cb.spki(key) != cb.spki(bundle.cert):
        problems.append("its key is not the certificate's key")
    if [cb.fingerprint(c) for c in served] != [cb.fingerprint(c) for c in bundle.chain]:
        problems.append(
            f"it holds {len(served)} chain certificate(s), expected {len(bundle.chain)}"
        )
    if problems:
        return finding("keystore", False, f"the built {kind} keystore: {'; '.join(problems)}", fix)
    return finding(
        "keystore",
        True,
        f"the {kind} keystore opens with the password and holds exactly the key entry "
        f"{bundle.fingerprint} with {len(served)} chain certificate(s)",
    )
