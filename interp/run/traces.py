"""Time-resolved views of one clip of a run: unit activation traces and mel spectrograms.

A run directory keeps per-clip summaries only (``mean``, ``max``, ``peak_s``); the activation of a
unit *over time* on one clip is recomputed here by one forward pass of that clip, prepared
exactly as the recorder prepared it (the run's ``short`` / ``min_length`` policy for the conv
layers, ``heads_short`` for the heads), and cached in ``<run>/cache/traces``. Mel spectrograms
are cached in ``<run>/cache/spectrograms``. Cache files are written atomically and carry a key
(format, weights SHA-256, clip row, settings, window): a stale file is recomputed, never trusted.

Clips longer than a few minutes are viewed through a window (``window_s``): the excerpt is
decoded with a context margin aligned to the deepest layer's hop, so the frames inside the window
equal those of a forward pass over the whole clip.

Examples
--------
>>> run = open_run("runs/demo")                                    # doctest: +SKIP
>>> times_s, acts = unit_traces(run, "c0ed5e04b1c25", "conv5")     # doctest: +SKIP
>>> acts.shape                                                     # doctest: +SKIP
(256, 42)
>>> spec = clip_spectrogram(run, "c0ed5e04b1c25")                  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import librosa
import numpy as np
import torch

from interp.corpus.corpora import read_clip
from interp.run.store import Run, atomic_write_bytes
from soundnet.audio import fit_length, to_model_input
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time, layer_geometry, min_samples
from soundnet.model import HEAD_LAYERS, FeatureExtractor, load_soundnet
from soundnet.options import Short

__all__ = [
    "CACHE_FORMAT",
    "Spectrogram",
    "clip_row",
    "clip_audio",
    "clip_traces",
    "unit_traces",
    "clip_spectrogram",
]

#: Version of the cache files written here (part of every cache key).
CACHE_FORMAT = 1
#: Excerpts longer than this must be viewed through a window.
MAX_FULL_S = 600.0


@dataclass(frozen=True)
class Spectrogram:
    """A mel spectrogram of one clip (or window of it).

    Attributes
    ----------
    db : np.ndarray, shape (n_mels, n_frames), float32
        Mel power in dB relative to the loudest bin (0 dB), floored at ``-top_db``.
    times_s : np.ndarray, shape (n_frames,), float32
        Centre of each column, seconds from the clip start.
    freqs_hz : np.ndarray, shape (n_mels,), float32
        Centre frequency of each mel band.
    hop_samples : int
        Column hop at 22050 Hz.
    """

    db: np.ndarray
    times_s: np.ndarray
    freqs_hz: np.ndarray
    hop_samples: int

    @property
    def duration_s(self) -> float:
        """Time of the last column, in seconds."""
        return float(self.times_s[-1]) if len(self.times_s) else 0.0


# --------------------------------------------------------------------------------------------
# rows and audio
# --------------------------------------------------------------------------------------------
def clip_row(run: Run, clip_id: str) -> dict[str, Any]:
    """The clip table row of an ``ok`` clip, as a dict.

    Raises
    ------
    KeyError
        ``clip_id`` is not an ``ok`` clip of the run.
    """
    ok = run.ok_clips
    if not isinstance(clip_id, str) or clip_id not in ok.index:
        raise KeyError(clip_id)
    return ok.loc[clip_id].to_dict()


def _check_window(window_s: tuple[float, float] | None, func: str) -> tuple[float, float] | None:
    if window_s is None:
        return None
    try:
        a, b = (float(window_s[0]), float(window_s[1]))
    except (TypeError, ValueError, IndexError):
        raise ParameterError(
            f"The 'window_s' parameter of {func} must be (start_s, end_s). Got {window_s!r} instead."
        ) from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= a:
        raise ParameterError(
            f"The 'window_s' parameter of {func} must satisfy 0 <= start_s < end_s. Got {window_s!r} instead."
        )
    return a, b


def _excerpt_row(row: dict[str, Any], a_s: float, b_s: float | None) -> dict[str, Any]:
    """A copy of ``row`` whose excerpt is ``[a_s, b_s)`` of the clip (clip time, seconds)."""
    start = float(row.get("start_s") or 0.0)
    if not math.isfinite(start):
        start = 0.0
    end = row.get("end_s")
    end = float(end) if end is not None and math.isfinite(float(end)) else math.nan
    new = dict(row)
    new["start_s"] = start + a_s
    if b_s is None:
        new["end_s"] = end
    else:
        new["end_s"] = start + b_s if math.isnan(end) else min(end, start + b_s)
    return new


def clip_audio(run: Run, clip_id: str, *, window_s: tuple[float, float] | None = None) -> np.ndarray:
    """The clip's waveform as the recorder decoded it: mono float32 in [-1, 1] at 22050 Hz.

    Parameters
    ----------
    run : Run
    clip_id : str
        An ``ok`` clip of the run.
    window_s : (float, float) (in seconds), optional
        Only this part of the clip.

    Returns
    -------
    np.ndarray, shape (n_samples,), float32
    """

    win = _check_window(window_s, "clip_audio")
    row = clip_row(run, clip_id)
    if win is not None:
        row = _excerpt_row(row, win[0], win[1])
    return read_clip(row)


# --------------------------------------------------------------------------------------------
# cache helpers
# --------------------------------------------------------------------------------------------
def _key(run: Run, clip_id: str, kind: str, **extra: Any) -> str:
    row = clip_row(run, clip_id)
    settings = run.meta.get("settings", {})
    payload = {
        "format": CACHE_FORMAT,
        "kind": kind,
        "weights_sha256": run.meta.get("weights_sha256"),
        "clip_id": clip_id,
        "path": str(row.get("path")),
        "start_s": _jsonable(row.get("start_s")),
        "end_s": _jsonable(row.get("end_s")),
        "short": settings.get("short"),
        "min_length": settings.get("min_length"),
        "heads_short": settings.get("heads_short"),
        **{k: _jsonable(v) for k, v in extra.items()},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else round(float(v), 6)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v


def _cache_file(run: Run, sub: str, clip_id: str, key: str) -> Path:
    # file names come from the run's own clip ids (validated by clip_row) and a hex digest
    return run.cache_dir / sub / f"{clip_id}.{key[:16]}.npz"


def _load_npz(path: Path, key: str, names: list[str] | None = None) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` (default all) that a cache file holds; None if it is missing, stale or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            wanted = [k for k in z.files if k != "key"] if names is None else [k for k in names if k in z.files]
            return {k: z[k] for k in wanted}
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _save_npz(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), **arrays)  # type: ignore[arg-type]  # numpy stubs: **arrays
    atomic_write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------------------------
# traces
# --------------------------------------------------------------------------------------------
def _run_settings(run: Run) -> tuple[Short, int, Short]:
    s = run.meta.get("settings", {})
    short = cast(Short, str(s.get("short", "none")))
    ml = s.get("min_length", "conv7")
    need = 0 if short == "none" else (min_samples(ml) if isinstance(ml, str) else int(ml))
    return short, need, cast(Short, str(s.get("heads_short", "tile")))


def _forward_layers(model: FeatureExtractor, wave: np.ndarray, layers: list[str]) -> dict[str, np.ndarray]:
    if not layers:
        return {}
    with torch.inference_mode():
        feats = model.extract_features(to_model_input(wave), layers=tuple(layers))
    return {name: feats[name][0].float().cpu().numpy() for name in layers}


def clip_traces(
    run: Run,
    clip_id: str,
    *,
    layers: list[str] | tuple[str, ...] | None = None,
    window_s: tuple[float, float] | None = None,
    model: FeatureExtractor | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every unit's activation over time on one clip, for several layers (one forward pass).

    Parameters
    ----------
    run : Run
    clip_id : str
        An ``ok`` clip of the run.
    layers : sequence of str, optional
        Default: all the run's layers.
    window_s : (float, float) (in seconds), optional
        Only frames whose centre lies in this part of the clip (required for excerpts longer
        than 600 s).
    model : SoundNet8, optional
        A loaded model (default: :func:`soundnet.load_soundnet`, loaded once per call).

    Returns
    -------
    dict of str to (np.ndarray, np.ndarray)
        ``{layer: (times_s, acts)}``; ``times_s`` (n_frames,) float32 are receptive-field centres
        in seconds from the clip start, ``acts`` (n_units, n_frames) float32. Conv layers see the
        clip prepared by the run's ``short`` policy; the heads of a clip shorter than 209,374
        samples see it prepared by ``heads_short`` (their times then refer to the tiled input).
    """
    layers = list(run.layers if layers is None else layers)
    for layer in layers:
        run.n_units(layer)  # validates the layer name
    win = _check_window(window_s, "clip_traces")
    key = _key(run, clip_id, "traces", window=list(win) if win else None)
    path = _cache_file(run, "traces", clip_id, key)
    names = [f"{layer}.{part}" for layer in layers for part in ("times_s", "acts")]
    cached = _load_npz(path, key, names) if path.is_file() else None
    if cached is not None and len(cached) == len(names):
        return {layer: (cached[f"{layer}.times_s"], cached[f"{layer}.acts"]) for layer in layers}

    # one pass computes every recorded conv layer (and the heads when the clip is long enough);
    # the heads of a short clip need a second, tiled pass, done only when a head is asked for
    arrays: dict[str, np.ndarray] = (_load_npz(path, key) or {}) if path.is_file() else {}
    conv = [layer for layer in run.layers if layer not in HEAD_LAYERS]
    heads = [layer for layer in run.layers if layer in HEAD_LAYERS]
    need_conv = any(f"{layer}.acts" not in arrays for layer in layers if layer not in HEAD_LAYERS)
    need_heads = any(f"{layer}.acts" not in arrays for layer in layers if layer in HEAD_LAYERS)
    short, need, heads_short = _run_settings(run)
    row = clip_row(run, clip_id)
    offset_s = 0.0
    if win is None:
        dur = float(row.get("duration_s") or 0.0)
        if dur > MAX_FULL_S:
            raise ParameterError(
                f"Clip {clip_id} lasts {dur:.0f} s; pass window_s to view at most "
                f"{MAX_FULL_S:.0f} s of it. Got window_s=None instead."
            )
        audio = clip_audio(run, clip_id)
    else:
        hop = layer_geometry("conv8").hop_samples
        margin = layer_geometry("conv8").receptive_field_samples
        a = max(0, int(win[0] * SAMPLE_RATE_HZ) - margin) // hop * hop
        b = int(math.ceil(win[1] * SAMPLE_RATE_HZ)) + margin
        offset_s = a / SAMPLE_RATE_HZ
        audio = clip_audio(run, clip_id, window_s=(offset_s, b / SAMPLE_RATE_HZ))
    if model is None:
        model = load_soundnet()
    out: dict[str, np.ndarray] = {}
    wave = fit_length(audio, min_samples=need, policy=short) if short != "none" else audio
    long_enough = len(wave) >= min_samples("conv8")
    if need_conv or (need_heads and long_enough):
        out = _forward_layers(model, wave, conv + (heads if long_enough else []))
    if need_heads and not long_enough:
        hw = fit_length(audio, min_samples=min_samples("conv8"), policy=heads_short) if heads_short != "none" else audio
        out.update(_forward_layers(model, hw, heads))
    for layer, acts in out.items():
        t = np.asarray(frames_to_time(np.arange(acts.shape[1]), layer), dtype=np.float64) + offset_s
        if win is not None:
            keep = (t >= win[0]) & (t <= win[1])
            t, acts = t[keep], acts[:, keep]
        arrays[f"{layer}.times_s"] = t.astype(np.float32)
        arrays[f"{layer}.acts"] = np.ascontiguousarray(acts, dtype=np.float32)
    _save_npz(path, key, arrays)
    return {layer: (arrays[f"{layer}.times_s"], arrays[f"{layer}.acts"]) for layer in layers}


