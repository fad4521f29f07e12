"""Resampling that respects groups: clips of one source are not independent.

Segments of one file, ESC-50 takes of one ``src_file``, UrbanSound8K slices of one ``fsID`` or
the digits of one speaker share their recording conditions; treating them as independent clips
makes intervals too narrow and tests too liberal (pseudo-replication). The functions here
resample and permute *groups*, never clips within a group:

- :func:`group_bootstrap_weights`: per resample, how many times each clip is drawn when whole
  groups are drawn with replacement, separately among the groups of the category and among the
  others (a group joins the side of the majority of its clips; its clips keep their own labels),
  so that both sides stay present;
- :func:`weighted_auroc`: the exact AUROC (ties count one half) of every unit for clip weights,
  i.e. for a bootstrap resample;
- :func:`group_bootstrap_auroc`: the resampled AUROCs and their percentile interval (NaN when
  a side has fewer than 2 groups);
- :func:`group_label_permutations`: labels permuted across groups (each group must hold one
  label).

With every clip its own group these reduce to the ordinary stratified bootstrap and permutation.
A clip whose group is missing (None, NaN, ``""``) is a group of its own (:func:`group_codes`).

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
    "auroc_influence",
    "RankedValues",
    "clustered_win_fraction",
    "group_codes",
    "group_bootstrap_weights",
    "weighted_auroc",
    "group_bootstrap_auroc",
    "group_label_permutations",
    "unit_auroc_intervals",
    "BOOTSTRAP_MAX_CLIPS",
]


#: Clips above which the group bootstrap gives way to its clustered normal approximation (the
#: bootstrap needs ``n_boot`` x clips of weights).
BOOTSTRAP_MAX_CLIPS = 20_000


def group_codes(groups: Sequence[Any] | np.ndarray | pd.Series | None, n: int) -> np.ndarray:
    """Integer codes ``0 .. G-1`` of each clip's group.

    Parameters
    ----------
    groups : array-like of shape (n_clips,), optional
        Each clip's group; values are compared as strings (``1`` and ``"1"`` are one group).
        None makes every clip its own group. A missing value (None, NaN, ``pd.NA``) or an empty
        string is no group: each such clip becomes a singleton group of its own, so that clips
        whose source is unknown are never pooled into one "nan" cluster.
    n : int
        Number of clips.

    Returns
    -------
    np.ndarray of int64, shape (n_clips,)
        The named groups get codes ``0 .. K-1`` in the sorted order of their names; the clips
        without a group get ``K, K+1, ...`` in clip order.
    """
    if groups is None:
        return np.arange(n)
    values = np.asarray(groups, dtype=object).ravel()
    if len(values) != n:
        raise ParameterError(f"The 'groups' parameter must give one group per clip ({n}). Got {len(values)} instead.")
    missing = np.asarray(pd.isna(values), dtype=bool)
    names = pd.Series(values[~missing]).astype(str)
    blank = (names.str.strip() == "").to_numpy()
    missing[np.flatnonzero(~missing)[blank]] = True
    named, _ = pd.factorize(names[~blank], sort=True)
    codes = np.empty(n, dtype=np.int64)
    codes[~missing] = named
    n_named = int(named.max()) + 1 if len(named) else 0
    codes[missing] = n_named + np.arange(int(missing.sum()))
    return codes


def _check_finite(values: np.ndarray, name: str, func: str) -> np.ndarray:
    """``values`` as float64, or a ParameterError naming how many entries are NaN (or infinite)."""
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(bad.sum()) - n_nan
        got = f"{n_nan} NaN value(s)" if not n_inf else f"{n_nan} NaN and {n_inf} infinite value(s)"
        raise ParameterError(f"The '{name}' parameter of {func} must be finite. Got {got} instead.")
    return arr


def _as_pos(pos: Any, func: str) -> np.ndarray:
    """``pos`` as bool, refusing missing entries (``np.asarray(nan, bool)`` would make them True)."""
    arr = np.asarray(pos)
    if arr.dtype.kind not in "biu":
        n_nan = int(np.asarray(pd.isna(arr), dtype=bool).sum())
        if n_nan:
            raise ParameterError(f"The 'pos' parameter of {func} must be finite. Got {n_nan} NaN value(s) instead.")
    return arr.astype(bool)


def _group_side(codes: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Per group: True when most of its clips are positive (ties count as positive).

    The bootstrap's stratum of a group: a group with both positive and negative clips (a
    mixed-class group) is resampled as a unit among the groups of its majority.
    """
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    n_pos = np.bincount(codes, weights=pos.astype(np.float64), minlength=n_groups)
    n_all = np.bincount(codes, minlength=n_groups)
    return n_pos * 2 >= n_all


