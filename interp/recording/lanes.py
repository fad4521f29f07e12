"""The lanes: threads that decode clips and run batches, shard after shard.

Holds :func:`process_shards` (decode, summarise and write the pending shards of a run, the
model loading while the first clips decode), the lanes themselves (``_Lanes``: one thread per
core, each taking the next batch or the next clip to decode, at most about one shard ahead),
and :func:`summarize_shard` (one shard's decoded clips summarised on the calling thread, as
the Ray engine's actors do). Both cut a shard's work the same way, so the batches, and the
results, do not depend on the engine, the lanes or their timing.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from interp.recording.config import RecordConfig, progress_bar
from interp.recording.decode import Decoded, audio_status, decode_row_safe
from interp.recording.engine import BatchEngine
from interp.recording.shards import write_shard
from interp.recording.workers import LOOKAHEAD_SAMPLES, process_decode_stream
from soundnet.errors import AudioError

__all__ = ["process_shards", "summarize_shard"]


def summarize_shard(
    engine: BatchEngine,
    rows: list[dict],
    decoded: list[Decoded],
    *,
    progress: Callable[[int, float], None] | None = None,
) -> dict[int, dict]:
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


def _shard_jobs(
    engine: BatchEngine, rows: list[dict], decoded: list[Decoded], *, last: bool = False
) -> tuple[dict[int, dict], list[Callable[[], tuple[int, float]]]]:
    """The work of one shard's decoded clips, as jobs; the one code path of every engine.

    ``decoded`` is in corpus order. Ok clips are planned in one :meth:`BatchEngine.plan` (so that
    batches do not depend on the engine or on threads; the corpus's ``last`` shard ends with
    small batches); each long clip is one job streaming it with
    :meth:`BatchEngine.summarize_long`, and a long clip that fails to stream gets its error as
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

    def long_job(d: Decoded) -> tuple[int, float]:
        try:
            summaries[d.order], d.duration_s = engine.summarize_long(by_order[d.order])
        except AudioError as exc:
            d.status = audio_status(exc)
        except Exception as exc:  # a broken long file is a per-clip status too
            d.status = f"error: {type(exc).__name__}: {exc}"
        return (1, d.duration_s) if d.status == "ok" else (0, 0.0)

    jobs += [functools.partial(long_job, d) for d in decoded if d.status == "ok" and d.long]
    return summaries, jobs


