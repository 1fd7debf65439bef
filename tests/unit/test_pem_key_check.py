"""A private key is loaded with cryptography's full RSA consistency check the first time a
process sees its bytes; the same bytes again skip that check (~40 ms each). A key that fails
the check must fail it every time."""

from __future__ import annotations

import pytest
from certdeploy_core import pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from salt.exceptions import SaltInvocationError

PLAIN = serialization.NoEncryption()


def _pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, PLAIN)


def test_the_same_key_is_checked_once_and_read_the_same_after():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    text = _pem(key).decode()
    first = pem._load_key(text, None, "n1", "key", "key_password")
    assert len(pem._CHECKED) >= 1 and all(len(d) == 32 for d in pem._CHECKED)  # digests only
    again = pem._load_key(text, None, "n1", "key", "key_password")
    assert again.private_numbers() == first.private_numbers() == key.private_numbers()


def test_an_inconsistent_rsa_key_is_refused_every_time():
    good = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_numbers()
    broken = rsa.RSAPrivateNumbers(
        p=good.p,
        q=good.q,
        d=good.d,
        dmp1=good.dmp1 + 2,  # a CRT exponent that does not belong to this key
        dmq1=good.dmq1,
        iqmp=good.iqmp,
        public_numbers=good.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    text = _pem(broken).decode()
    for _ in range(2):
        with pytest.raises(SaltInvocationError, match="corrupt"):
            pem._load_key(text, None, "n1", "key", "key_password")
