"""Record every SoundNet unit over a labeled corpus into a resumable run directory.

The pipeline (NetDissect-style numbered steps, each resuming from its saved files):

1. **corpus**: the corpus table (:func:`interp.corpora.load_corpus`) is frozen into the run's
   cache key together with the weights' SHA-256 and the :class:`RecordConfig`.
2. **shards**: clips are decoded in worker processes (bounded look-ahead, so memory does not
   grow with the corpus) while the model runs; forward hooks on each block mask the frames that
   batching padded, and reduce each layer to per-clip ``mean``, ``max`` and ``peak_s`` on the
   fly, so time-resolved activations of a whole corpus are never held. Each shard of
   ``shard_size`` clips is written to a temporary folder and renamed when complete.
3. **merge**: shards are streamed into ``clips.parquet``, ``activations/<layer>.<stat>.parquet``
   and ``topk.parquet`` (an exact streaming top-k), then ``run.json`` is marked complete.

A killed run resumes from its completed shards when the same command is run again: no clip is
lost or duplicated. Clips longer than ``chunk_s`` are streamed from disk in overlapping chunks
aligned to the deepest layer's hop; each frame is taken from a chunk that holds its whole
receptive field, so the stitched statistics equal one forward pass over the whole file.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from interp.runningstats import TopK
from interp.store import (FORMAT_VERSION, HEAD_STATS, STATS, Run, RunError, activation_file,
                          atomic_write_json, remove_tree, unit_columns, write_parquet)
from soundnet.audio import INPUT_SCALE, fit_length, iter_audio_blocks
from soundnet.errors import AudioError, ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time, frames_to_window, layer_geometry, min_samples, n_frames
from soundnet.model import HEAD_LAYERS, LAYERS, SPEC_BY_NAME

__all__ = ["RecordConfig", "RecordSummary", "LayerTap", "record_corpus", "summarize_batch"]

_CLIP_COLUMNS = ("clip_id", "path", "label", "fold", "start_s", "end_s", "duration_s",
                 "sample_rate_hz", "status", "note", "order")


@dataclass(frozen=True)
class RecordConfig:
    """Settings of a recording; part of the run's cache key (except the execution-only ones).

    Attributes
    ----------
    layers : tuple of str
        Layers to record (default all nine: conv1..conv7, conv8, conv8_2).
    topk : int
        Clips kept per unit in ``topk.parquet``.
    short : {"pad", "tile", "none"}
        How clips shorter than ``min_length`` are lengthened for the conv layers. ``pad``
        (default) appends silence so that every layer up to ``min_length`` has a frame.
    min_length : str or int
        Layer name (enough samples for one frame of it) or a length in samples.
    heads_short : {"tile", "pad", "none"}
        For the heads only: clips shorter than 209,374 samples are tiled (as the original
        SoundNet did) in a second pass; the conv-layer statistics always use the clip as is.
    chunk_s : float (in seconds)
        Clips longer than this are streamed in chunks (exact stitching).
    batch_size, shard_size, workers : int
        Execution settings (not part of the cache key).
    device : str
        ``"cpu"`` or ``"cuda"``.
    fast : bool
        Use the fast inference path (:mod:`soundnet.fast`) where available.
    """

    layers: tuple[str, ...] = LAYERS
    topk: int = 16
    short: str = "pad"
    min_length: str | int = "conv7"
    heads_short: str = "tile"
    chunk_s: float = 120.0
    batch_size: int = 16
    shard_size: int = 128
    workers: int = 2
    device: str = "cpu"
    fast: bool = True

    def __post_init__(self) -> None:
        bad = [layer for layer in self.layers if layer not in SPEC_BY_NAME]
        if bad or not self.layers:
            raise ParameterError(f"The 'layers' parameter of RecordConfig must name layers from {list(LAYERS)}. Got {list(self.layers)} instead.")
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers), key=LAYERS.index)))
        for name, allowed in (("short", ("pad", "tile", "none")), ("heads_short", ("tile", "pad", "none"))):
            if getattr(self, name) not in allowed:
                raise ParameterError(f"The '{name}' parameter of RecordConfig must be one of {allowed}. Got {getattr(self, name)!r} instead.")
        for name in ("topk", "batch_size", "shard_size"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"The '{name}' parameter of RecordConfig must be >= 1. Got {getattr(self, name)} instead.")
        if self.workers < 0:
            raise ParameterError(f"The 'workers' parameter of RecordConfig must be >= 0. Got {self.workers} instead.")
        if self.chunk_s < 30:
            raise ParameterError(f"The 'chunk_s' parameter of RecordConfig must be >= 30 s (the heads' receptive field is 14.5 s). Got {self.chunk_s} instead.")

    def key_settings(self) -> dict[str, Any]:
        """The settings that change results (the cache key part)."""
        d = dataclasses.asdict(self)
        for k in ("batch_size", "workers", "device", "fast", "chunk_s"):
            d.pop(k)
        d["layers"] = list(self.layers)
        d["shard_size"] = self.shard_size  # shard boundaries must not move under a resume
        return d

    @property
    def min_samples(self) -> int:
        """Minimum clip length in samples for the conv layers under ``short``."""
        if self.short == "none":
            return 0
        return min_samples(self.min_length) if isinstance(self.min_length, str) else int(self.min_length)


@dataclass
class RecordSummary:
    """What a recording did."""

    run_dir: Path
    n_clips: int
    n_ok: int
    n_failed: int
    audio_s: float
    wall_s: float
    resumed_shards: int = 0
    failures: dict[str, int] = field(default_factory=dict)

    @property
    def times_real_time(self) -> float:
        """Audio seconds processed per wall-clock second."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else float("nan")

    def __str__(self) -> str:
        s = (f"{self.n_ok} ok, {self.n_failed} failed ({self.n_clips} clips, {self.audio_s:.1f} s of audio "
             f"in {self.wall_s:.1f} s, {self.times_real_time:.0f}x real time) -> {self.run_dir}")
        if self.failures:
            s += "\n  failures: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items()))
        return s


