"""The forward passes: decoded clips in, per-clip summaries of every layer out.

Holds :class:`BatchEngine` (the model, on its fast path or with :class:`LayerTap` hooks, run
over batches of clips sorted by length, with the heads' second pass for short clips and the
chunked pass over long files) and :func:`summarize_waves`, the same engine for waveforms held in
memory (perturbed, ablated or windowed audio), so that a clip's summary equals what
:func:`interp.recording.record_corpus` stores for it.

Examples
--------
>>> from interp.corpus.corpora import clip_waves
>>> from interp.recording import RecordConfig, summarize_waves
>>> waves = clip_waves(run.ok_clips)                                   # doctest: +SKIP
>>> feats = summarize_waves(model, waves, layers=("conv5",), stats=("mean",),
...                         config=RecordConfig.from_meta(run.meta))   # doctest: +SKIP
>>> feats["conv5"]["mean"].shape                                       # doctest: +SKIP
(174, 256)
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch

from interp.recording.config import RecordConfig
from interp.recording.decode import Decoded, float_or
from interp.recording.reduce import LayerTap, head_waveform, summarize_batch, summary_frames, valid_spans
from interp.recording.stream import StreamStats, chunk_plan, excerpt_blocks
from interp.run.store import HEAD_STATS, STATS
from soundnet.audio import INPUT_SCALE, fit_length
from soundnet.errors import AudioError, ParameterError
from soundnet.fast import FastSoundNet, fast_model
from soundnet.geometry import SAMPLE_RATE_HZ, head_frame_ok, min_samples
from soundnet.model import HEAD_LAYERS, LAYERS, SPEC_BY_NAME, SoundNet8
from soundnet.options import HeadsShort, HeadStat, check_option, choices

__all__ = ["BatchEngine", "summarize_waves"]


#: Most input samples in one batch (about 16 clips of 30 s): longer clips get smaller batches.
_MAX_BATCH_SAMPLES = 16 * 30 * SAMPLE_RATE_HZ


@dataclass
class _Pass:
    """What one forward pass gave: per-layer summaries and (with ``keep``) the outputs."""

    summaries: dict[str, dict[str, np.ndarray]]
    outputs: dict[str, torch.Tensor]


class _Cancelled(BaseException):
    """A recording stopped (Ctrl-C) while a lane streamed a long file: not a per-clip status."""


class BatchEngine:
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
        self.plain: SoundNet8 | None = cast(SoundNet8, model) if hasattr(model, "run_block") else None
        self.fast: FastSoundNet | None = None if self.plain is not None else cast(FastSoundNet, model)
        if self.plain is not None and config.fast:
            fast = _maybe_fast(self.plain, config)
            self.fast = None if fast is model else cast(FastSoundNet, fast)
        if self.plain is None and self.fast is None:
            raise ParameterError(
                "The 'model' parameter of BatchEngine must be a SoundNet8 or a FastSoundNet. "
                f"Got {type(model).__name__} instead."
            )
        self.conv_layers = tuple(l for l in config.layers if l not in HEAD_LAYERS)
        self.head_layers = tuple(l for l in config.layers if l in HEAD_LAYERS)
        self.head_min = min_samples("conv8")
        self._plain_lock = threading.Lock()
        #: set to make :meth:`summarize_long` stop between chunks (raises :class:`_Cancelled`)
        self.cancel = threading.Event()

    # -- one batch ----------------------------------------------------------------------------
    def _forward(
        self,
        waves: list[np.ndarray],
        layers: tuple[str, ...],
        *,
        keep: bool = False,
        clip_samples: list[int] | None = None,
    ) -> _Pass:
        """Run one batch of waveforms ([-1, 1], unscaled) and summarise ``layers`` per item;
        ``clip_samples``: each clip's own length before ``short`` lengthened it (default: the
        waveforms' lengths), which sets its valid frames."""
        if self.fast is not None:
            return self._forward_fast(waves, layers, keep=keep, clip_samples=clip_samples)
        plain = self.plain
        assert plain is not None  # BatchEngine holds one model or the other
        lengths = [len(w) for w in waves]
        xt = self._batch_tensor(waves)
        last = max(LAYERS.index(l) for l in layers)
        need = [l for l in LAYERS[: last + 1] if l not in HEAD_LAYERS]
        # the taps are hooks on the one model: one forward pass through it at a time
        with (
            self._plain_lock,
            LayerTap(plain, layers, keep=keep, edge=self.config.edge, min_inside=self.config.min_inside) as tap,
            torch.inference_mode(),
        ):
            tap.set_lengths(lengths, clip_samples)
            h = xt
            for name in need:
                h = plain.run_block(name, h)
            for name in HEAD_LAYERS:
                if name in layers:
                    plain.run_block(name, h)
        return _Pass(tap.summaries, tap.outputs)

    def _batch_tensor(self, waves: list[np.ndarray]) -> torch.Tensor:
        """``(batch, 1, max_len)`` float32 on the device, zero-padded, scaled x256."""
        t = max(len(w) for w in waves)
        x = torch.empty((len(waves), 1, t), dtype=torch.float32)
        for i, w in enumerate(waves):  # one pass per clip: scale into place, zero the rest
            torch.mul(torch.from_numpy(np.asarray(w, dtype=np.float32)), INPUT_SCALE, out=x[i, 0, : len(w)])
            x[i, 0, len(w) :].zero_()
        return x.to(self.device)

    def _forward_fast(
        self, waves: list[np.ndarray], layers: tuple[str, ...], *, keep: bool, clip_samples: list[int] | None = None
    ) -> _Pass:
        """The fast path; a batch of unequal lengths is masked per item after every layer, as the
        hooks of the plain path do (see ``FastSoundNet.extract_features(lengths=...)``)."""
        assert self.fast is not None
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
            spans = valid_spans(lengths, clip_samples or lengths, name, min_inside=self.config.min_inside)
            summaries[name] = summarize_batch(out, valid, name, valid_spans=spans)
            if keep:
                outputs[name] = out
        return _Pass(summaries, outputs)

    # -- clips --------------------------------------------------------------------------------
    def _batches(self, items: list[Decoded], lengths: list[int], *, taper: bool = False) -> list[list[int]]:
        """Indices of ``items`` (sorted by length) in batches of at most ``batch_size`` items
        and :data:`_MAX_BATCH_SAMPLES` padded samples (see :func:`_tapered` for ``taper``)."""
        batches, i = [], 0
        while i < len(items):
            j = i + 1
            while j < len(items) and j - i < self.config.batch_size and (j - i + 1) * lengths[j] <= _MAX_BATCH_SAMPLES:
                j += 1
            batches.append(list(range(i, j)))
            i = j
        return _tapered(batches, self.config.batch_size) if taper else batches

    def plan(
        self, clips: list[Decoded], *, taper: bool = False
    ) -> tuple[dict[int, dict[str, dict[str, np.ndarray]]], list[Callable[[], tuple[int, float]]]]:
        """The batches of :meth:`summarize`, as jobs that can run on any thread, in any order.

        Parameters
        ----------
        clips : list of Decoded
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
        items = sorted(clips, key=lambda c: len(_audio(c)))
        fitted = [fit_length(_audio(c), min_samples=cfg.min_samples, policy=cfg.short) for c in items]
        lengths = [len(w) for w in fitted]
        waves_all: list[np.ndarray | None] = list(fitted)
        del fitted  # each main pass drops its clips' waveforms from waves_all
        jobs: list[Callable[[], tuple[int, float]]] = []
        # clips without a clean head frame get their heads from a second pass, tiled (or padded)
        # to 20 s: the main pass leaves their heads alone (the jobs may run in any order)
        second = self.head_layers and cfg.heads_short != "none"
        short = [c for c in items if not head_frame_ok(len(_audio(c))).any()] if second else []
        skip = (set(self.head_layers), {c.order for c in short})

        def main_pass(idx: list[int]) -> tuple[int, float]:
            batch = [items[k] for k in idx]
            res = self._forward(
                [_audio_of(waves_all[k]) for k in idx], cfg.layers, clip_samples=[len(_audio(c)) for c in batch]
            )
            self._collect(res, batch, out, skip=skip)
            for k in idx:
                waves_all[k] = None  # (the clip's audio stays with the shard until it is written)
            return len(batch), sum(len(_audio(c)) for c in batch) / SAMPLE_RATE_HZ

        jobs += [functools.partial(main_pass, idx) for idx in self._batches(items, lengths, taper=taper)]
        if second:

            def heads_pass(batch: list[Decoded]) -> tuple[int, float]:
                waves = [head_waveform(_audio(c), heads_short=cfg.heads_short) for c in batch]
                self._collect(self._forward(waves, self.head_layers), batch, out)
                return 0, 0.0

            batches = [short[i : i + cfg.batch_size] for i in range(0, len(short), cfg.batch_size)]
            jobs += [
                functools.partial(heads_pass, b) for b in (_tapered(batches, cfg.batch_size) if taper else batches)
            ]
        return out, jobs

    def summarize(
        self, clips: list[Decoded], *, progress: Callable[[int, float], None] | None = None
    ) -> dict[int, dict[str, dict[str, np.ndarray]]]:
        """Per clip (by order) and layer, the summaries ``{stat: (n_units,)}``.

        Parameters
        ----------
        clips : list of Decoded
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
    def _collect(res: _Pass, batch: list[Decoded], out: dict, skip: tuple[set[str], set[int]] = (set(), set())) -> None:
        """Store a pass's summaries per clip, except ``skip``'s layers for ``skip``'s clips."""
        layers, orders = skip
        for layer, summ in res.summaries.items():
            for j, c in enumerate(batch):
                if layer not in layers or c.order not in orders:
                    out[c.order][layer] = {k: v[j] for k, v in summ.items()}

    def summarize_long(self, row: dict) -> tuple[dict[str, dict[str, np.ndarray]], float]:
        """Summaries of one long file, streamed in chunks; returns ``(summaries, duration_s)``.

        Chunks of about ``chunk_s`` overlap by :func:`chunk_plan`'s margin and start on
        multiples of conv8's hop (a multiple of every layer's hop), so chunk frames are whole-file
        frames; each frame is taken from the first chunk that holds its whole receptive field (or
        from the file's first / last chunk for the frames that reach into the zero padding).
        """
        cfg = self.config
        chunk, step = chunk_plan(cfg.chunk_s)
        acc = {l: StreamStats(l, min_inside=cfg.min_inside) for l in cfg.layers}
        start_s = float_or(row.get("start_s"), 0.0)
        end = float_or(row.get("end_s"), float("nan"))
        duration = None if not np.isfinite(end) else end - start_s
        buf = np.zeros(0, dtype=np.float32)
        s0 = 0  # global sample index of buf[0]
        total = None  # known once the stream ends
        blocks = excerpt_blocks(row["path"], start_s, duration)
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
                    counted = summary_frames(total, layer, edge=cfg.edge) if at_end and total is not None else None
                    acc[layer].add_chunk(
                        o[0].float().cpu().numpy(),
                        s0,
                        len(piece),
                        at_start=s0 == 0,
                        at_end=at_end,
                        counted_frames=counted,
                    )
            if at_end:
                break
            buf = buf[step:]
            s0 += step
        if total is None or total == 0:
            raise AudioError(row["path"], "empty", "no samples decoded")
        summaries = {l: r for l, r in ((l, a.result()) for l, a in acc.items()) if r}
        # heads need 9.5 s; a long file (> chunk_s >= 30 s) always has head frames
        return summaries, total / SAMPLE_RATE_HZ


