"""Tuning of SoundNet units to synthetic probes: frequency, level, modulation rate, sweep direction.

Everything here starts from a run directory recorded on the probe corpus
(``soundnet-interp record probes``; see :mod:`interp.corpus.stimuli`), whose ``clips.parquet`` carries the
probe parameters (``kind, freq_hz, level_db, rate_hz, direction, ...``), plus, for the conv1
filters and for rate following, the model itself.

Response
--------
A unit's *response* to a stimulus is a per-clip summary of its activation over time, ``max`` by
default: the peak of the unit's output during the stimulus. ``max`` is the right measure for
tones: after conv1's ReLU and max-pool of 8 frames, the *mean* over time grows with frequency at
equal tone amplitude (the pool picks the crest of every fast cycle), which biases best
frequencies upwards; the peak does not depend on where the pool falls. ``stat="mean"`` is
available everywhere.

Tables (documented columns)
---------------------------
:func:`stimulus_responses` (the tuning curves; for tones :func:`tone_curves`)
    ``layer, unit, kind, freq_hz, level_db, rate_hz, direction, response, response_norm``
    (``response_norm``: the response divided by the unit's largest response to the stimuli in
    the table, 0 where the unit never responds).
:func:`best_frequencies`
    ``layer, unit, level_db, best_freq_hz, peak_response, floor_response, f_lo_hz, f_hi_hz,
    bandwidth_hz, bandwidth_octaves, q_half, open_low, open_high, responsive``.
:func:`level_dependence`
    ``layer, unit, level_lo_db, level_hi_db, best_freq_lo_hz, best_freq_hi_hz, bf_shift_octaves,
    peak_lo, peak_hi, gain_db_per_10db, monotonic``.
:func:`kernel_peaks`
    ``layer, unit, kernel_peak_hz, kernel_peak_gain_db[, kernel_peak_grid_hz]``.
:func:`best_rates`
    ``layer, unit, kind, best_rate_hz, peak_response, floor_response, modulation_index``.
:func:`rate_following`
    ``layer, unit, kind, rate_hz, frame_rate_hz, vector_strength`` (NaN where the layer's frame
    rate is below twice the modulation rate).
:func:`direction_preference`
    ``layer, unit, response_up, response_down, dsi, prefers``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
import torch

from interp.corpus.corpora import read_clip
from interp.run.store import Run
from soundnet.audio import to_model_input
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time, layer_geometry
from soundnet.model import CONV_LAYERS, SPEC_BY_NAME, SoundNet8
from soundnet.options import ClipStat, ProbeKind, check_option

__all__ = [
    "CURVE_COLUMNS",
    "stimulus_responses",
    "tone_curves",
    "best_frequencies",
    "level_dependence",
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


def best_frequencies(curves: pd.DataFrame, *, min_peak: float = 1e-6) -> pd.DataFrame:
    """Best frequency, half-maximum bandwidth and Q of every unit at every level.

    Parameters
    ----------
    curves : pandas.DataFrame
        Tone curves (:func:`tone_curves`): ``layer, unit, freq_hz, level_db, response``.
    min_peak : float
        Units whose response range (peak minus floor) is below this at a level are marked
        ``responsive = False`` (their best frequency is then meaningless).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit, level_db): ``best_freq_hz`` (the tone frequency with the largest
        response), ``peak_response``, ``floor_response`` (the smallest response over the sweep),
        ``f_lo_hz``/``f_hi_hz`` (where the response falls to half way between floor and peak,
        interpolated on a log-frequency axis), ``bandwidth_hz`` (``f_hi_hz - f_lo_hz``),
        ``bandwidth_octaves``, ``q_half`` (``best_freq_hz / bandwidth_hz``, the quality factor at
        half maximum), ``open_low``/``open_high`` (the half-maximum region reaches the end of the
        sweep, so the bandwidth is a lower bound and Q an upper bound), ``responsive``.
    """
    need = ("layer", "unit", "freq_hz", "level_db", "response")
    missing = [c for c in need if c not in curves.columns]
    if missing:
        raise ParameterError(
            f"The 'curves' parameter of best_frequencies must have the columns {list(need)}. Missing {missing}."
        )
    rows = []
    for (layer, unit, level), g in curves.groupby(["layer", "unit", "level_db"], sort=False):
        g = g.sort_values("freq_hz")
        f = g["freq_hz"].to_numpy(dtype=np.float64)
        r = g["response"].to_numpy(dtype=np.float64)
        r = np.where(np.isfinite(r), r, -np.inf)
        i = int(np.argmax(r))
        peak, floor = float(r[i]), float(np.min(r[np.isfinite(r)])) if np.isfinite(r).any() else math.nan
        responsive = bool(np.isfinite(peak) and peak - floor > min_peak)
        if responsive and len(f) > 1:
            lo, hi, olo, ohi = _half_max_edges(f, r, i, floor + 0.5 * (peak - floor))
        else:
            lo, hi, olo, ohi = math.nan, math.nan, True, True
        bw = hi - lo
        rows.append(
            (
                layer,
                int(unit),
                float(level),
                float(f[i]),
                peak,
                floor,
                lo,
                hi,
                bw,
                math.log2(hi / lo) if lo > 0 and hi > 0 else math.nan,
                f[i] / bw if bw > 0 else math.nan,
                olo,
                ohi,
                responsive,
            )
        )
    cols = [
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
    ]
    return pd.DataFrame(rows, columns=cols)


def level_dependence(best: pd.DataFrame) -> pd.DataFrame:
    """How each unit's tuning changes between the lowest and the highest tone level.

    Parameters
    ----------
    best : pandas.DataFrame
        From :func:`best_frequencies` (at least two levels).

    Returns
    -------
    pandas.DataFrame
        One row per (layer, unit): ``level_lo_db``, ``level_hi_db``, ``best_freq_lo_hz``,
        ``best_freq_hi_hz``, ``bf_shift_octaves`` (``log2(hi / lo)``), ``peak_lo``, ``peak_hi``
        (peak responses), ``gain_db_per_10db`` (change of the peak response, in dB, per 10 dB of
        level: 10 for a unit whose peak scales with the amplitude, 0 for a level-invariant one;
        NaN where a peak is not positive), ``monotonic`` (the peak response never falls as the
        level rises).
    """
    levels = sorted(best["level_db"].unique())
    if len(levels) < 2:
        raise ParameterError(f"level_dependence needs tone curves at two levels or more. Got levels {levels} instead.")
    lo_l, hi_l = levels[0], levels[-1]
    rows = []
    for (layer, unit), g in best.groupby(["layer", "unit"], sort=False):
        g = g.set_index("level_db").sort_index()
        p = g["peak_response"].to_numpy(dtype=np.float64)
        plo, phi = float(g.loc[lo_l, "peak_response"]), float(g.loc[hi_l, "peak_response"])
        blo, bhi = float(g.loc[lo_l, "best_freq_hz"]), float(g.loc[hi_l, "best_freq_hz"])
        gain = (20 * math.log10(phi / plo) / ((hi_l - lo_l) / 10)) if plo > 0 and phi > 0 else math.nan
        rows.append(
            (
                layer,
                int(unit),
                lo_l,
                hi_l,
                blo,
                bhi,
                math.log2(bhi / blo),
                plo,
                phi,
                gain,
                bool(np.all(np.diff(p) >= -1e-6 * max(1.0, float(np.nanmax(np.abs(p)))))),
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
    ]
    return pd.DataFrame(rows, columns=cols)


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
    """Best modulation rate of each unit for each periodic probe kind.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`stimulus_responses` of ``am_noise`` and/or ``click_train`` probes.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, kind, best_rate_hz, peak_response, floor_response, modulation_index``
        (``(peak - floor) / (peak + floor)``: 0 for a unit indifferent to the rate, 1 for a unit
        silent at its worst rate).
    """
    rows = []
    sub = curves[curves["rate_hz"].notna()]
    if sub.empty:
        raise ParameterError("The 'curves' parameter of best_rates must hold rate probes (am_noise, click_train).")
    for (layer, unit, kind), g in sub.groupby(["layer", "unit", "kind"], sort=False):
        r = g["response"].to_numpy(dtype=np.float64)
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
            )
        )
    return pd.DataFrame(
        rows, columns=["layer", "unit", "kind", "best_rate_hz", "peak_response", "floor_response", "modulation_index"]
    )


def rate_following(
    model: SoundNet8, clips: pd.DataFrame, *, layers: Sequence[str] = CONV_LAYERS, edge_s: float = 0.1
) -> pd.DataFrame:
    """How strongly each unit's activation follows the modulation of each periodic probe.

    For each probe of rate ``r`` the unit's activation over time ``a(t)`` (one forward pass) gives
    the vector strength ``|sum a(t) exp(-2 pi i r t)| / sum a(t)`` over the layer's frames: 0 for
    an activation that does not move with the modulation, up to 1 for one that fires at one
    phase of each cycle only. It is computed only where the layer's frame rate exceeds ``2 r``
    (Nyquist); frames within ``edge_s`` of the clip ends, or whose receptive field reaches past
    them, are left out.

    Parameters
    ----------
    model : SoundNet8
    clips : pandas.DataFrame
        Probe rows (corpus or clip table) with ``kind``, ``rate_hz`` and the synthesis columns;
        rows without a rate are ignored.
    layers : sequence of str
    edge_s : float (in seconds)

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, kind, rate_hz, frame_rate_hz, vector_strength``.
    """

    rows = clips[clips["rate_hz"].notna()] if "rate_hz" in clips.columns else clips.iloc[:0]
    if rows.empty:
        raise ParameterError("The 'clips' parameter of rate_following must hold probes with a rate_hz.")
    layers = [layer for layer in CONV_LAYERS if layer in set(layers)]
    parts = []
    for rec in rows.to_dict("records"):
        y = read_clip(rec)
        dur = len(y) / SAMPLE_RATE_HZ
        rate = float(rec["rate_hz"])
        with torch.inference_mode():
            feats = model.extract_features(to_model_input(y), layers=tuple(layers))
        for layer in layers:
            a = feats[layer][0].double().cpu().numpy()  # (n_units, n_frames)
            geo = layer_geometry(layer)
            frame_rate = SAMPLE_RATE_HZ / geo.hop_samples
            t = np.asarray(frames_to_time(np.arange(a.shape[1]), layer), dtype=np.float64)
            half = geo.receptive_field_s / 2
            keep = (t - half >= -1e-9) & (t + half <= dur + 1e-9) & (t >= edge_s) & (t <= dur - edge_s)
            vs = np.full(a.shape[0], np.nan)
            if frame_rate > 2 * rate and keep.sum() >= 4:
                x = a[:, keep]
                ph = np.exp(-2j * np.pi * rate * t[keep])
                total = x.sum(axis=1)
                with np.errstate(invalid="ignore", divide="ignore"):
                    vs = np.where(total > 0, np.abs(x @ ph) / np.where(total > 0, total, 1.0), np.nan)
            parts.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "unit": np.arange(a.shape[0], dtype=np.int64),
                        "kind": rec["kind"],
                        "rate_hz": rate,
                        "frame_rate_hz": frame_rate,
                        "vector_strength": vs,
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True)
    order = {layer: i for i, layer in enumerate(CONV_LAYERS)}
    return (
        out.assign(_o=out["layer"].map(order))
        .sort_values(["_o", "unit", "kind", "rate_hz"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )


def direction_preference(curves: pd.DataFrame, *, threshold: float = 0.1) -> pd.DataFrame:
    """Preference of each unit for rising over falling frequency sweeps.

    Parameters
    ----------
    curves : pandas.DataFrame
        :func:`stimulus_responses` of the ``chirp`` probes (``direction`` "up" and "down"; several
        chirps per direction are averaged).
    threshold : float
        ``|dsi|`` below this is called no preference.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, response_up, response_down, dsi, prefers``; ``dsi = (up - down) /
        (|up| + |down|)`` in [-1, 1] (positive: prefers rising sweeps; NaN when both are 0);
        ``prefers`` is ``"up"``, ``"down"`` or ``"none"``.
    """
    sub = curves[curves["kind"] == "chirp"]
    if sub.empty or not {"up", "down"} <= set(sub["direction"]):
        raise ParameterError("The 'curves' parameter of direction_preference must hold up and down chirps.")
    piv = sub.pivot_table(index=["layer", "unit"], columns="direction", values="response", aggfunc="mean", sort=False)
    up, down = piv["up"].to_numpy(dtype=np.float64), piv["down"].to_numpy(dtype=np.float64)
    denom = np.abs(up) + np.abs(down)
    with np.errstate(invalid="ignore", divide="ignore"):
        dsi = np.where(denom > 0, (up - down) / np.where(denom > 0, denom, 1.0), np.nan)
    prefers = np.where(np.isnan(dsi) | (np.abs(dsi) < threshold), "none", np.where(dsi > 0, "up", "down"))
    out = piv.index.to_frame(index=False)
    out["unit"] = out["unit"].astype(np.int64)
    out["response_up"], out["response_down"], out["dsi"], out["prefers"] = up, down, dsi, prefers
    return out
