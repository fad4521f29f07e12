"""The clips that drive a unit: its top-k clips and moments, and clips from every activation decile.

Top clips come from the recorder's ``topk.parquet`` (the ``k`` clips with the highest max
activation, with the moment and receptive-field window of the max); when more are asked for than
the run kept, the rest come from the ``max`` and ``peak_s`` activation tables. Quantile bins show
what the unit does over its whole range: a few clips from each decile of its activation.

Examples
--------
>>> run = open_run("runs/minibank")
>>> top_clips(run, "conv7", 123, k=10)[["rank", "label", "value", "peak_s"]]
>>> unit_quantile_clips(run, "conv7", 123, n_bins=10, per_bin=3)
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.geometry import frames_to_window, time_to_frames
from soundnet.options import ClipStat, check_option

__all__ = ["top_clips", "quantile_bins", "unit_quantile_clips", "top_label_counts"]

_CLIP_COLUMNS = ("label", "path", "duration_s")


def _check_unit(run: Run, layer: str, unit: int, fn: str) -> int:
    n = run.n_units(layer)
    if not 0 <= int(unit) < n:
        raise ParameterError(f"The 'unit' parameter of {fn} must be in [0, {n - 1}] for {layer}. Got {unit!r} instead.")
    return int(unit)


def _with_clip_info(df: pd.DataFrame, run: Run) -> pd.DataFrame:
    ok = run.ok_clips
    info = ok[[c for c in _CLIP_COLUMNS if c in ok.columns]].reindex(df["clip_id"])  # one lookup
    for c in info.columns:
        df[c] = info[c].to_numpy()
    return df


def _top_k(v: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest values, highest first, ties in their order in ``v``: the
    first ``k`` of a stable sort by decreasing value, without sorting all of ``v``."""
    if k >= len(v):
        return np.argsort(-v, kind="stable")
    kth = np.partition(v, len(v) - k)[len(v) - k]  # the k-th highest value
    cand = np.flatnonzero(v >= kth)  # every clip that ties with it too, in order
    return cand[np.argsort(-v[cand], kind="stable")][:k]


def top_clips(
    run: Run | str | os.PathLike,
    layer: str,
    unit: int,
    *,
    k: int = 10,
    stat: ClipStat = "max",
    values: pd.Series | None = None,
) -> pd.DataFrame:
    """The ``k`` clips with the highest activation of a unit, and where in them it peaks.

    Parameters
    ----------
    run : Run or path
    layer : str
    unit : int
    k : int
    stat : {"max", "vmean", "mean"}
        Rank clips by their max over time (the recorder's ``topk.parquet``, extended from the
        ``max`` table when ``k`` exceeds it), by their mean over valid frames (``vmean``, the
        analyses' default; clips without a valid frame are not ranked) or by their mean over
        time. ``peak_s`` is always the time of the max.
    values : pandas.Series, optional
        The unit's ``stat`` per clip, indexed by clip id, when the caller has already read it
        (the dashboard keeps unit columns): not read again.

    Returns
    -------
    DataFrame, ``k`` rows (fewer if the run has fewer clips), highest first
        ``rank, clip_id, value, peak_s, start_s, end_s, label, path, duration_s``; times in
        seconds from the clip start (``start_s``/``end_s``: receptive field of the peak frame,
        clipped to the clip). Ties are broken by corpus order.
    """
    run = open_run(run)
    unit = _check_unit(run, layer, unit, "top_clips")
    if int(k) < 1:
        raise ParameterError(f"The 'k' parameter of top_clips must be >= 1. Got {k!r} instead.")
    check_option("stat", stat, ClipStat, where="top_clips")
    t = run.topk(layer, unit).sort_values("rank", kind="stable") if stat == "max" else pd.DataFrame()
    if len(t) < k:
        vals = run.unit_block(layer, stat, [unit])[unit] if values is None else values  # one column, not the table
        vals = vals[np.isfinite(vals.to_numpy())]
        if len(t) < min(k, len(vals)):
            order = _top_k(vals.to_numpy(dtype=np.float64), int(k))
            ids = vals.index[order]
            peak = run.unit_block(layer, "peak_s", [unit])[unit].reindex(ids).to_numpy(dtype=np.float64)
            dur = run.ok_clips["duration_s"].reindex(ids).to_numpy(dtype=np.float64)
            frames = time_to_frames(np.nan_to_num(peak), layer)
            start, end = frames_to_window(frames, layer)
            t = pd.DataFrame(
                {
                    "layer": layer,
                    "unit": unit,
                    "rank": np.arange(len(ids)),
                    "clip_id": ids,
                    "value": vals.to_numpy()[order],
                    "peak_s": peak,
                    "start_s": np.clip(start, 0.0, dur),
                    "end_s": np.clip(end, 0.0, dur),
                }
            )
    t = t.head(int(k))[["rank", "clip_id", "value", "peak_s", "start_s", "end_s"]].reset_index(drop=True)
    return _with_clip_info(t, run)


