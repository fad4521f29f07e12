"""Vectorised statistics for unit selectivity: every unit x every category at once.

Pure numpy / scipy functions, no run directory, no model. Arrays follow one convention:

- ``x``: activations ``(n_clips, n_units)`` (any float dtype; computed in float64);
- ``onehot``: category membership ``(n_clips, n_categories)`` bool, one True per row;
- results per (unit, category) are ``(n_units, n_categories)`` arrays.

The tests (``tests/test_stats.py``) check every function here against its reference
(:func:`sklearn.metrics.roc_auc_score`, :func:`scipy.stats.mannwhitneyu`,
:func:`scipy.stats.false_discovery_control`, :func:`scipy.stats.rankdata`, :func:`numpy.quantile`)
on random and on tied data.

Test direction
--------------
Mann-Whitney p-values are **one-sided**, alternative ``"greater"``: the question asked of a
(unit, category) pair is "does the unit fire *more* for this category than for the rest?". A unit
that is silenced by a category is not called selective for it. ``alternative="two-sided"`` is
available where a symmetric test is wanted.

References
----------
Morcos, Barrett, Rabinowitz, Botvinick (2018), "On the importance of single directions for
generalization", ICLR (class selectivity index). Bau, Zhou, Khosla, Oliva, Torralba (2017),
"Network Dissection", CVPR (top-quantile binarisation, IoU). Benjamini & Hochberg (1995).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from soundnet.errors import ParameterError
from soundnet.options import Alternative, check_option, choices

__all__ = [
    "rank_columns",
    "onehot_labels",
    "class_moments",
    "auroc_from_rank_sums",
    "mannwhitney_z",
    "mannwhitney_p",
    "mannwhitney",
    "auroc",
    "bh_qvalues",
    "dprime",
    "class_selectivity_index",
    "top_quantile_threshold",
    "binary_mi_iou",
    "random_subsets",
    "permutation_pvalues",
    "bootstrap_auroc_ci",
    "column_correlations",
]

ALTERNATIVES: tuple[Alternative, ...] = choices(Alternative)


def _as_2d(x, name: str, fn: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ParameterError(
            f"The '{name}' parameter of {fn} must be a 2-D array (n_clips, n_units). Got shape {a.shape} instead."
        )
    if not np.all(np.isfinite(a)):
        raise ParameterError(
            f"The '{name}' parameter of {fn} must be finite. Got "
            f"{int((~np.isfinite(a)).sum())} NaN or infinite values instead."
        )
    return a


def _check_onehot(onehot, n: int, fn: str) -> np.ndarray:
    y = np.asarray(onehot)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != n:
        raise ParameterError(
            f"The 'onehot' parameter of {fn} must be (n_clips={n}, n_categories). Got shape {y.shape} instead."
        )
    return y.astype(bool, copy=False)


# ------------------------------------------------------------------------------------------
# ranks
# ------------------------------------------------------------------------------------------
def rank_columns(x, *, return_sorted: bool = False):
    """Average ranks (1-based, ties get the mean rank) of every column, and the tie term.

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
        Finite values.
    return_sorted : bool
        Also return each column sorted ascending (saves a second sort for quantiles).

    Returns
    -------
    ranks : np.ndarray, float64, shape (n_clips, n_units)
        Equal to ``scipy.stats.rankdata(x, axis=0)``.
    tie_term : np.ndarray, float64, shape (n_units,)
        ``sum(t**3 - t)`` over the groups of tied values of each column (0 without ties), the
        Mann-Whitney tie correction.
    sorted : np.ndarray, shape (n_clips, n_units)
        Only with ``return_sorted=True``.
    """
    a = _as_2d(x, "x", "rank_columns")
    n, m = a.shape
    if n == 0 or m == 0:
        empty = np.zeros((n, m))
        return (empty, np.zeros(m), empty) if return_sorted else (empty, np.zeros(m))
    # one column per row: row sorts and gathers stay within a column's memory, and the default
    # introsort (SIMD where the CPU has it) is several times faster than a stable sort on a
    # million values; the order of tied values does not matter, their ranks are averaged
    st = np.ascontiguousarray(a.T)  # (m, n)
    order = st.argsort(axis=1)
    s = np.take_along_axis(st, order, axis=1)  # (m, n): each column sorted
    new = np.ones((m, n), dtype=bool)
    if n > 1:
        np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
    flat = new.ravel()
    starts = np.flatnonzero(flat)  # flat index of each tie group's start
    counts = np.empty_like(starts)  # group sizes (groups never span columns)
    np.subtract(starts[1:], starts[:-1], out=counts[:-1])
    counts[-1] = flat.size - starts[-1]
    group = np.cumsum(flat) - 1  # group id of every flat position
    avg = (starts % n) + (counts + 1) / 2.0  # average 1-based rank of each group
    ranks_t = np.empty((m, n), dtype=np.float64)
    np.put_along_axis(ranks_t, order, avg[group].reshape(m, n), axis=1)
    ranks = np.ascontiguousarray(ranks_t.T)
    tied = counts > 1  # only groups of ties add to the term
    c = counts[tied].astype(np.float64)
    tie_term = np.bincount(starts[tied] // n, weights=c * (c * c - 1.0), minlength=m).astype(np.float64)
    if return_sorted:
        return ranks, tie_term, s.T
    return ranks, tie_term


def onehot_labels(labels, *, categories=None) -> tuple[np.ndarray, list]:
    """One-hot membership of a label vector.

    Parameters
    ----------
    labels : array-like, shape (n_clips,)
    categories : sequence, optional
        Column order (default: the sorted unique labels).

    Returns
    -------
    onehot : np.ndarray, bool, shape (n_clips, n_categories)
    categories : list
    """
    lab = np.asarray(labels)
    cats = sorted(set(lab.tolist())) if categories is None else list(categories)
    return lab[:, None] == np.asarray(cats, dtype=object)[None, :], cats


# ------------------------------------------------------------------------------------------
# class-conditional moments, d', CSI
# ------------------------------------------------------------------------------------------
def class_moments(x, onehot, *, ddof: int = 1) -> dict[str, np.ndarray]:
    """Class-conditional means and standard deviations, in the category and in the rest.

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
    onehot : array of bool, shape (n_clips, n_categories)
    ddof : int
        Delta degrees of freedom of the standard deviations (1: sample std).

    Returns
    -------
    dict of np.ndarray, each (n_units, n_categories)
        ``mean_pos``, ``std_pos`` (clips of the category), ``mean_rest``, ``std_rest`` (all
        other clips); NaN for a std with fewer than ``ddof + 1`` clips.
    """
    a = _as_2d(x, "x", "class_moments")
    y = _check_onehot(onehot, a.shape[0], "class_moments").astype(np.float64)
    center = a.mean(axis=0)
    a = a - center  # centred: sums of squares stay accurate
    n_pos = y.sum(axis=0)  # (C,)
    n_rest = a.shape[0] - n_pos
    s1, s2 = a.T @ y, (a * a).T @ y  # (m, C)
    t1, t2 = a.sum(axis=0)[:, None], (a * a).sum(axis=0)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        mp, mr = s1 / n_pos, (t1 - s1) / n_rest
        vp = (s2 - n_pos * mp**2) / (n_pos - ddof)
        vr = ((t2 - s2) - n_rest * mr**2) / (n_rest - ddof)
    vp = np.where(n_pos > ddof, np.maximum(vp, 0.0), np.nan)
    vr = np.where(n_rest > ddof, np.maximum(vr, 0.0), np.nan)
    return {
        "mean_pos": mp + center[:, None],
        "std_pos": np.sqrt(vp),
        "mean_rest": mr + center[:, None],
        "std_rest": np.sqrt(vr),
    }


def dprime(mean_pos, std_pos, mean_rest, std_rest) -> np.ndarray:
    """Sensitivity index d' = (mu_pos - mu_rest) / sqrt((sd_pos^2 + sd_rest^2) / 2).

    Element-wise on arrays of any (broadcastable) shape. Where both standard deviations are 0,
    d' is 0 if the means are equal and +-inf otherwise; NaN standard deviations count as 0.
    """
    sp = np.nan_to_num(np.asarray(std_pos, dtype=np.float64))
    sr = np.nan_to_num(np.asarray(std_rest, dtype=np.float64))
    num = np.asarray(mean_pos, dtype=np.float64) - np.asarray(mean_rest, dtype=np.float64)
    den = np.sqrt((sp**2 + sr**2) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = num / den
    return np.where(den > 0, d, np.where(num == 0, 0.0, np.copysign(np.inf, num)))


def class_selectivity_index(class_means) -> tuple[np.ndarray, np.ndarray]:
    """Class selectivity index of Morcos et al. (2018), per category and per unit.

    For category ``c``: ``(mu_c - mu_rest) / (mu_c + mu_rest)`` where ``mu_rest`` is the mean of
    the *other categories'* means (class-balanced, as in Morcos et al.). The unit's CSI is the
    value at its highest-mean category, ``(mu_max - mu_rest) / (mu_max + mu_rest)``.

    Parameters
    ----------
    class_means : array, shape (n_units, n_categories)
        Mean activation of each unit in each category (at least 2 categories).

    Returns
    -------
    csi : np.ndarray, shape (n_units, n_categories)
        In [-1, 1] for non-negative activations (ReLU layers); 0 where numerator and
        denominator are both 0. For activations that can be negative (head logits) the index is
        not bounded and is best not used.
    unit_csi : np.ndarray, shape (n_units,)
    """
    mu = np.asarray(class_means, dtype=np.float64)
    if mu.ndim != 2 or mu.shape[1] < 2:
        raise ParameterError(
            "The 'class_means' parameter of class_selectivity_index must be "
            f"(n_units, n_categories >= 2). Got shape {mu.shape} instead."
        )
    k = mu.shape[1]
    rest = (mu.sum(axis=1, keepdims=True) - mu) / (k - 1)
    num, den = mu - rest, mu + rest
    with np.errstate(divide="ignore", invalid="ignore"):
        csi = np.where(den != 0, num / den, 0.0)
    unit = csi[np.arange(mu.shape[0]), np.argmax(mu, axis=1)]
    return csi, unit


# ------------------------------------------------------------------------------------------
# AUROC and Mann-Whitney U
# ------------------------------------------------------------------------------------------
def auroc_from_rank_sums(rank_sum, n_pos, n_rest) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and Mann-Whitney U1 from the rank sum of the positives.

    Parameters
    ----------
    rank_sum : array, shape (n_units, n_categories)
        Sum of the (average, 1-based) ranks of the category's clips.
    n_pos, n_rest : array, shape (n_categories,)
        Clips in the category and in the rest.

    Returns
    -------
    auroc : np.ndarray, shape (n_units, n_categories)
        ``U1 / (n_pos * n_rest)``: the probability that a random clip of the category has a
        higher activation than a random other clip, ties counting one half.
    u1 : np.ndarray, shape (n_units, n_categories)
        The Mann-Whitney statistic of the category's sample (scipy's ``statistic``).
    """
    n_pos = np.asarray(n_pos, dtype=np.float64)
    n_rest = np.asarray(n_rest, dtype=np.float64)
    u1 = np.asarray(rank_sum, dtype=np.float64) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return u1 / (n_pos * n_rest), u1


