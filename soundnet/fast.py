"""A fast inference path for SoundNet8: folded BatchNorm, convolutions as large matrix products.

:class:`FastSoundNet` wraps a (pretrained, eval-mode) :class:`soundnet.model.SoundNet8` and
exposes the same :meth:`~FastSoundNet.extract_features` and ``__call__`` as the plain model, with
outputs equal to the plain model's up to float32 rounding (the tests hold them within 1e-4 of
each layer's largest magnitude). It is for inference only: no gradients, weights frozen at
construction.

Two methods compute the same thing:

``"gemm"`` (the default on CPU)
    Activations are kept time-major, ``(batch, frames, channels)``, in zero-padded buffers, so
    that the input windows of every strided convolution are rows of a strided view; each layer is
    one matrix product of those windows (copied, chunk by chunk, into a buffer that stays in
    cache) with the folded weights. conv1 (16 filters of 64 taps on one channel, stride 2) is
    far too thin for a matrix product as it stands; it computes 8 consecutive output frames per
    row instead: a window of 80 samples (78 used) times an ``(80, 128)`` block-Toeplitz matrix
    (25 % more multiply-adds than strictly needed, but a product MKL runs at 2/3 of its peak),
    and its max-pool of 8 becomes a maximum over the 8 frames of each row. conv2 likewise
    computes 4 frames per row (``(608, 128)`` weights, 19 % extra). Max-pools are taken
    *before* the bias and ReLU, which is exact (both are non-decreasing), on 8x less data, as
    a tree of elementwise maxima. The heads conv8 and conv8_2 are one product each, with
    their weights as they lie. Each block's loop over its chunks is one TorchScript function
    (:func:`soundnet.kernels.compiled`), which runs its operations without taking Python's GIL for each, so
    threads that run batches side by side do not queue for it.
``"conv"`` (the default elsewhere, e.g. CUDA)
    The plain network with BatchNorm folded into the convolutions: ``conv1d`` + ReLU + max-pool
    per block. Simple and portable; cuDNN is fast at it.

Also here: :func:`flops_per_second_of_audio` and :func:`forward_flops`, the analytic cost of a
forward pass, which the benchmarks use to turn times into GFLOP/s; :meth:`FastSoundNet.from_weights`
builds the fast path straight from a weights file, for the layers asked for only.

Threads: by default each operation of a chunk runs on torch's intra-op threads
(``torch.get_num_threads()``), fastest when the cores are free. On a machine busy with other
processes, ``workers=2`` (one single-threaded worker thread per core, taking chunks as they
finish) is slower at best but far steadier; see ``benchmarks/bench_forward.py``.

Examples
--------
>>> from soundnet import load_soundnet, load_audio
>>> from soundnet.fast import FastSoundNet
>>> fast = FastSoundNet(load_soundnet())
>>> feats = fast.extract_features(load_audio("clip.flac"), layers=("conv5", "conv7"))
"""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from soundnet import kernels
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, layer_geometry, n_frames
from soundnet.model import (
    CONV_LAYERS,
    HEAD_LAYERS,
    LAYERS,
    SPEC_BY_NAME,
    LayerSpec,
    SoundNet8,
    _as_3d,
    check_device,
)
from soundnet.options import FastMethod, check_option, choices
from soundnet.weights import load_state_dict

__all__ = ["FastSoundNet", "fast_model", "flops_per_second_of_audio", "forward_flops", "METHODS"]

#: The ways :class:`FastSoundNet` can compute a forward pass.
METHODS: tuple[FastMethod, ...] = choices(FastMethod)

#: Output frames computed per matrix row, per layer, in the ``"gemm"`` method (1 = plain im2col).
_FRAMES_PER_ROW: dict[str, int] = {"conv1": 8, "conv2": 4}
#: Matrix columns (window * in_channels) are padded to a multiple of this (16 floats, 64 bytes).
_ALIGN_COLS = 16
#: Default size of one chunk's buffers (windows + product), in bytes, per thread working on it:
#: half a core's L2 cache, so that the product is still there for the max-pool (measured best,
#: 1 to 1.5 MiB against 0.4 to 3 MiB, on a 2-core Xeon with 2 MiB of L2 per core, once the chunk
#: loop ran compiled: 2.8 against 3.05 ms per 5 s clip on one thread with 3 MiB).
_CHUNK_BYTES_PER_THREAD = 1 << 20


