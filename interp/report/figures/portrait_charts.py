"""Unit portraits: spectro-temporal receptive fields (STRFs), one unit's or a gallery of a layer's.

An STRF (:mod:`interp.analysis.strf`) is a ``(lags, mels)`` array of ridge weights of the log-mel
spectrogram in a unit's receptive field: lag 0 is the start of the field, each lag ``lag_s``
seconds wide; the mel bands' centres in Hz come from
:func:`interp.analysis.strf.mel_centres_hz`. The figures draw it with time in the receptive field
on x (seconds from its start), the band centre on a log-frequency y axis, and a diverging colour
scale centred at 0 (red: more energy there raises the unit; blue: lowers it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.report.figures.style import apply_house_style, hz_label, styled_figure
from soundnet.errors import ParameterError

__all__ = [
    "STRF_SCALE",
    "STRF_NOTE",
    "strf_edges",
    "strf_figure",
    "strf_gallery_figure",
    "strf_r_figure",
    "attribution_overlay",
]

#: Diverging colour scale of STRFs (blue negative, white 0, red positive).
STRF_SCALE = "RdBu_r"
#: What a held-out r of an STRF means, in words.
STRF_NOTE = (
    "held-out r: how well a linear filter of the log-mel spectrogram predicts this unit on held-out "
    "clips; near 0: the unit is not linear in the spectrogram"
)
_HZ_TICKS = (20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


def _check(func: str, weights: Any, lag_s: float, mel_hz: Any) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(weights, dtype=np.float64)
    hz = np.asarray(mel_hz, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
        raise ParameterError(
            f"The 'weights' parameter of {func} must be 2-D (lags, mels). Got shape {w.shape} instead."
        )
    if hz.shape != (w.shape[1],) or not np.all(hz > 0) or np.any(np.diff(hz) <= 0):
        raise ParameterError(
            f"The 'mel_hz' parameter of {func} must be {w.shape[1]} increasing positive band centres. "
            f"Got shape {hz.shape} instead."
        )
    if not (math.isfinite(float(lag_s)) and float(lag_s) > 0):
        raise ParameterError(f"The 'lag_s' parameter of {func} must be > 0. Got {lag_s!r} instead.")
    return w, hz


def strf_edges(n_lags: int, lag_s: float, mel_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges of an STRF heatmap: time ``lag * lag_s`` for ``lag = 0 .. n_lags`` (seconds from
    the start of the receptive field) and frequency edges between the band centres (geometric
    midpoints; the outer edges half a band beyond)."""
    t = np.arange(n_lags + 1, dtype=np.float64) * float(lag_s)
    logf = np.log(np.asarray(mel_hz, dtype=np.float64))
    if len(logf) == 1:
        mid = np.array([logf[0] - 0.05, logf[0] + 0.05])
    else:
        inner = (logf[:-1] + logf[1:]) / 2
        mid = np.concatenate([[2 * logf[0] - inner[0]], inner, [2 * logf[-1] - inner[-1]]])
    return t, np.exp(mid)


def _heatmap(
    w: np.ndarray, lag_s: float, hz: np.ndarray, *, showscale: bool, coloraxis: str | None = None, hover: bool = True
) -> go.Heatmap:
    t, f = strf_edges(w.shape[0], lag_s, hz)
    m = float(np.nanmax(np.abs(w))) if np.isfinite(w).any() else 0.0
    m = m if m > 0 else 1.0
    kw: dict[str, Any] = (
        {"coloraxis": coloraxis}
        if coloraxis
        else {
            "colorscale": STRF_SCALE,
            "zmid": 0.0,
            "zmin": -m,
            "zmax": m,
            "showscale": showscale,
            "colorbar": dict(title=dict(text="weight", side="right"), thickness=12, len=0.9),
        }
    )
    if not hover:
        return go.Heatmap(z=w.T, x=t, y=f, hoverinfo="skip", **kw)
    centre_t = (t[:-1] + t[1:]) / 2
    return go.Heatmap(
        z=w.T,  # rows: mel bands (y), columns: lags (x)
        x=t,
        y=f,
        customdata=np.broadcast_to(centre_t[None, :], (len(hz), len(centre_t))),
        text=np.broadcast_to(np.round(hz)[:, None], (len(hz), len(centre_t))),
        hovertemplate="%{customdata:.3f} s into the field · %{text:.0f} Hz · weight %{z:.3g}<extra></extra>",
        **kw,
    )


def _freq_axis(hz: np.ndarray, *, title: bool = True) -> dict[str, Any]:
    _, f = strf_edges(1, 1.0, hz)
    ticks = [v for v in _HZ_TICKS if f[0] <= v <= f[-1]]
    return dict(
        type="log",
        range=[math.log10(f[0]), math.log10(f[-1])],
        tickvals=ticks,
        ticktext=[hz_label(v) for v in ticks],
        showgrid=False,
        title=dict(text="mel band centre (Hz)") if title else None,
    )


