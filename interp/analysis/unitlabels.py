"""Unit-level, null-calibrated labels: is a unit selective, for which category, and how sure.

"Selective unit" and "fraction selective per layer" are claims about *units*. They are tested as
such (see ``docs/statistics.md``); the tests themselves are computed by
:func:`interp.analysis.selectivity.compute_selectivity`:

1. **Groups count once.** With a ``group`` column (clips of one source file, speaker or
   recording are not independent), the pair-level rank test compares the category's *group
   means* with the other groups' (Mann-Whitney, or a permutation of whole groups for a category
   with few groups): pseudo-replicated clips cannot make a unit significant.
2. **Unit-level p.** ``p_unit`` is the unit's smallest pair-level p times the number of its
   testable categories (Bonferroni: choosing the best category is paid for); BH across units
   gives ``q_unit``.
3. **Best against runner-up** (:func:`label_status`). For a unit that passes, a paired group
   bootstrap (groups resampled within their category) compares the best category's AUROC with
   each of the next ones, both against the same negatives (the clips of neither: one-vs-rest,
   of two categories that drive a unit equally the more common one has the higher AUROC):
   ``win_fraction`` is the share of resamples in which the best is higher than the runner-up
   (above ``bootstrap_max_clips`` clips, its normal approximation with the clustered
   DeLong-Obuchowski standard error). A next category that beats the best (or ties with it and
   contains it: a parent label) takes the lead, and its comparisons are made in turn; a
   sub-category the best contains and cannot be told from is part of it, not a rival.
4. **Status.** ``selective`` (label = the best category) when ``q_unit < q_max``, the best
   category's AUROC is at least ``auroc_min`` with pair-level ``q < q_max``, and it beats each
   next category in at least ``win_min`` (0.975) of the resamples; ``polysemantic`` when the unit
   passes but other categories cannot be told apart from the best (all are listed in
   ``categories``); ``unlabelled`` otherwise.
5. **Too few groups.** A category whose groups are so few that no rank test can give a p below
   ``alpha`` (:func:`min_permutation_p`) is ``testable = False``: it gets no q (rather than a
   number that could never pass) and ``analyze`` says so.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from math import comb
from typing import Any, cast

import numpy as np
import pandas as pd

from interp.analysis.resampling import (
    BOOTSTRAP_MAX_CLIPS,
    RankedValues,
    clustered_win_fraction,
    group_codes,
    weighted_auroc,
)
from soundnet.errors import ParameterError
from soundnet.options import Metric, MetricAlias, check_option

__all__ = [
    "STATUSES",
    "METRICS",
    "label_status",
    "label_units",
    "layer_summary",
    "category_counts",
    "min_permutation_p",
    "selectivity_notes",
]

#: Ranking metrics and their direction (True: higher is more selective).
METRICS: dict[Metric, bool] = {
    "auroc": True,
    "csi": True,
    "dprime": True,
    "mi_bits": True,
    "iou": True,
    "z": True,
    "mean_pos": True,
    "p": False,
    "q": False,
    "p_mwu": False,
}
_ALIASES: dict[str, Metric] = {"mi": "mi_bits", "d'": "dprime", "d_prime": "dprime", "csi_index": "csi"}


def _metric(metric: str, where: str) -> Metric:
    """The canonical name of a ranking metric (its aliases mapped), checked."""
    if metric in _ALIASES:
        return _ALIASES[metric]
    return cast(Metric, check_option("metric", metric, Metric, where=where))


def _listlike(v: Any) -> bool:
    return isinstance(v, (list, tuple, set, frozenset, np.ndarray))


def is_multilabel(labels: pd.Series | np.ndarray) -> bool:
    """Whether the labels are lists (a clip may have several: AudioSet, FSD50K) rather than one
    string per clip."""
    return any(_listlike(v) for v in pd.Series(labels, dtype=object))


def _clean_labels(labels: pd.Series) -> pd.Series:
    """The labelled clips only: one non-empty string each, or (multi-label) a non-empty sorted
    tuple of distinct non-empty strings each."""
    lab = pd.Series(labels)
    if is_multilabel(lab):

        def clean(v: Any) -> tuple[str, ...]:
            items = v if _listlike(v) else ([v] if isinstance(v, str) else [])
            return tuple(sorted({str(x) for x in items if isinstance(x, str) and x}))

        lab = lab.map(clean)
        return lab[lab.map(len) > 0]
    lab = lab[lab.notna()].astype(str)
    return lab[lab.str.len() > 0]


def unique_labels(labels: pd.Series | np.ndarray) -> list[str]:
    """The sorted categories of cleaned labels (single- or multi-label)."""
    values = pd.Series(labels, dtype=object)
    if is_multilabel(values):
        return sorted({x for v in values for x in v})
    return sorted(set(values.astype(str)))


def label_membership(labels: pd.Series | np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """``(n_clips, n_categories)`` bool: clip i has category c (one-hot for single-label clips,
    several per row for multi-label ones: a clip is positive for each of its labels)."""
    values = np.asarray(pd.Series(labels, dtype=object).to_numpy(), dtype=object)
    if is_multilabel(values):
        index = {c: j for j, c in enumerate(categories)}
        out = np.zeros((len(values), len(categories)), dtype=bool)
        for i, v in enumerate(values):
            for x in v:
                j = index.get(x)
                if j is not None:
                    out[i, j] = True
        return out
    return values[:, None] == np.asarray(list(categories), dtype=object)[None, :]


def label_counts(labels: pd.Series) -> pd.Series:
    """Clips per category (a multi-label clip counts once for each of its labels)."""
    values = pd.Series(labels, dtype=object)
    return values.explode().value_counts() if is_multilabel(values) else values.value_counts()


#: The label statuses of a unit.
STATUSES = ("selective", "polysemantic", "unlabelled")


def min_permutation_p(n_groups: int, n_groups_pos: int) -> float:
    """Smallest p-value a one-sided rank test of a category can give when its
    ``n_groups_pos`` groups (clips when there are no groups) are compared with the other
    groups: one of the ``C(n_groups, n_groups_pos)`` equally likely assignments is the most
    extreme. A category with too few groups cannot reach significance whatever its effect."""
    if n_groups_pos <= 0 or n_groups_pos >= n_groups:
        return 1.0
    n, k = int(n_groups), int(n_groups_pos)
    log_comb = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    return 1.0 / comb(n, k) if log_comb < 700 else math.exp(-log_comb)  # (comb overflows a float)


def _group_labels(codes: np.ndarray, cat: np.ndarray) -> np.ndarray:
    """Each group's category index (its most common one; the group moves as a whole)."""
    n_groups = int(codes.max()) + 1
    k = int(cat.max()) + 1
    counts = np.zeros((n_groups, k), dtype=np.int64)
    np.add.at(counts, (codes, cat), 1)
    return counts.argmax(axis=1)


