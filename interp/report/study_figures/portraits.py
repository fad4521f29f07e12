"""Unit portraits: three views of one unit side by side (the ``unit_portraits`` study).

1. *What it wants to hear*: the mel spectrogram of the best seed of a feature visualization
   (:mod:`interp.analysis.visualize`);
2. *What drives it in its top clip*: an attribution map (:mod:`interp.analysis.attribution`; red,
   positive cells only, opaque with their share of the largest; the top region outlined) over the
   clip's mel spectrogram in grey, zoomed to the cells that can reach the target frame;
3. *Its linear description*: the spectro-temporal receptive field (:mod:`interp.analysis.strf`;
   time in the receptive field x mel band centre, diverging scale at 0).

The spectrograms are drawn with the mel band index on y (ticks in Hz), the STRF on a log-frequency
axis; the function takes plain arrays (any object with ``db``, ``times_s`` and ``freqs_hz`` is a
spectrogram, e.g. :class:`interp.run.traces.Spectrogram`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.report.figures.portrait_charts import STRF_SCALE, outline_cells, strf_edges
from interp.report.figures.style import SPEC_SCALE, apply_house_style, hz_label
from soundnet.errors import ParameterError

__all__ = ["PANEL_TITLES", "unit_portrait_figure"]

#: What each panel shows (subplot titles, before the details of the unit).
PANEL_TITLES = ("what it wants to hear", "what drives it in its top clip", "its STRF (linear fit)")
_HZ_TICKS = (100, 250, 500, 1000, 2000, 4000, 8000)
_SPEC_TICKS = (250, 500, 1000, 2000, 4000, 8000)  # mel from 0 Hz: lower ticks crowd
_GREYS = [[0.0, "#ffffff"], [1.0, "#3b4450"]]
_ATTR_SCALE = [[0.0, "rgba(255,255,255,0)"], [0.15, "rgba(253,174,97,0.45)"], [1.0, "rgba(215,25,28,0.95)"]]


def _band_ticks(freqs_hz: np.ndarray) -> dict[str, Any]:
    targets = [f for f in _SPEC_TICKS if freqs_hz[0] <= f <= freqs_hz[-1]]
    pos = np.interp(targets, freqs_hz, np.arange(len(freqs_hz), dtype=np.float64))
    return dict(tickvals=[float(p) for p in pos], ticktext=[hz_label(f) for f in targets], showgrid=False)


def _spec_trace(spec: Any, *, grey: bool, zmin: float = -80.0) -> go.Heatmap:
    db = np.asarray(spec.db, dtype=np.float32)
    t = np.asarray(spec.times_s, dtype=np.float64)
    return go.Heatmap(
        z=np.clip(np.rint(db), -128, 0).astype(np.int8),
        x=t,
        y=np.arange(db.shape[0], dtype=np.int16),
        colorscale=_GREYS if grey else SPEC_SCALE,
        zmin=zmin,
        zmax=0.0,
        showscale=False,
        hovertemplate="%{x:.2f} s · %{z} dB<extra></extra>",
    )


def _check_spec(name: str, spec: Any) -> np.ndarray:
    db = np.asarray(getattr(spec, "db", None))
    fr = np.asarray(getattr(spec, "freqs_hz", None), dtype=np.float64)
    t = np.asarray(getattr(spec, "times_s", None), dtype=np.float64)
    if db.ndim != 2 or fr.shape != (db.shape[0],) or t.shape != (db.shape[1],) or db.shape[1] < 1:
        raise ParameterError(
            f"The '{name}' parameter of unit_portrait_figure must be a spectrogram (db (mels, frames), "
            f"times_s, freqs_hz). Got {type(spec).__name__} instead."
        )
    return fr


def unit_portrait_figure(
    visualization_spec: Any,
    clip_spec: Any,
    attribution: np.ndarray,
    time_edges_s: np.ndarray,
    freq_edges_hz: np.ndarray,
    strf_weights: np.ndarray,
    strf_lag_s: float,
    strf_mel_hz: np.ndarray,
    *,
    evaluated: np.ndarray | None = None,
    top_mask: np.ndarray | None = None,
    target_s: float | None = None,
    panel_titles: tuple[str, str, str] = PANEL_TITLES,
    title: str | None = None,
    height: int = 420,
    width: int = 1380,
) -> go.Figure:
    """One unit's three portraits side by side.

    Parameters
    ----------
    visualization_spec : Spectrogram
        Of the visualization's best seed (:func:`interp.analysis.visualize.visualization_spectrogram`).
    clip_spec : Spectrogram
        Of the unit's top clip (:func:`interp.run.traces.clip_spectrogram`), drawn in grey.
    attribution : array, shape (n_time, n_freq)
        The attribution map (:class:`interp.analysis.attribution.Attribution` ``map``).
    time_edges_s, freq_edges_hz : arrays, shapes (n_time + 1,), (n_freq + 1,)
        Edges of its cells in seconds and Hz.
    strf_weights : array, shape (n_lags, n_mels)
        The unit's STRF; ``strf_lag_s`` the width of one lag in seconds, ``strf_mel_hz`` the band
        centres.
    evaluated : array of bool, shape (n_time, n_freq), optional
        Cells that can reach the target frame; the middle panel is zoomed to them.
    top_mask : array of bool, shape (n_time, n_freq), optional
        The top-attributed region, outlined.
    target_s : float (in seconds), optional
        Centre of the target frame's receptive field, a dotted line.
    panel_titles : three str
    """
    vf = _check_spec("visualization_spec", visualization_spec)
    cf = _check_spec("clip_spec", clip_spec)
    a = np.asarray(attribution, dtype=np.float64)
    te = np.asarray(time_edges_s, dtype=np.float64)
    fe = np.asarray(freq_edges_hz, dtype=np.float64)
    if a.ndim != 2 or te.shape != (a.shape[0] + 1,) or fe.shape != (a.shape[1] + 1,):
        raise ParameterError(
            "The 'attribution' parameter of unit_portrait_figure must be (n_time, n_freq) with edges of one "
            f"more each. Got {a.shape}, {te.shape}, {fe.shape} instead."
        )
    w = np.asarray(strf_weights, dtype=np.float64)
    hz = np.asarray(strf_mel_hz, dtype=np.float64)
    if w.ndim != 2 or hz.shape != (w.shape[1],) or not np.all(hz > 0) or not float(strf_lag_s) > 0:
        raise ParameterError(
            "The 'strf_weights' parameter of unit_portrait_figure must be (n_lags, n_mels) with positive "
            f"band centres and lag. Got {w.shape}, {hz.shape}, {strf_lag_s!r} instead."
        )
    ev = np.ones_like(a, dtype=bool) if evaluated is None else np.asarray(evaluated, dtype=bool)

    fig = make_subplots(rows=1, cols=3, subplot_titles=list(panel_titles), horizontal_spacing=0.075)
    # 1. the visualization
    fig.add_trace(_spec_trace(visualization_spec, grey=False), row=1, col=1)
    vt = np.asarray(visualization_spec.times_s, dtype=np.float64)
    fig.update_xaxes(title=dict(text="time (s)"), range=[0.0, float(vt[-1])], showgrid=False, row=1, col=1)
    fig.update_yaxes(title=dict(text="Hz (mel)"), **_band_ticks(vf), row=1, col=1)

    # 2. attribution over the clip (rows: the clip spectrogram's band index)
    fig.add_trace(_spec_trace(clip_spec, grey=True), row=1, col=2)
    rows = np.interp(fe, cf, np.arange(len(cf), dtype=np.float64), left=-0.5, right=len(cf) - 0.5)
    pos = np.where((a > 0) & ev, a, np.nan)
    top = float(np.nanmax(pos)) if np.isfinite(pos).any() else 1.0
    fig.add_trace(
        go.Heatmap(
            z=pos.T,
            x=te,
            y=rows,
            zmin=0.0,
            zmax=top,
            colorscale=_ATTR_SCALE,
            showscale=False,
            hovertemplate="%{x:.2f} s · attribution %{z:.3g}<extra></extra>",
        ),
        row=1,
        col=2,
    )
    if top_mask is not None:
        outline_cells(fig, top_mask, te, rows, color="#1b9e77", width=1.2, row=1, col=2)
    if target_s is not None and math.isfinite(float(target_s)):
        fig.add_vline(x=float(target_s), line=dict(color="#1f2933", width=1, dash="dot"), row=1, col=2)
    cols = np.nonzero(ev.any(axis=1))[0]
    ct = np.asarray(clip_spec.times_s, dtype=np.float64)
    x0, x1 = float(te[0]), float(max(te[-1], ct[-1]))
    if len(cols):
        lo, hi = float(te[cols[0]]), float(te[cols[-1] + 1])
        pad = 0.5 * (hi - lo)
        x0, x1 = max(x0, lo - pad), min(x1, hi + pad)
    fig.update_xaxes(title=dict(text="time in the clip (s)"), range=[x0, x1], showgrid=False, row=1, col=2)
    fig.update_yaxes(**_band_ticks(cf), range=[-0.5, len(cf) - 0.5], row=1, col=2)

    # 3. the STRF
    t, f = strf_edges(w.shape[0], float(strf_lag_s), hz)
    m = float(np.nanmax(np.abs(w))) if np.isfinite(w).any() else 0.0
    m = m if m > 0 else 1.0
    fig.add_trace(
        go.Heatmap(
            z=w.T,
            x=t,
            y=f,
            colorscale=STRF_SCALE,
            zmid=0.0,
            zmin=-m,
            zmax=m,
            showscale=True,
            colorbar=dict(title=dict(text="weight", side="right"), thickness=10, len=0.8, x=1.01),
            hovertemplate="%{x:.3f} s · %{y:.0f} Hz · weight %{z:.3g}<extra></extra>",
        ),
        row=1,
        col=3,
    )
    ticks = [v for v in _HZ_TICKS if f[0] <= v <= f[-1]]
    fig.update_xaxes(
        title=dict(text="time in the receptive field (s)"), range=[0.0, float(t[-1])], showgrid=False, row=1, col=3
    )
    fig.update_yaxes(
        type="log",
        range=[math.log10(f[0]), math.log10(f[-1])],
        tickvals=ticks,
        ticktext=[hz_label(v) for v in ticks],
        showgrid=False,
        title=dict(text="mel band centre (Hz)"),
        row=1,
        col=3,
    )
    fig.update_annotations(font=dict(size=12))
    apply_house_style(fig, title=title, height=height, width=width)
    fig.update_layout(margin=dict(l=60, r=70, t=80 if title else 50, b=50), title=dict(font=dict(size=14)))
    return fig
