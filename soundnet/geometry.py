"""Layer geometry of SoundNet8: frame counts, hops, receptive fields, frame <-> time.

All sample counts are at the model's input rate, :data:`SAMPLE_RATE_HZ` = 22050 Hz. A layer's
frames are the outputs of its whole block (conv, BatchNorm, ReLU and, for conv1, conv2 and conv5,
the max-pool), as returned by :meth:`soundnet.model.SoundNet8.extract_features`.

Examples
--------
>>> n_frames(1_476_864, "conv7")
46
>>> layer_geometry("conv8").hop_samples
65536
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from soundnet.errors import ParameterError
from soundnet.model import LAYERS, SPEC_BY_NAME

__all__ = [
    "SAMPLE_RATE_HZ",
    "LayerGeometry",
    "layer_geometry",
    "n_frames",
    "frame_counts",
    "min_samples",
    "frames_to_time",
    "frames_to_window",
    "time_to_frames",
]

#: The sampling rate SoundNet was trained on, in Hz.
SAMPLE_RATE_HZ = 22050


@dataclass(frozen=True)
class LayerGeometry:
    """Where one layer's frames sit on the input waveform.

    Attributes
    ----------
    layer : str
        Layer name.
    hop_samples : int
        Distance between consecutive frames, in input samples.
    receptive_field_samples : int
        Input samples that can influence one frame.
    first_start_samples : float
        Input sample index of the first sample in frame 0's receptive field (negative where the
        field starts in the zero padding).
    """

    layer: str
    hop_samples: int
    receptive_field_samples: int
    first_start_samples: float

    @property
    def hop_s(self) -> float:
        """Frame hop in seconds."""
        return self.hop_samples / SAMPLE_RATE_HZ

    @property
    def receptive_field_s(self) -> float:
        """Receptive field in seconds."""
        return self.receptive_field_samples / SAMPLE_RATE_HZ

    @property
    def first_centre_samples(self) -> float:
        """Input sample position of frame 0's receptive-field centre."""
        return self.first_start_samples + (self.receptive_field_samples - 1) / 2


def _ops(layer: str) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of every operation from the input up to ``layer``'s output."""
    if layer not in SPEC_BY_NAME:
        raise ParameterError(f"The 'layer' parameter must be one of {list(LAYERS)}. Got {layer!r} instead.")
    ops: list[tuple[int, int, int]] = []
    chain = list(LAYERS[:7]) + [layer] if layer in ("conv8", "conv8_2") else list(LAYERS[: LAYERS.index(layer) + 1])
    for name in chain:
        s = SPEC_BY_NAME[name]
        ops.append((s.kernel, s.stride, s.padding))
        if s.pool:
            ops.append((s.pool, s.pool, 0))
    return ops


@lru_cache(maxsize=None)
def layer_geometry(layer: str) -> LayerGeometry:
    """Hop, receptive field and offset of ``layer`` (see :class:`LayerGeometry`)."""
    jump, rf, start = 1, 1, 0.0
    for k, s, p in _ops(layer):
        rf = rf + (k - 1) * jump
        start = start - p * jump
        jump = jump * s
    return LayerGeometry(layer, jump, rf, start)


def n_frames(n_samples: int, layer: str) -> int:
    """Number of frames ``layer`` outputs for an input of ``n_samples`` samples (0 if none).

    Conv: ``floor((L + 2p - k) / s) + 1``; pools: ``floor(L / k)``.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
        raise ParameterError(f"The 'n_samples' parameter of n_frames must be an int >= 0. Got {n_samples!r} instead.")
    length = int(n_samples)
    for k, s, p in _ops(layer):
        if length + 2 * p < k:
            return 0
        length = (length + 2 * p - k) // s + 1
    return length


def frame_counts(n_samples: int) -> dict[str, int]:
    """``{layer: n_frames}`` for every layer, for an input of ``n_samples`` samples."""
    return {layer: n_frames(n_samples, layer) for layer in LAYERS}


@lru_cache(maxsize=None)
def min_samples(layer: str) -> int:
    """Smallest input length in samples for which ``layer`` outputs at least one frame."""
    lo, hi = 1, 1
    while n_frames(hi, layer) < 1:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if n_frames(mid, layer) >= 1:
            hi = mid
        else:
            lo = mid + 1
    return lo


def frames_to_time(frames, layer: str, *, sr: int = SAMPLE_RATE_HZ):
    """Time in seconds of the centre of each frame's receptive field.

    Parameters
    ----------
    frames : int or np.ndarray
        Frame indices of ``layer``.
    layer : str
    sr : int
        Sampling rate of the input in Hz.

    Returns
    -------
    float or np.ndarray (in seconds)
    """
    g = layer_geometry(layer)
    return (g.first_centre_samples + np.asarray(frames) * g.hop_samples) / sr


def frames_to_window(frames, layer: str, *, sr: int = SAMPLE_RATE_HZ, duration_s: float | None = None):
    """Receptive-field window ``(start_s, end_s)`` of each frame, in seconds.

    Parameters
    ----------
    frames : int or np.ndarray
    layer : str
    sr : int
    duration_s : float, optional
        When given, windows are clipped to ``[0, duration_s]``.
    """
    g = layer_geometry(layer)
    start = (g.first_start_samples + np.asarray(frames) * g.hop_samples) / sr
    end = start + g.receptive_field_samples / sr
    if duration_s is not None:
        start = np.clip(start, 0.0, duration_s)
        end = np.clip(end, 0.0, duration_s)
    return start, end


def time_to_frames(times_s, layer: str, *, sr: int = SAMPLE_RATE_HZ):
    """Index of the frame whose receptive-field centre is nearest each time (in seconds)."""
    g = layer_geometry(layer)
    idx = np.rint((np.asarray(times_s) * sr - g.first_centre_samples) / g.hop_samples)
    return np.maximum(idx, 0).astype(int)
