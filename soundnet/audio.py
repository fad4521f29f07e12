"""Audio front end: any file -> mono float32 at 22050 Hz, scaled x256.

SoundNet was trained in Torch on int32-decoded audio multiplied by 2^-23, i.e. on waveforms in
[-256, 256]. :data:`INPUT_SCALE` (256) is applied in exactly one place, :func:`to_model_input`;
without it the deep layers and the heads give nonsense. There is no mean subtraction.

Decoding uses ``soundfile`` (WAV, FLAC, OGG/Vorbis, MP3, AU, AIFF, ...) and falls back to
``librosa``/``audioread`` (ffmpeg) for other containers. Resampling uses ``soxr`` (high quality).
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch
from audioread.ffdec import FFmpegAudioFile

from soundnet.errors import AudioError, ParameterError
from soundnet.geometry import HEADS_TILE_SAMPLES, SAMPLE_RATE_HZ, min_samples
from soundnet.options import Short, check_option

__all__ = [
    "INPUT_SCALE",
    "SHORT_POLICIES",
    "AudioInfo",
    "audio_info",
    "read_audio",
    "read_excerpt",
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
        The file's sampling rate, in Hz.
    channels : int
    n_frames : int
        Samples per channel at ``sample_rate_hz``.
    duration_s : float
        Length in seconds.
    format : str
        Container as libsndfile names it (``WAV``, ``FLAC``, ``MP3``, ...) or ``ffmpeg``.
    """

    sample_rate_hz: int
    channels: int
    n_frames: int
    duration_s: float
    format: str

    def excerpt_s(self, offset_s: float, duration_s: float | None) -> float:
        """Seconds of the file in ``[offset_s, offset_s + duration_s)`` (to the end when
        ``duration_s`` is None)."""
        end_s = self.duration_s if duration_s is None else min(offset_s + duration_s, self.duration_s)
        return end_s - offset_s

    def note(self, *, sr: int = SAMPLE_RATE_HZ) -> str:
        """What :func:`read_audio` does to this file, e.g. ``"mixed 6 channels to mono;
        resampled 192000 Hz -> 22050 Hz"`` (empty when nothing)."""
        parts = []
        if self.channels > 1:
            parts.append(f"mixed {self.channels} channels to mono")
        if self.sample_rate_hz != sr:
            parts.append(f"resampled {self.sample_rate_hz} Hz -> {sr} Hz")
        return "; ".join(parts)