def _validate_layers(layers, func: str) -> list[str]:
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not layers:
        raise ParameterError(
            f"The 'layers' parameter of {func} must be a non-empty sequence of layer names from "
            f"{list(LAYERS)}. Got {layers!r} instead."
        )
    unknown = [name for name in layers if name not in SPEC_BY_NAME]
    if unknown:
        raise ParameterError(
            f"The 'layers' parameter of {func} must name layers from {list(LAYERS)}. "
            f"Got unknown name(s) {unknown} instead."
        )
    return list(layers)


def flops_per_second_of_audio(layers: Sequence[str] = CONV_LAYERS, *, sample_rate_hz: float = SAMPLE_RATE_HZ) -> float:
    """Floating-point operations of a forward pass per second of input audio.

    Counts the convolutions only, ``2 * kernel * in_channels * out_channels`` per output frame
    (one multiply and one add per weight), at each layer's asymptotic frame rate (the rate of
    the convolution's output, before any max-pool). BatchNorm, ReLU, pooling and padding
    effects are left out: they are O(1) per value, not per weight.

    Parameters
    ----------
    layers : sequence of str
        Layers to count (default conv1..conv7; add ``"conv8", "conv8_2"`` for the heads).
    sample_rate_hz : float (in Hz)
        Input sampling rate; SoundNet's is 22050.

    Returns
    -------
    float
        FLOP per second of audio (about 57.9e6 for conv1..conv7, 65.6e6 with both heads).
    """
    names = _validate_layers(layers, "flops_per_second_of_audio")
    if not sample_rate_hz > 0:
        raise ParameterError(
            f"The 'sample_rate_hz' parameter of flops_per_second_of_audio must be > 0. Got {sample_rate_hz!r} instead."
        )
    total = 0.0
    for name in dict.fromkeys(names):
        spec = SPEC_BY_NAME[name]
        previous = _input_layer(name)
        in_hop_samples = layer_geometry(previous).hop_samples if previous else 1
        frames_per_s = sample_rate_hz / (in_hop_samples * spec.stride)
        total += 2.0 * spec.kernel * spec.in_channels * spec.out_channels * frames_per_s
    return total


def forward_flops(n_samples: int, *, layers: Sequence[str] = CONV_LAYERS) -> int:
    """Floating-point operations of the convolutions of a forward pass on one input.

    The exact count for the frames really computed (``2 * kernel * in * out`` per output frame
    of each convolution, before its max-pool), where :func:`flops_per_second_of_audio` gives
    the long-input rate.

    Parameters
    ----------
    n_samples : int
        Input length in samples (at 22050 Hz).
    layers : sequence of str
        Layers to count (default conv1..conv7).

    Returns
    -------
    int
        FLOP for one clip (multiply by the batch size for a batch).
    """
    names = _validate_layers(layers, "forward_flops")
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 0:
        raise ParameterError(
            f"The 'n_samples' parameter of forward_flops must be an int >= 0. Got {n_samples!r} instead."
        )
    total = 0
    for name in dict.fromkeys(names):
        spec = SPEC_BY_NAME[name]
        previous = _input_layer(name)
        n_in = n_frames(n_samples, previous) if previous else int(n_samples)
        frames = _conv_frames(n_in, spec)
        if frames < max(1, spec.pool):  # SoundNet8.run_block skips the block
            frames = 0
        total += 2 * spec.kernel * spec.in_channels * spec.out_channels * frames
    return total


def _input_layer(name: str) -> str | None:
    """The layer whose output ``name`` reads (None for conv1, which reads the waveform)."""
    if name in HEAD_LAYERS:
        return CONV_LAYERS[-1]
    index = LAYERS.index(name)
    return LAYERS[index - 1] if index else None