def summarize_waves(
    model: torch.nn.Module,
    waves: Iterable[np.ndarray],
    *,
    layers: Sequence[str] | None = None,
    stats: Sequence[HeadStat] | None = None,
    config: RecordConfig | None = None,
    fast: bool | None = None,
    heads_short: HeadsShort | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-clip summaries of waveforms held in memory, exactly as the recorder makes them.

    The same engine as :func:`interp.recording.record_corpus` (short-clip policy, batch masking,
    ``edge``, the heads' 20 s tiling), for audio that is not a corpus on disk: perturbed clips,
    clips under an ablation (pass ``fast=False`` so that hooks on the plain model are honoured),
    looped windows.

    Parameters
    ----------
    model : SoundNet8
        The plain model (or a ``FastSoundNet``).
    waves : iterable of np.ndarray, each (n_samples,)
        Mono float32 in [-1, 1] at 22050 Hz (not scaled x256: that happens here).
    layers : sequence of str, optional
        Layers to summarise (default: ``config.layers``).
    stats : sequence of {"mean", "max", "peak_s", "prob"}, optional
        Summaries over time to return, as in a run directory; ``prob`` (mean softmax) only for
        the heads. Default: every one the recorder stores for each layer (``mean``, ``max``,
        ``peak_s``; and ``prob`` for the heads).
    config : RecordConfig, optional
        The recorder's settings to follow (short clips, ``edge``, batch size): a run's are
        :meth:`RecordConfig.from_meta` of its ``run.meta``, so that the summaries equal the
        run's. Default: the recorder's defaults.
    fast : bool, optional
        Use the fast inference path (default: ``config.fast``). ``False`` runs the plain model,
        whose forward hooks (e.g. :func:`interp.analysis.ablation.ablate`) are then honoured.
    heads_short : {"tile", "pad", "none"}, optional
        How clips without a clean head frame are lengthened for the heads (default:
        ``config.heads_short``); ``"none"`` skips the heads' second pass.

    Returns
    -------
    dict ``{layer: {stat: np.ndarray (n_clips, n_units) float32}}``
        NaN rows for clips that gave a layer no frame.

    Raises
    ------
    ParameterError
        An unknown layer or statistic, no statistic, or ``prob`` asked for a conv layer.
    """
    where = "summarize_waves"
    if heads_short is not None:
        check_option("heads_short", heads_short, HeadsShort, where=where)
    changes: dict[str, Any] = {
        "layers": None if layers is None else tuple(layers),
        "fast": fast,
        "heads_short": heads_short,
    }
    cfg = dataclasses.replace(config or RecordConfig(), **{k: v for k, v in changes.items() if v is not None})
    wanted: tuple[str, ...] | None = None
    if stats is not None:
        wanted = (stats,) if isinstance(stats, str) else tuple(stats)
        if not wanted:
            raise ParameterError(
                f"The 'stats' parameter of {where} must name at least one statistic of "
                f"{choices(HeadStat)!r}. Got () instead."
            )
        for st in wanted:
            check_option("stats", st, HeadStat, where=where)
        conv = [layer for layer in cfg.layers if layer not in HEAD_LAYERS]
        if "prob" in wanted and conv:
            raise ParameterError(
                f"The 'stats' parameter of {where} may hold 'prob' only for the heads "
                f"{HEAD_LAYERS!r}. Got it for the conv layers {conv} instead."
            )
    items = [
        Decoded(i, str(i), np.asarray(w, dtype=np.float32), "ok", "", len(w) / SAMPLE_RATE_HZ, SAMPLE_RATE_HZ)
        for i, w in enumerate(waves)
    ]
    res = BatchEngine(model, cfg).summarize([d for d in items if len(_audio(d))]) if items else {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in cfg.layers:
        layer_stats = wanted or STATS + (HEAD_STATS if layer in HEAD_LAYERS else ())
        units = SPEC_BY_NAME[layer].out_channels
        out[layer] = {st: np.full((len(items), units), np.nan, dtype=np.float32) for st in layer_stats}
        for i in range(len(items)):
            summ = res.get(i, {}).get(layer)
            if summ:
                for st in layer_stats:
                    out[layer][st][i] = summ[st]
    return out


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
    return batches + [b[i : i + small] for b in tail for i in range(0, len(b), small)]


def _audio(clip: Decoded) -> np.ndarray:
    """A decoded clip's audio (the engine only receives clips that decoded)."""
    assert clip.audio is not None, clip.clip_id
    return clip.audio


def _audio_of(wave: np.ndarray | None) -> np.ndarray:
    """A waveform still waiting for its batch (a main pass runs each batch once)."""
    assert wave is not None
    return wave


def _maybe_fast(model: SoundNet8, config: RecordConfig) -> torch.nn.Module:
    """The fast inference path when available and asked for, else the model itself."""
    if not config.fast:
        return model
    try:
        return fast_model(model, layers=config.layers)
    except Exception:
        return model
