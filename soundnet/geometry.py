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
from functools import cache

import numpy as np

from soundnet.errors import ParameterError
from soundnet.options import check_option
from soundnet.specs import LAYERS, SPEC_BY_NAME

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
    "head_frame_ok",
    "clean_frames",
    "inside_fraction",
    "valid_frames",
    "valid_range",
    "VALID_MIN_INSIDE",
    "EDGE_LAYERS",
    "HEADS_TILE_SAMPLES",
]

#: The sampling rate SoundNet was trained on, in Hz.
SAMPLE_RATE_HZ = 22050
#: Length in samples (20 s) to which :func:`soundnet.audio.load_audio` tiles or pads short clips
#: for the heads: 4 conv8 frames, none touching conv7's padded last frame (see :func:`head_frame_ok`).
HEADS_TILE_SAMPLES = 441_000


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


def _ops(layer: str, where: str) -> list[tuple[int, int, int]]:
    """(kernel, stride, padding) of every operation from the input up to ``layer``'s output."""
    check_option("layer", layer, LAYERS, where=where)
    ops: list[tuple[int, int, int]] = []
    chain = list(LAYERS[:7]) + [layer] if layer in ("conv8", "conv8_2") else list(LAYERS[: LAYERS.index(layer) + 1])
    for name in chain:
        s = SPEC_BY_NAME[name]
        ops.append((s.kernel, s.stride, s.padding))
        if s.pool:
            ops.append((s.pool, s.pool, 0))
    return ops


@cache
def layer_geometry(layer: str) -> LayerGeometry:
    """Hop, receptive field and offset of ``layer`` (see :class:`LayerGeometry`)."""
    jump, rf, start = 1, 1, 0.0
    for k, s, p in _ops(layer, "layer_geometry"):
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
    for k, s, p in _ops(layer, "n_frames"):
        if length + 2 * p < k:
            return 0
        length = (length + 2 * p - k) // s + 1
    return length


def frame_counts(n_samples: int) -> dict[str, int]:
    """``{layer: n_frames}`` for every layer, for an input of ``n_samples`` samples."""
    return {layer: n_frames(n_samples, layer) for layer in LAYERS}


@cache
def min_samples(layer: str, frames: int = 1) -> int:
    """Smallest input length in samples for which ``layer`` outputs at least ``frames`` frames."""
    if frames < 1:
        raise ParameterError(f"The 'frames' parameter of min_samples must be >= 1. Got {frames} instead.")
    lo, hi = 1, 1
    while n_frames(hi, layer) < frames:
        hi *= 2
    while lo < hi:
        mid = (lo + hi) // 2
        if n_frames(mid, layer) >= frames:
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


def head_frame_ok(n_samples: int) -> np.ndarray:
    """Which head (conv8 / conv8_2) frames are free of conv7's padded last frame.

    conv7 (kernel 4, stride 2, padding 2) gives its *last* frame an input that is half zero
    padding; through BatchNorm that frame's activations are tens of times larger than any other
    frame's (a property of the released network, not of this port). A head frame whose 8-frame
    window includes it is degenerate: it says "Norfolk terrier" / "/p/parking_garage/outdoor" (or
    "pole" / "/m/museum/indoor") with probability near 1 whatever the sound. That happens to the
    last head frame whenever conv7 has an even number of frames, e.g. for every input of
    209,374-249,000 samples (9.5-11.3 s), where it is the only frame.

    Parameters
    ----------
    n_samples : int
        Input length in samples.

    Returns
    -------
    np.ndarray of bool, shape (n_frames_conv8,)
        True for a clean head frame. Clip-level predictions should average these only
        (:func:`soundnet.labels.clip_probabilities` does with ``n_samples``).
    """
    t7 = n_frames(n_samples, "conv7")
    t8 = n_frames(n_samples, "conv8")
    spec = SPEC_BY_NAME["conv8"]
    last_in = spec.stride * np.arange(t8) + spec.kernel - 1  # last conv7 frame each head frame reads
    return last_in < t7 - 1


#: Layers whose last frame reads so much zero padding that it is an outlier (see :func:`clean_frames`).
EDGE_LAYERS = ("conv7",)


