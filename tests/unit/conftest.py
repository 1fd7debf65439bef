"""The test PKI most unit tests share: a root and an intermediate, made once per module."""

from __future__ import annotations

import pytest

from sandbox import pki


@pytest.fixture(scope="module")
def root():
    return pki.CA.root()


@pytest.fixture(scope="module")
def ca(root):
    return root.intermediate()
