"""The dashboard's view of a run's unit portraits: STRFs (``soundnet-interp strf``).

:class:`StrfData` reads the tables :func:`interp.analysis.strf.run_strf` writes into the run
directory (``strf``: one row per unit; ``strf_filters``: the weights by lag and mel band) and
indexes them; it computes no statistic. A run without the tables has ``available`` False and the
pages leave the STRFs out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from interp.analysis.strf import STRFConfig, mel_centres_hz

if TYPE_CHECKING:
    from dashboard.data import RunData

__all__ = ["StrfData", "STRF_TABLES"]

#: The tables the STRF card and gallery need.
STRF_TABLES = ("strf", "strf_filters")


class StrfData:
    """Memoised, indexed access to one run's STRF tables (through ``data``'s memo)."""

    def __init__(self, data: RunData) -> None:
        self._data = data

    def _get(self, key: Any, build: Any) -> Any:
        return self._data._cached(("strf", key), build)

    def _read(self, name: str) -> pd.DataFrame | None:
        run = self._data.run
        return self._get(f"table:{name}", lambda: run.read_table(name) if run.has_table(name) else None)

    @property
    def available(self) -> bool:
        """Whether the run has both STRF tables (:data:`STRF_TABLES`)."""
        return all(self._read(name) is not None for name in STRF_TABLES)

    @property
    def table(self) -> pd.DataFrame:
        """``strf.parquet`` (empty without it)."""
        t = self._read("strf")
        return t if t is not None else pd.DataFrame(columns=["layer", "unit", "r_heldout", "lag_s", "n_mels"])

    @property
    def settings(self) -> dict[str, Any]:
        """The estimation's settings as the table recorded them (``n_clips``, ``n_folds``, ...)."""
        s = self.table.attrs.get("strf")
        return s if isinstance(s, dict) else {}

    @property
    def layers(self) -> list[str]:
        """Layers with STRFs, in the run's layer order."""
        if not self.available:
            return []
        have = set(self.table["layer"].astype(str))
        return [layer for layer in self._data.layers if layer in have]

    def _rows(self) -> dict[tuple[str, int], dict[str, Any]]:
        def build() -> dict[tuple[str, int], dict[str, Any]]:
            t = self.table
            return {(str(r["layer"]), int(r["unit"])): r for r in t.to_dict("records")}

        return self._get("rows", build)

    def unit_row(self, layer: str, unit: int) -> dict[str, Any] | None:
        """The unit's row of ``strf.parquet`` (``r_heldout``, ``alpha``, ``n_frames``, ``lag_s``, ...),
        or None (no tables, or a layer that was not fitted)."""
        if not self.available:
            return None
        return self._rows().get((layer, int(unit)))

    def layer_filters(self, layer: str) -> np.ndarray | None:
        """The layer's STRFs as one array ``(units, lags, mels)`` (NaN where a unit has none)."""

        def build() -> np.ndarray | None:
            f = self._read("strf_filters")
            if f is None:
                return None
            part = f[f["layer"].astype(str) == layer]
            if part.empty:
                return None
            u = part["unit"].to_numpy(np.int64)
            lag = part["lag"].to_numpy(np.int64)
            mel = part["mel"].to_numpy(np.int64)
            out = np.full((self._data.n_units(layer), int(lag.max()) + 1, int(mel.max()) + 1), np.nan, np.float32)
            ok = (u >= 0) & (u < out.shape[0])
            out[u[ok], lag[ok], mel[ok]] = part["weight"].to_numpy(np.float32)[ok]
            return out

        return self._get(("filters", layer), build)

    def unit_filter(self, layer: str, unit: int) -> np.ndarray | None:
        """The unit's STRF ``(lags, mels)``, or None."""
        if self.unit_row(layer, unit) is None:
            return None
        f = self.layer_filters(layer)
        if f is None or not 0 <= int(unit) < len(f) or not np.isfinite(f[int(unit)]).any():
            return None
        return f[int(unit)]

    def mel_hz(self, n_mels: int) -> np.ndarray:
        """Centre frequencies of ``n_mels`` mel bands (:func:`interp.analysis.strf.mel_centres_hz`)."""
        return self._get(("mel_hz", int(n_mels)), lambda: mel_centres_hz(STRFConfig(n_mels=int(n_mels))))

    def best_units(self, layer: str, k: int = 24) -> pd.DataFrame:
        """The layer's units with the highest ``r_heldout`` (NaN last), best first."""
        t = self.table
        if t.empty:
            return t
        part = t[t["layer"].astype(str) == layer]
        return part.sort_values(["r_heldout", "unit"], ascending=[False, True], na_position="last").head(int(k))

    def layer_summary(self) -> pd.DataFrame:
        """Per layer: units, median and highest ``r_heldout``, units with r > 0.5 (for the overview)."""
        rows = []
        for layer in self.layers:
            r = self.table.loc[self.table["layer"].astype(str) == layer, "r_heldout"].to_numpy(np.float64)
            fin = r[np.isfinite(r)]
            rows.append(
                {
                    "layer": layer,
                    "units": len(r),
                    "median_r": float(np.median(fin)) if len(fin) else math.nan,
                    "best_r": float(np.max(fin)) if len(fin) else math.nan,
                    "above_half": int(np.sum(fin > 0.5)),
                }
            )
        return pd.DataFrame(rows, columns=["layer", "units", "median_r", "best_r", "above_half"])
