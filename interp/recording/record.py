"""Record every SoundNet unit over a labeled corpus into a resumable run directory.

The pipeline (NetDissect-style numbered steps, each resuming from its saved files):

1. **corpus**: the corpus table (:func:`interp.corpus.corpora.load_corpus`) is frozen into the run's
   cache key together with the weights' SHA-256 and the :class:`RecordConfig`.
2. **shards**: lanes (one thread per core, see :class:`_Lanes`) decode the clips of a shard
   (or take them from worker processes that survive a crashing decoder, with
   ``decoder="process"``), then run its batches, at most about one shard ahead, so memory does
   not grow with the corpus. The fast inference path (:mod:`soundnet.fast`; forward hooks on
   the plain model otherwise) runs batches of clips sorted by length, zeroing each clip's
   frames past its end after every layer (so batching changes no statistic), and each layer is
   reduced to per-clip ``mean``, ``max`` and ``peak_s`` at once, so time-resolved activations
   of a whole corpus are never held. Each shard of ``shard_size`` clips (its clip rows in
   Parquet, its summaries as one float32 ``.npy`` matrix) is written, by the calling thread,
   to a temporary folder and renamed when complete.
3. **merge**: shards are streamed into ``clips.parquet``, ``activations/<layer>.<stat>.parquet``
   (the wide Parquet tables are written once, here) and ``topk.parquet`` (an exact streaming
   top-k), then ``run.json`` is marked complete.

A killed run resumes from its completed shards when the same command is run again: no clip is
lost or duplicated. Clips longer than ``chunk_s`` are streamed from disk in overlapping chunks
aligned to the deepest layer's hop; each frame is taken from a chunk that holds its whole
receptive field, so the stitched statistics equal one forward pass over the whole file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import multiprocessing as mp
import os
import sys
import threading
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

from interp.run.runningstats import TopK
from interp.run.store import (FORMAT_VERSION, HEAD_STATS, STATS, RunError, activation_file,
                          atomic_write_json, remove_tree, unit_columns, write_parquet)
from soundnet.audio import INPUT_SCALE, fit_length, iter_audio_blocks
from soundnet.errors import AudioError, ParameterError
from soundnet.fast import compiled
from soundnet.geometry import (HEADS_TILE_SAMPLES, SAMPLE_RATE_HZ, clean_frames, frames_to_time, frames_to_window,
                               head_frame_ok, layer_geometry, min_samples, n_frames)
from soundnet.model import HEAD_LAYERS, LAYERS, SPEC_BY_NAME

__all__ = ["RecordConfig", "RecordSummary", "LayerTap", "record_corpus", "default_workers", "summarize_batch",
           "summary_frames", "head_waveform"]

#: How clips are decoded: in threads of the recording process (``"thread"``), or in worker
#: processes that isolate a crashing decoder (``"process"``).
DECODERS: tuple[str, ...] = ("thread", "process")

_CLIP_COLUMNS = ("clip_id", "path", "label", "fold", "start_s", "end_s", "duration_s",
                 "sample_rate_hz", "status", "note", "order")


def default_workers() -> int:
    """Lanes of a recording by default: the CPU cores this process may use, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


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
        For the heads only: a clip without a clean head frame (shorter than 11.3 s, see
        :func:`soundnet.geometry.head_frame_ok`) is tiled (as the original SoundNet did) or
        padded to :data:`soundnet.geometry.HEADS_TILE_SAMPLES` (20 s) in a second pass; the
        conv-layer statistics always use the clip as ``short`` says.
    edge : {"drop", "keep"}
        ``drop`` (default) leaves out of every statistic the frames that read conv7's padded last
        frame (conv7's last frame when it has more than one; the head frames that read it when a
        clean head frame exists): see :func:`soundnet.geometry.clean_frames`. ``keep`` uses
        every frame.
    chunk_s : float (in seconds)
        Clips longer than this are streamed in chunks (exact stitching).
    batch_size, shard_size : int
        Clips per forward pass (at most) and per resumable shard. ``batch_size`` is an
        execution setting; ``shard_size`` is part of the cache key (shard boundaries must not
        move under a resume).
    workers : int
        Lanes: threads that each decode clips and run batches, torch's intra-op threads divided
        among them (see :class:`_Lanes`). Default: the CPU cores this process may use, at most
        8 (2 on a 2-core machine: one lane per core, single-threaded). 0 or 1: one lane. Each
        lane holds one batch in memory: a second lane added about 150 MB to the peak of the
        memory benchmark (batches of 16 short clips tiled to 20 s for the heads). On CUDA the
        lanes' batches are on the GPU at the same time.
    decoder : {"thread", "process"}
        Where clips are decoded: in the lanes themselves (default, the fastest), or in
        ``workers`` worker processes, which turn a decoder that crashes on a malformed file into
        that clip's status instead of the end of the run (for untrusted files); see
        :func:`_process_decode_stream`. ``workers``, ``batch_size``, ``decoder``, ``device``,
        ``fast`` and ``chunk_s`` are not part of the cache key.
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
    edge: str = "drop"
    chunk_s: float = 120.0
    batch_size: int = 16
    shard_size: int = 128
    workers: int = field(default_factory=default_workers)
    decoder: str = "thread"
    device: str = "cpu"
    fast: bool = True

    def __post_init__(self) -> None:
        bad = [layer for layer in self.layers if layer not in SPEC_BY_NAME]
        if bad or not self.layers:
            raise ParameterError(f"The 'layers' parameter of RecordConfig must name layers from {list(LAYERS)}. Got {list(self.layers)} instead.")
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers), key=LAYERS.index)))
        for name, allowed in (("short", ("pad", "tile", "none")), ("heads_short", ("tile", "pad", "none")),
                              ("edge", ("drop", "keep")), ("decoder", DECODERS)):
            if getattr(self, name) not in allowed:
                raise ParameterError(f"The '{name}' parameter of RecordConfig must be one of {allowed}. Got {getattr(self, name)!r} instead.")
        for name in ("topk", "batch_size", "shard_size"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"The '{name}' parameter of RecordConfig must be >= 1. Got {getattr(self, name)} instead.")
        if self.workers < 0:
            raise ParameterError(f"The 'workers' parameter of RecordConfig must be >= 0. Got {self.workers} instead.")
        if self.chunk_s < 30:
            raise ParameterError(f"The 'chunk_s' parameter of RecordConfig must be >= 30 s (the heads' receptive field is 14.5 s). Got {self.chunk_s} instead.")

    @classmethod
    def from_meta(cls, meta: dict) -> "RecordConfig":
        """The settings a run was recorded with (``run.json``'s ``settings``; defaults for any
        it lacks), e.g. to summarise other audio exactly as the run did."""
        fields = {f.name for f in dataclasses.fields(cls)}
        settings = {k: v for k, v in (meta.get("settings") or {}).items() if k in fields}
        if "layers" in settings:
            settings["layers"] = tuple(settings["layers"])
        return cls(**settings)

    def key_settings(self) -> dict[str, Any]:
        """The settings that change results (the cache key part)."""
        d = dataclasses.asdict(self)
        for k in ("batch_size", "workers", "decoder", "device", "fast", "chunk_s"):
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
        if self.wall_s > 0:
            how = (f"{self.audio_s:.1f} s of audio in {self.wall_s:.1f} s, "
                   f"{self.times_real_time:.0f}x real time")
        else:
            how = f"{self.audio_s:.1f} s of audio, nothing left to record"
        s = f"{self.n_ok} ok, {self.n_failed} failed ({self.n_clips} clips, {how}) -> {self.run_dir}"
        if self.resumed_shards:
            s += f"\n  resumed: {self.resumed_shards} shard(s) were already recorded"
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
    edge : {"keep", "drop"}
        ``drop`` also leaves conv7's padded last frame and the head frames that read it out of
        the summaries (not out of :attr:`outputs`); see :func:`summary_frames`.
    """

    def __init__(self, model: torch.nn.Module, layers: Iterable[str], *, keep: bool = False,
                 edge: str = "keep") -> None:
        if edge not in ("keep", "drop"):
            raise ParameterError(f"The 'edge' parameter of LayerTap must be 'keep' or 'drop'. Got {edge!r} instead.")
        self.model = model
        self.layers = tuple(layers)
        self.keep = keep
        self.edge = edge
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
                counted = valid if self.edge == "keep" else torch.as_tensor(
                    [summary_frames(int(n), name, edge=self.edge) for n in self.lengths], device=out.device)
                self.summaries[name] = summarize_batch(out, counted, name)
                if self.keep:
                    self.outputs[name] = out
            return out

        return hook


def head_waveform(y: np.ndarray, *, heads_short: str = "tile") -> np.ndarray:
    """The waveform the heads see for a clip: the clip itself when it has a clean head frame
    (:func:`soundnet.geometry.head_frame_ok`), else tiled or padded to
    :data:`soundnet.geometry.HEADS_TILE_SAMPLES` (20 s), as :func:`record_corpus` does.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform at 22050 Hz.
    heads_short : {"tile", "pad", "none"}

    Returns
    -------
    np.ndarray, shape (n_samples',)
    """
    if heads_short not in ("tile", "pad", "none"):
        raise ParameterError(f"The 'heads_short' parameter of head_waveform must be one of ('tile', 'pad', 'none'). "
                             f"Got {heads_short!r} instead.")
    if heads_short == "none" or head_frame_ok(len(y)).any():
        return y
    return fit_length(y, min_samples=max(HEADS_TILE_SAMPLES, min_samples("conv8")), policy=heads_short)


def summary_frames(n_samples: int, layer: str, *, edge: str = "drop") -> int:
    """How many leading frames of ``layer`` enter a clip's statistics.

    Parameters
    ----------
    n_samples : int
        Input length in samples.
    layer : str
    edge : {"drop", "keep"}
        ``keep``: every frame; ``drop``: the clean frames of
        :func:`soundnet.geometry.clean_frames`, which are always a prefix of the frames.

    Returns
    -------
    int
    """
    if edge == "keep":
        return n_frames(n_samples, layer)
    ok = clean_frames(n_samples, layer)
    return len(ok) if ok.all() else int(np.argmin(ok))


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
    mean, mx, arg = _REDUCE_FRAMES(out.float(), valid)
    res = {"mean": mean, "max": mx}
    none = (valid == 0)[:, None]
    arg_np = arg.cpu().numpy()
    peak_s = np.asarray(frames_to_time(arg_np, layer), dtype=np.float32)
    peak_s[none.cpu().numpy().repeat(u, axis=1)] = np.nan
    if layer in HEAD_LAYERS:
        mask = torch.arange(t, device=out.device)[None, :] < valid[:, None]  # (b, t)
        n = valid.clamp(min=1).to(torch.float32)[:, None]
        p = torch.softmax(out.float(), dim=1) * mask[:, None, :]
        res["prob"] = torch.where(none, torch.tensor(float("nan"), device=out.device), p.sum(dim=2) / n)
    summary = {k: v.cpu().numpy().astype(np.float32) for k, v in res.items()}
    summary["peak_s"] = peak_s
    summary["peak_frame"] = arg_np
    return summary


def _reduce_frames(out: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean, max, argmax)`` ``(batch, units)`` of ``out`` ``(batch, units, frames)`` over each
    item's first ``valid[i]`` (<= frames) frames; mean and max NaN where an item has none.

    Compiled with TorchScript (:data:`_REDUCE_FRAMES`) like the fast path's block loop, so that
    a lane's reductions do not take the GIL for each operation.
    """
    b, u, t = out.shape[0], out.shape[1], out.shape[2]
    none = (valid == 0)[:, None]
    if t > 0 and b > 0 and bool((valid == valid[0]).all()) and int(valid[0]) > 0:
        k = int(valid[0])  # every item has the same valid frames (no batch padding): no masks
        v = out[:, :, :k]
        mx, arg = v.max(dim=2)
        mean = v.sum(dim=2) / float(k)
    elif t > 0:
        mask = (torch.arange(t, device=out.device)[None, :] < valid[:, None])[:, None, :]
        mx, arg = torch.where(mask, out, torch.full_like(out, -float("inf"))).max(dim=2)
        mean = torch.where(mask, out, torch.zeros_like(out)).sum(dim=2) / valid.clamp(min=1).to(out.dtype)[:, None]
    else:
        mx = torch.full((b, u), -float("inf"), dtype=out.dtype, device=out.device)
        arg = torch.zeros((b, u), dtype=torch.long, device=out.device)
        mean = torch.zeros((b, u), dtype=out.dtype, device=out.device)
    nan = torch.full_like(mean, float("nan"))
    return torch.where(none, nan, mean), torch.where(none, nan, mx), arg


#: :func:`_reduce_frames`, compiled (:func:`soundnet.fast.compiled`).
_REDUCE_FRAMES: Callable = compiled(_reduce_frames)


# ---------------------------------------------------------------------------------------------
# decoding (threads or worker processes)
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


def _failed(row: dict, status: str, *, sample_rate_hz: int = -1, duration_s: float = float("nan")) -> _Decoded:
    return _Decoded(int(row["order"]), str(row["clip_id"]), None, status, "", duration_s, sample_rate_hz)


def _decode_row(row: dict, long_s: float) -> _Decoded:
    """Decode one corpus row into 22050 Hz mono audio, or a status saying why not.

    Parameters
    ----------
    row : dict
        A corpus-table row (``order``, ``clip_id``, ``path``, ``start_s``, ``end_s``, ``status``).
    long_s : float (in seconds)
        Excerpts longer than this are not decoded here: the result has ``long=True`` and no
        audio, and :meth:`_Engine.summarize_long` streams the file.

    Returns
    -------
    _Decoded
        ``audio`` (n_samples,) float32 in [-1, 1] when ``status == "ok"`` and not ``long``;
        ``note`` says what was done to the file (channels mixed, resampled, streamed).
    """
    from interp.corpus.corpora import read_clip
    from soundnet.audio import read_excerpt

    status = str(row.get("status", "ok") or "ok")
    if status != "ok":
        return _failed(row, status)
    order, cid = int(row["order"]), str(row["clip_id"])
    path = str(row["path"])
    note = ""
    sr_src = SAMPLE_RATE_HZ
    try:
        if path.startswith("probes://"):
            audio = read_clip(row)  # synthesized
        else:
            start = _float_or(row.get("start_s"), 0.0)
            end = _float_or(row.get("end_s"), float("nan"))
            duration = end - start if np.isfinite(end) else None
            audio, info = read_excerpt(path, offset_s=start, duration_s=duration,
                                       max_duration_s=long_s)  # the file is opened once
            sr_src, note = info.sample_rate_hz, info.note()
            if audio is None:  # longer than long_s: streamed by _Engine.summarize_long
                return _Decoded(order, cid, None, "ok", "; ".join(filter(None, [note, "streamed in chunks"])),
                                info.excerpt_s(start, duration), sr_src, long=True)
    except AudioError as exc:  # the source's rate when its header was read (-1: unreadable)
        return _failed(row, _audio_status(exc), sample_rate_hz=exc.sample_rate_hz or _header_rate(path))
    except Exception as exc:  # any other decoder failure is still a per-clip status
        return _failed(row, f"error: {type(exc).__name__}: {exc}", sample_rate_hz=_header_rate(path))
    if audio.size == 0:
        return _failed(row, "empty: no samples decoded", sample_rate_hz=sr_src, duration_s=0.0)
    if not (np.any(audio[:4096]) or np.any(audio)) and str(row.get("kind", "")) != "silence":  # (early out)
        return _failed(row, "silent: all samples are zero", sample_rate_hz=sr_src,
                       duration_s=len(audio) / SAMPLE_RATE_HZ)
    return _Decoded(order, cid, audio, "ok", note, len(audio) / SAMPLE_RATE_HZ, sr_src)


def _header_rate(path: str) -> int:
    """The sampling rate a clip's source declares, for the status row of a clip that failed
    (22050 for synthesized probes; -1 when the file's header cannot be read)."""
    if path.startswith("probes://"):
        return SAMPLE_RATE_HZ
    from soundnet.audio import audio_info

    try:
        return audio_info(path).sample_rate_hz
    except Exception:
        return -1


def _float_or(x: Any, default: float) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return default if np.isnan(v) else v


def _audio_status(exc: AudioError) -> str:
    return f"{exc.reason}: {exc.detail or exc.reason}"


def _worker_init(parent_pid: int) -> None:
    """Start a watchdog in a decoding worker: it exits when the recording process is gone.

    Without it, workers of a recorder killed with SIGKILL (or by the OOM killer) live on,
    blocked on their task queue.
    """
    import psutil

    try:
        born = psutil.Process(parent_pid).create_time()
    except psutil.Error:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                p = psutil.Process(parent_pid)
                alive = p.create_time() == born and p.status() != psutil.STATUS_ZOMBIE
            except psutil.Error:
                alive = False
            if not alive:
                os._exit(1)

    threading.Thread(target=watch, name="soundnet-parent-watch", daemon=True).start()


def _worker_main(conn, parent_pid: int, long_s: float) -> None:
    """A decoding worker: receives ``(index, row)``; sends back ``(index, _Decoded without its
    audio, n_samples)`` and then, when ``n_samples >= 0``, the audio as raw float32 bytes (no
    pickling of the samples); ``None`` or a closed pipe ends it."""
    _worker_init(parent_pid)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        i, row = msg
        res = _decode_row_safe(row, long_s)
        audio, res.audio = res.audio, None
        try:
            conn.send((i, res, -1 if audio is None else int(audio.size)))
            if audio is not None:
                conn.send_bytes(np.ascontiguousarray(audio, dtype=np.float32))
        except (EOFError, OSError):
            return


class _Worker:
    """One decoding process with its own pipe, holding at most one task."""

    def __init__(self, ctx, long_s: float) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, os.getpid(), long_s), daemon=True,
                                name="soundnet-decode")
        self.proc.start()
        child.close()
        self.task: tuple[int, dict] | None = None

    def send(self, i: int, row: dict) -> None:
        self.task = (i, row)
        self.conn.send((i, row))

    def receive(self) -> tuple[int, _Decoded]:
        """The result of the task held (raises EOFError / OSError if the worker died sending)."""
        i, res, n = self.conn.recv()
        if n >= 0:
            res.audio = np.empty(n, dtype=np.float32)
            if self.conn.recv_bytes_into(res.audio) != 4 * n:
                raise EOFError("short audio message")
        return i, res

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(timeout=5)
        self.conn.close()


