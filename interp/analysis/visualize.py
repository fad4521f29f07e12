"""Feature visualization by optimization: the sound a unit "wants to hear".

An input of a few seconds is optimised by gradient ascent (``torch.autograd`` on the real
network) to maximise one unit's mean activation over its *valid frames*
(:func:`soundnet.geometry.valid_frames`, the frames of the run's ``vmean`` statistic), so that the
result compares directly with the unit's best natural clip of a run.

Parameterisation (what keeps the result audio rather than adversarial noise):

- the sound is a short-time Fourier transform resynthesised with :func:`torch.istft`: a
  log-magnitude spectrogram and a learned phase (random at the start, different for each seed);
- the log-magnitude is a *multi-resolution* sum: the same spectrogram at full resolution and at
  1/2, 1/4, ... resolution in time and frequency, each upsampled (bilinear) and added. Adam
  moves each level equally fast, so coarse, smooth structure forms first (the spectral
  decorrelation of Lucid's Fourier / Laplacian-pyramid parameterisations);
- the waveform is peak-normalised inside the graph: no sample ever exceeds full scale and the
  optimiser cannot win by loudness alone (the network is not scale-invariant, but natural clips
  are limited to full scale too);
- regularisers: total variation of the log-magnitude in time and frequency (smoothness) and a
  small L2 pull of the log-magnitude towards its mean;
- transformation robustness (for the first ``robust_fraction`` of the steps): each step sees
  the sound rolled in time by a random shift, scaled by a random gain below 1 and resampled by a
  random speed / pitch factor near 1 (linear interpolation); the last steps polish the sound as
  it will be heard.

Several seeds are optimised together as one batch. Each result reports the activation reached
(``vmean`` over valid frames and ``max`` over frames, the run's statistics), its ratio to the
best natural clip of a run, and the diversity of the seeds (mean pairwise correlation of their
log-mel spectrograms: 1 = the same sound, near 0 = unrelated).

The forward pass used for the optimisation folds each BatchNorm into its convolution and
computes only the target unit in the target layer; its output equals the plain model's up to
float32 rounding, and the reported activations are those of the plain model.
"""

from __future__ import annotations

import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch
import torch.nn.functional as F

from interp.run.store import Run, atomic_write_bytes, open_run, read_keyed_arrays, write_keyed_arrays
from interp.run.traces import Spectrogram
from soundnet.audio import INPUT_SCALE
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, clean_frames, layer_geometry, valid_frames
from soundnet.model import CONV_LAYERS, SPEC_BY_NAME, SoundNet8, load_soundnet

__all__ = [
    "VisualizeConfig",
    "Visualization",
    "default_duration_s",
    "unit_objective_net",
    "visualize_unit",
    "unit_activation",
    "log_mel_db",
    "seed_diversity",
    "visualization_spectrogram",
    "write_wav",
    "natural_best",
    "run_visualize",
    "visualize_layer",
    "VISUALIZE_COLUMNS",
    "CACHE_FORMAT",
]


