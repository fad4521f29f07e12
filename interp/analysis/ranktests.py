"""Rank tests behind the selectivity table: on clips or on group means, within nuisance strata,
and the unit-level p (see :mod:`interp.analysis.selectivity` and ``docs/statistics.md``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from interp.analysis import stats
from interp.analysis.resampling import group_codes
from interp.analysis.unitlabels import label_counts, label_membership
from soundnet.errors import ParameterError
from soundnet.options import Alternative

__all__ = ["LayerDesign", "group_design", "rank_tests", "stratified_tests", "unit_p"]


def group_design(
    lab: np.ndarray, grp: np.ndarray | None, onehot: np.ndarray
) -> tuple[sparse.csr_matrix | None, np.ndarray, np.ndarray | None]:
    """``(gmean, g_onehot, first)``: the sparse ``(n_groups, n_clips)`` averaging matrix (None
    when every clip is its own group), each group's categories and each group's first clip.

    A group's category is the most common among its clips (single-label); with multi-label
    clips (several categories in a row of ``onehot``), a group has each category that at least
    half of its clips have.
    """
    if grp is None:
        return None, onehot, None
    codes = group_codes(grp, len(lab))
    n_groups = int(codes.max()) + 1
    if n_groups == len(lab):
        return None, onehot, None
    size = np.bincount(codes, minlength=n_groups).astype(np.float64)
    n = len(lab)
    gmean = sparse.csr_matrix((1.0 / size[codes], (codes, np.arange(n))), shape=(n_groups, n))
    counts = np.zeros((n_groups, onehot.shape[1]))
    np.add.at(counts, codes, onehot)
    if onehot.sum(axis=1).max(initial=0) > 1:  # multi-label: the categories of half its clips
        g_onehot = counts >= size[:, None] / 2.0
    else:
        g_onehot = np.zeros_like(counts, dtype=bool)
        has = counts.sum(axis=1) > 0
        g_onehot[np.flatnonzero(has), counts[has].argmax(axis=1)] = True
    first = np.full(n_groups, n, dtype=np.int64)
    np.minimum.at(first, codes, np.arange(n))
    return gmean, g_onehot, first


def stratified_tests(
    obs: np.ndarray, onehot: np.ndarray, strata: np.ndarray, alternative: Alternative
) -> dict[str, np.ndarray]:
    """Within-strata AUROC and stratified Mann-Whitney p of every unit and category.

    ``auroc_ctrl`` pools the comparisons *within* each stratum (category observations against
    the others of the same stratum): ``sum_s U_s / sum_s n1_s n0_s``; ``p_ctrl`` is the
    one-sided normal p of ``sum_s U_s`` with variance ``sum_s Var(U_s)`` (tie-corrected), the
    stratified Wilcoxon test with equal weights per comparison. Strata with no observation of
    the category, or none of the rest, add nothing.
    """
    oh = onehot.astype(np.float64)
    n_units, n_cat = obs.shape[1], oh.shape[1]
    u_sum = np.zeros((n_units, n_cat))
    pairs = np.zeros(n_cat)
    var = np.zeros((n_units, n_cat))
    for s in pd.unique(strata):
        m = strata == s
        n = int(m.sum())
        if n < 2:
            continue
        ranks, tie = stats.rank_columns(obs[m])
        n1 = oh[m].sum(axis=0)
        n0 = n - n1
        u1 = ranks.T @ oh[m] - n1 * (n1 + 1) / 2.0
        use = (n1 > 0) & (n0 > 0)
        u_sum[:, use] += u1[:, use]
        pairs[use] += (n1 * n0)[use]
        v = n1 * n0 / 12.0 * ((n + 1) - tie[:, None] / (n * (n - 1)))
        var[:, use] += v[:, use]
    with np.errstate(divide="ignore", invalid="ignore"):
        auroc = np.where(pairs > 0, u_sum / pairs, np.nan)
        u_other = pairs - u_sum
        u = {"greater": u_sum, "less": u_other}.get(alternative, np.maximum(u_sum, u_other))
        z = np.where(var > 0, (u - pairs / 2.0 - 0.5) / np.sqrt(var), -np.inf)
    p = stats.mannwhitney_p(z, alternative=alternative)
    return {"auroc_ctrl": auroc, "p_ctrl": np.where(pairs > 0, p, np.nan)}


def unit_p(p: np.ndarray, testable: np.ndarray) -> np.ndarray:
    """Unit-level p of ``(n_units, n_categories)`` pair p-values: the smallest over the
    testable categories times their number (Bonferroni), capped at 1; NaN when none."""
    p_t = np.where(testable[None, :] & np.isfinite(p), p, np.inf)
    best = p_t.min(axis=1) if p_t.shape[1] else np.full(p_t.shape[0], np.inf)
    return np.where(np.isfinite(best), np.minimum(1.0, max(1, int(testable.sum())) * best), np.nan)


def rank_tests(
    ranks: np.ndarray, tie: np.ndarray, onehot: np.ndarray, small: list[int], subsets: dict, alternative: Alternative
) -> dict[str, np.ndarray]:
    """Mann-Whitney ``u``, ``z``, ``p_mwu`` and the permutation ``p_perm`` (for ``small``
    categories) of every unit, from the ranks of the observations (clips, or group means)."""
    oh = onehot.astype(np.float64)
    n_pos = oh.sum(axis=0)
    n_rest = oh.shape[0] - n_pos
    _, u1 = stats.auroc_from_rank_sums(ranks.T @ oh, n_pos, n_rest)
    z = stats.mannwhitney_z(u1, n_pos, n_rest, tie, alternative=alternative)
    perm = np.full(u1.shape, np.nan)
    for c in small:
        perm[:, c] = stats.permutation_pvalues(ranks, onehot[:, c], subsets=subsets[c], alternative=alternative)
    return {"u": u1, "z": z, "p_mwu": stats.mannwhitney_p(z, alternative=alternative), "p_perm": perm}


@dataclass
class LayerDesign:
    """What the rows of one layer share whatever the block of units: the clips kept (a label and
    finite values), their labels, groups and strata, and the group design. Built once per layer
    (and again only when a block keeps other clips): at 1,000,000 clips building it takes
    seconds, and a layer has dozens of blocks."""

    index: pd.Index
    finite: np.ndarray
    keep: np.ndarray
    excluded: pd.Series
    onehot: np.ndarray
    n_pos: np.ndarray
    n_rest: np.ndarray
    valid: np.ndarray
    gmean: sparse.csr_matrix | None
    g_onehot: np.ndarray
    g_ctrl: np.ndarray | None
    g_pos: np.ndarray
    small: list[int]
    subsets: dict[int, np.ndarray]

    @classmethod
    def build(
        cls,
        layer: str,
        index: pd.Index,
        finite: np.ndarray,
        labels: pd.Series,
        categories: list[str],
        *,
        groups: pd.Series | None,
        control: pd.Series | None,
        permutation_below: int,
        n_permutations: int,
        seed: int,
    ) -> LayerDesign:
        """The design of the clips of ``index`` whose row of a block is all ``finite``
        (:func:`interp.analysis.selectivity.compute_selectivity`'s parameters)."""
        lab = labels.reindex(index)
        keep = lab.notna().to_numpy() & finite
        if not keep.any():
            raise ParameterError(
                f"No clip of layer {layer!r} has both a label and finite activations: the "
                "'labels' parameter of compute_selectivity must be indexed by the clip ids of 'acts'."
            )
        # labelled clips without a valid frame in this layer (vmean NaN): left out, and counted
        excluded = label_counts(lab[lab.notna().to_numpy() & ~finite])
        grp = None if groups is None else groups.reindex(index)[keep].to_numpy()
        ctrl = None if control is None else control.reindex(index)[keep].to_numpy()
        lab_kept = lab[keep].to_numpy()
        onehot = label_membership(lab_kept, categories)  # several per row for multi-label clips
        n_pos = onehot.sum(axis=0).astype(np.float64)
        n_rest = onehot.shape[0] - n_pos
        valid = (n_pos > 0) & (n_rest > 0)
        gmean, g_onehot, g_first = group_design(lab_kept, grp, onehot)
        g_ctrl = None
        if ctrl is not None:  # a group's stratum: its first clip's
            g_ctrl = ctrl if g_first is None else ctrl[g_first]
        g_pos = g_onehot.sum(axis=0).astype(np.int64)  # the tested observations of each category
        valid &= (g_pos > 0) & (g_pos < len(g_onehot))
        small = [c for c in range(len(categories)) if valid[c] and g_pos[c] < permutation_below]
        # one set of random subsets per category, shared by all units of the layer
        subsets = {
            c: stats.random_subsets(
                len(g_onehot), int(g_pos[c]), n_permutations, seed=np.random.SeedSequence([seed, c])
            )
            for c in small
        }
        return cls(
            index, finite, keep, excluded, onehot, n_pos, n_rest, valid, gmean, g_onehot, g_ctrl, g_pos, small, subsets
        )

    def fits(self, index: pd.Index, finite: np.ndarray) -> bool:
        """Whether a block with these rows keeps the same clips."""
        return (self.index.is_(index) or self.index.equals(index)) and np.array_equal(self.finite, finite)
