"""Per (unit, category) selectivity statistics, rankings and unit labels.

For every layer, unit and category of a run, from the per-clip summaries (by default ``vmean``,
the mean over each clip's valid frames, which does not grow with its length; ``max`` and
``mean`` over all frames on request), :func:`compute_selectivity` computes in one vectorised pass:

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
``q``          Benjamini-Hochberg q-value over *all* testable units x categories of the
               table (all layers of a run together)
``p_unit``     unit-level p: the smallest ``p`` of the unit's testable categories times their
               number (Bonferroni: picking the best category is paid for), the same on all
               of a unit's rows; ``q_unit``: BH across units (:mod:`.unitlabels`)
``min_p``      the smallest p a rank test of the category could give (``1 / C(G, G_c)``
               over its G_c of G groups); ``testable`` is False when it is not below
               ``alpha``: too few groups, no q
``n_excluded`` labelled clips of the category left out of the layer (no valid frame)
``n_groups_pos`` groups of the category's clips
=============  ==========================================================================

With a ``group`` column (clips of one source are not independent), ``p`` is the pair-level
group-permutation p instead of Mann-Whitney's.

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

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis import stats
from interp.analysis.nuisance import clip_nuisances, nuisance_strata, run_nuisance_report
from interp.analysis.outputs import (
    DEFAULT_STAT,
    head_outputs,
    output_correlations,
    run_output_correlations,
    table_suffix,
)
from interp.analysis.ranktests import LayerDesign, rank_tests, stratified_tests, unit_p
from interp.analysis.resampling import group_bootstrap_auroc
from interp.analysis.unitlabels import (
    METRICS,
    _clean_labels,
    _metric,
    category_counts,
    label_units,
    layer_summary,
    min_permutation_p,
    unique_labels,
)
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
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
    "p_unit",
    "q_unit",
    "min_p",
    "n_excluded",
    "n_groups_pos",
    "testable",
)
#: The float statistics among :data:`SELECTIVITY_COLUMNS` (computed per layer).
_FLOAT_COLUMNS = SELECTIVITY_COLUMNS[5 : SELECTIVITY_COLUMNS.index("min_p") + 1]


@dataclass(frozen=True)
class SelectivityConfig:
    """Options of :func:`compute_selectivity` (stored with the table as its cache key).

    Attributes
    ----------
    stat : {"vmean", "max", "mean"}
        Per-clip summary of each unit (run-level functions only). Default ``vmean``, the mean
        over each clip's valid frames, which does not grow with the clip's length (``max``
        does: long clips win on every unit); clips without a valid frame in a layer are left
        out of it and counted in ``n_excluded``.
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
    alpha : float
        A category is ``testable`` when its smallest possible permutation p is below this; an
        untestable one (too few groups) gets no q.
    chunk_units : int
        Units processed at once (bounds memory: about ``6 * 8 * n_clips * chunk_units`` bytes).
    """

    stat: ClipStat = DEFAULT_STAT
    top_quantile: float = 0.1
    permutation_below: int = 10
    n_permutations: int = 10_000
    alternative: Alternative = "greater"
    seed: int = 0
    alpha: float = 0.05
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
        if not 0 < float(self.alpha) < 1:
            raise ParameterError(
                f"The 'alpha' parameter of SelectivityConfig must be in (0, 1). Got {self.alpha!r} instead."
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


# ------------------------------------------------------------------------------------------
# DataFrame level
# ------------------------------------------------------------------------------------------
def _layer_rows(
    layer: str,
    acts: pd.DataFrame,
    labels: pd.Series,
    categories: list[str],
    cfg: SelectivityConfig,
    groups: pd.Series | None = None,
    control: pd.Series | None = None,
    design: dict[str, LayerDesign] | None = None,
) -> pd.DataFrame:
    """The selectivity rows of one block of a layer's units; ``design`` (a dict kept across the
    layer's blocks) holds the layer's :class:`~interp.analysis.ranktests.LayerDesign` for reuse."""
    x_all = acts.to_numpy(dtype=np.float64)
    finite = np.isfinite(x_all).all(axis=1)
    d = (design or {}).get(layer)
    if d is None or not d.fits(acts.index, finite):
        d = LayerDesign.build(
            layer,
            acts.index,
            finite,
            labels,
            categories,
            groups=groups,
            control=control,
            permutation_below=cfg.permutation_below,
            n_permutations=cfg.n_permutations,
            seed=cfg.seed,
        )
        if design is not None:  # one layer's at a time
            design.clear()
            design[layer] = d
    excluded, onehot, n_pos, n_rest = d.excluded, d.onehot, d.n_pos, d.n_rest
    valid, gmean, g_onehot, g_ctrl, g_pos, small, subsets = (
        d.valid.copy(),
        d.gmean,
        d.g_onehot,
        d.g_ctrl,
        d.g_pos,
        d.small,
        d.subsets,
    )
    x_all = x_all[d.keep]
    units = np.asarray([int(u) for u in acts.columns])
    n_units, n_cat = len(units), len(categories)
    shape = (n_units, n_cat)
    cols = {k: np.full(shape, np.nan) for k in _FLOAT_COLUMNS}
    if g_ctrl is not None:
        for k in ("auroc_ctrl", "p_ctrl"):
            cols[k] = np.full(shape, np.nan)
    if x_all.shape[0] >= 2 and valid.any():
        for j0 in range(0, n_units, cfg.chunk_units):
            sl = slice(j0, min(n_units, j0 + cfg.chunk_units))
            x = x_all[:, sl]
            ranks, tie, xs = stats.rank_columns(x, return_sorted=True)
            auc, _ = stats.auroc_from_rank_sums(ranks.T @ onehot.astype(np.float64), n_pos, n_rest)
            obs = x if gmean is None else gmean @ x  # with groups, a group is one observation
            if gmean is None:
                tests = rank_tests(ranks, tie, onehot, small, subsets, cfg.alternative)
            else:
                g_ranks, g_tie = stats.rank_columns(obs)
                tests = rank_tests(g_ranks, g_tie, g_onehot, small, subsets, cfg.alternative)
            if g_ctrl is not None:
                tests |= stratified_tests(obs, g_onehot, g_ctrl, cfg.alternative)
            mom = stats.class_moments(x, onehot)
            csi, csi_unit = np.full(auc.shape, np.nan), np.full(auc.shape[0], np.nan)
            if valid.sum() >= 2:  # over the categories present in this layer
                csi[:, valid], csi_unit = stats.class_selectivity_index(mom["mean_pos"][:, valid])
            thr = stats.top_quantile_threshold(x, top_quantile=cfg.top_quantile, sorted_columns=xs)
            mi, iou = stats.binary_mi_iou(x > thr, onehot)
            block = tests | {
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
            }
            for k, v in block.items():
                cols[k][sl] = v
        cols["p"] = np.where(np.isfinite(cols["p_perm"]), cols["p_perm"], cols["p_mwu"])
    # the smallest p a rank test over these observations can give; untestable categories
    min_p = np.array([min_permutation_p(len(g_onehot), int(k)) for k in g_pos])
    testable = valid & (min_p < cfg.alpha)
    cols["min_p"] = np.tile(min_p, (n_units, 1))
    # unit level: Bonferroni over the unit's testable categories (valid under any dependence)
    cols["p_unit"] = np.repeat(unit_p(cols["p"], testable)[:, None], n_cat, axis=1)
    for k in _FLOAT_COLUMNS:
        if k not in ("q", "p_unit", "q_unit"):
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
    for k in _FLOAT_COLUMNS:
        out[k] = cols[k].ravel()
    if g_ctrl is not None:
        out["auroc_ctrl"] = cols["auroc_ctrl"].ravel()
        out["p_ctrl"] = np.where(np.tile(testable, n_units), cols["p_ctrl"].ravel(), np.nan)
        out["p_unit_ctrl"] = np.repeat(unit_p(cols["p_ctrl"], testable), n_cat)
    out["n_excluded"] = np.tile(excluded.reindex(categories).fillna(0).to_numpy(np.int64), n_units)
    out["n_groups_pos"] = np.tile(g_pos, n_units).astype(np.int64)
    out["testable"] = np.tile(testable, n_units)
    return out


def compute_selectivity(
    acts: pd.DataFrame | Mapping[str, pd.DataFrame | Callable[[], Iterable[pd.DataFrame]]],
    labels: pd.Series,
    *,
    categories: list[str] | None = None,
    layer: str = "layer",
    groups: pd.Series | None = None,
    control: pd.Series | None = None,
    config: SelectivityConfig | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Selectivity statistics of every unit for every category (see the module docstring).

    Parameters
    ----------
    acts : DataFrame (n_clips, n_units), or mapping of layer name to such DataFrames
        Per-clip summaries, indexed by clip id, one column per unit (integer names). Rows with a
        NaN (clips that gave a layer no frame) are left out of that layer. A mapping's value
        may also be a callable returning an iterable of such DataFrames, each a block of the
        layer's unit columns (e.g. ``functools.partial(run.unit_blocks, layer, stat, 256)``):
        the statistics are per unit, so the table is the same and memory is bounded by a block.
    labels : pandas.Series
        Category of each clip, indexed like ``acts``; NaN or empty labels are left out.
    categories : list of str, optional
        Categories to test (default: the sorted unique labels). Each is tested one-vs-rest
        against all other labelled clips.
    layer : str
        Layer name written in the ``layer`` column when ``acts`` is a single DataFrame.
    groups : pandas.Series, optional
        Group of each clip (source file, speaker, recording; indexed like ``acts``): clips of a
        group are not independent. When some group holds several clips, the tests (``u``,
        ``z``, ``p_mwu``, ``p_perm``, ``p``) compare the category's *group means* with the
        other groups' (a group counts once, under its most common category); the effect
        sizes stay clip-level.
    control : pandas.Series, optional
        Nuisance stratum of each clip (e.g. from
        :func:`interp.analysis.nuisance.nuisance_strata` over clip duration and bandwidth):
        adds ``auroc_ctrl`` and ``p_ctrl`` (comparisons within strata only, the stratified
        Wilcoxon test), ``q_ctrl`` (BH) and the unit-level ``p_unit_ctrl`` / ``q_unit_ctrl``;
        :func:`label_units` uses them with ``control=True``.
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
    cats = unique_labels(lab) if categories is None else [str(c) for c in categories]
    if len(cats) < 2 and categories is None:
        raise ParameterError(
            f"The 'labels' parameter of compute_selectivity must hold at least 2 categories. Got {cats} instead."
        )
    parts = []
    design: dict[str, LayerDesign] = {}  # per layer, shared by its blocks
    for name, df in tables.items():
        if isinstance(df, pd.DataFrame):
            blocks: Iterable[pd.DataFrame] = [df]
        elif callable(df):
            blocks = df()
        else:
            raise ParameterError(
                "The 'acts' parameter of compute_selectivity must hold DataFrames (or callables giving blocks of "
                f"unit columns). Got {type(df).__name__} for {name!r} instead."
            )
        for block in blocks:  # a layer's units in blocks: the same rows as all at once
            parts.append(_layer_rows(str(name), block, lab, cats, cfg, groups, control, design))
    out = pd.concat(parts, ignore_index=True)
    # categories with too few groups for any p to pass are left out of the family
    out["q"] = stats.bh_qvalues(np.where(out["testable"], out["p"].to_numpy(), np.nan))
    unit_idx = out.groupby(["layer", "unit"], sort=False).ngroup().to_numpy()
    first = ~out.duplicated(["layer", "unit"]).to_numpy()  # in the order of ngroup's numbers
    out["q_unit"] = stats.bh_qvalues(out["p_unit"].to_numpy()[first])[unit_idx]  # BH across units
    if "p_ctrl" in out:
        out["q_ctrl"] = stats.bh_qvalues(out["p_ctrl"].to_numpy())
        out["q_unit_ctrl"] = stats.bh_qvalues(out["p_unit_ctrl"].to_numpy()[first])[unit_idx]
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


# ------------------------------------------------------------------------------------------
# run level
# ------------------------------------------------------------------------------------------


_suffix = table_suffix

#: Default memory budget of the run-level analyses, in GB.
DEFAULT_MEMORY_GB = 4.0
#: Bytes per clip and unit the selectivity computation holds at once (values, ranks, sorted
#: copy, moments, masks: measured with tracemalloc on 20,000 clips x 256 units, rounded up).
_BYTES_PER_VALUE = 96


def block_units(n_clips: int, memory_gb: float = DEFAULT_MEMORY_GB) -> int:
    """Unit columns processed at once so that ``n_clips`` x that many fits ``memory_gb``
    (at least 1, at most 4096)."""
    if not memory_gb > 0:
        raise ParameterError(f"The 'memory_gb' parameter must be > 0. Got {memory_gb!r} instead.")
    per_unit = max(1, int(n_clips)) * _BYTES_PER_VALUE
    return int(min(4096, max(1, (memory_gb * 1e9 * 0.5) // per_unit)))


#: Nuisances that ``control`` accepts, by short name (columns of
#: :func:`interp.analysis.nuisance.clip_nuisances`).
CONTROLS: dict[str, str] = {
    "duration": "duration_s",
    "level": "rms_db",
    "centroid": "centroid_hz",
    "rolloff": "rolloff95_hz",
    "bandwidth": "bandwidth_hz",
    "cliff": "cliff_db",
    "sample_rate": "sample_rate_hz",
}


def _run_groups(run: Run) -> pd.Series | None:
    """The ok clips' ``group`` column (None when absent or empty): clips the tests count once."""
    ok = run.ok_clips
    return ok["group"].astype(str) if "group" in ok.columns and ok["group"].notna().any() else None


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
    label_column: str | None = None,
    control: Sequence[str] = (),
    memory_gb: float = DEFAULT_MEMORY_GB,
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
    label_column : str, optional
        Column of ``clips.parquet`` holding the categories. Default: ``labels`` (a list per
        clip) when some clip has several labels (a multi-label corpus: each clip counts as
        positive for each of its labels), else ``label``.
    control : sequence of str
        Nuisances to control for (:data:`CONTROLS` names, e.g. ``("duration", "bandwidth")``):
        adds the within-strata columns (``auroc_ctrl``, ``p_ctrl``, ...; see
        :func:`compute_selectivity`), strata being 3 quantile bins of each nuisance, crossed.
    memory_gb : float
        Memory budget of the computation in GB: each layer is read and processed in blocks of
        unit columns (:meth:`interp.run.store.Run.unit_block`) sized to it
        (:func:`block_units`), so that memory does not grow with the corpus beyond the budget;
        the table is the same for any budget.
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
    for c in control:
        check_option("control", c, list(CONTROLS), where="run_selectivity")
    name = "selectivity" + _suffix(cfg.stat)
    groups = _run_groups(run)
    label_column = _label_column(run, label_column)
    want = {
        "selectivity": asdict(cfg),
        "run": _run_key(run)
        | {
            "layers": layers,
            "label_column": label_column,
            "groups": groups is not None,
            "control": [CONTROLS[c] for c in control],
        },
    }
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
    per_block = block_units(len(ok), memory_gb)
    acts = {layer: functools.partial(run.unit_blocks, layer, cfg.stat, per_block) for layer in layers}
    strata = None
    if control:
        cols = [CONTROLS[c] for c in control]
        strata = pd.Series(nuisance_strata(clip_nuisances(run).reindex(ok.index), cols), index=ok.index)
    sel = compute_selectivity(acts, ok[label_column], groups=groups, control=strata, config=cfg)
    sel.attrs["run"] = want["run"]
    run.write_table(name, sel)
    return sel


