"""Soundscape synthesis: labelled one-shots placed at known times over a background.

:func:`synthesize_soundscapes` mixes clips of a labelled corpus (anything
:func:`~interp.corpus.corpora.load_corpus` reads) into scapes whose events are annotated to the
sample, the ground truth for temporal dissection (:mod:`interp.corpus.events`). This is a small
generator of our own with Scaper's output conventions, not Scaper itself: Scaper 1.6.5 pins
``sox==1.4.0`` (which needs the ``sox`` program) and needs ``soxbindings``, which has no wheel
for Python 3.11 and cannot be built without libsox's headers, to do time and pitch transforms
we do not use.

How a scape is made
-------------------
1. The background fills the whole scape at ``background_db`` dBFS RMS: pink (``"noise"``,
   ``"pink_noise"``) or white (``"white_noise"``) Gaussian noise, or clips of one class of the
   source concatenated in random order (5 ms fades at the joins) from a random point. The
   background is not annotated.
2. The number of events is drawn uniformly from ``events_per_scape`` (inclusive); each event
   draws a label uniformly from the foreground labels (classes balanced), then a clip uniformly
   from that label's clips, then an SNR uniformly from ``snr_db``.
3. Each clip is trimmed by :func:`trim_event`: leading and trailing samples below ``trim_db``
   relative to the clip's peak are dropped, and what is longer than ``max_event_s`` is cut (with
   a 10 ms fade-out, inside the annotated event).
4. The event is scaled so that its RMS (over its trimmed length) is ``snr_db`` above the
   background's RMS, and added at an onset drawn uniformly among the positions where it fits
   whole in the scape; an event longer than the scape starts at 0 and is cut at the end
   (``truncated``). With ``overlap=False`` the events are laid out one after another with random
   gaps (drawn events that do not fit together are dropped).
5. Where the mix would clip (peak above 0.99) the whole scape, background included, is scaled
   down, which keeps every SNR.

The annotation is exact to the sample: ``onset_s = onset_sample / sample_rate_hz`` and
``offset_s = (onset_sample + n_samples) / sample_rate_hz``, written with 6 decimals (1 µs, a
fiftieth of a sample at 22,050 Hz), so ``round(onset_s * sample_rate_hz)`` gives the sample back.
Scape ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: the same seed and source give
byte-identical files and the same table.

Output folder
-------------
``audio/scape_00000.wav``, ...
    Mono WAV, 24-bit PCM, at ``sample_rate_hz``.
``events.tsv``
    DCASE format, ``filename onset offset event_label`` with file names relative to the folder; a
    scape without events has one row with its file name alone (DESED's convention).
``manifest.csv``
    ``path,label,n_events,labels,event_s`` (:func:`~interp.corpus.events.events_corpus`, paths
    relative to the folder), so ``soundnet-interp record out_dir/manifest.csv`` records the scapes.
``soundscapes.json``
    The settings, the source and the clips that were skipped.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from interp.corpus.corpora import load_corpus, read_clip
from interp.corpus.events import EVENT_COLUMNS, events_corpus
from soundnet.errors import AudioError, ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ

__all__ = [
    "NOISE_BACKGROUNDS",
    "SoundscapeWarning",
    "trim_event",
    "synthesize_soundscapes",
]

#: Background names that mean synthetic noise (``"noise"`` is pink noise).
NOISE_BACKGROUNDS = ("noise", "pink_noise", "white_noise")

#: Peak above which a scape is scaled down as a whole.
_MAX_PEAK = 0.99
#: Fade-out of an event cut at ``max_event_s``, fade at the joins of a class background (seconds).
_CUT_FADE_S = 0.010
_JOIN_FADE_S = 0.005


class SoundscapeWarning(UserWarning):
    """A source clip was skipped (corrupt, silent) or drawn events were dropped."""


# --------------------------------------------------------------------------------------------
# events and backgrounds


def trim_event(
    y: np.ndarray,
    *,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    trim_db: float = -40.0,
    max_event_s: float | None = 2.0,
) -> tuple[np.ndarray, int]:
    """Trim a one-shot's leading and trailing silence and cut it to a maximum length.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform in [-1, 1].
    sample_rate_hz : int (in Hz)
    trim_db : float (in dB, <= 0)
        Samples whose magnitude is below ``peak * 10**(trim_db / 20)`` are silence: the event runs
        from the first to the last sample at or above that threshold.
    max_event_s : float (in seconds), optional
        Keep at most this much (from the trimmed start); a cut event gets a 10 ms linear
        fade-out. None: no limit.

    Returns
    -------
    event : np.ndarray, shape (n_event,), float64
        The trimmed (and possibly cut) event.
    start : int (in samples)
        Where ``event`` starts in ``y``.

    Raises
    ------
    AudioError
        ``y`` is silent (all zero), reason ``silent``.
    """
    x = np.asarray(y, dtype=np.float64).ravel()
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= 0.0 or not math.isfinite(peak):
        raise AudioError("<waveform>", "silent", "no sample above zero")
    loud = np.flatnonzero(np.abs(x) >= peak * 10.0 ** (trim_db / 20.0))
    start, stop = int(loud[0]), int(loud[-1]) + 1
    event = x[start:stop].copy()
    if max_event_s is not None:
        n_max = max(1, int(round(max_event_s * sample_rate_hz)))
        if len(event) > n_max:
            event = event[:n_max]
            n_fade = min(n_max, max(1, int(round(_CUT_FADE_S * sample_rate_hz))))
            event[-n_fade:] *= np.linspace(1.0, 0.0, n_fade + 1)[1:]
    return event, start


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS white or pink (1/f power) Gaussian noise, ``n`` samples."""
    white = rng.standard_normal(n)
    if kind == "white_noise" or n < 4:
        out = white
    else:
        spec = np.fft.rfft(white)
        f = np.fft.rfftfreq(n)
        spec[0] = 0.0
        spec[1:] /= np.sqrt(f[1:])
        out = np.fft.irfft(spec, n=n)
    return out / (_rms(out) or 1.0)


