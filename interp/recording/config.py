"""Settings and outcome of a recording.

Holds :class:`RecordConfig` (what to record and how; part of a run's cache key),
:class:`RecordSummary` (what a recording did) with :func:`run_summary`, which builds one from a
clip table, :data:`DECODERS`, :func:`default_workers` and :func:`progress_bar`, the recorder's
progress display.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from soundnet.errors import ParameterError
from soundnet.geometry import VALID_MIN_INSIDE, min_samples
from soundnet.model import LAYERS, SPEC_BY_NAME
from soundnet.options import Decoder, Edge, HeadsShort, Short, check_option, choices

__all__ = ["DECODERS", "RecordConfig", "RecordSummary", "default_workers", "progress_bar", "run_summary"]

#: How clips are decoded: in threads of the recording process (``"thread"``), or in worker
#: processes that isolate a crashing decoder (``"process"``).
DECODERS: tuple[str, ...] = choices(Decoder)


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
    min_inside : float
        Least fraction of a frame's receptive field that must lie inside the clip (before
        ``short`` padding) for the frame to be *valid* (default 0.5,
        :data:`soundnet.geometry.VALID_MIN_INSIDE`); the duration-invariant statistic ``vmean``
        averages the valid frames, and ``clips.parquet`` records how many each clip has per
        layer (``valid_frames_<layer>``). See :func:`soundnet.geometry.valid_frames`.
    chunk_s : float (in seconds)
        Clips longer than this are streamed in chunks (exact stitching).
    batch_size, shard_size : int
        Clips per forward pass (at most) and per resumable shard. ``batch_size`` is an
        execution setting; ``shard_size`` is part of the cache key (shard boundaries must not
        move under a resume).
    workers : int
        Lanes: threads that each decode clips and run batches, torch's intra-op threads divided
        among them (see :class:`interp.recording.lanes._Lanes`). Default: the CPU cores this
        process may use, at most 8 (2 on a 2-core machine: one lane per core, single-threaded).
        0 or 1: one lane. Each lane holds one batch in memory: a second lane added about 150 MB
        to the peak of the memory benchmark (batches of 16 short clips tiled to 20 s for the
        heads). On CUDA the lanes' batches are on the GPU at the same time.
    decoder : {"thread", "process"}
        Where clips are decoded: in the lanes themselves (default, the fastest), or in
        ``workers`` worker processes, which turn a decoder that crashes on a malformed file into
        that clip's status instead of the end of the run (for untrusted files); see
        :func:`interp.recording.workers.process_decode_stream`. ``workers``, ``batch_size``,
        ``decoder``, ``device``, ``fast`` and ``chunk_s`` are not part of the cache key.
    device : str
        ``"cpu"`` or ``"cuda"``.
    fast : bool
        Use the fast inference path (:mod:`soundnet.fast`) where available.
    """

    layers: tuple[str, ...] = LAYERS
    topk: int = 16
    short: Short = "pad"
    min_length: str | int = "conv7"
    heads_short: HeadsShort = "tile"
    edge: Edge = "drop"
    min_inside: float = VALID_MIN_INSIDE
    chunk_s: float = 120.0
    batch_size: int = 16
    shard_size: int = 128
    workers: int = field(default_factory=default_workers)
    decoder: Decoder = "thread"
    device: str = "cpu"
    fast: bool = True

    def __post_init__(self) -> None:
        bad = [layer for layer in self.layers if layer not in SPEC_BY_NAME]
        if bad or not self.layers:
            raise ParameterError(
                f"The 'layers' parameter of RecordConfig must name layers from {list(LAYERS)}. Got {list(self.layers)} instead."
            )
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers), key=LAYERS.index)))
        for name, options in (("short", Short), ("heads_short", HeadsShort), ("edge", Edge), ("decoder", Decoder)):
            check_option(name, getattr(self, name), options, where="RecordConfig")
        for name in ("topk", "batch_size", "shard_size"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(
                    f"The '{name}' parameter of RecordConfig must be >= 1. Got {getattr(self, name)} instead."
                )
        if self.workers < 0:
            raise ParameterError(f"The 'workers' parameter of RecordConfig must be >= 0. Got {self.workers} instead.")
        if not 0 < float(self.min_inside) <= 1:
            raise ParameterError(
                f"The 'min_inside' parameter of RecordConfig must be in (0, 1]. Got {self.min_inside!r} instead."
            )
        if self.chunk_s < 30:
            raise ParameterError(
                f"The 'chunk_s' parameter of RecordConfig must be >= 30 s (the heads' receptive field is 14.5 s). Got {self.chunk_s} instead."
            )

    @classmethod
    def from_meta(cls, meta: dict) -> RecordConfig:
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
            how = f"{self.audio_s:.1f} s of audio in {self.wall_s:.1f} s, {self.times_real_time:.0f}x real time"
        else:
            how = f"{self.audio_s:.1f} s of audio, nothing left to record"
        s = f"{self.n_ok} ok, {self.n_failed} failed ({self.n_clips} clips, {how}) -> {self.run_dir}"
        if self.resumed_shards:
            s += f"\n  resumed: {self.resumed_shards} shard(s) were already recorded"
        if self.failures:
            s += "\n  failures: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.failures.items()))
        return s


def run_summary(
    run_dir: Path, clips: pd.DataFrame, wall: float, *, resumed: int, audio_s: float | None = None
) -> RecordSummary:
    """The :class:`RecordSummary` of a recording from its clip table (``audio_s``: the audio
    recorded by this call; default: every ok clip's duration)."""
    ok = clips["status"] == "ok"
    failures = clips.loc[~ok, "status"].str.split(":").str[0].value_counts().to_dict()
    if audio_s is None:
        audio_s = float(clips.loc[ok, "duration_s"].sum())
    return RecordSummary(
        run_dir,
        len(clips),
        int(ok.sum()),
        int((~ok).sum()),
        audio_s,
        wall,
        resumed,
        {str(k): int(v) for k, v in failures.items()},
    )


def progress_bar(total: int, *, enabled: bool):
    """A tqdm bar on stderr: percentage, clips done, elapsed < ETA, clips/s, postfix."""
    if not enabled:
        return None
    return tqdm(
        total=total,
        unit="clip",
        desc="record",
        dynamic_ncols=True,
        file=sys.stderr,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} clips "
        "[{elapsed} elapsed, ETA {remaining}, {rate_fmt}{postfix}]",
    )