def quantile_bins(values: pd.Series, *, n_bins: int = 10, per_bin: int = 3) -> pd.DataFrame:
    """A few clips from each equal-count bin (decile by default) of a unit's activation.

    Clips are sorted by value (ties by their order in ``values``) and cut into ``n_bins`` bins of
    equal count; from each bin ``per_bin`` clips evenly spaced in rank are taken, so the choice is
    deterministic and spans the bin.

    Parameters
    ----------
    values : pandas.Series
        Activation per clip, indexed by clip id; NaN values are left out.
    n_bins : int
    per_bin : int

    Returns
    -------
    DataFrame ``bin, clip_id, value, bin_lo, bin_hi`` (bin 0 = lowest activations; ``bin_lo`` /
    ``bin_hi`` the bin's value range), ordered by bin then value.
    """
    if int(n_bins) < 1 or int(per_bin) < 1:
        raise ParameterError(
            f"The 'n_bins' and 'per_bin' parameters of quantile_bins must be >= 1. Got {n_bins!r}, {per_bin!r} instead."
        )
    v = pd.Series(values)
    v = v[np.isfinite(v.to_numpy(dtype=np.float64))]
    n = len(v)
    order = np.argsort(v.to_numpy(dtype=np.float64), kind="stable")
    bins = (np.arange(n) * n_bins) // max(n, 1)
    rows = []
    for b in range(int(n_bins)):
        members = order[bins == b]
        if not len(members):
            continue
        take = np.unique(np.round(np.linspace(0, len(members) - 1, min(per_bin, len(members)))).astype(int))
        lo, hi = float(v.iloc[members[0]]), float(v.iloc[members[-1]])
        for i in members[take]:
            rows.append((b, v.index[i], float(v.iloc[i]), lo, hi))
    return pd.DataFrame(rows, columns=["bin", "clip_id", "value", "bin_lo", "bin_hi"])


def unit_quantile_clips(
    run: Run | str | os.PathLike, layer: str, unit: int, *, stat: ClipStat = "max", n_bins: int = 10, per_bin: int = 3
) -> pd.DataFrame:
    """:func:`quantile_bins` of one unit of a run, with each clip's label and path."""
    run = open_run(run)
    unit = _check_unit(run, layer, unit, "unit_quantile_clips")
    out = quantile_bins(run.unit_block(layer, stat, [unit])[unit], n_bins=n_bins, per_bin=per_bin)
    return _with_clip_info(out, run)


def top_label_counts(
    run: Run | str | os.PathLike, layer: str, unit: int, *, k: int = 10, stat: ClipStat = "max"
) -> pd.Series:
    """How many of a unit's top-``k`` clips (by ``stat``) carry each label (most frequent first)."""
    return top_clips(run, layer, unit, k=k, stat=stat)["label"].value_counts()
