"""Figures of the tuning studies: tonotopy, tuning curves, best frequencies, kernels, level,
modulation rate, rate following, sweep direction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.report.figures import PALETTE, hz_label
from interp.report.study_figures.common import MUTED, NONE, grid, layer_list, log2_axis, styled
from soundnet.errors import ParameterError

__all__ = [
    "tonotopy_figure",
    "example_curves_figure",
    "best_frequency_histograms",
    "kernel_agreement_figure",
    "kernel_response_figure",
    "level_figure",
    "rate_tuning_figure",
    "following_figure",
    "direction_figure",
]


# --------------------------------------------------------------------------------------------
# frequency tuning
# --------------------------------------------------------------------------------------------
def _unit_matrix(curves: pd.DataFrame, layer: str, level_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(freqs (n_f,), range-normalised responses (n_units, n_f), units (n_units,))`` of one layer at one level."""
    sub = curves[(curves["layer"] == layer) & np.isclose(curves["level_db"], level_db)]
    piv = sub.pivot_table(index="unit", columns="freq_hz", values="response", aggfunc="mean")
    r = piv.to_numpy(dtype=np.float64)
    lo, hi = np.nanmin(r, axis=1, keepdims=True), np.nanmax(r, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(hi - lo > 0, (r - lo) / np.where(hi - lo > 0, hi - lo, 1.0), 0.0)
    return piv.columns.to_numpy(dtype=np.float64), z, piv.index.to_numpy()


def tonotopy_figure(
    curves: pd.DataFrame,
    *,
    level_db: float,
    best: pd.DataFrame | None = None,
    title: str | None = None,
) -> go.Figure:
    """Per layer, every (responsive) unit's frequency tuning curve as one row, sorted by best frequency.

    Every layer of ``curves`` gets a panel, also one without a responsive unit (it then says so).

    Parameters
    ----------
    curves : pandas.DataFrame
        Tone curves (``layer, unit, freq_hz, level_db, response``).
    level_db : float (peak dBFS)
        The tone level shown.
    best : pandas.DataFrame, optional
        :func:`interp.analysis.tuning.best_frequencies`: only its ``responsive`` units are shown,
        counted in the panel titles, and ``resolution_hz`` (if present) is drawn as a dashed line.
    """
    layers = layer_list(curves)
    rows, cols = grid(len(layers))
    keep: dict[str, np.ndarray] = {}
    limit: dict[str, float] = {}
    titles = []
    for layer in layers:
        n_all = int(curves.loc[curves["layer"] == layer, "unit"].nunique())
        if best is None:
            titles.append(layer)
            continue
        b = best[(best["layer"] == layer) & np.isclose(best["level_db"], level_db)]
        keep[layer] = np.sort(b.loc[b["responsive"], "unit"].to_numpy())
        if "resolution_hz" in b.columns and len(b):
            limit[layer] = float(b["resolution_hz"].iloc[0])
        titles.append(f"{layer}: {len(keep[layer])} of {n_all} units responsive")
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.06, vertical_spacing=0.16)
    f_all = np.sort(curves["freq_hz"].unique())
    for k, layer in enumerate(layers):
        freqs, z, units = _unit_matrix(curves, layer, level_db)
        if layer in keep:
            sel = np.isin(units, keep[layer])
            z, units = z[sel], units[sel]
        r, c = k // cols + 1, k % cols + 1
        if len(z):
            order = np.lexsort((np.arange(len(z)), np.argmax(z, axis=1)))
            fig.add_trace(
                go.Heatmap(
                    z=z[order],
                    x=np.log2(freqs),
                    y=np.arange(len(order)),
                    coloraxis="coloraxis",
                    customdata=np.repeat(units[order][:, None], len(freqs), axis=1),
                    hovertemplate=f"{layer} unit %{{customdata}}<br>%{{x:.2f}} log2 Hz: %{{z:.2f}}<extra></extra>",
                ),
                row=r,
                col=c,
            )
        else:
            fig.add_trace(
                go.Scatter(
                    x=[np.log2(f_all).mean()], y=[0], mode="text", text=["no responsive unit"], showlegend=False
                ),
                row=r,
                col=c,
            )
        if layer in limit and f_all[0] < limit[layer] < f_all[-1]:
            fig.add_vline(x=float(np.log2(limit[layer])), row=r, col=c, line=dict(color="white", dash="dash", width=1))
        log2_axis(fig, f_all[0], f_all[-1], row=r, col=c, title="tone frequency (Hz)" if r == rows else None)
        fig.update_yaxes(
            row=r,
            col=c,
            title=dict(text="units, by best frequency" if c == 1 else None),
            showgrid=False,
            range=[-0.5, max(len(z), 1) - 0.5],
        )
    fig.update_layout(
        coloraxis=dict(
            colorscale="Viridis",
            cmin=0,
            cmax=1,
            colorbar=dict(title=dict(text="response<br>(unit's range)", side="right"), thickness=10),
        )
    )
    fig.update_annotations(font_size=11)
    title = title or (
        f"Tonotopy: frequency tuning of every {'responsive ' if best is not None else ''}unit at {level_db:g} dBFS "
        "tones (each row one unit, sorted by best frequency)"
    )
    return styled(fig, title, height=330 * rows + 40, width=1200)


