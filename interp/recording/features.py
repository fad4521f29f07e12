"""Per-clip unit summaries of waveforms held in memory (perturbed, ablated or windowed audio).

The recorder (:mod:`interp.recording.record`) turns a *corpus* into a run directory. The studies also need
the same per-clip summaries for audio that is not a corpus on disk: perturbed copies of the clips
(:mod:`interp.analysis.robustness`), the clips passed through a model with units ablated
(``studies/ablation.py``), or looped windows (:mod:`interp.analysis.linear_probes`, paper protocol).
:func:`summarize_waves` is a thin layer over :func:`interp.recording.record.summarize_waves`, the recorder's
own engine (short-clip policy, batch masking, conv7's edge frame left out), so a clip's summary
equals what ``record`` stored for it.

Examples
--------
>>> waves = clip_waves(run.ok_clips)                                   # doctest: +SKIP
>>> feats = summarize_waves(model, waves, layers=("conv5",), config=RecordConfig.from_meta(run.meta))  # doctest: +SKIP
>>> feats["conv5"]["mean"].shape                                       # doctest: +SKIP
(174, 256)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from interp.recording import record
from soundnet.errors import ParameterError
from soundnet.model import CONV_LAYERS

__all__ = ["clip_waves", "summarize_waves"]


def clip_waves(clips: pd.DataFrame) -> list[np.ndarray]:
    """Decode every row of a corpus or clip table.

    Parameters
    ----------
    clips : pandas.DataFrame
        Rows with ``path``, ``start_s``, ``end_s`` (and probe parameters for ``probes://`` rows),
        e.g. ``run.ok_clips`` or a table from :func:`interp.corpus.corpora.load_corpus`.

    Returns
    -------
    list of np.ndarray, each (n_samples,) float32 in [-1, 1] at 22050 Hz (not scaled).
    """
    from interp.corpus.corpora import read_clip

    return [read_clip(row) for row in clips.to_dict("records")]


def summarize_waves(
    model: torch.nn.Module,
    waves: Sequence[np.ndarray],
    *,
    layers: Sequence[str] = CONV_LAYERS,
    stats: Sequence[str] = ("mean", "max"),
    config: record.RecordConfig | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-clip, per-unit summaries of ``layers`` for waveforms in memory.

    Parameters
    ----------
    model : SoundNet8
        The plain model (hooks, e.g. :func:`interp.analysis.ablation.ablate`, are honoured).
    waves : sequence of np.ndarray, each (n_samples,)
        Mono float32 in [-1, 1] at 22050 Hz (not scaled x256: that happens here).
    layers : sequence of str
        Conv layers to summarise.
    stats : sequence of {"mean", "max", "peak_s"}
        Summaries over time (as in a run directory).
    config : RecordConfig, optional
        The recorder's settings to follow (short clips, ``edge``, batch size): a run's are
        :meth:`interp.recording.record.RecordConfig.from_meta` of its ``run.meta``, so that the summaries
        equal the run's. Default: the recorder's defaults.

    Returns
    -------
    dict ``{layer: {stat: np.ndarray (n_clips, n_units) float32}}``
        NaN rows for clips that gave a layer no frame.
    """
    allowed = ("mean", "max", "peak_s")
    if not stats or any(s not in allowed for s in stats):
        raise ParameterError(f"The 'stats' parameter of summarize_waves must be a non-empty subset of {allowed}. "
                             f"Got {list(stats)!r} instead.")
    res = record.summarize_waves(model, waves, config=config, layers=tuple(layers), fast=False, heads_short="none")
    return {layer: {st: res[layer][st] for st in stats} for layer in res}