def mannwhitney_z(
    u1, n_pos, n_rest, tie_term, *, alternative: Alternative = "greater", continuity: bool = True
) -> np.ndarray:
    """Standardised Mann-Whitney statistic with tie and continuity corrections (scipy's).

    Parameters
    ----------
    u1 : array, shape (n_units, n_categories)
    n_pos, n_rest : array, shape (n_categories,)
    tie_term : array, shape (n_units,)
        ``sum(t**3 - t)`` over tie groups of each unit (from :func:`rank_columns`).
    alternative : {"greater", "less", "two-sided"}
    continuity : bool
        Subtract 0.5 from ``|U - mu|`` (scipy's ``use_continuity=True``).

    Returns
    -------
    z : np.ndarray, shape (n_units, n_categories)
        The z whose normal survival function is the p-value (before doubling for two-sided).
        ``-inf`` for a constant unit (no information; p = 1).
    """
    check_option("alternative", alternative, Alternative, where="mannwhitney_z")
    u1 = np.asarray(u1, dtype=np.float64)
    n1 = np.asarray(n_pos, dtype=np.float64)
    n2 = np.asarray(n_rest, dtype=np.float64)
    t = np.asarray(tie_term, dtype=np.float64).reshape(-1, 1)
    u2 = n1 * n2 - u1
    u = {"greater": u1, "less": u2}.get(alternative, np.maximum(u1, u2))
    n = n1 + n2
    var = n1 * n2 / 12.0 * ((n + 1) - t / (n * (n - 1)))
    # a constant unit has var == 0 exactly in theory; rounding leaves a tiny residue
    var = np.where(var > 1e-9 * n1 * n2 * (n + 1) / 12.0, var, 0.0)
    num = u - n1 * n2 / 2.0 - (0.5 if continuity else 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = num / np.sqrt(var)
    return np.where(var > 0, z, -np.inf)


def mannwhitney_p(z, *, alternative: Alternative = "greater") -> np.ndarray:
    """p-value from :func:`mannwhitney_z`: ``norm.sf(z)``, doubled for two-sided, clipped to [0, 1]."""
    p = special.ndtr(-np.asarray(z, dtype=np.float64))
    if alternative == "two-sided":
        p = 2.0 * p
    return np.clip(p, 0.0, 1.0)


def mannwhitney(x, onehot, *, alternative: Alternative = "greater", continuity: bool = True) -> dict[str, np.ndarray]:
    """AUROC, U, z and p of every unit against every category (one-vs-rest).

    Equal to ``scipy.stats.mannwhitneyu(x[pos, j], x[~pos, j], alternative=alternative,
    method="asymptotic", use_continuity=continuity)`` and to
    ``sklearn.metrics.roc_auc_score(pos, x[:, j])`` for each unit ``j`` and category.

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
    onehot : array of bool, shape (n_clips, n_categories)

    Returns
    -------
    dict with ``auroc``, ``u`` (U1), ``z``, ``p``: each (n_units, n_categories); ``ranks``
    (n_clips, n_units) and ``tie_term`` (n_units,).
    """
    ranks, tie = rank_columns(x)
    y = _check_onehot(onehot, ranks.shape[0], "mannwhitney")
    n_pos = y.sum(axis=0).astype(np.float64)
    n_rest = y.shape[0] - n_pos
    auc, u1 = auroc_from_rank_sums(ranks.T @ y.astype(np.float64), n_pos, n_rest)
    z = mannwhitney_z(u1, n_pos, n_rest, tie, alternative=alternative, continuity=continuity)
    return {
        "auroc": auc,
        "u": u1,
        "z": z,
        "p": mannwhitney_p(z, alternative=alternative),
        "ranks": ranks,
        "tie_term": tie,
    }


def auroc(x, onehot) -> np.ndarray:
    """One-vs-rest AUROC of every unit for every category, shape (n_units, n_categories)."""
    return mannwhitney(x, onehot)["auroc"]


# ------------------------------------------------------------------------------------------
# multiple testing
# ------------------------------------------------------------------------------------------
def bh_qvalues(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) over all entries of ``p``.

    Equal to ``scipy.stats.false_discovery_control(p, method="bh")`` over the finite entries;
    NaN entries are left out of the family and stay NaN.

    Parameters
    ----------
    p : array of any shape, values in [0, 1] or NaN

    Returns
    -------
    np.ndarray, same shape as ``p``
    """
    pa = np.asarray(p, dtype=np.float64)
    flat = pa.ravel()
    ok = np.isfinite(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ParameterError(
            "The 'p' parameter of bh_qvalues must hold values in [0, 1]. "
            f"Got a range [{flat[ok].min()}, {flat[ok].max()}] instead."
        )
    q = np.full(flat.shape, np.nan)
    v = flat[ok]
    m = v.size
    if m:
        order = np.argsort(v, kind="stable")
        adj = v[order] * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(adj[::-1])[::-1]
        out = np.empty(m)
        out[order] = np.clip(adj, 0.0, 1.0)
        q[ok] = out
    return q.reshape(pa.shape)


# ------------------------------------------------------------------------------------------
# NetDissect-style binarisation: mutual information and IoU
# ------------------------------------------------------------------------------------------
def top_quantile_threshold(x, *, top_quantile: float = 0.1, sorted_columns=None) -> np.ndarray:
    """Per-unit threshold above which a clip is in the unit's top quantile.

    ``np.quantile(x, 1 - top_quantile, axis=0)`` (linear interpolation); pass the columns
    already sorted ascending to skip the sort.

    Returns
    -------
    np.ndarray, shape (n_units,)
    """
    if not 0 < top_quantile < 1:
        raise ParameterError(
            f"The 'top_quantile' parameter of top_quantile_threshold must be in (0, 1). Got {top_quantile!r} instead."
        )
    s = (
        np.sort(_as_2d(x, "x", "top_quantile_threshold"), axis=0)
        if sorted_columns is None
        else np.asarray(sorted_columns, dtype=np.float64)
    )
    n = s.shape[0]
    h = (n - 1) * (1.0 - top_quantile)
    lo = int(np.floor(h))
    hi = min(lo + 1, n - 1)
    return s[lo] + (h - lo) * (s[hi] - s[lo])


def binary_mi_iou(active, onehot) -> tuple[np.ndarray, np.ndarray]:
    """Mutual information (bits) and IoU between binary unit activity and each category.

    Parameters
    ----------
    active : array of bool, shape (n_clips, n_units)
        Whether each clip is in the unit's top quantile (``x > threshold``).
    onehot : array of bool, shape (n_clips, n_categories)

    Returns
    -------
    mi_bits : np.ndarray, shape (n_units, n_categories)
        ``I(active; category)`` from the 2x2 contingency table, in bits (0 log 0 = 0).
    iou : np.ndarray, shape (n_units, n_categories)
        ``|active & category| / |active | category|`` (NetDissect's IoU; 0 when both are empty).
    """
    a = np.asarray(active, dtype=bool)
    y = _check_onehot(onehot, a.shape[0], "binary_mi_iou")
    n = float(a.shape[0])
    n11 = a.T.astype(np.float64) @ y.astype(np.float64)  # (m, C)
    na = a.sum(axis=0).astype(np.float64)[:, None]  # (m, 1)
    ny = y.sum(axis=0).astype(np.float64)[None, :]  # (1, C)
    cells = [(n11, na, ny), (na - n11, na, n - ny), (ny - n11, n - na, ny), (n - na - ny + n11, n - na, n - ny)]
    mi = np.zeros(n11.shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        for joint, ma, my in cells:
            term = joint / n * np.log2(joint * n / (ma * my))
            mi += np.where(joint > 0, term, 0.0)
        union = na + ny - n11
        iou = np.where(union > 0, n11 / union, 0.0)
    return np.maximum(mi, 0.0), iou


# ------------------------------------------------------------------------------------------
# resampling: permutation p-values and bootstrap intervals
# ------------------------------------------------------------------------------------------
def random_subsets(
    n: int, k: int, n_subsets: int, *, seed: int | np.random.Generator | np.random.SeedSequence = 0
) -> np.ndarray:
    """``n_subsets`` independent uniformly random ``k``-subsets of ``range(n)``.

    Returns
    -------
    np.ndarray, int64, shape (n_subsets, k)
    """
    if not 0 < k <= n:
        raise ParameterError(f"The 'k' parameter of random_subsets must be in [1, n={n}]. Got {k!r} instead.")
    rng = np.random.default_rng(seed)
    if n_subsets * n <= 50_000_000:
        out = np.empty((n_subsets, k), dtype=np.int64)
        step = max(1, 5_000_000 // n)
        for i in range(0, n_subsets, step):
            b = min(step, n_subsets - i)
            out[i : i + b] = np.argpartition(rng.random((b, n)), k - 1, axis=1)[:, :k]
        return out
    return np.stack([rng.choice(n, size=k, replace=False) for _ in range(n_subsets)]).astype(np.int64)


def permutation_pvalues(
    ranks,
    pos,
    *,
    n_permutations: int = 10_000,
    alternative: Alternative = "greater",
    seed: int | np.random.Generator = 0,
    subsets=None,
    chunk_elements: int = 20_000_000,
) -> np.ndarray:
    """Monte-Carlo permutation p-values of the rank-sum statistic, for every unit at once.

    The category's clips are replaced by random subsets of the same size; the p-value is
    ``(1 + #{permuted >= observed}) / (1 + n_permutations)`` (never 0, valid with ties). Use it
    for small categories, where the normal approximation of :func:`mannwhitney_p` is poor.

    Parameters
    ----------
    ranks : array, shape (n_clips, n_units)
        Ranks from :func:`rank_columns` (the rank sum is a function of U, so the test is the
        Mann-Whitney test, exact up to Monte-Carlo error).
    pos : array of bool, shape (n_clips,)
        Membership of the category.
    n_permutations : int
    alternative : {"greater", "less", "two-sided"}
        ``two-sided`` counts permutations at least as far from ``n_pos (n+1) / 2`` as observed.
    seed : int or numpy.random.Generator
    subsets : array of int, shape (n_permutations, n_pos), optional
        Precomputed random subsets (:func:`random_subsets`), e.g. to use the same permutations
        for every chunk of units; ``n_permutations`` and ``seed`` are then ignored.

    Returns
    -------
    np.ndarray, shape (n_units,)
    """
    check_option("alternative", alternative, Alternative, where="permutation_pvalues")
    if int(n_permutations) < 1:
        raise ParameterError(
            f"The 'n_permutations' parameter of permutation_pvalues must be >= 1. Got {n_permutations!r} instead."
        )
    r = np.asarray(ranks, dtype=np.float64)
    pos = np.asarray(pos, dtype=bool)
    n, m = r.shape
    k = int(pos.sum())
    if not 0 < k < n:
        raise ParameterError(
            f"The 'pos' parameter of permutation_pvalues must select between 1 and "
            f"n_clips - 1 clips. Got {k} of {n} instead."
        )
    if subsets is None:
        subsets = random_subsets(n, k, int(n_permutations), seed=seed)
    subsets = np.asarray(subsets)
    if subsets.ndim != 2 or subsets.shape[1] != k:
        raise ParameterError(
            f"The 'subsets' parameter of permutation_pvalues must be (n_permutations, {k}). "
            f"Got shape {subsets.shape} instead."
        )
    n_permutations = subsets.shape[0]
    center = k * (n + 1) / 2.0
    obs = r[pos].sum(axis=0)
    tol = 1e-7 * max(1.0, center)
    count = np.zeros(m)
    done = 0
    step = max(1, int(chunk_elements // max(1, k * m)))
    while done < n_permutations:
        b = min(step, n_permutations - done)
        perm = r[subsets[done : done + b]].sum(axis=1)  # (b, m)
        if alternative == "greater":
            count += (perm >= obs - tol).sum(axis=0)
        elif alternative == "less":
            count += (perm <= obs + tol).sum(axis=0)
        else:
            count += (np.abs(perm - center) >= np.abs(obs - center) - tol).sum(axis=0)
        done += b
    return (1.0 + count) / (1.0 + n_permutations)


def bootstrap_auroc_ci(
    x, pos, *, n_boot: int = 2000, confidence: float = 0.95, seed: int | np.random.Generator = 0
) -> np.ndarray:
    """Stratified bootstrap percentile interval of the AUROC of a few units.

    Clips are resampled with replacement within the category and within the rest (the class
    sizes stay fixed); each resample's AUROC is computed exactly (ties count one half) from
    cumulative resampling weights, without re-sorting.

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
        Activations of the units to report (typically the ~20 a table shows).
    pos : array of bool, shape (n_clips,)
    n_boot : int
    confidence : float
        0.95 gives the 2.5 and 97.5 percentiles.
    seed : int or numpy.random.Generator

    Returns
    -------
    np.ndarray, shape (n_units, 2)
        Lower and upper bounds.
    """
    a = _as_2d(x, "x", "bootstrap_auroc_ci")
    pos = np.asarray(pos, dtype=bool)
    if not 0 < confidence < 1:
        raise ParameterError(
            f"The 'confidence' parameter of bootstrap_auroc_ci must be in (0, 1). Got {confidence!r} instead."
        )
    n1, n0 = int(pos.sum()), int((~pos).sum())
    if n1 == 0 or n0 == 0:
        raise ParameterError("The 'pos' parameter of bootstrap_auroc_ci must select some but not all clips.")
    rng = np.random.default_rng(seed)
    w1 = rng.multinomial(n1, np.full(n1, 1.0 / n1), size=n_boot).astype(np.float64)  # (B, n1)
    w0 = rng.multinomial(n0, np.full(n0, 1.0 / n0), size=n_boot).astype(np.float64)  # (B, n0)
    out = np.empty((a.shape[1], 2))
    alpha = (1.0 - confidence) / 2.0
    for j in range(a.shape[1]):
        xp, xn = a[pos, j], a[~pos, j]
        order = np.argsort(xn, kind="stable")
        xn_sorted = xn[order]
        cum = np.zeros((n_boot, n0 + 1))
        np.cumsum(w0[:, order], axis=1, out=cum[:, 1:])
        lo = np.searchsorted(xn_sorted, xp, side="left")  # negatives strictly below
        hi = np.searchsorted(xn_sorted, xp, side="right")  # ... or equal
        below, ties = cum[:, lo], cum[:, hi] - cum[:, lo]  # (B, n1)
        aucs = (w1 * (below + 0.5 * ties)).sum(axis=1) / (n1 * n0)
        out[j] = np.quantile(aucs, [alpha, 1.0 - alpha])
    return out


# ------------------------------------------------------------------------------------------
# correlations
# ------------------------------------------------------------------------------------------
def column_correlations(x, y) -> np.ndarray:
    """Pearson correlation across clips between every column of ``x`` and of ``y``.

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
    y : array, shape (n_clips, n_outputs)

    Returns
    -------
    np.ndarray, shape (n_units, n_outputs)
        0 where a column is constant.
    """
    a = _as_2d(x, "x", "column_correlations")
    b = _as_2d(y, "y", "column_correlations")
    if a.shape[0] != b.shape[0]:
        raise ParameterError(
            "The 'x' and 'y' parameters of column_correlations must have the same "
            f"number of rows. Got {a.shape[0]} and {b.shape[0]} instead."
        )
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    na, nb = np.sqrt((a * a).sum(axis=0)), np.sqrt((b * b).sum(axis=0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (a.T @ b) / np.outer(na, nb)
    return np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), 0.0)
