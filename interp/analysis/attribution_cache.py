"""Attributions of a run's clips, cached in the run directory.

:func:`cached_run_attribution` is :func:`interp.analysis.attribution.run_attribution` with a
cache: ``<run>/cache/attribution/<layer>/<unit>.<clip_id>.npz``, stored under a key of the run's
weights and settings, the unit, the clip and the attribution's options (a file whose key does
not match is recomputed and replaced). :func:`cached_attribution` only reads. The dashboard's
attribution card and anything else that shows a unit's attribution more than once use these,
as :func:`interp.analysis.visualize.run_visualize` caches visualizations.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from interp.analysis.attribution import Attribution, run_attribution
from interp.run.store import Run, open_run, read_keyed_arrays, write_keyed_arrays

__all__ = ["attribution_path", "cached_attribution", "cached_run_attribution"]

#: Version of the cache files (part of their key).
FORMAT = 1


def attribution_path(run: Run, layer: str, unit: int, clip_id: str) -> Path:
    """Where the attribution of ``layer:unit`` on ``clip_id`` is cached."""
    return run.cache_dir / "attribution" / layer / f"{int(unit)}.{clip_id}.npz"


def _key(run: Run, layer: str, unit: int, clip_id: str, options: dict[str, Any]) -> str:
    meta = run.meta
    return json.dumps(
        {
            "format": FORMAT,
            "weights_sha256": meta.get("weights_sha256"),
            "settings": meta.get("settings"),
            "layer": layer,
            "unit": int(unit),
            "clip_id": clip_id,
            "options": options,
        },
        sort_keys=True,
        default=str,
    )


def _save(path: Path, key: str, a: Attribution) -> None:
    arrays = {
        name: getattr(a, name)
        for name in ("map", "evaluated", "time_edges_s", "freq_edges_hz", "top_mask", "top_audio", "complement_audio")
    }
    scalars = np.array([a.baseline_activation, *a.frames, *a.frame_times_s, a.sample_rate_hz], dtype=np.float64)
    names = np.array([a.layer, a.method, a.target])
    write_keyed_arrays(path, key, arrays | {"scalars": scalars, "names": names, "unit": np.array(int(a.unit))})


def _load(path: Path, key: str) -> Attribution | None:
    z = read_keyed_arrays(path, key)
    if z is None:
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


def cached_attribution(
    run: Run | str | os.PathLike, layer: str, unit: int, clip_id: str, **options: Any
) -> Attribution | None:
    """The cached attribution of ``layer:unit`` on ``clip_id`` with these ``options``
    (:func:`~interp.analysis.attribution.attribute_unit`'s keywords), or None; computes nothing."""
    run = open_run(run)
    path = attribution_path(run, layer, unit, clip_id)
    return _load(path, _key(run, layer, unit, clip_id, options)) if path.is_file() else None


def cached_run_attribution(
    run: Run | str | os.PathLike, layer: str, unit: int, clip_id: str, *, model: Any = None, **options: Any
) -> Attribution:
    """:func:`~interp.analysis.attribution.run_attribution`, read from the run's cache when it is
    current, else computed and cached."""
    run = open_run(run)
    got = cached_attribution(run, layer, unit, clip_id, **options)
    if got is not None:
        return got
    a = run_attribution(run, layer, int(unit), clip_id, model=model, **options)
    _save(attribution_path(run, layer, unit, clip_id), _key(run, layer, unit, clip_id, options), a)
    return a