def _check_exists(path: Path) -> int:
    """The size of ``path`` in bytes; ``missing``, ``not audio`` or ``empty`` otherwise (one
    ``stat``)."""
    try:
        st = path.stat()
    except OSError as exc:  # what Path.exists() takes for "no such file"; other errors propagate
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EBADF):
            raise AudioError(path, "missing", "no such file") from None
        raise
    except ValueError:  # e.g. a NUL byte in the path
        raise AudioError(path, "missing", "no such file") from None
    if not stat.S_ISREG(st.st_mode):
        raise AudioError(path, "not audio", "not a regular file")
    if st.st_size == 0:
        raise AudioError(path, "empty", "the file has 0 bytes")
    return st.st_size


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Sample rate, channels and length of an audio file without decoding it.

    Files libsndfile cannot read are probed with ffmpeg (through ``audioread``).

    Raises
    ------
    AudioError
        ``missing``, ``empty``, ``not audio``, ``corrupt`` (a broken header, or a WAV whose
        header declares more data than the file holds) or ``no channels``.
    """
    p = Path(path)
    f, complaint = _open_soundfile(p, _check_exists(p))
    if f is None:
        return _ffmpeg_info(p, complaint)
    with f:
        return _soundfile_info(p, f)


def _soundfile_info(p: Path, f) -> AudioInfo:
    """What an open SoundFile holds (``no channels`` when nothing)."""
    sr, ch, n, fmt = int(f.samplerate), int(f.channels), int(f.frames), str(f.format)
    if ch < 1:
        raise AudioError(p, "no channels")
    return AudioInfo(sr, ch, n, n / sr if sr else 0.0, fmt)


def _ffmpeg_info(p: Path, sf_complaint: str) -> AudioInfo:
    """What a file that libsndfile cannot open holds, as ffmpeg (through audioread) sees it."""
    try:
        with FFmpegAudioFile(str(p)) as af:
            sr, ch, dur = int(af.samplerate), int(af.channels), float(af.duration)
    except Exception as exc:
        raise _fallback_failed(p, exc, sf_complaint) from exc
    if ch < 1:
        raise AudioError(p, "no channels")
    return AudioInfo(sr, ch, int(round(dur * sr)), dur, "ffmpeg")


#: libsndfile error codes meaning "not a format/encoding I know" (others: it knows, but fails).
_SF_UNRECOGNISED = (1, 4)
#: MP3 lengths in headers can be estimates: tolerate this many missing samples (plus 1 %).
_MP3_SLACK_FRAMES = 4 * 1152


def _open_soundfile(p: Path, size: int):
    """Open ``p`` (``size`` bytes) with libsndfile after the structural checks libsndfile skips.

    Returns
    -------
    (soundfile.SoundFile or None, str)
        The open file and ``""``; or ``None`` (use the ffmpeg fallback) and libsndfile's complaint
        when it knows the format but cannot open this file (``""`` when it does not know it).

    Raises
    ------
    AudioError
        ``corrupt`` when a WAV header declares more data than the file holds or an Ogg stream
        lacks its end (both read "fine", but short, with libsndfile).
    """
    with open(p, "rb") as fh:
        head = fh.read(12)
        if len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            _check_wav_data_size(p, fh, size)
        elif head[:4] == b"OggS":
            _check_ogg_end(p, fh, size)
    try:
        return sf.SoundFile(str(p)), ""
    except sf.LibsndfileError as exc:
        return None, "" if exc.code in _SF_UNRECOGNISED else (exc.error_string or str(exc))
    except Exception as exc:  # libsndfile may raise RuntimeError/TypeError on odd headers
        return None, _exc_text(exc)


def _fallback_failed(p: Path, exc: BaseException, sf_complaint: str) -> AudioError:
    """The error for a file neither libsndfile nor ffmpeg can use."""
    if sf_complaint:
        return AudioError(p, "corrupt", f"libsndfile: {sf_complaint}; ffmpeg: {_exc_text(exc)}")
    reason = "corrupt" if _looks_like_audio(p) else "not audio"
    return AudioError(p, reason, f"neither libsndfile nor ffmpeg can decode it ({_exc_text(exc)})")


def _check_wav_data_size(p: Path, fh, file_bytes: int) -> None:
    """Raise ``corrupt`` if a RIFF/WAVE header declares more data bytes than the file holds.

    libsndfile silently shortens a truncated WAV to the bytes present (its frame count is then
    computed from the file size), so the header's ``data`` chunk size is checked here, on the
    open file ``fh`` of ``file_bytes`` bytes. Placeholder sizes written by streaming encoders
    (0 and 0xFFFFFFFF) are accepted.
    """
    pos = 12
    while pos + 8 <= file_bytes:
        fh.seek(pos)
        chunk = fh.read(8)
        if len(chunk) < 8:
            return
        cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if cid == b"data":
            if size in (0, 0xFFFFFFFF):
                return
            held = file_bytes - (pos + 8)
            if size > held:
                raise AudioError(
                    p,
                    "corrupt",
                    f"truncated: the WAV header declares {size} bytes of audio data, "
                    f"the file holds {held} ({held / size:.1%})",
                )
            return
        pos += 8 + size + (size & 1)


def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_page_crc_ok(page: bytes) -> bool:
    crc = 0
    data = page[:22] + b"\0\0\0\0" + page[26:]
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    return crc == int.from_bytes(page[22:26], "little")


def _check_ogg_end(p: Path, fh, size: int, *, tail_bytes: int = 1 << 17) -> None:
    """Raise ``corrupt`` if an Ogg file does not end with a complete end-of-stream page.

    libsndfile takes an Ogg file's length from its last page, so a file cut at a page boundary
    decodes "fine" but short. The last page whose checksum holds must end exactly at the end of
    the file (``fh``, open, of ``size`` bytes) and carry the end-of-stream flag.
    """
    fh.seek(max(0, size - tail_bytes))
    tail = fh.read()
    base = size - len(tail)
    at = tail.rfind(b"OggS")
    while at >= 0:
        head = tail[at : at + 27]
        if len(head) == 27 and head[4] == 0:
            n_seg = head[26]
            table = tail[at + 27 : at + 27 + n_seg]
            end = at + 27 + n_seg + sum(table)
            if len(table) == n_seg and end <= len(tail) and _ogg_page_crc_ok(tail[at:end]):
                if base + end < size:
                    raise AudioError(
                        p,
                        "corrupt",
                        f"truncated: {size - base - end} bytes of an incomplete Ogg page after the last complete one",
                    )
                if not head[5] & 0x04:
                    raise AudioError(p, "corrupt", "truncated: the Ogg stream stops without its end-of-stream page")
                return
        at = tail.rfind(b"OggS", 0, at)


def _expected_frames(total: int, start: int, count: int) -> int:
    left = max(total - start, 0)
    return left if count < 0 else min(count, left)


def _check_complete(p: Path, got: int, expected: int, fmt: str) -> None:
    """Raise ``corrupt`` when fewer frames were decoded than the header announced."""
    slack = _MP3_SLACK_FRAMES + expected // 100 if fmt == "MP3" else 0
    if got + slack < expected:
        raise AudioError(p, "corrupt", f"truncated: decoded {got} of the {expected} frames the {fmt} header announces")


#: 2**-15: libsndfile's scale from 16-bit PCM to float (a power of two, so exact in float32).
_PCM16_SCALE = np.float32(1.0 / 32768.0)
#: Largest read (frames x channels) decoded through the per-thread scratch buffers: 2**21
#: values (47 s of 44.1 kHz mono), so at most 12 MiB are kept per thread that decodes.
_SCRATCH_VALUES = 1 << 21
_scratch = threading.local()


def _scratch_buffers(n_values: int) -> tuple[np.ndarray, np.ndarray]:
    """This thread's int16 and float32 scratch buffers of at least ``n_values`` values."""
    have = getattr(_scratch, "i16", None)
    if have is None or have.size < n_values:
        size = max(n_values, 1 << 18)
        _scratch.i16, _scratch.f32 = np.empty(size, np.int16), np.empty(size, np.float32)
    return _scratch.i16, _scratch.f32


