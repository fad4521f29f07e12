"""The streamed passes of temporal dissection (:mod:`interp.analysis.dissection`).

The corpus is decoded and run through the model in jobs of a few clips, on threads ("lanes")
that each run torch single-threaded, as the recorder's lanes. What dissection needs from the
activations is computed in the lane too, on the whole batch of a job's clips at once, and only
small per-job summaries travel back: the thresholds pass keeps a bounded uniform sample of the
frames, the overlap pass a :class:`LayerAccumulator` per layer, folded in job order (so the
tables do not depend on the lanes' timing). Memory is bounded by a job's activations and the
per-event counts, never by the corpus.

Every count the overlap pass needs (a unit's above-threshold frames in each event, in each
concept's merged spans, in those spans shifted by each lag of the alignment null, and its
activation summed in each bin of an onset profile) is a difference of prefix sums along time
at a few thousand frame positions (:class:`GroupPrefix`): one pass over the activations,
whatever the number of lags.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import torch

from interp.corpus.corpora import read_clip
from soundnet.audio import INPUT_SCALE, fit_length
from soundnet.errors import ParameterError
from soundnet.geometry import frames_to_time, min_samples, valid_frames

if TYPE_CHECKING:
    from interp.analysis.dissection import DissectConfig

__all__ = ["ClipEvents", "Group", "LayerAccumulator", "clip_events", "clip_lags", "lane_map", "thresholds"]

R = TypeVar("R")


@dataclass(frozen=True)
class Group:
    """Clips of one job that share a length, run as one batch.

    Attributes
    ----------
    positions : list of int
        The clips' rows in the corpus table.
    clip_ids : list of str
    clip_samples : int
        Their length in samples (before the padding of clips shorter than one conv7 frame).
    feats : dict
        ``{layer: (clips, units, frames) float32}``.
    """

    positions: list[int]
    clip_ids: list[str]
    clip_samples: int
    feats: dict[str, np.ndarray]


@dataclass(frozen=True)
class ClipEvents:
    """One clip's events (seconds, concept indices) and, per concept, their union as disjoint
    spans (``span_on_s, span_off_s, span_concept``), computed once for all layers."""

    on_s: np.ndarray
    off_s: np.ndarray
    concept: np.ndarray
    span_on_s: np.ndarray
    span_off_s: np.ndarray
    span_concept: np.ndarray


def clip_events(events: pd.DataFrame, concepts: list[str]) -> dict[str, ClipEvents]:
    """Per clip id its :class:`ClipEvents` (``events``: ``clip_id, onset_s, offset_s, label``)."""
    index = {c: i for i, c in enumerate(concepts)}
    on_all = events["onset_s"].to_numpy(np.float64)
    off_all = events["offset_s"].to_numpy(np.float64)
    lab_all = events["label"].astype(str).map(index).to_numpy(np.int64)
    out = {}
    for cid, rows in events.groupby("clip_id", sort=False).indices.items():
        on, off, lab = on_all[rows], off_all[rows], lab_all[rows]
        spans = [(c, *_merge_spans(on[lab == c], off[lab == c])) for c in np.unique(lab)]
        out[str(cid)] = ClipEvents(
            on,
            off,
            lab,
            np.concatenate([s for _, s, _ in spans]),
            np.concatenate([f for _, _, f in spans]),
            np.concatenate([np.full(len(s), c, dtype=np.int64) for c, s, _ in spans]),
        )
    return out


def _merge_spans(s: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of spans ``[s, f)`` as disjoint sorted spans (empty ones dropped)."""
    keep = f > s
    s, f = s[keep], f[keep]
    if len(s) <= 1:
        return s, f
    o = np.argsort(s, kind="stable")
    s, f = s[o], np.maximum.accumulate(f[o])
    starts = np.flatnonzero(np.r_[True, s[1:] > f[:-1]])
    return s[starts], np.maximum.reduceat(f, starts)


