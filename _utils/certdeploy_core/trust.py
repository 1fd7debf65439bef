"""Truststore arithmetic for ``certdeploy.trust_update`` (CA rotation phases 1 and 3): the
CAs a node trusts after adding and removing some, keyed by SHA-256 fingerprint."""

from __future__ import annotations

from salt.exceptions import SaltInvocationError

from . import bundle as cb


def updated(current, *, add=(), remove=(), node: str) -> list:
    """``current`` CAs plus every CA in the PEM strings ``add``, minus the fingerprints in
    ``remove`` (``aa:bb..`` or ``aabb..``); refuses to leave nothing."""
    trust = {cb.fingerprint(c): c for c in current}
    for pem in add or ():
        for ca in cb.load_certs(pem, node, "add"):
            trust[cb.fingerprint(ca)] = ca
    for fingerprint in remove or ():
        trust.pop(str(fingerprint).lower().replace(":", ""), None)
    if not trust:
        raise SaltInvocationError(
            f"{node}: remove: would leave the truststore empty. "
            "Fix: keep at least the CA that issued the node certificates"
        )
    return list(trust.values())