def group_bootstrap_weights(
    pos: np.ndarray, groups: Sequence[Any] | np.ndarray | None, *, n_boot: int, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Clip weights of ``n_boot`` stratified group-bootstrap resamples.

    Whole groups are drawn with replacement, as many as there are, separately among the groups
    whose clips are mostly positive and among the others (:func:`_group_side`); every clip of a
    drawn group gets its group's draw count and keeps its own label. A mixed-class group is
    thus drawn in the stratum of its majority and contributes its positive clips to the
    positives and its negative clips to the rest. With both strata non-empty every resample
    holds clips of both classes.

    Parameters
    ----------
    pos : array of bool, shape (n_clips,)
        The category's clips (no missing values).
    groups : array-like of shape (n_clips,), optional
        Each clip's group (None: every clip is its own group; see :func:`group_codes`).
    n_boot : int
        Number of resamples.
    seed : int or numpy.random.Generator

    Returns
    -------
    np.ndarray, shape (n_boot, n_clips), float64
        How many times each clip is drawn (its group's draw count).
    """
    pos = _as_pos(pos, "group_bootstrap_weights")
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
    x : array, shape (n_clips, n_units) or (n_clips,)
        Finite values (a NaN or infinite entry raises :class:`~soundnet.errors.ParameterError`).
    pos : array of bool, shape (n_clips,)
        The category's clips (a NaN entry raises).
    weights : array, shape (n_resamples, n_clips)
        Non-negative clip weights (e.g. from :func:`group_bootstrap_weights`).

    Returns
    -------
    np.ndarray, shape (n_resamples, n_units)
        AUROC in [0, 1]; NaN where a resample has no positive or no negative weight.
    """
    x = _check_finite(x, "x", "weighted_auroc")
    if x.ndim == 1:
        x = x[:, None]
    pos = _as_pos(pos, "weighted_auroc")
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


def auroc_influence(x: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC of every unit and each clip's influence on it (DeLong et al. 1988's placements).

    The estimate minus the true AUROC is about ``sum_i psi_i`` (the first-order, Hajek term): a
    positive clip's ``psi`` is (its placement among the negatives, ``P(x_neg < x) + P(x_neg = x)
    / 2``, minus the AUROC) over the positives' count; a negative clip's is (``P(x_pos > x) +
    P(x_pos = x) / 2`` minus the AUROC) over the negatives' count (the sample's ``psi`` sum to
    0). The squares of their within-group sums, times ``G / (G - 1)``, give the clustered
    (Obuchowski 1997) variance.

    Parameters
    ----------
    x : array, shape (n_clips, n_units) or (n_clips,)
        Finite values.
    pos : array of bool, shape (n_clips,)

    Returns
    -------
    auroc : shape (n_units,); psi : shape (n_clips, n_units). NaN when a side is empty.
    """
    x = _check_finite(x, "x", "auroc_influence")
    if x.ndim == 1:
        x = x[:, None]
    pos = _as_pos(pos, "auroc_influence")
    n_p, n_n = int(pos.sum()), int((~pos).sum())
    psi = np.full(x.shape, np.nan)
    auc = np.full(x.shape[1], np.nan)
    if n_p == 0 or n_n == 0:
        return auc, psi
    for j in range(x.shape[1]):
        xp, xn = np.sort(x[pos, j]), np.sort(x[~pos, j])
        v10 = (np.searchsorted(xn, x[pos, j], "left") + np.searchsorted(xn, x[pos, j], "right")) / (2.0 * n_n)
        v01 = 1.0 - (np.searchsorted(xp, x[~pos, j], "left") + np.searchsorted(xp, x[~pos, j], "right")) / (2.0 * n_p)
        a = float(v10.mean())
        auc[j] = a
        psi[pos, j] = (v10 - a) / n_p
        psi[~pos, j] = (v01 - a) / n_n
    return auc, psi


class RankedValues:
    """One unit's values sorted once, for the AUROC and placements (:func:`auroc_influence`) of
    many subsets of its clips in O(n) each, not a sort each.

    The paired comparisons of unit labels compute, for one unit, the AUROC of several categories
    each against its own clips (the clips of neither of two categories as negatives): on a
    million clips one sort per subset is most of their cost. Counts below and at each value come
    from cumulative sums of a subset's mask in the one sorted order, and ties from the blocks of
    equal values; the results equal :func:`auroc_influence` on the subset (to the rounding of
    the AUROC's mean, summed in another order).

    Parameters
    ----------
    x : array, shape (n_clips,)
        Finite values (NaN raises :class:`~soundnet.errors.ParameterError`).
    """

    def __init__(self, x: np.ndarray) -> None:
        x = _check_finite(x, "x", "RankedValues")
        if x.ndim != 1:
            raise ParameterError(f"The 'x' parameter of RankedValues must be 1-D. Got shape {x.shape} instead.")
        self.n = len(x)
        self.order = np.argsort(x)  # (any order of ties: they are handled as blocks)
        xs = x[self.order]
        new = np.ones(self.n, dtype=bool)
        new[1:] = xs[1:] != xs[:-1]
        starts = np.flatnonzero(new)
        block = np.cumsum(new) - 1
        # the block of equal values at each sorted position, as [lo, hi) positions
        self.lo = starts[block]
        self.hi = np.append(starts[1:], self.n)[block]

    def auroc_influence(self, pos: np.ndarray, keep: np.ndarray | None = None) -> tuple[float, np.ndarray]:
        """AUROC of ``pos`` against the other clips of ``keep`` and each clip's influence.

        Parameters
        ----------
        pos : array of bool, shape (n_clips,)
            The positives (only those in ``keep`` count).
        keep : array of bool, shape (n_clips,), optional
            The clips of the AUROC (default all).

        Returns
        -------
        auroc : float (NaN when a side is empty); psi : shape (n_clips,), as :func:`auroc_influence`
        on the clips of ``keep``, 0 for the others.
        """
        pos = _as_pos(pos, "RankedValues.auroc_influence")
        keep = np.ones(self.n, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
        if pos.shape != (self.n,) or keep.shape != (self.n,):
            raise ParameterError(
                f"The 'pos' and 'keep' parameters of RankedValues.auroc_influence must have shape ({self.n},). "
                f"Got {pos.shape} and {keep.shape} instead."
            )
        pos = pos & keep
        neg = keep & ~pos
        n_p, n_n = int(pos.sum()), int(neg.sum())
        psi = np.zeros(self.n)
        if n_p == 0 or n_n == 0:
            psi[keep] = np.nan
            return float("nan"), psi
        # in the sorted order (sequential reads), then back to the clips' order
        pos_s, neg_s = pos[self.order], neg[self.order]
        cum_n = np.concatenate([[0], np.cumsum(neg_s)])  # negatives among the first k sorted
        cum_p = np.concatenate([[0], np.cumsum(pos_s)])
        v10 = (cum_n[self.lo[pos_s]] + cum_n[self.hi[pos_s]]) / (2.0 * n_n)  # negatives below, ties halved
        v01 = 1.0 - (cum_p[self.lo[neg_s]] + cum_p[self.hi[neg_s]]) / (2.0 * n_p)  # positives above
        a = float(v10.mean())
        psi_s = np.zeros(self.n)
        psi_s[pos_s] = (v10 - a) / n_p
        psi_s[neg_s] = (v01 - a) / n_n
        psi[self.order] = psi_s
        return a, psi


def clustered_win_fraction(psi_a: np.ndarray, psi_b: np.ndarray, diff: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``P(AUROC_a > AUROC_b)`` under the normal approximation with the clustered variance of
    the difference: ``Phi(diff / se)``, ``se^2 = G / (G - 1) * sum_g (sum_{i in g} psi_a - psi_b)^2``.

    Parameters
    ----------
    psi_a, psi_b : arrays, shape (n_clips, n_units)
        :func:`auroc_influence` of the two AUROCs (same clips, e.g. two categories of one unit).
    diff : array, shape (n_units,)
        ``AUROC_a - AUROC_b``.
    codes : array of int, shape (n_clips,)
        :func:`group_codes`.

    Returns
    -------
    np.ndarray, shape (n_units,): 1 (or 0) where the difference has no spread and is positive
    (negative), 0.5 where it is zero.
    """
    from scipy import stats as sps

    g = int(codes.max()) + 1 if len(codes) else 0
    d = np.asarray(psi_a - psi_b).reshape(len(codes), -1)
    sums = np.column_stack([np.bincount(codes, weights=d[:, j], minlength=g) for j in range(d.shape[1])])
    var = (g / max(g - 1, 1)) * (sums**2).sum(axis=0)
    se = np.sqrt(var)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, diff / se, np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    return np.where(np.isnan(diff), np.nan, sps.norm.cdf(z))


def group_bootstrap_auroc(
    x: np.ndarray,
    pos: np.ndarray,
    groups: Sequence[Any] | np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int | np.random.Generator = 0,
    bootstrap_max_clips: int = BOOTSTRAP_MAX_CLIPS,
) -> pd.DataFrame:
    """AUROC of every unit with a stratified group-bootstrap percentile interval.

    Above ``bootstrap_max_clips`` clips (the bootstrap's time and memory grow as ``n_boot`` x
    clips: 16 GB of weights for a million clips) the interval is the normal one,
    ``auroc +- z * se``, with the clustered DeLong-Obuchowski standard error (each clip's
    placement influence, :func:`auroc_influence`, summed within its group), clipped to [0, 1].

    Parameters
    ----------
    x : array, shape (n_clips, n_units) or (n_clips,)
        Finite values (NaN raises :class:`~soundnet.errors.ParameterError`).
    pos : array of bool, shape (n_clips,)
        The category's clips; some but not all (NaN raises).
    groups : array-like, optional
        Each clip's group (None: clips are independent; missing values are singleton groups,
        see :func:`group_codes`). A group may hold clips of both classes: it is resampled as a
        unit in the stratum of its majority and its clips keep their own labels
        (:func:`group_bootstrap_weights`).
    n_boot : int
        Number of resamples.
    confidence : float
        0.95 gives the 2.5 and 97.5 percentiles of the resampled AUROCs.
    seed : int or numpy.random.Generator

    Returns
    -------
    DataFrame, one row per unit
        ``auroc`` (on all clips), ``auroc_lo``, ``auroc_hi``, ``n_groups_pos`` and
        ``n_groups_rest`` (the groups in each stratum, i.e. mostly positive or not: an interval
        from fewer than about 5 is too narrow).

    Notes
    -----
    - With fewer than 2 groups in either stratum the bootstrap cannot say anything about the
      variation between groups: ``auroc_lo`` and ``auroc_hi`` are NaN (``auroc`` is still
      given), rather than a degenerate interval.
    - The percentile interval is widened where needed so that ``auroc_lo <= auroc <= auroc_hi``
      always holds (a percentile interval of a skewed bootstrap distribution can otherwise
      exclude the estimate by a hair).
    - At the boundary the interval can have zero width: when the classes are perfectly
      separated on all clips every resample is too, and the interval is ``[1, 1]`` (or
      ``[0, 0]``). It is reported as it is; it says the data hold no counter-example, not that
      the AUROC is known exactly.
    """
    if not 0 < confidence < 1:
        raise ParameterError(
            f"The 'confidence' parameter of group_bootstrap_auroc must be in (0, 1). Got {confidence!r} instead."
        )
    pos = _as_pos(pos, "group_bootstrap_auroc")
    if pos.all() or not pos.any():
        raise ParameterError("The 'pos' parameter of group_bootstrap_auroc must select some but not all clips.")
    x2 = _check_finite(x, "x", "group_bootstrap_auroc")
    x2 = x2[:, None] if x2.ndim == 1 else x2
    codes = group_codes(groups, len(pos))
    side = _group_side(codes, pos)
    n_groups_pos, n_groups_rest = int(side.sum()), int((~side).sum())
    full = weighted_auroc(x2, pos, np.ones((1, len(pos))))[0]
    if n_groups_pos < 2 or n_groups_rest < 2:
        lo = np.full(x2.shape[1], np.nan)
        hi = lo.copy()
    else:
        lo, hi = _bootstrap_or_normal_interval(x2, pos, codes, full, n_boot, confidence, seed, bootstrap_max_clips)
    return pd.DataFrame(
        {
            "auroc": full,
            "auroc_lo": lo,
            "auroc_hi": hi,
            "n_groups_pos": n_groups_pos,
            "n_groups_rest": n_groups_rest,
        }
    )


def _normal_interval(
    auroc: np.ndarray, psi: np.ndarray, codes: np.ndarray, confidence: float
) -> tuple[np.ndarray, np.ndarray]:
    """``auroc +- z * se`` clipped to [0, 1], ``se`` the clustered DeLong-Obuchowski standard
    error: ``se^2 = G / (G - 1) * sum_g (sum_{i in g} psi_i)^2`` (``psi``: shape (n_clips,
    n_units), :func:`auroc_influence`)."""
    from scipy import stats as sps

    g = int(codes.max()) + 1
    sums = np.column_stack([np.bincount(codes, weights=psi[:, j], minlength=g) for j in range(psi.shape[1])])
    se = np.sqrt(g / max(g - 1, 1) * (sums**2).sum(axis=0))
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    return np.clip(auroc - z * se, 0.0, 1.0), np.clip(auroc + z * se, 0.0, 1.0)


def _bootstrap_or_normal_interval(
    x2: np.ndarray,
    pos: np.ndarray,
    codes: np.ndarray,
    full: np.ndarray,
    n_boot: int,
    confidence: float,
    seed: int | np.random.Generator,
    bootstrap_max_clips: int,
) -> tuple[np.ndarray, np.ndarray]:
    if len(pos) > bootstrap_max_clips:
        _, psi = auroc_influence(x2, pos)
        return _normal_interval(full, psi, codes, confidence)
    boot = weighted_auroc(x2, pos, group_bootstrap_weights(pos, codes, n_boot=n_boot, seed=seed))
    alpha = (1.0 - confidence) / 2.0
    # both strata are non-empty, so no resample is NaN (and a NaN would propagate, not vanish)
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return np.minimum(lo, full), np.maximum(hi, full)


def group_label_permutations(
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray | None,
    *,
    n_permutations: int,
    seed: int | np.random.Generator = 0,
) -> np.ndarray:
    """Labels permuted across groups: each group keeps one label, groups swap them.

    Every clip of a group must carry the same label (clips of one source carry one label in
    every corpus the toolkit reads); the permutation shuffles the group labels and gives every
    clip its group's new label. A group whose clips hold several labels (a missing label counts
    as one) has no single label to permute and raises :class:`~soundnet.errors.ParameterError`.

    Parameters
    ----------
    labels : array-like, shape (n_clips,)
    groups : array-like, shape (n_clips,), optional
        See :func:`group_codes` (None: every clip is its own group).
    n_permutations : int
    seed : int or numpy.random.Generator

    Returns
    -------
    np.ndarray of object, shape (n_permutations, n_clips)
    """
    labels = np.asarray(labels, dtype=object)
    codes = group_codes(groups, len(labels))
    frame = pd.DataFrame({"g": codes, "label": labels})
    n_labels = frame.groupby("g")["label"].nunique(dropna=False)
    mixed = n_labels.index[n_labels.to_numpy() > 1]
    if len(mixed):
        names = np.asarray(groups, dtype=object)
        example = [names[np.flatnonzero(codes == g)[0]] for g in mixed[:3]]
        raise ParameterError(
            f"The 'groups' parameter of group_label_permutations must give groups whose clips share one label. "
            f"Got {len(mixed)} group(s) with several labels (e.g. {example}) instead."
        )
    group_label = frame.groupby("g")["label"].first().sort_index().to_numpy()
    rng = np.random.default_rng(seed)
    out = np.empty((n_permutations, len(labels)), dtype=object)
    for i in range(n_permutations):
        out[i] = rng.permutation(group_label)[codes]
    return out


def _unlabelled(labels: pd.Series) -> np.ndarray:
    """True where a label is missing (NaN, None) or empty (``""`` after stripping)."""
    return (labels.isna() | (labels.astype(str).str.strip() == "")).to_numpy()


def unit_auroc_intervals(
    acts: pd.Series,
    labels: pd.Series,
    categories: list[str],
    *,
    groups: pd.Series | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    bootstrap_max_clips: int = BOOTSTRAP_MAX_CLIPS,
) -> pd.DataFrame:
    """Stratified bootstrap interval of one unit's AUROC for every category.

    The interval :func:`interp.analysis.selectivity.rank_units` reports for a ranked unit, for
    every category of one unit (what the dashboard's unit page shows).

    Parameters
    ----------
    acts : pandas.Series
        The unit's per-clip summary, indexed by clip id (clips with a non-finite value are left
        out).
    labels : pandas.Series
        Each clip's category, indexed by clip id. Unlabelled clips (missing label, NaN or
        ``""``) are left out: they are neither the category nor the rest.
    categories : list of str
    groups : pandas.Series, optional
        Each clip's group, indexed by clip id: the bootstrap resamples whole groups (a missing
        group makes the clip its own group).
    n_boot, confidence, seed, bootstrap_max_clips
        As for :func:`interp.analysis.resampling.group_bootstrap_auroc` (above
        ``bootstrap_max_clips`` clips, the clustered normal interval: the unit's values are
        sorted once for all categories, :class:`RankedValues`).

    Returns
    -------
    DataFrame ``category, auroc_lo, auroc_hi`` (NaN where a category has no clip, or every
    clip, or fewer than 2 groups on a side); ``attrs["method"]`` is ``"bootstrap"`` or
    ``"normal"`` (the clustered normal approximation, above ``bootstrap_max_clips`` clips).
    """
    if not 0 < confidence < 1:
        raise ParameterError(
            f"The 'confidence' parameter of unit_auroc_intervals must be in (0, 1). Got {confidence!r} instead."
        )
    x = acts.to_numpy(dtype=np.float64)
    lab_all = labels.reindex(acts.index)  # a clip without a label entry is unlabelled: left out below
    ok = np.isfinite(x) & ~_unlabelled(lab_all)
    x = x[ok][:, None]
    lab_codes, names = pd.factorize(lab_all.astype(str).to_numpy()[ok])
    where = {str(c): i for i, c in enumerate(names)}
    grp = None if groups is None else groups.reindex(acts.index).to_numpy(dtype=object)[ok]
    large = len(x) > bootstrap_max_clips
    if large:  # the normal interval, of one sort and one set of group codes for every category
        codes = group_codes(grp, len(x))
        ranked = RankedValues(x[:, 0])
    rows = []
    for cat in categories:
        pos = lab_codes == where.get(str(cat), -1)
        lo, hi = np.nan, np.nan
        if not 0 < pos.sum() < len(pos):
            pass
        elif not large:
            r = group_bootstrap_auroc(
                x, pos, grp, n_boot=n_boot, confidence=confidence, seed=seed, bootstrap_max_clips=bootstrap_max_clips
            ).iloc[0]
            lo, hi = r["auroc_lo"], r["auroc_hi"]
        elif min(int((side := _group_side(codes, pos)).sum()), int((~side).sum())) >= 2:
            a, psi = ranked.auroc_influence(pos)
            (lo,), (hi,) = _normal_interval(np.array([a]), psi[:, None], codes, confidence)
        rows.append((cat, float(lo), float(hi)))
    out = pd.DataFrame(rows, columns=["category", "auroc_lo", "auroc_hi"])
    out.attrs["method"] = "normal" if large else "bootstrap"
    return out
