"""Synthetic probe stimuli: tones, band noise, AM noise, chirps, click trains, harmonic complexes.

The probe corpus is a table of parameters, not of files: every row has a *virtual* path
``probes://<name>`` and is rendered on demand by :func:`synthesize`, deterministically (the noise
generator is seeded from the row's name, so the same row always gives the same samples).
:func:`probe_table` builds the rows; ``interp.corpus.corpora.load_corpus("probes", ...)`` turns them into
a corpus table.

Level convention
----------------
``level_db`` is the **peak** level in dBFS: the rendered signal is scaled so that
``max(abs(x)) == 10 ** (level_db / 20)`` exactly. The signal therefore always lies in [-1, 1]
for ``level_db <= 0``. (For a pure tone the RMS level is ``level_db - 3.01`` dB; for noise it is
lower by the noise's crest factor.) Silence has ``level_db = -inf``.

Kinds and their parameter columns (NaN where a column does not apply)
---------------------------------------------------------------------
``tone``         ``freq_hz``: a sine.
``noise_band``   ``f_lo_hz``, ``f_hi_hz`` (``freq_hz`` = centre): Gaussian noise, brick-wall
                 band-limited in the frequency domain to one octave.
``am_noise``     ``rate_hz``, ``depth``: broadband white Gaussian noise times the raised-cosine
                 envelope ``1 - depth (1 + cos(2 pi rate t)) / 2`` (depth 1: 100 %, the default;
                 depth 0: *unmodulated* noise, ``rate_hz`` NaN, the null of rate following and
                 the noise baseline of responsiveness).
``click_train``  ``rate_hz``: single-sample positive impulses every ``1 / rate_hz`` s, the first
                 at half a period.
``chirp``        ``f_lo_hz``, ``f_hi_hz``, ``direction`` ('up' / 'down'), ``onset_s``, ``sweep_s``:
                 a logarithmic sweep of ``sweep_s`` seconds starting at ``onset_s``, silence
                 around it (default: the whole clip). The falling chirp is the rising one played
                 backwards, at the same position: the two have the same magnitude spectrum and
                 the same distances from the clip's edges, so a difference between their
                 responses is a preference for the direction.
``harmonic``     ``f0_hz``, ``n_harmonics``: equal-amplitude harmonics 1..n (those below
                 Nyquist), Schroeder phases (low crest factor).
``silence``      all zeros.

Tones, band noise, chirps and harmonic complexes get 10 ms raised-cosine on/off ramps.

Seeds
-----
Random kinds (``am_noise``, ``noise_band``) come in ``n_seeds`` independent draws (column ``seed``,
0, 1, ...): the noise generator is seeded from the probe's name, which ends in ``_seed<k>`` for
``k > 0`` (seed 0 keeps the plain name, so its samples never change).

Duration
--------
The default 8 s lets every layer see the probe through frames whose receptive field lies wholly
inside it: conv7's field is 4.1 s and an 8 s probe gives it 3 such frames (conv6: 8, conv5: 20).
:func:`frequency_probes` and :func:`temporal_probes` assemble the tuning studies' sets.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.options import ProbeKind, check_option, choices

__all__ = [
    "KINDS",
    "VIRTUAL_SCHEME",
    "DEFAULT_OPTIONS",
    "PROBE_COLUMNS",
    "is_virtual",
    "probe_name",
    "probe_table",
    "frequency_probes",
    "temporal_probes",
    "synthesize",
]

#: Prefix of the virtual path of a synthetic clip.
VIRTUAL_SCHEME = "probes://"

#: The probe kinds, in table order.
KINDS: tuple[ProbeKind, ...] = choices(ProbeKind)

#: The parameter columns of every probe row; where one does not apply it holds NaN
#: (``n_harmonics``: -1, ``direction``: "", ``seed``: 0).
PROBE_COLUMNS = (
    "kind",
    "freq_hz",
    "level_db",
    "rate_hz",
    "f0_hz",
    "n_harmonics",
    "f_lo_hz",
    "f_hi_hz",
    "direction",
    "duration_s",
    "seed",
    "depth",
    "onset_s",
    "sweep_s",
)

#: Defaults of the options accepted by :func:`probe_table`.
DEFAULT_OPTIONS: dict[str, Any] = {
    "kinds": KINDS,
    "n_freqs": 48,  # tones: log-spaced frequencies ...
    "f_min_hz": 50.0,  # ... from f_min_hz ...
    "f_max_hz": 10_000.0,  # ... to f_max_hz (inclusive); also the chirps' range
    "levels_db": (-40.0, -20.0, -6.0),  # tones: peak levels, dBFS
    "level_db": -20.0,  # every other kind: peak level, dBFS
    "band_centers_hz": (62.5, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0),
    "rates_hz": (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 200.0),  # AM and click trains
    "f0s_hz": (100.0, 200.0, 400.0, 800.0),  # harmonic complexes
    "n_harmonics": 10,
    "duration_s": 8.0,
    "n_seeds": 1,  # draws of each random probe (am_noise, noise_band)
    "unmodulated": False,  # am_noise: also unmodulated noise (depth 0), one per seed
    "sweep_s": None,  # chirps: sweep length (None: the whole clip) ...
    "onsets_s": None,  # ... and where each starts (None: centred); every onset in both directions
}

#: Upper band edges are clipped to this fraction of the 22050 Hz model rate's Nyquist frequency.
_MAX_EDGE_HZ = 0.95 * SAMPLE_RATE_HZ / 2
_RAMP_S = 0.010


def is_virtual(path: Any) -> bool:
    """Whether ``path`` is a synthetic probe's virtual path (``probes://<name>``)."""
    return isinstance(path, str) and path.startswith(VIRTUAL_SCHEME)