class _Pool:
    """The source clips by label, decoded lazily once; clips that fail are dropped with a warning."""

    def __init__(self, table: pd.DataFrame, *, sample_rate_hz: int, trim_db: float, max_event_s: float) -> None:
        self.sr = sample_rate_hz
        self.trim_db = trim_db
        self.max_event_s = max_event_s
        self.rows: dict[str, list[dict[str, Any]]] = {}
        for rec in table.to_dict("records"):
            self.rows.setdefault(str(rec["label"]), []).append(rec)
        self._events: dict[int, tuple[np.ndarray, int]] = {}
        self._waves: dict[int, np.ndarray] = {}
        self.skipped: list[dict[str, str]] = []

    def _skip(self, label: str, rec: dict[str, Any], exc: Exception) -> None:
        self.rows[label].remove(rec)
        why = f"{type(exc).__name__}: {exc}"
        self.skipped.append({"path": str(rec["path"]), "label": label, "reason": why})
        warnings.warn(
            f"Skipping the source clip {str(rec['path'])!r} ({label}): {why}", SoundscapeWarning, stacklevel=4
        )

    def draw_event(self, label: str, rng: np.random.Generator) -> tuple[dict[str, Any], np.ndarray, int] | None:
        """A random clip of ``label``, trimmed: (row, event, start in samples); None when none is usable."""
        while self.rows[label]:
            rec = self.rows[label][int(rng.integers(len(self.rows[label])))]
            key = id(rec)
            if key not in self._events:
                try:
                    y = read_clip(rec, sr=self.sr)
                    self._events[key] = trim_event(
                        y, sample_rate_hz=self.sr, trim_db=self.trim_db, max_event_s=self.max_event_s
                    )
                except (AudioError, OSError, ValueError, RuntimeError) as exc:
                    self._skip(label, rec, exc)
                    continue
            event, start = self._events[key]
            return rec, event, start
        return None

    def draw_wave(self, label: str, rng: np.random.Generator) -> np.ndarray | None:
        """A random whole clip of ``label`` (for backgrounds); None when none is usable."""
        while self.rows[label]:
            rec = self.rows[label][int(rng.integers(len(self.rows[label])))]
            key = id(rec)
            if key not in self._waves:
                try:
                    y = np.asarray(read_clip(rec, sr=self.sr), dtype=np.float64)
                    if not np.any(y):
                        raise AudioError(str(rec["path"]), "silent", "all samples are zero")
                except (AudioError, OSError, ValueError, RuntimeError) as exc:
                    self._skip(label, rec, exc)
                    continue
                self._waves[key] = y
            return self._waves[key]
        return None


