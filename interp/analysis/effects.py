"""The statistics of causal effects: matched random units, empirical p, group-bootstrap intervals.

Pieces of :func:`interp.analysis.causal.causal_effects`, each testable on its own:

- :func:`fold_top_units`: a category's top units of a layer by AUROC on a fold's *training*
  clips only (the held-out clips, where effects are read out, take no part in the choice);
- :func:`matched_random_units`: random comparison units matched on activation strength. A
  category's top units are strongly active on its clips by construction, so a control of
  uniformly drawn units, mostly weak ones, makes "top beats random" nearly certain. Here each
  top unit is replaced by a unit drawn from the same quantile bin of strength (the unit's mean
  activation on the category's training clips), never a top unit itself;
- :func:`empirical_p`: ``(1 + #{draws with drop >= top's drop}) / (B + 1)``, the permutation
  p-value that counts the observed ablation as one of the draws (never 0; its smallest value
  is ``1 / (B + 1)``, so 500 draws resolve p down to 0.002);
- :func:`group_bootstrap_mean`: percentile intervals of a mean over clips when whole groups
  (sources) are resampled (:func:`interp.analysis.resampling.group_codes`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from interp.analysis.crossfit import _selection_auroc
from interp.analysis.resampling import group_codes
from soundnet.errors import ParameterError

__all__ = ["fold_top_units", "unit_strength", "matched_random_units", "empirical_p", "group_bootstrap_mean"]


def fold_top_units(acts: np.ndarray, pos: np.ndarray, train: np.ndarray, *, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``top`` units with the highest AUROC for a category on the training clips.

    Parameters
    ----------
    acts : np.ndarray, shape (n_clips, n_units)
        Per-clip statistic of each unit (NaN: the clip has no valid frame; left out per unit).
    pos : array of bool, shape (n_clips,)
        The category's clips.
    train : array of int
        Indices of the training clips.
    top : int

    Returns
    -------
    units : np.ndarray of int, shape (<= top,)
        Best first (units without a finite AUROC are never chosen).
    auroc : np.ndarray, shape (<= top,)
        Their AUROC on the training clips.
    """
    x, p = np.asarray(acts, dtype=np.float64)[train], np.asarray(pos, dtype=bool)[train]
    if not p.any() or p.all():
        raise ParameterError("fold_top_units needs training clips in and out of the category.")
    auc = _selection_auroc(x, p)
    order = np.argsort(-auc, kind="stable")
    order = order[np.isfinite(auc[order])][: int(top)]
    return order, auc[order]