def example_curves_figure(
    curves: pd.DataFrame, best: pd.DataFrame, examples: Sequence[tuple[str, int]], *, title: str | None = None
) -> go.Figure:
    """Tuning curves of a few units, one line per tone level.

    Parameters
    ----------
    curves : pandas.DataFrame
        Tone curves.
    best : pandas.DataFrame
        :func:`interp.analysis.tuning.best_frequencies` (for the panel titles).
    examples : sequence of (layer, unit)
    """
    if not examples:
        raise ParameterError("The 'examples' parameter of example_curves_figure must name at least one unit.")
    rows, cols = grid(len(examples))
    levels = sorted(curves["level_db"].unique())
    ref = levels[len(levels) // 2]
    titles = []
    for layer, unit in examples:
        b = best[(best["layer"] == layer) & (best["unit"] == unit) & np.isclose(best["level_db"], ref)]
        bf = float(b["best_freq_hz"].iloc[0]) if len(b) else math.nan
        q = float(b["q_half"].iloc[0]) if len(b) else math.nan
        titles.append(
            f"{layer} unit {unit}: BF {hz_label(round(bf))} Hz, Q {q:.1f}"
            if np.isfinite(q)
            else f"{layer} unit {unit}: BF {hz_label(round(bf))} Hz"
        )
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.07, vertical_spacing=0.2)
    f_all = np.sort(curves["freq_hz"].unique())
    for k, (layer, unit) in enumerate(examples):
        r, c = k // cols + 1, k % cols + 1
        sub = curves[(curves["layer"] == layer) & (curves["unit"] == unit)]
        for i, lv in enumerate(levels):
            g = sub[np.isclose(sub["level_db"], lv)].sort_values("freq_hz")
            fig.add_trace(
                go.Scatter(
                    x=np.log2(g["freq_hz"]),
                    y=g["response"],
                    mode="lines+markers",
                    name=f"tones at {lv:g} dBFS",
                    legendgroup=f"{lv:g}",
                    showlegend=k == 0,
                    line=dict(color=PALETTE[i % len(PALETTE)], width=1.6),
                    marker=dict(size=3),
                    customdata=g["freq_hz"],
                    hovertemplate="%{customdata:.0f} Hz: %{y:.3g}<extra>" + f"{lv:g} dBFS</extra>",
                ),
                row=r,
                col=c,
            )
        log2_axis(fig, f_all[0], f_all[-1], row=r, col=c, title="tone frequency (Hz)" if r == rows else None)
        fig.update_yaxes(
            row=r, col=c, title=dict(text="response (peak activation)" if c == 1 else None), rangemode="tozero"
        )
    fig.update_layout(legend=dict(orientation="h", y=-0.12 if rows > 1 else -0.25, x=0))
    title = (
        title
        or "Example frequency tuning curves at three tone levels (BF: best frequency; Q: BF / half-maximum bandwidth)"
    )
    return styled(fig, title, height=300 * rows + 80, width=1200)