@dataclass
class _ShardWork:
    """One shard's state in :class:`_Lanes`."""

    index: int
    rows: list[dict]
    decoded: list[Decoded | None]
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
    :data:`LOOKAHEAD_SAMPLES` samples of the next one). With one lane per core and torch's
    intra-op threads divided among the lanes, decoding, batches and the main thread's shard
    writing overlap without more busy threads than cores; the batches' tensor loops run compiled
    (:func:`soundnet.kernels.compiled`), so that a lane does not wait for the GIL at each
    operation: on 2 cores, two lanes record 200 clips of 5 s (44.1 kHz WAV, conv1..conv7) in
    0.65 to 0.71 s, merge included. Batches are fixed per shard from its clips alone
    (:func:`_shard_jobs`; the corpus's last shard ends with smaller batches), so results do not
    depend on the lanes or their timing.

    With ``stream`` (the worker processes of ``decoder="process"``), a lane decodes by taking
    the next clip from that ordered stream instead of decoding it itself.
    """

    def __init__(
        self,
        shards: list[_ShardWork],
        *,
        lanes: int,
        lookahead: int,
        long_s: float,
        stream: Generator[Decoded, None, None] | None = None,
    ) -> None:
        self.shards = shards
        self.starts = np.cumsum([0] + [len(w.rows) for w in shards])  # first position of each shard
        self.next_pos = 0  # next clip (position over the shards' rows) to hand out for decoding
        self.stream, self.stream_lock, self.stream_pos = stream, threading.Lock(), 0
        self.lookahead, self.long_s = max(1, lookahead), long_s
        self.head = 0  # oldest shard not written yet
        self.decoding = 0  # lanes decoding a clip now
        self.cond = threading.Condition()
        self.engine: BatchEngine | None = None
        self.error: BaseException | None = None
        self.stop = False
        self.recorded = [0, 0.0]  # clips, audio seconds (progress)
        self.reported = [0, 0.0]  # of which reported by wait_shard
        self.lane_threads = 1
        self.threads = [
            threading.Thread(target=self._lane, name=f"soundnet-lane-{i}", daemon=True) for i in range(max(1, lanes))
        ]
        for t in self.threads:
            t.start()

    # -- main thread ----------------------------------------------------------------------------
    def set_engine(self, engine: BatchEngine, *, lane_threads: int) -> None:
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
                    on_progress(int(self.recorded[0] - self.reported[0]), self.recorded[1] - self.reported[1])
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
            j < self.lookahead and self.shards[k].samples < LOOKAHEAD_SAMPLES
        )

    def _next_task(self) -> tuple[str, Any] | None:
        """Under the lock: ``("job", (shard, job))``, ``("decode", position)`` or None (done)."""
        while True:
            if self.stop or self.error is not None:
                return None
            live = self.shards[self.head : self.head + 2]  # decoding stays within these two
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

    def _decode(self, pos: int) -> tuple[int, Decoded]:
        if self.stream is None:
            k, j = self._locate(pos)
            return pos, decode_row_safe(self.shards[k].rows[j], self.long_s)
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
        except BaseException as exc:  # handed to the main thread, which raises it
            with self.cond:
                self.error = self.error or exc
                self.cond.notify_all()

    def _plan(self, w: _ShardWork, engine: BatchEngine) -> None:
        summaries, jobs = _shard_jobs(engine, w.rows, cast(list[Decoded], w.decoded), last=w.last)
        with self.cond:
            w.summaries, w.jobs, w.jobs_left = summaries, deque(jobs), len(jobs)
            self.cond.notify_all()


def process_shards(
    run_dir: Path,
    records: list[dict],
    todo: list[int],
    get_model: Callable[[], torch.nn.Module],
    config: RecordConfig,
    units: dict[str, int],
    *,
    progress: bool,
) -> float:
    """Decode, summarise and write the shards ``todo``; returns the seconds of audio recorded.

    The work runs on :class:`_Lanes` (``max(1, config.workers)`` of them); they start decoding
    at once, so that loading the model (``get_model()``) overlaps the decoding of the first
    clips. This thread writes each shard as soon as it is complete, in order.
    """
    if not todo:
        return 0.0
    size = config.shard_size
    last = (len(records) - 1) // size  # the corpus's last shard
    shards = [
        _ShardWork(i, rows, [None] * len(rows), last=i == last)
        for i in todo
        for rows in [records[i * size : (i + 1) * size]]
    ]
    lanes = max(1, config.workers)
    stream: Generator[Decoded, None, None] | None = None
    if config.decoder == "process":  # as many worker processes as lanes (one lane: about 20 % slower)
        stream = process_decode_stream(
            [r for w in shards for r in w.rows],
            workers=lanes,
            lookahead=max(config.batch_size, 4 * lanes),
            long_s=config.chunk_s,
        )
    threads_before = torch.get_num_threads()
    state = {"audio_s": 0.0, "failed": 0}
    bar = pool = None
    t0 = time.perf_counter()
    try:
        pool = _Lanes(shards, lanes=lanes, lookahead=config.batch_size * lanes, long_s=config.chunk_s, stream=stream)
        # built on one thread: the lanes are decoding on every core meanwhile, and an OpenMP team
        # on busy cores spins at its barriers (the build took 3 to 5 times as long)
        torch.set_num_threads(1)
        try:
            engine = BatchEngine(get_model(), config)
        finally:
            torch.set_num_threads(threads_before)
        # torch's intra-op threads, shared among the lanes (one each on a 2-core machine); the
        # plain model's forward passes take turns (see BatchEngine._forward), so each gets them all
        pool.set_engine(
            engine, lane_threads=max(1, threads_before // lanes) if engine.fast is not None else threads_before
        )
        bar = progress_bar(sum(len(w.rows) for w in shards), enabled=progress)

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
            assert w.summaries is not None  # set when the shard's jobs were planned
            write_shard(run_dir, w.index, w.rows, decoded, w.summaries, units, config.layers)
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