def _class_background(pool: _Pool, label: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS background: clips of ``label`` joined with short fades, read from a random point."""
    n_fade = max(1, int(round(_JOIN_FADE_S * pool.sr)))
    pieces: list[np.ndarray] = []
    total = 0
    while total < 2 * n or not pieces:
        y = pool.draw_wave(label, rng)
        if y is None:
            raise ParameterError(
                f"The 'background' parameter of synthesize_soundscapes names the class {label!r}, "
                f"but none of its clips can be read. Got background={label!r} instead."
            )
        y = y.copy()
        k = min(n_fade, len(y) // 2)
        if k > 0:
            ramp = np.linspace(0.0, 1.0, k + 1)[1:]
            y[:k] *= ramp
            y[-k:] *= ramp[::-1]
        pieces.append(y)
        total += len(y)
    loop = np.concatenate(pieces)
    start = int(rng.integers(len(loop) - n + 1))
    out = loop[start : start + n]
    rms = _rms(out)
    return out / rms if rms > 0 else _noise("pink_noise", n, rng)


# --------------------------------------------------------------------------------------------
# parameters


def _range(value: Any, name: str, *, integer: bool, low: float) -> tuple[float, float]:
    """A number or a (low, high) pair as a checked (low, high) tuple."""
    kind = "integer" if integer else "number"
    pair = value if isinstance(value, (tuple, list)) else (value, value)
    ok = len(pair) == 2 and all(
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(float(v))
        and (not integer or float(v) == int(v))
        and float(v) >= low
        for v in pair
    )
    if not ok or float(pair[0]) > float(pair[1]):
        raise ParameterError(
            f"The {name!r} parameter of synthesize_soundscapes must be a {kind} >= {low:g} or a (low, high) pair "
            f"of them with low <= high. Got {value!r} instead."
        )
    return float(pair[0]), float(pair[1])


def _positive(value: Any, name: str) -> float:
    try:
        ok = not isinstance(value, bool) and math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ParameterError(
            f"The {name!r} parameter of synthesize_soundscapes must be a positive number. Got {value!r} instead."
        )
    return float(value)


def _source_table(source: Any) -> tuple[pd.DataFrame, str]:
    if isinstance(source, pd.DataFrame):
        if not {"path", "label"} <= set(source.columns):
            raise ParameterError(
                f"The 'source' parameter of synthesize_soundscapes must be a corpus table with path and label "
                f"columns. Got the columns {list(source.columns)} instead."
            )
        table = source
        spec = str(source.attrs.get("spec", "<table>"))
    elif isinstance(source, (str, os.PathLike)):
        table = load_corpus(source)
        spec = os.fspath(source)
    else:
        raise ParameterError(
            f"The 'source' parameter of synthesize_soundscapes must be a corpus spec, path or table. "
            f"Got {type(source).__name__} instead."
        )
    if "status" in table.columns:
        table = table[table["status"] == "ok"]
    table = table.copy()
    table["label"] = table["label"].fillna("").astype(str)
    return table[table["label"] != ""], spec


def _write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _place(lengths: list[int], n: int, overlap: bool, rng: np.random.Generator) -> list[int]:
    """Onsets (samples) for events of ``lengths`` (each <= n) in a scape of ``n`` samples."""
    if overlap:
        return [int(rng.integers(n - L + 1)) for L in lengths]
    free = n - sum(lengths)
    cuts = np.sort(rng.integers(free + 1, size=len(lengths)))
    order = rng.permutation(len(lengths))
    onsets = [0] * len(lengths)
    before = 0
    for cut, j in zip(cuts, order):
        onsets[int(j)] = int(cut) + before
        before += lengths[int(j)]
    return onsets


# --------------------------------------------------------------------------------------------
# the generator


def synthesize_soundscapes(
    source: str | os.PathLike | pd.DataFrame,
    out_dir: str | os.PathLike,
    *,
    n: int = 500,
    duration_s: float = 10.0,
    events_per_scape: int | tuple[int, int] = (3, 8),
    labels: Sequence[str] | None = None,
    snr_db: float | tuple[float, float] = (0.0, 20.0),
    background: str = "noise",
    background_db: float = -30.0,
    overlap: bool = True,
    max_event_s: float = 2.0,
    trim_db: float = -40.0,
    sample_rate_hz: int = SAMPLE_RATE_HZ,
    seed: int = 0,
) -> pd.DataFrame:
    """Write ``n`` annotated soundscapes mixed from the one-shots of a labelled corpus.

    Parameters
    ----------
    source : str, path or pandas.DataFrame
        The one-shots: anything :func:`~interp.corpus.corpora.load_corpus` reads (``"demo"``, a
        folder per class, a CSV manifest, ESC-50, ...) or a corpus table (``path``, ``label``,
        optional ``start_s``/``end_s``/``status``). Rows whose status is not ``ok`` or whose
        label is empty are not used; a clip that cannot be decoded, or is silent, is skipped
        with a :class:`SoundscapeWarning` naming it.
    out_dir : str or path
        Output folder (created; files of the same names are replaced).
    n : int
        Number of scapes.
    duration_s : float (in seconds)
        Length of each scape.
    events_per_scape : int or (int, int)
        Events per scape, drawn uniformly from ``[low, high]`` (inclusive).
    labels : sequence of str, optional
        The foreground classes (default: every label of the source but the background class).
    snr_db : float or (float, float) (in dB)
        Event RMS over background RMS, drawn uniformly from ``[low, high]`` per event.
    background : str
        ``"noise"`` or ``"pink_noise"`` (pink Gaussian noise), ``"white_noise"``, or a label of
        the source whose clips make the background (that class is then not a foreground class).
    background_db : float (in dBFS)
        RMS level of the background (before any anti-clipping scaling, which keeps the SNRs).
    overlap : bool
        When False, the events of a scape do not overlap.
    max_event_s : float (in seconds)
        One-shots longer than this (after trimming) are cut.
    trim_db : float (in dB relative to the clip's peak)
        Silence threshold of :func:`trim_event`.
    sample_rate_hz : int (in Hz)
        Rate of the scapes; the one-shots are resampled to it.
    seed : int
        Scape ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.

    Returns
    -------
    pandas.DataFrame
        The events: :data:`~interp.corpus.events.EVENT_COLUMNS` (``path`` the scape's resolved
        path, ``onset_s``/``offset_s`` in seconds from its start, ``source`` the written
        ``events.tsv`` and ``row`` the event's line in it), then ``scape`` (int), ``snr_db``
        (float, dB), ``gain`` (float: the factor the trimmed event was multiplied by in the written
        scape, anti-clipping scaling included), ``source_file`` (the one-shot's path), ``source_onset_s`` (float, seconds:
        where the placed event starts in that file) and ``truncated`` (bool). ``attrs`` hold
        ``out_dir``, ``events_tsv``, ``manifest`` and ``settings``.

    Raises
    ------
    ParameterError
        Bad parameters, unknown labels or background class, or no usable source clip.

    Examples
    --------
    >>> events = synthesize_soundscapes("demo", "scapes", n=20, labels=["kick_drum", "snare_drum"])
    >>> # then: soundnet-interp record scapes/manifest.csv
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ParameterError(
            f"The 'n' parameter of synthesize_soundscapes must be a positive integer. Got {n!r} instead."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParameterError(
            f"The 'seed' parameter of synthesize_soundscapes must be a non-negative integer. Got {seed!r} instead."
        )
    if isinstance(sample_rate_hz, bool) or not isinstance(sample_rate_hz, (int, np.integer)) or sample_rate_hz < 1000:
        raise ParameterError(
            f"The 'sample_rate_hz' parameter of synthesize_soundscapes must be an integer >= 1000 (Hz). "
            f"Got {sample_rate_hz!r} instead."
        )
    duration_s = _positive(duration_s, "duration_s")
    max_event_s = _positive(max_event_s, "max_event_s")
    n_lo, n_hi = (int(v) for v in _range(events_per_scape, "events_per_scape", integer=True, low=0))
    snr_lo, snr_hi = _range(snr_db, "snr_db", integer=False, low=-math.inf)
    for name, value in (("background_db", background_db), ("trim_db", trim_db)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (-200 < float(value) <= 0):
            raise ParameterError(
                f"The {name!r} parameter of synthesize_soundscapes must be a level in dB in (-200, 0]. "
                f"Got {value!r} instead."
            )
    if not isinstance(background, str) or not background:
        raise ParameterError(
            f"The 'background' parameter of synthesize_soundscapes must be one of {list(NOISE_BACKGROUNDS)} or a "
            f"label of the source. Got {background!r} instead."
        )

    table, spec = _source_table(source)
    available = sorted(table["label"].unique())
    bg_class = None if background in NOISE_BACKGROUNDS else background
    if bg_class is not None and bg_class not in available:
        raise ParameterError(
            f"The 'background' parameter of synthesize_soundscapes must be one of {list(NOISE_BACKGROUNDS)} or a "
            f"label of the source {available}. Got {background!r} instead."
        )
    if labels is None:
        fg = [lab for lab in available if lab != bg_class]
    else:
        if isinstance(labels, str) or not all(isinstance(lab, str) for lab in labels):
            raise ParameterError(
                f"The 'labels' parameter of synthesize_soundscapes must be a sequence of label names. "
                f"Got {labels!r} instead."
            )
        fg = list(dict.fromkeys(labels))
        bad = [lab for lab in fg if lab not in available or lab == bg_class]
        if bad:
            raise ParameterError(
                f"The 'labels' parameter of synthesize_soundscapes must name labels of the source {available} "
                f"other than the background. Got {bad} instead."
            )
    if not fg and n_hi > 0:
        raise ParameterError(
            f"The 'source' parameter of synthesize_soundscapes must hold clips of at least one foreground label. "
            f"Got the labels {available} (background {background!r}) instead."
        )
    used = table[table["label"].isin(fg + ([bg_class] if bg_class else []))]
    pool = _Pool(used, sample_rate_hz=int(sample_rate_hz), trim_db=float(trim_db), max_event_s=max_event_s)

    out = Path(os.path.expanduser(os.fspath(out_dir)))
    (out / "audio").mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    events_tsv = out / "events.tsv"
    sr = int(sample_rate_hz)
    n_samples = int(round(duration_s * sr))
    bg_rms = 10.0 ** (float(background_db) / 20.0)
    records: list[dict[str, Any]] = []
    tsv_lines = ["filename\tonset\toffset\tevent_label"]
    scape_files: list[str] = []
    dropped = 0

    for i in range(int(n)):
        rng = np.random.default_rng([int(seed), i])
        if bg_class is None:
            mix = _noise(background, n_samples, rng) * bg_rms
        else:
            mix = _class_background(pool, bg_class, n_samples, rng) * bg_rms
        k = int(rng.integers(n_lo, n_hi + 1))
        drawn = []
        for _ in range(k):
            while fg:
                lab = fg[int(rng.integers(len(fg)))]
                got = pool.draw_event(lab, rng)
                if got is not None:
                    drawn.append((lab, *got, float(rng.uniform(snr_lo, snr_hi))))
                    break
                warnings.warn(
                    f"No clip of the label {lab!r} can be used; it is left out of the soundscapes.",
                    SoundscapeWarning,
                    stacklevel=2,
                )
                fg.remove(lab)
            if not fg:
                raise ParameterError(
                    f"The 'source' parameter of synthesize_soundscapes must hold usable clips. "
                    f"Got none that can be read ({len(pool.skipped)} skipped) instead."
                )
        lengths = [min(len(ev), n_samples) for _, _, ev, _, _ in drawn]
        if not overlap:
            while sum(lengths) > n_samples:
                drawn.pop()
                lengths.pop()
                dropped += 1
        onsets = _place(lengths, n_samples, overlap, rng)
        gains = []
        for (_, _, ev, _, snr), on, length in zip(drawn, onsets, lengths):
            gains.append(bg_rms * 10.0 ** (snr / 20.0) / _rms(ev[:length]))
            mix[on : on + length] += gains[-1] * ev[:length]
        peak = float(np.max(np.abs(mix)))
        if peak > _MAX_PEAK:
            mix *= _MAX_PEAK / peak
            gains = [g * _MAX_PEAK / peak for g in gains]
        name = f"scape_{i:05d}.wav"
        wav = out / "audio" / name
        tmp = wav.with_name(name + ".tmp")
        sf.write(tmp, mix.astype(np.float32), sr, format="WAV", subtype="PCM_24")
        os.replace(tmp, wav)
        rel = f"audio/{name}"
        scape_files.append(str(wav))
        order = sorted(range(len(drawn)), key=lambda j: (onsets[j], j))
        if not order:
            tsv_lines.append(f"{rel}\t\t\t")
        for j in order:
            lab, rec, ev, start, snr = drawn[j]
            on, length = onsets[j], lengths[j]
            onset_s, offset_s = round(on / sr, 6), round((on + length) / sr, 6)
            tsv_lines.append(f"{rel}\t{onset_s:.6f}\t{offset_s:.6f}\t{lab}")
            rec_start = float(rec.get("start_s", 0.0) or 0.0)
            records.append(
                {
                    "path": str(wav),
                    "onset_s": onset_s,
                    "offset_s": offset_s,
                    "label": lab,
                    "source": str(events_tsv),
                    "row": len(tsv_lines),
                    "scape": i,
                    "snr_db": snr,
                    "gain": gains[j],
                    "source_file": str(rec["path"]),
                    "source_onset_s": round((0.0 if math.isnan(rec_start) else rec_start) + start / sr, 6),
                    "truncated": length < len(ev),
                }
            )
    if dropped:
        warnings.warn(
            f"{dropped} drawn event(s) did not fit without overlap in their {duration_s:g} s scapes and were dropped.",
            SoundscapeWarning,
            stacklevel=2,
        )

    columns = [*EVENT_COLUMNS, "scape", "snr_db", "gain", "source_file", "source_onset_s", "truncated"]
    events = pd.DataFrame(records, columns=columns)
    events = events.astype(
        {
            "onset_s": "float64",
            "offset_s": "float64",
            "row": "int64",
            "scape": "int64",
            "snr_db": "float64",
            "gain": "float64",
        }
    )
    events["source_onset_s"] = events["source_onset_s"].astype("float64")
    events["truncated"] = events["truncated"].astype(bool)
    _write_atomic_text(events_tsv, "\n".join(tsv_lines) + "\n")

    manifest = events_corpus(events[list(EVENT_COLUMNS)])
    manifest = manifest.set_index("path").reindex(scape_files).reset_index()
    manifest["label"] = manifest["label"].fillna("")
    manifest["labels"] = manifest["labels"].fillna("")
    manifest["n_events"] = manifest["n_events"].fillna(0).astype("int64")
    manifest["event_s"] = manifest["event_s"].fillna(0.0).astype("float64")
    manifest["path"] = [f"audio/{Path(p).name}" for p in manifest["path"]]
    _write_atomic_text(out / "manifest.csv", manifest.to_csv(index=False, lineterminator="\n"))

    settings = {
        "generator": "interp.corpus.soundscapes.synthesize_soundscapes",
        "source": spec,
        "n": int(n),
        "duration_s": duration_s,
        "events_per_scape": [n_lo, n_hi],
        "labels": fg,
        "snr_db": [snr_lo, snr_hi],
        "background": background,
        "background_db": float(background_db),
        "overlap": bool(overlap),
        "max_event_s": max_event_s,
        "trim_db": float(trim_db),
        "sample_rate_hz": sr,
        "seed": int(seed),
        "skipped_clips": pool.skipped,
        "dropped_events": dropped,
    }
    _write_atomic_text(out / "soundscapes.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")
    events.attrs.update(
        {
            "out_dir": str(out),
            "events_tsv": str(events_tsv),
            "manifest": str(out / "manifest.csv"),
            "settings": settings,
        }
    )
    return events