def strf_figure(
    weights: np.ndarray,
    lag_s: float,
    mel_hz: np.ndarray | Sequence[float],
    *,
    r_heldout: float | None = None,
    title: str | None = None,
    height: int = 320,
    compact: bool = False,
) -> go.Figure:
    """One unit's STRF as a heatmap.

    Parameters
    ----------
    weights : array, shape (n_lags, n_mels)
        The unit's ridge weights (``strf_filters.parquet``'s ``weight`` by ``lag``, ``mel``).
    lag_s : float (in seconds)
        Width of one lag (``strf.parquet``'s ``lag_s``): x is ``lag * lag_s``, seconds from the
        start of the receptive field.
    mel_hz : array, shape (n_mels,)
        Mel band centres (:func:`interp.analysis.strf.mel_centres_hz`), on a log y axis.
    r_heldout : float, optional
        The STRF's held-out prediction correlation, written in the corner.
    compact : bool
        A thumbnail: no colour bar, no axis titles, small margins.
    """
    w, hz = _check("strf_figure", weights, lag_s, mel_hz)
    hm = _heatmap(w, float(lag_s), hz, showscale=not compact, hover=not compact)
    n = w.shape[0]
    layout: dict[str, Any] = dict(
        xaxis=dict(
            range=[0.0, n * float(lag_s)],
            showgrid=False,
            title=None if compact else dict(text="time in the receptive field (s)"),
        ),
        yaxis=_freq_axis(hz, title=not compact),
    )
    if compact:
        layout["margin"] = dict(l=34, r=6, t=6, b=22)
        layout["xaxis"]["tickfont"] = dict(size=9)
        layout["xaxis"]["nticks"] = 4
        layout["yaxis"]["tickfont"] = dict(size=9)
    if r_heldout is not None and math.isfinite(float(r_heldout)) and not compact:
        layout["annotations"] = [
            dict(
                text=f"held-out r = {float(r_heldout):.2f}",
                xref="paper",
                yref="paper",
                x=0.0,
                y=1.0,
                xanchor="left",
                yanchor="bottom",
                showarrow=False,
                font=dict(size=12),
            )
        ]
    return styled_figure([hm], layout, title=title, height=height)


def strf_gallery_figure(
    items: Sequence[tuple[str, np.ndarray]],
    lag_s: float,
    mel_hz: np.ndarray | Sequence[float],
    *,
    columns: int = 6,
    title: str | None = None,
    cell_height: int = 150,
) -> go.Figure:
    """Several units' STRFs (of one layer: the same lags and bands) as a grid of small heatmaps,
    each with its own symmetric colour range.

    Parameters
    ----------
    items : sequence of (label, weights)
        A subplot title (e.g. ``"unit 12 · r 0.61"``) and a ``(n_lags, n_mels)`` array each.
    lag_s, mel_hz
        As :func:`strf_figure`.
    columns : int
    """
    if not items:
        raise ParameterError("The 'items' parameter of strf_gallery_figure must not be empty. Got 0 items instead.")
    if int(columns) < 1:
        raise ParameterError(f"The 'columns' parameter of strf_gallery_figure must be >= 1. Got {columns!r} instead.")
    arrays = [_check("strf_gallery_figure", w, lag_s, mel_hz)[0] for _, w in items]
    hz = np.asarray(mel_hz, dtype=np.float64)
    cols = min(int(columns), len(items))
    rows = -(-len(items) // cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[str(label) for label, _ in items],
        horizontal_spacing=0.03,
        vertical_spacing=min(0.3 / rows, 0.08),
    )
    n = arrays[0].shape[0]
    for i, w in enumerate(arrays):
        r, c = divmod(i, cols)
        fig.add_trace(_heatmap(w, float(lag_s), hz, showscale=False), row=r + 1, col=c + 1)
        fig.update_xaxes(range=[0.0, w.shape[0] * float(lag_s)], showgrid=False, nticks=4, row=r + 1, col=c + 1)
        fig.update_yaxes(**_freq_axis(hz, title=False), row=r + 1, col=c + 1)
        if c:
            fig.update_yaxes(showticklabels=False, row=r + 1, col=c + 1)
    fig.update_xaxes(title=dict(text="s in the field"), row=rows, col=1)
    fig.update_yaxes(title=dict(text="Hz"), row=1, col=1)
    fig.update_annotations(font=dict(size=11))
    apply_house_style(fig, title=title, height=rows * cell_height + (90 if title else 50))
    fig.update_layout(margin=dict(l=50, r=10, b=40, t=80 if title else 40), meta=dict(n_lags=n))
    return fig


