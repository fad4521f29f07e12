"""Per-clip reduction of layer outputs: what the recorder keeps of each forward pass.

Holds :class:`LayerTap` (forward hooks on the plain model that mask batch padding and
summarise each layer), :func:`summarize_batch` (per-clip ``mean``, ``max``, ``peak_s`` and, for
the heads, ``prob`` over each clip's counted frames, through a TorchScript-compiled frame
reduction, and the duration-invariant ``vmean`` over its valid frames),
:func:`summary_frames` (how many frames count, under ``edge``), :func:`valid_spans` (each
clip's valid frames, :func:`soundnet.geometry.valid_frames`) and
:func:`head_waveform` (the waveform the heads see for a short clip).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from soundnet.audio import fit_length
from soundnet.geometry import (
    HEADS_TILE_SAMPLES,
    VALID_MIN_INSIDE,
    clean_frames,
    frames_to_time,
    head_frame_ok,
    min_samples,
    n_frames,
    valid_range,
)
from soundnet.kernels import compiled
from soundnet.model import HEAD_LAYERS, LAYERS
from soundnet.options import Edge, HeadsShort, check_option

__all__ = ["LayerTap", "head_waveform", "summarize_batch", "summary_frames", "valid_spans"]


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
    min_inside : float
        Least fraction of a frame's receptive field inside the clip for ``vmean``
        (:func:`soundnet.geometry.valid_frames`).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        layers: Iterable[str],
        *,
        keep: bool = False,
        edge: Edge = "keep",
        min_inside: float = VALID_MIN_INSIDE,
    ) -> None:
        check_option("edge", edge, Edge, where="LayerTap")
        self.model = model
        self.layers = tuple(layers)
        self.keep = keep
        self.edge = edge
        self.min_inside = float(min_inside)
        self.lengths: np.ndarray | None = None
        self.clip_lengths: np.ndarray | None = None
        self.summaries: dict[str, dict[str, np.ndarray]] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def __enter__(self) -> LayerTap:
        for name in LAYERS:
            module = getattr(self.model, name, None)
            if module is not None:
                self._handles.append(module.register_forward_hook(self._make_hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def set_lengths(self, lengths_samples: Iterable[int], clip_samples: Iterable[int] | None = None) -> None:
        """True input length of each batch item, in samples (before batch padding), and the
        clip's own length (before ``short="pad"`` padding; default the input length)."""
        self.lengths = np.asarray(list(lengths_samples), dtype=np.int64)
        self.clip_lengths = self.lengths if clip_samples is None else np.asarray(list(clip_samples), dtype=np.int64)
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
                counted = (
                    valid
                    if self.edge == "keep"
                    else torch.as_tensor(
                        [summary_frames(int(n), name, edge=self.edge) for n in self.lengths], device=out.device
                    )
                )
                assert self.clip_lengths is not None
                spans = valid_spans(self.lengths, self.clip_lengths, name, min_inside=self.min_inside)
                self.summaries[name] = summarize_batch(out, counted, name, valid_spans=spans.to(out.device))
                if self.keep:
                    self.outputs[name] = out
            return out

        return hook


def head_waveform(y: np.ndarray, *, heads_short: HeadsShort = "tile") -> np.ndarray:
    """The waveform the heads see for a clip: the clip itself when it has a clean head frame
    (:func:`soundnet.geometry.head_frame_ok`), else tiled or padded to
    :data:`soundnet.geometry.HEADS_TILE_SAMPLES` (20 s), as
    :func:`interp.recording.record_corpus` does.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform at 22050 Hz.
    heads_short : {"tile", "pad", "none"}

    Returns
    -------
    np.ndarray, shape (n_samples',)
    """
    check_option("heads_short", heads_short, HeadsShort, where="head_waveform")
    if heads_short == "none" or head_frame_ok(len(y)).any():
        return y
    return fit_length(y, min_samples=max(HEADS_TILE_SAMPLES, min_samples("conv8")), policy=heads_short)


def summary_frames(n_samples: int, layer: str, *, edge: Edge = "drop") -> int:
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


def valid_spans(
    lengths_samples: Iterable[int], clip_samples: Iterable[int], layer: str, *, min_inside: float = VALID_MIN_INSIDE
) -> torch.Tensor:
    """``(batch, 2)`` long tensor of each item's valid frames ``[first, end)`` in ``layer``
    (:func:`soundnet.geometry.valid_range`; ``(0, 0)`` for none), given its input length and
    its own clip length in samples."""
    pairs = list(zip((int(n) for n in lengths_samples), (int(c) for c in clip_samples)))
    spans = {p: valid_range(p[0], layer, clip_samples=p[1], min_inside=min_inside) for p in set(pairs)}
    return torch.tensor([spans[p] for p in pairs], dtype=torch.long).reshape(len(pairs), 2)


def summarize_batch(
    out: torch.Tensor, valid_frames: torch.Tensor, layer: str, *, valid_spans: torch.Tensor | None = None
) -> dict[str, np.ndarray]:
    """Per-item, per-unit summaries of a layer output over its counted frames.

    Parameters
    ----------
    out : torch.Tensor, shape (batch, n_units, n_frames)
    valid_frames : torch.Tensor, shape (batch,)
        Frames of each item that are counted (the rest is batch padding or the edge frames
        ``edge="drop"`` leaves out).
    layer : str
    valid_spans : torch.Tensor, shape (batch, 2), optional
        Each item's valid frames ``[first, end)`` (:func:`valid_spans`); without it ``vmean``
        is left out.

    Returns
    -------
    dict of str to np.ndarray, each (batch, n_units), float32
        ``mean``, ``max``, ``peak_s`` (seconds, centre of the max frame's receptive field),
        ``peak_frame`` (int), ``vmean`` (mean over the valid frames, the duration-invariant
        statistic) and, for heads, ``prob`` (mean softmax over counted frames). NaN where an
        item has no counted (for ``vmean``: no valid) frame. With ``valid_spans``, also
        ``n_valid`` (batch,) int: each item's valid frames.
    """
    _, u, t = out.shape
    valid = valid_frames.to(out.device).clamp(max=t)
    mean, mx, arg = _REDUCE_FRAMES(out.float(), valid)
    res = {"mean": mean, "max": mx}
    n_valid = None
    if valid_spans is not None:
        spans = valid_spans.to(out.device).clamp(max=t)
        res["vmean"] = _span_mean(out.float(), spans)
        n_valid = (spans[:, 1] - spans[:, 0]).clamp(min=0).cpu().numpy().astype(np.int64)
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
    if n_valid is not None:
        summary["n_valid"] = n_valid
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


def _span_mean(out: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
    """Mean of ``out`` ``(batch, units, frames)`` over each item's frames ``[spans[i, 0],
    spans[i, 1])``; NaN where the span is empty."""
    t = out.shape[2]
    idx = torch.arange(t, device=out.device)[None, :]
    mask = ((idx >= spans[:, :1]) & (idx < spans[:, 1:])).to(out.dtype)  # (b, t)
    n = mask.sum(dim=1)
    total = torch.einsum("but,bt->bu", out, mask)
    return torch.where((n > 0)[:, None], total / n.clamp(min=1)[:, None], torch.full_like(total, float("nan")))


#: :func:`_reduce_frames`, compiled (:func:`soundnet.kernels.compiled`).
_REDUCE_FRAMES: Callable = compiled(_reduce_frames)