def _conv_frames(n_in: int, spec: LayerSpec) -> int:
    """Frames out of ``spec``'s convolution for ``n_in`` input frames (0 once a layer has none).

    Mirrors :meth:`SoundNet8.run_block`, which gives 0 frames when the padded input is shorter
    than the kernel, and :func:`soundnet.geometry.n_frames`.
    """
    if n_in == 0 or n_in + 2 * spec.padding < spec.kernel:
        return 0
    return (n_in + 2 * spec.padding - spec.kernel) // spec.stride + 1


@dataclass(frozen=True)
class _Plan:
    """Static geometry of one layer in the ``"gemm"`` method."""

    spec: LayerSpec
    frames_per_row: int  # r: output frames per matrix row
    window: int  # input frames one row reads: kernel + stride * (r - 1), or a few more
    out_channels: int  # r * spec.out_channels columns per row


class FastSoundNet(nn.Module):
    """SoundNet8 for fast inference; same interface and outputs as the plain model.

    Parameters
    ----------
    model : SoundNet8
        The network to copy the weights from (normally :func:`soundnet.load_soundnet`). Its
        BatchNorm running statistics are folded into the convolutions; later changes to
        ``model`` do not reach this copy.
    device : str or torch.device, optional
        Where to run (default: the device of ``model``'s weights). Inputs are moved there;
        outputs stay there.
    method : {"auto", "gemm", "conv"}
        ``"auto"`` picks ``"gemm"`` on CPU and ``"conv"`` elsewhere (see the module notes).
    chunk_rows : int, optional
        Matrix rows per chunk in the ``"gemm"`` method (a chunk is the whole batch, a few
        whole clips, or part of one clip); default: as many as fit 1 MiB of buffers per
        thread working on the chunk, so that they stay in cache (e.g. 2520 rows of 8 frames
        for conv1 with 2 threads).
    workers : int
        Worker threads that share the chunks in the ``"gemm"`` method on CPU. The default, 1,
        runs the chunks one after the other, each operation on torch's intra-op threads:
        fastest on an idle machine. With ``workers`` > 1, each worker runs its chunks
        single-threaded and takes the next when done; slower when the cores are free (the
        workers contend for Python's GIL) but far less hurt when other processes compete for
        the cores (no barrier after every operation).
    num_threads : int, optional
        Intra-op threads torch uses during a call (restored afterwards). Default: leave
        ``torch.get_num_threads()`` as it is.
    layers : str or sequence of str, optional
        The layers this copy will be asked for (default: all of them). Only the blocks they
        need are built: conv1 to the deepest conv layer named, or every conv layer and the
        heads named (a copy without the heads skips their 11.5 M weights). Asking it for
        another layer later raises :class:`ParameterError`.

    Notes
    -----
    Input: float32 ``(batch, 1, n_samples)`` at 22050 Hz, scaled x256, as for
    :class:`SoundNet8`. Layers whose input is too short give 0 frames, exactly as
    :meth:`SoundNet8.run_block` does.
    """

    def __init__(
        self,
        model: SoundNet8,
        *,
        device: str | torch.device | None = None,
        method: FastMethod = "auto",
        chunk_rows: int | None = None,
        workers: int = 1,
        num_threads: int | None = None,
        layers: str | Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(model, SoundNet8):
            raise ParameterError(
                "The 'model' parameter of FastSoundNet must be a SoundNet8 (see "
                f"soundnet.load_soundnet). Got {type(model).__name__} instead."
            )
        if model.training:
            raise ParameterError(
                "The 'model' parameter of FastSoundNet must be in eval mode (BatchNorm running "
                "statistics are folded in). Got a model in training mode instead; call "
                "model.eval()."
            )
        dev = check_device(device, "FastSoundNet") if device is not None else next(model.parameters()).device
        self._build(
            model.state_dict(),
            dev,
            method=method,
            chunk_rows=chunk_rows,
            workers=workers,
            num_threads=num_threads,
            layers=layers,
        )

    @classmethod
    def from_weights(
        cls,
        weights: str | os.PathLike | None = None,
        *,
        device: str | torch.device = "cpu",
        **options,
    ) -> FastSoundNet:
        """A FastSoundNet straight from a weights file, without building the plain model.

        Parameters
        ----------
        weights : str or path, optional
            As for :func:`soundnet.load_soundnet` (resolved by
            :func:`soundnet.weights.resolve_weights` when omitted).
        device : str or torch.device
        **options
            ``method``, ``chunk_rows``, ``workers``, ``num_threads``, ``layers``, as for the class.
            With ``layers``, the weights of the other blocks are not even read (``.pth`` files
            are memory-mapped): for conv1..conv7, about 20 against 40 ms (``load_soundnet`` then
            the class) on the 2-core development machine.
        """

        net = cls.__new__(cls)
        nn.Module.__init__(net)
        # memory-mapped: every tensor kept is a copy (folded, laid out), so no view of the file stays
        net._build(load_state_dict(weights, mmap=True), check_device(device, "FastSoundNet.from_weights"), **options)
        return net

    def _build(
        self,
        state: dict[str, torch.Tensor],
        dev: torch.device,
        *,
        method: FastMethod = "auto",
        chunk_rows: int | None = None,
        workers: int = 1,
        num_threads: int | None = None,
        layers: str | Sequence[str] | None = None,
    ) -> None:
        """Fold and lay out the weights of ``state`` (a :class:`SoundNet8` state dict)."""
        check_option("method", method, FastMethod, where="FastSoundNet")
        checks = (("chunk_rows", chunk_rows, True), ("workers", workers, False), ("num_threads", num_threads, True))
        for pname, value, optional in checks:
            if (value is None and optional) or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                continue
            raise ParameterError(
                f"The '{pname}' parameter of FastSoundNet must be an int >= 1"
                f"{' or None' if optional else ''}. Got {value!r} instead."
            )
        self.method = ("gemm" if dev.type == "cpu" else "conv") if method == "auto" else method
        self.chunk_rows = chunk_rows
        self.workers = workers
        self.num_threads = num_threads
        self._plans: dict[str, _Plan] = {}
        #: the layers this copy computes (see ``layers``)
        self.layers: tuple[str, ...] = _built_layers(
            LAYERS if layers is None else _validate_layers(layers, "FastSoundNet")
        )
        with torch.no_grad():
            for spec in (SPEC_BY_NAME[name] for name in self.layers):
                weight, bias = kernels.folded_weights(state, spec)
                if self.method == "gemm" and spec.name in CONV_LAYERS:
                    r = _FRAMES_PER_ROW.get(spec.name, 1)
                    window = spec.kernel + spec.stride * (r - 1)
                    while (window * spec.in_channels) % _ALIGN_COLS:
                        window += 1  # zero weights; aligned rows run faster
                    self._plans[spec.name] = _Plan(spec, r, window, r * spec.out_channels)
                    weight = kernels.toeplitz(weight, r, spec.stride, window=window)
                elif self.method == "gemm":  # the heads: (out, in * kernel), the weights as they lie
                    weight = weight.reshape(weight.shape[0], -1)
                self.register_buffer(f"{spec.name}_weight", weight.contiguous().to(dev))
                self.register_buffer(f"{spec.name}_bias", bias.contiguous().to(dev))
        self.eval()

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return cast(torch.Tensor, self.conv1_bias).device

    # -- public API, as SoundNet8 ---------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object and place logits, ``(batch, 1000, T8)`` and ``(batch, 401, T8)``.

        As for :class:`SoundNet8`, the seed's 4-D input ``(batch, 1, n_samples, 1)`` gives 4-D
        outputs ``(batch, 1000, T8, 1)`` and ``(batch, 401, T8, 1)``.
        """
        feats = self.extract_features(x, layers=HEAD_LAYERS)
        return feats["conv8"], feats["conv8_2"]

    def extract_features(
        self,
        x: torch.Tensor,
        *,
        layers: Sequence[str] | None = None,
        contiguous: bool = True,
        lengths: Sequence[int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Every requested layer's output by name, as :meth:`SoundNet8.extract_features`.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, 1, n_samples)
            Waveform at 22050 Hz, scaled x256.
            The seed's ``(batch, 1, n_samples, 1)`` is accepted too; the outputs then get a
            trailing axis of 1.
        layers : str or sequence of str, optional
            Names to return (default: every layer this copy was built for, all of
            :data:`soundnet.model.LAYERS` unless its ``layers`` said otherwise). The forward
            pass stops after the last one needed.
        contiguous : bool
            Return contiguous tensors, as the plain model does (default). With False, the
            ``"gemm"`` method returns its conv-layer outputs as ``(batch, units, n_frames)``
            views of its time-major buffers (strides ``(frames * units, 1, units)``): same
            values, no transposing copy; for callers that only reduce over frames, such as
            :func:`interp.recording.record_corpus`.
        lengths : sequence of int, optional
            Each item's true length in samples, for a batch of clips of unequal lengths padded
            to ``n_samples`` (default: every item is ``n_samples`` long). After every layer the
            frames beyond an item's own frame count (:func:`soundnet.geometry.n_frames`) are set
            to zero, which is what that layer's zero padding gives an unbatched pass: each
            item's first ``n_frames(length, layer)`` frames equal its unbatched outputs (up to
            float32 rounding), and its later frames are 0.

        Returns
        -------
        dict of str to torch.Tensor
            ``{layer: (batch, units, n_frames)}`` float32, contiguous unless ``contiguous`` is
            False, in the order asked, on
            :attr:`device`; the heads have 0 frames for inputs shorter than 209,374 samples.

        Raises
        ------
        ParameterError
            For an input of another shape or a non-float dtype, or an unknown layer name.
        """
        x, seed_layout = _as_3d(x)
        wanted = _validate_layers(self.layers if layers is None else layers, "extract_features")
        missing = [name for name in wanted if name not in self.layers]
        if missing:
            raise ParameterError(
                f"The 'layers' parameter of extract_features must name layers this FastSoundNet "
                f"was built for ({list(self.layers)}; see its 'layers' parameter). Got {missing} "
                "instead."
            )
        last = max((CONV_LAYERS.index(w) for w in wanted if w in CONV_LAYERS), default=-1)
        if any(w in HEAD_LAYERS for w in wanted):
            last = len(CONV_LAYERS) - 1
        x = x.to(device=self.device, dtype=torch.float32)
        counts = _item_lengths(lengths, x.shape[0], x.shape[-1])
        with torch.inference_mode(), self._threads():
            run = self._run_gemm if self.method == "gemm" else self._run_conv
            heads = [h for h in HEAD_LAYERS if h in wanted]
            out = run(x, CONV_LAYERS[: last + 1], heads, set(wanted), counts)
            if contiguous:
                out = {name: t.contiguous() for name, t in out.items()}
        if seed_layout:
            return {name: out[name].unsqueeze(-1) for name in wanted}
        return {name: out[name] for name in wanted}

    # -- the two methods ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        if self.num_threads is None or self.num_threads == torch.get_num_threads():
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _run_conv(self, x, convs, heads, wanted, lengths) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        h = _masked(x.clone(), lengths, None) if lengths else x
        for name in convs:
            spec = SPEC_BY_NAME[name]
            with torch.profiler.record_function(f"soundnet.fast.{name}"):
                n = _conv_frames(h.shape[-1], spec)
                if n and spec.pool and n < spec.pool:
                    n = 0
                if n == 0:
                    h = h.new_zeros((h.shape[0], spec.out_channels, 0))
                else:
                    h = F.conv1d(
                        h, getattr(self, f"{name}_weight"), getattr(self, f"{name}_bias"), spec.stride, spec.padding
                    ).relu_()
                    if spec.pool:
                        h = F.max_pool1d(h, spec.pool, spec.pool)
                    if lengths:
                        h = _masked(h, lengths, name)
            if name in wanted:
                out[name] = h
        for name in heads:
            spec = SPEC_BY_NAME[name]
            with torch.profiler.record_function(f"soundnet.fast.{name}"):
                if _conv_frames(h.shape[-1], spec) == 0:
                    out[name] = h.new_zeros((h.shape[0], spec.out_channels, 0))
                else:
                    out[name] = F.conv1d(h, getattr(self, f"{name}_weight"), getattr(self, f"{name}_bias"), spec.stride)
                    if lengths:
                        out[name] = _masked(out[name], lengths, name)
        return out

    def _run_gemm(self, x, convs, heads, wanted, lengths) -> dict[str, torch.Tensor]:
        batch = x.shape[0]
        out: dict[str, torch.Tensor] = {}
        # h: time-major (batch, frames + margins, channels) buffer; rows [lead, lead + n) hold
        # the layer input, everything else is zero (the convolution's zero padding).
        n = x.shape[-1]
        first = self._plans[convs[0]] if convs else None
        lead = first.spec.padding if first else 0
        h = _padded_buffer(x, batch, lead, n, _rows_needed(n, first) if first else n, 1)
        h[:, lead : lead + n, 0] = x[:, 0]
        if lengths:
            _masked(h[:, lead : lead + n].transpose(1, 2), lengths, None)
        workers = self.workers
        # a chunk is worked on by all of torch's threads, or by one worker thread
        threads_per_chunk = torch.get_num_threads() if workers == 1 else 1
        chunk_bytes = _CHUNK_BYTES_PER_THREAD * threads_per_chunk
        with contextlib.ExitStack() as stack:
            executor = None
            if x.device.type == "cpu" and workers > 1 and convs:
                executor = stack.enter_context(ThreadPoolExecutor(workers, thread_name_prefix="soundnet-fast"))
            for i, name in enumerate(convs):
                plan = self._plans[name]
                nxt = self._plans[convs[i + 1]] if i + 1 < len(convs) else None
                with torch.profiler.record_function(f"soundnet.fast.{name}"):
                    h, n, lead, feats = self._gemm_layer(
                        h,
                        n,
                        lead,
                        plan,
                        nxt,
                        want=name in wanted,
                        executor=executor,
                        workers=workers,
                        chunk_bytes=chunk_bytes,
                    )
                    if lengths:  # the next layer reads zeros past each item's end
                        _masked(h[:, lead : lead + n].transpose(1, 2), lengths, name)
                if feats is not None:
                    out[name] = feats
        if heads:
            with torch.profiler.record_function("soundnet.fast.heads"):
                out.update(
                    {
                        name: _masked(t, lengths, name) if lengths else t
                        for name, t in self._gemm_heads(h, n, lead, heads).items()
                    }
                )
        return out

    def _gemm_layer(
        self,
        h: torch.Tensor,
        n_in: int,
        lead_in: int,
        plan: _Plan,
        nxt: _Plan | None,
        *,
        want: bool,
        executor: ThreadPoolExecutor | None,
        workers: int,
        chunk_bytes: int,
    ) -> tuple[torch.Tensor, int, int, torch.Tensor | None]:
        """One conv block on a padded time-major buffer.

        ``h`` is ``(batch, rows, c_in)`` with the input in rows ``[lead_in, lead_in + n_in)``
        and zeros around it (at least ``padding`` before and enough after for every window).
        Returns the next buffer, its frame count and lead, and (when ``want``) the block's
        output as a ``(batch, out_channels, frames)`` view of the next buffer (time-major
        memory, not contiguous).
        """
        spec = plan.spec
        batch, _, c_in = h.shape
        n_conv = _conv_frames(n_in, spec)
        pool = spec.pool or 1
        n_out = n_conv // pool
        lead = nxt.spec.padding if nxt else 0
        buf = _padded_buffer(h, batch, lead, n_out, _rows_needed(n_out, nxt) if nxt else n_out, spec.out_channels)
        if n_out == 0:
            return buf, 0, lead, h.new_zeros((batch, spec.out_channels, 0)) if want else None
        r = plan.frames_per_row
        # Output frames that matter (the pool drops the tail), rounded up to whole rows and,
        # with a pool, to whole pools per chunk.
        n_rows = -(-(n_out * pool) // r)
        k_cols = plan.window * c_in
        start = lead_in - spec.padding  # buffer row of the first window's first frame
        row_stride = h.stride(0)
        windows = h.as_strided(
            (batch, n_rows, k_cols), (row_stride, spec.stride * r * c_in, 1), h.storage_offset() + start * c_in
        )
        weight = getattr(self, f"{spec.name}_weight")
        bias = getattr(self, f"{spec.name}_bias")
        interior = buf[:, lead : lead + n_out]
        n_frames = n_out * pool
        # Tasks: (first clip, end clip, first row, rows). A chunk is the whole batch, or a few
        # whole clips when a clip's rows fit in it, else a whole number of pools' worth of rows
        # of one clip.
        chunk = self.chunk_rows or max(8, chunk_bytes // (h.element_size() * (k_cols + plan.out_channels)))
        if batch * n_rows <= chunk:  # one product; torch's threads split it by columns
            tasks = [(0, batch, 0, n_rows)]
        elif n_rows <= chunk:
            per_task = min(chunk // n_rows, -(-batch // workers))
            tasks = [(b, min(b + per_task, batch), 0, n_rows) for b in range(0, batch, per_task)]
        else:
            unit = max(1, pool // r)  # rows per pool
            step = max(unit, chunk // unit * unit)
            tasks = [
                (b, b + 1, row0, min(step, n_rows - row0)) for b in range(batch) for row0 in range(0, n_rows, step)
            ]
        max_rows = max((b1 - b0) * rows for b0, b1, _, rows in tasks)

        def buffers() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            """A chunk's windows, product and max-pool scratch."""
            return (
                h.new_empty((max_rows, k_cols)),
                h.new_empty((max_rows, plan.out_channels)),
                h.new_empty((max_rows * r * spec.out_channels // 2 if spec.pool else 0,)),
            )

        if executor is None or workers <= 1:  # every chunk in one call: no GIL between operations
            kernels.BLOCK_TASKS(
                windows, weight, bias, interior, *buffers(), [list(t) for t in tasks], r, pool, n_frames
            )
        else:

            def work(next_task: Callable[[], tuple[int, int, int, int] | None]) -> None:
                bufs = buffers()
                while (task := next_task()) is not None:
                    kernels.BLOCK_TASKS(windows, weight, bias, interior, *bufs, [list(task)], r, pool, n_frames)

            self._share(work, tasks, executor=executor, workers=workers)
        # the output is the next layer's input: a (batch, units, frames) view of it, no copy
        return buf, n_out, lead, interior.transpose(1, 2) if want else None

    @staticmethod
    def _share(work, tasks: list, *, executor: ThreadPoolExecutor | None, workers: int) -> None:
        """Run ``work(next_task)`` until ``tasks`` are done, on ``executor``'s threads if given.

        On CPU with ``workers`` > 1, each worker thread runs single-threaded torch operations on
        its own chunks (torch's intra-op thread count is set to 1 meanwhile and restored): the
        chunks need no synchronisation, where op-by-op parallelism would put a barrier after
        every small operation (costly, the more so on a shared, busy machine). Workers take
        the next chunk when done with one, so a worker that the OS holds up delays nobody.
        """
        pending = iter(tasks)
        lock = threading.Lock()

        def next_task():
            with lock:
                return next(pending, None)

        workers = min(workers, len(tasks))
        if executor is None or workers <= 1:
            work(next_task)
            return
        inference = torch.is_inference_mode_enabled()  # thread-local: carry it to the workers

        def run() -> None:
            with torch.inference_mode(inference):
                work(next_task)

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for future in [executor.submit(run) for _ in range(workers)]:
                future.result()
        finally:
            torch.set_num_threads(before)

    def _gemm_heads(self, h: torch.Tensor, n_in: int, lead_in: int, heads: list[str]) -> dict[str, torch.Tensor]:
        spec = SPEC_BY_NAME["conv8"]
        batch, _, c_in = h.shape
        n_out = _conv_frames(n_in, spec)
        sizes = [SPEC_BY_NAME[name].out_channels for name in HEAD_LAYERS]
        if n_out == 0:
            return {name: h.new_zeros((batch, size, 0)) for name, size in zip(HEAD_LAYERS, sizes) if name in heads}
        # windows in the weights' (in, kernel) order (a transposed weight layout would cost a
        # strided copy of 11.5 M values, 45 to 90 ms, at construction); few frames, so this
        # transposing copy is cheap
        windows = h.as_strided(
            (batch, n_out, c_in, spec.kernel),
            (h.stride(0), spec.stride * c_in, 1, c_in),
            h.storage_offset() + lead_in * c_in,
        ).reshape(batch * n_out, -1)
        return {
            name: torch.addmm(getattr(self, f"{name}_bias"), windows, getattr(self, f"{name}_weight").t())
            .view(batch, n_out, -1)
            .transpose(1, 2)
            .contiguous()
            for name in HEAD_LAYERS
            if name in heads
        }


def _built_layers(layers: Sequence[str]) -> tuple[str, ...]:
    """The blocks that computing ``layers`` needs, in network order."""
    heads = [name for name in HEAD_LAYERS if name in layers]
    convs = [CONV_LAYERS.index(name) for name in layers if name in CONV_LAYERS]
    deepest = len(CONV_LAYERS) - 1 if heads else max(convs)
    return tuple(CONV_LAYERS[: deepest + 1]) + tuple(heads)


def _item_lengths(lengths: Sequence[int] | None, batch: int, n_samples: int) -> list[int] | None:
    """Validated per-item lengths, or None when every item is ``n_samples`` long."""
    if lengths is None:
        return None
    try:
        values = [int(v) for v in lengths]
    except (TypeError, ValueError):
        values = None
    if (
        values is None
        or len(values) != batch
        or any(isinstance(v, bool) for v in lengths)
        or any(not 0 <= v <= n_samples for v in values)
    ):
        raise ParameterError(
            f"The 'lengths' parameter of extract_features must give {batch} int(s) between 0 and "
            f"{n_samples} (the batch's samples). Got {lengths!r} instead."
        )
    return None if all(v == n_samples for v in values) else values


def _masked(t: torch.Tensor, lengths: list[int], layer: str | None) -> torch.Tensor:
    """Zero, in place, the frames of ``t`` ``(batch, channels, frames)`` past each item's own
    frame count at ``layer`` (its length in samples when ``layer`` is None); returns ``t``."""
    frames = t.shape[-1]
    for i, length in enumerate(lengths):
        own = length if layer is None else n_frames(length, layer)
        if own < frames:
            t[i, :, own:] = 0
    return t


def _padded_buffer(like: torch.Tensor, batch: int, lead: int, n: int, after: int, channels: int) -> torch.Tensor:
    """``(batch, lead + after, channels)``, zero outside rows ``[lead, lead + n)`` (left unset)."""
    buf = like.new_empty((batch, lead + after, channels))
    buf[:, :lead].zero_()
    buf[:, lead + n :].zero_()
    return buf


def _rows_needed(n_in: int, plan: _Plan | None) -> int:
    """Buffer rows after the lead padding that ``plan``'s windows may read for ``n_in`` frames."""
    if plan is None:
        return n_in
    spec = plan.spec
    n_conv = _conv_frames(n_in, spec)
    pool = spec.pool or 1
    n_rows = -(-((n_conv // pool) * pool) // plan.frames_per_row)
    reach = (n_rows - 1) * spec.stride * plan.frames_per_row + plan.window - spec.padding
    return max(n_in + spec.padding, reach, 0)


def fast_model(model: SoundNet8, **options) -> FastSoundNet:
    """:class:`FastSoundNet` of ``model``; ``options`` as for the class (keyword-only)."""
    return FastSoundNet(model, **options)