# --------------------------------------------------------------------------------------------
# configuration and result
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VisualizeConfig:
    """Settings of :func:`visualize_unit` (frozen; every field is part of the cache key).

    Attributes
    ----------
    duration_s : float (in seconds), optional
        Length of the optimised sound; default :func:`default_duration_s` of the layer (enough
        for at least one valid frame, at least 0.5 s; conv7 4.55 s).
    n_seeds, steps : int
        Independent starts (optimised together as one batch); Adam steps.
    lr : float
        Adam learning rate (log-magnitude in nepers, phase in radians).
    n_fft, hop_samples : int (in samples at 22050 Hz)
        STFT of the parameterisation.
    levels : int
        Resolution levels of the log-magnitude (1 = a plain spectrogram).
    tv_weight, l2_weight : float
        Weights of the total variation of the log-magnitude (nepers per bin) and of its L2 pull
        towards its mean, relative to the objective in units of its starting value.
    jitter_s : float (in seconds)
        Largest random circular shift per step.
    gain_min : float
        Random gain per step in ``[gain_min, 1]`` (below full scale only).
    speed_max : float
        Random speed / pitch factor per step in ``[1 - speed_max, 1 + speed_max]``.
    robust_fraction : float
        Fraction of the steps (the first ones) that use the random transformations.
    seed : int
        Seed of the random starts and transformations.
    """

    duration_s: float | None = None
    n_seeds: int = 3
    steps: int = 48
    lr: float = 0.1
    n_fft: int = 1024
    hop_samples: int = 512
    levels: int = 4
    tv_weight: float = 0.05
    l2_weight: float = 1e-3
    jitter_s: float = 0.05
    gain_min: float = 0.8
    speed_max: float = 0.04
    robust_fraction: float = 0.75
    seed: int = 0

    def validate(self, func: str) -> None:
        """Raise :class:`ParameterError` for a field out of range."""
        checks = [
            ("duration_s", self.duration_s is None or self.duration_s > 0, "> 0 or None"),
            ("n_seeds", isinstance(self.n_seeds, int) and self.n_seeds >= 1, "an int >= 1"),
            ("steps", isinstance(self.steps, int) and self.steps >= 0, "an int >= 0"),
            ("lr", self.lr > 0, "> 0"),
            ("n_fft", isinstance(self.n_fft, int) and self.n_fft >= 16, "an int >= 16"),
            ("hop_samples", isinstance(self.hop_samples, int) and 1 <= self.hop_samples <= self.n_fft, "in [1, n_fft]"),
            ("levels", isinstance(self.levels, int) and self.levels >= 1, "an int >= 1"),
            ("tv_weight", self.tv_weight >= 0, ">= 0"),
            ("l2_weight", self.l2_weight >= 0, ">= 0"),
            ("jitter_s", self.jitter_s >= 0, ">= 0"),
            ("gain_min", 0 < self.gain_min <= 1, "in (0, 1]"),
            ("speed_max", 0 <= self.speed_max < 0.5, "in [0, 0.5)"),
            ("robust_fraction", 0 <= self.robust_fraction <= 1, "in [0, 1]"),
        ]
        for name, ok, what in checks:
            if not ok:
                raise ParameterError(
                    f"The '{name}' parameter of {func} must be {what}. Got {getattr(self, name)!r} instead."
                )


@dataclass
class Visualization:
    """What :func:`visualize_unit` found for one unit.

    Attributes
    ----------
    layer : str
    unit : int
    waveforms : np.ndarray, shape (n_seeds, n_samples), float32
        One sound per seed at 22050 Hz, in [-1, 1], peak-normalised (the loudest sample is at
        full scale, none beyond).
    vmean : np.ndarray, shape (n_seeds,)
        The unit's mean over its valid frames for each sound (the plain model; the run's
        ``vmean`` statistic).
    max : np.ndarray, shape (n_seeds,)
        The unit's largest frame for each sound (over the clean frames, the run's ``max``).
    history : np.ndarray, shape (steps, n_seeds)
        The objective (``vmean`` of the transformed sound) at each step.
    n_valid_frames : int
        Valid frames the objective averages.
    config : VisualizeConfig
    natural_vmean, natural_max : float
        The unit's best natural clip in a run (largest ``vmean``, largest ``max``); NaN unknown.
    natural_clip_id : str, optional
        The clip with the largest ``vmean``.
    elapsed_s : float (in seconds)
        Wall time of the optimisation.
    diversity : float
        :func:`seed_diversity` of the seeds' sounds.
    """

    layer: str
    unit: int
    waveforms: np.ndarray
    vmean: np.ndarray
    max: np.ndarray
    history: np.ndarray
    n_valid_frames: int
    config: VisualizeConfig
    natural_vmean: float = math.nan
    natural_max: float = math.nan
    natural_clip_id: str | None = None
    elapsed_s: float = 0.0
    diversity: float = field(default=math.nan)

    @property
    def best_seed(self) -> int:
        """Index of the seed with the largest ``vmean``."""
        return int(np.argmax(self.vmean))

    @property
    def best_waveform(self) -> np.ndarray:
        """The sound of :attr:`best_seed`, shape ``(n_samples,)``."""
        return self.waveforms[self.best_seed]

    @property
    def relative_vmean(self) -> np.ndarray:
        """``vmean / natural_vmean`` per seed (NaN without a natural reference)."""
        return self.vmean / self.natural_vmean if self.natural_vmean > 0 else np.full_like(self.vmean, np.nan)

    @property
    def relative_max(self) -> np.ndarray:
        """``max / natural_max`` per seed (NaN without a natural reference)."""
        return self.max / self.natural_max if self.natural_max > 0 else np.full_like(self.max, np.nan)

    def summary(self) -> str:
        """One line: the activation reached, relative to the natural best, and the diversity."""
        b = self.best_seed
        rel = (
            f" = {self.relative_vmean[b]:.2f}x the best natural clip ({self.natural_vmean:.3g})"
            if self.natural_vmean > 0
            else ""
        )
        relm = f" ({self.relative_max[b]:.2f}x natural)" if self.natural_max > 0 else ""
        return (
            f"{self.layer}:{self.unit}  vmean {self.vmean[b]:.3g}{rel}, max {self.max[b]:.3g}{relm}; "
            f"{len(self.vmean)} seeds (vmean {np.min(self.vmean):.3g}..{np.max(self.vmean):.3g}), "
            f"diversity: mean pairwise log-mel correlation {self.diversity:.2f}; {self.elapsed_s:.1f} s"
        )