def _fmt(x: float) -> str:
    return f"{x:g}" if float(x) == round(float(x), 6) else f"{x:.6g}"


def probe_name(params: Mapping[str, Any]) -> str:
    """The unique, readable name of a probe row, e.g. ``tone_1000hz_-20db_3s``.

    Parameters
    ----------
    params : mapping
        A row with the :data:`PROBE_COLUMNS`.
    """
    kind = check_option("kind", params["kind"], ProbeKind, where="a probe row")
    d = f"{_fmt(params['duration_s'])}s"
    lv = f"{_fmt(params['level_db'])}db"
    seed = int(_finite(params.get("seed")) or 0) if hasattr(params, "get") else 0
    d += f"_seed{seed}" if seed > 0 else ""
    if kind == "tone":
        return f"tone_{float(params['freq_hz']):.2f}hz_{lv}_{d}"
    if kind == "noise_band":
        return f"noise_band_{_fmt(params['f_lo_hz'])}-{_fmt(params['f_hi_hz'])}hz_{lv}_{d}"
    if kind == "am_noise" and _depth(params) == 0:
        return f"am_noise_unmodulated_{lv}_{d}"
    if kind in ("am_noise", "click_train"):
        return f"{kind}_{_fmt(params['rate_hz'])}hz_{lv}_{d}"
    if kind == "chirp":
        sweep = _finite(params.get("sweep_s") if hasattr(params, "get") else None)
        where = f"{_fmt(sweep)}s_at{_fmt(_finite(params.get('onset_s')) or 0.0)}s_" if sweep else ""
        return f"chirp_{params['direction']}_{_fmt(params['f_lo_hz'])}-{_fmt(params['f_hi_hz'])}hz_{where}{lv}_{d}"
    if kind == "harmonic":
        return f"harmonic_f0_{_fmt(params['f0_hz'])}hz_n{int(params['n_harmonics'])}_{lv}_{d}"
    return f"silence_{d}"  # (the kind checked above: silence is the one left)