# ------------------------------------------------------------------------------------------
# the forward passes
# ------------------------------------------------------------------------------------------
def lane_map(
    model: Any,
    clips: pd.DataFrame,
    layers: Sequence[str],
    batch_size: int,
    work: Callable[[int, list[Group]], R],
    *,
    lanes: int = 1,
) -> Iterator[R]:
    """``work(job_index, groups)`` for every job of ``batch_size`` corpus rows, in job order.

    Each job's clips are decoded and run in :class:`Group` batches of equal length (clips
    shorter than one conv7 frame are padded with silence, as the recorder's ``short="pad"``),
    on ``lanes`` threads that each run torch single-threaded, at most ``2 * lanes`` jobs ahead of
    the consumer. ``work`` runs in the lane, so what it computes from the activations runs in
    parallel too, and only its result travels.
    """
    rows = clips.to_dict("records")
    jobs = [(i, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]

    def run(j: int) -> R:
        first, job = jobs[j]
        return work(j, _run_job(model, job, layers, first))

    if lanes <= 1:
        for j in range(len(jobs)):
            yield run(j)
        return
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()

    def lane(j: int) -> R:
        if not getattr(local, "single", False):
            torch.set_num_threads(1)
            local.single = True
        return run(j)

    from threadpoolctl import threadpool_limits

    threads_before = torch.get_num_threads()
    try:  # BLAS single-threaded too: the lanes are the parallelism
        with threadpool_limits(1), ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="dissect-lane") as pool:
            pending = [pool.submit(lane, j) for j in range(min(len(jobs), 2 * lanes))]
            nxt = len(pending)
            while pending:
                done = pending.pop(0).result()
                if nxt < len(jobs):
                    pending.append(pool.submit(lane, nxt))
                    nxt += 1
                yield done
    finally:
        torch.set_num_threads(threads_before)  # (where the setting is process-wide)


def _run_job(model: Any, job: list[dict], layers: Sequence[str], first: int) -> list[Group]:
    """One job's clips: decoded, batched by (padded length, clip length), run."""
    need = min_samples("conv7")
    batches: dict[tuple[int, int], list[tuple[int, str, np.ndarray]]] = {}
    for i, row in enumerate(job):
        y = np.asarray(read_clip(row), dtype=np.float32)
        if len(y) == 0:
            continue
        w = fit_length(y, min_samples=need, policy="pad")
        batches.setdefault((len(w), len(y)), []).append((first + i, str(row["clip_id"]), w))
    out = []
    for (_, n), items in batches.items():
        x = torch.from_numpy(np.stack([w for _, _, w in items]) * INPUT_SCALE).unsqueeze(1)
        with torch.inference_mode():
            feats = model.extract_features(x, layers=list(layers))
        out.append(
            Group(
                [p for p, _, _ in items],
                [c for _, c, _ in items],
                n,
                {layer: feats[layer].float().numpy() for layer in layers},
            )
        )
    return out


@functools.lru_cache(maxsize=512)
def frame_grid(layer: str, clip_samples: int, min_inside: float) -> tuple[int, int, np.ndarray]:
    """``(first, stop, centres_s)``: the valid frames of a clip of ``clip_samples`` samples (as
    run, padded to one conv7 frame) are ``first..stop-1`` (they are consecutive), their
    centres in seconds."""
    ok = valid_frames(max(clip_samples, min_samples("conv7")), layer, clip_samples=clip_samples, min_inside=min_inside)
    idx = np.flatnonzero(ok)
    if len(idx) == 0:
        return 0, 0, np.zeros(0)
    centre = np.asarray(frames_to_time(idx, layer), dtype=np.float64)
    centre.flags.writeable = False
    return int(idx[0]), int(idx[-1]) + 1, centre


def clip_lags(t: int, most: int, seed: int, position: int) -> np.ndarray:
    """The circular lags of the alignment null for a clip of ``t`` valid frames: all of them
    when ``t <= most``, else lag 0 (the observed one) and ``most - 1`` distinct lags drawn
    uniformly from ``1 .. t - 1``, from a random stream of the clip's own (``seed``, its
    ``position`` in the corpus, ``t``). A random set that includes the observed lag keeps the
    randomization test exact (Hemerik & Goeman 2018); a fixed grid would not when ``most`` does
    not divide ``t`` (firing and events rhythmic at ``most`` cycles per clip would pass it)."""
    if t <= most:
        return np.arange(t, dtype=np.int64)
    rng = np.random.default_rng([seed, position, t])
    return np.r_[0, 1 + rng.choice(t - 1, size=most - 1, replace=False)].astype(np.int64)