def _label_column(run: Run, label_column: str | None = None) -> str:
    """``label_column``, or by default ``labels`` for a multi-label corpus, else ``label``."""
    if label_column is not None:
        return label_column
    ok = run.ok_clips
    if "labels" in ok.columns and ok["labels"].map(lambda v: len(v) if hasattr(v, "__len__") else 0).max() > 1:
        return "labels"
    return "label"


def _labels_series(run: Run, label_column: str | None = None) -> pd.Series:
    return _clean_labels(run.ok_clips[_label_column(run, label_column)])


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
        stat = (sel.attrs.get("selectivity") or {}).get("stat", options.get("stat", DEFAULT_STAT))
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
    control: Sequence[str] = (),
    memory_gb: float = DEFAULT_MEMORY_GB,
    **options: Any,
) -> dict[str, pd.DataFrame]:
    """Unit labels and per-layer summaries of a run (written as Parquet tables when ``write``).

    With ``control`` (nuisance names, see :func:`run_selectivity`) the labels are judged on the
    within-strata statistics: a unit whose selectivity is only its category's duration or
    bandwidth stays unlabelled.

    Returns
    -------
    dict with ``unit_labels`` (:func:`label_units`), ``layers`` (:func:`layer_summary`) and
    ``counts`` (:func:`category_counts`).
    """
    run = open_run(run)
    sel = run_selectivity(run, control=control, memory_gb=memory_gb, **options)
    stat = (sel.attrs.get("selectivity") or {}).get("stat", DEFAULT_STAT)
    groups = _run_groups(run)
    labels = label_units(
        sel,
        acts=lambda layer, units: run.unit_block(layer, stat, units),
        labels=_labels_series(run),
        groups=groups,
        metric=metric,
        q_max=q_max,
        auroc_min=auroc_min,
        control=bool(control),
    )
    labels.attrs["unit_labels"]["control"] = [CONTROLS[c] for c in control]
    cats = (sel.attrs.get("selectivity") or {}).get("categories")
    res = {"unit_labels": labels, "layers": layer_summary(labels), "counts": category_counts(labels, categories=cats)}
    if write:
        suf = _suffix(stat)
        run.write_table("unit_labels" + suf, labels)
        run.write_table("selectivity_layers" + suf, res["layers"])
        run.write_table("selectivity_counts" + suf, res["counts"])
    return res


