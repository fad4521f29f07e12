"""The dashboard's view of a run's temporal dissection (``soundnet-interp dissect``).

:class:`DissectionData` reads the tables :func:`interp.analysis.dissection.run_dissection` writes
into the run directory (``dissection``, ``dissection_units``, ``dissection_profiles``,
``dissection_events`` and ``dissection.json``) and indexes them; it computes no statistic. A run
without the tables has ``available`` False and every page leaves the dissection out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from interp.report.figures import category_colors

if TYPE_CHECKING:
    from dashboard.data import RunData

__all__ = ["DissectionData", "STATUS_WORDS", "TABLES"]

#: The tables the dissection card needs (``dissection_profiles`` and ``dissection_events`` are
#: optional: without them the profile or the clips are left out).
TABLES = ("dissection", "dissection_units")
#: A unit's dissection status in words (docs/dissection.md).
STATUS_WORDS = {
    "concept": "concept",
    "events": "fires at events of any kind",
    "unlabelled": "unlabelled",
}


class DissectionData:
    """Memoised, indexed access to one run's dissection tables (through ``data``'s memo)."""

    def __init__(self, data: RunData) -> None:
        self._data = data

    # -- tables ----------------------------------------------------------------------------------
    def _get(self, key: str, build: Any) -> Any:
        return self._data._cached(("dissection", key), build)

    def _read(self, name: str) -> pd.DataFrame | None:
        run = self._data.run
        return self._get(f"table:{name}", lambda: run.read_table(name) if run.has_table(name) else None)

    @property
    def available(self) -> bool:
        """Whether the run has the dissection tables (:data:`TABLES`)."""
        return all(self._read(name) is not None for name in TABLES)

    @property
    def meta(self) -> dict[str, Any]:
        """``dissection.json`` (settings, concepts, counts), ``{}`` when absent or unreadable."""

        def build() -> dict[str, Any]:
            path = self._data.run.path / "dissection.json"
            try:
                out = json.loads(path.read_text())
            except (OSError, ValueError):
                return {}
            return out if isinstance(out, dict) else {}

        return self._get("meta", build)

    @property
    def settings(self) -> dict[str, Any]:
        """The dissection's settings (``quantile``, ``q_max``, ``layers``, ...)."""
        s = self.meta.get("settings")
        return s if isinstance(s, dict) else {}

    @property
    def q_max(self) -> float:
        """The q below which a null passes (``dissection.json``; 0.05 when absent)."""
        return float(self.settings.get("q_max", 0.05))

    @property
    def quantile(self) -> float:
        """The threshold quantile (each unit's top ``1 - quantile`` of valid frames)."""
        return float(self.settings.get("quantile", 0.95))

    @property
    def table(self) -> pd.DataFrame:
        """``dissection.parquet`` indexed by ``(layer, unit)`` (sorted)."""

        def build() -> pd.DataFrame:
            t = self._read("dissection")
            assert t is not None
            return (
                t.assign(layer=t["layer"].astype(str), concept=t["concept"].astype(str))
                .set_index(["layer", "unit"])
                .sort_index()
            )

        return self._get("table_idx", build)

    @property
    def units(self) -> pd.DataFrame:
        """``dissection_units.parquet`` indexed by ``(layer, unit)``."""

        def build() -> pd.DataFrame:
            t = self._read("dissection_units")
            assert t is not None
            t = t.assign(layer=t["layer"].astype(str), status=t["status"].astype(str), concept=t["concept"].astype(str))
            return t.set_index(["layer", "unit"]).sort_index()

        return self._get("units_idx", build)

    @property
    def layers(self) -> list[str]:
        """The dissected layers, in the run's order."""
        present = set(self.units.index.get_level_values(0))
        return [layer for layer in self._data.layers if layer in present]

    @property
    def concepts(self) -> list[str]:
        """The concepts (``dissection.json``, else those of the table), sorted."""
        c = self.meta.get("concepts")
        if isinstance(c, list) and c:
            return sorted(str(x) for x in c)
        return sorted(set(self.table["concept"]))

    @property
    def colors(self) -> dict[str, str]:
        """Concept colours: a concept that is also a clip category keeps the category's colour."""

        def build() -> dict[str, str]:
            own = category_colors(self.concepts)
            return {c: self._data.colors.get(c, own[c]) for c in self.concepts}

        return self._get("colors", build)

    # -- per unit --------------------------------------------------------------------------------
    def unit_rows(self, layer: str, unit: int) -> pd.DataFrame:
        """The unit's rows of ``dissection.parquet``, one per concept, highest IoU first, with
        ``passes`` (both q below :attr:`q_max`)."""
        key = (layer, int(unit))
        t = self.table
        if key not in t.index:
            return pd.DataFrame(columns=[*t.columns, "passes"])
        rows = t.loc[[key]].reset_index()
        rows["passes"] = (rows["q_time"] < self.q_max) & (rows["q_label"] < self.q_max)
        return rows.sort_values("iou", ascending=False, kind="stable", na_position="last").reset_index(drop=True)

    def unit_status(self, layer: str, unit: int) -> dict[str, Any] | None:
        """The unit's row of ``dissection_units.parquet`` as a dict (None when not dissected)."""
        key = (layer, int(unit))
        u = self.units
        if key not in u.index:
            return None
        return dict(u.loc[key].to_dict(), layer=layer, unit=int(unit))

    def unit_profiles(self, layer: str, unit: int) -> pd.DataFrame:
        """The unit's onset-aligned profiles: ``concept, t_s, activation`` (empty without the table)."""

        def build() -> pd.DataFrame | None:
            p = self._read("dissection_profiles")
            if p is None:
                return None
            p = p.assign(layer=p["layer"].astype(str), concept=p["concept"].astype(str))
            return p.set_index(["layer", "unit"]).sort_index()

        p = self._get("profiles_idx", build)
        key = (layer, int(unit))
        if p is None or key not in p.index:
            return pd.DataFrame(columns=["concept", "t_s", "activation"])
        return p.loc[[key]].reset_index(drop=True)[["concept", "t_s", "activation"]]

    @property
    def events(self) -> pd.DataFrame | None:
        """``dissection_events.parquet`` (``clip_id, onset_s, offset_s, label``) of the run's ok
        clips, or None."""

        def build() -> pd.DataFrame | None:
            e = self._read("dissection_events")
            if e is None:
                return None
            e = e.assign(clip_id=e["clip_id"].astype(str), label=e["label"].astype(str))
            return (
                e[e["clip_id"].isin(self._data.clip_id_set)].sort_values(["clip_id", "onset_s"]).reset_index(drop=True)
            )

        return self._get("events", build)

    def clip_events(self, clip_id: str) -> pd.DataFrame:
        """One clip's events (``onset_s, offset_s, label``), by onset."""
        e = self.events
        if e is None:
            return pd.DataFrame(columns=["onset_s", "offset_s", "label"])
        return e[e["clip_id"] == clip_id][["onset_s", "offset_s", "label"]].reset_index(drop=True)

    def clips(self, layer: str, unit: int, concept: str, *, k: int = 4) -> pd.DataFrame:
        """The clips to show a unit against ``concept``: the ``k`` with the most events of the
        concept (ties: more events of any label, then corpus order), chosen without looking at the
        unit, so they show its misses as well as its hits.

        Returns
        -------
        DataFrame like :meth:`dashboard.data.RunData.top_clips` with ``stat = "max"``: ``rank,
        clip_id, value`` (the clip's max over time), ``max``, ``peak_s``, ``start_s``, ``end_s``,
        ``label, path, duration_s, name``, and ``n_concept``, ``n_events``.
        """

        def build() -> pd.DataFrame:
            e = self.events
            if e is None or e.empty:
                return pd.DataFrame()
            n_all = e.groupby("clip_id").size()
            n_c = e[e["label"] == concept].groupby("clip_id").size()
            if n_c.empty:
                return pd.DataFrame()
            order = {cid: i for i, cid in enumerate(self._data.clips.index.astype(str))}
            cand = pd.DataFrame({"n_concept": n_c, "n_events": n_all.reindex(n_c.index)})
            cand["_o"] = [order.get(str(c), len(order)) for c in cand.index]
            cand = cand.sort_values(["n_concept", "n_events", "_o"], ascending=[False, False, True], kind="stable")
            ids = [str(c) for c in cand.index[: int(k)]]
            from soundnet.geometry import frames_to_window, time_to_frames

            peak = self._data.unit_column(layer, unit, "peak_s").reindex(ids).to_numpy(dtype=np.float64)
            mx = self._data.unit_column(layer, unit, "max").reindex(ids).to_numpy(dtype=np.float64)
            info = self._data.clips.reindex(ids)
            dur = info["duration_s"].to_numpy(dtype=np.float64)
            start, end = frames_to_window(time_to_frames(np.nan_to_num(peak), layer), layer)
            out = pd.DataFrame(
                {
                    "rank": np.arange(len(ids)),
                    "clip_id": ids,
                    "value": mx,
                    "max": mx,
                    "peak_s": peak,
                    "start_s": np.clip(start, 0.0, dur),
                    "end_s": np.clip(end, 0.0, dur),
                    "label": info["label"].to_numpy(),
                    "path": info["path"].to_numpy(),
                    "duration_s": dur,
                    "name": info["name"].to_numpy(),
                    "n_concept": cand["n_concept"].to_numpy()[: len(ids)].astype(int),
                    "n_events": cand["n_events"].to_numpy()[: len(ids)].astype(int),
                }
            )
            out.attrs["stat"] = "max"
            return out

        return self._get(f"clips:{layer}:{int(unit)}:{concept}:{int(k)}", build)

    # -- run level -------------------------------------------------------------------------------
    def concept_counts(self) -> pd.DataFrame:
        """Units whose status is ``concept``, per concept (index) and dissected layer (columns)."""

        def build() -> pd.DataFrame:
            u = self.units.reset_index()
            u = u[u["status"] == "concept"]
            p = pd.crosstab(u["concept"], u["layer"]) if len(u) else pd.DataFrame()
            return p.reindex(index=self.concepts, columns=self.layers, fill_value=0).fillna(0).astype(int)

        return self._get("concept_counts", build)

    def status_counts(self) -> pd.DataFrame:
        """Per dissected layer: ``units``, ``concept``, ``events``, ``unlabelled`` (unit counts)."""

        def build() -> pd.DataFrame:
            u = self.units.reset_index()
            c = pd.crosstab(u["layer"], u["status"]).reindex(
                index=self.layers, columns=list(STATUS_WORDS), fill_value=0
            )
            c = c.fillna(0).astype(int)
            c.insert(0, "units", c.sum(axis=1))
            return c

        return self._get("status_counts", build)

    def concept_units(self, concept: str, *, layers: Sequence[str] | None = None) -> pd.DataFrame:
        """Units whose status is ``concept`` with ``concept``, highest IoU first, with their row of
        ``dissection.parquet`` for it (``iou, iou_null_time, iou_null_label, q_time, q_label,
        precision, recall, ...``) and ``n_concepts``."""
        u = self.units.reset_index()
        keep = (u["status"] == "concept") & (u["concept"] == str(concept))
        if layers is not None:
            keep &= u["layer"].isin(list(layers))
        u = u[keep][["layer", "unit", "n_concepts"]]
        if u.empty:
            return pd.DataFrame()
        t = self.table.reset_index()
        t = t[t["concept"] == str(concept)]
        out = u.merge(t, on=["layer", "unit"], how="left")
        order = {layer: i for i, layer in enumerate(self._data.layers)}
        out = out.assign(_o=out["layer"].map(order)).sort_values(["iou", "_o", "unit"], ascending=[False, True, True])
        return out.drop(columns="_o").reset_index(drop=True)