# ------------------------------------------------------------------------------------------
# prefix sums of a batch along time
# ------------------------------------------------------------------------------------------
class GroupPrefix:
    """Prefix sums along time of ``x`` (clips, units, t), at chosen frame positions of each
    clip, looked up with units last.

    Sparse (the positions are few against ``t``: conv1 on long clips): one ``reduceat`` pass per clip
    over the segments between its positions (exact for 0/1 counts). Dense: one cumulative sum.
    Each clip's table also holds the prefix sums of its periodic extension (positions in
    ``[t, 2 t)``), for circular shifts. ``dtype``: of the sums (float32 is exact for counts of
    0/1 frames, below 2**24).
    """

    def __init__(self, x: np.ndarray, positions: list[np.ndarray] | None, dtype: type = np.float64) -> None:
        b, u, t = x.shape
        self.t = t
        if positions is None:
            n = t + 1
            p = np.zeros((b, 2 * n, u), dtype)
            np.cumsum(x.transpose(0, 2, 1), axis=1, dtype=dtype, out=p[:, 1:n])
            self.total = p[:, n - 1].copy()  # (b, u)
            np.add(p[:, :n], self.total[:, None, :], out=p[:, n:])
            self.table = p.reshape(b * 2 * n, u)
            self.keys = None
            self.n = np.full(b, n)
            self.offset = np.arange(b) * 2 * n
            return
        tables, keys, lengths = [], [], []
        for i in range(b):
            pos = np.unique(np.r_[0, positions[i][positions[i] < t]])
            seg = np.add.reduceat(x[i], pos, axis=1)
            n = len(pos) + 1
            p = np.zeros((2 * n, u), dtype)
            np.cumsum(seg.T, axis=0, dtype=dtype, out=p[1:n])
            np.add(p[:n], p[n - 1], out=p[n:])
            tables.append(p)
            keys.append(i * (t + 1) + pos)
            lengths.append(n)
        self.table = np.concatenate(tables)
        self.keys = np.concatenate(keys)
        self.n = np.asarray(lengths)
        self.offset = np.r_[0, np.cumsum(2 * self.n)[:-1]]
        self.key_start = np.r_[0, np.cumsum(self.n - 1)[:-1]]
        self.total = self.table[self.offset + self.n - 1]

    def rows(self, clip: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Table rows of clips ``clip`` at positions ``x`` in ``[0, t]`` (broadcast)."""
        if self.keys is None:
            return self.offset[clip] + x
        local = np.searchsorted(self.keys, clip * (self.t + 1) + x) - self.key_start[clip]
        return self.offset[clip] + local

    def at(self, clip: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Prefix sums ``(*x.shape, units)`` at positions ``x`` in ``[0, t]``."""
        return self.table[self.rows(clip, x)]

    def circular(self, clip: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Prefix sums of the periodic extension ``(*x.shape, units)`` at ``x`` in ``[0, 2 t)``."""
        wrap = x >= self.t
        return self.table[self.rows(clip, x - self.t * wrap) + self.n[clip] * wrap]


def _prefix(x: np.ndarray, positions: list[np.ndarray], dtype: type = np.float64) -> GroupPrefix:
    """Sparse prefix sums when every clip's positions are few against ``t``, else dense."""
    dense = 4 * max(len(p) for p in positions) >= x.shape[2]
    return GroupPrefix(x, None if dense else positions, dtype)


# ------------------------------------------------------------------------------------------
# per-layer accumulators
# ------------------------------------------------------------------------------------------
class LayerAccumulator:
    """Overlap counts, the time null's moments, per-event hits and onset profiles of one layer.

    Arrays are (concepts, units) or (units,); ``prof_sum`` is (concepts, bins, units). One
    accumulator per job (filled in a lane, :meth:`empty`), folded in job order (:meth:`merge`).
    """

    _SUMS = (
        "inter",
        "above",
        "concept_frames",
        "null_mean",
        "null_mean_all",
        "null_var",
        "null_mu3",
        "prof_sum",
        "prof_n",
    )
    _LISTS = ("hits", "event_len", "event_label", "event_stratum")

    def __init__(self, layer: str, threshold: np.ndarray, n_concepts: int, cfg: DissectConfig) -> None:
        self.layer = layer
        self.thr = threshold.astype(np.float32)
        self.min_inside = cfg.min_inside
        self.null_lags = cfg.null_lags
        self.seed = cfg.seed
        u, k = len(threshold), n_concepts
        self.k = k
        self.inter = np.zeros((k, u))
        self.above = np.zeros(u)
        self.concept_frames = np.zeros(k)
        self.null_mean = np.zeros((k, u))  # over each clip's lags
        self.null_mean_all = np.zeros((k, u))  # over all its lags (exact: above x concept frames / t)
        self.null_var = np.zeros((k, u))
        self.null_mu3 = np.zeros((k, u))
        self.hits: list[np.ndarray] = []  # per group (events, u): above-threshold frames inside each event
        self.event_len: list[np.ndarray] = []
        self.event_label: list[np.ndarray] = []
        self.event_stratum: list[np.ndarray] = []
        lo, hi = cfg.profile_window_s
        self.edges = np.arange(lo, hi + 1e-9, cfg.profile_bin_s)
        self.prof_sum = np.zeros((k, len(self.edges) - 1, u))
        self.prof_n = np.zeros((k, len(self.edges) - 1))
        self.n_clips = 0

    def empty(self) -> LayerAccumulator:
        """A fresh accumulator with the same settings (a job's)."""
        new = object.__new__(LayerAccumulator)
        new.__dict__.update(self.__dict__)
        for name in self._SUMS:
            setattr(new, name, np.zeros_like(getattr(self, name)))
        for name in self._LISTS:
            setattr(new, name, [])
        new.n_clips = 0
        return new

    def merge(self, other: LayerAccumulator) -> None:
        """Fold in a job's accumulator (its clips come after those already folded in)."""
        for name in self._SUMS:
            getattr(self, name).__iadd__(getattr(other, name))
        for name in self._LISTS:
            getattr(self, name).extend(getattr(other, name))
        self.n_clips += other.n_clips

    def add(
        self,
        acts: np.ndarray,
        clip_samples: int,
        events: list[ClipEvents | None],
        strata: list[int],
        positions: list[int],
    ) -> None:
        """Fold in a batch of clips of one length: ``acts`` (clips, units, frames); ``positions``:
        their rows in the corpus (each clip's random lags are its own)."""
        first, stop, centre = frame_grid(self.layer, int(clip_samples), self.min_inside)
        stop = min(stop, acts.shape[2])
        t = stop - first
        if t <= 0:
            return
        self.n_clips += len(acts)
        a = acts[:, :, first:stop]
        above = np.greater(a, self.thr[None, :, None], out=np.empty(a.shape, np.float32), casting="unsafe")
        has = [i for i, e in enumerate(events) if e is not None]
        if len(has) < len(events):
            bare = [i for i, e in enumerate(events) if e is None]
            self.above += above[bare].sum(axis=(0, 2), dtype=np.float64)
        if not has:
            return
        if len(has) < len(events):
            a, above = a[has], above[has]
        evs = [e for e in events if e is not None]
        lags = np.stack([clip_lags(t, self.null_lags, self.seed, positions[i]) for i in has])
        self._add_events(a, above, centre[:t], evs, np.asarray([strata[i] for i in has]), lags)

    def _add_events(
        self,
        a: np.ndarray,
        above: np.ndarray,
        centre: np.ndarray,
        evs: list[ClipEvents],
        strata: np.ndarray,
        lags: np.ndarray,
    ) -> None:
        t, k = above.shape[2], self.k
        n_ev = np.asarray([len(e.on_s) for e in evs])
        n_sp = np.asarray([len(e.span_on_s) for e in evs])
        ev_clip = np.repeat(np.arange(len(evs)), n_ev)
        sp_clip = np.repeat(np.arange(len(evs)), n_sp)
        lab = np.concatenate([e.concept for e in evs])
        on = np.concatenate([e.on_s for e in evs])
        es, ef = np.searchsorted(centre, on), np.searchsorted(centre, np.concatenate([e.off_s for e in evs]))
        ss = np.searchsorted(centre, np.concatenate([e.span_on_s for e in evs]))
        sf = np.searchsorted(centre, np.concatenate([e.span_off_s for e in evs]))
        sc = np.concatenate([e.span_concept for e in evs])
        # (2 spans, lags): every span's end and start shifted by each of its clip's lags, in [0, 2 t)
        end_clip = np.r_[sp_clip, sp_clip]
        ends = np.concatenate([sf, ss])[:, None] + lags[end_clip]
        wanted = [
            np.concatenate([es[ev_clip == i], ef[ev_clip == i], (ends[end_clip == i] % t).ravel()])
            for i in range(len(evs))
        ]
        pre = _prefix(above, wanted, np.float32)  # counts: exact in float32
        self.above += pre.total.sum(axis=0, dtype=np.float64)
        # per event: its above-threshold frames (the specificity null)
        hit = ef > es
        if hit.any():
            h = pre.at(ev_clip[hit], ef[hit]) - pre.at(ev_clip[hit], es[hit])
            self.hits.append(h.astype(np.float32))
            self.event_len.append((ef - es)[hit])
            self.event_label.append(lab[hit])
            self.event_stratum.append(strata[ev_clip[hit]])
        # per (clip, concept): the intersection under each of the clip's lags (lag 0: the observed
        # one), a signed sum of the shifted spans' prefix sums: (pairs, 2 spans) @ (2 spans, lags * u)
        if len(ss):
            pairs, row = np.unique(sp_clip * k + sc, return_inverse=True)
            sign = np.zeros((len(pairs), 2 * len(ss)), np.float32)
            sign[row, np.arange(len(ss))] = 1.0
            sign[row, len(ss) + np.arange(len(ss))] = -1.0
            g = pre.circular(end_clip[:, None], ends)  # (2 spans, lags, u)
            xc = (sign @ g.reshape(len(g), -1)).reshape(len(pairs), lags.shape[1], -1).astype(np.float64)
            to_concept = np.zeros((k, len(pairs)))
            to_concept[pairs % k, np.arange(len(pairs))] = 1.0
            m = xc.mean(axis=1)
            d = xc - m[:, None]
            d2 = d * d
            self.inter += to_concept @ xc[:, 0]
            self.null_mean += to_concept @ m
            self.null_var += to_concept @ d2.mean(axis=1)
            self.null_mu3 += to_concept @ (d2 * d).mean(axis=1)
            frames = np.bincount(row, weights=sf - ss, minlength=len(pairs))  # each pair's concept frames
            self.null_mean_all += to_concept @ (pre.total[pairs // k] * frames[:, None] / t)
            self.concept_frames += np.bincount(sc, weights=sf - ss, minlength=k)
        self._add_profiles(a, centre, on, lab, ev_clip)

    def _add_profiles(
        self, a: np.ndarray, centre: np.ndarray, on: np.ndarray, lab: np.ndarray, ev_clip: np.ndarray
    ) -> None:
        """The activation (not thresholded) summed in each bin around each onset."""
        k, n_bins = self.k, len(self.edges) - 1
        bounds = np.searchsorted(centre, on[:, None] + self.edges[None, :])  # (events, bins + 1)
        onehot = np.zeros((k, len(on)))
        onehot[lab, np.arange(len(on))] = 1.0
        counts = np.diff(bounds, axis=1)  # frames per (event, bin)
        self.prof_n += onehot @ counts
        n_pairs = int(counts.sum())
        if n_pairs == 0:
            return
        if n_pairs <= bounds.size:  # few frames per event (deep layers): add them one by one
            cell = np.repeat((lab[:, None] * n_bins + np.arange(n_bins)[None, :]).ravel(), counts.ravel())
            frame = np.concatenate([np.arange(lo, hi) for lo, hi in zip(bounds[:, 0], bounds[:, -1])])
            clip = np.repeat(ev_clip, bounds[:, -1] - bounds[:, 0])
            o = np.argsort(cell, kind="stable")
            cells, starts = np.unique(cell[o], return_index=True)
            flat = self.prof_sum.reshape(k * n_bins, -1)
            rows = np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(-1, a.shape[1])  # (clips * t, u)
            flat[cells] += np.add.reduceat(rows[clip[o] * a.shape[2] + frame[o]], starts, axis=0)
            return
        wanted = [bounds[ev_clip == i].ravel() for i in range(len(a))]
        per_bin = np.diff(_prefix(a, wanted).at(ev_clip[:, None], bounds), axis=1)  # (events, bins, u)
        self.prof_sum += (onehot @ per_bin.reshape(len(on), -1)).reshape(self.prof_sum.shape)


# ------------------------------------------------------------------------------------------
# the thresholds pass
# ------------------------------------------------------------------------------------------
def thresholds(model: Any, clips: pd.DataFrame, cfg: DissectConfig) -> dict[str, np.ndarray]:
    """Each unit's ``quantile`` over the valid frames of a random subset of the clips (a
    fraction ``threshold_fraction``, at least ``threshold_min_clips``).

    The frames are sampled uniformly (at most ``sample_values / units`` per layer, without
    knowing the clips' lengths in advance): every valid frame draws a random key and the frames
    with the smallest keys are kept (a bottom-k sample, compacted as it streams; the keys come
    from one random stream per job, so the sample does not depend on the lanes).
    """
    rng = np.random.default_rng(cfg.seed)
    n = len(clips)
    take = min(n, max(cfg.threshold_min_clips, math.ceil(cfg.threshold_fraction * n)))
    subset = clips.iloc[np.sort(rng.choice(n, size=take, replace=False))]
    cutoff = {layer: 1.0 for layer in cfg.layers}  # keys at or above it are never kept
    Kept = dict[str, list[tuple[np.ndarray, np.ndarray]]]

    def sample(j: int, groups: list[Group]) -> Kept:
        jrng = np.random.default_rng([cfg.seed, j])
        out: Kept = {layer: [] for layer in cfg.layers}
        for layer in cfg.layers:
            spans, keys = [], []
            for grp in groups:
                first, stop, _ = frame_grid(layer, grp.clip_samples, cfg.min_inside)
                stop = min(stop, grp.feats[layer].shape[2])
                for a in grp.feats[layer] if stop > first else ():
                    spans.append((a, first))
                    keys.append(jrng.random(stop - first))
            if not keys:
                continue
            cap = max(1, cfg.sample_values // spans[0][0].shape[0])
            every = np.concatenate(keys)
            cut = cutoff[layer]  # the job's own bottom-k first: only that can enter the corpus's
            if len(every) > cap:
                cut = min(cut, float(np.partition(every, cap)[cap]))
            for (a, first), key in zip(spans, keys):
                keep = np.flatnonzero(key < cut)
                if len(keep):
                    out[layer].append((key[keep], a[:, first + keep]))
        return out

    kept: Kept = {layer: [] for layer in cfg.layers}
    for part in lane_map(model, subset, cfg.layers, cfg.batch_size, sample, lanes=cfg.lanes):
        for layer, items in part.items():
            kept[layer].extend(items)
            if items:
                cap = max(1, cfg.sample_values // items[0][1].shape[0])
                if sum(len(key) for key, _ in kept[layer]) > 2 * cap:
                    kept[layer], cutoff[layer] = _bottom_k(kept[layer], cap)
    out = {}
    for layer, items in kept.items():
        if not any(len(key) for key, _ in items):
            raise ParameterError(
                f"No clip has a valid {layer} frame: dissect a corpus of longer clips, or leave {layer} out."
            )
        items, _ = _bottom_k(items, max(1, cfg.sample_values // items[0][1].shape[0]))
        v = np.concatenate([x for _, x in items], axis=1)
        out[layer] = np.quantile(v, cfg.quantile, axis=1, overwrite_input=True)
    return out


def _bottom_k(items: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], float]:
    """The ``k`` frames with the smallest keys of ``(keys, values (units, frames))`` items, and
    the key from which later frames cannot enter them any more."""
    keys = np.concatenate([key for key, _ in items])
    if len(keys) <= k:
        return items, 1.0
    cut = float(np.partition(keys, k)[k])  # the (k+1)-th smallest: keep the keys below it
    out = [(key[key < cut], x[:, key < cut]) for key, x in items]
    return [item for item in out if len(item[0])], cut