def _bootstrap_weights(codes: np.ndarray, group_cat: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, n_clips)`` weights: groups resampled with replacement within their category."""
    n_groups = len(group_cat)
    counts = np.zeros((n_boot, n_groups))
    for c in np.unique(group_cat):
        members = np.flatnonzero(group_cat == c)
        draws = members[rng.integers(0, len(members), size=(n_boot, len(members)))]
        for b in range(n_boot):
            counts[b] += np.bincount(draws[b], minlength=n_groups)
    return counts[:, codes]


def _pair_sets(mb: np.ndarray, mc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clips of the two AUROCs that compare two categories (``mb``, ``mc``: their clips,
    bool): each category's clips against the clips of neither (shared negatives, so that the
    comparison does not depend on how common each is); one-vs-rest for both when no clip is in
    neither (two categories)."""
    neg = ~mb & ~mc
    if not neg.any():
        everything = np.ones(len(mb), dtype=bool)
        return everything, everything
    return mb | neg, mc | neg


def _group_pairs(comparisons: Sequence[tuple[int, int, int]]) -> dict[tuple[int, int], np.ndarray]:
    """``(unit, best, other)`` comparisons grouped as ``(best, other) -> units``."""
    pairs: dict[tuple[int, int], list[int]] = {}
    for u, b, c in comparisons:
        pairs.setdefault((b, c), []).append(u)
    return {key: np.asarray(v, dtype=np.int64) for key, v in pairs.items()}