# ---------------------------------------------------------------------------------------------
# hooks: per-clip summaries computed while the forward pass runs
# ---------------------------------------------------------------------------------------------
class LayerTap:
    """Forward hooks on SoundNet blocks that mask padding and reduce each layer per clip.

    Use as a context manager; the hooks remove themselves on exit. Before each forward pass call
    :meth:`set_lengths` with every item's true input length in samples: frames beyond an item's
    true length are zeroed (so the next layer sees exactly what an unbatched pass would see: the
    layer's own zero padding) and excluded from every statistic.

    Parameters
    ----------
    model : torch.nn.Module
        A SoundNet8 (or anything with blocks named like it).
    layers : sequence of str
        Blocks to summarise; masking happens on every block regardless.
    keep : bool
        Keep each layer's masked, time-resolved output in :attr:`outputs` (for chunked long
        files and tests); otherwise only summaries are kept.
    """

    def __init__(self, model: torch.nn.Module, layers: Iterable[str], *, keep: bool = False) -> None:
        self.model = model
        self.layers = tuple(layers)
        self.keep = keep
        self.lengths: np.ndarray | None = None
        self.summaries: dict[str, dict[str, np.ndarray]] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> "LayerTap":
        for name in LAYERS:
            module = getattr(self.model, name, None)
            if module is not None:
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def set_lengths(self, lengths_samples: Iterable[int]) -> None:
        """True input length of each batch item, in samples (before batch padding)."""
        self.lengths = np.asarray(list(lengths_samples), dtype=np.int64)
        self.summaries = {}
        self.outputs = {}

    def _make_hook(self, name: str) -> Callable:
        def hook(module, inputs, out):
            if self.lengths is None:
                return None
            valid = torch.as_tensor([n_frames(int(n), name) for n in self.lengths], device=out.device)
            t = torch.arange(out.shape[-1], device=out.device)
            mask = t[None, :] < valid[:, None]
            if not bool(mask.all()):
                out = out * mask[:, None, :].to(out.dtype)
            if name in self.layers:
                self.summaries[name] = summarize_batch(out, valid, name)
                if self.keep:
                    self.outputs[name] = out
            return out

        return hook


