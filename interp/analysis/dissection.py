"""Temporal dissection: every unit against time-stamped sound events (the NetDissect of sound).

NetDissect (Bau et al. 2017) made unit interpretability a measurement: threshold each unit at a
top quantile of its activations over the dataset and score the overlap (IoU) of its
above-threshold region with annotated concept masks. Here the masks are *time spans*: a unit's
above-threshold frames against the spans of each concept's events, over a corpus with strong
labels (``path, onset_s, offset_s, label``; :mod:`interp.corpus.events`).

Per layer the computation streams the corpus twice (memory independent of its size):

1. **Threshold.** Each unit's ``quantile`` (default 0.95: its top 5 %) over the *valid* frames
   (:func:`soundnet.geometry.valid_frames`) of a random subset of the clips (a quarter, at
   least 64 or all), from a uniform sample of at most ``sample_values`` activations per layer.
2. **Overlap.** (The decoding and forward passes run a few batches ahead on ``lanes`` threads.)
   A frame stands for its hop-centred span (``[centre - hop / 2, centre + hop /
   2)``, :func:`soundnet.geometry.frames_to_time`); it belongs to a concept when its centre lies
   inside one of the concept's events. Per (unit, concept), over every valid frame of the
   corpus: the intersection ``I`` of the unit's above-threshold frames with the concept's, the
   union, ``iou = I / union``, ``precision = I / above``, ``recall = I / concept frames``.

Two nulls answer two questions:

- **Alignment** (``p_time``): does the unit fire at these events at all? Each clip's event spans
  are shifted circularly in time (over its valid frames) by a uniform random lag. The
  intersection under every lag is a circular cross-correlation (computed exactly by FFT), so
  the null's mean and variance per clip are exact; the clips' lags are independent, and the
  one-sided p is the tail of the corpus total (a sum over clips) from its exact mean, variance
  and skewness (a normal tail with the first Edgeworth correction).
- **Specificity** (``p_label``): does it fire at *this* concept's events more than at other
  events? The concept labels are permuted across the annotated events, within each clip that
  holds events of at least two labels (the others are pooled across clips). The statistic is
  the share of the concept's event frames on which the unit is above threshold; its null mean
  and standard deviation come from ``n_label_permutations`` permutations, and the one-sided p
  is their normal tail.

Each null gets Benjamini-Hochberg q over units x concepts (per layer set, all layers together).
A unit is labelled with a concept (``status = "concept"``) only when both q are below
``q_max``; a unit whose events pass the alignment null but no concept passes specificity is a
detector of *events*, not of a concept (``"events"``); otherwise ``"unlabelled"``.

Also per (unit, concept): the **onset-aligned profile**, the unit's mean activation (not
thresholded) in 50 ms bins from 1 s before to 2 s after each of the concept's onsets.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import fft as sfft
from scipy import stats as sps

from interp.analysis import stats
from interp.corpus.corpora import read_clip
from soundnet.audio import INPUT_SCALE, fit_length
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time, min_samples, valid_frames
from soundnet.model import CONV_LAYERS

__all__ = [
    "DISSECTION_COLUMNS",
    "DissectConfig",
    "Dissection",
    "DISSECTION_TABLES",
    "dissect",
    "dissection_labels",
    "format_dissection",
    "run_dissection",
]

#: Columns of ``dissection.parquet``, one row per (layer, unit, concept).
DISSECTION_COLUMNS = (
    "layer",
    "unit",
    "concept",
    "iou",
    "iou_null_time",
    "iou_null_label",
    "p_time",
    "q_time",
    "p_label",
    "q_label",
    "precision",
    "recall",
    "threshold",
    "quantile",
    "n_events",
    "concept_frames",
    "above_frames",
)


@dataclass(frozen=True)
class DissectConfig:
    """Options of :func:`dissect` (stored with the tables).

    Attributes
    ----------
    layers : tuple of str
        Conv layers to dissect (default conv1..conv7).
    quantile : float
        Each unit's threshold: this quantile of its valid-frame activations (0.95: the top 5 %
        of frames are "firing"; NetDissect used 0.995 for image pixels).
    threshold_fraction : float
        Share of the clips (a random subset, at least ``threshold_min_clips``) whose frames set
        the thresholds.
    threshold_min_clips : int
    sample_values : int
        At most this many activations (frames x units) per layer are kept to set the thresholds
        (a uniform sample of frames); bounds the memory of the first pass.
    n_label_permutations : int
        Label permutations of the specificity null.
    profile_window_s : tuple of float
        Onset-aligned profile window, seconds relative to the onset.
    profile_bin_s : float
        Its bin width in seconds.
    min_inside : float
        Valid frames: at least this fraction of the receptive field inside the clip (default
        1: the whole field; the alignment null shifts events circularly, also onto the clip's
        edges, where frames that read some padding respond unlike the others and would make
        the null conservative).
    batch_size : int
        Clips per forward pass (clips of equal length are batched together).
    lanes : int
        Threads that decode and run the model, each single-threaded (as the recorder's lanes),
        while this thread accumulates; the results are taken in corpus order (the tables do not
        depend on it).
    q_max : float
        Both q below this for a concept label.
    seed : int
    """

    layers: tuple[str, ...] = tuple(CONV_LAYERS)
    quantile: float = 0.95
    threshold_fraction: float = 0.1
    threshold_min_clips: int = 64
    sample_values: int = 20_000_000
    n_label_permutations: int = 200
    profile_window_s: tuple[float, float] = (-1.0, 2.0)
    profile_bin_s: float = 0.05
    min_inside: float = 1.0
    batch_size: int = 8
    lanes: int = 2
    q_max: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [layer for layer in self.layers if layer not in CONV_LAYERS]
        if bad or not self.layers:
            raise ParameterError(
                f"The 'layers' parameter of DissectConfig must name conv layers from {list(CONV_LAYERS)}. "
                f"Got {list(self.layers)} instead."
            )
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers), key=list(CONV_LAYERS).index)))
        if not 0 < self.quantile < 1:
            raise ParameterError(
                f"The 'quantile' parameter of DissectConfig must be in (0, 1). Got {self.quantile!r} instead."
            )
        if not 0 < self.threshold_fraction <= 1:
            raise ParameterError(
                f"The 'threshold_fraction' parameter of DissectConfig must be in (0, 1]. Got {self.threshold_fraction!r} instead."
            )
        lo, hi = self.profile_window_s
        if not lo < 0 < hi or self.profile_bin_s <= 0:
            raise ParameterError(
                "The 'profile_window_s' parameter of DissectConfig must hold a negative start and a positive end, "
                f"and 'profile_bin_s' must be > 0. Got {self.profile_window_s!r} and {self.profile_bin_s!r} instead."
            )
        for name in ("n_label_permutations", "batch_size", "threshold_min_clips", "sample_values"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(
                    f"The '{name}' parameter of DissectConfig must be >= 1. Got {getattr(self, name)!r} instead."
                )


@dataclass
class Dissection:
    """What :func:`dissect` measured.

    Attributes
    ----------
    table : DataFrame
        One row per (layer, unit, concept), columns :data:`DISSECTION_COLUMNS`.
    profiles : DataFrame
        ``layer, unit, concept, t_s, activation``: the onset-aligned profile (``t_s`` the bin
        centre in seconds from the onset).
    units : DataFrame
        Per unit its best concept and label status (:func:`dissection_labels`).
    config : DissectConfig
    n_clips : int
        Clips dissected (with at least one valid frame in some layer).
    """

    table: pd.DataFrame
    profiles: pd.DataFrame
    units: pd.DataFrame
    config: DissectConfig
    n_clips: int
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# the forward passes
# ------------------------------------------------------------------------------------------
def _clip_batches(
    model: Any, clips: pd.DataFrame, layers: Sequence[str], batch_size: int, *, lanes: int = 1
) -> Iterator[tuple[str, int, dict[str, np.ndarray]]]:
    """``(clip_id, clip_samples, {layer: (units, frames) float32})`` for every clip, in corpus
    order. Clips are decoded and run in jobs of ``batch_size`` rows (batched by equal padded
    length; clips shorter than one conv7 frame are padded with silence, as the recorder's
    ``short="pad"``), on ``lanes`` threads that each run torch single-threaded (as the
    recorder's lanes), at most ``2 * lanes`` jobs ahead of the consumer."""
    rows = clips.to_dict("records")
    jobs = [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]
    if lanes <= 1:
        for job in jobs:
            yield from _run_job(model, job, layers)
        return
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def run(job: list[dict]) -> list[tuple[str, int, dict[str, np.ndarray]]]:
        if not getattr(local, "single", False):
            torch.set_num_threads(1)
            local.single = True
        return list(_run_job(model, job, layers))

    threads_before = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="dissect-lane") as pool:
            pending = [pool.submit(run, job) for job in jobs[: 2 * lanes]]
            nxt = len(pending)
            while pending:
                done = pending.pop(0).result()
                if nxt < len(jobs):
                    pending.append(pool.submit(run, jobs[nxt]))
                    nxt += 1
                yield from done
    finally:
        torch.set_num_threads(threads_before)  # (where the setting is process-wide)


def _run_job(model: Any, job: list[dict], layers: Sequence[str]) -> Iterator[tuple[str, int, dict[str, np.ndarray]]]:
    """One job's clips: decoded, grouped by padded length, run, in the job's order."""
    need = min_samples("conv7")
    waves: dict[int, list[tuple[str, int, np.ndarray]]] = {}
    order: list[str] = []
    for row in job:
        y = np.asarray(read_clip(row), dtype=np.float32)
        if len(y) == 0:
            continue
        w = fit_length(y, min_samples=need, policy="pad")
        waves.setdefault(len(w), []).append((str(row["clip_id"]), len(y), w))
        order.append(str(row["clip_id"]))
    out = {item[0]: item for group in waves.values() for item in _run_batch(model, group, layers)}
    for cid in order:
        yield out[cid]


def _run_batch(
    model: Any, group: list[tuple[str, int, np.ndarray]], layers: Sequence[str]
) -> Iterator[tuple[str, int, dict[str, np.ndarray]]]:
    x = torch.from_numpy(np.stack([w for _, _, w in group]) * INPUT_SCALE).unsqueeze(1)
    with torch.inference_mode():
        feats = model.extract_features(x, layers=list(layers))
    for i, (cid, n, _) in enumerate(group):
        yield cid, n, {layer: feats[layer][i].float().numpy() for layer in layers}


def _event_arrays(events: pd.DataFrame, concepts: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per clip id: ``(onset_s, offset_s, concept index)`` arrays of its events."""
    index = {c: i for i, c in enumerate(concepts)}
    out = {}
    for cid, g in events.groupby("clip_id", sort=False):
        out[str(cid)] = (
            g["onset_s"].to_numpy(np.float64),
            g["offset_s"].to_numpy(np.float64),
            g["label"].astype(str).map(index).to_numpy(np.int64),
        )
    return out


# ------------------------------------------------------------------------------------------
# per-layer accumulators
# ------------------------------------------------------------------------------------------
class _LayerAccumulator:
    """Overlap counts, the time null's moments, per-event hits and onset profiles of one layer."""

    def __init__(self, layer: str, threshold: np.ndarray, n_concepts: int, cfg: DissectConfig) -> None:
        self.layer = layer
        self.thr = threshold.astype(np.float32)
        self.min_inside = cfg.min_inside
        u, k = len(threshold), n_concepts
        self.k = k
        self.inter = np.zeros((u, k))
        self.above = np.zeros(u)
        self.concept_frames = np.zeros(k)
        self.null_mean = np.zeros((u, k))
        self.null_var = np.zeros((u, k))
        self.null_mu3 = np.zeros((u, k))
        self.hits: list[np.ndarray] = []  # per event (u,): above-threshold frames inside it
        self.event_len: list[int] = []
        self.event_label: list[int] = []
        self.event_stratum: list[int] = []
        lo, hi = cfg.profile_window_s
        self.edges = np.arange(lo, hi + 1e-9, cfg.profile_bin_s)
        n_bins = len(self.edges) - 1
        self.prof_sum = np.zeros((k, u, n_bins))
        self.prof_n = np.zeros((k, n_bins))
        self.n_clips = 0

    def add(self, acts: np.ndarray, clip_samples: int, events: tuple | None, stratum: int) -> None:
        """Fold in one clip: ``acts`` (units, frames) of its (padded) input."""
        ok = valid_frames(
            max(int(clip_samples), min_samples("conv7")),
            self.layer,
            clip_samples=clip_samples,
            min_inside=self.min_inside,
        )[: acts.shape[1]]
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            return
        self.n_clips += 1
        a = acts[:, idx]
        above = (a > self.thr[:, None]).astype(np.float64)  # (u, t)
        self.above += above.sum(axis=1)
        t = len(idx)
        centre = np.asarray(frames_to_time(idx, self.layer), dtype=np.float64)
        emask = np.zeros((t, self.k))
        if events is not None:
            on, off, lab = events
            inside = (centre[:, None] >= on[None, :]) & (centre[:, None] < off[None, :])  # (t, n_ev)
            for c in range(self.k):
                sel = lab == c
                if sel.any():
                    emask[:, c] = inside[:, sel].any(axis=1)
            # per-event hits (specificity null) and onset profiles
            for e in range(len(on)):
                frames = inside[:, e]
                if frames.any():
                    self.hits.append(above[:, frames].sum(axis=1).astype(np.float32))
                    self.event_len.append(int(frames.sum()))
                    self.event_label.append(int(lab[e]))
                    self.event_stratum.append(stratum)
                # frames are in time order, so each bin's frames are consecutive: sums by reduceat
                lo, hi = np.searchsorted(centre - on[e], [self.edges[0], self.edges[-1]], side="left")
                if hi > lo:
                    b = np.searchsorted(self.edges, centre[lo:hi] - on[e], side="right") - 1
                    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
                    self.prof_sum[lab[e]][:, b[starts]] += np.add.reduceat(a[:, lo:hi], starts, axis=1)
                    self.prof_n[lab[e]][b[starts]] += np.diff(np.r_[starts, hi - lo])
        self.concept_frames += emask.sum(axis=0)
        self.inter += above @ emask
        # the time null: every circular lag of the events over the clip's valid frames
        sa, se = above.sum(axis=1), emask.sum(axis=0)
        if t > 1 and se.any():
            fa = sfft.rfft(above.astype(np.float32), axis=1, workers=-1)
            fe = sfft.rfft(emask.T.astype(np.float32), axis=1, workers=-1)
            # the intersection at every lag (a circular cross-correlation), (u, k, t)
            xc = sfft.irfft(fa[:, None, :] * np.conj(fe)[None, :, :], n=t, axis=2, workers=-1)
            m = sa[:, None] * se[None, :] / t
            self.null_mean += m
            d = xc - m[:, :, None].astype(np.float32)
            d2 = d * d
            self.null_var += np.maximum(d2.mean(axis=2, dtype=np.float64), 0.0)
            self.null_mu3 += (d2 * d).mean(axis=2, dtype=np.float64)
        else:
            self.null_mean += above @ emask  # a clip of one frame cannot shift


def _thresholds(model: Any, clips: pd.DataFrame, cfg: DissectConfig) -> dict[str, np.ndarray]:
    """Each unit's ``quantile`` over the valid frames of a random subset of the clips."""
    rng = np.random.default_rng(cfg.seed)
    n = len(clips)
    take = min(n, max(cfg.threshold_min_clips, math.ceil(cfg.threshold_fraction * n)))
    subset = clips.iloc[np.sort(rng.choice(n, size=take, replace=False))]
    frames_total = {layer: 0 for layer in cfg.layers}
    dur = subset["duration_s"].to_numpy(np.float64) if "duration_s" in subset else np.full(take, np.nan)
    for d in dur:
        if np.isfinite(d):
            ns = int(round(d * SAMPLE_RATE_HZ))
            for layer in cfg.layers:
                frames_total[layer] += int(
                    valid_frames(max(ns, min_samples("conv7")), layer, clip_samples=ns, min_inside=cfg.min_inside).sum()
                )
    samples: dict[str, list[np.ndarray]] = {layer: [] for layer in cfg.layers}
    for _, ns, feats in _clip_batches(model, subset, cfg.layers, cfg.batch_size, lanes=cfg.lanes):
        for layer, a in feats.items():
            ok = valid_frames(max(ns, min_samples("conv7")), layer, clip_samples=ns, min_inside=cfg.min_inside)[
                : a.shape[1]
            ]
            v = a[:, ok]
            cap = cfg.sample_values // max(1, a.shape[0])
            total = frames_total[layer] or cap
            if total > cap:  # a uniform sample of the frames, about cap in all
                v = v[:, rng.random(v.shape[1]) < cap / total]
            samples[layer].append(v)
    out = {}
    for layer, parts in samples.items():
        v = np.concatenate(parts, axis=1) if parts else np.zeros((0, 0))
        if v.size == 0:
            raise ParameterError(
                f"No clip has a valid {layer} frame: dissect a corpus of longer clips, or leave {layer} out."
            )
        out[layer] = np.quantile(v, cfg.quantile, axis=1)
    return out


# ------------------------------------------------------------------------------------------
# the whole computation
# ------------------------------------------------------------------------------------------
def dissect(
    model: Any,
    clips: pd.DataFrame,
    events: pd.DataFrame,
    *,
    config: DissectConfig | None = None,
    **options: Any,
) -> Dissection:
    """Dissect every unit of ``config.layers`` against the events (see the module docstring).

    Parameters
    ----------
    model : SoundNet8 (or anything with its ``extract_features(x, layers=...)``)
    clips : DataFrame
        A corpus table (:func:`interp.corpus.corpora.load_corpus`): ``clip_id, path`` and
        optionally ``start_s, end_s, duration_s``.
    events : DataFrame
        ``clip_id, onset_s, offset_s, label``: events in each clip's own time (seconds).
    config : DissectConfig, optional
    **options
        :class:`DissectConfig` fields.

    Returns
    -------
    Dissection
    """
    base = config or DissectConfig()
    cfg = DissectConfig(**(asdict(base) | options)) if options else base
    need = {"clip_id", "onset_s", "offset_s", "label"}
    if not need <= set(events.columns):
        raise ParameterError(
            f"The 'events' parameter of dissect must have columns {sorted(need)}. Got {list(events.columns)} instead."
        )
    ev = events[events["clip_id"].astype(str).isin(set(clips["clip_id"].astype(str)))]
    concepts = sorted(ev["label"].astype(str).unique())
    if not concepts:
        raise ParameterError("The 'events' parameter of dissect holds no event of the clips dissected.")
    per_clip = _event_arrays(ev, concepts)
    thresholds = _thresholds(model, clips, cfg)
    acc = {layer: _LayerAccumulator(layer, thresholds[layer], len(concepts), cfg) for layer in cfg.layers}
    strata = _label_strata(per_clip)
    n_clips = 0
    for cid, ns, feats in _clip_batches(model, clips, cfg.layers, cfg.batch_size, lanes=cfg.lanes):
        n_clips += 1
        for layer, a in feats.items():
            acc[layer].add(a, ns, per_clip.get(cid), strata.get(cid, -1))
    rng = np.random.default_rng(cfg.seed + 1)
    rows, profiles = [], []
    for layer in cfg.layers:
        t, p = _layer_table(acc[layer], concepts, cfg, rng)
        rows.append(t)
        profiles.append(p)
    table = pd.concat(rows, ignore_index=True)
    table["q_time"] = stats.bh_qvalues(table["p_time"].to_numpy())
    table["q_label"] = stats.bh_qvalues(table["p_label"].to_numpy())
    table = table[list(DISSECTION_COLUMNS)]
    table.attrs["dissection"] = asdict(cfg) | {"concepts": concepts}
    return Dissection(
        table,
        pd.concat(profiles, ignore_index=True),
        dissection_labels(table, q_max=cfg.q_max),
        cfg,
        n_clips,
        {"concepts": concepts, "n_events": int(len(ev))},
    )


def _label_strata(per_clip: dict[str, tuple]) -> dict[str, int]:
    """The stratum of each clip's events in the label permutations: its own (a clip with events
    of at least two labels) or the shared stratum -1 (the other clips' events, pooled)."""
    out, s = {}, 0
    for cid, (_, _, lab) in per_clip.items():
        if len(np.unique(lab)) >= 2:
            out[cid] = s
            s += 1
        else:
            out[cid] = -1
    return out


def _layer_table(
    acc: _LayerAccumulator, concepts: list[str], cfg: DissectConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    u, k = acc.inter.shape
    inter, above, cf = acc.inter, acc.above[:, None], acc.concept_frames[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        union = above + cf - inter
        iou = np.where(union > 0, inter / union, np.nan)
        precision = np.where(above > 0, inter / above, np.nan)
        recall = np.where(cf > 0, inter / cf, np.nan)
        m, sd = acc.null_mean, np.sqrt(acc.null_var)
        z_time = np.where(sd > 0, (inter - m) / sd, np.where(inter > m, np.inf, -np.inf))
        iou_null_time = m / (above + cf - m)
        skew = np.where(sd > 0, acc.null_mu3 / sd**3, 0.0)
    p_time = _edgeworth_sf(z_time, skew)
    p_time[:, cf[0] == 0] = np.nan
    # the specificity null: labels permuted across events within strata
    p_label = np.full((u, k), np.nan)
    iou_null_label = np.full((u, k), np.nan)
    n_events = np.bincount(np.asarray(acc.event_label, dtype=np.int64), minlength=k) if acc.event_label else np.zeros(k)
    if acc.hits and len(set(acc.event_label)) >= 2:
        h = np.stack(acc.hits, axis=1).astype(np.float64)  # (u, n_ev)
        length = np.asarray(acc.event_len, dtype=np.float64)
        lab = np.asarray(acc.event_label, dtype=np.int64)
        strat = np.asarray(acc.event_stratum, dtype=np.int64)
        onehot = np.eye(k)[lab]  # (n_ev, k)
        obs = (h @ onehot) / np.maximum(length @ onehot, 1.0)
        b = cfg.n_label_permutations
        perm_lab = np.empty((b, len(lab)), dtype=np.int64)
        for s in np.unique(strat):
            members = np.flatnonzero(strat == s)
            keys = rng.random((b, len(members)))
            perm_lab[:, members] = lab[members][np.argsort(keys, axis=1)]
        oh = np.eye(k)[perm_lab]  # (b, n_ev, k)
        num = np.einsum("ue,bek->buk", h, oh)
        den = np.maximum(np.einsum("e,bek->bk", length, oh), 1.0)[:, None, :]
        null = num / den  # (b, u, k)
        mu, sdl = null.mean(axis=0), null.std(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(sdl > 0, (obs - mu) / sdl, np.where(obs > mu, np.inf, -np.inf))
            i_null = (num.mean(axis=0)) / (above + np.maximum(den[:, 0, :].mean(axis=0), 1.0) - num.mean(axis=0))
        p_label = sps.norm.sf(z)
        p_label[:, n_events == 0] = np.nan
        iou_null_label = i_null
    table = pd.DataFrame(
        {
            "layer": acc.layer,
            "unit": np.repeat(np.arange(u), k).astype(np.int64),
            "concept": np.tile(np.asarray(concepts, dtype=object), u),
            "iou": iou.ravel(),
            "iou_null_time": iou_null_time.ravel(),
            "iou_null_label": iou_null_label.ravel(),
            "p_time": p_time.ravel(),
            "p_label": p_label.ravel(),
            "precision": precision.ravel(),
            "recall": recall.ravel(),
            "threshold": np.repeat(acc.thr.astype(np.float64), k),
            "quantile": cfg.quantile,
            "n_events": np.tile(n_events, u).astype(np.int64),
            "concept_frames": np.tile(acc.concept_frames, u).astype(np.int64),
            "above_frames": np.repeat(acc.above, k).astype(np.int64),
        }
    )
    centres = (acc.edges[:-1] + acc.edges[1:]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = acc.prof_sum / acc.prof_n[:, None, :]  # (k, u, bins)
    profiles = pd.DataFrame(
        {
            "layer": acc.layer,
            "unit": np.tile(np.repeat(np.arange(u), len(centres)), k).astype(np.int64),
            "concept": np.repeat(np.asarray(concepts, dtype=object), u * len(centres)),
            "t_s": np.tile(centres, u * k),
            "activation": prof.ravel(),
        }
    )
    return table, profiles


def _edgeworth_sf(z: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Upper tail of a standardised sum with skewness ``skew``: the normal tail with its first
    Edgeworth correction, ``1 - Phi(z) + phi(z) * skew / 6 * (z^2 - 1)``, clipped to [0, 1]
    and never below the plain normal tail where the correction would make a right-skewed sum's
    tail lighter (the intersection of sparse firing with sparse events is right-skewed; the
    normal tail alone is liberal for it)."""
    zf = np.where(np.isfinite(z), z, 0.0)
    base = sps.norm.sf(z)
    corr = base + sps.norm.pdf(zf) * skew / 6.0 * (zf**2 - 1.0)
    out = np.where(np.isfinite(z), np.clip(np.maximum(corr, base * (skew <= 0)), 0.0, 1.0), base)
    return out


def dissection_labels(table: pd.DataFrame, *, q_max: float = 0.05) -> pd.DataFrame:
    """Per unit: its best concept (highest IoU among those passing both nulls, else highest
    IoU) and status: ``concept`` (both q below ``q_max``), ``events`` (some concept passes the
    alignment null but none the specificity null: it fires at events, not at a concept), or
    ``unlabelled``.

    Returns
    -------
    DataFrame ``layer, unit, status, concept, iou, q_time, q_label, n_concepts``
    (``n_concepts``: concepts passing both nulls).
    """
    t = table.assign(
        _both=(table["q_time"] < q_max) & (table["q_label"] < q_max),
        _time=table["q_time"] < q_max,
        _iou=table["iou"].fillna(-1.0),
    )
    t = t.sort_values(["layer", "unit", "_both", "_iou"], ascending=[True, True, False, False], kind="stable")
    best = t.groupby(["layer", "unit"], sort=False).head(1).copy()
    g = t.groupby(["layer", "unit"], sort=False)
    n_both = g["_both"].sum().reindex(pd.MultiIndex.from_frame(best[["layer", "unit"]])).to_numpy()
    any_time = g["_time"].any().reindex(pd.MultiIndex.from_frame(best[["layer", "unit"]])).to_numpy()
    best["status"] = np.where(best["_both"], "concept", np.where(any_time, "events", "unlabelled"))
    best["n_concepts"] = n_both.astype(np.int64)
    order = {name: i for i, name in enumerate(pd.unique(table["layer"]))}
    best = best.assign(_o=best["layer"].map(order)).sort_values(["_o", "unit"], kind="stable")
    return best[["layer", "unit", "status", "concept", "iou", "q_time", "q_label", "n_concepts"]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------
# run level: a corpus or a run directory, an annotation file, tables written
# ------------------------------------------------------------------------------------------
#: The tables :func:`run_dissection` writes.
DISSECTION_TABLES = ("dissection", "dissection_units", "dissection_profiles", "dissection_events")


def run_dissection(
    source: str | os.PathLike,
    events: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    model: Any = None,
    audio_root: str | os.PathLike | None = None,
    config: DissectConfig | None = None,
    **options: Any,
) -> Dissection:
    """Dissect a run's (or a corpus's) clips against an annotation file and write the tables.

    Parameters
    ----------
    source : path
        A run directory (its ok clips are dissected and the tables written into it, where the
        dashboard finds them) or anything :func:`interp.corpus.corpora.load_corpus` reads.
    events : path
        Strong labels (:func:`interp.corpus.events.read_events`: a DCASE-style table, JAMS, or a
        folder of them). Rows it cannot use are reported (a warning naming each) and left out.
    out : path, optional
        Folder of the tables (default: the run directory; required for a corpus).
    model : SoundNet8, optional
        Default: the pretrained model.
    audio_root : path, optional
        Folder the annotation's file names are relative to.
    config : DissectConfig, optional
    **options
        :class:`DissectConfig` fields.

    Returns
    -------
    Dissection
        Also written: ``dissection.parquet`` (:data:`DISSECTION_COLUMNS`),
        ``dissection_units.parquet`` (:func:`dissection_labels`), ``dissection_profiles.parquet``,
        ``dissection_events.parquet`` (the events in each clip's own time: ``clip_id, onset_s,
        offset_s, label``) and ``dissection.json`` (settings, concepts, counts).
    """
    from interp.corpus.corpora import load_corpus
    from interp.corpus.events import events_for_clips, read_events
    from interp.run.store import atomic_write_json, open_run, write_parquet

    path = Path(source)
    if (path / "clips.parquet").is_file() and (path / "run.json").is_file():
        run = open_run(path)
        clips = run.ok_clips.reset_index(drop=True)
        out_dir = Path(out) if out is not None else run.path
    else:
        clips = load_corpus(str(source))
        if out is None:
            raise ParameterError(
                "The 'out' parameter of run_dissection is needed when 'source' is a corpus, not a run."
            )
        out_dir = Path(out)
    table = read_events(events, audio_root=audio_root)
    aligned = events_for_clips(table, clips)
    if model is None:
        from soundnet.model import load_soundnet

        model = load_soundnet()
    res = dissect(_fast(model, config, options), clips, aligned, config=config, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(out_dir / "dissection.parquet", res.table)
    write_parquet(out_dir / "dissection_units.parquet", res.units)
    write_parquet(out_dir / "dissection_profiles.parquet", res.profiles)
    kept = aligned[aligned["clip_id"].astype(str).isin(set(clips["clip_id"].astype(str)))]
    write_parquet(
        out_dir / "dissection_events.parquet",
        kept[["clip_id", "onset_s", "offset_s", "label"]].reset_index(drop=True),
    )
    atomic_write_json(
        out_dir / "dissection.json",
        {
            "settings": asdict(res.config),
            "concepts": res.meta["concepts"],
            "n_clips": res.n_clips,
            "n_events": res.meta["n_events"],
            "events": str(Path(events).resolve()),
            "events_left_out": len(table.problems),
        },
    )
    return res


def _fast(model: Any, config: DissectConfig | None, options: dict) -> Any:
    """The fast inference path of a plain SoundNet8 (same outputs), else the model itself."""
    from soundnet.fast import fast_model
    from soundnet.model import SoundNet8

    if not isinstance(model, SoundNet8):
        return model
    layers = options.get("layers") or (config or DissectConfig()).layers
    try:
        return fast_model(model, layers=tuple(layers))
    except Exception:  # an unusual build: the plain model is exact too
        return model


def format_dissection(res: Dissection, *, top: int = 3) -> str:
    """The text summary ``soundnet-interp dissect`` prints: per layer the units labelled with a
    concept (or with events only), and per concept its best units."""
    u = res.units
    lines = [
        f"dissected {res.n_clips} clips, {res.meta['n_events']} events, concepts: {', '.join(res.meta['concepts'])}",
        f"(threshold: each unit's {res.config.quantile:g} quantile over valid frames; a concept label needs "
        f"q_time and q_label < {res.config.q_max:g})",
    ]
    for layer, g in u.groupby("layer", sort=False):
        n_c, n_e = int((g["status"] == "concept").sum()), int((g["status"] == "events").sum())
        lines.append(f"  {layer:6s} {n_c:5d} / {len(g):<5d} units with a concept, {n_e} fire at events of any kind")
    t = res.table
    for concept in res.meta["concepts"]:
        best = t[(t["concept"] == concept) & (t["q_time"] < res.config.q_max) & (t["q_label"] < res.config.q_max)]
        best = best.sort_values("iou", ascending=False).head(top)
        shown = ", ".join(
            f"{r.layer}:{r.unit} IoU {r.iou:.2f} (q {max(r.q_time, r.q_label):.1g})" for r in best.itertuples()
        )
        lines.append(f"  {concept}: {shown or 'no unit passes both nulls'}")
    return "\n".join(lines)
