"""SoundNet's object (ImageNet, 1000) and place (Places2, 401) categories and output decoding.

The lists are the ones SoundNet was trained against (``categories_imagenet.txt`` and
``categories_places2.txt`` of the original release, shipped in ``soundnet/data``); the place list
is *not* Places365.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np
import torch

from soundnet.errors import InputTooShortError, ParameterError
from soundnet.geometry import head_frame_ok

__all__ = [
    "object_labels",
    "object_names",
    "place_labels",
    "head_labels",
    "softmax",
    "clip_probabilities",
    "decode",
    "decode_frames",
    "vector_to_obj",
    "vector_to_scenes",
]


def _read(name: str) -> tuple[str, ...]:
    text = resources.files("soundnet").joinpath("data", name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@cache
def object_labels() -> tuple[str, ...]:
    """The 1000 object lines, e.g. ``"n04296562 stage"``."""
    return _read("categories_imagenet.txt")


@cache
def object_names() -> tuple[str, ...]:
    """Short object names: the first synonym of each line, e.g. ``"stage"``, ``"tench"``."""
    return tuple(line.split(" ", 1)[1].split(",")[0].strip() for line in object_labels())


@cache
def place_labels() -> tuple[str, ...]:
    """The 401 place names, e.g. ``"/s/stage/indoor"``."""
    return _read("categories_places2.txt")


def head_labels(head: str) -> tuple[str, ...]:
    """Label names for ``"conv8"``/``"objects"`` or ``"conv8_2"``/``"places"``."""
    if head in ("conv8", "objects"):
        return object_names()
    if head in ("conv8_2", "places"):
        return place_labels()
    raise ParameterError(f"The 'head' parameter must be 'objects' or 'places'. Got {head!r} instead.")


def softmax(logits, *, axis: int = 1) -> np.ndarray:
    """Numerically stable softmax of numpy or torch logits along ``axis``."""
    x = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def clip_probabilities(logits, *, n_samples: int | None = None) -> np.ndarray:
    """Clip-level probabilities: the mean over frames of the per-frame softmax.

    Parameters
    ----------
    logits : array or tensor, shape (batch, n_classes, n_frames)
    n_samples : int, optional
        The input length in samples. When given, head frames that read conv7's padded last
        frame are left out of the mean (:func:`soundnet.geometry.head_frame_ok`) whenever a clean
        frame exists; without it every frame counts.

    Returns
    -------
    np.ndarray, shape (batch, n_classes)
    """
    p = softmax(logits, axis=1)
    if p.ndim != 3:
        raise ParameterError(
            f"clip_probabilities needs logits shaped (batch, n_classes, n_frames). Got {p.shape} instead."
        )
    if p.shape[-1] == 0:
        raise InputTooShortError(
            "clip_probabilities needs logits shaped (batch, n_classes, n_frames) with n_frames >= 1 "
            f"(inputs of at least 209,374 samples, or load_audio(short='tile')). Got {p.shape} instead."
        )
    if n_samples is not None:
        ok = head_frame_ok(n_samples)
        if len(ok) != p.shape[-1]:
            raise ParameterError(
                f"n_samples={n_samples} gives {len(ok)} head frames but the logits have {p.shape[-1]}."
            )
        if ok.any():
            p = p[..., ok]
    return p.mean(axis=2)


def decode(logits, *, head: str, k: int = 5, n_samples: int | None = None) -> list[list[tuple[str, float]]]:
    """Top-``k`` clip-level labels with probabilities for each item of a batch.

    Parameters
    ----------
    logits : array or tensor, shape (batch, n_classes, n_frames)
    head : {"objects", "places"}
    k : int
    n_samples : int, optional
        Input length in samples: leaves degenerate edge frames out (see
        :func:`clip_probabilities`). Recommended.

    Returns
    -------
    list (batch) of list of (label, probability)
    """
    names = head_labels(head)
    probs = clip_probabilities(logits, n_samples=n_samples)
    out = []
    for row in probs:
        idx = np.argsort(-row)[:k]
        out.append([(names[i], float(row[i])) for i in idx])
    return out


def decode_frames(logits, *, head: str, k: int = 1) -> list[list[list[tuple[str, float]]]]:
    """Top-``k`` labels per frame: ``out[item][frame] = [(label, probability), ...]``."""
    names = head_labels(head)
    p = softmax(logits, axis=1)
    out = []
    for item in p:
        frames = []
        for t in range(item.shape[1]):
            idx = np.argsort(-item[:, t])[:k]
            frames.append([(names[i], float(item[i, t])) for i in idx])
        out.append(frames)
    return out


def vector_to_obj(logits, k: int = 5) -> list[tuple[str, float]]:
    """The seed's helper: top objects of the first clip of a batch."""
    return decode(logits, head="objects", k=k)[0]


def vector_to_scenes(logits, k: int = 5) -> list[tuple[str, float]]:
    """The seed's helper: top places of the first clip of a batch."""
    return decode(logits, head="places", k=k)[0]