#: Most decoded samples held ahead of the consumer (128 MiB of float32), whatever ``lookahead``.
_LOOKAHEAD_SAMPLES = 1 << 25


def _decode_row_safe(row: dict, long_s: float) -> _Decoded:
    try:
        return _decode_row(row, long_s)
    except Exception as exc:  # _decode_row catches decoder errors; this is a last resort
        return _failed(row, f"error: {type(exc).__name__}: {exc}")


def _process_decode_stream(rows: list[dict], *, workers: int, lookahead: int, long_s: float) -> Iterator[_Decoded]:
    """Decode rows in ``workers`` worker processes (``decoder="process"``); yield them in order.

    Each worker has its own pipe and one clip at a time; work is handed out as the consumer
    pulls, at most ``lookahead`` clips and about :data:`_LOOKAHEAD_SAMPLES` samples ahead of it
    (bounded memory). A worker that dies (a decoder crash, the OOM killer) is known by the clip
    it held: the clip is retried once in a fresh worker, then gets the status ``error: the
    decoder crashed``, and the run goes on. Use it for untrusted files. The generator's
    ``close()`` stops the workers (so does exhaustion).
    """
    from multiprocessing.connection import wait

    # fork on Linux: workers only decode (no torch calls), and a user's script needs no
    # `if __name__ == "__main__":` guard, which spawn and forkserver would require
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    n = len(rows)
    pool = [_Worker(ctx, long_s) for _ in range(min(workers, max(n, 1)))]
    done: dict[int, _Decoded] = {}
    held = 0  # samples decoded and not yet yielded
    retry: deque = deque()
    crashes: dict[int, int] = {}
    next_in = next_out = 0
    try:
        while next_out < n:
            if next_out in done:
                d = done.pop(next_out)
                held -= 0 if d.audio is None else d.audio.size
                yield d
                next_out += 1
                continue
            for k, w in enumerate(pool):  # hand out work, retries first, within the look-ahead
                if w.task is not None:
                    continue
                if not w.proc.is_alive():  # died idle (killed from outside): replace it
                    w.proc.join(timeout=5)
                    w.conn.close()
                    pool[k] = w = _Worker(ctx, long_s)
                if retry:
                    i = retry.popleft()
                elif next_in < n and next_in - next_out < lookahead and held < _LOOKAHEAD_SAMPLES:
                    i, next_in = next_in, next_in + 1
                else:
                    break
                try:
                    w.send(i, rows[i])
                except OSError:  # died just now: its sentinel says so below, and the clip is retried
                    pass
            busy = [w for w in pool if w.task is not None]
            if not busy:  # cannot happen: the clip awaited is in flight, retried or done
                raise RuntimeError(f"decoding stalled at clip {next_out}")
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for k, w in enumerate(pool):
                if w.task is None:
                    continue
                if w.conn in ready:
                    try:
                        i, res = w.receive()
                        done[i], w.task = res, None
                        held += 0 if res.audio is None else res.audio.size
                    except (EOFError, OSError):  # died while sending
                        ready.add(w.proc.sentinel)
                if w.proc.sentinel in ready or not w.proc.is_alive():
                    w.proc.join(timeout=5)
                    if w.task is not None:
                        i, row = w.task
                        crashes[i] = crashes.get(i, 0) + 1
                        if crashes[i] >= 2:
                            done[i] = _failed(row, f"error: the decoder crashed (worker exit code "
                                                   f"{w.proc.exitcode})")
                        else:
                            retry.append(i)
                    w.conn.close()
                    pool[k] = _Worker(ctx, long_s)
    finally:
        for w in pool:
            w.stop()


