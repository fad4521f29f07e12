"""Per-clip unit summaries of waveforms held in memory (perturbed, ablated or windowed audio).

The recorder (:mod:`interp.record`) turns a *corpus* into a run directory. The studies also need
the same per-clip summaries for audio that is not a corpus on disk: perturbed copies of the clips
(:mod:`interp.robustness`), the clips passed through a model with units ablated
(``studies/ablation.py``), or looped windows (:mod:`interp.linear_probes`, paper protocol).
:func:`summarize_waves` computes them exactly as the recorder does: each clip is brought to the
run's minimum length with the same policy (:func:`soundnet.audio.fit_length`), batches are padded
and :class:`interp.record.LayerTap` masks the padded frames, so a clip's summary equals an
unbatched forward pass and equals what ``record`` stored for it.

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

from interp.record import LayerTap
from soundnet.audio import INPUT_SCALE, SHORT_POLICIES, fit_length
from soundnet.errors import ParameterError
from soundnet.geometry import min_samples
from soundnet.model import CONV_LAYERS, LAYERS

__all__ = ["clip_waves", "summarize_waves", "run_short_policy"]

#: Padded samples per batch (bounds memory of one forward pass).
_MAX_BATCH_SAMPLES = 16 * 22050 * 12


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
    bad = [layer for layer in layers if layer not in LAYERS]
    if bad or not len(layers):
        raise ParameterError(f"The 'layers' parameter of summarize_waves must name layers from {list(LAYERS)}. "
                             f"Got {list(layers)!r} instead.")
    if short not in SHORT_POLICIES:
        raise ParameterError(f"The 'short' parameter of summarize_waves must be one of {SHORT_POLICIES}. "
                             f"Got {short!r} instead.")
    allowed = ("mean", "max", "peak_s")
    if not stats or any(s not in allowed for s in stats):
        raise ParameterError(f"The 'stats' parameter of summarize_waves must be a non-empty subset of {allowed}. "
                             f"Got {list(stats)!r} instead.")
    if batch_size < 1:
        raise ParameterError(f"The 'batch_size' parameter of summarize_waves must be >= 1. Got {batch_size} instead.")
    n_min = min_samples("conv7") if min_samples_ is None else int(min_samples_)
    fitted = [fit_length(np.asarray(w, dtype=np.float32), min_samples=n_min, policy=short) for w in waves]
    units = {layer: getattr(model, layer)[0].out_channels for layer in layers}
    out = {layer: {s: np.full((len(fitted), units[layer]), np.nan, dtype=np.float32) for s in stats}
           for layer in layers}
    order = np.argsort([len(w) for w in fitted], kind="stable")
    last = max(LAYERS.index(layer) for layer in layers)
    need = [name for name in LAYERS[: last + 1] if name in CONV_LAYERS]
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and j - i < batch_size and (j - i + 1) * len(fitted[order[j]]) <= _MAX_BATCH_SAMPLES:
            j += 1
        idx = order[i:j]
        i = j
        lengths = [len(fitted[k]) for k in idx]
        if max(lengths) == 0:
            continue
        x = np.zeros((len(idx), 1, max(lengths)), dtype=np.float32)
        for r, k in enumerate(idx):
            x[r, 0, : lengths[r]] = fitted[k]
        with LayerTap(model, tuple(layers)) as tap, torch.inference_mode():
            tap.set_lengths(lengths)
            h = torch.from_numpy(x) * INPUT_SCALE
            for name in need:
                h = model.run_block(name, h)
        for layer in layers:
            summ = tap.summaries.get(layer)
            if summ is None:
                continue
            for s in stats:
                out[layer][s][idx] = summ[s]
    return out