def analyze(
    run: Run | str | os.PathLike,
    *,
    metric: Metric | MetricAlias = "auroc",
    q_max: float = 0.05,
    auroc_min: float = 0.75,
    recompute: bool = False,
    output: HeadOutput = "logprob",
    control: Sequence[str] = (),
    memory_gb: float = DEFAULT_MEMORY_GB,
    nuisance: bool = True,
    **options: Any,
) -> dict[str, pd.DataFrame]:
    """The whole selectivity stage of a run: statistics, labels, summaries, output correlations.

    Writes ``selectivity``, ``unit_labels``, ``selectivity_layers``, ``selectivity_counts`` and
    (when the heads were recorded) ``unit_outputs`` (correlations with the heads' ``output``,
    see :func:`head_outputs`) into the run directory, and the nuisance report
    (:func:`interp.analysis.nuisance.run_nuisance_report`: how well clip length, level, spectral
    shape or source rate alone separate each category) as ``nuisance.parquet``. ``control``
    (e.g. ``("duration", "bandwidth")``) adds the within-strata columns to the selectivity table
    and judges the labels on them (:func:`run_unit_labels`). Every stage reads the activation
    tables layer by layer and block by block within ``memory_gb``; ``nuisance=False`` skips the
    nuisance report (it decodes every clip once).

    Returns
    -------
    dict of DataFrames: ``selectivity``, ``unit_labels``, ``layers``, ``counts``, ``nuisance``
    and maybe ``unit_outputs``.
    """
    run = open_run(run)
    sel = run_selectivity(run, recompute=recompute, control=control, memory_gb=memory_gb, **options)
    res = {"selectivity": sel}
    res.update(
        run_unit_labels(
            run, metric=metric, q_max=q_max, auroc_min=auroc_min, control=control, memory_gb=memory_gb, **options
        )
    )
    if any(h in run.layers for h in HEAD_LAYERS):
        res["unit_outputs"] = run_output_correlations(
            run, stat=sel.attrs["selectivity"]["stat"], output=output, memory_gb=memory_gb
        )
    if nuisance:
        res["nuisance"] = run_nuisance_report(run)
    return res
