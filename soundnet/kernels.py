"""The fast path's kernels: folded weights, block-Toeplitz matrices, the compiled block loop.

:class:`soundnet.fast.FastSoundNet` computes each conv block as matrix products over strided
windows of its input; this module holds the pieces that do not depend on the class: BatchNorm
folded into the weights (:func:`folded_weights`), the weight matrix that computes several frames
per window (:func:`toeplitz`), the block loop (:func:`block_tasks`, compiled with TorchScript as
:data:`BLOCK_TASKS`) and its max-pool, and :func:`compiled`, which the recorder uses too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from soundnet.errors import ParameterError
from soundnet.specs import BN_EPS, LayerSpec

__all__ = ["compiled", "block_tasks", "BLOCK_TASKS", "max_pool_into", "folded_weights", "toeplitz", "transposed"]


def block_tasks(
    windows: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    interior: torch.Tensor,
    cols: torch.Tensor,
    prod: torch.Tensor,
    tmp: torch.Tensor,
    tasks: list[list[int]],
    r: int,
    pool: int,
    n_frames: int,
) -> None:
    """One conv block's chunks: windows -> matrix product -> max-pool -> bias -> ReLU.

    Parameters
    ----------
    windows : torch.Tensor, shape (batch, n_rows, k_cols)
        Strided view of the input: each row is the window of ``r`` output frames.
    weight : torch.Tensor, shape (k_cols, r * out)
        Folded (block-Toeplitz for ``r`` > 1) weights; ``bias`` ``(out,)``.
    interior : torch.Tensor, shape (batch, n_out, out)
        Where the pooled, biased, rectified frames go (the next layer's buffer).
    cols, prod, tmp : torch.Tensor
        Scratch: ``(max_rows, k_cols)``, ``(max_rows, r * out)`` and, with a pool, at least
        half of ``prod``'s values (1-D).
    tasks : list of [first clip, end clip, first row, rows]
        The chunks, each a whole number of pools (see :meth:`soundnet.fast.FastSoundNet._gemm_layer`).
    r, pool, n_frames : int
        Output frames per row, max-pool size (1: none), conv frames that enter the pools.

    Notes
    -----
    Written for TorchScript (:data:`BLOCK_TASKS`), whose interpreter runs the loop without
    Python's GIL; it runs as plain Python too.
    """
    k_cols = windows.shape[2]
    c_out = prod.shape[1] // r
    for task in tasks:
        b0, b1, row0, rows = task[0], task[1], task[2], task[3]
        clips = b1 - b0
        n = clips * rows
        cols[:n].view(clips, rows, k_cols).copy_(windows[b0:b1, row0 : row0 + rows])
        torch.mm(cols[:n], weight, out=prod[:n])
        frame0 = row0 * r
        frames = min(rows * r, n_frames - frame0)
        first = frame0 // pool
        stop = (frame0 + frames) // pool
        done = interior[b0:b1, first:stop]
        src = prod[:n].view(clips, rows * r, c_out)[:, : (stop - first) * pool]
        if pool == 1:
            done.copy_(src)
        else:
            max_pool_into(src.reshape(clips, stop - first, pool, c_out), done, tmp)
        done.add_(bias).relu_()


def max_pool_into(src: torch.Tensor, out: torch.Tensor, tmp: torch.Tensor) -> None:
    """``out = src.amax(2)`` for ``src`` ``(clips, n, pool, channels)``, ``out`` ``(clips, n,
    channels)``.

    For ``pool`` a power of two (SoundNet's 8, 8 and 4), a tree of elementwise maxima over
    halves, several times faster on CPU than ``amax`` over that axis; ``tmp`` is a 1-D scratch
    of at least ``src.numel() // 2`` values. The steps after the first write over the first
    half of the scratch they read, with the same strides.
    """
    clips, n, pool, channels = src.shape[0], src.shape[1], src.shape[2], src.shape[3]
    if pool == 2:
        torch.maximum(src[:, :, 0], src[:, :, 1], out=out)
    elif pool < 2 or pool & (pool - 1) != 0:
        torch.amax(src, 2, out=out)
    else:
        width = pool // 2
        scratch = tmp[: clips * n * width * channels].view(clips, n, width, channels)
        torch.maximum(src[:, :, :width], src[:, :, width:pool], out=scratch)
        while width > 2:
            half = width // 2
            torch.maximum(scratch[:, :, :half], scratch[:, :, half:width], out=scratch[:, :, :half])
            width = half
        torch.maximum(scratch[:, :, 0], scratch[:, :, 1], out=out)


def compiled(fn: Callable) -> Callable:
    """``fn`` compiled with TorchScript, or ``fn`` itself where that fails.

    For functions of tensor operations that threads run side by side (the fast path's block
    loop, the recorder's frame reductions): TorchScript's interpreter runs them without taking
    Python's GIL for each operation. With two lanes recording on two cores, the Python block
    loop's 600 or so operations per batch of 16 clips of 5 s made each lane wait for the GIL
    (4.0 against 3.5 ms per clip alone). TorchScript is deprecated in torch 2.x; the plain
    function computes the same (the tests hold both equal).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(fn)
    except Exception:  # TorchScript missing or unable to compile: the same code as Python
        return fn


#: The block loop that :meth:`soundnet.fast.FastSoundNet._gemm_layer` runs: :func:`block_tasks`, compiled.
BLOCK_TASKS: Callable = compiled(block_tasks)


def folded_weights(state: dict[str, torch.Tensor], spec: LayerSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight ``(out, in, kernel)`` and bias ``(out,)`` of block ``spec`` in a :class:`SoundNet8`
    state dict, BatchNorm folded in (copies: later changes to the source do not reach them)."""
    name = spec.name
    weight, bias = state[f"{name}.0.weight"].detach(), state[f"{name}.0.bias"].detach()
    shape = (spec.out_channels, spec.in_channels, spec.kernel)
    if tuple(weight.shape) != shape or tuple(bias.shape) != shape[:1]:
        raise ParameterError(
            f"The weights of {name} must have shape {shape} (bias {shape[:1]}). "
            f"Got {tuple(weight.shape)} ({tuple(bias.shape)}) instead."
        )
    if not spec.batchnorm:
        return weight.to(torch.float32, copy=True), bias.to(torch.float32, copy=True)
    # the per-unit scale and the bias in float64, rounded once to float32; the weights times the
    # rounded scale in float32 (within 1 ulp of the float64 product, at a fifth of its cost)
    bn = {k: state[f"{name}.1.{k}"].detach().double() for k in ("weight", "bias", "running_mean", "running_var")}
    scale = bn["weight"] / torch.sqrt(bn["running_var"] + BN_EPS)
    folded_weight = weight.float() * scale.float()[:, None, None]
    folded_bias = (bias.double() - bn["running_mean"]) * scale + bn["bias"]
    return folded_weight, folded_bias.float()


def toeplitz(weight: torch.Tensor, frames_per_row: int, stride: int, *, window: int) -> torch.Tensor:
    """The ``(window * in, r * out)`` matrix computing ``r`` consecutive frames from one window.

    Row ``t * in + c`` (input frame ``t`` of the window, channel ``c``), column ``f * out + o``
    (output frame ``f``, unit ``o``) holds ``weight[o, c, t - stride * f]`` (0 outside the
    kernel). For ``r = 1`` this is the plain im2col weight matrix. ``window`` >= ``kernel +
    stride * (r - 1)`` input frames.
    """
    c_out, c_in, kernel = weight.shape
    taps = transposed(weight.permute(0, 2, 1).reshape(c_out, kernel * c_in))  # (kernel * in, out)
    if frames_per_row == 1 and window == kernel:
        return taps
    taps = taps.view(kernel, c_in, c_out)
    mat = weight.new_zeros((window, c_in, frames_per_row, c_out))
    for f in range(frames_per_row):
        mat[stride * f : stride * f + kernel, :, f, :] = taps
    return mat.reshape(window * c_in, frames_per_row * c_out)


def transposed(m: torch.Tensor, block: int = 64) -> torch.Tensor:
    """``m.t().contiguous()`` for a 2-D ``m``, copied a block of ``m``'s rows at a time (4 times
    as fast as one strided copy for conv7's 1024 x 2048 weights)."""
    out = m.new_empty((m.shape[1], m.shape[0]))
    for i in range(0, m.shape[0], block):
        out[:, i : i + block].copy_(m[i : i + block].t())
    return out
