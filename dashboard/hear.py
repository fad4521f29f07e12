"""On-demand unit portraits, cached in the run directory: what a unit wants to hear, attribution.

:func:`visualization` is :func:`interp.analysis.visualize.run_visualize` (which keeps its own cache
in ``<run>/cache/visualize``); :func:`attribution` is
:func:`interp.analysis.attribution.run_attribution` on one of the run's clips, kept here as
``<run>/cache/attribution/<layer>/<unit>.<clip_id>.npz`` under a key of the weights and the
settings (a file whose key does not match is recomputed). Neither is computed while a page is
built: the unit page's buttons ask for them (and show them at once when cached).
"""

from __future__ import annotations

import io
import json
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interp.analysis.attribution import Attribution, run_attribution
from interp.analysis.visualize import Visualization, VisualizeConfig, run_visualize
from interp.run.store import atomic_write_bytes

if TYPE_CHECKING:
    from dashboard.data import RunData

__all__ = [
    "ATTRIBUTION_OPTIONS",
    "set_visualize_config",
    "visualization_cached",
    "visualization",
    "attribution_cached",
    "attribution",
]

#: Settings of the attribution shown (``run_attribution``'s keywords; part of the cache key).
ATTRIBUTION_OPTIONS: dict[str, Any] = {"method": "occlusion", "target": "peak", "n_time": 32, "n_freq": 16}
_FORMAT = 1
_LOCK = threading.Lock()  # one optimisation or attribution at a time (two cores)


# --------------------------------------------------------------------------------------------
# what the unit wants to hear
# --------------------------------------------------------------------------------------------
def _visualize_config(data: RunData) -> VisualizeConfig:
    cfg = data._cached("visualize_config", VisualizeConfig)
    return cfg if isinstance(cfg, VisualizeConfig) else VisualizeConfig()


def set_visualize_config(data: RunData, config: VisualizeConfig) -> None:
    """Use ``config`` for this app's visualizations (default :class:`VisualizeConfig`; it is part of
    ``run_visualize``'s cache key, so a result computed with other settings is not shown)."""
    with data._memo_lock:
        data._memo["visualize_config"] = config


def visualization_cached(data: RunData, layer: str, unit: int) -> bool:
    """Whether ``run_visualize`` has a result file for the unit (``<run>/cache/visualize``)."""
    return (data.run.cache_dir / "visualize" / layer / f"{int(unit)}.npz").is_file()


def visualization(data: RunData, layer: str, unit: int, *, compute: bool = True) -> Visualization | None:
    """The unit's visualization (:func:`interp.analysis.visualize.run_visualize`, cached in the
    run directory); None when it is not cached and ``compute`` is False."""
    if not compute and not visualization_cached(data, layer, unit):
        return None
    with _LOCK:
        return run_visualize(data.run, layer, int(unit), model=data.model, config=_visualize_config(data))


# --------------------------------------------------------------------------------------------
# attribution on a clip
# --------------------------------------------------------------------------------------------
def _attribution_path(data: RunData, layer: str, unit: int, clip_id: str) -> Path:
    return data.run.cache_dir / "attribution" / layer / f"{int(unit)}.{clip_id}.npz"


def _attribution_key(data: RunData, layer: str, unit: int, clip_id: str) -> str:
    meta = data.run.meta
    return json.dumps(
        {
            "format": _FORMAT,
            "weights_sha256": meta.get("weights_sha256"),
            "settings": meta.get("settings"),
            "layer": layer,
            "unit": int(unit),
            "clip_id": clip_id,
            "options": ATTRIBUTION_OPTIONS,
        },
        sort_keys=True,
        default=str,
    )


def _save(path: Path, key: str, a: Attribution) -> None:
    buf = io.BytesIO()
    np.savez(
        buf,
        key=np.array(key),
        map=a.map,
        evaluated=a.evaluated,
        time_edges_s=a.time_edges_s,
        freq_edges_hz=a.freq_edges_hz,
        top_mask=a.top_mask,
        top_audio=a.top_audio,
        complement_audio=a.complement_audio,
        scalars=np.array([a.baseline_activation, *a.frames, *a.frame_times_s, a.sample_rate_hz], dtype=np.float64),
        names=np.array([a.layer, a.method, a.target]),
        unit=np.array(int(a.unit)),
    )
    atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, key: str) -> Attribution | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            base, f0, f1, t0, t1, sr = (float(v) for v in z["scalars"])
            layer, method, target = (str(v) for v in z["names"])
            return Attribution(
                map=z["map"],
                evaluated=z["evaluated"],
                time_edges_s=z["time_edges_s"],
                freq_edges_hz=z["freq_edges_hz"],
                baseline_activation=base,
                top_mask=z["top_mask"],
                top_audio=z["top_audio"],
                complement_audio=z["complement_audio"],
                layer=layer,
                unit=int(z["unit"]),
                method=method,
                target=target,
                frames=(int(f0), int(f1)),
                frame_times_s=(t0, t1),
                sample_rate_hz=int(sr) if math.isfinite(sr) else 22050,
            )
    except (OSError, KeyError, ValueError):
        return None


def attribution_cached(data: RunData, layer: str, unit: int, clip_id: str) -> Attribution | None:
    """The cached attribution of the unit on the clip, or None."""
    path = _attribution_path(data, layer, unit, clip_id)
    return _load(path, _attribution_key(data, layer, unit, clip_id)) if path.is_file() else None


def attribution(data: RunData, layer: str, unit: int, clip_id: str, *, compute: bool = True) -> Attribution | None:
    """The unit's attribution on one of the run's clips (:func:`run_attribution` with
    :data:`ATTRIBUTION_OPTIONS`), cached in the run directory; None when it is not cached and
    ``compute`` is False."""
    got = attribution_cached(data, layer, unit, clip_id)
    if got is not None or not compute:
        return got
    with _LOCK:
        a = run_attribution(data.run, layer, int(unit), clip_id, model=data.model, **ATTRIBUTION_OPTIONS)
        _save(_attribution_path(data, layer, unit, clip_id), _attribution_key(data, layer, unit, clip_id), a)
    return a