def best_frequency_histograms(best: pd.DataFrame, *, level_db: float, title: str | None = None) -> go.Figure:
    """Per layer, how many units have their best frequency in each third-octave band."""
    sub = best[np.isclose(best["level_db"], level_db) & best["responsive"]]
    layers = layer_list(sub)
    rows, cols = grid(len(layers))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=layers, horizontal_spacing=0.06, vertical_spacing=0.2)
    lo, hi = float(best["best_freq_hz"].min()), float(best["best_freq_hz"].max())
    edges = np.arange(math.floor(math.log2(max(lo, 1.0)) * 3) / 3, math.log2(hi) + 1 / 3 + 1e-9, 1 / 3)
    if len(edges) < 2:
        edges = np.array([math.log2(lo) - 1 / 6, math.log2(lo) + 1 / 6])
    for k, layer in enumerate(layers):
        r, c = k // cols + 1, k % cols + 1
        x = np.log2(sub.loc[sub["layer"] == layer, "best_freq_hz"].to_numpy(dtype=np.float64))
        counts, _ = np.histogram(np.clip(x, edges[0], edges[-1] - 1e-9), bins=edges)
        centres = (edges[:-1] + edges[1:]) / 2
        fig.add_trace(
            go.Bar(
                x=centres,
                y=counts,
                width=np.diff(edges) * 0.95,
                marker_color=PALETTE[0],
                showlegend=False,
                customdata=np.stack([2 ** edges[:-1], 2 ** edges[1:]], axis=1),
                hovertemplate="%{customdata[0]:.0f}-%{customdata[1]:.0f} Hz: %{y} units<extra></extra>",
            ),
            row=r,
            col=c,
        )
        log2_axis(fig, 2 ** edges[0], 2 ** edges[-1], row=r, col=c, title="best frequency (Hz)" if r == rows else None)
        fig.update_yaxes(row=r, col=c, title=dict(text="units" if c == 1 else None))
    title = title or f"Best frequencies per layer (tones at {level_db:g} dBFS; third-octave bins)"
    return styled(fig, title, height=300 * rows + 40, width=1200)


def kernel_agreement_figure(table: pd.DataFrame, *, rho: float, title: str | None = None) -> go.Figure:
    """conv1: best frequency measured with tones against the peak of each filter's frequency response.

    Parameters
    ----------
    table : pandas.DataFrame
        ``unit, best_freq_hz`` and ``kernel_peak_grid_hz`` (the filter's peak among the tone
        frequencies) or ``kernel_peak_hz``.
    rho : float
        Spearman rank correlation, shown in the title.
    """
    xcol = "kernel_peak_grid_hz" if "kernel_peak_grid_hz" in table.columns else "kernel_peak_hz"
    x = np.log2(table[xcol].to_numpy(dtype=np.float64))
    y = np.log2(table["best_freq_hz"].to_numpy(dtype=np.float64))
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[lo - 0.3, hi + 0.3],
            y=[lo - 0.3, hi + 0.3],
            mode="lines",
            name="equal",
            line=dict(color=MUTED, dash="dash", width=1),
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=x,
            y=y,
            mode="markers+text",
            name="conv1 unit",
            text=[str(u) for u in table["unit"]],
            textposition="top left",
            textfont=dict(size=9, color=MUTED),
            marker=dict(size=9, color=PALETTE[0], line=dict(color="white", width=1)),
            customdata=np.stack([table["unit"], table[xcol], table["best_freq_hz"]], axis=1),
            hovertemplate="unit %{customdata[0]}: kernel %{customdata[1]:.0f} Hz, "
            "tones %{customdata[2]:.0f} Hz<extra></extra>",
        )
    )
    log2_axis(
        fig, 2 ** (lo - 0.2), 2 ** (hi + 0.2), title="peak of the filter's frequency response, from the weights (Hz)"
    )
    log2_axis(fig, 2 ** (lo - 0.2), 2 ** (hi + 0.2), title="best frequency from tone responses (Hz)", axis="y")
    fig.update_layout(legend=dict(x=0.02, y=0.98), showlegend=True)
    title = title or f"conv1: tone best frequency vs filter peak (Spearman rho = {rho:.3f}, {len(table)} units)"
    return styled(fig, title, height=520, width=620, top=56)


