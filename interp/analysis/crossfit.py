"""Selection-free intervals: choose the units on one half of the groups, measure them on the other.

A ranking picks the units whose AUROC is highest on the clips at hand; an interval computed on
those same clips is too narrow and too far from 0.5 (the winner's curse: among 3,433 units with
no effect, the top 20 all had 95 % intervals excluding 0.5). Cross-fitting removes the
selection from the estimate: the groups of clips (sources, speakers, files; see
:mod:`interp.analysis.resampling`) are split in two halves, stratified by category; the units
are ranked on one half and their AUROC and group-bootstrap interval are measured on the other,
then the halves swap roles. Each direction gives its own top units (``fold`` 0 and 1).

Assumptions: the halves are independent (whole groups on each side); each half keeps clips of
the category and of the rest; the price is half the clips for each estimate.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis import stats
from interp.analysis.resampling import group_bootstrap_auroc, group_codes
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

    Returns
    -------
    np.ndarray of int (0 or 1), shape (n_clips,)
    """
    pos = np.asarray(pos, dtype=bool)
    codes = group_codes(groups, len(pos))
    n_groups = int(codes.max()) + 1
    share = np.bincount(codes, weights=pos.astype(np.float64), minlength=n_groups) / np.bincount(codes)
    side = share >= 0.5
    rng = np.random.default_rng(seed)
    half = np.zeros(n_groups, dtype=np.int64)
    for members in (np.flatnonzero(side), np.flatnonzero(~side)):
        order = rng.permutation(members)
        half[order[1::2]] = 1
    return half[codes]


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
        Per-clip statistic of each unit, indexed by clip id (columns: unit ids; clips with a NaN
        are left out).
    labels : pandas.Series
        Category of each clip, indexed by clip id.
    category : str
    groups : pandas.Series, optional
        Group of each clip (default: every clip its own group).
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
    half, which did not choose them.
    """
    x_all = acts.to_numpy(dtype=np.float64)
    lab = labels.reindex(acts.index)
    keep = np.isfinite(x_all).all(axis=1) & lab.notna().to_numpy()
    x_all, lab = x_all[keep], lab[keep].astype(str).to_numpy()
    pos = lab == category
    if pos.sum() < 2 or (~pos).sum() < 2:
        raise ParameterError(
            f"The 'category' parameter of crossfit_top_units must name a category with at least 2 clips and "
            f"leave 2 others. Got {category!r} ({int(pos.sum())} clips) instead."
        )
    grp = None if groups is None else groups.reindex(acts.index)[keep].astype(str).to_numpy()
    half = group_halves(pos, grp, seed=seed)
    columns = list(acts.columns)
    rows = []
    for fold in (0, 1):
        sel, est = half == fold, half != fold
        if not (pos[sel].any() and (~pos[sel]).any() and pos[est].any() and (~pos[est]).any()):
            raise ParameterError(
                f"Too few groups of {category!r} to cross-fit: each half needs clips of the category and of the "
                f"rest ({len(set(grp[pos])) if grp is not None else int(pos.sum())} groups of the category)."
            )
        auc_sel = stats.auroc(x_all[sel], pos[sel, None])[:, 0]
        chosen = np.argsort(-auc_sel, kind="stable")[:top]
        g_est = None if grp is None else grp[est]
        res = group_bootstrap_auroc(
            x_all[est][:, chosen], pos[est], g_est, n_boot=n_boot, confidence=confidence, seed=seed + fold
        )
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
                    "n_pos": int(pos[est].sum()),
                    "n_rest": int((~pos[est]).sum()),
                    "n_groups_pos": int(res["n_groups_pos"].iat[r]),
                    "n_groups_rest": int(res["n_groups_rest"].iat[r]),
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
