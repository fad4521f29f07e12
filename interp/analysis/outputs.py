"""Clip-level correlations between the units and the heads' outputs (objects and places).

:func:`run_output_correlations` writes ``unit_outputs.parquet``: for each unit of the conv
layers, the object and place classes whose log-probability rises most with it across clips.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import special

from interp.analysis import stats
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.labels import head_labels
from soundnet.model import HEAD_LAYERS
from soundnet.options import ClipStat, HeadOutput, check_option

__all__ = ["output_correlations", "head_outputs", "run_output_correlations", "table_suffix", "DEFAULT_STAT"]

#: The per-clip statistic of the default analysis: the mean over valid frames, which does not
#: grow with the clip's length (see :func:`soundnet.geometry.valid_frames`).
DEFAULT_STAT: ClipStat = "vmean"


def table_suffix(stat: str) -> str:
    """Suffix of the analysis tables of a statistic: none for :data:`DEFAULT_STAT`
    (``selectivity.parquet``), ``_max`` / ``_mean`` for the others."""
    return "" if stat == DEFAULT_STAT else f"_{stat}"


def output_correlations(
    acts: pd.DataFrame, probs: pd.DataFrame, *, names: list[str] | None = None, top: int = 5
) -> pd.DataFrame:
    """For each unit, the outputs whose probability rises most with it across clips.

    Parameters
    ----------
    acts : DataFrame (n_clips, n_units)
    probs : DataFrame (n_clips, n_outputs)
        Clip-level head probabilities (stat ``prob`` of conv8 / conv8_2), same index as acts
        (only the common clips are used).
    names : list of str, optional
        Output names (default: the column names).
    top : int
        Outputs kept per unit.

    Returns
    -------
    DataFrame ``unit, rank, class_index, class_name, r`` (Pearson r across clips, highest first).
    """
    common = acts.index.intersection(probs.index)
    a = acts.loc[common].to_numpy(dtype=np.float64)
    b = probs.loc[common].to_numpy(dtype=np.float64)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    r = stats.column_correlations(a[ok], b[ok])
    k = min(int(top), r.shape[1])
    idx = np.argsort(-r, axis=1, kind="stable")[:, :k]
    names = list(map(str, probs.columns)) if names is None else list(names)
    units = np.asarray([int(u) for u in acts.columns])
    return pd.DataFrame(
        {
            "unit": np.repeat(units, k).astype(np.int64),
            "rank": np.tile(np.arange(k), len(units)).astype(np.int64),
            "class_index": idx.ravel().astype(np.int64),
            "class_name": [names[i] for i in idx.ravel()],
            "r": np.take_along_axis(r, idx, axis=1).ravel(),
        }
    )


def head_outputs(run: Run, head: str, *, output: HeadOutput = "logprob") -> pd.DataFrame:
    """A head's clip-level outputs from a run: probabilities or log-probabilities.

    Parameters
    ----------
    run : Run
    head : {"conv8", "conv8_2"}
    output : {"logprob", "prob"}
        ``prob``: the recorded ``prob`` stat (mean softmax over frames). ``logprob``: the
        log-softmax of the recorded ``mean`` logits, i.e. the exact clip log-probability for
        clips with one counted head frame and the log-softmax of the frame-averaged logits
        otherwise. Clip probabilities are small (the top class rarely passes 0.05) and span
        orders of magnitude, so correlations are better behaved on the log scale; hence
        ``logprob`` by default.

    Returns
    -------
    DataFrame (n_clips, n_classes), float64, indexed by clip id.
    """
    check_option("output", output, HeadOutput, where="head_outputs")
    if output == "prob":
        return run.activations(head, "prob").astype(np.float64)
    m = run.activations(head, "mean").astype(np.float64)
    x = m.to_numpy()
    lse = special.logsumexp(x, axis=1, keepdims=True)
    return pd.DataFrame(x - lse, index=m.index, columns=m.columns)


def run_output_correlations(
    run: Run | str | os.PathLike,
    *,
    stat: ClipStat = DEFAULT_STAT,
    layers: list[str] | None = None,
    top: int = 5,
    output: HeadOutput = "logprob",
    write: bool = True,
) -> pd.DataFrame:
    """Per unit of the conv layers, the object and place classes that rise with it across clips.

    Correlation (Pearson, across the run's clips) between the unit's ``stat`` and each head's
    clip-level output (see :func:`head_outputs`: log-probability by default, or the ``prob``
    stat of conv8 and conv8_2). Written as ``unit_outputs.parquet`` (``unit_outputs_max`` for
    ``stat="max"``, see :func:`table_suffix`).

    Returns
    -------
    DataFrame ``layer, unit, head, rank, class_index, class_name, r``.
    """
    run = open_run(run)
    heads = [h for h in HEAD_LAYERS if h in run.layers]
    if not heads:
        raise ParameterError(
            f"Run {str(run.path)!r} has no head layer recorded; output correlations need conv8 or conv8_2."
        )
    layers = [l for l in run.layers if l not in HEAD_LAYERS] if layers is None else list(layers)
    parts = []
    for head in heads:
        probs = head_outputs(run, head, output=output)
        names = list(head_labels(head))
        for layer in layers:
            t = output_correlations(run.activations(layer, stat), probs, names=names, top=top)
            t.insert(0, "layer", layer)
            t.insert(2, "head", head)
            parts.append(t)
    out = pd.concat(parts, ignore_index=True).sort_values(
        ["layer", "unit", "head", "rank"],
        kind="stable",
        key=lambda s: s.map({l: i for i, l in enumerate(run.layers)}) if s.name == "layer" else s,
    )
    out = out.reset_index(drop=True)
    if write:
        run.write_table("unit_outputs" + table_suffix(stat), out)
    return out
