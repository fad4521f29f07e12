"""Responses of SoundNet units to synthetic probes, measured on frames wholly inside the probe.

A run directory's per-clip statistics mix frames whose receptive field reaches into the zero
padding around the clip (conv7's field is 4.1 s) with frames that see only the probe. Tuning is
measured here instead, straight from the model, on the *valid* frames of each probe
(:func:`soundnet.geometry.valid_frames` with ``min_inside=1`` by default: the whole receptive
field inside the probe), so that a response is the network's response to the stimulus and not
to its edges.

:func:`probe_responses`
    One forward pass per probe: per layer, each unit's ``vmax`` (largest activation over the
    valid frames) and ``vmean`` (their mean), the number of valid frames, and, for the rows asked
    for, the activation over time (for rate following).
:func:`response_curves`
    The tidy table of one statistic (the tuning curves), one row per (layer, unit, probe).
:func:`baselines`
    Per (layer, unit, level): the response to silence and to unmodulated white noise (mean and
    spread over seeds), the references of the responsiveness test.
:func:`resolution_limits`
    The finest frequency detail each layer can resolve, from its window length.
:func:`rate_following`
    Vector strength of each unit's activation at the modulation rate, with its null
    (unmodulated noise) and a test per unit.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from interp.analysis.stats import bh_qvalues
from interp.corpus.corpora import read_clip
from interp.corpus.stimuli import is_virtual, synthesize
from soundnet.audio import to_model_input
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time, layer_geometry, valid_frames
from soundnet.model import CONV_LAYERS, SPEC_BY_NAME, SoundNet8
from soundnet.options import check_option

__all__ = [
    "RESPONSE_STATS",
    "ProbeResponses",
    "probe_responses",
    "response_curves",
    "baselines",
    "resolution_limits",
    "vector_strength",
    "rate_following",
]

#: Per-probe statistics over the valid frames: the largest activation and the mean.
RESPONSE_STATS = ("vmax", "vmean")

_PARAMS = ("kind", "freq_hz", "level_db", "rate_hz", "direction", "seed", "depth", "onset_s", "sweep_s")


@dataclass
class ProbeResponses:
    """What :func:`probe_responses` measured.

    Attributes
    ----------
    params : pandas.DataFrame
        One row per probe (``kind, freq_hz, level_db, rate_hz, direction, seed, depth, onset_s,
        sweep_s, duration_s``), in the order of the arrays.
    stats : dict ``{layer: {"vmax" | "vmean": np.ndarray (n_probes, n_units)}}``
        NaN where a probe has no valid frame in the layer.
    n_valid : dict ``{layer: np.ndarray (n_probes,) int}``
        Valid frames of each probe in each layer.
    traces : dict ``{(probe_index, layer): (times_s (n_valid,), activations (n_units, n_valid))}``
        Activation over the valid frames, for the probes asked for.
    min_inside : float
        Least fraction of a frame's receptive field inside the probe for the frame to count.
    """

    params: pd.DataFrame
    stats: dict[str, dict[str, np.ndarray]]
    n_valid: dict[str, np.ndarray]
    traces: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    min_inside: float = 1.0

    @property
    def layers(self) -> list[str]:
        """The measured layers, in network order."""
        return list(self.stats)


def _render(rec: Mapping[str, Any]) -> np.ndarray:
    path = rec.get("path")
    if isinstance(path, str) and path and not is_virtual(path):
        return read_clip(rec)
    return synthesize(rec)


def probe_responses(
    model: SoundNet8,
    probes: pd.DataFrame,
    *,
    layers: Sequence[str] = CONV_LAYERS,
    min_inside: float = 1.0,
    traces: np.ndarray | Sequence[bool] | None = None,
    batch_size: int = 8,
) -> ProbeResponses:
    """Run every probe through the model and summarise each unit over the probe's valid frames.

    Parameters
    ----------
    model : SoundNet8
        In eval mode.
    probes : pandas.DataFrame
        Probe rows: a :func:`interp.corpus.stimuli.probe_table`, a probes corpus or a probes
        run's clip table (``probes://`` paths are synthesized, file paths read).
    layers : sequence of str
        Conv layers.
    min_inside : float
        In (0, 1]: least fraction of a frame's receptive field inside the probe (default 1: the
        whole field).
    traces : array of bool, shape (n_probes,), optional
        Keep the activation over time of these probes (for :func:`rate_following`).
    batch_size : int
        Probes of one length per forward pass.

    Returns
    -------
    ProbeResponses

    Raises
    ------
    ParameterError
        Bad layers, ``min_inside`` or an empty table.
    """
    bad = [layer for layer in layers if layer not in CONV_LAYERS]
    if bad or not layers:
        raise ParameterError(
            f"The 'layers' parameter of probe_responses must name conv layers {list(CONV_LAYERS)}. Got {list(layers)} instead."
        )
    if not 0 < float(min_inside) <= 1:
        raise ParameterError(
            f"The 'min_inside' parameter of probe_responses must be in (0, 1]. Got {min_inside!r} instead."
        )
    if len(probes) == 0 or "kind" not in probes.columns:
        raise ParameterError(
            "The 'probes' parameter of probe_responses must be a non-empty table of probe rows (kind, ...)."
        )
    if int(batch_size) < 1:
        raise ParameterError(f"The 'batch_size' parameter of probe_responses must be >= 1. Got {batch_size} instead.")
    layers = [layer for layer in CONV_LAYERS if layer in set(layers)]
    recs = probes.to_dict("records")
    keep = np.zeros(len(recs), bool) if traces is None else np.asarray(traces, dtype=bool)
    if keep.shape != (len(recs),):
        raise ParameterError(
            f"The 'traces' parameter of probe_responses must be one bool per probe ({len(recs)}). Got shape {keep.shape} instead."
        )
    waves = [_render(r) for r in recs]
    n_units = {layer: SPEC_BY_NAME[layer].out_channels for layer in layers}
    out = {layer: {s: np.full((len(recs), n_units[layer]), np.nan) for s in RESPONSE_STATS} for layer in layers}
    n_valid = {layer: np.zeros(len(recs), np.int64) for layer in layers}
    kept: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    by_len: dict[int, list[int]] = {}
    for i, w in enumerate(waves):
        by_len.setdefault(len(w), []).append(i)
    for n, idx in by_len.items():
        masks = {layer: valid_frames(n, layer, min_inside=min_inside) for layer in layers}
        times = {layer: np.asarray(frames_to_time(np.flatnonzero(masks[layer]), layer), np.float64) for layer in layers}
        for b in range(0, len(idx), int(batch_size)):
            chunk = idx[b : b + int(batch_size)]
            x = torch.cat([to_model_input(waves[i]) for i in chunk], dim=0)  # (b, 1, n)
            with torch.inference_mode():
                feats = model.extract_features(x, layers=tuple(layers))
            for layer in layers:
                ok = masks[layer]
                a = feats[layer].double().cpu().numpy()[:, :, : len(ok)][:, :, ok]  # (b, units, n_valid)
                for j, i in enumerate(chunk):
                    n_valid[layer][i] = a.shape[2]
                    if a.shape[2]:
                        out[layer]["vmax"][i] = a[j].max(axis=1)
                        out[layer]["vmean"][i] = a[j].mean(axis=1)
                        if keep[i]:
                            kept[(i, layer)] = (times[layer], a[j].copy())
    params = pd.DataFrame({c: [r.get(c, np.nan) for r in recs] for c in (*_PARAMS, "duration_s")})
    params["direction"] = params["direction"].fillna("").astype(str)
    params["seed"] = pd.to_numeric(params["seed"], errors="coerce").fillna(0).astype(np.int64)
    for c in ("freq_hz", "level_db", "rate_hz", "depth", "onset_s", "sweep_s", "duration_s"):
        params[c] = pd.to_numeric(params[c], errors="coerce").astype(np.float64)
    return ProbeResponses(params, out, n_valid, kept, float(min_inside))


#: Columns of :func:`response_curves`.
RESPONSE_COLUMNS = (
    "layer",
    "unit",
    "kind",
    "freq_hz",
    "level_db",
    "rate_hz",
    "direction",
    "response",
    "response_norm",
    "seed",
    "depth",
    "onset_s",
    "n_valid_frames",
)


def response_curves(resp: ProbeResponses, *, stat: str = "vmax", kinds: Sequence[str] | None = None) -> pd.DataFrame:
    """Tidy tuning curves of one statistic: every unit's response to every probe (of ``kinds``).

    Parameters
    ----------
    resp : ProbeResponses
    stat : {"vmax", "vmean"}
    kinds : sequence of str, optional
        Probe kinds to keep (default all).

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, kind, freq_hz, level_db, rate_hz, direction, response, response_norm,
        seed, depth, onset_s, n_valid_frames`` (the first nine as
        :data:`interp.analysis.tuning.CURVE_COLUMNS`; ``response_norm``: the response over the
        unit's largest response in the table, 0 where that is not positive).
    """
    check_option("stat", stat, RESPONSE_STATS, where="response_curves")
    sel = np.ones(len(resp.params), bool) if kinds is None else resp.params["kind"].isin(list(kinds)).to_numpy()
    if not sel.any():
        raise ParameterError(f"response_curves: no probe of the kinds {list(kinds or [])}.")
    params = resp.params[sel].reset_index(drop=True)
    parts = []
    for layer in resp.layers:
        acts = resp.stats[layer][stat][sel]  # (n_stim, n_units)
        n_stim, n_units = acts.shape
        peak = np.nanmax(np.where(np.isfinite(acts), acts, -np.inf), axis=0) if n_stim else np.zeros(n_units)
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = np.where(peak > 0, acts / np.where(peak > 0, peak, 1.0), 0.0)
        df = pd.concat([params] * n_units, ignore_index=True)
        df.insert(0, "unit", np.repeat(np.arange(n_units), n_stim).astype(np.int64))
        df.insert(0, "layer", layer)
        df["response"] = acts.T.ravel()
        df["response_norm"] = norm.T.ravel()
        df["n_valid_frames"] = np.tile(resp.n_valid[layer][sel], n_units)
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    order = {layer: i for i, layer in enumerate(CONV_LAYERS)}
    keys = ["_o", "unit", "kind", "level_db", "freq_hz", "rate_hz", "direction", "onset_s", "seed"]
    out = out.assign(_o=out["layer"].map(order)).sort_values(keys, kind="stable").drop(columns="_o")
    return out[list(RESPONSE_COLUMNS)].reset_index(drop=True)


def baselines(resp: ProbeResponses, *, stat: str = "vmax") -> pd.DataFrame:
    """Silence and noise baselines of every unit, per noise level.

    Parameters
    ----------
    resp : ProbeResponses
        With one ``silence`` probe and unmodulated ``am_noise`` probes (``depth`` 0), several
        seeds per level (:func:`interp.corpus.stimuli.frequency_probes`).
    stat : {"vmax", "vmean"}

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, level_db, silence_response, noise_response`` (mean over seeds),
        ``noise_sd`` (standard deviation over seeds, ddof 1; 0 with one seed), ``n_seeds``.

    Raises
    ------
    ParameterError
        No silence or no unmodulated noise among the probes.
    """
    check_option("stat", stat, RESPONSE_STATS, where="baselines")
    p = resp.params
    sil = np.flatnonzero((p["kind"] == "silence").to_numpy())
    noise = (p["kind"] == "am_noise").to_numpy() & (p["depth"].fillna(1.0) == 0).to_numpy()
    if not len(sil) or not noise.any():
        raise ParameterError(
            "baselines needs a 'silence' probe and unmodulated noise (am_noise with depth 0): "
            "build the probes with interp.corpus.stimuli.frequency_probes."
        )
    levels = np.sort(p.loc[noise, "level_db"].unique())
    parts = []
    for layer in resp.layers:
        a = resp.stats[layer][stat]
        s = a[sil[0]]
        for lv in levels:
            rows = np.flatnonzero(noise & np.isclose(p["level_db"].to_numpy(), lv))
            x = a[rows]
            sd = x.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(a.shape[1])
            parts.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "unit": np.arange(a.shape[1], dtype=np.int64),
                        "level_db": float(lv),
                        "silence_response": s,
                        "noise_response": x.mean(axis=0),
                        "noise_sd": sd,
                        "n_seeds": len(rows),
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def resolution_limits(layers: Sequence[str] = CONV_LAYERS) -> pd.DataFrame:
    """The finest frequency detail each layer can resolve: the sampling rate over its window.

    A filter that sees ``N`` samples cannot separate two tones closer than about ``fs / N`` Hz,
    nor shape a tuning curve finer than that (the Fourier uncertainty of an ``N``-sample
    window): below ``fs / N`` its frequency response is one smooth lobe. conv1's window is its
    64-tap kernel (the max-pool after it is not a linear filter): 22050 / 64 = 345 Hz, so conv1
    cannot tell 50 Hz from 300 Hz by its filters and a conv1 best frequency below 345 Hz means
    "low-pass" rather than a peak. Deeper layers see longer stretches (their receptive field)
    and can follow a tone's period over time, so their limit is ``fs`` over the receptive field.

    Returns
    -------
    pandas.DataFrame
        ``layer, window_samples, window_s, limit_hz, basis`` (``"kernel"`` for conv1,
        ``"receptive field"`` deeper).
    """
    rows = []
    for layer in layers:
        check_option("layer", layer, CONV_LAYERS, where="resolution_limits")
        if layer == "conv1":
            n, basis = SPEC_BY_NAME["conv1"].kernel, "kernel"
        else:
            n, basis = layer_geometry(layer).receptive_field_samples, "receptive field"
        rows.append((layer, int(n), n / SAMPLE_RATE_HZ, SAMPLE_RATE_HZ / n, basis))
    return pd.DataFrame(rows, columns=["layer", "window_samples", "window_s", "limit_hz", "basis"])


def vector_strength(times_s: np.ndarray, acts: np.ndarray, rate_hz: float) -> np.ndarray:
    """``|sum a(t) exp(-2 pi i r t)| / sum a(t)`` of each row of ``acts`` (NaN where the sum is 0).

    Parameters
    ----------
    times_s : np.ndarray, shape (n_frames,) (in seconds)
    acts : np.ndarray, shape (n_units, n_frames)
    rate_hz : float (in Hz)

    Returns
    -------
    np.ndarray, shape (n_units,), in [0, 1]
    """
    ph = np.exp(-2j * np.pi * float(rate_hz) * np.asarray(times_s, np.float64))
    total = acts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.abs(acts @ ph) / np.where(total > 0, total, 1.0), np.nan)


def _welch_greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One-sided Welch t-test p of mean(a) > mean(b) per column; a, b: (n_draws, n_units)."""
    na, nb = a.shape[0], b.shape[0]
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    va = a.var(axis=0, ddof=1) / na if na > 1 else np.zeros(a.shape[1])
    vb = b.var(axis=0, ddof=1) / nb if nb > 1 else np.zeros(b.shape[1])
    se = np.sqrt(va + vb)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (ma - mb) / se
        dof = (va + vb) ** 2 / (
            np.where(na > 1, va**2 / max(na - 1, 1), 0.0) + np.where(nb > 1, vb**2 / max(nb - 1, 1), 0.0)
        )
    p = sps.t.sf(t, np.maximum(np.nan_to_num(dof, nan=1.0), 1.0))
    p = np.where(se > 0, p, np.where(ma > mb, 0.0, 1.0))
    return np.where(np.isfinite(ma) & np.isfinite(mb), p, np.nan)


def rate_following(resp: ProbeResponses, *, alpha: float = 0.05) -> pd.DataFrame:
    """How strongly each unit's activation follows the modulation, against unmodulated noise.

    For each AM rate ``r`` and seed the vector strength (:func:`vector_strength`) of the unit's
    activation over the probe's valid frames is computed at ``r``; the null is the vector
    strength at the same ``r`` of the unit's activation to *unmodulated* noise of the same level
    (every seed): what a unit that does not follow the envelope shows from its own fluctuations
    and the finite number of frames. One-sided Welch t-test across seeds (AM vs unmodulated),
    Benjamini-Hochberg over the units of a layer at each rate; a unit *follows* the rate when
    ``q < alpha``. Computed only where the layer's frame rate exceeds ``2 r`` (Nyquist) and it
    has at least 4 valid frames. Click trains (one draw each) get their vector strength without
    a test.

    Parameters
    ----------
    resp : ProbeResponses
        With traces of the ``am_noise`` and ``click_train`` probes.
    alpha : float
        False discovery rate of ``follows``.

    Returns
    -------
    pandas.DataFrame
        ``layer, unit, kind, rate_hz, frame_rate_hz, vector_strength`` (mean over seeds),
        ``vs_sd``, ``vs_null`` (mean over unmodulated seeds), ``vs_null_sd``, ``n_seeds``,
        ``p_value``, ``q_value``, ``follows``.
    """
    p = resp.params
    is_am = (p["kind"] == "am_noise").to_numpy()
    depth = p["depth"].fillna(1.0).to_numpy()
    null_rows = [int(i) for i in np.flatnonzero(is_am & (depth == 0))]
    rate_rows = p[p["rate_hz"].notna() & p["kind"].isin(["am_noise", "click_train"])]
    if rate_rows.empty:
        raise ParameterError("rate_following needs AM-noise or click-train probes with a rate_hz.")
    parts = []
    for layer in resp.layers:
        geo = layer_geometry(layer)
        frame_rate = SAMPLE_RATE_HZ / geo.hop_samples
        n_units = resp.stats[layer]["vmax"].shape[1]
        for (kind, rate), g in rate_rows.groupby(["kind", "rate_hz"], sort=True):
            nan = np.full(n_units, np.nan)
            vs = vs_sd = vs0 = vs0_sd = pv = nan
            ok_rows = [i for i in g.index if (i, layer) in resp.traces and resp.n_valid[layer][i] >= 4]
            if frame_rate > 2 * rate and ok_rows:
                draws = np.stack([vector_strength(*resp.traces[(i, layer)], rate) for i in ok_rows])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # a unit silent on every seed: NaN
                    vs = np.nanmean(draws, axis=0)
                vs_sd = draws.std(axis=0, ddof=1) if len(ok_rows) > 1 else np.zeros(n_units)
                nulls = [i for i in null_rows if (i, layer) in resp.traces and resp.n_valid[layer][i] >= 4]
                if kind == "am_noise" and nulls and len(ok_rows) > 1:
                    null = np.stack([vector_strength(*resp.traces[(i, layer)], rate) for i in nulls])
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # a unit silent on every null seed
                        vs0 = np.nanmean(null, axis=0)
                    vs0_sd = null.std(axis=0, ddof=1) if len(nulls) > 1 else np.zeros(n_units)
                    pv = _welch_greater(draws, null)
            parts.append(
                pd.DataFrame(
                    {
                        "layer": layer,
                        "unit": np.arange(n_units, dtype=np.int64),
                        "kind": kind,
                        "rate_hz": float(rate),
                        "frame_rate_hz": frame_rate,
                        "vector_strength": vs,
                        "vs_sd": vs_sd,
                        "vs_null": vs0,
                        "vs_null_sd": vs0_sd,
                        "n_seeds": len(ok_rows),
                        "p_value": pv,
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True)
    out["q_value"] = np.nan
    for _, idx in out.groupby(["layer", "kind", "rate_hz"]).groups.items():
        pv = out.loc[idx, "p_value"].to_numpy(np.float64)
        fin = np.isfinite(pv)
        if fin.any():
            q = np.full(len(pv), np.nan)
            q[fin] = bh_qvalues(pv[fin])
            out.loc[idx, "q_value"] = q
    out["follows"] = (out["q_value"] < alpha).fillna(False).astype(bool)
    order = {layer: i for i, layer in enumerate(CONV_LAYERS)}
    return (
        out.assign(_o=out["layer"].map(order))
        .sort_values(["_o", "unit", "kind", "rate_hz"], kind="stable")
        .drop(columns="_o")
        .reset_index(drop=True)
    )
