"""Resampling that respects groups: clips of one source are not independent.

Segments of one file, ESC-50 takes of one ``src_file``, UrbanSound8K slices of one ``fsID`` or
the digits of one speaker share their recording conditions; treating them as independent clips
makes intervals too narrow and tests too liberal (pseudo-replication). The functions here
resample and permute *groups*, never clips within a group:

- :func:`group_bootstrap_weights`: per resample, how many times each clip is drawn when whole
  groups are drawn with replacement, separately among the groups of the category and among the
  others (a group joins the side of the majority of its clips), so that both sides stay present;
- :func:`weighted_auroc`: the exact AUROC (ties count one half) of every unit for clip weights,
  i.e. for a bootstrap resample;
- :func:`group_bootstrap_auroc`: the resampled AUROCs and their percentile interval;
- :func:`group_label_permutations`: labels permuted across groups (each group keeps one label).

With every clip its own group these reduce to the ordinary stratified bootstrap and permutation.

Assumptions, stated where the numbers are shown: groups are independent of one another; a
percentile interval from few groups (fewer than about 5 on a side) is too narrow, so
:func:`group_bootstrap_auroc` reports the group counts with the interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from soundnet.errors import ParameterError

__all__ = [
    "group_codes",
    "group_bootstrap_weights",
    "weighted_auroc",
    "group_bootstrap_auroc",
    "group_label_permutations",
    "unit_auroc_intervals",
]


def group_codes(groups: Sequence[Any] | np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    """Integer codes ``0 .. G-1`` of each clip's group; ``None`` makes every clip its own group."""
    if groups is None:
        return np.arange(n)
    codes, _ = pd.factorize(pd.Series(np.asarray(groups, dtype=object)).astype(str), sort=True)
    if len(codes) != n:
        raise ParameterError(f"The 'groups' parameter must give one group per clip ({n}). Got {len(codes)} instead.")
    return codes.astype(np.int64)