def summarize_batch(out: torch.Tensor, valid_frames: torch.Tensor, layer: str) -> dict[str, np.ndarray]:
    """Per-item, per-unit summaries of a layer output over its valid frames.

    Parameters
    ----------
    out : torch.Tensor, shape (batch, n_units, n_frames)
    valid_frames : torch.Tensor, shape (batch,)
        Frames of each item that belong to it (the rest is batch padding).
    layer : str

    Returns
    -------
    dict of str to np.ndarray, each (batch, n_units), float32
        ``mean``, ``max``, ``peak_s`` (seconds, centre of the max frame's receptive field),
        ``peak_frame`` (int) and, for heads, ``prob`` (mean softmax over valid frames).
        NaN where an item has no valid frame.
    """
    b, u, t = out.shape
    valid = valid_frames.to(out.device).clamp(max=t)
    mask = torch.arange(t, device=out.device)[None, :] < valid[:, None]  # (b, t)
    outf = out.float()
    n = valid.clamp(min=1).to(torch.float32)[:, None]
    none = (valid == 0)[:, None]
    masked = torch.where(mask[:, None, :], outf, torch.tensor(-torch.inf, device=out.device))
    if t:
        mx, arg = masked.max(dim=2)
        mean = torch.where(mask[:, None, :], outf, torch.zeros((), device=out.device)).sum(dim=2) / n
    else:
        mx = torch.full((b, u), -torch.inf, device=out.device)
        arg = torch.zeros((b, u), dtype=torch.long, device=out.device)
        mean = torch.zeros((b, u), device=out.device)
    nan = torch.tensor(float("nan"), device=out.device)
    res = {
        "mean": torch.where(none, nan, mean),
        "max": torch.where(none, nan, mx),
    }
    arg_np = arg.cpu().numpy()
    peak_s = np.asarray(frames_to_time(arg_np, layer), dtype=np.float32)
    peak_s[none.cpu().numpy().repeat(u, axis=1)] = np.nan
    if layer in HEAD_LAYERS:
        p = torch.softmax(outf, dim=1) * mask[:, None, :]
        res["prob"] = torch.where(none, nan, p.sum(dim=2) / n)
    summary = {k: v.cpu().numpy().astype(np.float32) for k, v in res.items()}
    summary["peak_s"] = peak_s
    summary["peak_frame"] = arg_np
    return summary


# ---------------------------------------------------------------------------------------------
# decoding (worker processes)
# ---------------------------------------------------------------------------------------------
@dataclass
class _Decoded:
    order: int
    clip_id: str
    audio: np.ndarray | None
    status: str
    note: str
    duration_s: float
    sample_rate_hz: int
    long: bool = False


def _decode_row(row: dict, long_s: float) -> _Decoded:
    """Decode one corpus row into 22050 Hz mono audio, or a status saying why not."""
    from interp.corpora import read_clip
    from soundnet.audio import audio_info

    order, cid = int(row["order"]), str(row["clip_id"])
    status = str(row.get("status", "ok") or "ok")
    if status != "ok":
        return _Decoded(order, cid, None, status, "", float("nan"), -1)
    path = str(row["path"])
    notes: list[str] = []
    sr_src = SAMPLE_RATE_HZ
    try:
        if not path.startswith("probes://"):
            info = audio_info(path)
            sr_src = info.sample_rate_hz
            if info.channels > 1:
                notes.append(f"mixed {info.channels} channels to mono")
            if sr_src != SAMPLE_RATE_HZ:
                notes.append(f"resampled {sr_src} Hz -> {SAMPLE_RATE_HZ} Hz")
            start = float(row.get("start_s") or 0.0)
            end = row.get("end_s")
            end = info.duration_s if end is None or not np.isfinite(end) else min(float(end), info.duration_s)
            if end - start > long_s and info.format != "audioread":
                return _Decoded(order, cid, None, "ok", "; ".join(notes + ["streamed in chunks"]),
                                end - start, sr_src, long=True)
        audio = read_clip(row)
    except AudioError as exc:
        return _Decoded(order, cid, None, f"{exc.reason}: {exc.detail or exc.reason}", "", float("nan"), sr_src)
    except Exception as exc:  # any other decoder failure is still a per-clip status
        return _Decoded(order, cid, None, f"error: {type(exc).__name__}: {exc}", "", float("nan"), sr_src)
    if audio.size == 0:
        return _Decoded(order, cid, None, "empty: no samples decoded", "", 0.0, sr_src)
    if not np.any(audio) and str(row.get("kind", "")) != "silence":
        return _Decoded(order, cid, None, "silent: all samples are zero", "", len(audio) / SAMPLE_RATE_HZ, sr_src)
    return _Decoded(order, cid, audio, "ok", "; ".join(notes), len(audio) / SAMPLE_RATE_HZ, sr_src)


def _decode_stream(rows: list[dict], *, workers: int, lookahead: int, long_s: float) -> Iterator[_Decoded]:
    """Decode rows in order with at most ``lookahead`` clips in flight (bounded memory)."""
    if workers <= 0:
        for r in rows:
            yield _decode_row(r, long_s)
        return
    ctx = mp.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending: deque = deque()
        it = iter(rows)
        for r in it:
            pending.append(pool.submit(_decode_row, r, long_s))
            if len(pending) >= lookahead:
                break
        while pending:
            fut = pending.popleft()
            try:
                res = fut.result()
            except Exception as exc:  # a worker crash must not stop the run
                r = rows[0]
                res = _Decoded(-1, "", None, f"error: worker failed: {exc}", "", float("nan"), -1)
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_decode_row, nxt, long_s))
            yield res