def _read_float32(f, frames: int) -> tuple[np.ndarray, bool]:
    """Read ``frames`` frames (-1: to the end) of an open SoundFile as float32 ``(n, channels)``.

    16-bit PCM (most WAV and FLAC files) is read as int16 and scaled here: the same values as
    libsndfile's own float conversion, bit for bit (int16 to float32 is exact and the scale is a
    power of two), at a third of its cost. Reads of up to :data:`_SCRATCH_VALUES` values go
    through this thread's scratch buffers, which saves the page faults of fresh arrays (5 s of
    44.1 kHz: 0.19 against 0.52 ms with libsndfile's conversion into a new array).

    Returns
    -------
    data : np.ndarray, shape (n, channels), float32
    scratch : bool
        Whether ``data`` is a view of the scratch buffer (valid until this thread's next read).
    """
    if f.subtype != "PCM_16":
        return f.read(frames=frames, dtype="float32", always_2d=True), False
    left = max(f.frames - f.tell(), 0) if f.seekable() else -1
    n = left if frames < 0 else (min(frames, left) if left >= 0 else frames)
    if n < 0 or n * f.channels > _SCRATCH_VALUES:
        raw = f.read(frames=frames, dtype="int16", always_2d=True)
        return np.multiply(raw, _PCM16_SCALE, dtype=np.float32), False
    i16, f32 = _scratch_buffers(n * f.channels)
    raw = f.read(frames=n, dtype="int16", always_2d=True, out=i16[: n * f.channels].reshape(n, f.channels))
    data = f32[: raw.size].reshape(raw.shape)
    np.multiply(raw, _PCM16_SCALE, out=data, dtype=np.float32)
    return data, True


def _decode(
    p: Path,
    size: int,
    offset_s: float,
    duration_s: float | None,
    *,
    max_duration_s: float | None = None,
    want_info: bool = True,
) -> tuple[np.ndarray | None, int, bool, AudioInfo | None]:
    """Decode to float32 ``(n, channels)`` at the file's rate, opening the file once.

    Returns ``(data, rate_hz, scratch, info)``: ``scratch`` tells that ``data`` is this thread's
    scratch buffer (see :func:`_read_float32`; it holds integer samples, so no NaN); ``data`` is
    None (nothing decoded) when the excerpt is longer than ``max_duration_s``. Without
    ``want_info`` (nor ``max_duration_s``), a file that only ffmpeg reads is not probed first
    (``info`` None): one ffmpeg process, not two.
    """
    f, complaint = _open_soundfile(p, size)
    if f is None:  # not something libsndfile reads: try the fallback decoder (ffmpeg)
        info = _ffmpeg_info(p, complaint) if want_info or max_duration_s is not None else None
        if max_duration_s is not None and info is not None and info.excerpt_s(offset_s, duration_s) > max_duration_s:
            return None, info.sample_rate_hz, False, info
        try:
            return (*_decode_fallback(p, offset_s, duration_s, sf_complaint=complaint), False, info)
        except AudioError as exc:
            if info is not None and exc.sample_rate_hz is None:
                exc.sample_rate_hz = info.sample_rate_hz
            raise
    with f:
        info = _soundfile_info(p, f)
        sr, total = info.sample_rate_hz, info.n_frames
        start = int(round(offset_s * sr))
        if total > 0 and start >= total:
            raise AudioError(
                p, "bad range", f"offset {offset_s:.3f} s is at or past the end ({total / sr:.3f} s)", sample_rate_hz=sr
            )
        if max_duration_s is not None and info.excerpt_s(offset_s, duration_s) > max_duration_s:
            return None, sr, False, info
        count = -1 if duration_s is None else max(1, int(round(duration_s * sr)))
        try:
            if start:
                f.seek(start)
            data, scratch = _read_float32(f, count)
        except Exception as exc:  # libsndfile recognised the file but cannot decode it
            raise AudioError(p, "corrupt", f"decoding failed: {exc}", sample_rate_hz=sr) from exc
        try:
            _check_complete(p, len(data), _expected_frames(total, start, count), f.format)
        except AudioError as exc:
            exc.sample_rate_hz = sr
            raise
        return data, sr, scratch, info