def kernel_response_figure(
    freqs_hz: np.ndarray,
    gain_db: np.ndarray,
    *,
    f_min_hz: float = 20.0,
    floor_db: float = -40.0,
    title: str | None = None,
) -> go.Figure:
    """conv1 filters' magnitude responses (dB re each filter's maximum), filters sorted by peak."""
    band = freqs_hz >= f_min_hz
    f, g = freqs_hz[band], np.maximum(gain_db[:, band], floor_db)
    order = np.argsort(np.argmax(g, axis=1), kind="stable")
    fig = go.Figure(
        go.Heatmap(
            z=g[order],
            x=np.log2(f),
            y=[f"unit {u}" for u in order],
            colorscale="Viridis",
            zmin=floor_db,
            zmax=0,
            colorbar=dict(title=dict(text="gain (dB re peak)", side="right"), thickness=10),
            hovertemplate="%{y}: %{z:.1f} dB<extra></extra>",
        )
    )
    log2_axis(fig, f[0], f[-1], title="frequency (Hz)")
    fig.update_yaxes(title=dict(text="conv1 filter (sorted by peak frequency)"), showgrid=False, autorange=True)
    title = title or "conv1 filter frequency responses computed from the weights (64-tap kernels at 22050 Hz)"
    return styled(fig, title, height=460, width=900, top=56)


def level_figure(best: pd.DataFrame, *, curves: pd.DataFrame | None = None, title: str | None = None) -> go.Figure:
    """Per layer, response versus level over every level of the sweep (median and quartiles).

    Parameters
    ----------
    best : pandas.DataFrame
        :func:`interp.analysis.tuning.best_frequencies` (units responsive at some level are drawn).
    curves : pandas.DataFrame, optional
        :func:`interp.analysis.tuning.level_curves` (``response_rel`` at each unit's best tone);
        without it, the peak response over frequencies relative to the highest level's.
    """
    levels = sorted(best["level_db"].unique())
    top = levels[-1]
    fig = go.Figure()
    live = best.groupby(["layer", "unit"])["responsive"].any()
    for i, layer in enumerate(layer_list(best)):
        units = live[layer][live[layer]].index if layer in live.index.get_level_values(0) else []
        if curves is not None:
            sub = curves[(curves["layer"] == layer) & curves["unit"].isin(units)]
            rel = sub.pivot_table(index="unit", columns="level_db", values="response_rel")
        else:
            sub = best[(best["layer"] == layer) & best["unit"].isin(units)]
            piv = sub.pivot_table(index="unit", columns="level_db", values="peak_response")
            rel = piv.div(piv[top].where(piv[top] > 0), axis=0) if top in piv.columns else piv
        if rel.empty:
            continue
        med, q1, q3 = rel.median(), rel.quantile(0.25), rel.quantile(0.75)
        color = PALETTE[i % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=list(med.index),
                y=med.to_numpy(),
                mode="lines+markers",
                name=f"{layer} ({len(rel)} units)",
                line=dict(color=color, width=2),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(q3 - med).to_numpy(),
                    arrayminus=(med - q1).to_numpy(),
                    color=color,
                    thickness=1,
                    width=3,
                ),
                hovertemplate=f"{layer}: %{{x}} dBFS -> %{{y:.2f}}<extra></extra>",
            )
        )
    fig.update_xaxes(title=dict(text="tone level (peak dBFS)"), tickvals=levels)
    y_title = (
        "response at the unit's best tone / its largest" if curves is not None else f"peak response / at {top:g} dBFS"
    )
    fig.update_yaxes(title=dict(text=y_title), rangemode="tozero")
    title = title or "Response versus level at every level (median over responsive units, bars: quartiles)"
    return styled(fig, title, height=420, width=800, top=56)