# ---------------------------------------------------------------------------------------------
# the forward passes
# ---------------------------------------------------------------------------------------------
class _Engine:
    """Model + taps: turns decoded audio into per-clip summaries."""

    def __init__(self, model: torch.nn.Module, config: RecordConfig) -> None:
        self.model = model
        self.config = config
        self.device = torch.device(config.device)
        self.conv_layers = tuple(l for l in config.layers if l not in HEAD_LAYERS)
        self.head_layers = tuple(l for l in config.layers if l in HEAD_LAYERS)
        self.head_min = min_samples("conv8")

    def _forward(self, waves: list[np.ndarray], layers: tuple[str, ...], *, keep: bool = False) -> LayerTap:
        lengths = [len(w) for w in waves]
        t = max(lengths)
        x = np.zeros((len(waves), 1, t), dtype=np.float32)
        for i, w in enumerate(waves):
            x[i, 0, : len(w)] = w
        xt = torch.from_numpy(x).to(self.device) * INPUT_SCALE
        last = max(LAYERS.index(l) for l in layers)
        need = [l for l in LAYERS[: last + 1] if l not in HEAD_LAYERS]
        with LayerTap(self.model, layers, keep=keep) as tap, torch.inference_mode():
            tap.set_lengths(lengths)
            h = xt
            for name in need:
                h = self.model.run_block(name, h)
            for name in HEAD_LAYERS:
                if name in layers:
                    self.model.run_block(name, h)
        return tap

    def summarize(self, clips: list[_Decoded]) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """Per clip (by order) and layer, the summaries ``{stat: (n_units,)}``."""
        cfg = self.config
        out: dict[int, dict[str, dict[str, np.ndarray]]] = {c.order: {} for c in clips}
        # conv layers (and heads for clips long enough), batched by length
        items = sorted(clips, key=lambda c: len(c.audio))
        for i in range(0, len(items), cfg.batch_size):
            batch = items[i: i + cfg.batch_size]
            waves = [fit_length(c.audio, min_samples=cfg.min_samples, policy=cfg.short if cfg.short != "none" else "none")
                     for c in batch]
            tap = self._forward(waves, cfg.layers)
            self._collect(tap, batch, out)
        # heads for short clips: tiled (or padded) to one head frame, a second pass
        if self.head_layers and cfg.heads_short != "none":
            short = [c for c in clips if len(c.audio) < self.head_min]
            for i in range(0, len(short), cfg.batch_size):
                batch = short[i: i + cfg.batch_size]
                waves = [fit_length(c.audio, min_samples=self.head_min, policy=cfg.heads_short) for c in batch]
                tap = self._forward(waves, self.head_layers)
                self._collect(tap, batch, out)
        return out

    @staticmethod
    def _collect(tap: LayerTap, batch: list[_Decoded], out: dict) -> None:
        for layer, summ in tap.summaries.items():
            for j, c in enumerate(batch):
                out[c.order][layer] = {k: v[j] for k, v in summ.items()}

    def summarize_long(self, row: dict) -> tuple[dict[str, dict[str, np.ndarray]], float]:
        """Summaries of one long file, streamed in chunks; returns (summaries, duration_s)."""
        cfg = self.config
        hop = layer_geometry("conv8").hop_samples  # divisible by every layer's hop
        margin = -(-(layer_geometry("conv8").receptive_field_samples + hop) // hop) * hop
        chunk = max(int(cfg.chunk_s * SAMPLE_RATE_HZ) // hop * hop, 2 * margin + hop)
        step = chunk - 2 * margin
        acc = {l: _StreamStats(l) for l in cfg.layers}
        start_s = float(row.get("start_s") or 0.0)
        end = row.get("end_s")
        duration = None if end is None or not np.isfinite(end) else float(end) - start_s
        buf = np.zeros(0, dtype=np.float32)
        s0 = 0          # global sample index of buf[0]
        total = None    # known once the stream ends
        blocks = _excerpt_blocks(row["path"], start_s, duration)
        done = False
        while not done:
            while total is None and len(buf) < chunk:
                blk = next(blocks, None)
                if blk is None:
                    total = s0 + len(buf)
                else:
                    buf = np.concatenate([buf, blk])
            piece = buf[:chunk]
            at_end = total is not None and s0 + len(piece) >= total
            tap = self._forward([piece], cfg.layers, keep=True)
            for layer in cfg.layers:
                o = tap.outputs.get(layer)
                if o is not None:
                    acc[layer].add_chunk(o[0].float().cpu().numpy(), s0, len(piece), at_start=s0 == 0, at_end=at_end)
            if at_end:
                done = True
            else:
                buf = buf[step:]
                s0 += step
        total = int(total)
        summaries = {l: a.result() for l, a in acc.items()}
        # heads for a long-but-under-9.5 s file cannot happen (chunk_s >= 30 s)
        return summaries, total / SAMPLE_RATE_HZ


def _excerpt_blocks(path: str, start_s: float, duration_s: float | None) -> Iterator[np.ndarray]:
    """Blocks of a file's excerpt at 22050 Hz (streaming)."""
    skip = int(round(start_s * SAMPLE_RATE_HZ))
    left = None if duration_s is None else int(round(duration_s * SAMPLE_RATE_HZ))
    for blk in iter_audio_blocks(path, block_s=30.0):
        if skip:
            cut = min(skip, len(blk))
            blk, skip = blk[cut:], skip - cut
        if left is not None:
            blk = blk[:left]
            left -= len(blk)
        if len(blk):
            yield blk
        if left is not None and left <= 0:
            return


class _StreamStats:
    """Running mean/max/argmax of one layer over the frames of chunks of one long clip."""

    def __init__(self, layer: str) -> None:
        self.layer = layer
        g = layer_geometry(layer)
        self.hop, self.rf, self.first = g.hop_samples, g.receptive_field_samples, g.first_start_samples
        self.next_frame = 0
        self.sum = None
        self.count = 0
        self.max = None
        self.arg = None
        self.prob = None

    def add_chunk(self, acts: np.ndarray, s0: int, n: int, *, at_start: bool, at_end: bool) -> None:
        """Fold in the frames of a chunk that starts at global sample ``s0`` and holds ``n``."""
        t = acts.shape[1]
        j = np.arange(t)
        start = self.first + j * self.hop
        ok = ((start >= 0) | at_start) & ((start + self.rf <= n) | at_end)
        g = s0 // self.hop + j
        ok &= g >= self.next_frame
        if not ok.any():
            return
        sel = acts[:, ok].astype(np.float64)
        gsel = g[ok]
        if self.sum is None:
            u = acts.shape[0]
            self.sum = np.zeros(u)
            self.max = np.full(u, -np.inf)
            self.arg = np.zeros(u, dtype=np.int64)
            if self.layer in HEAD_LAYERS:
                self.prob = np.zeros(u)
        self.sum += sel.sum(axis=1)
        self.count += sel.shape[1]
        cmax = sel.max(axis=1)
        carg = gsel[sel.argmax(axis=1)]
        better = cmax > self.max
        self.max = np.where(better, cmax, self.max)
        self.arg = np.where(better, carg, self.arg)
        if self.prob is not None:
            e = np.exp(sel - sel.max(axis=0, keepdims=True))
            self.prob += (e / e.sum(axis=0, keepdims=True)).sum(axis=1)
        self.next_frame = int(gsel[-1]) + 1

    def result(self) -> dict[str, np.ndarray]:
        if self.sum is None or self.count == 0:
            return {}
        res = {"mean": (self.sum / self.count).astype(np.float32), "max": self.max.astype(np.float32),
               "peak_s": np.asarray(frames_to_time(self.arg, self.layer), dtype=np.float32),
               "peak_frame": self.arg}
        if self.prob is not None:
            res["prob"] = (self.prob / self.count).astype(np.float32)
        return res


# ---------------------------------------------------------------------------------------------
# the run directory: cache key, shards, merge
# ---------------------------------------------------------------------------------------------
def _corpus_sha256(df: pd.DataFrame) -> str:
    cols = [c for c in ("clip_id", "path", "label", "fold", "start_s", "end_s", "status") if c in df.columns]
    payload = df[cols].astype(str).to_csv(index=False).encode()
    return hashlib.sha256(payload).hexdigest()


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("soundnet-interp", "torch", "numpy", "pandas", "pyarrow", "soundfile", "soxr", "librosa"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return out


def _normalise_corpus(corpus: pd.DataFrame | str | os.PathLike, **corpus_options) -> tuple[pd.DataFrame, str]:
    from interp.corpora import load_corpus

    if isinstance(corpus, pd.DataFrame):
        df, spec = corpus.copy(), "<DataFrame>"
    else:
        spec = str(corpus)
        df = load_corpus(corpus, **corpus_options)
    if "order" not in df.columns:
        df["order"] = np.arange(len(df))
    df = df.sort_values("order", kind="stable").reset_index(drop=True)
    df["order"] = np.arange(len(df))
    if "status" not in df.columns:
        df["status"] = "ok"
    df["status"] = df["status"].fillna("ok").astype(str)
    for col, default in (("label", ""), ("fold", -1), ("start_s", 0.0), ("end_s", np.nan)):
        if col not in df.columns:
            df[col] = default
    dup = df["clip_id"].duplicated()
    if dup.any():
        raise ParameterError(f"The corpus table has duplicated clip_id values {df.loc[dup, 'clip_id'].tolist()[:5]}.")
    return df, spec


def _shard_dir(run_dir: Path, i: int) -> Path:
    return run_dir / "shards" / f"{i:05d}"


def _write_shard(run_dir: Path, i: int, rows: list[dict], decoded: list[_Decoded],
                 summaries: dict[int, dict], units: dict[str, int], layers: tuple[str, ...]) -> None:
    """Write one shard to a temporary folder and rename it into place when complete."""
    final = _shard_dir(run_dir, i)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    by_order = {d.order: d for d in decoded}
    clip_rows = []
    for r in rows:
        d = by_order[int(r["order"])]
        row = dict(r)
        row.update(status=d.status, note=d.note, duration_s=d.duration_s, sample_rate_hz=int(d.sample_rate_hz))
        clip_rows.append(row)
    write_parquet(tmp / "clips.parquet", pd.DataFrame(clip_rows))
    ok = [d for d in sorted(decoded, key=lambda d: d.order) if d.status == "ok"]
    for layer in layers:
        u = units[layer]
        stats = STATS + (HEAD_STATS if layer in HEAD_LAYERS else ())
        for stat in stats:
            mat = np.full((len(ok), u), np.nan, dtype=np.float32)
            for j, d in enumerate(ok):
                s = summaries.get(d.order, {}).get(layer)
                if s and stat in s:
                    mat[j] = s[stat]
            arrays = [pa.array([d.clip_id for d in ok], pa.string()),
                      pa.array([d.order for d in ok], pa.int64())]
            arrays += [pa.array(mat[:, k]) for k in range(u)]
            table = pa.Table.from_arrays(arrays, names=["clip_id", "order"] + unit_columns(u))
            pq.write_table(table, tmp / activation_file(layer, stat))
    (tmp / "_SUCCESS").write_text("ok\n")
    remove_tree(final)
    os.replace(tmp, final)


def _merge(run_dir: Path, n_shards: int, layers: tuple[str, ...], units: dict[str, int], k: int,
           durations: dict[str, float] | None = None) -> pd.DataFrame:
    """Stream the shards into the final tables; returns the clip table."""
    shard_dirs = [_shard_dir(run_dir, i) for i in range(n_shards)]
    clips = pd.concat([pd.read_parquet(d / "clips.parquet") for d in shard_dirs], ignore_index=True)
    clips = clips.sort_values("order", kind="stable").reset_index(drop=True)
    if clips["clip_id"].duplicated().any() or len(clips) != clips["order"].nunique():
        raise RunError(f"Shards of {str(run_dir)!r} overlap; delete the folder and record again.")
    front = [c for c in _CLIP_COLUMNS if c in clips.columns]
    clips = clips[front + [c for c in clips.columns if c not in front]]
    write_parquet(run_dir / "clips.parquet", clips)
    dur = clips.set_index("clip_id")["duration_s"]
    act_dir = run_dir / "activations"
    act_dir.mkdir(exist_ok=True)
    topk_frames = []
    for layer in layers:
        u = units[layer]
        stats = STATS + (HEAD_STATS if layer in HEAD_LAYERS else ())
        for stat in stats:
            out = act_dir / activation_file(layer, stat)
            tmp = out.with_name(f".{out.name}.tmp")
            writer = None
            try:
                for d in shard_dirs:
                    t = pq.read_table(d / activation_file(layer, stat)).drop(["order"])
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, t.schema)
                    writer.write_table(t)
            finally:
                if writer is not None:
                    writer.close()
            os.replace(tmp, out)
        # exact streaming top-k over the shards
        top = TopK(u, k)
        ids: dict[int, str] = {}
        for d in shard_dirs:
            mx = pq.read_table(d / activation_file(layer, "max"))
            pk = pq.read_table(d / activation_file(layer, "peak_s"))
            order = mx.column("order").to_numpy()
            ids.update(zip(order.tolist(), mx.column("clip_id").to_pylist()))
            cols = unit_columns(u)
            vals = np.stack([mx.column(c).to_numpy(zero_copy_only=False) for c in cols], axis=1) if len(order) else np.zeros((0, u))
            peaks = np.stack([pk.column(c).to_numpy(zero_copy_only=False) for c in cols], axis=1) if len(order) else np.zeros((0, u))
            top.add(vals, order, peaks)
        unit_idx, rank = np.nonzero(top.keys_ >= 0)
        keys = top.keys_[unit_idx, rank]
        clip_ids = np.array([ids[int(o)] for o in keys], dtype=object)
        peak_s = top.payload_[unit_idx, rank]
        frames = np.asarray([0]) if len(peak_s) == 0 else None
        g = layer_geometry(layer)
        half = g.receptive_field_samples / 2 / SAMPLE_RATE_HZ
        clip_dur = dur.reindex(clip_ids).to_numpy(dtype=float) if len(clip_ids) else np.zeros(0)
        start = np.clip(peak_s - half, 0.0, None)
        end = np.minimum(peak_s + half, np.maximum(clip_dur, peak_s + 1.0 / SAMPLE_RATE_HZ))
        topk_frames.append(pd.DataFrame({
            "layer": layer, "unit": unit_idx.astype(np.int32), "rank": rank.astype(np.int32),
            "clip_id": clip_ids.astype(str), "value": top.values_[unit_idx, rank].astype(np.float32),
            "peak_s": peak_s.astype(np.float32), "start_s": start.astype(np.float32),
            "end_s": end.astype(np.float32)}))
        del frames
    write_parquet(run_dir / "topk.parquet", pd.concat(topk_frames, ignore_index=True))
    return clips


def record_corpus(
    corpus: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: RecordConfig | None = None,
    model: torch.nn.Module | None = None,
    weights: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    corpus_options: dict | None = None,
    max_shards: int | None = None,
    **settings: Any,
) -> RecordSummary:
    """Record every unit of SoundNet over a corpus into a run directory (resumable).

    Parameters
    ----------
    corpus : DataFrame, str or path
        A corpus table, a built-in name (``"demo"``, ``"probes"``) or a path that
        :func:`interp.corpora.load_corpus` recognises.
    out_dir : str or path
        The run directory. An interrupted run in it resumes; a complete one with the same cache
        key returns at once; one made from other inputs raises :class:`RunError` unless
        ``overwrite``.
    config : RecordConfig, optional
        Settings; keyword ``settings`` override its fields (``layers=("conv5",)``, ...).
    model : torch.nn.Module, optional
        A loaded SoundNet8 (default: :func:`soundnet.load_soundnet` with ``weights``).
    weights : str or path, optional
        Weights file (see :func:`soundnet.weights.resolve_weights`).
    overwrite : bool
        Delete a run directory made from other inputs instead of refusing.
    progress : bool
        Show a progress bar (clips/s, x real time, ETA) on stderr.
    corpus_options : dict, optional
        Passed to :func:`interp.corpora.load_corpus` (``esc10=True``, ``segment_s=10``, ...).
    max_shards : int, optional
        Stop after processing this many new shards (for tests of resumption).

    Returns
    -------
    RecordSummary
    """
    from soundnet.weights import resolve_weights, sha256_file

    config = dataclasses.replace(config or RecordConfig(), **settings) if settings else (config or RecordConfig())
    run_dir = Path(out_dir)
    df, spec = _normalise_corpus(corpus, **(corpus_options or {}))
    weights_path = resolve_weights(weights)
    key = {"weights_sha256": sha256_file(weights_path), "corpus_sha256": _corpus_sha256(df),
           "settings": config.key_settings()}
    meta_path = run_dir / "run.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old.get("key") != key:
            if not overwrite:
                raise RunError(
                    f"{str(run_dir)!r} holds a run made from other inputs (weights, corpus or settings "
                    "differ). Choose another --out, or pass --overwrite to replace it.")
            remove_tree(run_dir)
        elif old.get("complete"):
            clips = pd.read_parquet(run_dir / "clips.parquet")
            return _summary(run_dir, clips, 0.0, resumed=0)
    run_dir.mkdir(parents=True, exist_ok=True)
    if model is None:
        from soundnet.model import load_soundnet

        model = load_soundnet(str(weights_path), device=config.device)
    engine_model = _maybe_fast(model, config)
    units = {l: SPEC_BY_NAME[l].out_channels for l in config.layers}
    meta = {"format": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "weights_sha256": key["weights_sha256"], "weights_path": str(weights_path),
            "corpus": {"spec": spec, "n_clips": len(df), "sha256": key["corpus_sha256"]},
            "settings": dataclasses.asdict(config) | {"layers": list(config.layers)},
            "layers": list(config.layers), "units": units, "versions": _versions(),
            "key": key, "complete": False}
    if not meta_path.is_file():
        atomic_write_json(meta_path, meta)
    engine = _Engine(engine_model, config)
    n_shards = max(1, -(-len(df) // config.shard_size))
    todo = [i for i in range(n_shards) if not (_shard_dir(run_dir, i) / "_SUCCESS").is_file()]
    resumed = n_shards - len(todo)
    for stale in (run_dir / "shards").glob(".tmp-*") if (run_dir / "shards").is_dir() else []:
        remove_tree(stale)
    if max_shards is not None:
        todo = todo[:max_shards]
    records = df.to_dict("records")
    rows_todo = [r for i in todo for r in records[i * config.shard_size:(i + 1) * config.shard_size]]
    t0 = time.perf_counter()
    bar = _progress(len(rows_todo), enabled=progress)
    audio_s = 0.0
    stream = _decode_stream(rows_todo, workers=config.workers, lookahead=max(2 * config.batch_size, 8),
                            long_s=config.chunk_s)
    for i in todo:
        rows = records[i * config.shard_size:(i + 1) * config.shard_size]
        decoded = [next(stream) for _ in rows]
        for r, d in zip(rows, decoded):  # a crashed worker loses its order: restore it
            if d.order < 0:
                d.order, d.clip_id = int(r["order"]), str(r["clip_id"])
        short = [d for d in decoded if d.status == "ok" and not d.long]
        summaries = engine.summarize(short) if short else {}
        for d in decoded:
            if d.status == "ok" and d.long:
                row = records[d.order]
                try:
                    summaries[d.order], d.duration_s = engine.summarize_long(row)
                except AudioError as exc:
                    d.status = f"{exc.reason}: {exc.detail or exc.reason}"
        _write_shard(run_dir, i, rows, decoded, summaries, units, config.layers)
        shard_audio = sum(d.duration_s for d in decoded if d.status == "ok")
        audio_s += shard_audio
        if bar is not None:
            bar.update(len(rows))
            el = time.perf_counter() - t0
            bar.set_postfix_str(f"{audio_s / el:.0f}x real time" if el > 0 else "")
    stream.close()
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    done = all((_shard_dir(run_dir, i) / "_SUCCESS").is_file() for i in range(n_shards))
    if not done:
        clips = pd.concat([pd.read_parquet(_shard_dir(run_dir, i) / "clips.parquet")
                           for i in range(n_shards) if (_shard_dir(run_dir, i) / "_SUCCESS").is_file()])
        return _summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)
    clips = _merge(run_dir, n_shards, config.layers, units, config.topk)
    meta = json.loads(meta_path.read_text())
    meta.update(complete=True, finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                n_ok=int((clips["status"] == "ok").sum()), n_failed=int((clips["status"] != "ok").sum()))
    atomic_write_json(meta_path, meta)
    return _summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)


def _summary(run_dir: Path, clips: pd.DataFrame, wall: float, *, resumed: int, audio_s: float | None = None) -> RecordSummary:
    ok = clips["status"] == "ok"
    failures = clips.loc[~ok, "status"].str.split(":").str[0].value_counts().to_dict()
    if audio_s is None:
        audio_s = float(clips.loc[ok, "duration_s"].sum())
    return RecordSummary(run_dir, len(clips), int(ok.sum()), int((~ok).sum()), audio_s, wall, resumed,
                         {str(k): int(v) for k, v in failures.items()})


def _progress(total: int, *, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="clip", desc="record", dynamic_ncols=True, file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} clips "
                           "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")


def _maybe_fast(model: torch.nn.Module, config: RecordConfig) -> torch.nn.Module:
    """The fast inference path when available and asked for, else the model itself."""
    if not config.fast:
        return model
    try:
        from soundnet.fast import fast_model  # noqa: F401
    except ImportError:
        return model
    try:
        return fast_model(model)
    except Exception:
        return model