def _contains(member: np.ndarray, outer: int, inner: int, share: float = 0.95) -> bool:
    """Whether category ``outer`` holds (at least ``share`` of) the clips of ``inner`` (a
    sub-category, as in label hierarchies propagated to their ancestors)."""
    n_inner = int(member[:, inner].sum())
    return n_inner > 0 and int((member[:, inner] & member[:, outer]).sum()) >= share * n_inner


def _bootstrap_win_fractions(
    x: np.ndarray, member: np.ndarray, w: np.ndarray, pairs: dict[tuple[int, int], np.ndarray]
) -> dict[tuple[int, int, int], float]:
    """``win_fraction`` of each comparison ``(unit, best, other)``: the share of the paired resamples ``w`` in which the
    best category's AUROC (against the shared negatives, :func:`_pair_sets`) is higher than the
    other's (ties count one half)."""
    out: dict[tuple[int, int, int], float] = {}
    for (b, c), units in pairs.items():
        sb, sc = _pair_sets(member[:, b], member[:, c])
        ab = weighted_auroc(x[np.ix_(sb, units)], member[sb, b], w[:, sb])  # (n_boot, units)
        ac = weighted_auroc(x[np.ix_(sc, units)], member[sc, c], w[:, sc])
        for j, u in enumerate(units):
            hi, lo = ab[:, j], ac[:, j]
            ok = np.isfinite(hi) & np.isfinite(lo)
            out[(int(u), b, c)] = float(((hi[ok] > lo[ok]) + 0.5 * (hi[ok] == lo[ok])).mean()) if ok.any() else np.nan
    return out


