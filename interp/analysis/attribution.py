"""Per-unit attribution on one clip: which time-frequency regions of the clip drive a unit.

The clip's STFT is cut into ``n_time`` equal time bins by ``n_freq`` mel-spaced bands; each cell
has a *gate* (1 keeps it, 0 silences it) and gated spectra are resynthesised to audio (exactly
:func:`torch.istft`, linear in the gates), so the model always hears a waveform. The target is
one unit's activation at one frame (default: its peak over the clip's valid frames) or its mean
over the valid frames. Captum (imported lazily) attributes it to the gates: ``"occlusion"``
(:class:`captum.attr.Occlusion` of single cells: the activation lost when a cell is silenced) or
``"integrated_gradients"`` (:class:`captum.attr.NeuronIntegratedGradients` from silence; the
cells sum to the activation on the clip minus that on silence). Only cells that can reach the
target's receptive field are evaluated, the model sees only the input its frames read (cropped at
a multiple of the layer's hop; checked), and occlusion recomputes conv1-conv2 around the silenced
cell only. Sanity checks: :func:`randomization_check` (Adebayo et al., NeurIPS 2018) and
:func:`removal_check`. See ``docs/attribution.md``.

Examples
--------
>>> attr = attribute_unit(load_soundnet(), wave, "conv3", 8)   # doctest: +SKIP
>>> attr.map.shape, attr.time_mass(0.0, 0.6)                   # doctest: +SKIP
((32, 16), 0.98)
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from soundnet.audio import INPUT_SCALE, fit_length
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, layer_geometry, min_samples, valid_frames
from soundnet.specs import CONV_LAYERS, SPEC_BY_NAME

__all__ = [
    "Method",
    "Target",
    "Attribution",
    "RemovalCheck",
    "attribute_unit",
    "run_attribution",
    "randomization_check",
    "removal_check",
    "randomized_model",
    "write_attribution",
    "format_attribution",
]

Method = Literal["occlusion", "integrated_gradients"]
Target = Literal["peak", "valid"]
_METHODS = ("occlusion", "integrated_gradients")
_TARGETS = ("peak", "valid")


# -- result ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Attribution:
    """One unit's attribution map on one clip.

    Attributes
    ----------
    map : np.ndarray, shape (n_time, n_freq), float32
        Each cell's attribution, in units of the unit's activation (occlusion: activation on the
        clip minus activation with the cell silenced; integrated gradients: the cell's share of
        activation on the clip minus activation on silence). 0 where not ``evaluated``.
    evaluated : np.ndarray, shape (n_time, n_freq), bool
        Cells that can reach the target's receptive field (the others are 0 by construction).
    time_edges_s : np.ndarray, shape (n_time + 1,), float64
        Time bin edges, seconds from the clip start.
    freq_edges_hz : np.ndarray, shape (n_freq + 1,), float64
        Band edges in Hz (equal steps on the mel scale, 0 Hz to 11,025 Hz).
    baseline_activation : float
        The target (unit's activation) on the unmodified clip.
    top_mask : np.ndarray, shape (n_time, n_freq), bool
        The top-attributed region (see ``top_fraction`` of :func:`attribute_unit`).
    top_audio, complement_audio : np.ndarray, shape (n_samples,), float32
        The clip (in [-1, 1], not scaled x256) filtered to ``top_mask`` and to its complement;
        they add up to the clip.
    layer, unit : str, int
    method : str
    target : str
        ``"peak"`` (one frame) or ``"valid"`` (mean over the valid frames).
    frames : (int, int)
        Target frames ``[first, end)`` of the layer (one frame for ``"peak"``).
    frame_times_s : (float, float)
        Receptive-field centre of the first and the last target frame, in seconds.
    sample_rate_hz : int
    """

    map: np.ndarray
    evaluated: np.ndarray
    time_edges_s: np.ndarray
    freq_edges_hz: np.ndarray
    baseline_activation: float
    top_mask: np.ndarray
    top_audio: np.ndarray
    complement_audio: np.ndarray
    layer: str
    unit: int
    method: str
    target: str
    frames: tuple[int, int]
    frame_times_s: tuple[float, float]
    sample_rate_hz: int = SAMPLE_RATE_HZ
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def times_s(self) -> np.ndarray:
        """Centre of each time bin, seconds, shape (n_time,)."""
        return 0.5 * (self.time_edges_s[:-1] + self.time_edges_s[1:])

    @property
    def freqs_hz(self) -> np.ndarray:
        """Centre of each band in Hz (midpoint on the mel scale), shape (n_freq,)."""
        m = _hz_to_mel(self.freq_edges_hz)
        return _mel_to_hz(0.5 * (m[:-1] + m[1:]))

    def time_mass(self, start_s: float, end_s: float) -> float:
        """Fraction of the map's positive mass in time bins whose centre lies in ``[start_s, end_s)``
        (seconds); NaN when the map has no positive cell."""
        pos = np.clip(self.map, 0.0, None).sum(axis=1)
        total = float(pos.sum())
        if total <= 0:
            return math.nan
        t = self.times_s
        return float(pos[(t >= start_s) & (t < end_s)].sum() / total)

    def to_frame(self) -> pd.DataFrame:
        """The map as a long table: ``time_s, start_s, end_s, freq_hz, low_hz, high_hz, value,
        evaluated, top`` (one row per cell)."""
        nt, nf = self.map.shape
        ti, fi = np.repeat(np.arange(nt), nf), np.tile(np.arange(nf), nt)
        return pd.DataFrame(
            {
                "time_s": self.times_s[ti],
                "start_s": self.time_edges_s[ti],
                "end_s": self.time_edges_s[ti + 1],
                "freq_hz": self.freqs_hz[fi],
                "low_hz": self.freq_edges_hz[fi],
                "high_hz": self.freq_edges_hz[fi + 1],
                "value": self.map.ravel().astype(np.float64),
                "evaluated": self.evaluated.ravel(),
                "top": self.top_mask.ravel(),
            }
        )


@dataclass(frozen=True)
class RemovalCheck:
    """Outcome of :func:`removal_check`: the target (in the unit's activation units) on the clip,
    with the top region silenced, with ``n_random`` random regions of ``n_cells`` cells silenced."""

    baseline_activation: float
    top_activation: float
    random_activations: np.ndarray
    n_cells: int

    @property
    def top_drop(self) -> float:
        """Activation lost by silencing the top region."""
        return self.baseline_activation - self.top_activation

    @property
    def random_drop(self) -> float:
        """Mean activation lost by silencing a random region."""
        return float(self.baseline_activation - np.mean(self.random_activations))

    @property
    def p_value(self) -> float:
        """Share of random regions (plus one) that lower the unit at least as much as the top one."""
        r = np.asarray(self.random_activations)
        return float((1 + np.sum(r <= self.top_activation)) / (1 + len(r)))

    @property
    def passed(self) -> bool:
        """The top region lowers the unit more than the average random region."""
        return self.top_drop > self.random_drop


# -- mel scale and validation ------------------------------------------------------------------
def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _check(func: str, name: str, value: Any, ok: bool | np.bool_, must: str) -> None:
    if not ok:
        raise ParameterError(f"The {name!r} parameter of {func} must be {must}. Got {value!r} instead.")


def _check_unit(func: str, layer: str, unit: Any) -> None:
    _check(func, "layer", layer, layer in CONV_LAYERS, f"one of {list(CONV_LAYERS)}")
    n_units = SPEC_BY_NAME[layer].out_channels
    ok = isinstance(unit, (int, np.integer)) and not isinstance(unit, bool) and 0 <= unit < n_units
    _check(func, "unit", unit, ok, f"an int in [0, {n_units}) for {layer}")


# -- the gated resynthesis and the target ------------------------------------------------------
class _Problem:
    """A clip, its T-F grid, the gated resynthesis of the model's view, and the target."""

    def __init__(
        self,
        model: nn.Module,
        wave: np.ndarray,
        layer: str,
        unit: int,
        *,
        target: str,
        frame: int | None,
        n_time: int,
        n_freq: int,
        n_fft: int,
        hop_length: int,
        clip_samples: int,
        crop: bool,
    ) -> None:
        self.model: Any = model
        self.layer, self.unit, self.target = layer, unit, target
        self.wave, self.clip_samples = wave, clip_samples
        n = len(wave)
        self.n_time, self.n_freq, self.n_fft, self.hop = n_time, n_freq, n_fft, hop_length
        geo = layer_geometry(layer)
        # the target frames, on the clip as given
        acts = self._forward_full(wave)
        ok = valid_frames(n, layer, clip_samples=clip_samples)
        if target == "valid":
            if not ok.any():
                raise ParameterError(
                    f"The clip ({clip_samples} samples) has no valid {layer} frame; use target='peak'. "
                    f"Got target='valid' instead."
                )
            idx = np.flatnonzero(ok)
            f0, f1 = int(idx[0]), int(idx[-1]) + 1
        else:
            if frame is None:
                cand = np.flatnonzero(ok) if ok.any() else np.arange(len(acts))
                frame = int(cand[np.argmax(acts[cand])])
            _check("attribute_unit", "frame", frame, 0 <= frame < len(acts), f"in [0, {len(acts)})")
            f0, f1 = int(frame), int(frame) + 1
        self.frames = (f0, f1)
        # samples the target reads (its receptive field, inside the input)
        r0 = geo.first_start_samples + f0 * geo.hop_samples
        r1 = geo.first_start_samples + (f1 - 1) * geo.hop_samples + geo.receptive_field_samples
        r0, r1 = int(max(0, math.floor(r0))), int(min(n, math.ceil(r1)))
        # crop at a multiple of the layer's hop (the frame grid is unchanged)
        a = (r0 // geo.hop_samples) * geo.hop_samples if crop else 0
        b = r1 if crop else n
        self.a, self.b, self.frame_shift = a, b, a // geo.hop_samples
        # the STFT and the grid: mel bands of bins, equal time columns of frames (by centre)
        self.window = torch.hann_window(n_fft, dtype=torch.float64)
        self.spec = torch.stft(torch.as_tensor(wave, dtype=torch.float64), n_fft, hop_length, window=self.window,
                               center=True, return_complex=True)  # fmt: skip
        n_bins, n_stft = self.spec.shape
        self.freq_edges_hz = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(SAMPLE_RATE_HZ / 2)), n_freq + 1))
        self.freq_edges_hz[-1] = SAMPLE_RATE_HZ / 2
        bin_hz = np.arange(n_bins) * SAMPLE_RATE_HZ / n_fft
        self.band = np.clip(np.searchsorted(self.freq_edges_hz, bin_hz, side="right") - 1, 0, n_freq - 1)
        empty = int((np.bincount(self.band, minlength=n_freq) == 0).sum())
        _check(
            "attribute_unit", "n_freq", n_freq, empty == 0, f"small enough that every band holds a bin at n_fft={n_fft}"
        )
        self.time_edges_s = np.linspace(0.0, clip_samples / SAMPLE_RATE_HZ, n_time + 1)
        centres = np.arange(n_stft) * hop_length
        col = np.minimum(np.floor(centres / (clip_samples / n_time)).astype(np.int64), n_time - 1)
        self.col_of_frame = np.where(centres >= clip_samples, n_time, col)  # n_time: the padding, never gated
        # frames whose window overlaps the crop; columns whose frames overlap the target's field
        half = n_fft // 2
        lo, hi = centres - half, centres + half
        self.t_used = np.flatnonzero((lo < b) & (hi > a))
        self.eval_cols = np.unique(self.col_of_frame[(lo < r1) & (hi > r0) & (self.col_of_frame < n_time)])
        self.used_cols = torch.as_tensor(self.col_of_frame[self.t_used])
        # each used frame's windowed signal per band, (n_freq, n_used, n_fft): gated overlap-add is linear
        onehot = torch.zeros(n_freq, n_bins, 1, dtype=torch.float64)
        onehot[torch.as_tensor(self.band), torch.arange(n_bins), 0] = 1.0
        frames_b = torch.fft.irfft(self.spec[:, self.t_used].unsqueeze(0) * onehot, n=n_fft, dim=1)
        self.frames_b = (frames_b * self.window[None, :, None]).permute(0, 2, 1).contiguous().float()
        # the squared-window envelope (torch.istft divides by it), on the used segment; the crop in it
        self.seg0, self.seg_len = int(self.t_used[0]) * hop_length, (len(self.t_used) - 1) * hop_length + n_fft
        self.crop_lo, self.crop_hi = a + half - self.seg0, b + half - self.seg0
        env = self._ola((self.window**2).repeat(1, len(self.t_used), 1))[0]
        self.env_crop = env[self.crop_lo : self.crop_hi].clamp_min(1e-11).float()
        self.baseline_activation = float(self.activation(self.ones()).item())
        direct = float(acts[f0:f1].mean())
        self.consistent = math.isclose(self.baseline_activation, direct, rel_tol=2e-3, abs_tol=2e-3 * (1 + abs(direct)))
        self.local = CONV_LAYERS.index(layer) >= 2  # conv1-conv2 recomputed around one silenced column only
        if self.local:
            self._local_setup()

    def _local_setup(self) -> None:
        """Cache conv2 on the clean crop, and per column the conv2 frames and input window it touches."""
        with torch.no_grad():
            y0 = (self.synth_crop(self.ones()) * INPUT_SCALE).unsqueeze(1)
            self.h2 = self.model.run_block("conv2", self.model.run_block("conv1", y0))
        g2, length, half = layer_geometry("conv2"), self.b - self.a, self.n_fft // 2
        fs, hop2, rf2 = int(g2.first_start_samples), g2.hop_samples, g2.receptive_field_samples
        centres = np.arange(len(self.col_of_frame)) * self.hop - self.a
        self.windows: dict[int, tuple[int, int, int, int]] = {}
        for c in self.eval_cols:
            t = centres[self.col_of_frame == c]
            s, e = max(0, int(t.min()) - half), min(length, int(t.max()) + half)
            j0 = max(0, -((fs + rf2 - 1 - s) // hop2))  # first conv2 frame whose field reaches s
            j1 = min(self.h2.shape[-1], (e - 1 - fs) // hop2 + 1)
            w0 = max(0, (fs + j0 * hop2) // hop2 * hop2)  # a multiple of conv2's hop: frames unchanged
            self.windows[int(c)] = (j0, j1, w0, min(length, fs + j1 * hop2 + rf2 + hop2))

    def activation_occluded(self, gates: torch.Tensor) -> torch.Tensor:
        """:meth:`activation` for rows that silence at most one column each: conv1 and conv2 run on the
        column's neighbourhood only and are spliced into the clip's cached conv2 output."""
        changed = (gates != 1).any(dim=2)
        if not self.local or bool((changed.sum(dim=1) > 1).any()):
            return self.activation(gates)
        audio, h = self.synth_crop(gates) * INPUT_SCALE, self.h2.repeat(gates.shape[0], 1, 1)
        hop2 = layer_geometry("conv2").hop_samples
        for i, row in enumerate(changed):
            if row.any():
                j0, j1, w0, w1 = self.windows[int(row.nonzero()[0, 0])]
                part = self.model.run_block("conv2", self.model.run_block("conv1", audio[i : i + 1, None, w0:w1]))
                h[i, :, j0:j1] = part[0, :, j0 - w0 // hop2 : j1 - w0 // hop2]
        for name in CONV_LAYERS[2 : CONV_LAYERS.index(self.layer) + 1]:
            h = self.model.run_block(name, h)
        return self.select(h)

    # -- model ---------------------------------------------------------------------------
    def _forward_full(self, wave: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(wave, dtype=np.float32) * INPUT_SCALE).reshape(1, 1, -1)
        with torch.no_grad():
            out = self.model.extract_features(x, layers=(self.layer,))[self.layer]
        return out[0, self.unit].double().numpy()

    def select(self, out: torch.Tensor) -> torch.Tensor:
        """The target from the layer's output on the crop, ``(B, units, frames) -> (B,)``."""
        f0, f1 = self.frames[0] - self.frame_shift, self.frames[1] - self.frame_shift
        return out[:, self.unit, f0:f1].mean(dim=-1)

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """Layer output on cropped audio ``(B, n_crop)`` in [-1, 1]."""
        return self.model.extract_features((audio * INPUT_SCALE).unsqueeze(1), layers=(self.layer,))[self.layer]

    def activation(self, gates: torch.Tensor) -> torch.Tensor:
        """Target for full-grid gates ``(B, n_time, n_freq)``; shape (B,)."""
        return self.select(self.features(self.synth_crop(gates)))

    # -- gates ---------------------------------------------------------------------------
    def ones(self, batch: int = 1) -> torch.Tensor:
        return torch.ones(batch, self.n_time, self.n_freq)

    def _ola(self, frames: torch.Tensor) -> torch.Tensor:
        """Overlap-add ``(B, n_used, n_fft)`` frames at the hop (a divisor of n_fft) into ``(B, seg_len)``."""
        r = self.n_fft // self.hop
        chunks = frames.reshape(frames.shape[0], frames.shape[1], r, self.hop)
        out = frames.new_zeros(frames.shape[0], frames.shape[1] + r - 1, self.hop)
        for k in range(r):
            out[:, k : k + frames.shape[1]] += chunks[:, :, k]
        return out.reshape(frames.shape[0], -1)

    def synth_crop(self, gates: torch.Tensor) -> torch.Tensor:
        """The crop ``[a, b)`` of the gated resynthesis, ``(B, n_time, n_freq) -> (B, b - a)``."""
        padded = torch.cat([gates, torch.ones(gates.shape[0], 1, self.n_freq, dtype=gates.dtype)], dim=1)
        y = torch.einsum("btf,ftn->btn", padded[:, self.used_cols, :], self.frames_b)  # (B, n_used, n_fft)
        return self._ola(y)[:, self.crop_lo : self.crop_hi] / self.env_crop

    def synth_full(self, gates: np.ndarray) -> np.ndarray:
        """The whole gated resynthesis for a 0/1 grid ``(n_time, n_freq)``: float32 (n_samples,)."""
        g = np.concatenate([gates.astype(np.float64), np.ones((1, self.n_freq))], axis=0)
        mask = torch.as_tensor(g[self.col_of_frame][:, self.band].T)  # (n_bins, n_frames)
        y = torch.istft(self.spec * mask, self.n_fft, self.hop, window=self.window, center=True, length=len(self.wave))
        return y.float().numpy()

    def full_from_eval(self, g_eval: torch.Tensor) -> torch.Tensor:
        """Full-grid gates from gates over the evaluated columns ``(B, n_eval, n_freq)``."""
        return self.ones(g_eval.shape[0]).to(g_eval.dtype).index_copy(1, torch.as_tensor(self.eval_cols), g_eval)


# -- attribution -------------------------------------------------------------------------------
def _attribute(problem: _Problem, method: str, *, batch_size: int, n_steps: int) -> np.ndarray:
    """The map over the full grid, (n_time, n_freq), 0 outside the evaluated columns."""
    from captum.attr import NeuronIntegratedGradients, Occlusion

    n_eval = len(problem.eval_cols)
    out = np.zeros((problem.n_time, problem.n_freq), dtype=np.float64)
    if n_eval == 0:
        return out
    inputs = torch.ones(1, n_eval, problem.n_freq)
    if method == "occlusion":

        def forward(g: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return problem.activation_occluded(problem.full_from_eval(g))

        occ = Occlusion(forward)
        attr = occ.attribute(
            inputs, sliding_window_shapes=(1, 1), strides=(1, 1), baselines=0.0, perturbations_per_eval=batch_size
        )
    else:

        def features(g: torch.Tensor) -> torch.Tensor:
            return problem.features(problem.synth_crop(problem.full_from_eval(g)))

        nig = NeuronIntegratedGradients(features, getattr(problem.model, problem.layer))
        attr = nig.attribute(
            inputs,
            neuron_selector=problem.select,
            baselines=torch.zeros_like(inputs),
            n_steps=n_steps,
            internal_batch_size=batch_size,
        )
    out[problem.eval_cols] = attr.detach()[0].double().numpy()
    return out


def _problem(func: str, model: nn.Module, wave: Any, layer: str, unit: int, **kw: Any) -> _Problem:
    _check_unit(func, layer, unit)
    w = np.asarray(wave, dtype=np.float32).reshape(-1)
    need = min_samples(layer)
    _check(func, "wave", f"array of {w.size} samples", w.size >= need, f"at least {need} samples for {layer}")
    _check(func, "wave", "non-finite samples", bool(np.isfinite(w).all()), "finite")
    n_time, n_freq, n_fft, hop = kw["n_time"], kw["n_freq"], kw["n_fft"], kw["hop_length"]
    for name, ok, must in (
        ("n_time", isinstance(n_time, int) and n_time >= 1, "an int >= 1"),
        ("n_freq", isinstance(n_freq, int) and n_freq >= 1, "an int >= 1"),
        ("n_fft", isinstance(n_fft, int) and n_fft >= 16 and n_fft % 4 == 0, "an int >= 16, a multiple of 4"),
        (
            "hop_length",
            isinstance(hop, int) and 1 <= hop <= n_fft // 4 and n_fft % hop == 0,
            "a divisor of n_fft <= n_fft / 4",
        ),
        ("target", kw["target"] in _TARGETS, f"one of {list(_TARGETS)}"),
    ):
        _check(func, name, kw[name], ok, must)
    cs = kw.get("clip_samples")
    cs = w.size if cs is None else cs
    _check(func, "clip_samples", cs, isinstance(cs, (int, np.integer)) and 0 < cs <= w.size, f"an int in [1, {w.size}]")
    settings: dict[str, Any] = {k: kw.get(k) for k in ("target", "frame", "n_time", "n_freq", "n_fft", "hop_length")}
    p = _Problem(model, w, layer, int(unit), crop=True, clip_samples=int(cs), **settings)
    # the crop keeps the target's frames (checked); should it not, the whole input is used
    return p if p.consistent else _Problem(model, w, layer, int(unit), crop=False, clip_samples=int(cs), **settings)


def _problem_like(func: str, model: nn.Module, wave: Any, a: Attribution) -> _Problem:
    """The problem of ``a`` (same clip, grid, target frames) on another model."""
    return _problem(func, model, wave, a.layer, a.unit, **a.extra["settings"])


def _top_mask(values: np.ndarray, evaluated: np.ndarray, fraction: float) -> np.ndarray:
    n_eval = int(evaluated.sum())
    k = max(1, int(math.ceil(fraction * n_eval))) if n_eval else 0
    order = np.argsort(np.where(evaluated, values, -np.inf), axis=None)[::-1][:k]
    mask = np.zeros(values.size, dtype=bool)
    mask[order] = True
    mask &= (values.ravel() > 0) & evaluated.ravel()
    return mask.reshape(values.shape)


def attribute_unit(
    model: nn.Module,
    wave: np.ndarray,
    layer: str,
    unit: int,
    *,
    method: Method = "occlusion",
    target: Target = "peak",
    frame: int | None = None,
    n_time: int = 32,
    n_freq: int = 16,
    n_fft: int = 1024,
    hop_length: int = 256,
    clip_samples: int | None = None,
    top_fraction: float = 0.1,
    batch_size: int = 32,
    n_steps: int = 32,
) -> Attribution:
    """Which time-frequency regions of a clip drive one unit (Captum over a gated STFT grid).

    Parameters
    ----------
    model : SoundNet8
        In eval mode (:func:`soundnet.load_soundnet`); any module with ``extract_features`` and the
        layers as attributes.
    wave : np.ndarray, shape (n_samples,)
        The clip at 22050 Hz in [-1, 1] (not scaled x256; scaled here), as the network sees it
        (already padded or tiled if the run did so).
    layer : str
        ``conv1`` .. ``conv7``.
    unit : int
        Channel of ``layer``, from 0.
    method : {"occlusion", "integrated_gradients"}
        :class:`captum.attr.Occlusion` of single cells (silenced) or
        :class:`captum.attr.NeuronIntegratedGradients` from silence.
    target : {"peak", "valid"}
        The unit's activation at one frame (``frame``, default its peak over the valid frames, or
        over all frames when there is no valid one) or its mean over the valid frames.
    frame : int, optional
        The target frame of ``layer`` for ``target="peak"``.
    n_time, n_freq : int
        The grid: equal time bins over ``[0, clip_samples)``, bands equally spaced in mel from 0 to
        11,025 Hz.
    n_fft, hop_length : int (in samples)
        The STFT (Hann window, centred frames).
    clip_samples : int, optional
        The clip's own length in samples (default ``len(wave)``); samples after it (the run's
        padding) are never gated, and valid frames are those of the clip.
    top_fraction : float
        Share of the evaluated cells (the most positive ones) that form the top region.
    batch_size : int
        Gated inputs per forward pass.
    n_steps : int
        Integration steps for ``integrated_gradients``.

    Returns
    -------
    Attribution

    Raises
    ------
    ParameterError
        A bad layer, unit, option, a clip too short for one frame of ``layer`` (or without a
        valid frame for ``target="valid"``).
    """
    func = "attribute_unit"
    for name, value, ok, must in (
        ("method", method, method in _METHODS, f"one of {list(_METHODS)}"),
        ("top_fraction", top_fraction, isinstance(top_fraction, (int, float)) and 0 < top_fraction <= 1, "in (0, 1]"),
        ("batch_size", batch_size, isinstance(batch_size, int) and batch_size >= 1, "an int >= 1"),
        ("n_steps", n_steps, isinstance(n_steps, int) and n_steps >= 2, "an int >= 2"),
    ):
        _check(func, name, value, ok, must)
    settings = dict(target=target, frame=frame, n_time=n_time, n_freq=n_freq, n_fft=n_fft, hop_length=hop_length)
    p = _problem(func, model, wave, layer, unit, clip_samples=clip_samples, **settings)
    return _finish(p, method, top_fraction=float(top_fraction), batch_size=batch_size, n_steps=n_steps)


def _finish(p: _Problem, method: str, *, top_fraction: float, batch_size: int, n_steps: int) -> Attribution:
    values = _attribute(p, method, batch_size=batch_size, n_steps=n_steps)
    evaluated = np.zeros_like(values, dtype=bool)
    evaluated[p.eval_cols] = True
    top = _top_mask(values, evaluated, top_fraction)
    geo = layer_geometry(p.layer)
    centres = (geo.first_start_samples + np.array(p.frames) * geo.hop_samples + geo.receptive_field_samples / 2) / (
        SAMPLE_RATE_HZ
    )
    settings = {
        "target": p.target,
        "frame": p.frames[0] if p.target == "peak" else None,
        "n_time": p.n_time,
        "n_freq": p.n_freq,
        "n_fft": p.n_fft,
        "hop_length": p.hop,
        "clip_samples": p.clip_samples,
    }
    return Attribution(
        map=values.astype(np.float32),
        evaluated=evaluated,
        time_edges_s=p.time_edges_s,
        freq_edges_hz=p.freq_edges_hz,
        baseline_activation=p.baseline_activation,
        top_mask=top,
        top_audio=p.synth_full(top.astype(np.float64)),
        complement_audio=p.synth_full((~top).astype(np.float64)),
        layer=p.layer,
        unit=p.unit,
        method=method,
        target=p.target,
        frames=p.frames,
        frame_times_s=(float(centres[0]), float(centres[1] - geo.hop_samples / SAMPLE_RATE_HZ)),
        extra={"settings": settings, "crop_samples": (p.a, p.b), "top_fraction": top_fraction},
    )


# -- sanity checks -----------------------------------------------------------------------------
def randomized_model(model: nn.Module, layers: list[str] | tuple[str, ...], *, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose ``layers`` are re-initialised (PyTorch's default initialisation of
    the convolution, BatchNorm reset to identity: gamma 1, beta 0, running mean 0, variance 1).

    Parameters
    ----------
    model : SoundNet8
    layers : sequence of str
        Conv layer names.
    seed : int
        Seed of the new weights.

    Returns
    -------
    SoundNet8
        In eval mode; ``model`` is unchanged.
    """
    for name in layers:
        _check("randomized_model", "layers", layers, name in CONV_LAYERS, f"conv layer names from {list(CONV_LAYERS)}")
    m = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name in layers:
            for mod in getattr(m, name).modules():
                if isinstance(mod, nn.Conv1d):
                    bound = 1.0 / math.sqrt(mod.in_channels * mod.kernel_size[0])
                    mod.weight.copy_(torch.empty_like(mod.weight).uniform_(-bound, bound, generator=gen))
                    if mod.bias is not None:
                        mod.bias.copy_(torch.empty_like(mod.bias).uniform_(-bound, bound, generator=gen))
                elif isinstance(mod, nn.BatchNorm1d):
                    mod.reset_running_stats()
                    mod.reset_parameters()
    return m.eval()


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def randomization_check(
    model: nn.Module,
    wave: np.ndarray,
    attribution: Attribution,
    *,
    cascade: bool = True,
    seed: int = 0,
    threshold: float = 0.5,
    batch_size: int = 32,
    n_steps: int = 32,
) -> pd.DataFrame:
    """Cascading weight randomisation (Adebayo et al., 2018): re-initialise the unit's layer, then
    the layers below it one by one down to conv1, and compare each map with the original.

    The target frames, the grid and the method are those of ``attribution`` (same clip).

    Parameters
    ----------
    model : SoundNet8
        The trained model that produced ``attribution``.
    wave : np.ndarray, shape (n_samples,)
        The clip ``attribution`` was computed on.
    attribution : Attribution
    cascade : bool
        Every step of the cascade (default) or only the last (all layers up to the unit's random).
    seed : int
        Seed of the new weights.
    threshold : float
        A map has ``changed`` when its rank correlation with the original is below this.
    batch_size, n_steps
        As for :func:`attribute_unit`.

    Returns
    -------
    pandas.DataFrame
        One row per step: ``randomized`` (the layers re-initialised, e.g. ``"conv4..conv2"``),
        ``n_layers``, ``spearman`` and ``pearson`` correlation with the original map over the
        evaluated cells (NaN when a map is constant, e.g. a unit silenced by the new weights),
        ``baseline_activation`` (the target under the new weights) and ``changed`` (Spearman
        correlation below ``threshold``, or undefined: a constant map).
    """
    a = attribution
    top = CONV_LAYERS.index(a.layer)
    rows = []
    x = a.map[a.evaluated].astype(np.float64)
    for k in range(top, -1, -1) if cascade else [0]:
        layers = list(CONV_LAYERS[k : top + 1])[::-1]
        m = randomized_model(model, layers, seed=seed)
        p = _problem_like("randomization_check", m, wave, a)
        values = _attribute(p, a.method, batch_size=batch_size, n_steps=n_steps)
        y = values[a.evaluated]
        rho = _spearman(x, y)
        r = math.nan if (np.ptp(x) == 0 or np.ptp(y) == 0) else float(np.corrcoef(x, y)[0, 1])
        rows.append(
            {
                "randomized": layers[0] if len(layers) == 1 else f"{layers[0]}..{layers[-1]}",
                "n_layers": len(layers),
                "spearman": rho,
                "pearson": r,
                "baseline_activation": p.baseline_activation,
                "changed": bool(not (rho >= threshold)),
            }
        )
    return pd.DataFrame(rows)


def removal_check(
    model: nn.Module,
    wave: np.ndarray,
    attribution: Attribution,
    *,
    n_random: int = 32,
    seed: int = 0,
) -> RemovalCheck:
    """Does silencing the top region lower the unit more than silencing random regions?

    Random regions have as many cells as ``attribution.top_mask``, drawn among the evaluated cells.

    Parameters
    ----------
    model : SoundNet8
    wave : np.ndarray, shape (n_samples,)
    attribution : Attribution
    n_random : int
        Random regions.
    seed : int

    Returns
    -------
    RemovalCheck
    """
    _check("removal_check", "n_random", n_random, isinstance(n_random, int) and n_random >= 1, "an int >= 1")
    a = attribution
    p = _problem_like("removal_check", model, wave, a)
    k = int(a.top_mask.sum())
    cells = np.flatnonzero(a.evaluated.ravel())
    rng = np.random.default_rng(seed)
    gates = np.ones((n_random + 1, a.map.size), dtype=np.float32)
    gates[0, a.top_mask.ravel()] = 0.0
    for i in range(n_random):
        gates[i + 1, rng.choice(cells, size=min(k, len(cells)), replace=False)] = 0.0
    g = torch.as_tensor(gates).reshape(n_random + 1, *a.map.shape)
    with torch.no_grad():
        acts = torch.cat([p.activation(g[i : i + 32]) for i in range(0, len(g), 32)]).double().numpy()
    return RemovalCheck(
        baseline_activation=p.baseline_activation,
        top_activation=float(acts[0]),
        random_activations=acts[1:],
        n_cells=k,
    )


# -- run level, files, text --------------------------------------------------------------------
def run_attribution(
    run: Any,
    layer: str,
    unit: int,
    clip_id: str,
    *,
    model: nn.Module | None = None,
    **options: Any,
) -> Attribution:
    """:func:`attribute_unit` on an ``ok`` clip of a run (a :class:`~interp.run.store.Run` or its
    path), prepared as the recorder prepared it; ``options`` are :func:`attribute_unit`'s keywords.

    The map's time axis covers the clip; samples that the run's ``short="pad"`` appended are heard
    but never gated. ``model`` defaults to :func:`soundnet.load_soundnet` with the run's weights
    file when it still exists. Raises ``KeyError`` for a clip that is not ``ok`` in the run.
    """
    from interp.run.store import open_run
    from interp.run.traces import clip_audio

    run = open_run(run)
    run.n_units(layer)  # validates the layer
    audio = clip_audio(run, clip_id)
    settings = run.meta.get("settings", {})
    short, ml = str(settings.get("short", "none")), settings.get("min_length", "conv7")
    need = 0 if short == "none" else min_samples(ml) if isinstance(ml, str) else int(ml)
    wave = fit_length(audio, min_samples=need, policy=short) if need else audio  # type: ignore[arg-type]
    options.setdefault("clip_samples", len(audio) if short == "pad" else len(wave))
    if model is None:
        from soundnet.model import load_soundnet

        path = run.meta.get("weights_path")
        model = load_soundnet(path if path and Path(path).is_file() else None)
    return attribute_unit(model, wave, layer, unit, **options)


def write_attribution(attribution: Attribution, out_dir: str | Path, *, stem: str = "attribution") -> dict[str, Path]:
    """Write ``<stem>.csv`` (:meth:`Attribution.to_frame`), ``<stem>.top.wav`` and
    ``<stem>.complement.wav`` (float WAV at 22050 Hz) into ``out_dir``; returns the paths by kind."""
    import soundfile as sf

    (out := Path(out_dir)).mkdir(parents=True, exist_ok=True)
    paths = {"map": out / f"{stem}.csv", "top": out / f"{stem}.top.wav", "complement": out / f"{stem}.complement.wav"}
    attribution.to_frame().to_csv(paths["map"], index=False)
    for kind in ("top", "complement"):
        y = getattr(attribution, f"{kind}_audio")
        sf.write(paths[kind], np.clip(y, -1.0, 1.0).astype(np.float32), attribution.sample_rate_hz, subtype="FLOAT")
    return paths


def format_attribution(attribution: Attribution, *, top: int = 5) -> str:
    """A few lines of text: the target, and the ``top`` cells with their time and band."""
    a = attribution
    lines = [
        f"{a.layer}:{a.unit}  method={a.method}  target={a.target} frames {a.frames[0]}..{a.frames[1] - 1} "
        f"({a.frame_times_s[0]:.3f}-{a.frame_times_s[1]:.3f} s)  activation {a.baseline_activation:.4g}",
        f"grid {a.map.shape[0]} time bins x {a.map.shape[1]} mel bands, {int(a.evaluated.sum())} cells evaluated, "
        f"top region {int(a.top_mask.sum())} cells",
    ]
    df = a.to_frame()
    for row in df[df["evaluated"]].nlargest(top, "value").itertuples():
        lines.append(
            f"  {row.start_s:7.3f}-{row.end_s:7.3f} s  {row.low_hz:7.0f}-{row.high_hz:7.0f} Hz  {row.value:+.4g}"
        )
    return "\n".join(lines)