def _decode_fallback(
    p: Path, offset_s: float, duration_s: float | None, *, sf_complaint: str = ""
) -> tuple[np.ndarray, int]:
    """Decode what libsndfile cannot read (M4A/AAC, WMA, ...) with ffmpeg through audioread."""
    try:
        with FFmpegAudioFile(str(p)) as f:
            sr, channels = int(f.samplerate), int(f.channels)
            if channels < 1:
                raise AudioError(p, "no channels")
            start = int(round(offset_s * sr)) * channels
            stop = None if duration_s is None else start + max(1, int(round(duration_s * sr))) * channels
            parts, n = [], 0
            for buf in f:
                parts.append(np.frombuffer(buf, dtype="<i2"))
                n += len(parts[-1])
                if stop is not None and n >= stop:
                    break
    except AudioError:
        raise
    except Exception as exc:
        raise _fallback_failed(p, exc, sf_complaint) from exc
    pcm = np.concatenate(parts) if parts else np.zeros(0, dtype="<i2")
    pcm = pcm[: len(pcm) - len(pcm) % channels]
    if start and start >= len(pcm):
        raise AudioError(
            p, "bad range", f"offset {offset_s:.3f} s is at or past the end ({len(pcm) / channels / sr:.3f} s)"
        )
    pcm = pcm[start:stop]
    data = (pcm.astype(np.float32) / 32768.0).reshape(-1, channels)
    return data, sr


def _exc_text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _looks_like_audio(p: Path) -> bool:
    """Whether a file starts like a known audio container (to tell corrupt from not-audio)."""
    with open(p, "rb") as fh:
        head = fh.read(12)
    return (
        head[:4] in (b"RIFF", b"fLaC", b"OggS", b"FORM", b".snd", b"RF64")
        or head[:3] == b"ID3"
        or (len(head) > 1 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0)
    )


def _check_range(func: str, offset_s: float, duration_s: float | None) -> None:
    if not np.isfinite(offset_s) or offset_s < 0:
        raise ParameterError(
            f"The 'offset_s' parameter of {func} must be a finite number >= 0 (seconds). Got {offset_s!r} instead."
        )
    if duration_s is not None and (not np.isfinite(duration_s) or duration_s <= 0):
        raise ParameterError(
            f"The 'duration_s' parameter of {func} must be None or a finite number > 0 (seconds). Got {duration_s!r} instead."
        )


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
    mono, _ = _read_excerpt(path, offset_s, duration_s, sr, None, "read_audio", want_info=False)
    assert mono is not None  # no max_duration_s: the audio is always read
    if not allow_silent and not np.any(mono):
        raise AudioError(Path(path), "silent", "all samples are zero")
    return mono


def read_excerpt(
    path: str | os.PathLike,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    sr: int = SAMPLE_RATE_HZ,
    max_duration_s: float | None = None,
) -> tuple[np.ndarray | None, AudioInfo]:
    """:func:`read_audio` and :func:`audio_info` in one: the file is opened once.

    Parameters
    ----------
    path, offset_s, duration_s, sr
        As for :func:`read_audio`.
    max_duration_s : float (in seconds), optional
        An excerpt longer than this is not decoded: the audio returned is None (for callers
        that stream long files in blocks, see :func:`iter_audio_blocks`).

    Returns
    -------
    audio : np.ndarray, shape (n_samples,), float32, or None
        Mono at ``sr``, in [-1, 1].
    info : AudioInfo
        What the whole file holds.

    Raises
    ------
    AudioError
        As :func:`read_audio` (except ``silent``).
    """
    audio, info = _read_excerpt(path, offset_s, duration_s, sr, max_duration_s, "read_excerpt")
    assert info is not None  # want_info: the header is always read
    return audio, info