def _group_side(codes: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per group: True when most of its clips are positive (ties count as positive)."""
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    n_pos = np.bincount(codes, weights=pos.astype(np.float64), minlength=n_groups)
    n_all = np.bincount(codes, minlength=n_groups)
    return n_pos * 2 >= n_all


def group_bootstrap_weights(
    pos: np.ndarray, groups: Sequence[Any] | np.ndarray | None, *, n_boot: int, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Clip weights of ``n_boot`` stratified group-bootstrap resamples.

    Parameters
    ----------
    pos : array of bool, shape (n_clips,)
        The category's clips.
    groups : array-like of shape (n_clips,), optional
        Each clip's group (None: every clip is its own group).
    n_boot : int
    seed : int or numpy.random.Generator

    Returns
    -------
    np.ndarray, shape (n_boot, n_clips), float64
        How many times each clip is drawn (its group's draw count).
    """
    pos = np.asarray(pos, dtype=bool)
    codes = group_codes(groups, len(pos))
    side = _group_side(codes, pos)
    rng = np.random.default_rng(seed)
    n_groups = len(side)
    counts = np.zeros(n_boot * n_groups, dtype=np.float64)
    offsets = (np.arange(n_boot) * n_groups)[:, None]
    for members in (np.flatnonzero(side), np.flatnonzero(~side)):
        if len(members):
            draws = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
            counts += np.bincount((draws + offsets).ravel(), minlength=n_boot * n_groups)
    return counts.reshape(n_boot, n_groups)[:, codes]


def weighted_auroc(x: np.ndarray, pos: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of every unit under clip weights (exact; ties count one half).

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
    pos : array of bool, shape (n_clips,)
    weights : array, shape (n_resamples, n_clips)
        Non-negative clip weights (e.g. from :func:`group_bootstrap_weights`).

    Returns
    -------
    np.ndarray, shape (n_resamples, n_units)
        NaN where a resample has no positive or no negative weight.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    pos = np.asarray(pos, dtype=bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    wp, wn = w[:, pos], w[:, ~pos]
    denom = wp.sum(axis=1) * wn.sum(axis=1)
    out = np.full((w.shape[0], x.shape[1]), np.nan)
    ok = denom > 0
    if not ok.any():
        return out
    for j in range(x.shape[1]):
        xp, xn = x[pos, j], x[~pos, j]
        order = np.argsort(xn, kind="stable")
        xn_sorted = xn[order]
        cum = np.zeros((w.shape[0], len(xn) + 1))
        np.cumsum(wn[:, order], axis=1, out=cum[:, 1:])
        lo = np.searchsorted(xn_sorted, xp, side="left")
        hi = np.searchsorted(xn_sorted, xp, side="right")
        below, ties = cum[:, lo], cum[:, hi] - cum[:, lo]
        num = (wp * (below + 0.5 * ties)).sum(axis=1)
        out[ok, j] = num[ok] / denom[ok]
    return out


def group_bootstrap_auroc(
    x: np.ndarray,
    pos: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """AUROC of every unit with a stratified group-bootstrap percentile interval.

    Parameters
    ----------
    x : array, shape (n_clips, n_units) or (n_clips,)
    pos : array of bool, shape (n_clips,)
    groups : array-like, optional
        Each clip's group (None: clips are independent).
    n_boot : int
    confidence : float
        0.95 gives the 2.5 and 97.5 percentiles of the resampled AUROCs.
    seed : int or numpy.random.Generator

    Returns
    -------
    DataFrame, one row per unit
        ``auroc`` (on all clips), ``auroc_lo``, ``auroc_hi``, ``n_groups_pos`` and
        ``n_groups_rest`` (the groups on each side: an interval from fewer than about 5 is too
        narrow).
    """
    if not 0 < confidence < 1:
        raise ParameterError(
            f"The 'confidence' parameter of group_bootstrap_auroc must be in (0, 1). Got {confidence!r} instead."
        )
    pos = np.asarray(pos, dtype=bool)
    if pos.all() or not pos.any():
        raise ParameterError("The 'pos' parameter of group_bootstrap_auroc must select some but not all clips.")
    codes = group_codes(groups, len(pos))
    side = _group_side(codes, pos)
    x2 = np.asarray(x, dtype=np.float64)
    x2 = x2[:, None] if x2.ndim == 1 else x2
    full = weighted_auroc(x2, pos, np.ones((1, len(pos))))[0]
    boot = weighted_auroc(x2, pos, group_bootstrap_weights(pos, codes, n_boot=n_boot, seed=seed))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.nanquantile(boot, [alpha, 1.0 - alpha], axis=0)
    return pd.DataFrame(
        {
            "auroc": full,
            "auroc_lo": lo,
            "auroc_hi": hi,
            "n_groups_pos": int(side.sum()),
            "n_groups_rest": int((~side).sum()),
        }
    )


def group_label_permutations(
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray | None,
    *,
    n_permutations: int,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Labels permuted across groups: each group keeps one label, groups swap them.

    Each group's label is the most common label of its clips (clips of one source carry one
    label in every corpus the toolkit reads); the permutation shuffles these group labels and
    gives every clip its group's new label.

    Returns
    -------
    np.ndarray of object, shape (n_permutations, n_clips)
    """
    labels = np.asarray(labels, dtype=object)
    codes = group_codes(groups, len(labels))
    frame = pd.DataFrame({"g": codes, "label": labels})
    group_label = frame.groupby("g")["label"].agg(lambda s: s.value_counts().index[0]).sort_index().to_numpy()
    rng = np.random.default_rng(seed)
    out = np.empty((n_permutations, len(labels)), dtype=object)
    for i in range(n_permutations):
        out[i] = rng.permutation(group_label)[codes]
    return out


def unit_auroc_intervals(
    acts: pd.Series,
    labels: pd.Series,
    categories: list[str],
    *,
    groups: pd.Series | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Stratified bootstrap interval of one unit's AUROC for every category.

    The interval :func:`interp.analysis.selectivity.rank_units` reports for a ranked unit, for
    every category of one unit (what the dashboard's unit page shows).

    Parameters
    ----------
    acts : pandas.Series
        The unit's per-clip summary, indexed by clip id.
    labels : pandas.Series
        Each clip's category, indexed by clip id (clips without one are left out).
    categories : list of str
    groups : pandas.Series, optional
        Each clip's group, indexed by clip id: the bootstrap resamples whole groups.
    n_boot, confidence, seed
        As for :func:`interp.analysis.resampling.group_bootstrap_auroc`.

    Returns
    -------
    DataFrame ``category, auroc_lo, auroc_hi`` (NaN where a category has no clip, or every clip).
    """
    acts = acts[acts.index.isin(labels.index)]
    x = acts.to_numpy(dtype=np.float64)
    ok = np.isfinite(x)
    x = x[ok][:, None]
    lab = labels.reindex(acts.index).to_numpy()[ok]
    grp = None if groups is None else groups.reindex(acts.index).astype(str).to_numpy()[ok]
    rows = []
    for cat in categories:
        pos = lab == cat
        if 0 < pos.sum() < len(pos):
            r = group_bootstrap_auroc(x, pos, grp, n_boot=n_boot, confidence=confidence, seed=seed).iloc[0]
            lo, hi = r["auroc_lo"], r["auroc_hi"]
        else:
            lo, hi = np.nan, np.nan
        rows.append((cat, float(lo), float(hi)))
    return pd.DataFrame(rows, columns=["category", "auroc_lo", "auroc_hi"])