# --------------------------------------------------------------------------------------------
# the differentiable, unit-specific forward pass
# --------------------------------------------------------------------------------------------
def default_duration_s(layer: str) -> float:
    """Default length of a visualization of ``layer`` in seconds: 1.1 receptive fields, at least
    0.5 s (conv5 0.87 s, conv6 2.1 s, conv7 4.55 s), and at least one valid frame."""
    rf = layer_geometry(layer).receptive_field_s
    dur = max(0.5, round(1.1 * rf, 2))
    while not valid_frames(int(round(dur * SAMPLE_RATE_HZ)), layer).any():
        dur = round(dur + 0.1, 2)
    return dur


class _UnitNet(torch.nn.Module):
    """conv1 .. ``layer`` with BatchNorm folded into each convolution, the last one reduced to
    one output channel: ``(batch, 1, n_samples) x256 -> (batch, n_frames)``."""

    def __init__(self, model: SoundNet8, layer: str, unit: int) -> None:
        super().__init__()
        self.ops: list[tuple[torch.Tensor, torch.Tensor, int, int, int]] = []
        names = CONV_LAYERS[: CONV_LAYERS.index(layer) + 1]
        for name in names:
            block = getattr(model, name)
            conv, bn = block[0], block[1]
            scale = bn.weight.detach() / torch.sqrt(bn.running_var.detach() + bn.eps)
            w = conv.weight.detach() * scale[:, None, None]
            b = (conv.bias.detach() - bn.running_mean.detach()) * scale + bn.bias.detach()
            if name == layer:
                w, b = w[unit : unit + 1], b[unit : unit + 1]
            spec = SPEC_BY_NAME[name]
            self.ops.append((w.contiguous(), b.contiguous(), spec.stride, spec.padding, spec.pool))

    def forward(self, x: torch.Tensor, *, pre_relu: bool = False) -> torch.Tensor:
        h = x
        last = len(self.ops) - 1
        for i, (w, b, stride, padding, pool) in enumerate(self.ops):
            h = F.conv1d(h, w, b, stride=stride, padding=padding)
            if pool:  # max-pool and ReLU commute (both non-decreasing): pool first, on less data
                h = F.max_pool1d(h, pool, pool)
            if i < last or not pre_relu:
                h = F.relu(h)
        return h[:, 0]


def unit_objective_net(model: SoundNet8, layer: str, unit: int) -> torch.nn.Module:
    """A differentiable network computing one unit of ``layer`` (BatchNorm folded).

    Parameters
    ----------
    model : SoundNet8
        The pretrained model (:func:`soundnet.load_soundnet`), eval mode.
    layer : str
        One of conv1 .. conv7.
    unit : int
        Unit index, from 0.

    Returns
    -------
    torch.nn.Module
        Maps a waveform ``(batch, 1, n_samples)`` *scaled x256* to the unit's activation
        ``(batch, n_frames)``, equal to ``model.extract_features(x)[layer][:, unit]`` up to
        float32 rounding.
    """
    _check_unit(model, layer, unit, "unit_objective_net")
    return _UnitNet(model, layer, unit)


