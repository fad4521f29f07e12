"""Figures of the ablation study: effects against matched random units, specificity, dose-response.

Each takes a table of :func:`interp.analysis.causal.causal_effects` and returns a plotly
``Figure`` in the house style (:func:`interp.report.study_figures.common.styled`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.report.figures import PALETTE
from interp.report.study_figures.common import MUTED, NONE, styled

__all__ = ["effects_figure", "specificity_figure", "dose_response_figure"]

_MEASURE_TITLES = {
    "heads": "heads readout: drop of log p(category) (nats)",
    "probe": "probe readout: drop of log p(category) (nats)",
}


def _measures(df: pd.DataFrame) -> list[str]:
    return [m for m in ("heads", "probe") if m in set(df["measure"])]


def effects_figure(effects: pd.DataFrame, draws: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per category and readout: the top units' drop (with its group-bootstrap interval) against the
    drops of the matched random sets (grey box: their spread), with q in the hover.

    Parameters
    ----------
    effects : DataFrame with ``category, measure, drop, ci_low, ci_high, p, q, n_draws``
    draws : DataFrame with ``category, measure, condition, drop``
    """
    measures = _measures(effects)
    fig = make_subplots(
        rows=1, cols=len(measures), subplot_titles=[_MEASURE_TITLES[m] for m in measures], horizontal_spacing=0.1
    )
    for j, m in enumerate(measures):
        e = effects[effects["measure"] == m].sort_values("category")
        r = draws[(draws["measure"] == m) & (draws["condition"] == "random")]
        fig.add_trace(
            go.Box(
                x=r["category"],
                y=r["drop"],
                name="matched random units (each draw)",
                marker_color=NONE,
                line_color=MUTED,
                boxpoints=False,
                legendgroup="random",
                showlegend=j == 0,
            ),
            row=1,
            col=j + 1,
        )
        fig.add_trace(
            go.Scatter(
                x=e["category"],
                y=e["drop"],
                mode="markers",
                marker=dict(color=PALETTE[2], size=10, symbol="diamond"),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(e["ci_high"] - e["drop"]).fillna(0).to_numpy(),
                    arrayminus=(e["drop"] - e["ci_low"]).fillna(0).to_numpy(),
                    color=PALETTE[2],
                    thickness=1.5,
                ),
                customdata=np.c_[e["p"], e["q"], e["n_draws"]],
                hovertemplate="%{x}: drop %{y:.3f}, p %{customdata[0]:.3f}, q %{customdata[1]:.3f} "
                "(%{customdata[2]} draws)<extra>top units</extra>",
                name="the category's top units (95 % group-bootstrap interval)",
                legendgroup="top",
                showlegend=j == 0,
            ),
            row=1,
            col=j + 1,
        )
        for row in e.itertuples():
            if np.isfinite(row.q) and row.q < 0.05:
                fig.add_annotation(x=row.category, y=row.ci_high, text="*", showarrow=False, yshift=8, row=1, col=j + 1)
        fig.update_yaxes(row=1, col=j + 1, title=dict(text="drop (unablated - ablated)"), zeroline=True)
        fig.update_xaxes(row=1, col=j + 1, tickangle=-30)
    fig.update_layout(legend=dict(orientation="h", y=-0.3, x=0))
    fig.update_annotations(font_size=11)
    title = title or "Ablating each category's top units vs matched random units (* q < 0.05)"
    return styled(fig, title, height=480, width=1100)


def specificity_figure(spec: pd.DataFrame, *, measure: str = "heads", title: str | None = None) -> go.Figure:
    """Heatmap: rows the category whose top units are ablated, columns the category whose clips
    are measured; colour the mean drop of the measured category's log-probability (nats).

    Parameters
    ----------
    spec : DataFrame with ``ablated, measured, measure, drop, ci_low, ci_high, n_clips``
    """
    s = spec[spec["measure"] == measure]
    piv = s.pivot(index="ablated", columns="measured", values="drop")
    lo = s.pivot(index="ablated", columns="measured", values="ci_low").reindex_like(piv)
    hi = s.pivot(index="ablated", columns="measured", values="ci_high").reindex_like(piv)
    z = piv.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=list(piv.columns),
            y=list(piv.index),
            zmin=-lim,
            zmax=lim,
            colorscale="RdBu_r",
            colorbar=dict(title=dict(text="drop (nats)")),
            customdata=np.dstack([lo.to_numpy(dtype=float), hi.to_numpy(dtype=float)]),
            text=np.vectorize(lambda v: f"{v:.2f}")(z),
            texttemplate="%{text}",
            hovertemplate="ablated %{y}, measured %{x}: %{z:.3f} [%{customdata[0]:.3f}, %{customdata[1]:.3f}]"
            "<extra></extra>",
        )
    )
    fig.update_xaxes(title=dict(text="category whose clips are measured"), tickangle=-30)
    fig.update_yaxes(title=dict(text="category whose top units are ablated"), autorange="reversed")
    title = title or f"Specificity ({measure} readout): a category's top units ablated, every category's drop"
    return styled(fig, title, height=620, width=820)


def dose_response_figure(dose: pd.DataFrame, *, measure: str = "heads", title: str | None = None) -> go.Figure:
    """Per category, the drop against the number of top units ablated (log2 axis), with the
    matched random sets' mean and 5-95 % band at each dose.

    Parameters
    ----------
    dose : DataFrame with ``category, measure, n_ablated, condition, drop, low, high``
    """
    d = dose[dose["measure"] == measure]
    cats = sorted(d["category"].unique())
    n_cols = min(5, max(len(cats), 1))
    n_rows = int(np.ceil(len(cats) / n_cols)) or 1
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=cats, shared_yaxes=True)
    for i, cat in enumerate(cats):
        r, c = i // n_cols + 1, i % n_cols + 1
        for cond, color, name in (("random", MUTED, "matched random units"), ("top", PALETTE[2], "top units")):
            g = d[(d["category"] == cat) & (d["condition"] == cond)].sort_values("n_ablated")
            if g.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=np.r_[g["n_ablated"], g["n_ablated"][::-1]],
                    y=np.r_[g["high"], g["low"][::-1]],
                    fill="toself",
                    fillcolor="rgba(150,160,170,0.2)" if cond == "random" else "rgba(214,39,40,0.12)",
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                ),
                row=r,
                col=c,
            )
            fig.add_trace(
                go.Scatter(
                    x=g["n_ablated"],
                    y=g["drop"],
                    mode="lines+markers",
                    line=dict(color=color),
                    name=name,
                    legendgroup=cond,
                    showlegend=i == 0,
                    hovertemplate="%{x} units: %{y:.3f}<extra>" + name + "</extra>",
                ),
                row=r,
                col=c,
            )
        fig.update_xaxes(
            type="log", dtick=np.log10(2), row=r, col=c, title=dict(text="units ablated" if r == n_rows else None)
        )
    fig.update_yaxes(title=dict(text="drop (nats)"), col=1)
    fig.update_layout(legend=dict(orientation="h", y=-0.18, x=0))
    fig.update_annotations(font_size=11)
    title = title or f"Dose-response ({measure} readout): drop against the number of top units ablated"
    return styled(fig, title, height=260 * n_rows + 140, width=1100)
