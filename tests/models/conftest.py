"""Fixtures shared by the method tests."""

from __future__ import annotations

import pytest

from models.concepts import load_pack


@pytest.fixture(scope="module")
def pack():
    """The toy concept pack (red = unsafe): every method finds what it needs in it."""
    return load_pack("toy")
