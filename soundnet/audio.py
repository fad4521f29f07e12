"""Audio front end: any file -> mono float32 at 22050 Hz, scaled x256.

SoundNet was trained in Torch on int32-decoded audio multiplied by 2^-23, i.e. on waveforms in
[-256, 256]. :data:`INPUT_SCALE` (256) is applied in exactly one place, :func:`to_model_input`;
without it the deep layers and the heads give nonsense. There is no mean subtraction.

Decoding uses ``soundfile`` (WAV, FLAC, OGG/Vorbis, MP3, AU, AIFF, ...) and falls back to
``librosa``/``audioread`` (ffmpeg) for other containers. Resampling uses ``soxr`` (high quality).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from soundnet.errors import AudioError, ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, min_samples

__all__ = [
    "INPUT_SCALE",
    "SHORT_POLICIES",
    "AudioInfo",
    "audio_info",
    "read_audio",
    "fit_length",
    "to_model_input",
    "load_audio",
    "iter_audio_blocks",
]

#: Multiplier from [-1, 1] floats to SoundNet's input range.
INPUT_SCALE = 256.0
#: How :func:`fit_length` brings a short clip to a minimum length.
SHORT_POLICIES = ("none", "tile", "pad")


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds, before decoding.

    Attributes
    ----------
    sample_rate_hz : int
    channels : int
    n_frames : int
        Samples per channel at ``sample_rate_hz``.
    duration_s : float
    format : str
    """

    sample_rate_hz: int
    channels: int
    n_frames: int
    duration_s: float
    format: str


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise AudioError(path, "missing", "no such file")
    if not path.is_file():
        raise AudioError(path, "not audio", "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError(path, "empty", "the file has 0 bytes")


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channels and length of an audio file without decoding it.

    Raises
    ------
    AudioError
        Missing, empty or not decodable by ``soundfile``.
    """
    import soundfile as sf

    p = Path(path)
    _check_exists(p)
    try:
        info = sf.info(str(p))
    except Exception as exc:
        try:  # fallback decoder
            import audioread

            with audioread.audio_open(str(p)) as f:
                n = int(round(f.duration * f.samplerate))
                return AudioInfo(int(f.samplerate), int(f.channels), n, float(f.duration), "audioread")
        except Exception:
            raise AudioError(p, "not audio", f"{type(exc).__name__}: {exc}") from exc
    if info.channels < 1:
        raise AudioError(p, "no channels")
    return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames),
                     float(info.frames) / info.samplerate if info.samplerate else 0.0, info.format)


def _decode(p: Path, offset_s: float, duration_s: float | None) -> tuple[np.ndarray, int]:
    """Decode to float32 ``(n, channels)`` at the file's rate."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(p)) as f:
            sr = int(f.samplerate)
            if f.channels < 1:
                raise AudioError(p, "no channels")
            start = int(round(offset_s * sr))
            if start > f.frames:
                raise AudioError(p, "bad range", f"offset {offset_s:.3f} s is past the end ({f.frames / sr:.3f} s)")
            f.seek(start)
            count = -1 if duration_s is None else int(round(duration_s * sr))
            data = f.read(frames=count, dtype="float32", always_2d=True)
            return data, sr
    except AudioError:
        raise
    except Exception as sf_exc:  # not something libsndfile reads: try the fallback decoder
        try:
            import librosa

            y, sr = librosa.load(str(p), sr=None, mono=False, offset=offset_s, duration=duration_s,
                                 dtype=np.float32)
        except Exception:
            reason = "corrupt" if _looks_like_audio(p) else "not audio"
            raise AudioError(p, reason, f"{type(sf_exc).__name__}: {sf_exc}") from sf_exc
        y = np.atleast_2d(y).T if y.ndim == 1 else y.T
        return np.ascontiguousarray(y, dtype=np.float32), int(sr)


def _looks_like_audio(p: Path) -> bool:
    """Whether a file starts like a known audio container (to tell corrupt from not-audio)."""
    with open(p, "rb") as fh:
        head = fh.read(12)
    return head[:4] in (b"RIFF", b"fLaC", b"OggS", b"FORM", b".snd", b"RF64") or head[:3] == b"ID3" or (
        len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)


def read_audio(
    path: str | os.PathLike,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    sr: int = SAMPLE_RATE_HZ,
    allow_silent: bool = True,
) -> np.ndarray:
    """Decode, mix to mono and resample a file to ``sr``; values in [-1, 1] (not scaled).

    Parameters
    ----------
    path : str or path
    offset_s : float (in seconds)
        Where to start reading.
    duration_s : float (in seconds), optional
        How much to read (default: to the end).
    sr : int (in Hz)
        Target rate.
    allow_silent : bool
        When False, an all-zero signal raises ``AudioError(reason="silent")``.

    Returns
    -------
    np.ndarray, shape (n_samples,), float32

    Raises
    ------
    AudioError
        Reasons ``missing``, ``not audio``, ``corrupt``, ``empty``, ``non-finite samples``,
        ``no channels``, ``silent``, ``bad range``.
    """
    if offset_s < 0 or (duration_s is not None and duration_s <= 0):
        raise ParameterError(
            f"offset_s must be >= 0 and duration_s > 0. Got offset_s={offset_s}, duration_s={duration_s} instead.")
    p = Path(path)
    _check_exists(p)
    data, src_sr = _decode(p, offset_s, duration_s)
    if data.shape[1] < 1:
        raise AudioError(p, "no channels")
    if data.shape[0] == 0:
        raise AudioError(p, "empty", "no samples decoded")
    if not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(p, "non-finite samples", f"{bad} NaN or infinite samples")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if src_sr != sr:
        import soxr

        mono = soxr.resample(mono, src_sr, sr, quality="HQ").astype(np.float32, copy=False)
    if not allow_silent and not np.any(mono):
        raise AudioError(p, "silent", "all samples are zero")
    return np.ascontiguousarray(mono, dtype=np.float32)


def fit_length(y: np.ndarray, *, min_samples: int, policy: str = "tile") -> np.ndarray:
    """Bring a 1-D signal to at least ``min_samples`` samples.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    min_samples : int
    policy : {"tile", "pad", "none"}
        ``tile`` repeats the clip as the original SoundNet did; ``pad`` appends zeros; ``none``
        returns ``y`` unchanged.
    """
    if policy not in SHORT_POLICIES:
        raise ParameterError(f"The 'policy' parameter of fit_length must be one of {SHORT_POLICIES}. Got {policy!r} instead.")
    if policy == "none" or len(y) >= min_samples or len(y) == 0:
        return y
    if policy == "tile":
        reps = -(-min_samples // len(y))
        return np.tile(y, reps)[:min_samples]
    return np.concatenate([y, np.zeros(min_samples - len(y), dtype=y.dtype)])


def to_model_input(y: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Scale a [-1, 1] waveform x256 and shape it ``(1, 1, n)`` for :class:`SoundNet8`.

    This is the one place where :data:`INPUT_SCALE` is applied.
    """
    t = torch.as_tensor(np.asarray(y, dtype=np.float32))
    return (t * INPUT_SCALE).reshape(1, 1, -1)


def load_audio(
    path: str | os.PathLike,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    short: str = "none",
    min_length: int | str | None = None,
) -> torch.Tensor:
    """Load a file as SoundNet input: float32 ``(1, 1, n_samples)``, 22050 Hz, mono, x256.

    Parameters
    ----------
    path : str or path
        WAV, FLAC, OGG, MP3, AU, AIFF; other formats through the fallback decoder.
    offset_s, duration_s : float (in seconds)
        Optional excerpt.
    short : {"none", "tile", "pad"}
        Policy for clips shorter than ``min_length``.
    min_length : int or str, optional
        A length in samples, or a layer name meaning "enough for one frame of that layer"
        (``"conv8"``: 209,374 samples, about 9.5 s). Default with a policy: ``"conv8"``.

    Returns
    -------
    torch.Tensor, shape (1, 1, n_samples)

    Raises
    ------
    AudioError
        For a missing, empty, corrupt, non-audio, channel-less or non-finite file.
    """
    y = read_audio(path, offset_s=offset_s, duration_s=duration_s)
    if short != "none":
        target = min_length if min_length is not None else "conv8"
        n = min_samples(target) if isinstance(target, str) else int(target)
        y = fit_length(y, min_samples=n, policy=short)
    elif short not in SHORT_POLICIES:
        raise ParameterError(f"The 'short' parameter of load_audio must be one of {SHORT_POLICIES}. Got {short!r} instead.")
    return to_model_input(y)


def iter_audio_blocks(
    path: str | os.PathLike,
    *,
    block_s: float = 60.0,
    sr: int = SAMPLE_RATE_HZ,
):
    """Stream a (long) file as mono [-1, 1] float32 blocks at ``sr``, in bounded memory.

    Parameters
    ----------
    path : str or path
    block_s : float (in seconds)
        Length of each block read from the file.
    sr : int (in Hz)

    Yields
    ------
    np.ndarray, shape (n,)
        Consecutive blocks; their concatenation equals the streamed resampling of the file.
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    _check_exists(p)
    try:
        f = sf.SoundFile(str(p))
    except Exception:  # formats libsndfile cannot stream: decode whole
        yield read_audio(p, sr=sr)
        return
    with f:
        src_sr = int(f.samplerate)
        stream = soxr.ResampleStream(src_sr, sr, 1, dtype="float32", quality="HQ") if src_sr != sr else None
        block = max(1, int(block_s * src_sr))
        got_any = False
        while True:
            try:
                data = f.read(frames=block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(p, "corrupt", f"{type(exc).__name__}: {exc}") from exc
            last = len(data) < block
            if len(data):
                if not np.isfinite(data).all():
                    raise AudioError(p, "non-finite samples", "NaN or infinite samples")
                got_any = True
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            out = stream.resample_chunk(np.ascontiguousarray(mono), last=last) if stream else mono
            if len(out):
                yield np.ascontiguousarray(out, dtype=np.float32)
            if last:
                break
        if not got_any:
            raise AudioError(p, "empty", "no samples decoded")