def _normal_win_fractions(
    x: np.ndarray,
    member: np.ndarray,
    codes: np.ndarray,
    pairs: dict[tuple[int, int], np.ndarray],
    *,
    cache_bytes: int = 256_000_000,
) -> dict[tuple[int, int, int], float]:
    """``win_fraction`` of each comparison from the clustered normal approximation of the paired
    AUROC difference (shared negatives, :func:`_pair_sets`; a clip outside one AUROC's clips has
    no influence on it).

    Unit by unit: each unit's values are sorted once (:class:`RankedValues`) for all its
    comparisons, each then linear in the clips. The categories' clips and the clip sets of the
    last pairs are kept up to about ``cache_bytes`` each."""
    by_unit: dict[int, list[tuple[int, int]]] = {}
    for (b, c), units in pairs.items():
        for u in units:
            by_unit.setdefault(int(u), []).append((b, c))
    size = max(8, cache_bytes // max(1, 3 * len(x)))
    column = functools.lru_cache(maxsize=size)(lambda b: np.ascontiguousarray(member[:, b]))
    sets = functools.lru_cache(maxsize=size)(lambda b, c: _pair_sets(column(b), column(c)))
    out: dict[tuple[int, int, int], float] = {}
    for u, bcs in by_unit.items():
        ranked = RankedValues(x[:, u])
        for b, c in bcs:
            sb, sc = sets(b, c)
            a_b, psi_b = ranked.auroc_influence(column(b), sb)
            a_c, psi_c = ranked.auroc_influence(column(c), sc)
            frac = clustered_win_fraction(psi_b[:, None], psi_c[:, None], np.array([a_b - a_c]), codes)
            out[(u, b, c)] = float(frac[0])
    return out


def label_status(
    x: np.ndarray | None,
    labels: np.ndarray | None,
    categories: Sequence[str],
    auroc: np.ndarray,
    q_pair: np.ndarray,
    q_unit: np.ndarray,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    q_max: float = 0.05,
    auroc_min: float = 0.75,
    win_min: float = 0.975,
    n_boot: int = 500,
    compare: int = 3,
    seed: int = 0,
    bootstrap_max_clips: int = BOOTSTRAP_MAX_CLIPS,
) -> pd.DataFrame:
    """Status, best and runner-up category of every unit of one layer (see the module docstring).

    Parameters
    ----------
    x : array, shape (n_clips, n_units), optional
        The values the AUROCs were computed from (finite). Without it (and ``labels``) the best
        category cannot be compared with the next ones: a passing unit is ``selective`` with
        ``win_fraction`` NaN.
    labels : array of str, shape (n_clips,), or bool array (n_clips, n_categories), optional
        Each clip's category, or (multi-label) its membership of each category.
    categories : sequence of str
        Column order of ``auroc`` and ``q_pair``.
    auroc, q_pair : arrays, shape (n_units, n_categories)
        One-vs-rest AUROC and its pair-level q (NaN: untested).
    q_unit : array, shape (n_units,)
    groups : array-like, optional
    q_max, auroc_min : float
        Thresholds of a pass.
    win_min : float
        Share of paired bootstrap resamples in which the best category must beat another for
        the two to count as told apart (both AUROCs against the clips of neither category,
        :func:`_pair_sets`). 0.975: the best is chosen on the same clips, so a
        one-sided 0.95 would be a two-sided 10 % test (a statistics review measured 10 % of
        units with two tied top categories called selective at 0.95, 4.8-5.8 % at 0.975).
    n_boot : int
        Paired group-bootstrap resamples (only for units that pass the unit-level test).
    bootstrap_max_clips : int
        Above this many clips the bootstrap (whose cost and memory grow as ``n_boot`` x clips)
        gives way to its normal approximation: ``win_fraction = Phi(difference / se)`` with the
        clustered (DeLong-Obuchowski) standard error of the paired AUROC difference
        (:func:`interp.analysis.resampling.clustered_win_fraction`), linear in the clips.
    compare : int
        The best category is compared with this many next ones (by AUROC).

    Returns
    -------
    DataFrame, one row per unit: ``status, best_category, runner_up, auroc, auroc_runner_up,
    margin, win_fraction, categories`` (``;``-joined, the categories the unit cannot be told
    apart among, for ``polysemantic``; the label for ``selective``).
    """
    n_units, k = auroc.shape
    cats = np.asarray(list(categories), dtype=object)
    a = np.where(np.isfinite(auroc), auroc, -np.inf)
    order = np.argsort(-a, axis=1, kind="stable")
    best, runner = order[:, 0].copy(), (order[:, 1] if k > 1 else order[:, 0]).copy()
    rows = np.arange(n_units)
    a_best, a_run = auroc[rows, best], auroc[rows, runner] if k > 1 else np.full(n_units, np.nan)
    passes = (q_unit < q_max) & (a_best >= auroc_min) & (q_pair[rows, best] < q_max)
    status = np.full(n_units, "unlabelled", dtype=object)
    win = np.full(n_units, np.nan)
    listed = np.full(n_units, "", dtype=object)
    cand = np.flatnonzero(passes)
    if x is None or labels is None or k == 1:
        status[cand] = "selective"
        listed[cand] = cats[best[cand]]
    elif len(cand):
        member = np.asarray(labels)
        if member.ndim != 2:  # one label per clip: its one-hot membership
            member = label_membership(member, [str(c) for c in cats])
        codes = group_codes(groups, len(member))
        if len(member) > bootstrap_max_clips:
            fractions = functools.partial(_normal_win_fractions, x, member, codes)
        else:
            cat_idx = member.argmax(axis=1)  # a multi-label clip is stratified by its first category
            w = _bootstrap_weights(codes, _group_labels(codes, cat_idx), n_boot, np.random.default_rng(seed))
            fractions = functools.partial(_bootstrap_win_fractions, x, member, w)
        ok_best = (a >= auroc_min) & (q_pair < q_max)  # categories that could be a label
        nested: dict[tuple[int, int], bool] = {}
        overlapping = bool((member.sum(axis=1) > 1).any())  # one label per clip: nothing is nested

        def contains(outer: int, inner: int) -> bool:
            if not overlapping:
                return False
            if (outer, inner) not in nested:
                nested[(outer, inner)] = _contains(member, outer, inner)
            return nested[(outer, inner)]

        def compared(u: int, b: int) -> list[int]:
            """The categories ``b`` is compared with for unit ``u``: the next ``compare`` by
            AUROC that ``b`` does not contain, and its sub-categories met on the way."""
            out, n_out = [], 0
            for c in order[u]:
                c = int(c)
                if n_out == compare or not np.isfinite(auroc[u, c]):
                    break
                if c != b:
                    out.append(c)
                    n_out += not contains(b, c)
            return out

        chosen = {int(u): int(best[u]) for u in cand}
        seen = {u: {b} for u, b in chosen.items()}
        fr: dict[tuple[int, int, int], float] = {}
        pending = list(chosen)
        for round_ in range(compare + 1):  # the best of the top categories by their paired comparisons
            if not pending:
                break
            todo = [(u, chosen[u], c) for u in pending for c in compared(u, chosen[u])]
            fr.update(fractions(_group_pairs([t for t in todo if t not in fr])))
            moved = []
            for u in pending:
                b = chosen[u]
                # another category takes the lead when it beats the best (a rare category's
                # one-vs-rest AUROC is pulled down by the common one's clips in its rest), or
                # when the two cannot be told apart and it strictly contains the best (a parent)
                ahead = [
                    c
                    for c in compared(u, b)
                    if c not in seen[u]
                    and ok_best[u, c]
                    and (
                        fr[(u, b, c)] <= 1.0 - win_min
                        or (fr[(u, b, c)] < win_min and contains(c, b) and not contains(b, c))
                    )
                ]
                if ahead and round_ < compare:  # (the last round computes the last move's comparisons)
                    lead = {c: fr[(u, b, c)] for c in ahead}
                    chosen[u] = min(lead, key=lead.__getitem__)
                    seen[u].add(chosen[u])
                    moved.append(u)
            pending = moved
        for u, b in chosen.items():
            others = compared(u, b)
            assert all((u, b, c) in fr for c in others)  # the last move's comparisons were made
            # a sub-category of the best that does not beat it is part of it, not a rival
            rivals = [c for c in others if not (contains(b, c) and fr[(u, b, c)] > 1.0 - win_min)]
            same = [b] + [c for c in rivals if not fr[(u, b, c)] >= win_min]
            best[u] = b
            if rivals:  # the runner-up: the next category by AUROC that is not part of the best
                runner[u] = rivals[0]
                win[u] = fr[(u, b, rivals[0])]
            elif others:  # only sub-categories to compare with
                runner[u] = others[0]
            status[u] = "selective" if len(same) == 1 else "polysemantic"
            listed[u] = ";".join(str(cats[c]) for c in same)
        a_best, a_run = auroc[rows, best], auroc[rows, runner] if k > 1 else np.full(n_units, np.nan)
    return pd.DataFrame(
        {
            "status": status,
            "best_category": cats[best],
            "runner_up": cats[runner] if k > 1 else np.full(n_units, "", dtype=object),
            "auroc": a_best,
            "auroc_runner_up": a_run,
            "margin": a_best - a_run,
            "win_fraction": win,
            "categories": listed,
        }
    )


def label_units(
    sel: pd.DataFrame,
    *,
    acts: Mapping[str, pd.DataFrame] | Callable[[str, list[int]], pd.DataFrame] | None = None,
    labels: pd.Series | None = None,
    groups: pd.Series | None = None,
    metric: Metric | MetricAlias = "auroc",
    q_max: float = 0.05,
    auroc_min: float = 0.75,
    win_min: float = 0.975,
    n_boot: int = 500,
    seed: int = 0,
    control: bool = False,
) -> pd.DataFrame:
    """Each unit's status (selective / polysemantic / unlabelled) and label.

    A unit is tested as a unit (:mod:`interp.analysis.unitlabels`): it passes when its
    unit-level ``q_unit < q_max`` (when the table has it) and its best category (by AUROC) has
    ``auroc >= auroc_min`` and pair-level ``q < q_max``. It is ``selective`` (``label`` = that
    category) when, in addition, the best category beats each next one in at least ``win_min``
    of the paired group-bootstrap resamples; ``polysemantic`` when it passes but other
    categories cannot be told apart from the best (``categories`` lists them all); otherwise
    ``unlabelled``. Without ``acts`` the best-against-runner-up comparison cannot be made: a
    passing unit is then ``selective`` with ``win_fraction`` NaN.

    Parameters
    ----------
    sel : DataFrame
        From :func:`compute_selectivity`.
    acts : mapping of layer to DataFrame, or callable ``(layer, units) -> DataFrame``, optional
        The per-clip values ``sel`` was computed from (for the paired bootstrap); only the
        columns of the units that pass are used (a callable reads only those, e.g.
        ``lambda layer, units: run.unit_block(layer, stat, units)``).
    labels, groups : pandas.Series, optional
        Category and group of each clip (indexed like ``acts``); ``labels`` is needed with
        ``acts``.
    metric : str
        ``score`` is this metric at the best category.
    q_max, auroc_min, win_min : float
    n_boot : int
        Paired bootstrap resamples.
    control : bool
        Judge the units on the nuisance-controlled columns (``auroc_ctrl``, ``q_ctrl``,
        ``q_unit_ctrl`` of a table computed with ``control``): a unit whose selectivity is only
        its category's clip length or bandwidth then stays unlabelled.

    Returns
    -------
    DataFrame, one row per (layer, unit)
        ``layer, unit, label`` (the category, or ``"none"`` unless selective), ``status,
        best_category, runner_up, score, auroc, auroc_runner_up, margin, win_fraction,
        categories, p_unit, q_unit, q, n_selective_categories`` (categories passing the
        pair-level thresholds) and ``selective`` (bool: status is ``selective``).
    """
    m = _metric(metric, "label_units")
    if control:
        need = {"auroc_ctrl", "q_ctrl", "p_unit_ctrl", "q_unit_ctrl"}
        if not need <= set(sel.columns):
            raise ParameterError(
                "The 'control' parameter of label_units needs a selectivity table computed with nuisance "
                "strata (compute_selectivity(..., control=...), soundnet-interp analyze --control ...)."
            )
        sel = sel.assign(auroc=sel["auroc_ctrl"], q=sel["q_ctrl"], p_unit=sel["p_unit_ctrl"], q_unit=sel["q_unit_ctrl"])
    if acts is not None and labels is None:
        raise ParameterError("The 'labels' parameter of label_units is needed with 'acts'.")
    parts = []
    lab_all = None if labels is None else _clean_labels(labels)
    for layer, df in sel.groupby("layer", sort=False):
        cats = list(pd.unique(df["category"].astype(str)))
        units = pd.unique(df["unit"])
        wide = {
            c: df.pivot(index="unit", columns="category", values=c).reindex(index=units, columns=cats)
            for c in ("auroc", "q", m)
        }
        ok_pair = df["testable"] if "testable" in df else pd.Series(True, index=df.index)
        npass = ((df["q"] < q_max) & (df["auroc"] >= auroc_min) & ok_pair).groupby(df["unit"]).sum().reindex(units)
        if "q_unit" in df and df["q_unit"].notna().any():
            q_unit = df.groupby("unit")["q_unit"].first().reindex(units).to_numpy()
            p_unit = df.groupby("unit")["p_unit"].first().reindex(units).to_numpy()
        else:
            q_unit = np.zeros(len(units))
            p_unit = np.full(len(units), np.nan)
        auroc, q = wide["auroc"].to_numpy(np.float64), wide["q"].to_numpy(np.float64)
        st = label_status(None, None, cats, auroc, q, q_unit, q_max=q_max, auroc_min=auroc_min)
        cand = np.flatnonzero(st["status"].to_numpy() != "unlabelled")
        if acts is not None and lab_all is not None and len(cand):
            # only the units that pass are compared with their runner-up: only their columns are read
            cand_units = [int(units[i]) for i in cand]
            a = acts(str(layer), cand_units) if callable(acts) else acts[str(layer)][cand_units]
            a = a[a.index.isin(lab_all.index) & np.isfinite(a.to_numpy(np.float64)).all(axis=1)]
            member = label_membership(lab_all.reindex(a.index), cats)
            inside = member.any(axis=1)
            g = None if groups is None else groups.reindex(a.index).to_numpy()[inside]
            sub = label_status(
                a.to_numpy(np.float64)[inside],
                member[inside],
                cats,
                auroc[cand],
                q[cand],
                q_unit[cand],
                groups=g,
                q_max=q_max,
                auroc_min=auroc_min,
                win_min=win_min,
                n_boot=n_boot,
                seed=seed,
            )
            st.iloc[cand] = sub.to_numpy()
        best_idx = np.asarray([cats.index(c) for c in st["best_category"]])
        st.insert(0, "layer", str(layer))
        st.insert(1, "unit", np.asarray(units, dtype=np.int64))
        st["label"] = np.where(st["status"] == "selective", st["best_category"], "none")
        st["score"] = wide[m].to_numpy(np.float64)[np.arange(len(units)), best_idx]
        st["q"] = q[np.arange(len(units)), best_idx]
        st["p_unit"], st["q_unit"] = p_unit, (q_unit if "q_unit" in df else np.full(len(units), np.nan))
        st["n_selective_categories"] = npass.to_numpy(np.int64)
        st["selective"] = st["status"] == "selective"
        parts.append(st)
    cols = [
        "layer",
        "unit",
        "label",
        "status",
        "best_category",
        "runner_up",
        "score",
        "auroc",
        "auroc_runner_up",
        "margin",
        "win_fraction",
        "categories",
        "p_unit",
        "q_unit",
        "q",
        "n_selective_categories",
        "selective",
    ]
    out = pd.concat(parts, ignore_index=True)[cols]
    out.attrs["unit_labels"] = {
        "metric": m,
        "q_max": float(q_max),
        "auroc_min": float(auroc_min),
        "win_min": float(win_min),
        "n_boot": int(n_boot),
    }
    return out


def layer_summary(labels: pd.DataFrame) -> pd.DataFrame:
    """Per layer: units, and how many (and what fraction) are selective, polysemantic or
    unlabelled (from :func:`label_units`: unit-level tests, BH across units)."""
    g = labels.groupby("layer", sort=False)
    out = pd.DataFrame({"n_units": g.size(), "n_selective": g["selective"].sum().astype(np.int64)})
    out["fraction_selective"] = out["n_selective"] / out["n_units"]
    if "status" in labels:
        out["n_polysemantic"] = g["status"].agg(lambda s: int((s == "polysemantic").sum())).astype(np.int64)
    return out.reset_index()


def category_counts(labels: pd.DataFrame, *, categories: list[str] | None = None) -> pd.DataFrame:
    """Per layer and category: how many units are labelled with that category (0 included)."""
    sel = labels[labels["selective"]]
    cats = sorted(labels["best_category"].astype(str).unique()) if categories is None else list(categories)
    layers = list(pd.unique(labels["layer"]))
    counts = sel.groupby(["layer", "label"]).size()
    rows = [(layer, c, int(counts.get((layer, c), 0))) for layer in layers for c in cats]
    return pd.DataFrame(rows, columns=["layer", "category", "n_units"])


def selectivity_notes(sel: pd.DataFrame) -> list[str]:
    """What a reader of a selectivity table must know before its labels, one line each: the
    categories with too few groups to be tested (no q), and per layer the labelled clips left
    out for having no valid frame there (``n_excluded``)."""
    notes = []
    if "testable" in sel:
        first = sel.drop_duplicates(["layer", "category"])
        per_cat = first.groupby("category", sort=True)
        untestable = [f"{c} ({int(g['n_groups_pos'].max())} group(s))" for c, g in per_cat if not g["testable"].any()]
        if untestable:
            notes.append("too few groups to reach significance in any layer (no q reported): " + ", ".join(untestable))
        if "n_excluded" in first:
            for layer, g in first.groupby("layer", sort=False):
                ex = g[g["n_excluded"] > 0]
                if len(ex):
                    parts = ", ".join(f"{r.category} {int(r.n_excluded)}" for r in ex.itertuples())
                    notes.append(f"{layer}: clips without a valid frame, left out: {parts}")
    return notes
