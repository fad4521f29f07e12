"""Long files in chunks: the plan, the audio blocks and the statistics stitched across chunks.

A clip longer than ``chunk_s`` is never held whole: :func:`excerpt_blocks` streams it from
disk, :func:`chunk_plan` cuts it into overlapping chunks aligned to conv8's hop, and
:class:`StreamStats` folds each chunk's frames into running per-unit statistics, taking each
frame from a chunk that holds its whole receptive field, so that the result equals one forward
pass over the whole file (see :meth:`interp.recording.engine.BatchEngine.summarize_long`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from soundnet.audio import iter_audio_blocks
from soundnet.geometry import SAMPLE_RATE_HZ, VALID_MIN_INSIDE, frames_to_time, layer_geometry
from soundnet.model import HEAD_LAYERS

__all__ = ["StreamStats", "chunk_plan", "excerpt_blocks"]


def chunk_plan(chunk_s: float) -> tuple[int, int]:
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


def excerpt_blocks(path: str, start_s: float, duration_s: float | None) -> Iterator[np.ndarray]:
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


class StreamStats:
    """Running mean/max/argmax (and head probabilities) of one layer over the chunks of a clip."""

    def __init__(self, layer: str, *, min_inside: float = VALID_MIN_INSIDE) -> None:
        self.layer = layer
        self.min_inside = float(min_inside)
        g = layer_geometry(layer)
        self.hop, self.rf, self.first = g.hop_samples, g.receptive_field_samples, g.first_start_samples
        self.next_frame = 0
        self.sum: np.ndarray | None = None
        self.count = 0
        self.vsum: np.ndarray | None = None
        self.vcount = 0
        self.max: np.ndarray | None = None
        self.arg: np.ndarray | None = None
        self.prob: np.ndarray | None = None

    def add_chunk(
        self, acts: np.ndarray, s0: int, n: int, *, at_start: bool, at_end: bool, counted_frames: int | None = None
    ) -> None:
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
        # valid frames (soundnet.geometry.valid_frames): enough of the field inside the file,
        # whose end is known at its last chunk (earlier chunks only count whole fields)
        gstart = self.first + gsel * self.hop
        end = s0 + n if at_end else np.inf
        inside = np.minimum(gstart + self.rf, end) - np.maximum(gstart, 0.0)
        vok = inside / self.rf >= self.min_inside - 1e-12
        if self.sum is None:
            u = acts.shape[0]
            self.sum = np.zeros(u)
            self.max = np.full(u, -np.inf)
            self.arg = np.zeros(u, dtype=np.int64)
            if self.layer in HEAD_LAYERS:
                self.prob = np.zeros(u)
        self.sum += sel.sum(axis=1)
        self.count += sel.shape[1]
        if self.vsum is None:
            self.vsum = np.zeros(acts.shape[0])
        self.vsum += sel[:, vok].sum(axis=1)
        self.vcount += int(vok.sum())
        cmax = sel.max(axis=1)
        carg = gsel[sel.argmax(axis=1)]
        better = cmax > self.max  # ties keep the earlier frame, as argmax over the whole file
        self.max = np.asarray(np.where(better, cmax, self.max))
        self.arg = np.asarray(np.where(better, carg, self.arg))
        if self.prob is not None:
            e = np.exp(sel - sel.max(axis=0, keepdims=True))
            self.prob += (e / e.sum(axis=0, keepdims=True)).sum(axis=1)
        self.next_frame = int(gsel[-1]) + 1

    def result(self) -> dict[str, np.ndarray]:
        """``{stat: (n_units,)}`` as :func:`interp.recording.reduce.summarize_batch` gives them
        (empty when no frame was counted)."""
        if self.sum is None or self.max is None or self.arg is None or self.count == 0:
            return {}
        res: dict[str, np.ndarray] = {
            "mean": (self.sum / self.count).astype(np.float32),
            "max": self.max.astype(np.float32),
            "peak_s": np.asarray(frames_to_time(self.arg, self.layer), dtype=np.float32),
            "peak_frame": self.arg,
            "vmean": (
                (self.vsum / self.vcount).astype(np.float32)
                if self.vsum is not None and self.vcount
                else np.full(len(self.sum), np.nan, np.float32)
            ),
            "n_valid": np.asarray(self.vcount, dtype=np.int64),
        }
        if self.prob is not None:
            res["prob"] = (self.prob / self.count).astype(np.float32)
        return res
