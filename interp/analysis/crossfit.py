"""Selection-free intervals: choose the units on one half of the groups, measure them on the other.

A ranking picks the units whose AUROC is highest on the clips at hand; an interval computed on
those same clips is too narrow and too far from 0.5 (the winner's curse: among 3,433 units with
no effect, the top 20 all had 95 % intervals excluding 0.5). Cross-fitting removes the
selection from the estimate: the groups of clips (sources, speakers, files; see
:mod:`interp.analysis.resampling`) are split in two halves, stratified by category; the units
are ranked on one half and their AUROC and group-bootstrap interval are measured on the other,
then the halves swap roles. Each direction gives its own top units (``fold`` 0 and 1).

Assumptions: the halves are independent (whole groups on each side); each half keeps clips of
the category and of the rest; the price is half the clips for each estimate. Unlabelled clips
(missing or empty label) take no part; a clip whose activation is NaN for a unit is left out for
that unit only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis import stats
from interp.analysis.resampling import _group_side, group_bootstrap_auroc, group_codes
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.options import HeadStat

__all__ = ["CROSSFIT_COLUMNS", "group_halves", "crossfit_top_units", "run_crossfit_ranking"]

CROSSFIT_COLUMNS = (
    "fold",
    "rank",
    "layer",
    "unit",
    "category",
    "auroc_select",
    "auroc",
    "auroc_lo",
    "auroc_hi",
    "n_pos",
    "n_rest",
    "n_groups_pos",
    "n_groups_rest",
)


def group_halves(pos: np.ndarray, groups: Sequence[Any] | np.ndarray | None, *, seed: int = 0) -> np.ndarray:
    """Assign whole groups to half 0 or 1, balancing the category's groups and the others'.

    The groups of each side (mostly of the category or not, as in the bootstrap:
    :func:`interp.analysis.resampling._group_side`) are shuffled and dealt alternately to the
    two halves. When a side has an odd number of groups the extra one goes to a half drawn
    with ``seed``, and when both sides are odd the two extras go to different halves, so that
    neither half is systematically the larger.

    Parameters
    ----------
    pos : array of bool, shape (n_clips,)
        The category's clips.
    groups : array-like, shape (n_clips,), optional
        Each clip's group (None: every clip its own group; a missing group is a singleton).
    seed : int
        Seed of the shuffle and of the half that gets an odd side's extra group.

    Returns
    -------
    np.ndarray of int (0 or 1), shape (n_clips,)
    """
    pos = np.asarray(pos, dtype=bool)
    codes = group_codes(groups, len(pos))
    side = _group_side(codes, pos)
    rng = np.random.default_rng(seed)
    first = int(rng.integers(2))  # the half that gets the category's extra group
    half = np.zeros(len(side), dtype=np.int64)
    for k, members in enumerate((np.flatnonzero(side), np.flatnonzero(~side))):
        order = rng.permutation(members)
        start = (first + k) % 2  # the rest's extra group goes to the other half
        half[order[0::2]] = start
        half[order[1::2]] = 1 - start
    return half[codes]


def _unlabelled(labels: pd.Series) -> np.ndarray:
    """True where a label is missing (NaN, None) or empty (``""`` after stripping)."""
    return (labels.isna() | (labels.astype(str).str.strip() == "")).to_numpy()


def _selection_auroc(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """AUROC of every column on its finite clips (NaN where a side has none left)."""
    finite = np.isfinite(x)
    whole = finite.all(axis=0)
    out = np.full(x.shape[1], np.nan)
    if whole.any():
        out[whole] = stats.auroc(x[:, whole], pos[:, None])[:, 0]
    for j in np.flatnonzero(~whole):
        m = finite[:, j]
        if pos[m].any() and (~pos[m]).any():
            out[j] = stats.auroc(x[m, j : j + 1], pos[m, None])[0, 0]
    return out


def crossfit_top_units(
    acts: pd.DataFrame,
    labels: pd.Series,
    category: str,
    *,
    groups: pd.Series | None = None,
    layers: pd.Series | None = None,
    top: int = 20,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """The ``top`` units for ``category`` chosen on one half of the groups, measured on the other.

    Parameters
    ----------
    acts : DataFrame (n_clips, n_units)
        Per-clip statistic of each unit, indexed by clip id (columns: unit ids). A NaN or
        infinite value leaves that clip out for that unit only: each unit is ranked and measured
        on its own finite clips (``n_pos``, ``n_rest`` and the group counts are per unit), and a
        unit left without clips of both sides on a half is not ranked there.
    labels : pandas.Series
        Category of each clip, indexed by clip id. Unlabelled clips (missing label, NaN or
        ``""``) are left out: they are neither the category nor the rest.
    category : str
    groups : pandas.Series, optional
        Group of each clip (default: every clip its own group; a missing group is a singleton).
    layers : pandas.Series, optional
        Layer of each column of ``acts`` (indexed like its columns), for the output.
    top : int
        Units kept per direction.
    n_boot, confidence, seed
        The group bootstrap on the held-out half (and the seed of the split).

    Returns
    -------
    DataFrame with :data:`CROSSFIT_COLUMNS`: for ``fold`` f, the units ranked by their AUROC on
    half f (``auroc_select``) with ``auroc``, ``auroc_lo``, ``auroc_hi`` measured on the other
    half, which did not choose them (NaN where the held-out half lacks a side for the unit, and
    NaN bounds where it has fewer than 2 groups on a side:
    :func:`interp.analysis.resampling.group_bootstrap_auroc`).
    """
    lab = labels.reindex(acts.index)
    keep = ~_unlabelled(lab)
    x_all = acts.to_numpy(dtype=np.float64)[keep]
    lab_kept = lab[keep].astype(str).to_numpy()
    pos = lab_kept == category
    if pos.sum() < 2 or (~pos).sum() < 2:
        raise ParameterError(
            f"The 'category' parameter of crossfit_top_units must name a category with at least 2 clips and "
            f"leave 2 others. Got {category!r} ({int(pos.sum())} clips) instead."
        )
    grp = None if groups is None else groups.reindex(acts.index).to_numpy(dtype=object)[keep]
    half = group_halves(pos, grp, seed=seed)
    columns = list(acts.columns)
    rows = []
    for fold in (0, 1):
        sel, est = half == fold, half != fold
        if not (pos[sel].any() and (~pos[sel]).any() and pos[est].any() and (~pos[est]).any()):
            n_cat = len(set(group_codes(grp, len(pos))[pos]))
            raise ParameterError(
                f"Too few groups of {category!r} to cross-fit: each half needs clips of the category and of the "
                f"rest ({n_cat} groups of the category)."
            )
        auc_sel = _selection_auroc(x_all[sel], pos[sel])
        ranked = np.argsort(-auc_sel, kind="stable")  # NaN last
        chosen = ranked[np.isfinite(auc_sel[ranked])][:top]
        x_est, pos_est = x_all[est][:, chosen], pos[est]
        g_est = None if grp is None else grp[est]

        def boot(x: np.ndarray, p: np.ndarray, g: np.ndarray | None, fold: int = fold) -> np.ndarray:
            return group_bootstrap_auroc(x, p, g, n_boot=n_boot, confidence=confidence, seed=seed + fold).to_numpy()

        res = pd.DataFrame(
            np.nan, index=range(len(chosen)), columns=["auroc", "auroc_lo", "auroc_hi", "n_groups_pos", "n_groups_rest"]
        )
        n_pos = np.zeros(len(chosen), dtype=np.int64)
        n_rest = np.zeros(len(chosen), dtype=np.int64)
        finite = np.isfinite(x_est)
        whole = finite.all(axis=0)
        if whole.any():
            res.iloc[np.flatnonzero(whole)] = boot(x_est[:, whole], pos_est, g_est)
            n_pos[whole], n_rest[whole] = pos_est.sum(), (~pos_est).sum()
        for k in np.flatnonzero(~whole):
            m = finite[:, k]
            n_pos[k], n_rest[k] = pos_est[m].sum(), (~pos_est[m]).sum()
            if n_pos[k] and n_rest[k]:
                res.iloc[k] = boot(x_est[m, k], pos_est[m], None if g_est is None else g_est[m])[0]
        for r, j in enumerate(chosen):
            unit = columns[j]
            rows.append(
                {
                    "fold": fold,
                    "rank": r,
                    "layer": "" if layers is None else str(layers.get(unit, "")),
                    "unit": unit,
                    "category": category,
                    "auroc_select": float(auc_sel[j]),
                    "auroc": float(res["auroc"].iat[r]),
                    "auroc_lo": float(res["auroc_lo"].iat[r]),
                    "auroc_hi": float(res["auroc_hi"].iat[r]),
                    "n_pos": int(n_pos[r]),
                    "n_rest": int(n_rest[r]),
                    "n_groups_pos": int(np.nan_to_num(res["n_groups_pos"].iat[r])),
                    "n_groups_rest": int(np.nan_to_num(res["n_groups_rest"].iat[r])),
                }
            )
    out = pd.DataFrame(rows, columns=list(CROSSFIT_COLUMNS))
    out.attrs["crossfit"] = {"top": int(top), "n_boot": int(n_boot), "confidence": float(confidence), "seed": int(seed)}
    return out


def run_crossfit_ranking(
    run: Run | str | os.PathLike,
    category: str,
    *,
    layer: str | list[str] | None = None,
    stat: HeadStat = "max",
    group_column: str = "group",
    **options: Any,
) -> pd.DataFrame:
    """:func:`crossfit_top_units` over a run's layers (all conv layers and heads by default).

    Units are named by ``layer`` and ``unit`` (their index in the layer); groups come from
    ``clips.parquet``'s ``group`` column when the run has one.
    """
    run = open_run(run)
    layers = run.layers if layer is None else ([layer] if isinstance(layer, str) else list(layer))
    parts, owner = [], {}
    for name in layers:
        a = run.activations(name, stat)
        a.columns = [f"{name}:{u}" for u in a.columns]
        owner.update({c: name for c in a.columns})
        parts.append(a)
    acts = pd.concat(parts, axis=1)
    ok = run.ok_clips
    groups = ok[group_column] if group_column in ok.columns else None
    out = crossfit_top_units(acts, ok["label"], category, groups=groups, layers=pd.Series(owner), **options)
    out["unit"] = [int(str(u).rsplit(":", 1)[1]) for u in out["unit"]]
    out.attrs["crossfit"] |= {"stat": stat, "grouped": groups is not None}
    return out