def _read_excerpt(
    path: str | os.PathLike,
    offset_s: float,
    duration_s: float | None,
    sr: int,
    max_duration_s: float | None,
    func: str,
    *,
    want_info: bool = True,
) -> tuple[np.ndarray | None, AudioInfo | None]:
    _check_range(func, offset_s, duration_s)
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"The 'sr' parameter of {func} must be a positive int (Hz). Got {sr!r} instead.")
    p = Path(path)
    data, src_sr, scratch, info = _decode(
        p, _check_exists(p), offset_s, duration_s, max_duration_s=max_duration_s, want_info=want_info
    )
    if data is None:
        return None, info
    if data.shape[1] < 1:
        raise AudioError(p, "no channels", sample_rate_hz=src_sr)
    if data.shape[0] == 0:
        raise AudioError(p, "empty", "no samples decoded", sample_rate_hz=src_sr)
    if not scratch and not np.isfinite(data).all():  # (scratch holds 16-bit integers: finite)
        bad = int((~np.isfinite(data)).sum())
        raise AudioError(p, "non-finite samples", f"{bad} NaN or infinite samples", sample_rate_hz=src_sr)
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if src_sr != sr:
        mono = soxr.resample(mono, src_sr, sr, quality="HQ").astype(np.float32, copy=False)
    if scratch and np.shares_memory(mono, data):  # the scratch buffer is reused by the next read
        return mono.copy(), info
    return np.ascontiguousarray(mono, dtype=np.float32), info


def fit_length(y: np.ndarray, *, min_samples: int, policy: Short = "tile") -> np.ndarray:
    """Bring a 1-D signal to at least ``min_samples`` samples.

    Parameters
    ----------
    y : np.ndarray, shape (n,)
    min_samples : int
    policy : {"tile", "pad", "none"}
        ``tile`` repeats the clip as the original SoundNet did; ``pad`` appends zeros; ``none``
        returns ``y`` unchanged.
    """
    check_option("policy", policy, Short, where="fit_length")
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
    short: Short = "none",
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
        (``"conv8"``: 209,374 samples, about 9.5 s). Default with a policy:
        :data:`soundnet.geometry.HEADS_TILE_SAMPLES` (20 s), because the heads' frames at the
        minimum length are degenerate (see :func:`soundnet.geometry.head_frame_ok`).

    Returns
    -------
    torch.Tensor, shape (1, 1, n_samples)

    Raises
    ------
    AudioError
        For a missing, empty, corrupt, non-audio, channel-less or non-finite file.
    """
    check_option("short", short, Short, where="load_audio")
    target = min_length if min_length is not None else HEADS_TILE_SAMPLES
    if isinstance(target, str):
        n = min_samples(target)
    elif isinstance(target, (int, np.integer)) and target >= 0:
        n = int(target)
    else:
        raise ParameterError(
            "The 'min_length' parameter of load_audio must be a layer name or an int >= 0 (samples). "
            f"Got {min_length!r} instead."
        )
    y = read_audio(path, offset_s=offset_s, duration_s=duration_s)
    if short != "none":
        y = fit_length(y, min_samples=n, policy=short)
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
    if not np.isfinite(block_s) or block_s <= 0:
        raise ParameterError(
            f"The 'block_s' parameter of iter_audio_blocks must be > 0 (seconds). Got {block_s!r} instead."
        )
    p = Path(path)
    f, _ = _open_soundfile(p, _check_exists(p))
    if f is None:  # formats libsndfile cannot stream: decode whole
        yield read_audio(p, sr=sr)
        return
    with f:
        src_sr = int(f.samplerate)
        stream = soxr.ResampleStream(src_sr, sr, 1, dtype="float32", quality="HQ") if src_sr != sr else None
        block = max(1, int(block_s * src_sr))
        got = 0
        while True:
            try:
                data = f.read(frames=block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(p, "corrupt", f"decoding failed after {got} frames: {exc}") from exc
            last = len(data) < block
            if last:
                _check_complete(p, got + len(data), int(f.frames), f.format)
            if len(data):
                if not np.isfinite(data).all():
                    raise AudioError(p, "non-finite samples", "NaN or infinite samples")
                got += len(data)
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            out = stream.resample_chunk(np.ascontiguousarray(mono), last=last) if stream else mono
            if len(out):
                yield np.ascontiguousarray(out, dtype=np.float32)
            if last:
                break
        if not got:
            raise AudioError(p, "empty", "no samples decoded")
