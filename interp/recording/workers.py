"""Decoding in worker processes (``decoder="process"``), for files that may crash a decoder.

Holds :func:`process_decode_stream`, which decodes corpus rows in worker processes and yields
them in corpus order within a bounded look-ahead (:data:`LOOKAHEAD_SAMPLES`), turning a worker
that dies into a retry and then a per-clip status; and the workers themselves (one pipe each,
a watchdog that ends them with the recording process).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Generator
from multiprocessing.connection import wait

import numpy as np
import psutil

from interp.recording.decode import Decoded, decode_row_safe, failed

__all__ = ["LOOKAHEAD_SAMPLES", "process_decode_stream"]


#: Most decoded samples held ahead of the consumer (128 MiB of float32), whatever ``lookahead``.
LOOKAHEAD_SAMPLES = 1 << 25


def process_decode_stream(
    rows: list[dict], *, workers: int, lookahead: int, long_s: float
) -> Generator[Decoded, None, None]:
    """Decode rows in ``workers`` worker processes (``decoder="process"``); yield them in order.

    Each worker has its own pipe and one clip at a time; work is handed out as the consumer
    pulls, at most ``lookahead`` clips and about :data:`LOOKAHEAD_SAMPLES` samples ahead of it
    (bounded memory). A worker that dies (a decoder crash, the OOM killer) is known by the clip
    it held: the clip is retried once in a fresh worker, then gets the status ``error: the
    decoder crashed``, and the run goes on. Use it for untrusted files. The generator's
    ``close()`` stops the workers (so does exhaustion).
    """
    # fork on Linux: workers only decode (no torch calls), and a user's script needs no
    # `if __name__ == "__main__":` guard, which spawn and forkserver would require
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    n = len(rows)
    pool = [_Worker(ctx, long_s) for _ in range(min(workers, max(n, 1)))]
    done: dict[int, Decoded] = {}
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
                elif next_in < n and next_in - next_out < lookahead and held < LOOKAHEAD_SAMPLES:
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
                            done[i] = failed(row, f"error: the decoder crashed (worker exit code {w.proc.exitcode})")
                        else:
                            retry.append(i)
                    w.conn.close()
                    pool[k] = _Worker(ctx, long_s)
    finally:
        for w in pool:
            w.stop()


class _Worker:
    """One decoding process with its own pipe, holding at most one task."""

    def __init__(self, ctx, long_s: float) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(
            target=_worker_main, args=(child, os.getpid(), long_s), daemon=True, name="soundnet-decode"
        )
        self.proc.start()
        child.close()
        self.task: tuple[int, dict] | None = None

    def send(self, i: int, row: dict) -> None:
        self.task = (i, row)
        self.conn.send((i, row))

    def receive(self) -> tuple[int, Decoded]:
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


def _worker_main(conn, parent_pid: int, long_s: float) -> None:
    """A decoding worker: receives ``(index, row)``; sends back ``(index, Decoded without its
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
        res = decode_row_safe(row, long_s)
        audio, res.audio = res.audio, None
        try:
            conn.send((i, res, -1 if audio is None else int(audio.size)))
            if audio is not None:
                conn.send_bytes(np.ascontiguousarray(audio, dtype=np.float32))
        except (EOFError, OSError):
            return


def _worker_init(parent_pid: int) -> None:
    """Start a watchdog in a decoding worker: it exits when the recording process is gone.

    Without it, workers of a recorder killed with SIGKILL (or by the OOM killer) live on,
    blocked on their task queue.
    """
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
