"""Decoding one corpus row into the audio the model reads, or the status that says why not.

Holds :class:`Decoded` (a decoded clip, or its failure), :func:`decode_row` (22050 Hz mono
audio of one row; long excerpts are left to the chunked pass), :func:`decode_row_safe` (the
same, never raising), :func:`failed` (a failure record), :func:`audio_status` (the status of
an :class:`soundnet.errors.AudioError`) and :func:`float_or`. The lanes run these in threads;
:mod:`interp.recording.workers` runs them in worker processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from interp.corpus.corpora import read_clip
from soundnet.audio import audio_info, read_excerpt
from soundnet.errors import AudioError
from soundnet.geometry import SAMPLE_RATE_HZ

__all__ = ["Decoded", "audio_status", "decode_row", "decode_row_safe", "failed", "float_or"]


@dataclass
class Decoded:
    """One corpus row, decoded: its audio (``None`` when it failed, or when ``long``: then the
    file is streamed in chunks), its ``status`` (``"ok"`` or why not) and what the clip table
    records of it (``note``, ``duration_s``, the source's ``sample_rate_hz``)."""

    order: int
    clip_id: str
    audio: np.ndarray | None
    status: str
    note: str
    duration_s: float
    sample_rate_hz: int
    long: bool = False


def failed(row: dict, status: str, *, sample_rate_hz: int = -1, duration_s: float = float("nan")) -> Decoded:
    """The record of a row that gives no audio, with its ``status``."""
    return Decoded(int(row["order"]), str(row["clip_id"]), None, status, "", duration_s, sample_rate_hz)


def decode_row(row: dict, long_s: float) -> Decoded:
    """Decode one corpus row into 22050 Hz mono audio, or a status saying why not.

    Parameters
    ----------
    row : dict
        A corpus-table row (``order``, ``clip_id``, ``path``, ``start_s``, ``end_s``, ``status``).
    long_s : float (in seconds)
        Excerpts longer than this are not decoded here: the result has ``long=True`` and no
        audio, and :meth:`interp.recording.engine.BatchEngine.summarize_long` streams the file.

    Returns
    -------
    Decoded
        ``audio`` (n_samples,) float32 in [-1, 1] when ``status == "ok"`` and not ``long``;
        ``note`` says what was done to the file (channels mixed, resampled, streamed).
    """
    status = str(row.get("status", "ok") or "ok")
    if status != "ok":
        return failed(row, status)
    order, cid = int(row["order"]), str(row["clip_id"])
    path = str(row["path"])
    note = ""
    sr_src = SAMPLE_RATE_HZ
    audio: np.ndarray | None
    try:
        if path.startswith("probes://"):
            audio = read_clip(row)  # synthesized
        else:
            start = float_or(row.get("start_s"), 0.0)
            end = float_or(row.get("end_s"), float("nan"))
            duration = end - start if np.isfinite(end) else None
            audio, info = read_excerpt(
                path, offset_s=start, duration_s=duration, max_duration_s=long_s
            )  # the file is opened once
            sr_src, note = info.sample_rate_hz, info.note()
            if audio is None:  # longer than long_s: streamed by BatchEngine.summarize_long
                return Decoded(
                    order,
                    cid,
                    None,
                    "ok",
                    "; ".join(filter(None, [note, "streamed in chunks"])),
                    info.excerpt_s(start, duration),
                    sr_src,
                    long=True,
                )
    except AudioError as exc:  # the source's rate when its header was read (-1: unreadable)
        return failed(row, audio_status(exc), sample_rate_hz=exc.sample_rate_hz or _header_rate(path))
    except Exception as exc:  # any other decoder failure is still a per-clip status
        return failed(row, f"error: {type(exc).__name__}: {exc}", sample_rate_hz=_header_rate(path))
    if audio.size == 0:
        return failed(row, "empty: no samples decoded", sample_rate_hz=sr_src, duration_s=0.0)
    if not (np.any(audio[:4096]) or np.any(audio)) and str(row.get("kind", "")) != "silence":  # (early out)
        return failed(
            row, "silent: all samples are zero", sample_rate_hz=sr_src, duration_s=len(audio) / SAMPLE_RATE_HZ
        )
    return Decoded(order, cid, audio, "ok", note, len(audio) / SAMPLE_RATE_HZ, sr_src)


def decode_row_safe(row: dict, long_s: float) -> Decoded:
    """:func:`decode_row`, turning even an unexpected exception into the clip's status."""
    try:
        return decode_row(row, long_s)
    except Exception as exc:  # decode_row catches decoder errors; this is a last resort
        return failed(row, f"error: {type(exc).__name__}: {exc}")


def _header_rate(path: str) -> int:
    """The sampling rate a clip's source declares, for the status row of a clip that failed
    (22050 for synthesized probes; -1 when the file's header cannot be read)."""
    if path.startswith("probes://"):
        return SAMPLE_RATE_HZ
    try:
        return audio_info(path).sample_rate_hz
    except Exception:
        return -1


def float_or(x: Any, default: float) -> float:
    """``x`` as a float, or ``default`` when it is missing, NaN or not a number."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return default
    return default if np.isnan(v) else v


def audio_status(exc: AudioError) -> str:
    """A clip's status for a decoding error: ``"<reason>: <detail>"``."""
    return f"{exc.reason}: {exc.detail or exc.reason}"