# --------------------------------------------------------------------------------------------
# temporal tuning
# --------------------------------------------------------------------------------------------
_KIND_NAMES = {"am_noise": "AM noise", "click_train": "click trains"}


def rate_tuning_figure(curves: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per probe kind (rows) and layer (columns): units' rate tuning, sorted by best rate."""
    kinds = [k for k in ("am_noise", "click_train") if k in set(curves["kind"])]
    layers = layer_list(curves)
    fig = make_subplots(
        rows=len(kinds),
        cols=len(layers),
        horizontal_spacing=0.025,
        vertical_spacing=0.16,
        subplot_titles=[f"{layer} · {_KIND_NAMES[k]}" for k in kinds for layer in layers],
    )
    rates = np.sort(curves.loc[curves["kind"].isin(kinds), "rate_hz"].unique())
    ticks = [r for r in (1, 4, 16, 64, 200) if rates[0] <= r <= rates[-1]]
    for i, kind in enumerate(kinds):
        for j, layer in enumerate(layers):
            sub = curves[(curves["kind"] == kind) & (curves["layer"] == layer)]
            piv = sub.pivot_table(index="unit", columns="rate_hz", values="response")
            r = piv.to_numpy(dtype=np.float64)
            lo, hi = np.nanmin(r, axis=1, keepdims=True), np.nanmax(r, axis=1, keepdims=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                z = np.where(hi - lo > 0, (r - lo) / np.where(hi - lo > 0, hi - lo, 1.0), 0.0)
            order = np.lexsort((np.arange(len(z)), np.argmax(z, axis=1)))
            fig.add_trace(
                go.Heatmap(
                    z=z[order],
                    x=np.log2(piv.columns.to_numpy(dtype=np.float64)),
                    y=np.arange(len(order)),
                    coloraxis="coloraxis",
                    hovertemplate="rate 2^%{x:.1f} Hz: %{z:.2f}<extra></extra>",
                ),
                row=i + 1,
                col=j + 1,
            )
            fig.update_xaxes(
                row=i + 1,
                col=j + 1,
                tickvals=[math.log2(t) for t in ticks],
                ticktext=[f"{t:g}" for t in ticks],
                title=dict(text="rate (Hz)" if i == len(kinds) - 1 else None),
                tickfont=dict(size=9),
            )
            fig.update_yaxes(
                row=i + 1,
                col=j + 1,
                showticklabels=j == 0,
                showgrid=False,
                title=dict(text="units, by best rate" if j == 0 else None),
            )
    fig.update_layout(
        coloraxis=dict(
            colorscale="Viridis",
            cmin=0,
            cmax=1,
            colorbar=dict(title=dict(text="response<br>(unit's range)", side="right"), thickness=10),
        )
    )
    fig.update_annotations(font_size=10)
    title = title or "Modulation-rate tuning: each row one unit, scaled to its range, sorted by best rate"
    return styled(fig, title, height=300 * len(kinds) + 60, width=1300)


def following_figure(following: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Median vector strength of the units' activation at the modulation rate, per layer and kind."""
    kinds = [k for k in ("am_noise", "click_train") if k in set(following["kind"])]
    fig = make_subplots(
        rows=1,
        cols=len(kinds),
        subplot_titles=[_KIND_NAMES[k] for k in kinds],
        horizontal_spacing=0.08,
        shared_yaxes=True,
    )
    for j, kind in enumerate(kinds):
        sub = following[(following["kind"] == kind) & following["vector_strength"].notna()]
        for i, layer in enumerate(layer_list(following)):
            g = sub[sub["layer"] == layer].groupby("rate_hz")["vector_strength"]
            if not len(g):
                continue
            med, q1, q3 = g.median(), g.quantile(0.25), g.quantile(0.75)
            color = PALETTE[i % len(PALETTE)]
            fig.add_trace(
                go.Scatter(
                    x=np.log2(med.index.to_numpy(dtype=np.float64)),
                    y=med.to_numpy(),
                    mode="lines+markers",
                    name=layer,
                    legendgroup=layer,
                    showlegend=j == 0,
                    line=dict(color=color, width=2),
                    error_y=dict(
                        type="data",
                        symmetric=False,
                        array=(q3 - med).to_numpy(),
                        arrayminus=(med - q1).to_numpy(),
                        color=color,
                        thickness=1,
                        width=3,
                    ),
                    customdata=med.index,
                    hovertemplate=f"{layer}: %{{customdata:g}} Hz -> %{{y:.2f}}<extra></extra>",
                ),
                row=1,
                col=j + 1,
            )
            if "vs_null" in sub.columns and sub["vs_null"].notna().any():
                g0 = sub[sub["layer"] == layer].groupby("rate_hz")["vs_null"].median().dropna()
                fig.add_trace(
                    go.Scatter(
                        x=np.log2(g0.index.to_numpy(dtype=np.float64)),
                        y=g0.to_numpy(),
                        mode="lines",
                        name=f"{layer}, unmodulated noise",
                        legendgroup=layer,
                        showlegend=False,
                        line=dict(color=color, width=1, dash="dot"),
                        hovertemplate=f"{layer} null: %{{y:.2f}}<extra></extra>",
                    ),
                    row=1,
                    col=j + 1,
                )
        rates = np.sort(following["rate_hz"].unique())
        ticks = [r for r in (1, 2, 4, 8, 16, 32, 64, 128, 200) if rates[0] <= r <= rates[-1]]
        fig.update_xaxes(
            row=1,
            col=j + 1,
            tickvals=[math.log2(t) for t in ticks],
            ticktext=[f"{t:g}" for t in ticks],
            title=dict(text="modulation rate (Hz)"),
        )
    fig.update_yaxes(
        row=1, col=1, title=dict(text="vector strength at the rate (median, bars: quartiles)"), range=[0, 1.02]
    )
    title = title or (
        "Rate following: how strongly activations oscillate at the modulation rate "
        "(only rates below each layer's Nyquist rate)"
    )
    return styled(fig, title, height=420, width=1100)


def direction_figure(pref: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per layer, the fraction of units preferring rising, falling or neither sweep direction."""
    layers = layer_list(pref)
    fig = go.Figure()
    colors = {"up": PALETTE[1], "down": PALETTE[0], "none": NONE}
    names = {
        "up": "prefers rising (DSI >= 0.1, q < 0.05)",
        "down": "prefers falling (DSI <= -0.1, q < 0.05)",
        "none": "no preference",
    }
    for p in ("up", "down", "none"):
        frac, count = [], []
        for layer in layers:
            sub = pref[pref["layer"] == layer]
            n = int((sub["prefers"] == p).sum())
            frac.append(n / max(len(sub), 1))
            count.append(f"{n}/{len(sub)}")
        fig.add_trace(
            go.Bar(
                x=layers,
                y=frac,
                name=names[p],
                marker_color=colors[p],
                customdata=count,
                hovertemplate="%{x}: %{customdata} units<extra>" + names[p] + "</extra>",
            )
        )
    fig.update_layout(barmode="stack", legend=dict(orientation="h", y=-0.18, x=0))
    fig.update_yaxes(title=dict(text="fraction of units"), tickformat=".0%", range=[0, 1])
    title = title or (
        "Sweep direction: units preferring rising vs falling chirps (DSI = (up - down) / (up + down) of peak responses)"
    )
    return styled(fig, title, height=400, width=800, top=56)