def unit_traces(
    run: Run,
    clip_id: str,
    layer: str,
    *,
    window_s: tuple[float, float] | None = None,
    model: FeatureExtractor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The activation over time of every unit of ``layer`` on one clip (cached).

    Parameters
    ----------
    run : Run
    clip_id : str
        An ``ok`` clip of the run.
    layer : str
    window_s : (float, float) (in seconds), optional
        See :func:`clip_traces`.
    model : SoundNet8, optional

    Returns
    -------
    times_s : np.ndarray, shape (n_frames,), float32
        Receptive-field centres, seconds from the clip start.
    acts : np.ndarray, shape (n_units, n_frames), float32
    """
    return clip_traces(run, clip_id, layers=[layer], window_s=window_s, model=model)[layer]


# --------------------------------------------------------------------------------------------
# spectrograms
# --------------------------------------------------------------------------------------------
def clip_spectrogram(
    run: Run,
    clip_id: str,
    *,
    window_s: tuple[float, float] | None = None,
    n_mels: int = 80,
    max_columns: int = 600,
    n_fft: int = 1024,
    top_db: float = 80.0,
) -> Spectrogram:
    """The mel spectrogram (dB) of one clip, cached in ``<run>/cache/spectrograms``.

    Parameters
    ----------
    run : Run
    clip_id : str
        An ``ok`` clip of the run.
    window_s : (float, float) (in seconds), optional
        Only this part of the clip (times stay in clip time).
    n_mels : int
        Mel bands (librosa's Slaney mel scale, 0 Hz to 11025 Hz).
    max_columns : int
        The hop grows with the clip (in steps of 64 samples, at least 256) so that there are at
        most about this many columns.
    n_fft : int
        FFT size in samples at 22050 Hz.
    top_db : float (in dB)
        Dynamic range below the loudest bin.

    Returns
    -------
    Spectrogram
    """
    if n_mels < 1 or max_columns < 1 or n_fft < 16 or top_db <= 0:
        raise ParameterError(
            f"clip_spectrogram needs n_mels >= 1, max_columns >= 1, n_fft >= 16 and top_db > 0. "
            f"Got n_mels={n_mels}, max_columns={max_columns}, n_fft={n_fft}, top_db={top_db} instead."
        )
    win = _check_window(window_s, "clip_spectrogram")
    params = dict(window=list(win) if win else None, n_mels=n_mels, max_columns=max_columns, n_fft=n_fft, top_db=top_db)
    key = _key(run, clip_id, "spectrogram", **params)
    path = _cache_file(run, "spectrograms", clip_id, key)
    cached = _load_npz(path, key) if path.is_file() else None
    if cached is not None:
        return Spectrogram(cached["db"], cached["times_s"], cached["freqs_hz"], int(cached["hop_samples"]))
    if win is None:
        dur = float(clip_row(run, clip_id).get("duration_s") or 0.0)
        if dur > MAX_FULL_S:
            raise ParameterError(
                f"Clip {clip_id} lasts {dur:.0f} s; pass window_s to view at most "
                f"{MAX_FULL_S:.0f} s of it. Got window_s=None instead."
            )
    y = clip_audio(run, clip_id, window_s=win)
    offset_s = win[0] if win else 0.0
    hop = max(256, int(math.ceil(len(y) / max_columns / 64.0)) * 64)
    if len(y) < n_fft:
        y = np.pad(y, (0, n_fft - len(y)))
    s = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE_HZ, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=0.0, fmax=SAMPLE_RATE_HZ / 2, power=2.0
    )
    ref = float(s.max()) if s.size and s.max() > 0 else 1.0
    db = librosa.power_to_db(s, ref=ref, top_db=top_db).astype(np.float32)
    times = (librosa.frames_to_time(np.arange(db.shape[1]), sr=SAMPLE_RATE_HZ, hop_length=hop) + offset_s).astype(
        np.float32
    )
    freqs = librosa.mel_frequencies(n_mels=n_mels, fmin=0.0, fmax=SAMPLE_RATE_HZ / 2).astype(np.float32)
    _save_npz(path, key, {"db": db, "times_s": times, "freqs_hz": freqs, "hop_samples": np.array(hop)})
    return Spectrogram(db, times, freqs, hop)