def _check_unit(model: SoundNet8 | None, layer: str, unit: int, func: str) -> None:
    if layer not in CONV_LAYERS:
        raise ParameterError(
            f"The 'layer' parameter of {func} must be one of {list(CONV_LAYERS)} (the heads have no "
            f"valid frames under 9.5 s). Got {layer!r} instead."
        )
    n_units = SPEC_BY_NAME[layer].out_channels
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= int(unit) < n_units:
        raise ParameterError(
            f"The 'unit' parameter of {func} must be an int in [0, {n_units}) for {layer}. Got {unit!r} instead."
        )
    if model is not None and not isinstance(model, SoundNet8):
        raise ParameterError(
            f"The 'model' parameter of {func} must be a SoundNet8 (soundnet.load_soundnet()). "
            f"Got {type(model).__name__} instead."
        )


# --------------------------------------------------------------------------------------------
# the parameterisation
# --------------------------------------------------------------------------------------------
class _SpectralSound(torch.nn.Module):
    """Multi-resolution log-magnitude + learned phase -> peak-normalised waveform ``(batch, n)``."""

    window: torch.Tensor

    def __init__(self, n_seeds: int, n_samples: int, cfg: VisualizeConfig, gen: torch.Generator) -> None:
        super().__init__()
        self.n_samples = n_samples
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_samples
        n_bins = cfg.n_fft // 2 + 1
        n_cols = n_samples // cfg.hop_samples + 1
        self.shape = (n_bins, n_cols)
        # level k has 2**-k of the resolution; coarse levels are upsampled onto the next finer one
        self.sizes = [(max(1, math.ceil(n_bins / 2**k)), max(1, math.ceil(n_cols / 2**k))) for k in range(cfg.levels)]
        self.levels = torch.nn.ParameterList(
            torch.nn.Parameter(0.05 * torch.randn(n_seeds, 1, fb, tb, generator=gen)) for fb, tb in self.sizes
        )
        self.phase = torch.nn.Parameter(2 * math.pi * torch.rand(n_seeds, n_bins, n_cols, generator=gen))
        self.register_buffer("window", torch.hann_window(cfg.n_fft))

    def log_magnitude(self) -> torch.Tensor:
        """``(batch, n_bins, n_cols)`` log-magnitude in nepers (a Laplacian-pyramid sum)."""
        total = self.levels[-1]
        for k in range(len(self.levels) - 2, -1, -1):
            total = F.interpolate(total, size=self.sizes[k], mode="bilinear", align_corners=False) + self.levels[k]
        return total[:, 0]

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(waveform (batch, n_samples) with peak 1, log-magnitude (batch, n_bins, n_cols))``."""
        logmag = self.log_magnitude()
        mag = torch.exp(logmag - logmag.amax(dim=(1, 2), keepdim=True).detach())
        spec = torch.polar(mag, self.phase)
        y = torch.istft(spec, self.n_fft, self.hop, window=self.window, center=True, length=self.n_samples)
        return y / (y.abs().amax(dim=1, keepdim=True) + 1e-12), logmag


def _transform(y: torch.Tensor, cfg: VisualizeConfig, gen: torch.Generator) -> torch.Tensor:
    """One random speed / pitch factor for the batch, then a random circular shift and gain per
    item; the same length."""
    batch, n = y.shape
    if cfg.speed_max > 0:
        r = 1.0 + cfg.speed_max * (2 * float(torch.rand((), generator=gen)) - 1)
        m = max(2, int(round(n / r)))
        y = F.interpolate(y[:, None], size=m, mode="linear", align_corners=False)[:, 0]
        y = y[:, :n] if m >= n else torch.cat([y, y[:, : n - m]], dim=1)
    max_shift = int(round(cfg.jitter_s * SAMPLE_RATE_HZ))
    if max_shift > 0:
        shifts = torch.randint(-max_shift, max_shift + 1, (batch, 1), generator=gen)
        y = y.gather(1, (torch.arange(n)[None, :] - shifts) % n)
    gain = cfg.gain_min + (1.0 - cfg.gain_min) * torch.rand((batch, 1), generator=gen)
    return y * gain


def _tv(logmag: torch.Tensor) -> torch.Tensor:
    """Total variation per item: mean absolute step along frequency plus along time (nepers)."""
    return logmag.diff(dim=1).abs().mean(dim=(1, 2)) + logmag.diff(dim=2).abs().mean(dim=(1, 2))


#: Slope of the objective below zero: a unit silent at the start still gets a gradient.
_LEAK = 0.1


# --------------------------------------------------------------------------------------------
# the optimisation
# --------------------------------------------------------------------------------------------
def visualize_unit(
    model: SoundNet8,
    layer: str,
    unit: int,
    *,
    config: VisualizeConfig | None = None,
    natural: tuple[float, float, str | None] | None = None,
) -> Visualization:
    """Optimise sounds that maximise one unit's mean activation over its valid frames.

    Parameters
    ----------
    model : SoundNet8
        The pretrained model (:func:`soundnet.load_soundnet`).
    layer : str
        conv1 .. conv7.
    unit : int
        Unit index, from 0.
    config : VisualizeConfig, optional
        Settings (default :class:`VisualizeConfig`).
    natural : (float, float, str or None), optional
        The unit's best natural ``vmean``, ``max`` and the clip id of the first, to report the
        activation reached relative to them (see :func:`natural_best`).

    Returns
    -------
    Visualization
    """
    cfg = config or VisualizeConfig()
    cfg.validate("visualize_unit")
    _check_unit(model, layer, unit, "visualize_unit")
    unit = int(unit)
    dur = cfg.duration_s if cfg.duration_s is not None else default_duration_s(layer)
    n = int(round(dur * SAMPLE_RATE_HZ))
    if n < cfg.n_fft:
        raise ParameterError(
            f"The 'duration_s' parameter of visualize_unit must give at least n_fft = {cfg.n_fft} samples. "
            f"Got {dur!r} s instead."
        )
    ok = valid_frames(n, layer)
    if not ok.any():
        raise ParameterError(
            f"The 'duration_s' parameter of visualize_unit is too short for a valid {layer} frame "
            f"(receptive field {layer_geometry(layer).receptive_field_s:.2f} s; try "
            f"{default_duration_s(layer)} s). Got {dur!r} s instead."
        )
    mask = torch.as_tensor(ok)
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(int(cfg.seed))
    net = _UnitNet(model, layer, unit)
    sound = _SpectralSound(cfg.n_seeds, n, cfg, gen)
    opt = torch.optim.Adam(sound.parameters(), lr=cfg.lr, fused=True)
    robust_steps = int(round(cfg.robust_fraction * cfg.steps))
    history = np.zeros((cfg.steps, cfg.n_seeds), dtype=np.float32)
    scale: torch.Tensor | None = None
    for step in range(cfg.steps):
        opt.zero_grad(set_to_none=True)
        y, logmag = sound()
        if step < robust_steps:
            y = _transform(y, cfg, gen)
        z = net((y * INPUT_SCALE)[:, None, :], pre_relu=True)[:, mask]
        obj = torch.where(z > 0, z, _LEAK * z).mean(dim=1)
        if scale is None:  # the objective in units of its starting size: regulariser weights transfer
            scale = obj.detach().abs().mean().clamp_min(1e-2)
        centred = logmag - logmag.mean(dim=(1, 2), keepdim=True)
        loss = (-obj / scale + cfg.tv_weight * _tv(logmag) + cfg.l2_weight * centred.pow(2).mean(dim=(1, 2))).sum()
        loss.backward()
        opt.step()
        history[step] = F.relu(z.detach()).mean(dim=1).numpy()
    with torch.no_grad():
        waves = sound()[0].numpy().astype(np.float32)
    waves = np.clip(waves / np.maximum(np.abs(waves).max(axis=1, keepdims=True), 1e-12), -1.0, 1.0)
    vmean, vmax = unit_activation(model, waves, layer, unit)
    nat_v, nat_m, nat_clip = natural if natural is not None else (math.nan, math.nan, None)
    elapsed = time.perf_counter() - t0
    return Visualization(
        layer, unit, waves, vmean, vmax, history, int(ok.sum()), cfg, float(nat_v), float(nat_m), nat_clip,
        elapsed, seed_diversity(waves),
    )  # fmt: skip


def unit_activation(model: SoundNet8, waveforms: np.ndarray, layer: str, unit: int) -> tuple[np.ndarray, np.ndarray]:
    """A unit's ``vmean`` and ``max`` on sounds, with the plain model (as a run records them).

    Parameters
    ----------
    model : SoundNet8
    waveforms : np.ndarray, shape (n_sounds, n_samples) or (n_samples,)
        At 22050 Hz in [-1, 1] (not scaled).
    layer : str
    unit : int

    Returns
    -------
    vmean, max : np.ndarray, shape (n_sounds,)
        The mean over the valid frames and the max over the clean frames (conv7's padded last
        frame left out, as the recorder does).
    """
    w = np.atleast_2d(np.asarray(waveforms, dtype=np.float32))
    n = w.shape[1]
    with torch.inference_mode():
        acts = model.extract_features(torch.from_numpy(w * INPUT_SCALE)[:, None, :], layers=(layer,))[layer][:, unit]
    a = acts.numpy().astype(np.float64)
    ok, clean = valid_frames(n, layer), clean_frames(n, layer)
    vmean = a[:, ok].mean(axis=1) if ok.any() else np.full(len(a), np.nan)
    return vmean, a[:, clean].max(axis=1)


# --------------------------------------------------------------------------------------------
# spectrograms and diversity
# --------------------------------------------------------------------------------------------
def log_mel_db(
    y: np.ndarray, *, n_mels: int = 64, n_fft: int = 1024, hop_samples: int = 256, top_db: float = 80.0
) -> np.ndarray:
    """Log-mel spectrogram of a 22050 Hz waveform, dB re its loudest bin, floored at ``-top_db``.

    Returns
    -------
    np.ndarray, shape (n_mels, n_columns), float32 (in dB)
    """
    s = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32),
        sr=SAMPLE_RATE_HZ,
        n_fft=n_fft,
        hop_length=hop_samples,
        n_mels=n_mels,
        power=2.0,
    )
    ref = float(s.max()) if s.size and s.max() > 0 else 1.0
    return librosa.power_to_db(s, ref=ref, top_db=top_db).astype(np.float32)


def seed_diversity(waveforms: np.ndarray | Sequence[np.ndarray]) -> float:
    """Mean pairwise Pearson correlation of the sounds' log-mel spectrograms.

    1 means the seeds found the same sound; near 0, unrelated sounds (NaN for a single seed).
    Time shifts count as differences: two rolled copies of a sound correlate less than 1.
    """
    specs = [log_mel_db(w).ravel() for w in waveforms]
    if len(specs) < 2:
        return math.nan
    c = np.corrcoef(np.stack(specs))
    iu = np.triu_indices(len(specs), k=1)
    return float(np.nanmean(c[iu]))


def visualization_spectrogram(
    y: np.ndarray, *, n_mels: int = 80, n_fft: int = 1024, hop_samples: int = 256
) -> Spectrogram:
    """The mel spectrogram of a visualization as :class:`interp.run.traces.Spectrogram` (for
    :func:`interp.report.figures.unit_charts.spectrogram_figure`)."""
    db = log_mel_db(y, n_mels=n_mels, n_fft=n_fft, hop_samples=hop_samples)
    times = librosa.frames_to_time(np.arange(db.shape[1]), sr=SAMPLE_RATE_HZ, hop_length=hop_samples).astype(np.float32)
    freqs = librosa.mel_frequencies(n_mels=n_mels, fmin=0.0, fmax=SAMPLE_RATE_HZ / 2).astype(np.float32)
    return Spectrogram(db, times, freqs, hop_samples)


# --------------------------------------------------------------------------------------------
# files and runs
# --------------------------------------------------------------------------------------------
#: Version of the cache files of :func:`run_visualize` (part of their key).
CACHE_FORMAT = 1

#: Columns of the table ``visualize_<layer>.parquet`` written by :func:`visualize_layer`.
VISUALIZE_COLUMNS = (
    "layer", "unit", "best_seed", "vmean", "max", "vmean_min_seed", "natural_vmean", "natural_max",
    "natural_clip_id", "relative_vmean", "relative_max", "diversity", "n_seeds", "n_valid_frames",
    "duration_s", "elapsed_s", "wav",
)  # fmt: skip


def write_wav(path: str | os.PathLike, y: np.ndarray) -> Path:
    """Write a 22050 Hz sound as 16-bit PCM WAV, peak-normalised (its loudest sample at full
    scale, none beyond), atomically; returns the path."""
    y = np.asarray(y, dtype=np.float64).ravel()
    if y.size == 0 or not np.all(np.isfinite(y)):
        raise ParameterError(
            f"The 'y' parameter of write_wav must be a non-empty finite waveform. Got {y.size} samples instead."
        )
    peak = float(np.abs(y).max())
    y = np.clip(y / peak if peak > 0 else y, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def natural_best(run: Run | str | os.PathLike, layer: str, unit: int) -> tuple[float, float, str | None]:
    """A unit's best natural clip in a run.

    Returns
    -------
    vmean : float
        The largest per-clip ``vmean`` (mean over valid frames) of the unit (NaN if no clip has
        a valid frame).
    max : float
        The largest per-clip ``max`` (over time).
    clip_id : str or None
        The clip with the largest ``vmean``.
    """
    r = open_run(run)
    vm = r.unit_block(layer, "vmean", [int(unit)])[int(unit)]
    mx = r.unit_block(layer, "max", [int(unit)])[int(unit)]
    if vm.notna().any():
        return float(vm.max()), float(mx.max()), str(vm.idxmax())
    return math.nan, float(mx.max()) if mx.notna().any() else math.nan, None


def _cache_key(r: Run, layer: str, unit: int, cfg: VisualizeConfig) -> str:
    return json.dumps(
        {
            "format": CACHE_FORMAT,
            "weights_sha256": r.meta.get("weights_sha256"),
            "corpus": r.meta.get("corpus"),  # the natural reference comes from its tables
            "layer": layer,
            "unit": int(unit),
            "config": asdict(cfg),
        },
        sort_keys=True,
    )


def _save(path: Path, key: str, vis: Visualization) -> None:
    scalars = np.array([vis.n_valid_frames, vis.natural_vmean, vis.natural_max, vis.elapsed_s, vis.diversity])
    arrays = {"waveforms": vis.waveforms, "vmean": vis.vmean, "max": vis.max, "history": vis.history}
    write_keyed_arrays(path, key, arrays | {"scalars": scalars, "natural_clip_id": np.array(vis.natural_clip_id or "")})


def _load(path: Path, key: str, layer: str, unit: int, cfg: VisualizeConfig) -> Visualization | None:
    z = read_keyed_arrays(path, key)  # None: missing, unreadable or of another format: recompute
    if z is None:
        return None
    n_valid, nat_v, nat_m, elapsed, div = (float(v) for v in z["scalars"])
    clip = str(z["natural_clip_id"]) or None
    return Visualization(
        layer, unit, z["waveforms"], z["vmean"], z["max"], z["history"], int(n_valid), cfg,
        nat_v, nat_m, clip, elapsed, div,
    )  # fmt: skip


def _check_run_layer(r: Run, layer: str, func: str) -> None:
    if layer not in CONV_LAYERS or layer not in r.layers:
        raise ParameterError(
            f"The 'layer' parameter of {func} must be a conv layer recorded in the run "
            f"({[x for x in r.layers if x in CONV_LAYERS]}). Got {layer!r} instead."
        )


def _model_for(r: Run, model: SoundNet8 | None) -> SoundNet8:
    if model is not None:
        return model
    path = r.meta.get("weights_path")
    return load_soundnet(path if path and Path(path).is_file() else None)


def run_visualize(
    run: Run | str | os.PathLike,
    layer: str,
    unit: int,
    *,
    out: str | os.PathLike | None = None,
    model: SoundNet8 | None = None,
    config: VisualizeConfig | None = None,
    refresh: bool = False,
) -> Visualization:
    """One unit's visualization against a run: cached in ``<run>/cache/visualize/<layer>/``.

    The result is computed once per (weights, layer, unit, settings) and kept as
    ``<unit>.npz`` (all seeds, activations, history) and ``<unit>.wav`` (the best seed); a file
    whose key does not match is recomputed, never trusted.

    Parameters
    ----------
    run : Run or path
        The run whose best natural clip is the reference (``vmean`` and ``max`` tables).
    layer : str
        conv1 .. conv7.
    unit : int
    out : str or path, optional
        Also write the best seed's sound here (WAV, 16-bit, peak-normalised); the other seeds
        go beside it as ``<stem>.seed<i>.wav``.
    model : SoundNet8, optional
        Default: the run's weights (``run.json``), else :func:`soundnet.load_soundnet`.
    config : VisualizeConfig, optional
    refresh : bool
        Recompute even when the cache is current.

    Returns
    -------
    Visualization
        With ``natural_vmean``, ``natural_max`` and ``natural_clip_id`` of the run.
    """
    r = open_run(run)
    cfg = config or VisualizeConfig()
    cfg.validate("run_visualize")
    _check_run_layer(r, layer, "run_visualize")
    _check_unit(None, layer, unit, "run_visualize")
    unit = int(unit)
    if cfg.duration_s is None:
        cfg = replace(cfg, duration_s=default_duration_s(layer))
    folder = r.cache_dir / "visualize" / layer
    key = _cache_key(r, layer, unit, cfg)
    npz = folder / f"{unit}.npz"
    vis = None if refresh or not npz.is_file() else _load(npz, key, layer, unit, cfg)
    if vis is None:
        vis = visualize_unit(_model_for(r, model), layer, unit, config=cfg, natural=natural_best(r, layer, unit))
        write_wav(folder / f"{unit}.wav", vis.best_waveform)
        _save(npz, key, vis)
    elif not (folder / f"{unit}.wav").is_file():  # the sound was deleted: the npz has it
        write_wav(folder / f"{unit}.wav", vis.best_waveform)
    if out is not None:
        out = Path(out)
        write_wav(out, vis.best_waveform)
        others = [i for i in range(len(vis.waveforms)) if i != vis.best_seed]
        for i in others:
            write_wav(out.with_name(f"{out.stem}.seed{i}{out.suffix or '.wav'}"), vis.waveforms[i])
    return vis


def visualize_layer(
    run: Run | str | os.PathLike,
    layer: str,
    *,
    units: Sequence[int] | None = None,
    model: SoundNet8 | None = None,
    config: VisualizeConfig | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Visualize many units of a layer (resumable: each unit is cached by :func:`run_visualize`)
    and write the table ``visualize_<layer>.parquet`` in the run directory.

    Parameters
    ----------
    run : Run or path
    layer : str
        conv1 .. conv7.
    units : sequence of int, optional
        Default: every unit of the layer.
    model : SoundNet8, optional
    config : VisualizeConfig, optional
    progress : bool
        One line per unit on stderr.

    Returns
    -------
    pandas.DataFrame
        One row per unit, columns :data:`VISUALIZE_COLUMNS`: the best seed's ``vmean`` and
        ``max``, the worst seed's ``vmean``, the run's best natural ``vmean`` / ``max`` and
        their ratios, the seeds' ``diversity`` (mean pairwise log-mel correlation), and
        ``wav``, the best seed's sound relative to the run directory.
    """
    r = open_run(run)
    _check_run_layer(r, layer, "visualize_layer")
    todo = list(range(r.n_units(layer))) if units is None else [int(u) for u in units]
    m = _model_for(r, model)
    rows = []
    for i, u in enumerate(todo):
        vis = run_visualize(r, layer, u, model=m, config=config)
        b = vis.best_seed
        rows.append(
            dict(
                layer=layer, unit=u, best_seed=b, vmean=float(vis.vmean[b]), max=float(vis.max[b]),
                vmean_min_seed=float(vis.vmean.min()), natural_vmean=vis.natural_vmean,
                natural_max=vis.natural_max, natural_clip_id=vis.natural_clip_id,
                relative_vmean=float(vis.relative_vmean[b]), relative_max=float(vis.relative_max[b]),
                diversity=vis.diversity, n_seeds=len(vis.vmean), n_valid_frames=vis.n_valid_frames,
                duration_s=vis.waveforms.shape[1] / SAMPLE_RATE_HZ, elapsed_s=vis.elapsed_s,
                wav=f"cache/visualize/{layer}/{u}.wav",
            )
        )  # fmt: skip
        if progress:
            print(f"[{i + 1}/{len(todo)}] {vis.summary()}", file=sys.stderr, flush=True)
    df = pd.DataFrame(rows, columns=list(VISUALIZE_COLUMNS))
    r.write_table(f"visualize_{layer}", df)
    return df
