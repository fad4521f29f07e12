"""Figures of the temporal dissection study (:mod:`interp.studies.temporal_dissection`).

Each function takes the tables of :func:`interp.analysis.dissection.run_dissection` (or the
study's summaries of them) and returns a plotly ``Figure`` in the house style. Every title says
what is counted: a unit *with a concept* passes both nulls (alignment and specificity) for at
least one concept; a unit *with events only* passes the alignment null for some concept but the
specificity null for none (it fires at events of any kind).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.report.figures import category_colors
from interp.report.figures.style import ACCENT
from interp.report.study_figures.common import MUTED, NONE, layer_list, styled

__all__ = [
    "dissection_status_figure",
    "dissection_iou_figure",
    "onset_profiles_figure",
    "onset_latency_figure",
]

#: Colours of the unit statuses of :func:`interp.analysis.dissection.dissection_labels`.
STATUS_COLORS = {"concept": ACCENT, "events": "#f59e0b", "unlabelled": NONE}


def dissection_status_figure(units: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per layer, the fraction of units with a concept and with events only (stacked bars).

    Parameters
    ----------
    units : pandas.DataFrame
        ``layer, unit, status`` (:func:`interp.analysis.dissection.dissection_labels`).
    """
    layers = layer_list(units)
    fig = go.Figure()
    names = {"concept": "with a concept (both nulls)", "events": "with events only (alignment null)"}
    for status, name in names.items():
        frac, text = [], []
        for layer in layers:
            sub = units[units["layer"] == layer]
            n = int((sub["status"] == status).sum())
            frac.append(n / max(len(sub), 1))
            text.append(f"{n}/{len(sub)}")
        fig.add_trace(
            go.Bar(
                x=layers,
                y=frac,
                name=name,
                marker_color=STATUS_COLORS[status],
                customdata=text,
                hovertemplate="%{x}: %{customdata} units<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(barmode="stack", legend=dict(title=dict(text="units"), traceorder="normal"))
    fig.update_yaxes(title=dict(text="fraction of the layer's units"), tickformat=".0%", rangemode="tozero")
    title = title or (
        "Units per layer with a concept (q_time and q_label < 0.05) or firing at events of any kind "
        "(q_time < 0.05 only)"
    )
    return styled(fig, title, height=420, width=900, top=56)


def dissection_iou_figure(units: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per layer, the distribution of each unit's best IoU: all units, and the units passing both nulls.

    Parameters
    ----------
    units : pandas.DataFrame
        ``layer, unit, status, iou`` (each unit's IoU with its best concept).
    """
    layers = layer_list(units)
    u = units[units["layer"].isin(layers)]
    fig = go.Figure()
    fig.add_trace(
        go.Box(
            x=u["layer"],
            y=u["iou"],
            name="all units",
            marker_color=MUTED,
            boxpoints=False,
            hoverinfo="y",
        )
    )
    c = u[u["status"] == "concept"]
    fig.add_trace(
        go.Box(
            x=c["layer"],
            y=c["iou"],
            name="units passing both nulls",
            marker=dict(color=STATUS_COLORS["concept"], size=4, opacity=0.6),
            boxpoints="all",
            jitter=0.4,
            pointpos=0,
            customdata=np.stack([c["unit"].to_numpy(), c["concept"].astype(str).to_numpy()], axis=1)
            if len(c)
            else None,
            hovertemplate="%{x}:%{customdata[0]} %{customdata[1]}: IoU %{y:.3f}<extra></extra>",
        )
    )
    fig.update_layout(boxmode="group", legend=dict(title=dict(text="units")))
    fig.update_xaxes(categoryorder="array", categoryarray=layers)
    fig.update_yaxes(title=dict(text="IoU of the unit's best concept"), rangemode="tozero")
    title = title or (
        "Best IoU per unit (above-threshold frames vs the concept's event frames), per layer; "
        "right: units passing both nulls"
    )
    return styled(fig, title, height=440, width=900, top=56)


def onset_profiles_figure(
    profiles: pd.DataFrame, best: pd.DataFrame, *, title: str | None = None, cols: int = 4
) -> go.Figure:
    """The onset-aligned profile of each concept's best unit, one panel per concept.

    Parameters
    ----------
    profiles : pandas.DataFrame
        ``layer, unit, concept, t_s, activation`` (:func:`interp.analysis.dissection.dissect`).
    best : pandas.DataFrame
        One row per concept: ``concept, layer, unit, iou, threshold, latency_s``; the unit's
        threshold is drawn as a dotted line, its peak (the onset latency) as a marker.
    """
    concepts = list(best["concept"])
    colors = category_colors(concepts)
    n = max(len(concepts), 1)
    ncols = min(n, cols)
    nrows = int(np.ceil(n / ncols))
    titles = [f"{r.concept}: {r.layer}:{int(r.unit)} (IoU {r.iou:.2f})" for r in best.itertuples()]
    fig = make_subplots(rows=nrows, cols=ncols, subplot_titles=titles or [""], horizontal_spacing=0.07)
    for i, r in enumerate(best.itertuples()):
        row, col = i // ncols + 1, i % ncols + 1
        p = profiles[(profiles["layer"] == r.layer) & (profiles["unit"] == r.unit) & (profiles["concept"] == r.concept)]
        p = p.sort_values("t_s")
        color = colors[str(r.concept)]
        fig.add_trace(
            go.Scatter(
                x=p["t_s"],
                y=p["activation"],
                mode="lines",
                line=dict(color=color, width=2),
                name=str(r.concept),
                showlegend=False,
                hovertemplate="%{x:.2f} s: %{y:.3g}<extra>" + f"{r.layer}:{int(r.unit)}" + "</extra>",
            ),
            row=row,
            col=col,
        )
        if np.isfinite(r.latency_s):
            peak = p.loc[p["activation"].idxmax()]
            fig.add_trace(
                go.Scatter(
                    x=[peak["t_s"]],
                    y=[peak["activation"]],
                    mode="markers+text",
                    marker=dict(color=color, size=8),
                    text=[f"peak {r.latency_s:+.2f} s"],
                    textposition="top right",
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=row,
                col=col,
            )
        fig.add_vline(x=0.0, line=dict(color=MUTED, width=1), row=row, col=col)
        if np.isfinite(r.threshold):
            fig.add_hline(y=float(r.threshold), line=dict(color=MUTED, width=1, dash="dot"), row=row, col=col)
        fig.update_xaxes(title=dict(text="time from onset (s)"), row=row, col=col)
        if col == 1:
            fig.update_yaxes(title=dict(text="mean activation"), row=row, col=col)
    title = title or (
        "Onset-aligned mean activation of each concept's best unit (all its events; dotted: the unit's threshold)"
    )
    return styled(fig, title, height=340 * nrows + 60, width=max(420 * ncols, 700), top=84)


def onset_latency_figure(best_units: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Onset latency (the profile's peak, s from the onset) of the best units of each concept, per layer.

    Parameters
    ----------
    best_units : pandas.DataFrame
        ``concept, rank, layer, unit, iou, latency_s``: the best units (passing both nulls) of each
        concept in each layer; ``rank`` 0 (each layer's best) is drawn larger.
    """
    layers = layer_list(best_units) if len(best_units) else []
    pos = {layer: i for i, layer in enumerate(layers)}
    concepts = sorted(best_units["concept"].astype(str).unique()) if len(best_units) else []
    colors = category_colors(concepts)
    fig = go.Figure()
    width = 0.6 / max(len(concepts), 1)
    for j, concept in enumerate(concepts):
        b = best_units[(best_units["concept"] == concept) & np.isfinite(best_units["latency_s"])]
        x = b["layer"].map(pos).to_numpy(float) + (j - (len(concepts) - 1) / 2) * width
        fig.add_trace(
            go.Scatter(
                x=x,
                y=b["latency_s"],
                mode="markers",
                name=concept,
                marker=dict(
                    color=colors[concept],
                    size=np.where(b["rank"].to_numpy() == 0, 12, 7),
                    line=dict(color="white", width=1),
                ),
                customdata=np.stack([b["layer"].to_numpy(), b["unit"].to_numpy(), b["iou"].to_numpy()], axis=1)
                if len(b)
                else None,
                hovertemplate="%{customdata[0]}:%{customdata[1]} IoU %{customdata[2]:.3f}: peak %{y:+.2f} s"
                + f"<extra>{concept}</extra>",
            )
        )
    fig.add_hline(y=0.0, line=dict(color=MUTED, width=1))
    fig.update_xaxes(tickvals=list(range(len(layers))), ticktext=layers, range=[-0.6, len(layers) - 0.4])
    fig.update_yaxes(title=dict(text="peak of the onset-aligned profile (s from onset)"))
    fig.update_layout(legend=dict(title=dict(text="concept")))
    title = title or (
        "Onset latency of the best units (passing both nulls) of each concept, per layer (large: the layer's best)"
    )
    return styled(fig, title, height=440, width=900, top=56)
