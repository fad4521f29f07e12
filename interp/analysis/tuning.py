"""Tuning of SoundNet units to synthetic probes: frequency, level, modulation rate, sweep direction.

The tuning studies measure responses straight from the model on each probe's *valid* frames
(:mod:`interp.analysis.probe_responses`, whole receptive field inside the probe, probes of 8 s
so that conv7 has 3 such frames); :func:`stimulus_responses` reads the same kind of table from a
run directory recorded on the probe corpus (what the dashboard shows).

Response
--------
A unit's *response* to a stimulus is a per-probe summary of its activation over time: ``vmax``
(the largest activation over the valid frames) in the studies, ``max``/``vmean``/``mean`` from a
run. A peak is the right measure for tones: after conv1's ReLU and max-pool of 8 frames, the
*mean* over time grows with frequency at equal tone amplitude (the pool picks the crest of every
fast cycle), which biases best frequencies upwards (measured: conv1's tone BFs follow the
filters' peaks with Spearman rho 1.0 under the peak, 0.36 under the mean).

Tables (documented columns)
---------------------------
:func:`stimulus_responses` (the tuning curves; for tones :func:`tone_curves`)
    ``layer, unit, kind, freq_hz, level_db, rate_hz, direction, response, response_norm``.
:func:`best_frequencies`
    :data:`BEST_COLUMNS`: interpolated best frequency, half-maximum band, Q, and the
    responsiveness test against silence and noise baselines.
:func:`level_dependence`, :func:`level_curves`
    The whole level sweep per unit; the response-versus-level curve at each unit's BF.
:func:`kernel_peaks`
    ``layer, unit, kernel_peak_hz, kernel_peak_gain_db[, kernel_peak_grid_hz]``.
:func:`best_rates`
    ``layer, unit, kind, best_rate_hz, peak_response, floor_response, modulation_index,
    unmodulated_response, n_seeds``.
:func:`rate_following` (from :mod:`interp.analysis.probe_responses`)
    Vector strength per seed against unmodulated noise, with a test per unit.
:func:`direction_preference`
    ``layer, unit, response_up, response_down, dsi, prefers, n_positions, diff_sd, p_value,
    q_value``: rising against falling chirps at matched positions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
import torch
from scipy.stats import norm
from scipy.stats import t as t_dist

from interp.analysis.probe_responses import rate_following
from interp.analysis.stats import bh_qvalues
from interp.run.store import Run
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import CONV_LAYERS, SPEC_BY_NAME, SoundNet8
from soundnet.options import ClipStat, ProbeKind, check_option

__all__ = [
    "CURVE_COLUMNS",
    "stimulus_responses",
    "tone_curves",
    "BEST_COLUMNS",
    "responsive_threshold_z",
    "best_frequencies",
    "level_dependence",
    "level_curves",
    "kernel_frequency_responses",
    "kernel_gains",
    "kernel_peaks",
    "octave_span",
    "best_rates",
    "rate_following",
    "direction_preference",
]

#: Columns of a tuning-curve table (:func:`stimulus_responses`).
CURVE_COLUMNS = ("layer", "unit", "kind", "freq_hz", "level_db", "rate_hz", "direction", "response", "response_norm")

_PARAMS = ("kind", "freq_hz", "level_db", "rate_hz", "direction")


def _conv_layers(run: Run, layers: Sequence[str] | None) -> list[str]:
    recorded = [layer for layer in run.layers if layer in CONV_LAYERS]
    if layers is None:
        return recorded
    bad = [layer for layer in layers if layer not in recorded]
    if bad:
        raise ParameterError(
            f"The 'layers' parameter must name conv layers recorded in the run {recorded}. Got {bad} instead."
        )
    return list(layers)


def stimulus_responses(
    run: Run, *, kinds: Sequence[ProbeKind], layers: Sequence[str] | None = None, stat: ClipStat = "max"
) -> pd.DataFrame:
    """Tidy tuning curves: every unit's response to every probe of the given kinds.

    Parameters
    ----------
    run : Run
        A run recorded on a corpus with the probe columns (``kind`` and the kind's parameters).
    kinds : sequence of str
        Probe kinds to keep (``"tone"``, ``"am_noise"``, ``"click_train"``, ``"chirp"``, ...).
    layers : sequence of str, optional
        Conv layers (default: every recorded conv layer).
    stat : {"max", "mean"}
        Per-clip summary used as the response (see the module docstring).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CURVE_COLUMNS`, one row per (layer, unit, stimulus), sorted by layer, unit,
        kind and parameters. Parameters that do not apply are NaN (``direction``: "").

    Raises
    ------
    ParameterError
        The run has no probe columns or no clip of the kinds.
    """
    check_option("stat", stat, ClipStat, where="stimulus_responses")
    clips = run.ok_clips
    if "kind" not in clips.columns:
        raise ParameterError(
            f"The run {str(run.path)!r} has no probe columns (kind, freq_hz, ...): record the "
            "'probes' corpus, or a manifest with these columns."
        )
    sel = clips[clips["kind"].isin(list(kinds))].copy()
    if sel.empty:
        raise ParameterError(
            f"The run {str(run.path)!r} has no clip of the kinds {list(kinds)}; its kinds are "
            f"{sorted(clips['kind'].dropna().unique())}."
        )
    for col in _PARAMS:
        if col not in sel.columns:
            sel[col] = "" if col == "direction" else np.nan
    sel["direction"] = sel["direction"].fillna("").astype(str)
    params = sel[list(_PARAMS)].reset_index(drop=True)
    parts = []
    for layer in _conv_layers(run, layers):
        acts = run.activations(layer, stat).reindex(sel.index).to_numpy(dtype=np.float64)  # (n_stim, n_units)
        n_stim, n_units = acts.shape
        peak = np.nanmax(np.where(np.isfinite(acts), acts, -np.inf), axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = np.where(peak > 0, acts / np.where(peak > 0, peak, 1.0), 0.0)
        df = pd.concat([params] * n_units, ignore_index=True)
        df.insert(0, "unit", np.repeat(np.arange(n_units), n_stim).astype(np.int64))
        df.insert(0, "layer", layer)
        df["response"] = acts.T.ravel()
        df["response_norm"] = norm.T.ravel()
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    order = {layer: i for i, layer in enumerate(CONV_LAYERS)}
    out = (
        out.assign(_o=out["layer"].map(order))
        .sort_values(["_o", "unit", "kind", "level_db", "freq_hz", "rate_hz", "direction"], kind="stable")
        .drop(columns="_o")
    )
    return out[list(CURVE_COLUMNS)].reset_index(drop=True)


def tone_curves(run: Run, *, layers: Sequence[str] | None = None, stat: ClipStat = "max") -> pd.DataFrame:
    """Frequency tuning curves at every recorded level: :func:`stimulus_responses` of the tones."""
    return stimulus_responses(run, kinds=("tone",), layers=layers, stat=stat)


def _half_max_edges(freqs: np.ndarray, resp: np.ndarray, i_best: int, level: float) -> tuple[float, float, bool, bool]:
    """Frequencies where ``resp`` crosses ``level`` either side of ``i_best`` (log-interpolated).

    Returns ``(f_lo, f_hi, open_low, open_high)``; an edge that is not crossed inside the sweep is
    the sweep's end and flagged open.
    """
    logf = np.log2(freqs)
    lo, open_lo = freqs[0], True
    for i in range(i_best, 0, -1):
        if resp[i - 1] < level <= resp[i]:
            t = (level - resp[i - 1]) / (resp[i] - resp[i - 1])
            lo, open_lo = 2 ** (logf[i - 1] + t * (logf[i] - logf[i - 1])), False
            break
    hi, open_hi = freqs[-1], True
    for i in range(i_best, len(freqs) - 1):
        if resp[i + 1] < level <= resp[i]:
            t = (resp[i] - level) / (resp[i] - resp[i + 1])
            hi, open_hi = 2 ** (logf[i] + t * (logf[i + 1] - logf[i])), False
            break
    return float(lo), float(hi), open_lo, open_hi


def _parabolic_peak(logf: np.ndarray, resp: np.ndarray, i: int) -> tuple[float, bool]:
    """Vertex of the parabola through the grid maximum and its two neighbours, on log2 frequency.

    Returns ``(log2 f, interpolated)``; at either end of the sweep (or a flat top) the grid point
    itself, ``interpolated`` False. The vertex is clipped to the neighbours' interval.
    """
    if i == 0 or i == len(resp) - 1 or not np.all(np.isfinite(resp[i - 1 : i + 2])):
        return float(logf[i]), False
    y0, y1, y2 = resp[i - 1], resp[i], resp[i + 1]
    x0, x1, x2 = logf[i - 1], logf[i], logf[i + 1]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / den if den else 0.0
    b = (x2**2 * (y0 - y1) + x1**2 * (y2 - y0) + x0**2 * (y1 - y2)) / den if den else 0.0
    if not a < 0:
        return float(x1), False
    return float(np.clip(-b / (2 * a), x0, x2)), True


def responsive_threshold_z(n_stimuli: int, *, alpha: float = 0.01) -> float:
    """One-sided Gaussian z of the responsiveness test, Bonferroni over ``n_stimuli`` stimuli."""
    if n_stimuli < 1 or not 0 < alpha < 1:
        raise ParameterError(
            f"responsive_threshold_z needs n_stimuli >= 1 and 0 < alpha < 1. Got {n_stimuli}, {alpha}."
        )
    return float(norm.isf(alpha / n_stimuli))


def best_frequencies(
    curves: pd.DataFrame,
    *,
    baselines: pd.DataFrame | None = None,
    resolution: pd.DataFrame | None = None,
    alpha: float = 0.01,
    min_peak: float = 1e-6,
) -> pd.DataFrame:
    """Best frequency (interpolated), half-maximum bandwidth, Q and responsiveness of every unit
    at every level.

    Parameters
    ----------
    curves : pandas.DataFrame
        Tone curves: ``layer, unit, freq_hz, level_db, response``.
    baselines : pandas.DataFrame, optional
        :func:`interp.analysis.probe_responses.baselines` (``layer, unit, level_db,
        silence_response, noise_response, noise_sd``). With it, the responsiveness test below;
        without it, ``responsive`` is the old criterion, a response range (peak minus floor)
        above ``min_peak``.
    resolution : pandas.DataFrame, optional
        :func:`interp.analysis.probe_responses.resolution_limits`: adds ``resolution_hz`` and
        ``below_resolution`` (the best frequency is below the layer's limit).
    alpha : float
        Level of the responsiveness test (Bonferroni over the tones of a curve).
    min_peak : float
        Numerical floor of a response difference (activation units).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit, level_db):

        - ``best_freq_hz``: the best frequency, parabolic interpolation on log2 frequency through
          the largest response and its two neighbours (the grid point at either end of the sweep);
          ``best_freq_grid_hz``: the tone with the largest response; ``bf_interpolated``;
        - ``peak_response``, ``floor_response`` (the smallest response over the sweep);
        - ``f_lo_hz``/``f_hi_hz`` (where the response falls to half way between floor and peak,
          interpolated on log frequency), ``bandwidth_hz``, ``bandwidth_octaves``, ``q_half``
          (``best_freq_hz / bandwidth_hz``), ``open_low``/``open_high`` (the half-maximum region
          reaches the end of the sweep: bandwidth a lower bound, Q an upper bound);
        - ``responsive``: with baselines, the largest tone response exceeds the unit's response
          to silence by more than ``z`` standard deviations of its response across seeds of
          white noise at the same level (``z = Phi^-1(1 - alpha / n_tones)``: a one-sided
          Bonferroni-corrected test that treats the seed-to-seed spread as the measurement noise
          of a response; the spread is floored at ``min_peak``); ``above_noise``: the same
          against the mean noise response (the tone drives the unit more than broadband noise
          of the same peak level); ``silence_response``, ``noise_response``, ``noise_sd``,
          ``z_threshold``.
    """
    need = ("layer", "unit", "freq_hz", "level_db", "response")
    missing = [c for c in need if c not in curves.columns]
    if missing:
        raise ParameterError(
            f"The 'curves' parameter of best_frequencies must have the columns {list(need)}. Missing {missing}."
        )
    base = None
    if baselines is not None:
        bneed = ("layer", "unit", "level_db", "silence_response", "noise_response", "noise_sd")
        bmiss = [c for c in bneed if c not in baselines.columns]
        if bmiss:
            raise ParameterError(
                f"The 'baselines' parameter of best_frequencies must have the columns {list(bneed)}. Missing {bmiss}."
            )
        base = baselines.set_index(["layer", "unit", "level_db"])
    rows = []
    for (layer, unit, level), g in curves.groupby(["layer", "unit", "level_db"], sort=False):
        g = g.groupby("freq_hz", as_index=False)["response"].mean().sort_values("freq_hz")
        f = g["freq_hz"].to_numpy(dtype=np.float64)
        r = g["response"].to_numpy(dtype=np.float64)
        r = np.where(np.isfinite(r), r, -np.inf)
        i = int(np.argmax(r))
        peak = float(r[i])
        floor = float(np.min(r[np.isfinite(r)])) if np.isfinite(r).any() else math.nan
        lf, interp = _parabolic_peak(np.log2(f), r, i)
        bf = float(2**lf)
        sil = noise = sd = z = math.nan
        above_noise = False
        if base is not None and (layer, unit, float(level)) in base.index:
            b = base.loc[(layer, unit, float(level))]
            sil, noise, sd = float(b["silence_response"]), float(b["noise_response"]), float(b["noise_sd"])
            z = responsive_threshold_z(len(f), alpha=alpha)
            spread = max(sd, min_peak)
            responsive = bool(np.isfinite(peak) and peak - sil > z * spread)
            above_noise = bool(np.isfinite(peak) and peak - noise > z * spread)
        else:
            responsive = bool(np.isfinite(peak) and peak - floor > min_peak)
        if np.isfinite(peak) and peak - floor > min_peak and len(f) > 1:
            lo, hi, olo, ohi = _half_max_edges(f, r, i, floor + 0.5 * (peak - floor))
        else:
            lo, hi, olo, ohi = math.nan, math.nan, True, True
        bw = hi - lo
        rows.append(
            (
                layer,
                int(unit),
                float(level),
                bf,
                peak,
                floor,
                lo,
                hi,
                bw,
                math.log2(hi / lo) if lo > 0 and hi > 0 else math.nan,
                bf / bw if bw > 0 else math.nan,
                olo,
                ohi,
                responsive,
                float(f[i]),
                interp,
                above_noise,
                sil,
                noise,
                sd,
                z,
            )
        )
    out = pd.DataFrame(rows, columns=list(BEST_COLUMNS))
    if resolution is not None:
        lim = resolution.set_index("layer")["limit_hz"]
        out["resolution_hz"] = out["layer"].map(lim).astype(np.float64)
        out["below_resolution"] = (out["best_freq_hz"] < out["resolution_hz"]).to_numpy()
    return out


#: Columns of :func:`best_frequencies` (then ``resolution_hz, below_resolution`` with a resolution table).
BEST_COLUMNS = (
    "layer",
    "unit",
    "level_db",
    "best_freq_hz",
    "peak_response",
    "floor_response",
    "f_lo_hz",
    "f_hi_hz",
    "bandwidth_hz",
    "bandwidth_octaves",
    "q_half",
    "open_low",
    "open_high",
    "responsive",
    "best_freq_grid_hz",
    "bf_interpolated",
    "above_noise",
    "silence_response",
    "noise_response",
    "noise_sd",
    "z_threshold",
)


def level_dependence(best: pd.DataFrame) -> pd.DataFrame:
    """How each unit's tuning changes over the whole level sweep.

    Parameters
    ----------
    best : pandas.DataFrame
        From :func:`best_frequencies` (at least two levels).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit): ``level_lo_db``, ``level_hi_db`` (the sweep's ends),
        ``best_freq_lo_hz``, ``best_freq_hi_hz``, ``bf_shift_octaves`` (``log2(hi / lo)``),
        ``peak_lo``, ``peak_hi`` (peak responses at the ends), ``gain_db_per_10db`` (change of the
        peak response in dB per 10 dB of level between the ends: 10 for a unit whose peak scales
        with the amplitude, 0 for a level-invariant one; NaN where a peak is not positive),
        ``monotonic`` (the peak response never falls as the level rises, over every level), and
        from the full curve: ``slope_db_per_10db`` (least-squares slope of the peak response in
        dB against level over the levels where it is positive), ``threshold_db`` (lowest level
        at which the unit is ``responsive``; NaN if none), ``best_level_db`` (level of the
        largest peak response), ``n_levels``, ``n_responsive_levels``.
    """
    levels = sorted(best["level_db"].unique())
    if len(levels) < 2:
        raise ParameterError(f"level_dependence needs tone curves at two levels or more. Got levels {levels} instead.")
    lo_l, hi_l = levels[0], levels[-1]
    rows = []
    for (layer, unit), g in best.groupby(["layer", "unit"], sort=False):
        g = g.set_index("level_db").sort_index()
        lv = g.index.to_numpy(dtype=np.float64)
        p = g["peak_response"].to_numpy(dtype=np.float64)
        plo, phi = float(g.loc[lo_l, "peak_response"]), float(g.loc[hi_l, "peak_response"])
        blo, bhi = float(g.loc[lo_l, "best_freq_hz"]), float(g.loc[hi_l, "best_freq_hz"])
        gain = (20 * math.log10(phi / plo) / ((hi_l - lo_l) / 10)) if plo > 0 and phi > 0 else math.nan
        pos = np.isfinite(p) & (p > 0)
        slope = float(np.polyfit(lv[pos], 20 * np.log10(p[pos]), 1)[0] * 10) if pos.sum() >= 2 else math.nan
        resp = g["responsive"].to_numpy(dtype=bool)
        rows.append(
            (
                layer,
                int(unit),
                lo_l,
                hi_l,
                blo,
                bhi,
                math.log2(bhi / blo) if blo > 0 and bhi > 0 else math.nan,
                plo,
                phi,
                gain,
                bool(np.all(np.diff(p) >= -1e-6 * max(1.0, float(np.nanmax(np.abs(p)))))),
                slope,
                float(lv[resp][0]) if resp.any() else math.nan,
                float(lv[int(np.nanargmax(p))]) if np.isfinite(p).any() else math.nan,
                len(lv),
                int(resp.sum()),
            )
        )
    cols = [
        "layer",
        "unit",
        "level_lo_db",
        "level_hi_db",
        "best_freq_lo_hz",
        "best_freq_hi_hz",
        "bf_shift_octaves",
        "peak_lo",
        "peak_hi",
        "gain_db_per_10db",
        "monotonic",
        "slope_db_per_10db",
        "threshold_db",
        "best_level_db",
        "n_levels",
        "n_responsive_levels",
    ]
    return pd.DataFrame(rows, columns=cols)


def level_curves(curves: pd.DataFrame, best: pd.DataFrame, *, level_db: float) -> pd.DataFrame:
    """Response versus level at each unit's best frequency: the full rate-level curve.

    Parameters
    ----------
    curves : pandas.DataFrame
        Tone curves at every level.
    best : pandas.DataFrame
        :func:`best_frequencies`; each unit's tone is the one nearest (on log frequency) its best
        frequency at ``level_db``.
    level_db : float (peak dBFS)
        The reference level that fixes each unit's tone.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, freq_hz, level_db, response, response_rel`` (response over the unit's
        largest response along the curve; 0 where that is not positive), one row per level.
    """
    ref = best[np.isclose(best["level_db"], level_db)][["layer", "unit", "best_freq_hz"]]
    if ref.empty:
        raise ParameterError(f"level_curves: no best frequency at {level_db} dBFS.")
    grid = np.sort(curves["freq_hz"].dropna().unique())
    idx = np.abs(np.log2(grid)[None, :] - np.log2(ref["best_freq_hz"].to_numpy())[:, None]).argmin(axis=1)
    ref = ref.assign(freq_hz=grid[idx])[["layer", "unit", "freq_hz"]]
    sub = curves.merge(ref, on=["layer", "unit", "freq_hz"])
    sub = sub.groupby(["layer", "unit", "freq_hz", "level_db"], as_index=False, sort=False)["response"].mean()
    top = sub.groupby(["layer", "unit"])["response"].transform("max")
    sub["response_rel"] = np.where(top > 0, sub["response"] / top.where(top > 0, 1.0), 0.0)
    return sub.sort_values(["layer", "unit", "level_db"], kind="stable", key=_layer_key).reset_index(drop=True)


def _layer_key(col: pd.Series) -> pd.Series:
    if col.name == "layer":
        return col.map({layer: i for i, layer in enumerate(CONV_LAYERS)}).fillna(len(CONV_LAYERS))
    return col


def kernel_frequency_responses(
    model: SoundNet8, *, layer: str = "conv1", n_fft: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude frequency response of each first-layer filter, from the weights.

    Parameters
    ----------
    model : SoundNet8
    layer : str
        Only ``"conv1"`` (the one layer whose filters see the waveform directly).
    n_fft : int
        FFT size (zero-padded kernel), sets the frequency grid: ``22050 / n_fft`` Hz.

    Returns
    -------
    freqs_hz : np.ndarray, shape (n_fft // 2 + 1,)
        0 Hz to 11025 Hz.
    gain_db : np.ndarray, shape (n_units, n_fft // 2 + 1)
        ``20 log10 |H(f)|`` of each unit's 64-tap kernel (input-referred, before BatchNorm),
        relative to the unit's own maximum (0 dB).
    """
    if layer != "conv1":
        raise ParameterError(
            f"The 'layer' parameter of kernel_frequency_responses must be 'conv1' (deeper filters "
            f"mix channels). Got {layer!r} instead."
        )
    if n_fft < SPEC_BY_NAME["conv1"].kernel:
        raise ParameterError(f"The 'n_fft' parameter of kernel_frequency_responses must be >= 64. Got {n_fft} instead.")
    w = getattr(model, layer)[0].weight.detach().cpu().numpy()[:, 0, :].astype(np.float64)  # (16, 64)
    mag = np.abs(np.fft.rfft(w, n_fft, axis=1))
    mag = mag / np.maximum(mag.max(axis=1, keepdims=True), 1e-30)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE_HZ)
    return freqs, 20 * np.log10(np.maximum(mag, 1e-12))


def kernel_gains(model: SoundNet8, freqs_hz: Sequence[float] | np.ndarray) -> np.ndarray:
    """Magnitude response ``|H(f)|`` of each conv1 filter at given frequencies (exact DTFT).

    Parameters
    ----------
    model : SoundNet8
    freqs_hz : array, shape (n_freqs,)
        Frequencies in Hz (at the 22050 Hz input rate).

    Returns
    -------
    np.ndarray, shape (n_units, n_freqs)
        Linear gain of each 64-tap kernel (input-referred, before BatchNorm).
    """
    f = np.asarray(freqs_hz, dtype=np.float64)
    w = cast(torch.nn.Conv1d, model.conv1[0]).weight.detach().cpu().numpy()[:, 0, :].astype(np.float64)  # (16, 64)
    phase = np.exp(-2j * np.pi * np.outer(np.arange(w.shape[1]), f) / SAMPLE_RATE_HZ)  # (64, n_freqs)
    return np.abs(w @ phase)


def kernel_peaks(
    model: SoundNet8,
    *,
    f_min_hz: float = 50.0,
    f_max_hz: float = 10_000.0,
    n_fft: int = 8192,
    grid_hz: Sequence[float] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Peak frequency of each conv1 filter's magnitude response within ``[f_min_hz, f_max_hz]``.

    The range should be the tone sweep's, so that kernel peaks and tone best frequencies are
    compared over the same frequencies.

    Parameters
    ----------
    model : SoundNet8
    f_min_hz, f_max_hz : float (in Hz)
    n_fft : int
        FFT size of the fine grid (``22050 / n_fft`` Hz apart).
    grid_hz : array, optional
        The tone frequencies: the kernel's peak *among them* is reported too
        (``kernel_peak_grid_hz``), the like-for-like comparison with a tone sweep, which cannot
        resolve a peak that falls between two of its tones.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, kernel_peak_hz`` (fine grid), ``kernel_peak_gain_db`` (gain at the in-range
        peak relative to the kernel's overall maximum; below 0 dB when the kernel peaks outside
        the range) and, with ``grid_hz``, ``kernel_peak_grid_hz``.
    """
    if not 0 < f_min_hz < f_max_hz:
        raise ParameterError(f"kernel_peaks needs 0 < f_min_hz < f_max_hz. Got {f_min_hz}, {f_max_hz} instead.")
    freqs, gain = kernel_frequency_responses(model, n_fft=n_fft)
    band = (freqs >= f_min_hz) & (freqs <= f_max_hz)
    idx = np.argmax(gain[:, band], axis=1)
    out = pd.DataFrame(
        {
            "layer": "conv1",
            "unit": np.arange(gain.shape[0], dtype=np.int64),
            "kernel_peak_hz": freqs[band][idx],
            "kernel_peak_gain_db": gain[:, band][np.arange(len(idx)), idx],
        }
    )
    if grid_hz is not None:
        g = np.sort(np.asarray(grid_hz, dtype=np.float64))
        if len(g) == 0 or not np.all(np.isfinite(g)) or g[0] <= 0:
            raise ParameterError(
                f"The 'grid_hz' parameter of kernel_peaks must hold positive frequencies. Got {grid_hz!r} instead."
            )
        out["kernel_peak_grid_hz"] = g[np.argmax(kernel_gains(model, g), axis=1)]
    return out


def octave_span(freqs_hz: Sequence[float] | np.ndarray) -> float:
    """``log2(max / min)`` of positive frequencies: how many octaves they span (NaN if none)."""
    f = np.asarray(freqs_hz, dtype=np.float64)
    f = f[np.isfinite(f) & (f > 0)]
    return float(np.log2(f.max() / f.min())) if len(f) else math.nan


# --------------------------------------------------------------------------------------------
# temporal tuning
# --------------------------------------------------------------------------------------------
def best_rates(curves: pd.DataFrame) -> pd.DataFrame:
    """Best modulation rate of each unit for each periodic probe kind (responses averaged over seeds).

    Parameters
    ----------
    curves : pandas.DataFrame
        Tuning curves of ``am_noise`` and/or ``click_train`` probes (several seeds per rate are
        averaged); unmodulated ``am_noise`` rows (``rate_hz`` NaN) give ``unmodulated_response``.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, kind, best_rate_hz, peak_response, floor_response, modulation_index``
        (``(peak - floor) / (peak + floor)`` over rates: 0 for a unit indifferent to the rate, 1
        for a unit silent at its worst rate), ``unmodulated_response`` (mean response to
        unmodulated noise; NaN for click trains or without it), ``n_seeds`` (draws per rate).
    """
    sub = curves[curves["rate_hz"].notna()]
    if sub.empty:
        raise ParameterError("The 'curves' parameter of best_rates must hold rate probes (am_noise, click_train).")
    unmod: dict[tuple[str, int], float] = {}
    if "depth" in curves.columns:
        u = curves[(curves["kind"] == "am_noise") & (curves["depth"] == 0)]
        unmod = u.groupby(["layer", "unit"])["response"].mean().to_dict()
    mean = sub.groupby(["layer", "unit", "kind", "rate_hz"], sort=False)["response"].agg(["mean", "size"]).reset_index()
    rows = []
    for (layer, unit, kind), g in mean.groupby(["layer", "unit", "kind"], sort=False):
        g = g.sort_values("rate_hz")
        r = g["mean"].to_numpy(dtype=np.float64)
        i = int(np.nanargmax(r)) if np.isfinite(r).any() else 0
        peak, floor = float(r[i]), float(np.nanmin(r))
        denom = peak + floor
        rows.append(
            (
                layer,
                int(unit),
                kind,
                float(g["rate_hz"].to_numpy()[i]),
                peak,
                floor,
                (peak - floor) / denom if denom > 0 else math.nan,
                unmod.get((layer, int(unit)), math.nan) if kind == "am_noise" else math.nan,
                int(g["size"].min()),
            )
        )
    cols = ["layer", "unit", "kind", "best_rate_hz", "peak_response", "floor_response", "modulation_index"]
    return pd.DataFrame(rows, columns=cols + ["unmodulated_response", "n_seeds"])


def direction_preference(curves: pd.DataFrame, *, threshold: float = 0.1, alpha: float = 0.05) -> pd.DataFrame:
    """Preference of each unit for rising over falling sweeps, compared at matched positions.

    Each rising chirp has a falling twin at the same position in the clip (the same sweep played
    backwards, :mod:`interp.corpus.stimuli`), so the pair differs only in direction. With
    several positions (``onset_s``) the differences ``up - down`` are tested with a paired
    t-test across positions (two-sided), Benjamini-Hochberg over each layer's units.

    Parameters
    ----------
    curves : pandas.DataFrame
        Tuning curves of the ``chirp`` probes (``direction`` "up"/"down", ``onset_s``).
    threshold : float
        ``|dsi|`` below this is no preference, whatever the test.
    alpha : float
        False discovery rate of a preference.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, response_up, response_down, dsi, prefers`` (``dsi = (up - down) /
        (|up| + |down|)`` of the mean responses over positions, in [-1, 1], NaN when both are 0;
        ``prefers`` "up", "down" or "none": ``|dsi| >= threshold`` and ``q < alpha``, or with one
        position ``|dsi| >= threshold`` alone), ``n_positions``, ``diff_sd`` (standard deviation of
        ``up - down`` across positions), ``p_value``, ``q_value``.
    """
    sub = curves[curves["kind"] == "chirp"].copy()
    if sub.empty or not {"up", "down"} <= set(sub["direction"]):
        raise ParameterError("The 'curves' parameter of direction_preference must hold up and down chirps.")
    if "onset_s" not in sub.columns:
        sub["onset_s"] = 0.0
    sub["onset_s"] = sub["onset_s"].fillna(-1.0)
    piv = sub.pivot_table(
        index=["layer", "unit", "onset_s"], columns="direction", values="response", aggfunc="mean", sort=False
    ).dropna(subset=["up", "down"])
    piv["d"] = piv["up"] - piv["down"]
    g = piv.groupby(level=["layer", "unit"], sort=False)
    up, down = g["up"].mean().to_numpy(np.float64), g["down"].mean().to_numpy(np.float64)
    n = g["d"].size().to_numpy()
    dm = g["d"].mean().to_numpy(np.float64)
    sd = g["d"].std(ddof=1).fillna(0.0).to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        denom = np.abs(up) + np.abs(down)
        dsi = np.where(denom > 0, (up - down) / np.where(denom > 0, denom, 1.0), np.nan)
        t = dm / (sd / np.sqrt(n))
        p = np.where(sd > 0, 2 * t_dist.sf(np.abs(t), np.maximum(n - 1, 1)), np.where(dm != 0, 0.0, 1.0))
    p = np.where(n > 1, p, np.nan)
    out = g["d"].mean().index.to_frame(index=False)
    out["unit"] = out["unit"].astype(np.int64)
    q = np.full(len(p), np.nan)
    for layer in out["layer"].unique():
        m = (out["layer"] == layer).to_numpy() & np.isfinite(p)
        if m.any():
            q[m] = bh_qvalues(p[m])
    strong = ~np.isnan(dsi) & (np.abs(dsi) >= threshold) & np.where(n > 1, q < alpha, True)
    out["response_up"], out["response_down"], out["dsi"] = up, down, dsi
    out["prefers"] = np.where(strong, np.where(dsi > 0, "up", "down"), "none")
    out["n_positions"], out["diff_sd"], out["p_value"], out["q_value"] = n.astype(np.int64), sd, p, q
    return out