def unit_strength(acts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each unit's mean activation over some clips (NaN clips left out; -inf when none is left).

    Returns
    -------
    np.ndarray, shape (n_units,), in the statistic's activation units
    """
    x = np.asarray(acts, dtype=np.float64)[rows]
    n = np.isfinite(x).sum(axis=0)
    s = np.where(np.isfinite(x), x, 0.0).sum(axis=0)
    return np.where(n > 0, s / np.maximum(n, 1), -np.inf)


def matched_random_units(
    strength: np.ndarray,
    chosen: Sequence[int] | np.ndarray,
    *,
    n_draws: int,
    n_bins: int = 10,
    matching: str = "nearest",
    pool: int | None = None,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Random unit sets matched to ``chosen`` on activation strength.

    ``matching="nearest"`` (default): each chosen unit is replaced by a unit drawn from the
    ``pool`` other units nearest to it in strength (default: 5 % of the other units, at least 3
    and at most 20) (nearest-neighbour matching: the top units of a
    category are its strongest, and a bin as wide as the top decile would match them with much
    weaker units). Draws are without replacement within a set; when a unit's pool is used up by
    the set's other draws, the nearest unused unit is taken. ``matching="bins"``: the units not in
    ``chosen`` are split into ``n_bins`` quantile bins of ``strength`` (equal counts) and each
    chosen unit is replaced by a unit drawn from the bin its strength falls in (when a bin runs
    short, from the nearest bins that have units left).

    Parameters
    ----------
    strength : np.ndarray, shape (n_units,)
        E.g. each unit's mean activation on the category's training clips
        (:func:`unit_strength`).
    chosen : sequence of int
        The units to match (the top units).
    n_draws : int
        Number of random sets.
    n_bins : int
        Quantile bins of strength (at least 1), with ``matching="bins"``.
    matching : {"nearest", "bins"}
    pool : int, optional
        Nearest units in strength that each chosen unit's replacement is drawn from.
    seed : int or numpy.random.Generator

    Returns
    -------
    np.ndarray of int, shape (n_draws, len(chosen))
        Row ``d``: the ``d``-th random set (unit ``i`` matches ``chosen[i]``).
    """
    strength = np.asarray(strength, dtype=np.float64)
    chosen = np.asarray(chosen, dtype=np.int64)
    n_units = len(strength)
    if len(set(chosen.tolist())) != len(chosen) or (len(chosen) and (chosen.min() < 0 or chosen.max() >= n_units)):
        raise ParameterError(
            f"The 'chosen' parameter of matched_random_units must hold distinct units in [0, {n_units - 1}]. "
            f"Got {chosen.tolist()} instead."
        )
    if int(n_bins) < 1 or int(n_draws) < 0:
        raise ParameterError(
            f"The 'n_bins' and 'n_draws' parameters of matched_random_units must be >= 1 and >= 0. "
            f"Got {n_bins} and {n_draws} instead."
        )
    others = np.setdiff1d(np.arange(n_units), chosen)
    if len(others) < len(chosen):
        raise ParameterError(
            f"matched_random_units needs at least as many other units as chosen ones: {len(others)} < {len(chosen)}."
        )
    rng = np.random.default_rng(seed)
    key = np.where(np.isfinite(strength), strength, -np.inf)
    if matching not in ("nearest", "bins"):
        raise ParameterError(
            f"The 'matching' parameter of matched_random_units must be 'nearest' or 'bins'. Got {matching!r} instead."
        )
    if matching == "nearest":
        size = int(pool) if pool is not None else max(3, min(20, len(others) // 20))
        return _nearest_draws(key, chosen, others, int(n_draws), max(1, size), rng)
    order = others[np.argsort(key[others], kind="stable")]  # weakest first
    k = min(int(n_bins), len(order))
    bins = np.array_split(order, k)
    edges = np.array([key[b[-1]] for b in bins[:-1]])  # upper strength of each bin but the last
    home = np.searchsorted(edges, key[chosen], side="left")  # bin of each chosen unit
    need = np.bincount(home, minlength=k)
    # per bin, how many units it gives: its own need, overflow to the nearest bins with units left
    plan: list[list[int]] = [[] for _ in range(k)]  # plan[b]: bins that serve the chosen units of bin b
    left = np.array([len(b) for b in bins])
    for b in np.argsort(-need, kind="stable"):
        for _ in range(need[b]):
            src = min((i for i in range(k) if left[i] > 0), key=lambda i: (abs(i - b), i))
            plan[b].append(src)
            left[src] -= 1
    out = np.empty((int(n_draws), len(chosen)), dtype=np.int64)
    slots = [np.flatnonzero(home == b) for b in range(k)]
    for d in range(int(n_draws)):
        taken: dict[int, np.ndarray] = {}
        for src in set(s for p in plan for s in p):
            n_src = sum(p.count(src) for p in plan)
            taken[src] = rng.choice(bins[src], size=n_src, replace=False)
        used = {src: 0 for src in taken}
        for b in range(k):
            for slot, src in zip(slots[b], plan[b]):
                out[d, slot] = taken[src][used[src]]
                used[src] += 1
    return out


def _nearest_draws(
    key: np.ndarray, chosen: np.ndarray, others: np.ndarray, n_draws: int, pool: int, rng: np.random.Generator
) -> np.ndarray:
    """Nearest-neighbour matched draws (see :func:`matched_random_units`)."""
    finite_key = np.where(np.isfinite(key), key, np.nanmin(np.where(np.isfinite(key), key, np.nan)) - 1.0)
    # each chosen unit's other units, nearest in strength first (ties by unit index)
    near = [others[np.lexsort((others, np.abs(finite_key[others] - finite_key[c])))] for c in chosen]
    out = np.empty((n_draws, len(chosen)), dtype=np.int64)
    for d in range(n_draws):
        used: set[int] = set()
        for i in rng.permutation(len(chosen)):  # no unit is favoured in a crowded pool
            cand = [u for u in near[i][:pool] if u not in used]
            pick = int(rng.choice(cand)) if cand else int(next(u for u in near[i] if u not in used))
            out[d, i] = pick
            used.add(pick)
    return out


def empirical_p(top: float, null: Sequence[float] | np.ndarray) -> float:
    """One-sided empirical p of an observed drop against drops of random draws.

    ``(1 + #{null >= top}) / (B + 1)`` over the ``B`` finite draws (NaN when ``top`` is NaN
    or no draw is finite).
    """
    z = np.asarray(null, dtype=np.float64)
    z = z[np.isfinite(z)]
    if not np.isfinite(top) or not len(z):
        return float("nan")
    return float((1 + np.sum(z >= top)) / (len(z) + 1))


def group_bootstrap_mean(
    values: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` when whole groups are resampled.

    Parameters
    ----------
    values : np.ndarray, shape (n_clips,)
        One value per clip (e.g. the drop of the category's score); NaN clips are left out.
    groups : array-like, shape (n_clips,), optional
        Each clip's group (None: every clip its own group); the groups are drawn with
        replacement, as many as there are, and each clip counts as often as its group is drawn.
    n_boot : int
    confidence : float
        In (0, 1).
    seed : int or numpy.random.Generator

    Returns
    -------
    (low, high) : tuple of float
        NaN when fewer than 2 groups have a finite value (no interval from one source).
    """
    v = np.asarray(values, dtype=np.float64)
    if not 0 < float(confidence) < 1 or int(n_boot) < 1:
        raise ParameterError(
            f"The 'confidence' and 'n_boot' parameters of group_bootstrap_mean must be in (0, 1) and >= 1. "
            f"Got {confidence} and {n_boot} instead."
        )
    codes = group_codes(groups, len(v))
    ok = np.isfinite(v)
    v, codes = v[ok], codes[ok]
    uniq, codes = np.unique(codes, return_inverse=True)
    n_groups = len(uniq)
    if n_groups < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    sums = np.bincount(codes, weights=v, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)
    draws = rng.integers(0, n_groups, size=(int(n_boot), n_groups))
    w = np.stack([np.bincount(row, minlength=n_groups) for row in draws]).astype(np.float64)
    means = (w @ sums) / (w @ counts)
    alpha = (1 - float(confidence)) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)