# ---------------------------------------------------------------------------------------------
# the forward passes
# ---------------------------------------------------------------------------------------------
#: Most input samples in one batch (about 16 clips of 30 s): longer clips get smaller batches.
_MAX_BATCH_SAMPLES = 16 * 30 * SAMPLE_RATE_HZ


@dataclass
class _Pass:
    """What one forward pass gave: per-layer summaries and (with ``keep``) the outputs."""

    summaries: dict[str, dict[str, np.ndarray]]
    outputs: dict[str, torch.Tensor]


class _Cancelled(BaseException):
    """A recording stopped (Ctrl-C) while a lane streamed a long file: not a per-clip status."""


class _Engine:
    """Model + taps: turns decoded audio into per-clip summaries.

    Parameters
    ----------
    model : SoundNet8 or FastSoundNet
        A plain :class:`soundnet.model.SoundNet8` (hooks through :class:`LayerTap`; with
        ``config.fast`` a :class:`soundnet.fast.FastSoundNet` copy runs every batch instead), or
        a ``FastSoundNet`` alone.
    config : RecordConfig

    Notes
    -----
    Exactness: in a batch of unequal lengths every frame beyond an item's length is zeroed after
    every block (by the taps of the plain model, or by the fast path itself), so each item's
    statistics equal an unbatched pass.
    """

    def __init__(self, model: torch.nn.Module, config: RecordConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.plain = model if hasattr(model, "run_block") else None
        self.fast = None if self.plain is not None else model
        if self.plain is not None and config.fast:
            self.fast = _maybe_fast(model, config)
            if self.fast is model:
                self.fast = None
        if self.plain is None and self.fast is None:
            raise ParameterError("The 'model' parameter of _Engine must be a SoundNet8 or a FastSoundNet. "
                                 f"Got {type(model).__name__} instead.")
        self.conv_layers = tuple(l for l in config.layers if l not in HEAD_LAYERS)
        self.head_layers = tuple(l for l in config.layers if l in HEAD_LAYERS)
        self.head_min = min_samples("conv8")
        self._plain_lock = threading.Lock()
        #: set to make :meth:`summarize_long` stop between chunks (raises :class:`_Cancelled`)
        self.cancel = threading.Event()

    # -- one batch ----------------------------------------------------------------------------
    def _forward(self, waves: list[np.ndarray], layers: tuple[str, ...], *, keep: bool = False) -> _Pass:
        """Run one batch of waveforms ([-1, 1], unscaled) and summarise ``layers`` per item."""
        if self.fast is not None:
            return self._forward_fast(waves, layers, keep=keep)
        lengths = [len(w) for w in waves]
        xt = self._batch_tensor(waves)
        last = max(LAYERS.index(l) for l in layers)
        need = [l for l in LAYERS[: last + 1] if l not in HEAD_LAYERS]
        # the taps are hooks on the one model: one forward pass through it at a time
        with self._plain_lock, LayerTap(self.plain, layers, keep=keep, edge=self.config.edge) as tap, \
                torch.inference_mode():
            tap.set_lengths(lengths)
            h = xt
            for name in need:
                h = self.plain.run_block(name, h)
            for name in HEAD_LAYERS:
                if name in layers:
                    self.plain.run_block(name, h)
        return _Pass(tap.summaries, tap.outputs)

    def _batch_tensor(self, waves: list[np.ndarray]) -> torch.Tensor:
        """``(batch, 1, max_len)`` float32 on the device, zero-padded, scaled x256."""
        t = max(len(w) for w in waves)
        x = torch.empty((len(waves), 1, t), dtype=torch.float32)
        for i, w in enumerate(waves):  # one pass per clip: scale into place, zero the rest
            torch.mul(torch.from_numpy(np.asarray(w, dtype=np.float32)), INPUT_SCALE, out=x[i, 0, : len(w)])
            x[i, 0, len(w):].zero_()
        return x.to(self.device)

    def _forward_fast(self, waves: list[np.ndarray], layers: tuple[str, ...], *, keep: bool) -> _Pass:
        """The fast path; a batch of unequal lengths is masked per item after every layer, as the
        hooks of the plain path do (see ``FastSoundNet.extract_features(lengths=...)``)."""
        xt = self._batch_tensor(waves)
        lengths = [len(w) for w in waves]
        with torch.inference_mode():
            feats = self.fast.extract_features(xt, layers=list(layers), contiguous=False, lengths=lengths)
        summaries, outputs = {}, {}
        for name in layers:
            out = feats[name]
            if out.shape[-1] == 0:
                continue  # as the hooks: a layer without frames gives no summary
            per_length = {n: summary_frames(n, name, edge=self.config.edge) for n in set(lengths)}
            valid = torch.tensor([per_length[n] for n in lengths], dtype=torch.long)
            summaries[name] = summarize_batch(out, valid, name)
            if keep:
                outputs[name] = out
        return _Pass(summaries, outputs)

    # -- clips --------------------------------------------------------------------------------
    def _batches(self, items: list[_Decoded], lengths: list[int], *, taper: bool = False) -> list[list[int]]:
        """Indices of ``items`` (sorted by length) in batches of at most ``batch_size`` items
        and :data:`_MAX_BATCH_SAMPLES` padded samples (see :func:`_tapered` for ``taper``)."""
        batches, i = [], 0
        while i < len(items):
            j = i + 1
            while (j < len(items) and j - i < self.config.batch_size
                   and (j - i + 1) * lengths[j] <= _MAX_BATCH_SAMPLES):
                j += 1
            batches.append(list(range(i, j)))
            i = j
        return _tapered(batches, self.config.batch_size) if taper else batches

    def plan(self, clips: list[_Decoded], *, taper: bool = False
             ) -> tuple[dict[int, dict[str, dict[str, np.ndarray]]], list[Callable[[], tuple[int, float]]]]:
        """The batches of :meth:`summarize`, as jobs that can run on any thread, in any order.

        Parameters
        ----------
        clips : list of _Decoded
            Decoded ok clips (with audio).
        taper : bool
            End each pass with small batches (:func:`_tapered`): for the corpus's last shard,
            so that the lanes finish together.

        Returns
        -------
        out : dict of int to dict
            Per clip (by order), per layer, ``{stat: (n_units,)}``; filled in as the jobs run
            (each job writes its own clips' entries).
        jobs : list of callable
            Each runs one batch and returns ``(n_clips, audio_s)`` of the main pass (``(0,
            0.0)`` for a second-pass batch of the heads). Batches are fixed here, from the
            clips alone: the results do not depend on the order or the thread of the jobs.
        """
        cfg = self.config
        out: dict[int, dict[str, dict[str, np.ndarray]]] = {c.order: {} for c in clips}
        # conv layers (and heads for clips long enough), batched by length
        items = sorted(clips, key=lambda c: len(c.audio))
        waves_all: list[np.ndarray | None] = [fit_length(c.audio, min_samples=cfg.min_samples, policy=cfg.short)
                                              for c in items]
        lengths = [len(w) for w in waves_all]
        jobs: list[Callable[[], tuple[int, float]]] = []
        # clips without a clean head frame get their heads from a second pass, tiled (or padded)
        # to 20 s: the main pass leaves their heads alone (the jobs may run in any order)
        second = self.head_layers and cfg.heads_short != "none"
        short = [c for c in items if not head_frame_ok(len(c.audio)).any()] if second else []
        skip = (set(self.head_layers), {c.order for c in short})

        def main_pass(idx: list[int]) -> tuple[int, float]:
            batch = [items[k] for k in idx]
            self._collect(self._forward([waves_all[k] for k in idx], cfg.layers), batch, out, skip=skip)
            for k in idx:
                waves_all[k] = None  # (the clip's audio stays with the shard until it is written)
            return len(batch), sum(len(c.audio) for c in batch) / SAMPLE_RATE_HZ

        jobs += [lambda idx=idx: main_pass(idx) for idx in self._batches(items, lengths, taper=taper)]
        if second:

            def heads_pass(batch: list[_Decoded]) -> tuple[int, float]:
                waves = [head_waveform(c.audio, heads_short=cfg.heads_short) for c in batch]
                self._collect(self._forward(waves, self.head_layers), batch, out)
                return 0, 0.0

            batches = [short[i: i + cfg.batch_size] for i in range(0, len(short), cfg.batch_size)]
            jobs += [lambda b=b: heads_pass(b) for b in (_tapered(batches, cfg.batch_size) if taper else batches)]
        return out, jobs

    def summarize(self, clips: list[_Decoded], *,
                  progress: Callable[[int, float], None] | None = None) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """Per clip (by order) and layer, the summaries ``{stat: (n_units,)}``.

        Parameters
        ----------
        clips : list of _Decoded
            Decoded ok clips (with audio).
        progress : callable, optional
            Called as ``progress(n_clips, audio_s)`` after each batch of the main pass.
        """
        out, jobs = self.plan(clips)
        for job in jobs:
            n_clips, audio_s = job()
            if progress is not None and n_clips:
                progress(n_clips, audio_s)
        return out

    @staticmethod
    def _collect(res: _Pass, batch: list[_Decoded], out: dict,
                 skip: tuple[set[str], set[int]] = (set(), set())) -> None:
        """Store a pass's summaries per clip, except ``skip``'s layers for ``skip``'s clips."""
        layers, orders = skip
        for layer, summ in res.summaries.items():
            for j, c in enumerate(batch):
                if layer not in layers or c.order not in orders:
                    out[c.order][layer] = {k: v[j] for k, v in summ.items()}

    def summarize_long(self, row: dict) -> tuple[dict[str, dict[str, np.ndarray]], float]:
        """Summaries of one long file, streamed in chunks; returns ``(summaries, duration_s)``.

        Chunks of about ``chunk_s`` overlap by :func:`_chunk_plan`'s margin and start on
        multiples of conv8's hop (a multiple of every layer's hop), so chunk frames are whole-file
        frames; each frame is taken from the first chunk that holds its whole receptive field (or
        from the file's first / last chunk for the frames that reach into the zero padding).
        """
        cfg = self.config
        chunk, step = _chunk_plan(cfg.chunk_s)
        acc = {l: _StreamStats(l) for l in cfg.layers}
        start_s = _float_or(row.get("start_s"), 0.0)
        end = _float_or(row.get("end_s"), float("nan"))
        duration = None if not np.isfinite(end) else end - start_s
        buf = np.zeros(0, dtype=np.float32)
        s0 = 0          # global sample index of buf[0]
        total = None    # known once the stream ends
        blocks = _excerpt_blocks(row["path"], start_s, duration)
        while True:
            if self.cancel.is_set():
                raise _Cancelled(f"recording of {row['path']} stopped")
            parts = [buf]
            have = len(buf)
            while total is None and have < chunk:
                blk = next(blocks, None)
                if blk is None:
                    total = s0 + have
                else:
                    parts.append(blk)
                    have += len(blk)
            buf = np.concatenate(parts) if len(parts) > 1 else buf
            piece = buf[:chunk]
            if len(piece) == 0:
                break
            at_end = total is not None and s0 + len(piece) >= total
            res = self._forward([piece], cfg.layers, keep=True)
            for layer in cfg.layers:
                o = res.outputs.get(layer)
                if o is not None:
                    counted = summary_frames(total, layer, edge=cfg.edge) if at_end else None
                    acc[layer].add_chunk(o[0].float().cpu().numpy(), s0, len(piece), at_start=s0 == 0,
                                         at_end=at_end, counted_frames=counted)
            if at_end:
                break
            buf = buf[step:]
            s0 += step
        if total is None or total == 0:
            raise AudioError(row["path"], "empty", "no samples decoded")
        summaries = {l: r for l, r in ((l, a.result()) for l, a in acc.items()) if r}
        # heads need 9.5 s; a long file (> chunk_s >= 30 s) always has head frames
        return summaries, total / SAMPLE_RATE_HZ


def summarize_waves(model: torch.nn.Module, waves: Iterable[np.ndarray], *, config: RecordConfig | None = None,
                    **settings: Any) -> dict[str, dict[str, np.ndarray]]:
    """Per-clip summaries of waveforms held in memory, exactly as :func:`record_corpus` makes them.

    The same engine as the recorder (short-clip policy, batch masking, ``edge``, the heads' 20 s
    tiling), for audio that is not a corpus on disk: perturbed clips, clips under an ablation
    (pass ``fast=False`` so that hooks on the plain model are honoured), looped windows.

    Parameters
    ----------
    model : SoundNet8
    waves : iterable of np.ndarray, each (n_samples,)
        Mono float32 in [-1, 1] at 22050 Hz (scaled x256 here).
    config : RecordConfig, optional
        Keyword ``settings`` override its fields (``layers=("conv5",)``, ``fast=False``, ...).

    Returns
    -------
    dict ``{layer: {stat: np.ndarray (n_clips, n_units) float32}}``
        Stats as in a run directory (``mean``, ``max``, ``peak_s``; ``prob`` for heads); NaN rows
        for clips that gave a layer no frame.
    """
    cfg = dataclasses.replace(config or RecordConfig(), **settings)
    items = [_Decoded(i, str(i), np.asarray(w, dtype=np.float32), "ok", "", len(w) / SAMPLE_RATE_HZ, SAMPLE_RATE_HZ)
             for i, w in enumerate(waves)]
    res = _Engine(model, cfg).summarize([d for d in items if len(d.audio)]) if items else {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in cfg.layers:
        stats = STATS + (HEAD_STATS if layer in HEAD_LAYERS else ())
        units = SPEC_BY_NAME[layer].out_channels
        out[layer] = {st: np.full((len(items), units), np.nan, dtype=np.float32) for st in stats}
        for i in range(len(items)):
            summ = res.get(i, {}).get(layer)
            if summ:
                for st in stats:
                    out[layer][st][i] = summ[st]
    return out


def _chunk_plan(chunk_s: float) -> tuple[int, int]:
    """``(chunk_samples, step_samples)`` of the chunked pass over long files.

    Both are multiples of conv8's hop (65,536 samples, a multiple of every layer's hop). Chunks
    overlap by ``margin`` = conv8's receptive field plus one hop, rounded up to a hop: a frame
    of any layer that does not fit whole in one chunk then fits whole in the next.
    """
    g = layer_geometry("conv8")
    hop = g.hop_samples
    margin = -(-(g.receptive_field_samples + hop) // hop) * hop
    chunk = max(int(chunk_s * SAMPLE_RATE_HZ) // hop * hop, margin + hop)
    return chunk, chunk - margin


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
    """Running mean/max/argmax (and head probabilities) of one layer over the chunks of a clip."""

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

    def add_chunk(self, acts: np.ndarray, s0: int, n: int, *, at_start: bool, at_end: bool,
                  counted_frames: int | None = None) -> None:
        """Fold in the frames ``acts`` ``(n_units, n_frames)`` of a chunk that starts at global
        sample ``s0`` (a multiple of the hop) and holds ``n`` samples; ``counted_frames`` (known
        at the last chunk) excludes the whole file's frames from that index on."""
        t = acts.shape[1]
        j = np.arange(t)
        start = self.first + j * self.hop
        ok = ((start >= 0) | at_start) & ((start + self.rf <= n) | at_end)
        g = s0 // self.hop + j
        ok &= g >= self.next_frame
        if counted_frames is not None:
            ok &= g < counted_frames
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
        better = cmax > self.max  # ties keep the earlier frame, as argmax over the whole file
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
    from interp.corpus.corpora import corpus_sha256

    return corpus_sha256(df)


def _versions() -> dict[str, str]:
    """Versions of the packages that shape a recording, and Python's."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("soundnet-interp", "torch", "numpy", "pandas", "pyarrow", "soundfile", "soxr", "librosa"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return tuple(out.items())


def _normalise_corpus(corpus: pd.DataFrame | str | os.PathLike, **corpus_options) -> tuple[pd.DataFrame, str]:
    """The corpus as a table in corpus order with the core columns, and its spec string."""
    from interp.corpus.corpora import load_corpus

    if isinstance(corpus, pd.DataFrame):
        df, spec = corpus.copy(), "<DataFrame>"
        missing = [c for c in ("clip_id", "path") if c not in df.columns]
        if missing:
            raise ParameterError(f"The 'corpus' parameter of record_corpus must be a corpus table "
                                 f"(interp.corpus.corpora.load_corpus) with columns clip_id and path. "
                                 f"Got a table without {missing} instead.")
    else:
        spec = str(corpus)
        df = load_corpus(corpus, **corpus_options)
    if len(df) == 0:
        raise ParameterError(f"The 'corpus' parameter of record_corpus must hold at least one clip. "
                             f"Got an empty corpus ({spec!r}) instead.")
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


#: A shard's per-clip summaries: one float32 ``.npy`` matrix ``(n_rows, n_ok)`` (no pickle): a
#: block of rows per layer and statistic, in :func:`_shard_blocks` order, and a column per ok clip,
#: in corpus order (the ok rows of the shard's ``clips.parquet``). The merge reads each table's
#: block as one contiguous, unit-major slice (:class:`_ShardMatrix`). Parquet is written once, at
#: the merge.
_SHARD_MATRIX = "summaries.npy"


def _shard_blocks(layers: Iterable[str], units: dict[str, int]) -> list[tuple[str, str, int, int]]:
    """``(layer, stat, first_row, n_units)`` of each block of a shard's summary matrix."""
    blocks, row = [], 0
    for layer in layers:
        for stat in STATS + (HEAD_STATS if layer in HEAD_LAYERS else ()):
            blocks.append((layer, stat, row, units[layer]))
            row += units[layer]
    return blocks


@dataclass(frozen=True)
class _ShardMatrix:
    """Where a shard's summary matrix (:data:`_SHARD_MATRIX`) lies in its file, so that a block of
    its rows is one read at an offset (no file left open or mapped: a merge of thousands of
    shards would run out of file descriptors)."""

    path: Path
    shape: tuple[int, int]  # (rows, ok clips)
    offset: int  # bytes of the .npy header

    @classmethod
    def open(cls, path: Path, shape: tuple[int, int]) -> "_ShardMatrix":
        """Check the header of ``path`` against the ``shape`` expected (:class:`RunError`)."""
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            got, fortran, dtype = read_header(fh)
            offset = fh.tell()
        if tuple(got) != tuple(shape) or fortran or dtype != np.float32:
            raise RunError(f"Shard {str(path.parent)!r} holds summaries of shape {tuple(got)} ({dtype}), "
                           f"not {tuple(shape)} float32; delete the run folder and record again.")
        return cls(path, tuple(shape), offset)

    def rows(self, row0: int, n: int) -> np.ndarray:
        """Rows ``[row0, row0 + n)``: ``(n, ok clips)`` float32."""
        n_ok = self.shape[1]
        if n_ok == 0:
            return np.zeros((n, 0), np.float32)
        return np.fromfile(self.path, np.float32, count=n * n_ok, offset=self.offset + row0 * n_ok * 4).reshape(n, n_ok)


def _shard_done(run_dir: Path, i: int) -> bool:
    d = _shard_dir(run_dir, i)
    # a shard of an older layout (no summaries file) is recorded again
    return (d / "_SUCCESS").is_file() and (d / _SHARD_MATRIX).is_file()


def _write_shard(run_dir: Path, i: int, rows: list[dict], decoded: list[_Decoded],
                 summaries: dict[int, dict], units: dict[str, int], layers: tuple[str, ...]) -> None:
    """Write one shard to a temporary folder and rename it into place when complete.

    The folder holds ``clips.parquet`` (every row with its status), the ok clips' summaries
    (:data:`_SHARD_MATRIX`) and ``_SUCCESS``.

    Parameters
    ----------
    rows : list of dict
        The shard's corpus rows.
    decoded : list of _Decoded
        One per row (any order): status, note, duration.
    summaries : dict
        ``{order: {layer: {stat: (n_units,)}}}`` for the ok clips.
    units : dict
        Units per layer.
    layers : tuple of str
    """
    final = _shard_dir(run_dir, i)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    by_order = {d.order: d for d in decoded}
    clip_rows = []
    for r in rows:
        d = by_order[int(r["order"])]
        row = dict(r)
        row.update(status=d.status, note=d.note, duration_s=float(d.duration_s), sample_rate_hz=int(d.sample_rate_hz))
        clip_rows.append(row)
    write_parquet(tmp / "clips.parquet", pd.DataFrame(clip_rows))
    ok = [d for d in sorted(decoded, key=lambda d: d.order) if d.status == "ok"]
    blocks = _shard_blocks(layers, units)
    mat = np.full((sum(n for *_, n in blocks), len(ok)), np.nan, dtype=np.float32)
    per_clip = [summaries.get(d.order, {}) for d in ok]
    for layer, stat, row0, n in blocks:  # one block at a time (NaN where a clip has none)
        values = [s[layer].get(stat) if layer in s else None for s in per_clip]
        have = [j for j, v in enumerate(values) if v is not None]
        if len(have) == len(values):
            np.stack(values, axis=1, out=mat[row0:row0 + n])
        elif have:
            mat[row0:row0 + n, have] = np.stack([values[j] for j in have], axis=1)
    np.save(tmp / _SHARD_MATRIX, mat)
    (tmp / "_SUCCESS").write_text("ok\n")
    remove_tree(final)
    os.replace(tmp, final)


@functools.lru_cache(maxsize=None)
def _stat_schema(n_units: int) -> pa.Schema:
    """The schema of an activation table: ``clip_id`` and ``n_units`` float32 unit columns, none
    nullable (a clip without a value has NaN; required columns carry no definition levels, 8 %
    of the writing time)."""
    return pa.schema([pa.field("clip_id", pa.string(), nullable=False)]
                     + [pa.field(c, pa.float32(), nullable=False) for c in unit_columns(n_units)])


def _stat_table(clip_ids: np.ndarray, block: np.ndarray) -> pa.Table:
    """``clip_id`` plus one float32 column per unit (``"0"``, ``"1"``, ...) of a unit-major
    ``block`` ``(n_units, n_rows)``."""
    n_units, n_rows = block.shape
    # one Arrow array of the unit-major values, sliced into columns (no copies; half the time
    # of one pa.array per column)
    flat = pa.array(np.ascontiguousarray(block, dtype=np.float32).reshape(-1))
    return pa.Table.from_arrays([pa.array(clip_ids.astype(str), pa.string())]
                                + [flat.slice(i * n_rows, n_rows) for i in range(n_units)],
                                schema=_stat_schema(n_units))


#: Parquet settings of the activation tables: no dictionary or statistics for the float unit
#: columns (they do not help and cost 1.5 to 2.5x the writing time).
_ACT_PARQUET = {"use_dictionary": ["clip_id"], "write_statistics": ["clip_id"]}
#: Rows gathered from the shards into one row group of an activation table (most of the cost
#: of writing a wide table is per column chunk; 4096 rows of conv7 are 16 MB).
_ROW_GROUP_ROWS = 4096


def _row_groups(sizes: list[int]) -> list[list[int]]:
    """Consecutive shards (by index) gathered into groups of at least :data:`_ROW_GROUP_ROWS`
    rows (the last group: what is left); ``sizes`` are the shards' rows."""
    groups, rows = [[]], 0
    for i, n in enumerate(sizes):
        if rows >= _ROW_GROUP_ROWS:
            groups.append([])
            rows = 0
        groups[-1].append(i)
        rows += n
    return groups


def _merge(run_dir: Path, n_shards: int, layers: tuple[str, ...], units: dict[str, int], k: int) -> pd.DataFrame:
    """Stream the shards into the final tables; returns the clip table.

    Each ``activations/<layer>.<stat>.parquet`` gets row groups of about
    :data:`_ROW_GROUP_ROWS` rows (whole shards gathered) and each layer's top-k is an exact
    streaming top-k over the shards. Each job reads its block of rows of each shard's summary
    matrix (:class:`_ShardMatrix`: contiguous, read at its offset, no file left open); the
    jobs run on up to four threads (Parquet encoding and numpy release the GIL), the largest
    first. Memory: one row group's block per job at a time, a :class:`TopK` of
    ``(n_units, k)`` per layer, and the clip table itself.
    """
    shard_dirs = [_shard_dir(run_dir, i) for i in range(n_shards)]
    parts = [pd.read_parquet(d / "clips.parquet") for d in shard_dirs]
    clips = pd.concat(parts, ignore_index=True).sort_values("order", kind="stable").reset_index(drop=True)
    if clips["clip_id"].duplicated().any() or len(clips) != clips["order"].nunique():
        raise RunError(f"Shards of {str(run_dir)!r} overlap; delete the folder and record again.")
    front = [c for c in _CLIP_COLUMNS if c in clips.columns]
    clips = clips[front + [c for c in clips.columns if c not in front]]
    blocks = _shard_blocks(layers, units)
    n_rows = sum(n for *_, n in blocks)
    mats, orders, ids = [], [], []
    for d, part in zip(shard_dirs, parts):
        ok = part[part["status"] == "ok"].sort_values("order", kind="stable")
        mats.append(_ShardMatrix.open(d / _SHARD_MATRIX, (n_rows, len(ok))))
        orders.append(ok["order"].to_numpy(np.int64))
        ids.append(ok["clip_id"].to_numpy(str))
    groups = _row_groups([len(o) for o in orders])
    index = _ClipIndex.of(clips)
    act_dir = run_dir / "activations"
    act_dir.mkdir(exist_ok=True)

    def write_stat(layer: str, stat: str, row0: int, n: int) -> None:
        out = act_dir / activation_file(layer, stat)
        tmp = out.with_name(f".{out.name}.tmp")
        schema = _stat_schema(n)
        # a buffered stream: the writer's many small writes (a few per column chunk) become
        # few large ones (11 % of the writing time of a 1024-column table)
        with pa.output_stream(tmp, buffer_size=1 << 20) as sink, \
                pq.ParquetWriter(sink, schema, **_ACT_PARQUET) as writer:
            for group in groups:  # few, large row groups
                block = np.concatenate([mats[i].rows(row0, n) for i in group], axis=1)
                writer.write_table(_stat_table(np.concatenate([ids[i] for i in group]), block))
        os.replace(tmp, out)

    def layer_topk(layer: str) -> pa.Table:
        rows = {stat: row0 for name, stat, row0, _ in blocks if name == layer}
        n = units[layer]
        top = TopK(n, k)  # ties: corpus order
        for group in groups:  # a row group's shards at once
            mx, pk = (np.concatenate([mats[i].rows(rows[stat], n) for i in group], axis=1).T
                      for stat in ("max", "peak_s"))
            top.add(mx, np.concatenate([orders[i] for i in group]), pk)
        return _topk_table(top, layer, index)

    from concurrent.futures import ThreadPoolExecutor

    # the top-k first (this thread writes their table while the pool writes the activation
    # tables), then the largest tables first, so that the threads finish together
    by_size = sorted(blocks, key=lambda b: -b[3])
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="merge") as pool:
        tops = {layer: pool.submit(layer_topk, layer) for layer in sorted(layers, key=lambda l: -units[l])}
        writes = [pool.submit(write_stat, *block) for block in by_size]
        writes.append(pool.submit(write_parquet, run_dir / "clips.parquet", clips))
        write_parquet(run_dir / "topk.parquet", pa.concat_tables([tops[layer].result() for layer in layers]),
                      use_dictionary=["layer", "clip_id"])  # (a dictionary of floats: 40 % of the time)
        for f in writes:
            f.result()
    return clips


def _topk_table(top: TopK, layer: str, clips: "_ClipIndex") -> pa.Table:
    """The ``topk.parquet`` rows of one layer (see docs/run-directory.md), as Arrow columns
    (no Python object per row)."""
    unit_idx, rank = np.nonzero(top.keys_ >= 0)
    keys = top.keys_[unit_idx, rank]
    where = np.searchsorted(clips.orders, keys)  # positions of the keys (orders, sorted)
    if len(keys) and (where.max() >= len(clips.orders) or (clips.orders[where] != keys).any()):
        raise RunError(f"The top-k of {layer} names clips that no shard holds; delete the run folder and record again.")
    dur = clips.duration_s[where]
    peak_s = top.payload_[unit_idx, rank]
    # receptive-field window of the peak frame, clipped to the clip (a peak in the silence that
    # short="pad" appended keeps its window's right end)
    frame = np.rint((peak_s * SAMPLE_RATE_HZ - layer_geometry(layer).first_centre_samples)
                    / layer_geometry(layer).hop_samples).astype(np.int64) if len(peak_s) else np.zeros(0, np.int64)
    w_start, w_end = frames_to_window(frame, layer)
    start = np.clip(w_start, 0.0, None)
    end = np.minimum(w_end, dur)
    end = np.where(end > start, end, w_end)
    return pa.table({
        "layer": pa.array(np.full(len(keys), layer), pa.string()), "unit": unit_idx.astype(np.int32),
        "rank": rank.astype(np.int32), "clip_id": clips.clip_ids.take(pa.array(where)),
        "value": top.values_[unit_idx, rank].astype(np.float32), "peak_s": peak_s.astype(np.float32),
        "start_s": start.astype(np.float32), "end_s": end.astype(np.float32)})


@dataclass(frozen=True)
class _ClipIndex:
    """The clip table's columns that the top-k rows look up, by position in corpus order."""

    orders: np.ndarray  # (n_clips,) int64, ascending
    clip_ids: pa.Array  # (n_clips,) string
    duration_s: np.ndarray  # (n_clips,) float64

    @classmethod
    def of(cls, clips: pd.DataFrame) -> "_ClipIndex":
        """From a clip table sorted by ``order``."""
        return cls(clips["order"].to_numpy(np.int64), pa.array(clips["clip_id"], pa.string()),
                   clips["duration_s"].to_numpy(np.float64))


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
        :func:`interp.corpus.corpora.load_corpus` recognises.
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
        Passed to :func:`interp.corpus.corpora.load_corpus` (``esc10=True``, ``segment_s=10``, ...).
    max_shards : int, optional
        Stop after processing this many new shards (for tests of resumption).

    Returns
    -------
    RecordSummary
        ``str(summary)`` starts ``"N ok, M failed"``.
    """
    from soundnet.weights import resolve_weights, sha256_file_memo

    config = dataclasses.replace(config or RecordConfig(), **settings) if settings else (config or RecordConfig())
    if max_shards is not None and (isinstance(max_shards, bool) or int(max_shards) < 0):
        raise ParameterError(f"The 'max_shards' parameter of record_corpus must be an int >= 0 or None. "
                             f"Got {max_shards!r} instead.")
    if model is None:
        from soundnet.model import check_device

        check_device(config.device, "record_corpus")  # before anything is written
    run_dir = Path(out_dir)
    df, spec = _normalise_corpus(corpus, **(corpus_options or {}))
    weights_path = resolve_weights(weights)
    key = {"weights_sha256": sha256_file_memo(weights_path), "corpus_sha256": _corpus_sha256(df),
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

    def get_model() -> torch.nn.Module:
        if model is not None:
            return model
        if config.fast:  # the fast path alone, built for the layers recorded (no plain model)
            from soundnet.fast import FastSoundNet

            return FastSoundNet.from_weights(weights_path, device=config.device, layers=config.layers)
        from soundnet.model import load_soundnet

        return load_soundnet(str(weights_path), device=config.device)

    units = {l: SPEC_BY_NAME[l].out_channels for l in config.layers}
    meta = {"format": FORMAT_VERSION, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "weights_sha256": key["weights_sha256"], "weights_path": str(weights_path),
            "corpus": {"spec": spec, "n_clips": len(df), "sha256": key["corpus_sha256"]},
            "settings": dataclasses.asdict(config) | {"layers": list(config.layers)},
            "layers": list(config.layers), "units": units, "versions": _versions(),
            "key": key, "complete": False}
    if not meta_path.is_file():
        atomic_write_json(meta_path, meta)
    n_shards = max(1, -(-len(df) // config.shard_size))
    todo = [i for i in range(n_shards) if not _shard_done(run_dir, i)]
    resumed = n_shards - len(todo)
    for stale in (run_dir / "shards").glob(".tmp-*") if (run_dir / "shards").is_dir() else []:
        remove_tree(stale)
    if max_shards is not None:
        todo = todo[:int(max_shards)]
    records = df.to_dict("records")
    del df
    with _frozen_gc():
        t0 = time.perf_counter()
        audio_s = _process_shards(run_dir, records, todo, get_model, config, units, progress=progress)
        wall = time.perf_counter() - t0
        if not all(_shard_done(run_dir, i) for i in range(n_shards)):
            clips = _done_clips(run_dir, n_shards)
            return _summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)
        clips = _merge(run_dir, n_shards, config.layers, units, config.topk)
    meta = json.loads(meta_path.read_text())
    meta.update(complete=True, finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                n_ok=int((clips["status"] == "ok").sum()), n_failed=int((clips["status"] != "ok").sum()))
    atomic_write_json(meta_path, meta)
    return _summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)


def _done_clips(run_dir: Path, n_shards: int) -> pd.DataFrame:
    """The clip rows of the finished shards (empty table with the core columns when none)."""
    parts = [pd.read_parquet(_shard_dir(run_dir, i) / "clips.parquet") for i in range(n_shards)
             if _shard_done(run_dir, i)]
    if not parts:
        return pd.DataFrame({"clip_id": pd.Series([], dtype=str), "status": pd.Series([], dtype=str),
                             "duration_s": pd.Series([], dtype=float)})
    return pd.concat(parts, ignore_index=True)


def _tapered(batches: list[list], batch_size: int) -> list[list]:
    """``batches`` with their last ``batch_size`` items or so re-cut into batches of a quarter of
    that size, in the same order: the lanes, taking the batches as they finish, then end within
    a small batch of each other (two lanes ending a 200-clip recording 30 ms apart waited for
    the slower one), for about 15 % more work on those items."""
    small = max(1, batch_size // 4)
    tail: list = []
    while batches and sum(map(len, tail)) < batch_size:
        tail.insert(0, batches[-1])
        batches = batches[:-1]
    # each batch cut on its own: no piece is larger than a batch already within the sample cap
    return batches + [b[i:i + small] for b in tail for i in range(0, len(b), small)]


def _shard_jobs(engine: _Engine, rows: list[dict], decoded: list[_Decoded], *, last: bool = False
                ) -> tuple[dict[int, dict], list[Callable[[], tuple[int, float]]]]:
    """The work of one shard's decoded clips, as jobs; the one code path of every engine.

    ``decoded`` is in corpus order. Ok clips are planned in one :meth:`_Engine.plan` (so that
    batches do not depend on the engine or on threads; the corpus's ``last`` shard ends with
    small batches); each long clip is one job streaming it with
    :meth:`_Engine.summarize_long`, and a long clip that fails to stream gets its error as
    status (``decoded`` is updated in place).

    Returns
    -------
    summaries : dict of int to dict
        Per clip order, per layer, ``{stat: (n_units,) array}``, complete once every job has run.
    jobs : list of callable
        Each returns ``(n_clips, audio_s)`` recorded, for progress.
    """
    by_order = {int(r["order"]): r for r in rows}
    short = [d for d in decoded if d.status == "ok" and not d.long]
    summaries, jobs = engine.plan(short, taper=last) if short else ({}, [])

    def long_job(d: _Decoded) -> tuple[int, float]:
        try:
            summaries[d.order], d.duration_s = engine.summarize_long(by_order[d.order])
        except AudioError as exc:
            d.status = _audio_status(exc)
        except Exception as exc:  # a broken long file is a per-clip status too
            d.status = f"error: {type(exc).__name__}: {exc}"
        return (1, d.duration_s) if d.status == "ok" else (0, 0.0)

    jobs += [lambda d=d: long_job(d) for d in decoded if d.status == "ok" and d.long]
    return summaries, jobs


def _summarize_shard(engine: _Engine, rows: list[dict], decoded: list[_Decoded], *,
                     progress: Callable[[int, float], None] | None = None) -> dict[int, dict]:
    """Summaries of one shard's decoded clips: :func:`_shard_jobs` run one after the other (the
    audio of the clips is released afterwards).

    Returns
    -------
    dict of int to dict
        Per clip order, per layer, ``{stat: (n_units,) array}``.
    """
    summaries, jobs = _shard_jobs(engine, rows, decoded)
    for job in jobs:
        n_clips, audio_s = job()
        if progress is not None and n_clips:
            progress(n_clips, audio_s)
    for d in decoded:
        d.audio = None  # the shard keeps summaries only
    return summaries


@dataclass
class _ShardWork:
    """One shard's state in :class:`_Lanes`."""

    index: int
    rows: list[dict]
    decoded: list[_Decoded | None]
    last: bool = False  # the corpus's last shard
    n_decoded: int = 0
    samples: int = 0  # of the decoded audio held
    summaries: dict | None = None
    jobs: deque | None = None  # not handed out yet; None until the shard is planned
    jobs_left: int = -1  # not finished yet

    @property
    def done(self) -> bool:
        """Planned, and every job has run."""
        return self.jobs is not None and self.jobs_left == 0


class _Lanes:
    """Record shards on ``lanes`` threads, each decoding clips and running batches itself.

    Every lane takes the next task: a batch of a shard whose clips are all decoded (first,
    unless no lane is decoding: then one lane decodes ahead while the others run batches), or
    the next clip to decode, at most one shard ahead of the oldest unfinished shard (and, while
    that shard's batches are still being handed out, at most ``lookahead`` clips and about
    :data:`_LOOKAHEAD_SAMPLES` samples of the next one). With one lane per core and torch's
    intra-op threads divided among the lanes, decoding, batches and the main thread's shard
    writing overlap without more busy threads than cores; the batches' tensor loops run compiled
    (:func:`soundnet.fast.compiled`), so that a lane does not wait for the GIL at each
    operation: on 2 cores, two lanes record 200 clips of 5 s (44.1 kHz WAV, conv1..conv7) in
    0.65 to 0.71 s, merge included. Batches are fixed per shard from its clips alone
    (:func:`_shard_jobs`; the corpus's last shard ends with smaller batches), so results do not
    depend on the lanes or their timing.

    With ``stream`` (the worker processes of ``decoder="process"``), a lane decodes by taking
    the next clip from that ordered stream instead of decoding it itself.
    """

    def __init__(self, shards: list[_ShardWork], *, lanes: int, lookahead: int, long_s: float,
                 stream: Iterator[_Decoded] | None = None) -> None:
        self.shards = shards
        self.starts = np.cumsum([0] + [len(w.rows) for w in shards])  # first position of each shard
        self.next_pos = 0  # next clip (position over the shards' rows) to hand out for decoding
        self.stream, self.stream_lock, self.stream_pos = stream, threading.Lock(), 0
        self.lookahead, self.long_s = max(1, lookahead), long_s
        self.head = 0  # oldest shard not written yet
        self.decoding = 0  # lanes decoding a clip now
        self.cond = threading.Condition()
        self.engine: _Engine | None = None
        self.error: BaseException | None = None
        self.stop = False
        self.recorded = [0, 0.0]  # clips, audio seconds (progress)
        self.reported = [0, 0.0]  # of which reported by wait_shard
        self.lane_threads = 1
        self.threads = [threading.Thread(target=self._lane, name=f"soundnet-lane-{i}", daemon=True)
                        for i in range(max(1, lanes))]
        for t in self.threads:
            t.start()

    # -- main thread ----------------------------------------------------------------------------
    def set_engine(self, engine: _Engine, *, lane_threads: int) -> None:
        """Let the lanes run batches (they decode until then), ``lane_threads`` torch threads each."""
        with self.cond:
            self.engine, self.lane_threads = engine, lane_threads
            self.cond.notify_all()

    def wait_shard(self, k: int, on_progress: Callable[[int, float], None]) -> _ShardWork:
        """Block until shard ``k`` (the head) is complete; report progress meanwhile (the clips
        and audio seconds recorded since the last report, from any shard)."""
        with self.cond:
            while True:
                if self.error is not None:
                    raise self.error
                if self.recorded != self.reported:
                    on_progress(self.recorded[0] - self.reported[0], self.recorded[1] - self.reported[1])
                    self.reported = list(self.recorded)
                if self.shards[k].done:
                    return self.shards[k]
                self.cond.wait()

    def release(self, k: int) -> None:
        """Shard ``k`` is written: forget it and let decoding move on."""
        with self.cond:
            w = self.shards[k]
            w.decoded, w.summaries, w.rows = [], None, []
            self.head = k + 1
            self.cond.notify_all()

    def close(self) -> None:
        """Stop the lanes after their current task (a long file: after its current chunk) and
        wait for them."""
        with self.cond:
            self.stop = True
            if self.engine is not None:
                self.engine.cancel.set()
            self.cond.notify_all()
        for t in self.threads:
            t.join()

    # -- lanes ----------------------------------------------------------------------------------
    def _locate(self, pos: int) -> tuple[int, int]:
        """(shard, row in it) of a position."""
        k = int(np.searchsorted(self.starts, pos, side="right")) - 1
        return k, pos - int(self.starts[k])

    def _may_decode(self) -> bool:
        if self.next_pos >= self.starts[-1]:
            return False
        k, j = self._locate(self.next_pos)
        if k == self.head:
            return True
        if k != self.head + 1:
            return False
        head = self.shards[self.head]
        return (head.jobs is not None and not head.jobs) or (
            j < self.lookahead and self.shards[k].samples < _LOOKAHEAD_SAMPLES)

    def _next_task(self) -> tuple[str, Any] | None:
        """Under the lock: ``("job", (shard, job))``, ``("decode", position)`` or None (done)."""
        while True:
            if self.stop or self.error is not None:
                return None
            live = self.shards[self.head:self.head + 2]  # decoding stays within these two
            if self.engine is not None:
                for w in live:  # oldest first
                    if w.jobs:
                        # one lane at a time decodes ahead while the others run batches: two
                        # lanes decoding side by side each decode 25 to 50 % slower (as much in
                        # two processes: the hardware's, not the GIL's)
                        if self.decoding == 0 and len(self.threads) > 1 and self._may_decode():
                            break
                        return "job", (w, w.jobs.popleft())
            if self._may_decode():
                self.next_pos += 1
                self.decoding += 1
                return "decode", self.next_pos - 1
            if self.next_pos >= self.starts[-1] and all(w.jobs is not None and not w.jobs for w in live):
                return None  # every clip is decoded and every batch handed out
            self.cond.wait()

    def _decode(self, pos: int) -> tuple[int, _Decoded]:
        if self.stream is None:
            k, j = self._locate(pos)
            return pos, _decode_row_safe(self.shards[k].rows[j], self.long_s)
        with self.stream_lock:  # the stream yields in corpus order
            pos, self.stream_pos = self.stream_pos, self.stream_pos + 1
            return pos, next(self.stream)

    def _lane(self) -> None:
        try:
            while True:
                with self.cond:
                    task = self._next_task()
                if task is None:
                    return
                kind, what = task
                if kind == "job":
                    if torch.get_num_threads() != self.lane_threads:  # set before the first job
                        torch.set_num_threads(self.lane_threads)
                    w, job = what
                    n_clips, audio_s = job()
                    job = what = task = None  # the job's closure holds audio: let it go
                    with self.cond:
                        w.jobs_left -= 1
                        self.recorded[0] += n_clips
                        self.recorded[1] += audio_s
                        self.cond.notify_all()
                    w = None
                    continue
                pos, d = self._decode(what)
                k, j = self._locate(pos)
                w = self.shards[k]
                if d.order < 0:  # a crashed decoding worker may lose its order: restore it
                    d.order, d.clip_id = int(w.rows[j]["order"]), str(w.rows[j]["clip_id"])
                with self.cond:
                    self.decoding -= 1
                    w.decoded[j] = d
                    w.n_decoded += 1
                    w.samples += 0 if d.audio is None else d.audio.size
                    complete = w.n_decoded == len(w.rows)
                    while complete and self.engine is None and not (self.stop or self.error):
                        self.cond.wait()
                    engine = self.engine
                if complete and engine is not None:
                    self._plan(w, engine)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which raises it
            with self.cond:
                self.error = self.error or exc
                self.cond.notify_all()

    def _plan(self, w: _ShardWork, engine: _Engine) -> None:
        summaries, jobs = _shard_jobs(engine, w.rows, w.decoded, last=w.last)
        with self.cond:
            w.summaries, w.jobs, w.jobs_left = summaries, deque(jobs), len(jobs)
            self.cond.notify_all()


def _process_shards(run_dir: Path, records: list[dict], todo: list[int], get_model: Callable[[], torch.nn.Module],
                    config: RecordConfig, units: dict[str, int], *, progress: bool) -> float:
    """Decode, summarise and write the shards ``todo``; returns the seconds of audio recorded.

    The work runs on :class:`_Lanes` (``max(1, config.workers)`` of them); they start decoding
    at once, so that loading the model (``get_model()``) overlaps the decoding of the first
    clips. This thread writes each shard as soon as it is complete, in order.
    """
    if not todo:
        return 0.0
    size = config.shard_size
    last = (len(records) - 1) // size  # the corpus's last shard
    shards = [_ShardWork(i, rows, [None] * len(rows), last=i == last) for i in todo
              for rows in [records[i * size:(i + 1) * size]]]
    lanes = max(1, config.workers)
    stream = None
    if config.decoder == "process":  # as many worker processes as lanes (one lane: about 20 % slower)
        stream = _process_decode_stream([r for w in shards for r in w.rows], workers=lanes,
                                        lookahead=max(config.batch_size, 4 * lanes), long_s=config.chunk_s)
    threads_before = torch.get_num_threads()
    state = {"audio_s": 0.0, "failed": 0}
    bar = pool = None
    t0 = time.perf_counter()
    try:
        pool = _Lanes(shards, lanes=lanes, lookahead=config.batch_size * lanes, long_s=config.chunk_s,
                      stream=stream)
        # built on one thread: the lanes are decoding on every core meanwhile, and an OpenMP team
        # on busy cores spins at its barriers (the build took 3 to 5 times as long)
        torch.set_num_threads(1)
        try:
            engine = _Engine(get_model(), config)
        finally:
            torch.set_num_threads(threads_before)
        # torch's intra-op threads, shared among the lanes (one each on a 2-core machine); the
        # plain model's forward passes take turns (see _Engine._forward), so each gets them all
        pool.set_engine(engine, lane_threads=max(1, threads_before // lanes) if engine.fast is not None
                        else threads_before)
        bar = _progress(sum(len(w.rows) for w in shards), enabled=progress)

        def tick(n_clips: int, audio_s: float) -> None:
            state["audio_s"] += audio_s
            if bar is not None:
                el = time.perf_counter() - t0
                post = f"{state['audio_s'] / el:.0f}x real time" if el > 0 else ""
                if state["failed"]:
                    post += f", {state['failed']} failed"
                bar.set_postfix_str(post, refresh=False)
                bar.update(n_clips)

        for k, w in enumerate(shards):
            pool.wait_shard(k, tick)
            decoded = [d for d in w.decoded if d is not None]
            for d in decoded:
                d.audio = None  # the shard keeps summaries only
            n_failed = sum(d.status != "ok" for d in decoded)
            state["failed"] += n_failed
            _write_shard(run_dir, w.index, w.rows, decoded, w.summaries, units, config.layers)
            pool.release(k)
            tick(n_failed, 0.0)
    finally:
        try:
            if pool is not None:
                pool.close()
        finally:  # even if a second Ctrl-C interrupts the wait for the lanes
            if stream is not None:
                stream.close()
            torch.set_num_threads(threads_before)
            if bar is not None:
                bar.close()
    return state["audio_s"]


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Leave the objects that exist now out of the garbage collector's full collections while
    recording (:func:`gc.freeze`), and put them back afterwards.

    A full collection walks every object of the process (about 200,000 with torch, pandas and
    pyarrow loaded) holding the GIL, so it stops every lane: 60 to 130 ms, once every few
    recordings of 200 clips. Nothing is done when the collector is off or the process froze
    objects itself.
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _summary(run_dir: Path, clips: pd.DataFrame, wall: float, *, resumed: int, audio_s: float | None = None) -> RecordSummary:
    ok = clips["status"] == "ok"
    failures = clips.loc[~ok, "status"].str.split(":").str[0].value_counts().to_dict()
    if audio_s is None:
        audio_s = float(clips.loc[ok, "duration_s"].sum())
    return RecordSummary(run_dir, len(clips), int(ok.sum()), int((~ok).sum()), audio_s, wall, resumed,
                         {str(k): int(v) for k, v in failures.items()})


def _progress(total: int, *, enabled: bool):
    """A tqdm bar on stderr: percentage, clips done, elapsed < ETA, clips/s, postfix."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="clip", desc="record", dynamic_ncols=True, file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} clips "
                           "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}]")


def _maybe_fast(model: torch.nn.Module, config: RecordConfig) -> torch.nn.Module:
    """The fast inference path when available and asked for, else the model itself."""
    if not config.fast:
        return model
    try:
        from soundnet.fast import fast_model
    except ImportError:
        return model
    try:
        return fast_model(model, layers=config.layers)
    except Exception:
        return model