def strf_r_figure(
    layers: Sequence[str], r_by_layer: Sequence[np.ndarray], *, title: str | None = None, height: int = 280
) -> go.Figure:
    """The held-out r of every unit's STRF, one box (with its units as points) per layer.

    Parameters
    ----------
    layers : sequence of str
    r_by_layer : sequence of arrays
        ``r_heldout`` of each layer's units (NaN left out).
    """
    if len(layers) != len(r_by_layer):
        raise ParameterError(
            f"The 'r_by_layer' parameter of strf_r_figure must have one array per layer ({len(layers)}). "
            f"Got {len(r_by_layer)} instead."
        )
    traces = []
    for layer, r in zip(layers, r_by_layer, strict=True):
        v = np.asarray(r, dtype=np.float64)
        v = v[np.isfinite(v)]
        traces.append(
            go.Box(
                y=v,
                name=str(layer),
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(size=3, color="#4e79a7", opacity=0.5),
                line=dict(color="#1f2933", width=1),
                fillcolor="rgba(78,121,167,0.12)",
                hovertemplate=f"{layer}: r %{{y:.2f}}<extra></extra>",
                showlegend=False,
            )
        )
    return styled_figure(
        traces,
        dict(
            yaxis=dict(title=dict(text="held-out r of the STRF"), zeroline=True),
            xaxis=dict(title=None),
        ),
        title=title,
        height=height,
    )


def attribution_overlay(
    fig: go.Figure,
    freqs_hz: np.ndarray | Sequence[float],
    values: np.ndarray,
    time_edges_s: np.ndarray | Sequence[float],
    freq_edges_hz: np.ndarray | Sequence[float],
    *,
    top_mask: np.ndarray | None = None,
    evaluated: np.ndarray | None = None,
) -> go.Figure:
    """Draw an attribution map over a spectrogram figure (:func:`~interp.report.figures.spectrogram_figure`
    or :func:`~interp.report.figures.clip_activation_figure`, whose y axis is the mel band index).

    Parameters
    ----------
    fig : go.Figure
        Modified in place and returned.
    freqs_hz : array, shape (n_mels,)
        The spectrogram's band centres (the y positions of its rows).
    values : array, shape (n_time, n_freq)
        Attribution per cell (:class:`interp.analysis.attribution.Attribution` ``map``); positive
        cells are drawn (red, opaque with their share of the largest), the others left clear.
    time_edges_s, freq_edges_hz : arrays, shapes (n_time + 1,), (n_freq + 1,)
        The cells' edges in seconds and Hz.
    top_mask : array of bool, shape (n_time, n_freq), optional
        The top-attributed region, outlined.
    evaluated : array of bool, optional
        Cells that were evaluated (the others are left clear).
    """
    v = np.asarray(values, dtype=np.float64)
    te = np.asarray(time_edges_s, dtype=np.float64)
    fe = np.asarray(freq_edges_hz, dtype=np.float64)
    fr = np.asarray(freqs_hz, dtype=np.float64)
    if v.ndim != 2 or te.shape != (v.shape[0] + 1,) or fe.shape != (v.shape[1] + 1,):
        raise ParameterError(
            f"The 'values' parameter of attribution_overlay must be (n_time, n_freq) with edges of one more "
            f"each. Got {v.shape}, {te.shape}, {fe.shape} instead."
        )
    rows = np.interp(fe, fr, np.arange(len(fr), dtype=np.float64), left=-0.5, right=len(fr) - 0.5)
    pos = np.where(v > 0, v, np.nan)
    if evaluated is not None:
        pos = np.where(np.asarray(evaluated, dtype=bool), pos, np.nan)
    top = float(np.nanmax(pos)) if np.isfinite(pos).any() else 1.0
    fig.add_trace(
        go.Heatmap(
            z=pos.T,
            x=te,
            y=rows,
            zmin=0.0,
            zmax=top,
            colorscale=[[0.0, "rgba(255,255,255,0)"], [0.15, "rgba(253,174,97,0.35)"], [1.0, "rgba(215,25,28,0.9)"]],
            showscale=False,
            name="attribution",
            hovertemplate="%{x:.2f} s · attribution %{z:.3g}<extra></extra>",
        )
    )
    if top_mask is not None:
        outline_cells(fig, top_mask, te, rows, color="#38e8c6", width=1.5)
    return fig


def outline_cells(
    fig: go.Figure, mask: Any, x_edges: np.ndarray, y_edges: np.ndarray, *, color: str, width: float, **where: Any
) -> None:
    """Outline the cells of a ``(n_x, n_y)`` boolean grid (e.g. an attribution's top region) on
    ``fig``; ``where`` places them in a subplot (``row=``, ``col=``)."""
    for i, j in zip(*np.nonzero(np.asarray(mask, dtype=bool)), strict=True):
        fig.add_shape(
            type="rect",
            x0=x_edges[i],
            x1=x_edges[i + 1],
            y0=y_edges[j],
            y1=y_edges[j + 1],
            line=dict(color=color, width=width),
            fillcolor="rgba(0,0,0,0)",
            layer="above",
            **where,
        )
