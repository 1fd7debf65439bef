"""Keystores and truststores as Cassandra reads them: PKCS#12 or PEM, built from a bundle and
opened again (the PKCS#12 key bags counted by walking the DER, so a store with two keys or
none is refused with a reason)."""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from .pem import (
    _CERT_LABEL,
    _KEY_LABELS,
    _OID_DATA,
    _OID_KEY_BAGS,
    STORE_TYPES,
    _as_bytes,
    _decrypt_key,
    _dedupe,
    _passphrase_bytes,
    _pem_blocks,
    bad_input,
    cert_pem,
    load_certs,
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
    bundle,  # a bundle.Bundle (leaf, key, chain); not imported: bundle imports this module
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