def _finite(x: Any) -> float | None:
    """``float(x)`` when finite, else None."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _depth(params: Mapping[str, Any]) -> float:
    """AM depth of a probe row (1 where the row has none)."""
    v = _finite(params.get("depth")) if hasattr(params, "get") else None
    return 1.0 if v is None else v


def _floats(name: str, value: Any, *, positive: bool = True) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in (value if isinstance(value, Iterable) else [value]))
    except (TypeError, ValueError):
        vals = ()
    if not vals or not all(math.isfinite(v) and (v > 0 or not positive) for v in vals):
        what = "positive finite numbers" if positive else "finite numbers"
        raise ParameterError(
            f"The '{name}' parameter of probe_table must be a non-empty sequence of {what}. Got {value!r} instead."
        )
    return vals


def probe_table(**options: Any) -> pd.DataFrame:
    """The parameter table of the synthetic probe corpus.

    Other Parameters
    ----------------
    kinds : sequence of str
        Which of :data:`KINDS` to include (default all), in :data:`KINDS` order.
    n_freqs : int
        Number of tone frequencies, log-spaced from ``f_min_hz`` to ``f_max_hz`` (default 48).
    f_min_hz, f_max_hz : float (in Hz)
        Tone range (default 50 Hz to 10 kHz); also the chirps' sweep range.
    levels_db : sequence of float (peak dBFS)
        Tone levels (default -40, -20, -6).
    level_db : float (peak dBFS)
        Level of every other kind (default -20).
    band_centers_hz : sequence of float (in Hz)
        Octave-band noise centres; edges at ``centre * 2 ** (+-1/2)``, the upper edge clipped to
        0.95 x Nyquist of 22050 Hz (default 62.5 Hz ... 8 kHz).
    rates_hz : sequence of float (in Hz)
        AM rates and click rates (default 1, 2, 4, ..., 128, 200).
    f0s_hz : sequence of float (in Hz)
        Fundamentals of the harmonic complexes (default 100, 200, 400, 800).
    n_harmonics : int
        Harmonics per complex (default 10).
    duration_s : float (in seconds)
        Length of every probe (default 8.0: conv7 gets 3 frames wholly inside).
    n_seeds : int
        Independent draws of every random probe (``am_noise``, ``noise_band``; default 1).
    unmodulated : bool
        With ``am_noise``: also unmodulated white noise (``depth`` 0, ``rate_hz`` NaN), one row
        per seed (default False). ``rates_hz`` may then be empty.
    sweep_s : float (in seconds), optional
        Chirps: length of the sweep, silence around it (default: the whole clip).
    onsets_s : sequence of float (in seconds), optional
        Chirps with ``sweep_s``: start of the sweep; every onset gives a rising and a falling
        chirp at the same place (default: one, centred).

    Returns
    -------
    pandas.DataFrame
        One row per probe: ``name`` and the :data:`PROBE_COLUMNS`.

    Raises
    ------
    ParameterError
        An unknown option or an invalid value.
    """
    unknown = sorted(set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise ParameterError(f"The probe corpus accepts the options {sorted(DEFAULT_OPTIONS)}. Got {unknown} instead.")
    o = {**DEFAULT_OPTIONS, **options}
    kinds = [o["kinds"]] if isinstance(o["kinds"], str) else list(o["kinds"])
    if not kinds or any(k not in KINDS for k in kinds):
        raise ParameterError(
            f"The 'kinds' parameter of probe_table must be a non-empty subset of {KINDS}. Got {o['kinds']!r} instead."
        )
    if not isinstance(o["n_freqs"], (int, np.integer)) or o["n_freqs"] < 1:
        raise ParameterError(
            f"The 'n_freqs' parameter of probe_table must be an int >= 1. Got {o['n_freqs']!r} instead."
        )
    if not isinstance(o["n_harmonics"], (int, np.integer)) or o["n_harmonics"] < 1:
        raise ParameterError(
            f"The 'n_harmonics' parameter of probe_table must be an int >= 1. Got {o['n_harmonics']!r} instead."
        )
    (f_min,), (f_max,) = _floats("f_min_hz", o["f_min_hz"]), _floats("f_max_hz", o["f_max_hz"])
    if not f_min <= f_max <= _MAX_EDGE_HZ:
        raise ParameterError(
            f"The 'f_min_hz' and 'f_max_hz' parameters of probe_table must satisfy "
            f"0 < f_min_hz <= f_max_hz <= {_MAX_EDGE_HZ:g}. Got {f_min}, {f_max} instead."
        )
    (duration_s,) = _floats("duration_s", o["duration_s"])
    levels = _floats("levels_db", o["levels_db"], positive=False)
    (level,) = _floats("level_db", o["level_db"], positive=False)
    if max(levels + (level,)) > 0:
        raise ParameterError(
            f"The 'levels_db' and 'level_db' parameters of probe_table must be <= 0 dBFS "
            f"(peak). Got {levels}, {level} instead."
        )
    bands = _floats("band_centers_hz", o["band_centers_hz"])
    n_seeds = o["n_seeds"]
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ParameterError(f"The 'n_seeds' parameter of probe_table must be an int >= 1. Got {n_seeds!r} instead.")
    unmodulated = bool(o["unmodulated"])
    empty_rates = unmodulated and isinstance(o["rates_hz"], Iterable) and len(tuple(o["rates_hz"])) == 0
    rates = () if empty_rates else _floats("rates_hz", o["rates_hz"])
    sweep_s: float | None = None
    onsets: tuple[float, ...] = (math.nan,)
    if o["sweep_s"] is not None:
        (sweep_s,) = _floats("sweep_s", o["sweep_s"])
        if sweep_s > duration_s:
            raise ParameterError(
                f"The 'sweep_s' parameter of probe_table must be <= duration_s ({duration_s} s). Got {sweep_s} instead."
            )
        onsets = (
            ((duration_s - sweep_s) / 2,)
            if o["onsets_s"] is None
            else _floats("onsets_s", o["onsets_s"], positive=False)
        )
        if any(not 0 <= t <= duration_s - sweep_s + 1e-9 for t in onsets):
            raise ParameterError(
                f"The 'onsets_s' parameter of probe_table must place every {sweep_s} s sweep inside the "
                f"{duration_s} s clip (0 <= onset <= {duration_s - sweep_s:g}). Got {onsets} instead."
            )
    elif o["onsets_s"] is not None:
        raise ParameterError("The 'onsets_s' parameter of probe_table needs 'sweep_s'.")
    f0s = _floats("f0s_hz", o["f0s_hz"])

    nan = float("nan")
    blank = dict(
        freq_hz=nan,
        level_db=level,
        rate_hz=nan,
        f0_hz=nan,
        n_harmonics=-1,
        f_lo_hz=nan,
        f_hi_hz=nan,
        direction="",
        duration_s=duration_s,
        seed=0,
        depth=nan,
        onset_s=nan,
        sweep_s=nan,
    )
    seeds = range(int(n_seeds))
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        if kind == "tone":
            freqs = np.geomspace(f_min, f_max, int(o["n_freqs"]))
            rows += [
                {**blank, "kind": kind, "freq_hz": round(float(f), 4), "level_db": lv} for lv in levels for f in freqs
            ]
        elif kind == "noise_band":
            for c in bands:
                lo, hi = c / math.sqrt(2), min(c * math.sqrt(2), _MAX_EDGE_HZ)
                if lo >= hi:
                    raise ParameterError(
                        f"The 'band_centers_hz' parameter of probe_table must have bands "
                        f"below {_MAX_EDGE_HZ:g} Hz. Got {c} instead."
                    )
                rows += [
                    {**blank, "kind": kind, "freq_hz": c, "f_lo_hz": round(lo, 4), "f_hi_hz": round(hi, 4), "seed": k}
                    for k in seeds
                ]
        elif kind == "am_noise":
            rows += [{**blank, "kind": kind, "rate_hz": r, "depth": 1.0, "seed": k} for r in rates for k in seeds]
            if unmodulated:
                rows += [{**blank, "kind": kind, "depth": 0.0, "seed": k} for k in seeds]
        elif kind == "click_train":
            rows += [{**blank, "kind": kind, "rate_hz": r} for r in rates]
        elif kind == "chirp":
            sweep = {} if sweep_s is None else {"sweep_s": sweep_s}
            rows += [
                {
                    **blank,
                    "kind": kind,
                    "f_lo_hz": f_min,
                    "f_hi_hz": f_max,
                    "direction": dr,
                    **sweep,
                    **({} if sweep_s is None else {"onset_s": round(t, 6)}),
                }
                for t in onsets
                for dr in ("up", "down")
            ]
        elif kind == "harmonic":
            rows += [{**blank, "kind": kind, "f0_hz": f0, "n_harmonics": int(o["n_harmonics"])} for f0 in f0s]
        else:  # silence
            rows.append({**blank, "kind": kind, "level_db": -math.inf})
    table = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    table.insert(0, "name", [probe_name(r) for r in table.to_dict("records")])
    return table


def frequency_probes(
    *,
    n_freqs: int = 48,
    levels_db: Iterable[float] = (-60.0, -50.0, -40.0, -30.0, -20.0, -10.0, 0.0),
    n_seeds: int = 5,
    duration_s: float = 8.0,
    f_min_hz: float = 50.0,
    f_max_hz: float = 10_000.0,
) -> pd.DataFrame:
    """The frequency-tuning set: tones at every level, and the baselines to test them against.

    Parameters
    ----------
    n_freqs : int
        Log-spaced tone frequencies from ``f_min_hz`` to ``f_max_hz`` (in Hz).
    levels_db : sequence of float (peak dBFS)
        Tone levels: every frequency at every level (full response-versus-level curves).
    n_seeds : int
        Draws of unmodulated white noise at each tone level (the noise baseline and its spread).
    duration_s : float (in seconds)
        Length of every probe.
    f_min_hz, f_max_hz : float (in Hz)

    Returns
    -------
    pandas.DataFrame
        :func:`probe_table` rows: the tones, ``n_seeds`` unmodulated ``am_noise`` rows per level
        and one ``silence``.
    """
    levels = _floats("levels_db", levels_db, positive=False)
    parts = [
        probe_table(
            kinds=["tone", "silence"],
            n_freqs=n_freqs,
            levels_db=levels,
            duration_s=duration_s,
            f_min_hz=f_min_hz,
            f_max_hz=f_max_hz,
        )
    ]
    for lv in levels:
        parts.append(
            probe_table(
                kinds=["am_noise"], rates_hz=(), unmodulated=True, n_seeds=n_seeds, level_db=lv, duration_s=duration_s
            )
        )
    return pd.concat(parts, ignore_index=True)


def temporal_probes(
    *,
    rates_hz: Iterable[float] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 200.0),
    n_seeds: int = 5,
    level_db: float = -20.0,
    duration_s: float = 8.0,
    sweep_s: float = 2.0,
    onsets_s: Iterable[float] | None = None,
) -> pd.DataFrame:
    """The temporal-tuning set: AM noise (several seeds per rate, unmodulated controls), click
    trains, chirps at matched positions, silence.

    Parameters
    ----------
    rates_hz : sequence of float (in Hz)
        AM and click rates.
    n_seeds : int
        Draws of the AM noise at each rate and of the unmodulated noise.
    level_db : float (peak dBFS)
    duration_s : float (in seconds)
    sweep_s : float (in seconds)
        Length of each chirp, silence around it.
    onsets_s : sequence of float (in seconds), optional
        Where the chirps start; every onset has a rising and a falling chirp (default: 5 onsets
        spread evenly over the middle third of the free room, ``duration_s - sweep_s``).

    Returns
    -------
    pandas.DataFrame
        :func:`probe_table` rows.
    """
    (dur,), (sw,) = _floats("duration_s", duration_s), _floats("sweep_s", sweep_s)
    room = max(dur - sw, 0.0)
    onsets = tuple(np.round(np.linspace(room / 3, 2 * room / 3, 5), 4)) if onsets_s is None else tuple(onsets_s)
    common = dict(level_db=level_db, duration_s=duration_s)
    return pd.concat(
        [
            probe_table(kinds=["am_noise"], rates_hz=rates_hz, n_seeds=n_seeds, unmodulated=True, **common),
            probe_table(kinds=["click_train", "silence"], rates_hz=rates_hz, **common),
            probe_table(kinds=["chirp"], sweep_s=sweep_s, onsets_s=onsets, **common),
        ],
        ignore_index=True,
    )


def _seed(name: str) -> int:
    return int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest()[:8], "little")


def _ramp(x: np.ndarray, sr: int) -> np.ndarray:
    n = min(int(round(_RAMP_S * sr)), len(x) // 2)
    if n > 0:
        w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)
        x[:n] *= w
        x[len(x) - n :] *= w[::-1]
    return x


def _band_noise(rng: np.random.Generator, n: int, sr: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec[(f < lo) | (f > hi)] = 0.0
    return np.fft.irfft(spec, n)


def synthesize(row: Mapping[str, Any], *, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Render one probe row as a waveform.

    Parameters
    ----------
    row : mapping
        A probe row (a corpus-table row or a :func:`probe_table` row): ``path`` (or ``name``) and
        the :data:`PROBE_COLUMNS`.
    sr : int (in Hz)
        Sampling rate of the result.

    Returns
    -------
    np.ndarray, shape (round(duration_s * sr),), float32
        Values in [-1, 1]; the peak is exactly ``10 ** (level_db / 20)`` (0 for silence). The same
        row gives the same samples every time: random parts are seeded from the probe's name.

    Raises
    ------
    ParameterError
        Unknown kind or missing parameters.
    """
    if not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ParameterError(f"The 'sr' parameter of synthesize must be a positive int. Got {sr!r} instead.")
    path = row.get("path") if hasattr(row, "get") else None
    name = (
        path[len(VIRTUAL_SCHEME) :]
        if isinstance(path, str) and is_virtual(path)
        else row.get("name")
        if hasattr(row, "get")
        else None
    )
    try:
        kind = row["kind"]
        duration_s = float(row["duration_s"])
        level_db = float(row["level_db"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(
            f"The 'row' parameter of synthesize must have 'kind', 'duration_s' and "
            f"'level_db'. Got {dict(row)!r} instead."
        ) from exc
    check_option("kind", kind, ProbeKind, where="a probe row")
    if not name:
        name = probe_name(row)
    n = int(round(duration_s * sr))
    if n <= 0:
        raise ParameterError(f"The 'duration_s' of a probe row must be > 0. Got {duration_s} instead.")
    nyq = sr / 2
    t = np.arange(n) / sr
    rng = np.random.default_rng(_seed(name))
    if kind == "silence":
        return np.zeros(n, dtype=np.float32)
    if kind == "tone":
        x = _ramp(np.sin(2 * np.pi * float(row["freq_hz"]) * t), sr)
    elif kind == "noise_band":
        x = _ramp(_band_noise(rng, n, sr, float(row["f_lo_hz"]), min(float(row["f_hi_hz"]), nyq)), sr)
    elif kind == "am_noise":
        depth = _depth(row)
        if not 0 <= depth <= 1:
            raise ParameterError(f"The 'depth' of an am_noise probe must be in [0, 1]. Got {depth} instead.")
        rate = float(row["rate_hz"]) if depth > 0 else 0.0
        env = 1.0 - depth * (0.5 + 0.5 * np.cos(2 * np.pi * rate * t))
        x = rng.standard_normal(n) * env
    elif kind == "click_train":
        period = sr / float(row["rate_hz"])
        idx = np.unique(np.round(np.arange(period / 2, n, period)).astype(np.int64))
        x = np.zeros(n)
        x[idx[idx < n]] = 1.0
    elif kind == "chirp":
        lo, hi = float(row["f_lo_hz"]), min(float(row["f_hi_hz"]), nyq)
        sweep_s = _finite(row.get("sweep_s")) if hasattr(row, "get") else None
        onset = (_finite(row.get("onset_s")) if hasattr(row, "get") else None) or 0.0
        m = n if sweep_s is None else int(round(sweep_s * sr))
        i0 = 0 if sweep_s is None else int(round(onset * sr))
        if m <= 0 or i0 < 0 or i0 + m > n:
            raise ParameterError(
                f"A chirp's sweep must lie inside its clip. Got onset_s={onset}, sweep_s={sweep_s}, "
                f"duration_s={duration_s} instead."
            )
        span = m / sr
        k = math.log(hi / lo)
        ts = np.arange(m) / sr
        # rising: instantaneous frequency lo * exp(k t / T), phase its integral; falling: the rising one reversed
        phase = 2 * np.pi * lo * span / k * np.expm1(k * ts / span) if k else 2 * np.pi * lo * ts
        sweep = _ramp(np.sin(phase), sr)
        x = np.zeros(n)
        x[i0 : i0 + m] = sweep if row["direction"] == "up" else sweep[::-1]
    else:  # harmonic
        f0, nh = float(row["f0_hz"]), int(row["n_harmonics"])
        ks = np.arange(1, nh + 1)
        ks = ks[ks * f0 < nyq]
        x = np.zeros(n)
        for kk in ks:
            x += np.sin(2 * np.pi * kk * f0 * t + np.pi * kk * (kk - 1) / max(len(ks), 1))
        x = _ramp(x, sr)
    peak = float(np.max(np.abs(x)))
    if peak > 0:
        x = x * (10.0 ** (level_db / 20.0) / peak)
    return np.clip(x, -1.0, 1.0).astype(np.float32)
