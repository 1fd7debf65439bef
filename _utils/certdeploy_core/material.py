"""The TLS material of a target: what is on disk now, what a bundle would write, and the TLS
contexts the probes use. Pure logic; the key never leaves this process except into the
target's own files (and, briefly, a private temp file that ``ssl`` needs to load it).
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import ssl
import tempfile

from salt.exceptions import CommandExecutionError, SaltInvocationError

from . import bundle as cb
from . import cassandra_yaml as cyaml
from . import probe


def read_bundle(target, data: dict) -> cb.Bundle:
    """A bundle from pillar (never from job arguments): PEM ``cert``/``key``/``chain``/
    ``trust``, or a ready PKCS#12 (``pkcs12`` base64 + ``pkcs12_password``) plus ``trust``."""
    if not isinstance(data, dict) or not data:
        raise SaltInvocationError(
            f"{target.node}: bundle: empty. Fix: put cert, key and trust in pillar "
            "certdeploy:bundles:<target> (or certdeploy:bundle), or in the master's store "
            "(salt-run certdeploy.store_put)"
        )
    if "pkcs12" not in data:
        return cb.load_bundle(data, target.node)
    try:
        raw = base64.b64decode(data["pkcs12"], validate=True)
    except (ValueError, TypeError):
        raise SaltInvocationError(
            f"{target.node}: pkcs12: not base64. Fix: base64-encode the .p12 file"
        ) from None
    if len(raw) > cb.MAX_INPUT_BYTES:
        raise SaltInvocationError(f"{target.node}: pkcs12: over 1 MiB. Fix: send only the bundle")
    key, cert, chain = cb.open_keystore(
        raw, "pkcs12", data.get("pkcs12_password"), target.node, field="pkcs12"
    )
    trust = cb.load_bundle(
        {"cert": cb.cert_pem(cert), "key": _key_pem(key), "trust": data.get("trust")}, target.node
    ).trust
    return cb.Bundle(cert=cert, key=key, chain=tuple(chain), trust=trust)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def on_disk(target) -> dict:
    """What the target's files hold now: ``{"keystore": {...}|None, "truststore": [...]|None}``.

    Returns public facts only (fingerprints, expiry); an unreadable store gives an ``error``.
    """
    result = {"keystore": None, "truststore": None}
    if os.path.exists(target.keystore):
        try:
            _key, cert, chain = open_current_keystore(target)
            result["keystore"] = {
                "fingerprint": cb.fingerprint(cert),
                "not_after": cert.not_valid_after_utc.isoformat(),
                "issuer": cert.issuer.rfc4514_string(),
                "chain": [cb.fingerprint(c) for c in chain],
            }
        except (SaltInvocationError, CommandExecutionError) as exc:
            result["keystore"] = {"error": str(exc)}
    if os.path.exists(target.truststore):
        try:
            result["truststore"] = [cb.fingerprint(c) for c in current_trust(target)]
        except (SaltInvocationError, CommandExecutionError) as exc:
            result["truststore"] = {"error": str(exc)}
    return result


def configured_fingerprint(target) -> str | None:
    """Fingerprint of the keystore cassandra.yaml points the client port at right now: what
    the node serves once (re)activated. ``None`` when it cannot be read."""
    try:
        client = cyaml.read_tls(target.config_file, node=target.node)["client_encryption_options"]
        pem = "PEMBased" in str((client.get("ssl_context_factory") or {}).get("class_name"))
        with open(client["keystore"], "rb") as fh:
            data = fh.read()
        _key, cert, _chain = cb.open_keystore(
            data, "pem" if pem else "pkcs12", client.get("keystore_password"), target.node
        )
        return cb.fingerprint(cert)
    except (OSError, KeyError, TypeError, SaltInvocationError, CommandExecutionError):
        return None


def open_current_keystore(target):
    with open(target.keystore, "rb") as fh:
        data = fh.read()
    return cb.open_keystore(data, target.store_type, target.keystore_password, target.node)


def current_trust(target) -> list:
    with open(target.truststore, "rb") as fh:
        data = fh.read()
    return cb.read_truststore(data, target.store_type, target.truststore_password, target.node)


def current_chain_pem(target) -> str:
    """Leaf + intermediates of the installed keystore, as PEM (public: shared with peers)."""
    _key, cert, chain = open_current_keystore(target)
    return cb.cert_pem(cert, *chain)


def keystore_matches(target, bundle: cb.Bundle) -> bool:
    """True when the installed keystore already holds exactly this key, leaf and chain.
    PKCS#12 output is salted, so bytes differ run to run: compare content, not bytes."""
    try:
        key, cert, chain = open_current_keystore(target)
    except (OSError, SaltInvocationError, CommandExecutionError):
        return False
    return (
        cb.fingerprint(cert) == bundle.fingerprint
        and [cb.fingerprint(c) for c in chain] == [cb.fingerprint(c) for c in bundle.chain]
        and _spki(key.public_key()) == _spki(bundle.key.public_key())
    )


def truststore_matches(target, bundle: cb.Bundle) -> bool:
    try:
        current = {cb.fingerprint(c) for c in current_trust(target)}
    except (OSError, SaltInvocationError, CommandExecutionError):
        return False
    return current == {cb.fingerprint(c) for c in bundle.trust}


def _spki(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@contextlib.contextmanager
def _private_dir():
    path = tempfile.mkdtemp(prefix="certdeploy-")  # mkdtemp makes it 0700
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def load_identity(ctx: ssl.SSLContext, target, own=False) -> None:
    """Present a client identity: ``verify_client`` files from pillar (unless ``own``), or the
    node's own installed key + chain (it carries clientAuth, which internode mTLS needs)."""
    if target.verify_client.get("cert") and not own:
        ctx.load_cert_chain(target.verify_client["cert"], target.verify_client.get("key"))
        return
    key, cert, chain = open_current_keystore(target)
    with _private_dir() as tmp:
        path = os.path.join(tmp, "identity.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_key_pem(key) + cb.cert_pem(cert, *chain).encode())
        ctx.load_cert_chain(path)  # read into memory; the file is removed right after


def probe_context(target) -> ssl.SSLContext:
    """For reading the served certificate: trusts anything, presents an identity for mTLS."""
    ctx = probe.client_context()
    load_identity(ctx, target)
    return ctx


def cql_context(target) -> ssl.SSLContext:
    """For the CQL check: verifies the node against its own truststore and the address SAN."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=cb.cert_pem(*current_trust(target)))
    load_identity(ctx, target)
    return ctx


def peer_context(target) -> ssl.SSLContext:
    """What this node's internode connections are: its own installed identity, and peers'
    certificates verified against its installed truststore (no name check: Cassandra's
    ``require_endpoint_verification`` is the yaml's business)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cadata=cb.cert_pem(*current_trust(target)))
    load_identity(ctx, target, own=True)
    return ctx
