"""Per-clip unit summaries of waveforms held in memory (perturbed, ablated or windowed audio).

The recorder (:mod:`interp.record`) turns a *corpus* into a run directory. The studies also need
the same per-clip summaries for audio that is not a corpus on disk: perturbed copies of the clips
(:mod:`interp.robustness`), the clips passed through a model with units ablated
(``studies/ablation.py``), or looped windows (:mod:`interp.linear_probes`, paper protocol).
:func:`summarize_waves` is a thin layer over :func:`interp.record.summarize_waves`, the recorder's
own engine (short-clip policy, batch masking, conv7's edge frame left out), so a clip's summary
equals what ``record`` stored for it.

Examples
--------
>>> waves = clip_waves(run.ok_clips)                                   # doctest: +SKIP
>>> feats = summarize_waves(model, waves, layers=("conv5",))           # doctest: +SKIP
>>> feats["conv5"]["mean"].shape                                       # doctest: +SKIP
(174, 256)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from interp import record
from soundnet.audio import SHORT_POLICIES
from soundnet.errors import ParameterError
from soundnet.geometry import min_samples
from soundnet.model import CONV_LAYERS

__all__ = ["clip_waves", "summarize_waves", "run_short_policy"]



def clip_waves(clips: pd.DataFrame) -> list[np.ndarray]:
    """Decode every row of a corpus or clip table.

    Parameters
    ----------
    clips : pandas.DataFrame
        Rows with ``path``, ``start_s``, ``end_s`` (and probe parameters for ``probes://`` rows),
        e.g. ``run.ok_clips`` or a table from :func:`interp.corpora.load_corpus`.

    Returns
    -------
    list of np.ndarray, each (n_samples,) float32 in [-1, 1] at 22050 Hz (not scaled).
    """
    from interp.corpora import read_clip

    return [read_clip(row) for row in clips.to_dict("records")]


def run_short_policy(meta: dict) -> tuple[str, int]:
    """``(short, min_samples)`` a run's recorder used for the conv layers (from ``run.json``)."""
    settings = meta.get("settings") or {}
    short = settings.get("short", "pad")
    min_length = settings.get("min_length", "conv7")
    n = min_samples(min_length) if isinstance(min_length, str) else int(min_length)
    return short, (0 if short == "none" else n)


def summarize_waves(
    model: torch.nn.Module,
    waves: Sequence[np.ndarray],
    *,
    layers: Sequence[str] = CONV_LAYERS,
    stats: Sequence[str] = ("mean", "max"),
    short: str = "pad",
    min_samples_: int | None = None,
    batch_size: int = 16,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-clip, per-unit summaries of ``layers`` for waveforms in memory.

    Parameters
    ----------
    model : SoundNet8
        The plain model (hooks, e.g. :func:`interp.ablation.ablate`, are honoured).
    waves : sequence of np.ndarray, each (n_samples,)
        Mono float32 in [-1, 1] at 22050 Hz (not scaled x256: that happens here).
    layers : sequence of str
        Conv layers to summarise.
    stats : sequence of {"mean", "max", "peak_s"}
        Summaries over time (as in a run directory).
    short : {"pad", "tile", "none"}
        How clips shorter than ``min_samples_`` are lengthened (the recorder's default: pad).
    min_samples_ : int, optional
        Minimum length in samples (default: one frame of conv7, the recorder's default).
    batch_size : int

    Returns
    -------
    dict ``{layer: {stat: np.ndarray (n_clips, n_units) float32}}``
        NaN rows for clips that gave a layer no frame.
    """
    allowed = ("mean", "max", "peak_s")
    if not stats or any(s not in allowed for s in stats):
        raise ParameterError(f"The 'stats' parameter of summarize_waves must be a non-empty subset of {allowed}. "
                             f"Got {list(stats)!r} instead.")
    if short not in SHORT_POLICIES:
        raise ParameterError(f"The 'short' parameter of summarize_waves must be one of {SHORT_POLICIES}. "
                             f"Got {short!r} instead.")
    res = record.summarize_waves(model, waves, layers=tuple(layers), short=short, batch_size=batch_size,
                                 min_length="conv7" if min_samples_ is None else int(min_samples_),
                                 fast=False, heads_short="none")
    return {layer: {st: res[layer][st] for st in stats} for layer in res}