def clean_frames(n_samples: int, layer: str) -> np.ndarray:
    """Which frames of ``layer`` are free of the padding artifact at the end of conv7.

    conv7's last frame reads half zero padding and its activations are 20-100x larger than any
    other frame's (see :func:`head_frame_ok`); on the demo corpus it holds the max of 96% of
    clips. Per-clip summaries (``interp.recording``, ``edge="drop"``) therefore leave out conv7's last
    frame when conv7 has more than one, and the head frames that read it when a clean head frame
    exists. Every other layer's frames are all clean.

    Parameters
    ----------
    n_samples : int
        Input length in samples.
    layer : str

    Returns
    -------
    np.ndarray of bool, shape (n_frames(n_samples, layer),)
    """
    t = n_frames(n_samples, layer)
    ok = np.ones(t, dtype=bool)
    if layer in EDGE_LAYERS and t > 1:
        ok[-1] = False
    elif layer in ("conv8", "conv8_2"):
        heads = head_frame_ok(n_samples)
        if heads.any():
            ok = heads
    return ok


#: Default least fraction of a frame's receptive field that must lie inside the clip for the frame
#: to be *valid* (:func:`valid_frames`): half. A frame below it reads mostly zero padding (or the
#: silence that ``short="pad"`` appended); its value says more about the clip's length than
#: about its sound.
VALID_MIN_INSIDE = 0.5


def inside_fraction(n_samples: int, layer: str, *, clip_samples: int | None = None) -> np.ndarray:
    """Fraction of each frame's receptive field that lies inside the clip.

    Parameters
    ----------
    n_samples : int
        Input length in samples (the clip, possibly padded or tiled).
    layer : str
    clip_samples : int, optional
        The clip's own length in samples, before any padding (default ``n_samples``): samples
        ``[0, clip_samples)`` are the clip.

    Returns
    -------
    np.ndarray of float, shape (n_frames(n_samples, layer),), in [0, 1]
    """
    g = layer_geometry(layer)
    t = n_frames(n_samples, layer)
    end = n_samples if clip_samples is None else min(int(clip_samples), n_samples)
    start = g.first_start_samples + np.arange(t) * g.hop_samples
    inside = np.clip(np.minimum(start + g.receptive_field_samples, end) - np.maximum(start, 0.0), 0.0, None)
    return inside / g.receptive_field_samples


def valid_frames(
    n_samples: int, layer: str, *, clip_samples: int | None = None, min_inside: float = VALID_MIN_INSIDE
) -> np.ndarray:
    """Which frames of ``layer`` are *valid*: at least ``min_inside`` of their receptive field
    lies inside the clip, and they are clean (:func:`clean_frames`).

    The duration-invariant statistics (``vmean``, recorded by :mod:`interp.recording`) average
    a unit over these frames only: a frame that reads mostly padding is an artifact of the
    clip's length (conv7's first and last frames read two padded inputs of four; in a 1 s clip
    at most 24 % of a conv7 frame's 4.1 s field lies inside the clip). The valid frames of a
    clip are consecutive. A clip shorter than about ``min_inside`` times the layer's receptive
    field has none in that layer: it is left out of that layer's statistics.

    Parameters
    ----------
    n_samples : int
        Input length in samples (the clip as the network saw it, padded or not).
    layer : str
    clip_samples : int, optional
        The clip's own length in samples (default ``n_samples``).
    min_inside : float
        In (0, 1]; default :data:`VALID_MIN_INSIDE`.

    Returns
    -------
    np.ndarray of bool, shape (n_frames(n_samples, layer),)

    Examples
    --------
    >>> int(valid_frames(22050, "conv7").sum())   # a 1 s clip: no conv7 frame is valid
    0
    >>> int(valid_frames(22050, "conv4").sum())   # of its 23 frames
    21
    """
    if not 0 < min_inside <= 1:
        raise ParameterError(
            f"The 'min_inside' parameter of valid_frames must be in (0, 1]. Got {min_inside!r} instead."
        )
    ok = inside_fraction(n_samples, layer, clip_samples=clip_samples) >= min_inside - 1e-12
    return ok & clean_frames(n_samples, layer)


def valid_range(
    n_samples: int, layer: str, *, clip_samples: int | None = None, min_inside: float = VALID_MIN_INSIDE
) -> tuple[int, int]:
    """``(first, end)`` frame indices of the valid frames (:func:`valid_frames`, consecutive);
    ``(0, 0)`` when there is none."""
    ok = valid_frames(n_samples, layer, clip_samples=clip_samples, min_inside=min_inside)
    idx = np.flatnonzero(ok)
    return (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)


def time_to_frames(times_s, layer: str, *, sr: int = SAMPLE_RATE_HZ):
    """Index of the frame whose receptive-field centre is nearest each time (in seconds)."""
    g = layer_geometry(layer)
    idx = np.rint((np.asarray(times_s) * sr - g.first_centre_samples) / g.hop_samples)
    return np.maximum(idx, 0).astype(int)
