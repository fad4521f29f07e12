"""The dashboard's view of one run directory: memoised reads of its tables.

:class:`RunData` only reads what the recorder and the analyses wrote (through
:mod:`interp.run.store`, :mod:`interp.analysis.selectivity`, :mod:`interp.analysis.topclips`) and asks
:mod:`interp.run.traces` for the time-resolved views it caches in ``<run>/cache``. One instance
belongs to one Dash app (``app.server.config[CONFIG_KEY]``); pages and callbacks reach it with
:func:`get_data` inside a request, so there is no module-level state.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, TypeGuard, cast

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from dashboard.dissection import DissectionData
from dashboard.portraits import StrfData
from interp.analysis.outputs import unit_output_correlations
from interp.analysis.resampling import unit_auroc_intervals
from interp.analysis.selectivity import rank_table
from interp.analysis.topclips import quantile_bins, top_clips
from interp.analysis.tuning import stimulus_responses
from interp.report.cards import short_unit_status, unit_status
from interp.report.figures import category_colors
from interp.run import traces
from interp.run.store import STAT_DESCRIPTIONS, Run, activation_file, open_run
from interp.run.traces import clip_audio, clip_spectrogram
from soundnet.model import HEAD_LAYERS, load_soundnet
from soundnet.options import ClipStat, HeadStat, Metric, MetricAlias, ProbeKind, check_option

__all__ = [
    "CONFIG_KEY",
    "RunData",
    "get_data",
    "clip_display_name",
    "describe_stat",
    "LONG_CLIP_S",
    "VIEW_WINDOW_S",
]

#: Key of the :class:`RunData` in the Flask app config.
CONFIG_KEY = "SOUNDNET_RUN_DATA"
#: Clips longer than this are shown through a window around the moment of interest.
LONG_CLIP_S = 60.0
#: Length of that window, in seconds.
VIEW_WINDOW_S = 30.0
#: Bootstrap resamples for the AUROC intervals on the unit page (as ``rank_units``).
N_BOOT = 2000


def get_data() -> RunData:
    """The :class:`RunData` of the app serving the current request."""
    import flask  # only in a request: RunData serves benchmarks and tests without flask (0.1 s)

    return flask.current_app.config[CONFIG_KEY]


def describe_stat(stat: str) -> str:
    """A per-clip statistic in words (:data:`interp.run.store.STAT_DESCRIPTIONS`; the name itself
    for one it does not know)."""
    return STAT_DESCRIPTIONS.get(str(stat), str(stat))


def clip_display_name(path: str) -> str:
    """A short readable name for a clip path (file stem, or the probe name of ``probes://``)."""
    p = str(path)
    if p.startswith("probes://"):
        return p[len("probes://") :]
    return Path(p).stem


class RunData:
    """Memoised access to a run directory for the dashboard.

    Parameters
    ----------
    run_dir : str or path
        A complete run directory (``soundnet-interp record``); analysis tables
        (``soundnet-interp analyze``) are used when present.
    probes_dir : str or path, optional
        A run recorded on the synthetic probe corpus, for tuning curves. Default: the run's
        ``probes/`` subfolder when it holds a run.
    """

    def __init__(self, run_dir: str | os.PathLike, *, probes_dir: str | os.PathLike | None = None) -> None:
        self.run: Run = open_run(run_dir)
        if probes_dir is None and (Path(run_dir) / "probes" / "run.json").is_file():
            probes_dir = Path(run_dir) / "probes"
        self.probes_run: Run | None = open_run(probes_dir) if probes_dir is not None else None
        self._memo: dict[Hashable, Any] = {}
        self._lru: OrderedDict[Hashable, Any] = OrderedDict()  # per-clip arrays of units
        self._memo_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self._model = None

    def preload(self) -> RunData:
        """Read the run-level tables and build their indices now (so the first page is fast)."""
        _ = self.clips, self.clip_id_set, self.categories, self.colors, self.unit_labels, self.category_counts
        self._unit_slices()
        self._unit_outputs()
        self.run.topk(self.layers[0], 0)  # reads topk.parquet once
        return self

    # -- memo ----------------------------------------------------------------------------------
    def _cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, memoised under ``key``. Per-clip arrays of one unit (``column``,
        ``values``: a value per clip, 100 MB and more at a million clips) are kept for the
        :meth:`_unit_memo_size` units last used only, so a long session does not grow with the
        units visited."""
        bounded = isinstance(key, tuple) and key[:1] in (("column",), ("values",))
        memo = self._lru if bounded else self._memo
        with self._memo_lock:
            if key in memo:
                if bounded:
                    self._lru.move_to_end(key)
                return memo[key]
        value = compute()
        with self._memo_lock:
            value = memo.setdefault(key, value)
            if bounded:
                while len(self._lru) > self._unit_memo_size():
                    self._lru.popitem(last=False)
            return value

    def _unit_memo_size(self) -> int:
        """Per-clip arrays kept: about 1.5 GB worth (at 100 bytes a clip), 16 to 4,096."""
        return int(min(4096, max(16, 1.5e9 // (100 * max(1, len(self.run.ok_clips))))))

    # -- run basics ----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The run directory's name."""
        return self.run.path.resolve().name

    @property
    def corpus_name(self) -> str:
        """The corpus the run was recorded from (``""`` for a table passed from Python)."""
        spec = str((self.run.meta.get("corpus") or {}).get("spec", "") or "")
        if not spec or spec.startswith("<"):
            return ""
        return Path(spec).name or spec

    @property
    def layers(self) -> list[str]:
        """Recorded layers in forward order."""
        return self.run.layers

    @property
    def conv_layers(self) -> list[str]:
        """Recorded layers that are not heads."""
        return [layer for layer in self.run.layers if layer not in HEAD_LAYERS]

    def n_units(self, layer: str) -> int:
        """Units of ``layer``."""
        return self.run.n_units(layer)

    def check_unit(self, layer: Any, unit: Any) -> tuple[str, int] | None:
        """``(layer, unit)`` when they name a recorded unit, else None (input from a URL)."""
        if not isinstance(layer, str) or layer not in self.run.layers:
            return None
        text = str(unit)
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            return None
        u = int(text)
        if not 0 <= u < self.n_units(layer):
            return None
        return layer, u

    def neighbours(self, layer: str, unit: int) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
        """The previous and next unit, crossing layer boundaries."""
        layers = self.layers
        i = layers.index(layer)
        prev = (layer, unit - 1) if unit > 0 else ((layers[i - 1], self.n_units(layers[i - 1]) - 1) if i > 0 else None)
        nxt = (
            (layer, unit + 1)
            if unit + 1 < self.n_units(layer)
            else ((layers[i + 1], 0) if i + 1 < len(layers) else None)
        )
        return prev, nxt

    @property
    def clips(self) -> pd.DataFrame:
        """The ok clips, indexed by ``clip_id``, with a ``name`` column."""

        def build() -> pd.DataFrame:
            c = self.run.ok_clips.copy()
            c["name"] = [clip_display_name(p) for p in c["path"]]
            c["label"] = c["label"].fillna("").astype(str)
            return c

        return self._cached("clips", build)

    def clip_labels(self, clip_id: str) -> list[str]:
        """The clip's labels: its ``labels`` list in a multi-label run (AudioSet, FSD50K, a
        manifest with label lists), else its one ``label`` (none when unlabelled)."""
        row = self.clips.loc[clip_id]
        many = row.get("labels") if "labels" in self.clips.columns else None
        if many is not None and not isinstance(many, str) and len(many):
            return [str(x) for x in many]
        return [str(row["label"])] if str(row["label"]) else []

    def has_clip(self, clip_id: Any) -> TypeGuard[str]:
        """Whether ``clip_id`` is an ok clip of the run (membership test only)."""
        return isinstance(clip_id, str) and clip_id in self.clip_id_set

    @property
    def clip_id_set(self) -> frozenset[str]:
        """The ok clip ids."""
        return self._cached("clip_id_set", lambda: frozenset(self.clips.index.astype(str)))

    @property
    def categories(self) -> list[str]:
        """Sorted non-empty labels of the ok clips."""

        def build() -> list[str]:
            labs = self.clips["label"]
            return sorted(str(x) for x in labs.unique() if str(x))

        return self._cached("categories", build)

    @property
    def colors(self) -> dict[str, str]:
        """Category colours shared by every figure."""

        return self._cached(
            "colors", lambda: category_colors(self.categories + ([""] if (self.clips["label"] == "").any() else []))
        )

    # -- analysis tables -------------------------------------------------------------------------
    def _table(self, name: str) -> pd.DataFrame | None:
        def build() -> pd.DataFrame | None:
            return self.run.read_table(name) if self.run.has_table(name) else None

        return self._cached(("table", name), build)

    @property
    def table_suffix(self) -> str:
        """Suffix of the analysis tables the dashboard shows (one statistic's set, read together).

        ``soundnet-interp analyze`` writes ``selectivity``, ``unit_labels``,
        ``selectivity_layers``, ``selectivity_counts`` and ``unit_outputs`` with a suffix naming
        the statistic (:func:`interp.analysis.outputs.table_suffix`; none for the default one).
        Of the sets present, the first whose unit labels carry the unit-level ``status`` column is
        shown, else the first; in the order unsuffixed, ``_max``, ``_mean``, ``_vmean``.
        """

        def build() -> str:
            present = [suf for suf in ("", "_max", "_mean", "_vmean") if self.run.has_table("selectivity" + suf)]
            for suf in present:
                if self.run.has_table("unit_labels" + suf):
                    names = pq.read_schema(self.run.path / f"unit_labels{suf}.parquet").names
                    if "status" in names:
                        return suf
            return present[0] if present else ""

        return self._cached("table_suffix", build)

    def _analysis(self, name: str) -> pd.DataFrame | None:
        """The analysis table ``name`` of the statistic shown (see :attr:`table_suffix`)."""
        return self._table(name + self.table_suffix)

    @property
    def dissection(self) -> DissectionData:
        """The run's temporal dissection tables (:class:`dashboard.dissection.DissectionData`;
        ``available`` False when ``soundnet-interp dissect`` has not been run)."""
        return self._cached("dissection", lambda: DissectionData(self))

    @property
    def strf(self) -> StrfData:
        """The run's STRF tables (:class:`dashboard.portraits.StrfData`; ``available`` False when
        ``soundnet-interp strf`` has not been run)."""
        return self._cached("strf_data", lambda: StrfData(self))

    @property
    def nuisance(self) -> pd.DataFrame | None:
        """``nuisance.parquet``: per category, how well each nuisance alone separates it (or None)."""
        return self._table("nuisance")

    @property
    def has_selectivity(self) -> bool:
        """Whether ``soundnet-interp analyze`` has been run on this run."""
        return self._analysis("selectivity") is not None

    @property
    def stat(self) -> ClipStat:
        """The per-clip statistic the selectivity analysis used (``max`` when none)."""
        sel = self._analysis("selectivity")
        if sel is None:
            return "max"
        stat = str((sel.attrs.get("selectivity") or {}).get("stat", "max"))
        return cast(ClipStat, check_option("stat", stat, ClipStat, where="the run's selectivity table"))

    @property
    def stat_description(self) -> str:
        """:attr:`stat` in words (e.g. ``"mean over valid frames"``)."""
        return describe_stat(self.stat)

    @property
    def selectivity(self) -> pd.DataFrame | None:
        """``selectivity.parquet`` sorted by layer order, unit and category (or None)."""

        def build() -> pd.DataFrame | None:
            sel = self._analysis("selectivity")
            if sel is None:
                return None
            order = {layer: i for i, layer in enumerate(self.layers)}
            s = sel.assign(_o=sel["layer"].map(order)).sort_values(["_o", "unit", "category"], kind="stable")
            s = s.drop(columns="_o").reset_index(drop=True)
            s.attrs = dict(sel.attrs)
            return s

        return self._cached("selectivity_sorted", build)

    def _unit_slices(self) -> dict[tuple[str, int], tuple[int, int]]:
        def build() -> dict[tuple[str, int], tuple[int, int]]:
            s = self.selectivity
            if s is None:
                return {}
            key = s["layer"].astype(str) + ":" + s["unit"].astype(str)
            change = np.flatnonzero(np.r_[True, key.to_numpy()[1:] != key.to_numpy()[:-1], True])
            out = {}
            for a, b in itertools.pairwise(change):
                out[(str(s["layer"].iat[a]), int(s["unit"].iat[a]))] = (int(a), int(b))
            return out

        return self._cached("unit_slices", build)

    def unit_metrics(self, layer: str, unit: int) -> pd.DataFrame:
        """The unit's selectivity rows, one per category, best AUROC first (empty without analysis)."""
        s = self.selectivity
        if s is None:
            return pd.DataFrame()
        ab = self._unit_slices().get((layer, int(unit)))
        if ab is None:
            return pd.DataFrame(columns=s.columns)
        return s.iloc[ab[0] : ab[1]].sort_values("auroc", ascending=False, kind="stable").reset_index(drop=True)

    def unit_intervals(self, layer: str, unit: int, *, confidence: float = 0.95) -> pd.DataFrame:
        """Interval of the unit's AUROC for every category (:func:`unit_auroc_intervals`).

        The same interval as :func:`interp.analysis.selectivity.rank_units` reports (stratified
        group bootstrap, ``n_boot`` 2000, seed 0; above 20,000 clips its clustered normal
        approximation), computed on first request and memoised.

        Returns
        -------
        DataFrame ``category, auroc_lo, auroc_hi``; ``attrs["method"]`` says which interval.
        """

        def build() -> pd.DataFrame:
            return unit_auroc_intervals(
                self.unit_column(layer, unit, self.stat),
                self.clips["label"],
                list(self.categories),
                groups=self.clips["group"] if "group" in self.clips.columns else None,
                n_boot=N_BOOT,
                confidence=confidence,
                seed=0,
            )

        return self._cached(("intervals", layer, int(unit), confidence), build)

    @property
    def unit_labels(self) -> pd.DataFrame | None:
        """``unit_labels.parquet`` indexed by ``(layer, unit)`` (or None)."""

        def build() -> pd.DataFrame | None:
            t = self._analysis("unit_labels")
            return None if t is None else t.set_index(["layer", "unit"])

        return self._cached("unit_labels_idx", build)

    def unit_label(self, layer: str, unit: int) -> dict[str, Any] | None:
        """The unit's row of ``unit_labels`` as a dict (or None)."""
        t = self.unit_labels
        if t is None:
            return None
        try:
            return t.loc[(layer, int(unit))].to_dict()
        except KeyError:
            return None

    @property
    def has_unit_status(self) -> bool:
        """Whether the unit labels carry the unit-level ``status`` column (newer runs)."""
        t = self.unit_labels
        return t is not None and "status" in t.columns

    def unit_status(self, layer: str, unit: int) -> dict[str, Any] | None:
        """The unit's label status (:func:`interp.report.cards.unit_status`), or None without labels."""
        row = self.unit_label(layer, unit)
        return None if row is None else unit_status(row)

    def short_statuses(self, layers: Sequence[str], units: Sequence[int]) -> list[str]:
        """:func:`interp.report.cards.short_unit_status` of each ``(layer, unit)`` (``""`` for a
        unit without a row, or for every unit when the run has no unit labels)."""
        t = self.unit_labels
        if t is None:
            return ["" for _ in units]
        idx = pd.MultiIndex.from_arrays([list(layers), [int(u) for u in units]])
        known = idx.isin(t.index)
        rows = t.reindex(idx).to_dict("records")
        return [short_unit_status(r) if ok else "" for ok, r in zip(known, rows, strict=True)]

    @property
    def label_thresholds(self) -> dict[str, float]:
        """The thresholds the stored unit labels used: ``{"q_max": ..., "auroc_min": ..., "win_min": ...}``."""
        t = self._analysis("unit_labels")
        meta = (t.attrs.get("unit_labels") if t is not None else None) or {}
        return {
            "q_max": float(meta.get("q_max", 0.05)),
            "auroc_min": float(meta.get("auroc_min", 0.75)),
            "win_min": float(meta.get("win_min", 0.975)),
        }

    @property
    def layer_summary(self) -> pd.DataFrame | None:
        """``selectivity_layers.parquet``: ``layer, n_units, n_selective, fraction_selective``."""
        return self._analysis("selectivity_layers")

    @property
    def category_counts(self) -> pd.DataFrame | None:
        """``selectivity_counts.parquet`` pivoted: index category, columns layer."""

        def build() -> pd.DataFrame | None:
            t = self._analysis("selectivity_counts")
            if t is None:
                return None
            p = t.pivot_table(index="category", columns="layer", values="n_units", aggfunc="sum", fill_value=0)
            p = p[[layer for layer in self.layers if layer in p.columns]]
            p.attrs["n_units"] = {layer: self.n_units(layer) for layer in p.columns}
            return p

        return self._cached("category_counts_pivot", build)

    @property
    def probes_accuracy(self) -> pd.DataFrame | None:
        """``probes.parquet`` (``layer, accuracy, ci_low, ci_high``) when a probe study stored it:
        the pretrained net's rows (the baselines of the same table are the study's to show)."""
        t = self._table("probes")
        if t is None or not {"layer", "accuracy", "ci_low", "ci_high"} <= set(t.columns):
            return None
        if "probe" in t.columns:
            t = t[t["probe"] == "pretrained"]
        return t

    def promoted(self, layer: str, unit: int, head: str, *, top: int = 8) -> pd.DataFrame:
        """The head classes that rise with the unit: ``class_name, r`` (from ``unit_outputs``).

        For a head unit the unit is itself a class; the rows are then the classes of the *other*
        head whose probability correlates with it (Pearson r across clips).
        """

        def build() -> pd.DataFrame:
            empty = pd.DataFrame(columns=["class_name", "r"])
            if head not in self.layers:
                return empty
            if layer in HEAD_LAYERS:  # streamed: the unit's column against the head, in batches of clips
                t = unit_output_correlations(self.run, layer, int(unit), head, top=top + 1)
                if head == layer:
                    t = t[t["class_index"] != int(unit)]
                return t[["class_name", "r"]].head(top).reset_index(drop=True)
            t = self._unit_outputs()
            if t is None:
                return empty
            key = (layer, int(unit), head)
            if key not in t.index:
                return empty
            return t.loc[[key]].sort_values("rank")[["class_name", "r"]].head(top).reset_index(drop=True)

        return self._cached(("promoted", layer, int(unit), head, top), build)

    def _unit_outputs(self) -> pd.DataFrame | None:
        def build() -> pd.DataFrame | None:
            t = self._analysis("unit_outputs")  # written beside the selectivity table, by the same analyze
            return None if t is None else t.set_index(["layer", "unit", "head"]).sort_index()

        return self._cached("unit_outputs_idx", build)

    def rank(
        self,
        category: str,
        *,
        metric: Metric | MetricAlias = "auroc",
        layers: Sequence[str] | None = None,
        selective_only: bool = False,
        top: int | None = 50,
    ) -> pd.DataFrame:
        """Units ranked for a category (:func:`interp.analysis.selectivity.rank_table`), with each
        unit's ``label`` and ``status`` (:func:`interp.report.cards.short_unit_status`) and
        ``selective`` (whether the unit is labelled selective for ``category``, see
        :meth:`selective_for`).

        ``selective_only`` keeps the units labelled selective for ``category``.
        """

        sel = self.selectivity
        if sel is None or category not in set(sel["category"].astype(str)):
            return pd.DataFrame()
        layers = [layer for layer in (layers or self.layers) if layer in self.layers]
        if not layers:
            return pd.DataFrame()
        df = rank_table(sel, category, metric=metric, layer=layers, top=None)
        df["selective"] = self.selective_for(category, df)
        if selective_only:
            df = df[df["selective"]]
        if top is not None:
            df = df.head(int(top))
        df = df.reset_index(drop=True)
        df["rank"] = np.arange(len(df))
        labels = self.unit_labels
        if labels is not None and len(df):
            idx = pd.MultiIndex.from_arrays([df["layer"], df["unit"].astype(int)])
            df["label"] = labels["label"].reindex(idx).to_numpy()
            df["status"] = self.short_statuses(list(df["layer"]), list(df["unit"].astype(int)))
        return df

    def selective_rule(self, category: str = "the category") -> str:
        """What :meth:`selective_for` tests, in words: ``"labelled selective for <category>
        (unit-level test, BH across units)"``, or for an older table ``"passing for <category>
        (pair-level q < 0.05 and AUROC ≥ 0.75)"``."""
        th = self.label_thresholds
        if self.has_unit_status:
            return f"labelled selective for {category} (unit-level test, BH across units)"
        return f"passing for {category} (pair-level q < {th['q_max']:g} and AUROC ≥ {th['auroc_min']:g})"

    def selective_for(self, category: str, rows: pd.DataFrame) -> np.ndarray:
        """Whether each ``(layer, unit)`` of ``rows`` is labelled selective for ``category``.

        With the unit-level ``status`` column in the unit labels: the unit's status is
        ``selective`` and its label is ``category``. For older tables, the pair-level rule
        the labels were made with: the row's ``q < q_max`` and ``auroc >= auroc_min``
        (``rows`` are the unit's selectivity rows for ``category``).
        """
        if not len(rows):
            return np.zeros(0, dtype=bool)
        t = self.unit_labels
        if t is not None and "status" in t.columns:
            idx = pd.MultiIndex.from_arrays([rows["layer"].astype(str), rows["unit"].astype(int)])
            lab = t.reindex(idx)
            return ((lab["status"].astype(str) == "selective") & (lab["label"].astype(str) == str(category))).to_numpy(
                dtype=bool
            )
        th = self.label_thresholds
        return ((rows["q"] < th["q_max"]) & (rows["auroc"] >= th["auroc_min"])).to_numpy(dtype=bool)

    # -- per unit ------------------------------------------------------------------------------
    def unit_column(self, layer: str, unit: int, stat: HeadStat) -> pd.Series:
        """One unit's per-clip ``stat``, indexed by ``clip_id`` (float64).

        Reads the single Parquet column, not the layer's whole table (which for a large corpus
        and conv7 is hundreds of megabytes).
        """

        def build() -> pd.Series:
            return self.run.unit_block(layer, stat, [int(unit)])[int(unit)].astype(np.float64).rename(int(unit))

        return self._cached(("column", layer, int(unit), stat), build)

    def unit_values(self, layer: str, unit: int, *, stat: ClipStat | None = None) -> pd.DataFrame:
        """The unit's per-clip statistic with each clip's label: columns ``value`` (float64) and
        ``label`` (categorical)."""
        st = stat or self.stat

        def build() -> pd.DataFrame:
            v = self.unit_column(layer, unit, st)
            return pd.DataFrame(
                {"value": v.to_numpy(dtype=np.float64), "label": self._labels_of(v.index)}, index=v.index
            )

        return self._cached(("values", layer, int(unit), st), build)

    def _labels_of(self, index: pd.Index) -> pd.Categorical:
        """The labels of the clips of ``index`` (a unit column's clip ids) as a Categorical: the
        figures group a million clips by its integer codes. Computed once per clip-id index (one
        shared by every column, :meth:`interp.run.store.Run.unit_block`), not once per unit."""
        with self._memo_lock:
            known = self._memo.get(("labels_of",))
        if known is not None and known[0].is_(index):  # (pandas hands out views of one index: ``is_``)
            return known[1]
        lab = pd.Categorical(self.clips["label"].reindex(index).fillna("").to_numpy())
        with self._memo_lock:
            self._memo[("labels_of",)] = (index, lab)
        return lab

    def unit_max_moments(self, layer: str) -> dict[str, np.ndarray]:
        """Per unit of ``layer``, the ``mean``, ``std`` and ``max`` over the corpus of its per-clip max.

        Returns
        -------
        dict of str to np.ndarray, each shape (n_units,)
        """

        def build() -> dict[str, np.ndarray]:
            return self.run.unit_moments(layer, "max")  # streamed, and kept in the run's cache

        return self._cached(("max_moments", layer), build)

    def top_clips(self, layer: str, unit: int, *, k: int = 16, stat: ClipStat | None = None) -> pd.DataFrame:
        """The unit's top clips by ``stat`` (default :attr:`stat`, the analyses' statistic):
        :func:`interp.analysis.topclips.top_clips` with ``name`` and ``max`` columns.

        ``value`` is the clip's ``stat``; ``peak_s`` / ``start_s`` / ``end_s`` are the time of the
        clip's max and the receptive field of that frame (from the ``peak_s`` statistic); ``max``
        the clip's max over time (the top of its activation trace). ``attrs["stat"]`` names
        ``stat``. Clips without a value (no
        valid frame in the layer, for ``vmean``) are never top clips.
        """
        st: ClipStat = stat or self.stat
        n = max(int(k), 16)  # one list per unit for every k up to 16: the top k is its head

        def build() -> pd.DataFrame:
            values = None if st == "max" else self.unit_column(layer, unit, st)  # ("max": the stored top-k)
            t = top_clips(self.run, layer, int(unit), k=n, stat=st, values=values)
            t = t[np.isfinite(t["value"].to_numpy(dtype=np.float64))].reset_index(drop=True)
            t["rank"] = np.arange(len(t))
            t["name"] = [clip_display_name(p) for p in t["path"]]
            t.attrs["stat"] = st
            if st == "max":
                t["max"] = t["value"].to_numpy(dtype=np.float64)
            else:
                t["max"] = self.unit_column(layer, unit, "max").reindex(t["clip_id"]).to_numpy(dtype=np.float64)
            return t

        top = self._cached(("top", layer, int(unit), n, st), build)
        return top if int(k) >= n else top.head(int(k))

    def quantile_clips(self, layer: str, unit: int, *, n_bins: int = 10, per_bin: int = 3) -> pd.DataFrame:
        """Clips from each decile of the unit's :attr:`stat` (:func:`interp.analysis.topclips.quantile_bins`;
        clips without a value left out), with ``label, path, duration_s, name``."""

        def build() -> pd.DataFrame:
            t = quantile_bins(self.unit_column(layer, unit, self.stat), n_bins=n_bins, per_bin=per_bin)
            info = self.clips.reindex(t["clip_id"])
            for col in ("label", "path", "duration_s", "name"):
                t[col] = info[col].to_numpy()
            return t

        return self._cached(("quantiles", layer, int(unit), n_bins, per_bin), build)

    def tuning(self, layer: str, unit: int) -> pd.DataFrame | None:
        """The unit's tuning curves from the attached probes run (:func:`interp.analysis.tuning.stimulus_responses`).

        Returns
        -------
        DataFrame or None
            One row per probe (tones, AM noise, click trains): ``kind, freq_hz, level_db, rate_hz,
            ..., response, response_norm, stat`` (``stat``: the per-clip statistic of ``response``,
            :attr:`stat` when the probes run recorded it); None without a probes run, or when it lacks the layer
            or those probe kinds.
        """
        pr = self.probes_run
        if pr is None or layer not in pr.layers or layer in HEAD_LAYERS or "kind" not in pr.ok_clips.columns:
            return None
        present = set(pr.ok_clips["kind"].astype(str))
        kinds: list[ProbeKind] = [k for k in ("tone", "am_noise", "click_train") if k in present]
        if not kinds:
            return None

        def build() -> pd.DataFrame:

            # the statistic of the selectivity tables, when the probes run recorded it (older runs
            # have no vmean)
            has = (pr.path / "activations" / activation_file(layer, self.stat)).is_file()
            st: ClipStat = self.stat if has else ("mean" if self.stat == "mean" else "max")
            t = stimulus_responses(pr, kinds=kinds, layers=[layer], stat=st)
            return t.assign(stat=st).set_index("unit").sort_index()

        curves = self._cached(("tuning", layer), build)
        return curves.loc[[int(unit)]].reset_index() if int(unit) in curves.index else None

    # -- per clip ------------------------------------------------------------------------------
    def clip(self, clip_id: str) -> pd.Series:
        """The ok clip row (KeyError for anything else)."""
        if not self.has_clip(clip_id):
            raise KeyError(clip_id)
        return self.clips.loc[clip_id]

    def view_window(self, clip_id: str, around_s: float | None = None) -> tuple[float, float] | None:
        """The part of a clip to show: None (all of it) unless it is longer than :data:`LONG_CLIP_S`.

        Long clips get a :data:`VIEW_WINDOW_S` window on a 10 s grid containing ``around_s``
        (default: the start), so nearby moments share one cached view.
        """
        dur = float(self.clip(clip_id)["duration_s"])
        if not math.isfinite(dur) or dur <= LONG_CLIP_S:
            return None
        t = 0.0 if around_s is None or not math.isfinite(around_s) else float(around_s)
        start = max(0.0, min(math.floor((t - VIEW_WINDOW_S / 2) / 10.0) * 10.0, dur - VIEW_WINDOW_S))
        return (start, min(dur, start + VIEW_WINDOW_S))

    @property
    def model(self):
        """SoundNet, loaded on first use (only needed to compute uncached traces)."""
        with self._model_lock:
            if self._model is None:
                self._model = load_soundnet()
            return self._model

    def spectrogram(self, clip_id: str, *, window_s: tuple[float, float] | None = None):
        """:func:`interp.run.traces.clip_spectrogram` (cached on disk)."""

        return clip_spectrogram(self.run, clip_id, window_s=window_s)

    def traces(
        self, clip_id: str, layer: str, *, window_s: tuple[float, float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`interp.run.traces.unit_traces` (cached on disk); loads the model only on a miss."""

        return traces.unit_traces(self.run, clip_id, layer, window_s=window_s, model=_LazyModel(self))

    def audio(self, clip_id: str, *, window_s: tuple[float, float] | None = None) -> np.ndarray:
        """:func:`interp.run.traces.clip_audio`: the clip's samples, mono [-1, 1] at 22050 Hz."""

        return clip_audio(self.run, clip_id, window_s=window_s)

    def clip_values(self, clip_id: str, layer: str, *, stat: ClipStat = "max") -> np.ndarray:
        """Every unit's ``stat`` on one clip, shape (n_units,): the one row group that holds it."""
        return self.run.clip_row(layer, stat, clip_id).astype(np.float64)


class _LazyModel:
    """Stands in for the model: loads the real one (once per :class:`RunData`) when called."""

    def __init__(self, data: RunData) -> None:
        self._data = data

    def extract_features(
        self, x: torch.Tensor, *, layers: tuple[str, ...] | list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        return self._data.model.extract_features(x, layers=layers)
