"""Per (unit, category) selectivity statistics, rankings and unit labels.

For every layer, unit and category of a run, from the per-clip summaries (``max`` over time by
default, ``mean`` on request), :func:`compute_selectivity` computes in one vectorised pass:

=============  ==========================================================================
column         meaning
=============  ==========================================================================
``n_pos``      clips of the category (``n_rest``: the other labelled clips)
``mean_pos``   class-conditional mean and standard deviation (ddof 1) of the unit in the
``std_pos``    category; ``mean_rest`` / ``std_rest`` in the other clips
``csi``        class selectivity index (Morcos et al. 2018) ``(mu_c - mu_rest) / (mu_c +
               mu_rest)``, ``mu_rest`` the mean of the other categories' means; ``csi_unit`` is
               the unit's CSI (at its highest-mean category), the same on all its rows
``auroc``      one-vs-rest area under the ROC curve (ties count one half)
``dprime``     ``(mu_c - mu_rest) / sqrt((sd_c^2 + sd_rest^2) / 2)``
``mi_bits``    mutual information (bits) between "clip in the unit's top ``top_quantile``"
               and "clip in the category" (NetDissect's binarisation); ``iou`` beside it
``u``, ``z``   Mann-Whitney U1 of the category's clips and its standardised value
``p_mwu``      Mann-Whitney p, **one-sided** (the unit fires more for the category), normal
               approximation with tie and continuity corrections (= scipy ``method="asymptotic"``)
``p_perm``     Monte-Carlo permutation p of the same statistic, computed for categories with
               fewer than ``permutation_below`` clips (NaN otherwise)
``p``          the p-value used: ``p_perm`` where computed, else ``p_mwu``
``q``          Benjamini-Hochberg q-value over *all* units x categories of the table (all
               layers of a run together)
=============  ==========================================================================

The run-level functions (:func:`run_selectivity`, :func:`rank_units`, :func:`analyze`) read the
activation tables of a run directory and write ``selectivity.parquet``, ``unit_labels.parquet``,
``selectivity_layers.parquet``, ``selectivity_counts.parquet`` and ``unit_outputs.parquet``
beside them (``selectivity_mean.parquet`` etc. for ``stat="mean"``).

Examples
--------
>>> run = open_run("runs/minibank")
>>> rank_units(run, "speech", metric="auroc", layer="conv7", top=10)

The text forms of a ranking and of one unit (``soundnet-interp rank`` / ``unit``) are in
:mod:`interp.report.cards`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
from scipy import special

from interp.analysis import stats
from interp.analysis.nuisance import run_nuisance_report
from interp.analysis.resampling import group_bootstrap_auroc
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.labels import head_labels
from soundnet.model import HEAD_LAYERS
from soundnet.options import Alternative, ClipStat, HeadOutput, Metric, MetricAlias, check_option

__all__ = [
    "SelectivityConfig",
    "METRICS",
    "SELECTIVITY_COLUMNS",
    "compute_selectivity",
    "rank_table",
    "label_units",
    "layer_summary",
    "category_counts",
    "output_correlations",
    "head_outputs",
    "run_selectivity",
    "rank_units",
    "run_unit_labels",
    "run_output_correlations",
    "analyze",
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

SELECTIVITY_COLUMNS = (
    "layer",
    "unit",
    "category",
    "n_pos",
    "n_rest",
    "mean_pos",
    "std_pos",
    "mean_rest",
    "std_rest",
    "csi",
    "csi_unit",
    "auroc",
    "dprime",
    "mi_bits",
    "iou",
    "u",
    "z",
    "p_mwu",
    "p_perm",
    "p",
    "q",
)


@dataclass(frozen=True)
class SelectivityConfig:
    """Options of :func:`compute_selectivity` (stored with the table as its cache key).

    Attributes
    ----------
    stat : {"max", "mean"}
        Per-clip summary of each unit (run-level functions only).
    top_quantile : float
        Fraction of clips called "active" for the MI / IoU binarisation (NetDissect's idea).
    permutation_below : int
        Categories with fewer clips than this get a permutation p-value (``p_perm``).
    n_permutations : int
        Monte-Carlo permutations per small category.
    alternative : {"greater", "two-sided", "less"}
        Direction of the Mann-Whitney test (default: the unit fires more for the category).
    seed : int
        Seed of the permutations.
    chunk_units : int
        Units processed at once (bounds memory: about ``6 * 8 * n_clips * chunk_units`` bytes).
    """

    stat: ClipStat = "max"
    top_quantile: float = 0.1
    permutation_below: int = 10
    n_permutations: int = 10_000
    alternative: Alternative = "greater"
    seed: int = 0
    chunk_units: int = 512

    def __post_init__(self) -> None:
        check_option("stat", self.stat, ClipStat, where="SelectivityConfig")
        if not 0 < self.top_quantile < 1:
            raise ParameterError(
                f"The 'top_quantile' parameter of SelectivityConfig must be in (0, 1). Got {self.top_quantile!r} instead."
            )
        check_option("alternative", self.alternative, Alternative, where="SelectivityConfig")
        for name in ("n_permutations", "chunk_units"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(
                    f"The '{name}' parameter of SelectivityConfig must be >= 1. Got {getattr(self, name)!r} instead."
                )
        if int(self.permutation_below) < 0:
            raise ParameterError(
                f"The 'permutation_below' parameter of SelectivityConfig must be >= 0. Got {self.permutation_below!r} instead."
            )


def _config(config: SelectivityConfig | None, options: Mapping[str, Any]) -> SelectivityConfig:
    base = config or SelectivityConfig()
    if not options:
        return base
    unknown = set(options) - set(asdict(base))
    if unknown:
        raise ParameterError(
            f"Unknown selectivity option(s) {sorted(unknown)}; expected names from {sorted(asdict(base))}."
        )
    return SelectivityConfig(**(asdict(base) | dict(options)))


def _metric(metric: str, where: str) -> Metric:
    """The canonical name of a ranking metric (its aliases mapped), checked."""
    if metric in _ALIASES:
        return _ALIASES[metric]
    return cast(Metric, check_option("metric", metric, Metric, where=where))


# ------------------------------------------------------------------------------------------
# DataFrame level
# ------------------------------------------------------------------------------------------
def _clean_labels(labels: pd.Series) -> pd.Series:
    lab = pd.Series(labels)
    lab = lab[lab.notna()].astype(str)
    return lab[lab.str.len() > 0]


def _layer_rows(
    layer: str, acts: pd.DataFrame, labels: pd.Series, categories: list[str], cfg: SelectivityConfig
) -> pd.DataFrame:
    lab = labels.reindex(acts.index)
    x_all = acts.to_numpy(dtype=np.float64)
    keep = lab.notna().to_numpy() & np.isfinite(x_all).all(axis=1)
    if not keep.any():
        raise ParameterError(
            f"No clip of layer {layer!r} has both a label and finite activations: the "
            "'labels' parameter of compute_selectivity must be indexed by the clip ids of 'acts'."
        )
    x_all = x_all[keep]
    lab = lab[keep].to_numpy()
    units = np.asarray([int(u) for u in acts.columns])
    n_units, n_cat = len(units), len(categories)
    onehot, _ = stats.onehot_labels(lab, categories=categories)
    n_pos = onehot.sum(axis=0).astype(np.float64)
    n_rest = onehot.shape[0] - n_pos
    valid = (n_pos > 0) & (n_rest > 0)
    shape = (n_units, n_cat)
    cols = {k: np.full(shape, np.nan) for k in SELECTIVITY_COLUMNS[5:]}
    small = [c for c in range(n_cat) if valid[c] and n_pos[c] < cfg.permutation_below]
    # one set of random subsets per category, shared by all units of the layer
    subsets = {
        c: stats.random_subsets(len(lab), int(n_pos[c]), cfg.n_permutations, seed=np.random.SeedSequence([cfg.seed, c]))
        for c in small
    }
    if x_all.shape[0] >= 2 and valid.any():
        for j0 in range(0, n_units, cfg.chunk_units):
            sl = slice(j0, min(n_units, j0 + cfg.chunk_units))
            x = x_all[:, sl]
            ranks, tie, xs = stats.rank_columns(x, return_sorted=True)
            auc, u1 = stats.auroc_from_rank_sums(ranks.T @ onehot.astype(np.float64), n_pos, n_rest)
            z = stats.mannwhitney_z(u1, n_pos, n_rest, tie, alternative=cfg.alternative)
            mom = stats.class_moments(x, onehot)
            csi, csi_unit = np.full(auc.shape, np.nan), np.full(auc.shape[0], np.nan)
            if valid.sum() >= 2:  # over the categories present in this layer
                csi[:, valid], csi_unit = stats.class_selectivity_index(mom["mean_pos"][:, valid])
            thr = stats.top_quantile_threshold(x, top_quantile=cfg.top_quantile, sorted_columns=xs)
            mi, iou = stats.binary_mi_iou(x > thr, onehot)
            perm = np.full(auc.shape, np.nan)
            for c in small:
                perm[:, c] = stats.permutation_pvalues(
                    ranks, onehot[:, c], subsets=subsets[c], alternative=cfg.alternative
                )
            block = {
                "mean_pos": mom["mean_pos"],
                "std_pos": mom["std_pos"],
                "mean_rest": mom["mean_rest"],
                "std_rest": mom["std_rest"],
                "csi": csi,
                "csi_unit": np.repeat(csi_unit[:, None], n_cat, axis=1),
                "auroc": auc,
                "dprime": stats.dprime(mom["mean_pos"], mom["std_pos"], mom["mean_rest"], mom["std_rest"]),
                "mi_bits": mi,
                "iou": iou,
                "u": u1,
                "z": z,
                "p_mwu": stats.mannwhitney_p(z, alternative=cfg.alternative),
                "p_perm": perm,
            }
            for k, v in block.items():
                cols[k][sl] = v
        cols["p"] = np.where(np.isfinite(cols["p_perm"]), cols["p_perm"], cols["p_mwu"])
    for k in SELECTIVITY_COLUMNS[5:]:
        if k not in ("q",):
            cols[k][:, ~valid] = np.nan
    out = pd.DataFrame(
        {
            "layer": pd.Series(np.full(n_units * n_cat, layer, dtype=object), dtype="string"),
            "unit": np.repeat(units, n_cat).astype(np.int64),
            "category": pd.Series(np.tile(np.asarray(categories, dtype=object), n_units), dtype="string"),
            "n_pos": np.tile(n_pos, n_units).astype(np.int64),
            "n_rest": np.tile(n_rest, n_units).astype(np.int64),
        }
    )
    for k in SELECTIVITY_COLUMNS[5:]:
        out[k] = cols[k].ravel()
    return out


def compute_selectivity(
    acts: pd.DataFrame | Mapping[str, pd.DataFrame],
    labels: pd.Series,
    *,
    categories: list[str] | None = None,
    layer: str = "layer",
    config: SelectivityConfig | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Selectivity statistics of every unit for every category (see the module docstring).

    Parameters
    ----------
    acts : DataFrame (n_clips, n_units), or mapping of layer name to such DataFrames
        Per-clip summaries, indexed by clip id, one column per unit (integer names). Rows with a
        NaN (clips that gave a layer no frame) are left out of that layer.
    labels : pandas.Series
        Category of each clip, indexed like ``acts``; NaN or empty labels are left out.
    categories : list of str, optional
        Categories to test (default: the sorted unique labels). Each is tested one-vs-rest
        against all other labelled clips.
    layer : str
        Layer name written in the ``layer`` column when ``acts`` is a single DataFrame.
    config : SelectivityConfig, optional
    **options
        Fields of :class:`SelectivityConfig` (``top_quantile=0.05``, ``seed=1``, ...).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit, category), columns :data:`SELECTIVITY_COLUMNS`; ``q`` is the
        Benjamini-Hochberg q-value over all rows (all layers of ``acts`` together). The options
        are kept in ``df.attrs["selectivity"]``.
    """
    cfg = _config(config, options)
    tables = {layer: acts} if isinstance(acts, pd.DataFrame) else dict(acts)
    if not tables:
        raise ParameterError("The 'acts' parameter of compute_selectivity must hold at least one layer.")
    lab = _clean_labels(labels)
    cats = sorted(lab.unique().tolist()) if categories is None else [str(c) for c in categories]
    if len(cats) < 2 and categories is None:
        raise ParameterError(
            f"The 'labels' parameter of compute_selectivity must hold at least 2 categories. Got {cats} instead."
        )
    parts = []
    for name, df in tables.items():
        if not isinstance(df, pd.DataFrame):
            raise ParameterError(
                f"The 'acts' parameter of compute_selectivity must hold DataFrames. Got {type(df).__name__} for {name!r} instead."
            )
        parts.append(_layer_rows(str(name), df, lab, cats, cfg))
    out = pd.concat(parts, ignore_index=True)
    out["q"] = stats.bh_qvalues(out["p"].to_numpy())
    out.attrs["selectivity"] = asdict(cfg) | {"categories": cats}
    return out


def rank_table(
    sel: pd.DataFrame,
    category: str,
    *,
    metric: Metric | MetricAlias = "auroc",
    layer: str | list[str] | None = None,
    top: int | None = 20,
) -> pd.DataFrame:
    """The rows of one category from a selectivity table, best units first.

    Parameters
    ----------
    sel : DataFrame
        From :func:`compute_selectivity`.
    category : str
    metric : str
        One of :data:`METRICS` (``"mi"`` is accepted for ``mi_bits``); ``p`` and ``q`` rank
        ascending, the rest descending. Ties are broken by AUROC, then by layer and unit.
    layer : str or list of str, optional
        Restrict to these layers.
    top : int, optional
        Keep the first ``top`` rows (None: all).

    Returns
    -------
    DataFrame with a ``rank`` column (0 = most selective) first.
    """
    m = _metric(metric, "rank_table")
    check_option("category", category, sorted(set(sel["category"].astype(str).unique())), where="rank_table")
    df = sel[sel["category"] == category]
    if layer is not None:
        layers = [layer] if isinstance(layer, str) else list(layer)
        bad = set(layers) - set(sel["layer"].astype(str).unique())
        if bad:
            raise ParameterError(
                f"The 'layer' parameter of rank_table must name layers of the table. Got {sorted(bad)} instead."
            )
        df = df[df["layer"].isin(layers)]
    df = df[df[m].notna()]
    key = df[m] if METRICS[m] else -df[m]
    df = df.assign(_k=-key.to_numpy(dtype=np.float64), _a=-df["auroc"].to_numpy(dtype=np.float64))
    df = df.sort_values(["_k", "_a", "layer", "unit"], kind="stable").drop(columns=["_k", "_a"])
    if top is not None:
        df = df.head(int(top))
    df = df.reset_index(drop=True)
    df.insert(0, "rank", np.arange(len(df)))
    return df


def label_units(
    sel: pd.DataFrame, *, metric: Metric | MetricAlias = "auroc", q_max: float = 0.05, auroc_min: float = 0.75
) -> pd.DataFrame:
    """Each unit's best category, or ``"none"`` when no category passes the thresholds.

    A (unit, category) pair passes when ``q < q_max`` and ``auroc >= auroc_min``. The unit's
    label is its passing category with the best ``metric``; a unit with no passing category is
    labelled ``"none"`` (its best category by ``metric`` is still reported).

    Returns
    -------
    DataFrame, one row per (layer, unit)
        ``layer, unit, label, best_category, score`` (``metric`` at the best category),
        ``auroc, q, n_selective_categories, selective`` (bool).
    """
    m = _metric(metric, "label_units")
    ok = (sel["q"] < q_max) & (sel["auroc"] >= auroc_min)
    key = sel[m] if METRICS[m] else -sel[m]
    df = sel.assign(_pass=ok.to_numpy(), _key=key.fillna(-np.inf).to_numpy())
    df = df.sort_values(
        ["layer", "unit", "_pass", "_key", "auroc"], ascending=[True, True, False, False, False], kind="stable"
    )
    best = df.groupby(["layer", "unit"], sort=False).head(1).copy()
    npass = df.groupby(["layer", "unit"], sort=False)["_pass"].sum()
    best["n_selective_categories"] = (
        npass.reindex(pd.MultiIndex.from_frame(best[["layer", "unit"]])).to_numpy().astype(np.int64)
    )
    best["selective"] = best["_pass"].astype(bool)
    best["label"] = np.where(best["selective"], best["category"].astype(str), "none")
    out = best.assign(best_category=best["category"], score=best[m])
    order = {name: i for i, name in enumerate(pd.unique(sel["layer"]))}
    out = out.assign(_o=out["layer"].map(order)).sort_values(["_o", "unit"], kind="stable")
    cols = ["layer", "unit", "label", "best_category", "score", "auroc", "q", "n_selective_categories", "selective"]
    out = out[cols].reset_index(drop=True)
    out.attrs["unit_labels"] = {"metric": m, "q_max": float(q_max), "auroc_min": float(auroc_min)}
    return out


def layer_summary(labels: pd.DataFrame) -> pd.DataFrame:
    """Per layer: units, selective units and their fraction (from :func:`label_units`)."""
    g = labels.groupby("layer", sort=False)
    out = pd.DataFrame({"n_units": g.size(), "n_selective": g["selective"].sum().astype(np.int64)})
    out["fraction_selective"] = out["n_selective"] / out["n_units"]
    return out.reset_index()


def category_counts(labels: pd.DataFrame, *, categories: list[str] | None = None) -> pd.DataFrame:
    """Per layer and category: how many units are labelled with that category (0 included)."""
    sel = labels[labels["selective"]]
    cats = sorted(labels["best_category"].astype(str).unique()) if categories is None else list(categories)
    layers = list(pd.unique(labels["layer"]))
    counts = sel.groupby(["layer", "label"]).size()
    rows = [(layer, c, int(counts.get((layer, c), 0))) for layer in layers for c in cats]
    return pd.DataFrame(rows, columns=["layer", "category", "n_units"])


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


# ------------------------------------------------------------------------------------------
# run level
# ------------------------------------------------------------------------------------------


def _suffix(stat: str) -> str:
    return "" if stat == "max" else f"_{stat}"


def _run_key(run: Run) -> dict:
    return {
        "path": str(run.path),
        "finished": run.meta.get("finished", run.meta.get("created")),
        "key": run.meta.get("key"),
    }


def _stored_attrs(df: pd.DataFrame) -> dict:
    return {k: df.attrs.get(k) for k in ("selectivity", "run", "unit_labels")}


def run_selectivity(
    run: Run | str | os.PathLike,
    *,
    layers: list[str] | None = None,
    recompute: bool = False,
    config: SelectivityConfig | None = None,
    label_column: str = "label",
    **options: Any,
) -> pd.DataFrame:
    """The selectivity table of a run: read from ``selectivity.parquet`` or computed and written.

    Parameters
    ----------
    run : Run or path
    layers : list of str, optional
        Default: every recorded layer (heads included, on their ``max``/``mean`` logits).
    recompute : bool
        Ignore a stored table. A stored table is also recomputed when it was made with other
        options, other layers or from an older recording.
    config : SelectivityConfig, optional
    label_column : str
        Column of ``clips.parquet`` holding the categories.
    **options
        :class:`SelectivityConfig` fields, e.g. ``stat="mean"``.

    Returns
    -------
    DataFrame (see :func:`compute_selectivity`).
    """
    run = open_run(run)
    cfg = _config(config, options)
    layers = run.layers if layers is None else list(layers)
    for layer in layers:
        run.n_units(layer)  # validates
    name = "selectivity" + _suffix(cfg.stat)
    want = {"selectivity": asdict(cfg), "run": _run_key(run) | {"layers": layers, "label_column": label_column}}
    if not recompute and run.has_table(name):
        old = run.read_table(name)
        sattrs = dict(old.attrs.get("selectivity") or {})
        sattrs.pop("categories", None)
        if sattrs == want["selectivity"] and old.attrs.get("run") == want["run"]:
            return old
    ok = run.ok_clips
    if label_column not in ok.columns:
        raise ParameterError(
            f"The 'label_column' parameter of run_selectivity must name a column of clips.parquet. "
            f"Got {label_column!r} instead."
        )
    acts = {layer: run.activations(layer, cfg.stat) for layer in layers}
    sel = compute_selectivity(acts, ok[label_column], config=cfg)
    sel.attrs["run"] = want["run"]
    run.write_table(name, sel)
    return sel


def _labels_series(run: Run, label_column: str = "label") -> pd.Series:
    return _clean_labels(run.ok_clips[label_column])


def rank_units(
    run: Run | str | os.PathLike,
    category: str,
    metric: Metric | MetricAlias = "auroc",
    layer: str | list[str] | None = None,
    top: int = 20,
    *,
    ci: bool = True,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    **options: Any,
) -> pd.DataFrame:
    """The ``top`` units most selective for ``category``, with bootstrap intervals of their AUROC.

    Parameters
    ----------
    run : Run or path
    category : str
    metric : str
        Ranking metric, one of :data:`METRICS` (``p``/``q`` ascending).
    layer : str or list of str, optional
        Restrict to layers.
    top : int
        Rows returned.
    ci : bool
        Add ``auroc_lo``/``auroc_hi``: stratified percentile bootstrap interval (``confidence``,
        ``n_boot`` resamples) for each row shown, resampling whole groups when the run's clips
        have a ``group`` column (:mod:`interp.analysis.resampling`). These intervals are computed
        on the clips that chose the units and are too narrow for the best of many units: see
        :mod:`interp.analysis.crossfit` for selection-free ones.
    **options
        Passed to :func:`run_selectivity` (``stat="mean"``, ...).

    Returns
    -------
    DataFrame: ``rank`` then the selectivity columns (and the interval).
    """
    run = open_run(run)
    sel = run_selectivity(run, **options)
    out = rank_table(sel, category, metric=metric, layer=layer, top=top)
    if ci and len(out):
        stat = (sel.attrs.get("selectivity") or {}).get("stat", options.get("stat", "max"))
        lab = _labels_series(run)
        ok_clips = run.ok_clips
        groups = ok_clips["group"].astype(str) if "group" in ok_clips.columns else None
        lo = np.full(len(out), np.nan)
        hi = np.full(len(out), np.nan)
        for lay, rows in out.groupby("layer", sort=False):
            a = run.activations(str(lay), stat)
            a = a[a.index.isin(lab.index)]
            a = a[np.isfinite(a.to_numpy(dtype=np.float64)).all(axis=1)]
            pos = (lab.reindex(a.index) == category).to_numpy()
            if 0 < pos.sum() < len(pos):
                x = a[rows["unit"].astype(int).tolist()].to_numpy(dtype=np.float64)
                g = None if groups is None else groups.reindex(a.index).to_numpy()
                bounds = group_bootstrap_auroc(x, pos, g, n_boot=n_boot, confidence=confidence, seed=seed)
                lo[rows.index], hi[rows.index] = bounds["auroc_lo"].to_numpy(), bounds["auroc_hi"].to_numpy()
        out["auroc_lo"], out["auroc_hi"] = lo, hi
    return out


def run_unit_labels(
    run: Run | str | os.PathLike,
    *,
    metric: Metric | MetricAlias = "auroc",
    q_max: float = 0.05,
    auroc_min: float = 0.75,
    write: bool = True,
    **options: Any,
) -> dict[str, pd.DataFrame]:
    """Unit labels and per-layer summaries of a run (written as Parquet tables when ``write``).

    Returns
    -------
    dict with ``unit_labels`` (:func:`label_units`), ``layers`` (:func:`layer_summary`) and
    ``counts`` (:func:`category_counts`).
    """
    run = open_run(run)
    sel = run_selectivity(run, **options)
    labels = label_units(sel, metric=metric, q_max=q_max, auroc_min=auroc_min)
    cats = (sel.attrs.get("selectivity") or {}).get("categories")
    res = {"unit_labels": labels, "layers": layer_summary(labels), "counts": category_counts(labels, categories=cats)}
    if write:
        suf = _suffix((sel.attrs.get("selectivity") or {}).get("stat", "max"))
        run.write_table("unit_labels" + suf, labels)
        run.write_table("selectivity_layers" + suf, res["layers"])
        run.write_table("selectivity_counts" + suf, res["counts"])
    return res


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
    stat: ClipStat = "max",
    layers: list[str] | None = None,
    top: int = 5,
    output: HeadOutput = "logprob",
    write: bool = True,
) -> pd.DataFrame:
    """Per unit of the conv layers, the object and place classes that rise with it across clips.

    Correlation (Pearson, across the run's clips) between the unit's ``stat`` and each head's
    clip-level output (see :func:`head_outputs`: log-probability by default, or the ``prob``
    stat of conv8 and conv8_2). Written as ``unit_outputs.parquet`` (``unit_outputs_mean`` for
    ``stat="mean"``).

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
        run.write_table("unit_outputs" + _suffix(stat), out)
    return out


def analyze(
    run: Run | str | os.PathLike,
    *,
    metric: Metric | MetricAlias = "auroc",
    q_max: float = 0.05,
    auroc_min: float = 0.75,
    recompute: bool = False,
    output: HeadOutput = "logprob",
    **options: Any,
) -> dict[str, pd.DataFrame]:
    """The whole selectivity stage of a run: statistics, labels, summaries, output correlations.

    Writes ``selectivity``, ``unit_labels``, ``selectivity_layers``, ``selectivity_counts`` and
    (when the heads were recorded) ``unit_outputs`` (correlations with the heads' ``output``,
    see :func:`head_outputs`) into the run directory, and the nuisance report
    (:func:`interp.analysis.nuisance.run_nuisance_report`: how well clip length, level, spectral
    shape or source rate alone separate each category) as ``nuisance.parquet``.

    Returns
    -------
    dict of DataFrames: ``selectivity``, ``unit_labels``, ``layers``, ``counts``, ``nuisance``
    and maybe ``unit_outputs``.
    """
    run = open_run(run)
    sel = run_selectivity(run, recompute=recompute, **options)
    res = {"selectivity": sel}
    res.update(run_unit_labels(run, metric=metric, q_max=q_max, auroc_min=auroc_min, **options))
    if any(h in run.layers for h in HEAD_LAYERS):
        res["unit_outputs"] = run_output_correlations(run, stat=sel.attrs["selectivity"]["stat"], output=output)
    res["nuisance"] = run_nuisance_report(run)
    return res
