"""On-demand unit portraits, cached in the run directory: what a unit wants to hear, attribution.

:func:`visualization` is :func:`interp.analysis.visualize.run_visualize` and :func:`attribution`
is :func:`interp.analysis.attribution_cache.cached_run_attribution` with
:data:`ATTRIBUTION_OPTIONS`: both keep their results in ``<run>/cache`` under a key of the weights
and the settings. Neither is computed while a page is built: the unit page's buttons :func:`start`
them as background jobs (daemon threads, one computing at a time: two cores) and the page polls
:func:`job_state` until the result is cached, then shows it; a cached result is shown at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from interp.analysis.attribution import Attribution
from interp.analysis.attribution_cache import cached_attribution, cached_run_attribution
from interp.analysis.visualize import Visualization, VisualizeConfig, run_visualize

if TYPE_CHECKING:
    from dashboard.data import RunData

__all__ = [
    "ATTRIBUTION_OPTIONS",
    "set_visualize_config",
    "visualization_cached",
    "visualization",
    "attribution_cached",
    "attribution",
    "start",
    "job_state",
]

#: Settings of the attribution shown (``run_attribution``'s keywords; part of the cache key).
ATTRIBUTION_OPTIONS: dict[str, Any] = {"method": "occlusion", "target": "peak", "n_time": 32, "n_freq": 16}


# --------------------------------------------------------------------------------------------
# background jobs: a daemon thread each, one computing at a time (two cores)
# --------------------------------------------------------------------------------------------
class _Jobs:
    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards ``state``
        self.one_at_a_time = threading.Lock()
        self.state: dict[str, tuple[str, str]] = {}


def _jobs(data: RunData) -> _Jobs:
    return data._cached("portrait_jobs", _Jobs)


def start(data: RunData, key: str, work: Callable[[], Any]) -> None:
    """Run ``work`` in the background unless a job of this ``key`` is running or has succeeded
    (a failed one is started again)."""
    jobs = _jobs(data)
    with jobs.lock:
        if jobs.state.get(key, ("none", ""))[0] in ("running", "done"):
            return
        jobs.state[key] = ("running", "")

    def run() -> None:
        try:
            with jobs.one_at_a_time:
                work()
        except Exception as err:  # shown on the card, which offers to start again
            outcome = ("failed", f"{type(err).__name__}: {err}")
        else:
            outcome = ("done", "")
        with jobs.lock:
            jobs.state[key] = outcome

    threading.Thread(target=run, name=f"dashboard-{key}", daemon=True).start()


def job_state(data: RunData, key: str) -> tuple[str, str]:
    """``("none" | "running" | "done" | "failed", message)`` of the job ``key``."""
    jobs = _jobs(data)
    with jobs.lock:
        return jobs.state.get(key, ("none", ""))


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
    return run_visualize(data.run, layer, int(unit), model=data.model, config=_visualize_config(data))


# --------------------------------------------------------------------------------------------
# attribution on a clip
# --------------------------------------------------------------------------------------------
def attribution_cached(data: RunData, layer: str, unit: int, clip_id: str) -> Attribution | None:
    """The cached attribution of the unit on the clip, or None."""
    return cached_attribution(data.run, layer, int(unit), clip_id, **ATTRIBUTION_OPTIONS)


def attribution(data: RunData, layer: str, unit: int, clip_id: str, *, compute: bool = True) -> Attribution | None:
    """The unit's attribution on one of the run's clips (cached in the run directory); None when
    it is not cached and ``compute`` is False."""
    if not compute:
        return attribution_cached(data, layer, unit, clip_id)
    return cached_run_attribution(data.run, layer, int(unit), clip_id, model=data.model, **ATTRIBUTION_OPTIONS)
