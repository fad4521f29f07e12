"""Run-level charts: units labelled selective per layer, units labelled with each category per layer,
probe accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp.report.figures.style import ACCENT, MUTED, PALETTE, check_columns, layer_order, styled_figure
from soundnet.errors import ParameterError

__all__ = ["layer_selectivity_figure", "category_layer_heatmap", "probe_accuracy_figure"]


# --------------------------------------------------------------------------------------------
# overview
# --------------------------------------------------------------------------------------------
def layer_selectivity_figure(
    summary: pd.DataFrame,
    *,
    title: str | None = "Units labelled selective per layer (unit-level test, BH across units)",
    height: int = 300,
) -> go.Figure:
    """Fraction of each layer's units labelled selective, as bars annotated with the counts.

    Parameters
    ----------
    summary : pd.DataFrame
        Columns ``layer``, ``n_units``, ``n_selective`` (one row per layer; ``n_selective``: units
        whose label status is ``selective``, as :func:`interp.analysis.selectivity.analyze` writes
        in ``selectivity_layers.parquet``). The default title names the unit-level test; pass
        another for counts made otherwise.
    title : str, optional
    height : int (in pixels)
    """
    check_columns("summary", "layer_selectivity_figure", summary, ("layer", "n_units", "n_selective"))
    df = summary.set_index("layer").loc[layer_order(list(summary["layer"]))].reset_index()
    frac = (df["n_selective"] / df["n_units"].where(df["n_units"] > 0)).to_numpy(dtype=float)
    top = max(0.05, float(np.nanmax(frac, initial=0.0))) * 1.18
    bar = go.Bar(
        x=list(df["layer"]),
        y=frac,
        marker_color=ACCENT,
        text=[f"{int(s)}/{int(n)}" for s, n in zip(df["n_selective"], df["n_units"])],
        textposition="outside",
        textfont=dict(size=10, color=MUTED),
        cliponaxis=False,
        hovertemplate="%{x}: %{y:.1%} of units labelled selective (%{text})<extra></extra>",
    )
    return styled_figure(
        [bar],
        dict(
            yaxis=dict(title=dict(text="fraction of units labelled selective"), tickformat=".0%", range=[0, top]),
            xaxis=dict(showgrid=False),
        ),
        title=title,
        height=height,
    )


def category_layer_heatmap(
    counts: pd.DataFrame,
    *,
    title: str | None = "Units labelled with each category (each unit counted once, under its label)",
    height: int | None = None,
    normalize: bool = False,
) -> go.Figure:
    """Heatmap of how many units are labelled with each category, categories (rows) by layers (columns).

    Parameters
    ----------
    counts : pd.DataFrame
        Index: category; columns: layer names; values: counts of units labelled selective for the
        category (each unit counted once, under its label: ``selectivity_counts.parquet``).
    title : str, optional
    height : int (in pixels), optional
        Default grows with the number of categories.
    normalize : bool
        Colour each cell by its fraction of the layer's units (``counts.attrs["n_units"]`` maps
        layer to unit count); the text stays the count.
    """
    if not isinstance(counts, pd.DataFrame):
        raise ParameterError(
            f"The 'counts' parameter of category_layer_heatmap must be a DataFrame. "
            f"Got {type(counts).__name__} instead."
        )
    layers = layer_order([str(c) for c in counts.columns])
    df = counts[layers].sort_index(ascending=False)
    z = df.to_numpy(dtype=float)
    n = z.copy()
    text = [[f"{int(v)}" if v > 0 else "" for v in row] for row in z]
    if normalize:
        n_units = counts.attrs.get("n_units", {})
        denom = np.array([float(n_units.get(layer, np.nan)) for layer in layers])
        z = z / denom[None, :]
    hm = go.Heatmap(
        z=z,
        x=layers,
        y=[str(i) for i in df.index],
        text=text,
        texttemplate="%{text}",
        textfont=dict(size=10),
        colorscale="Blues",
        xgap=2,
        ygap=2,
        colorbar=dict(
            title=dict(text="fraction of the layer" if normalize else "units labelled", side="right"), thickness=10
        ),
        customdata=n,
        hovertemplate="%{x}: %{customdata:.0f} units labelled %{y} (each unit counted once, under its label)<extra></extra>",
    )
    h = height if height is not None else 90 + 26 * max(1, len(df))
    return styled_figure(
        [hm],
        dict(
            xaxis=dict(side="top", showgrid=False, showline=False, ticks=""),
            yaxis=dict(showgrid=False, showline=False, ticks=""),
            margin=dict(t=64),
            title=dict(y=0.995),
        ),
        title=title,
        height=h,
    )


def probe_accuracy_figure(
    probes: pd.DataFrame,
    *,
    chance: float | None = None,
    title: str | None = "Linear probe accuracy per layer",
    height: int = 300,
) -> go.Figure:
    """Probe accuracy per layer with its confidence interval.

    Parameters
    ----------
    probes : pd.DataFrame
        Columns ``layer``, ``accuracy``, ``ci_low``, ``ci_high`` (fractions in [0, 1]); an optional
        ``probe`` (or ``target``, ``task``) column draws one line per probe.
    chance : float, optional
        Chance level drawn as a dashed line.
    """
    check_columns("probes", "probe_accuracy_figure", probes, ("layer", "accuracy", "ci_low", "ci_high"))
    group = next((c for c in ("probe", "target", "task") if c in probes.columns), None)
    groups = probes.groupby(group, sort=True) if group else [("accuracy", probes)]
    order = layer_order([str(x) for x in probes["layer"]])
    traces = []
    for i, (name, df) in enumerate(groups):
        df = df.set_index("layer").reindex([layer for layer in order if layer in set(df["layer"])]).reset_index()
        color = PALETTE[i % len(PALETTE)]
        traces.append(
            go.Scatter(
                x=list(df["layer"]),
                y=df["accuracy"].to_numpy(dtype=float),
                mode="lines+markers",
                name=str(name),
                line=dict(color=color, width=2),
                marker=dict(size=7),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=(df["ci_high"] - df["accuracy"]).to_numpy(dtype=float),
                    arrayminus=(df["accuracy"] - df["ci_low"]).to_numpy(dtype=float),
                    color=color,
                    thickness=1.2,
                    width=4,
                ),
                hovertemplate="%{x}: %{y:.1%}<extra>" + str(name) + "</extra>",
            )
        )
    lay: dict[str, Any] = dict(
        yaxis=dict(title=dict(text="accuracy"), tickformat=".0%", rangemode="tozero"),
        xaxis=dict(categoryorder="array", categoryarray=order),
        showlegend=group is not None,
    )
    if chance is not None:
        lay["shapes"] = [
            dict(
                type="line",
                xref="paper",
                x0=0,
                x1=1,
                yref="y",
                y0=float(chance),
                y1=float(chance),
                line=dict(color=MUTED, dash="dash", width=1),
            )
        ]
        lay["annotations"] = [
            dict(
                xref="paper",
                x=1,
                yref="y",
                y=float(chance),
                text="chance",
                showarrow=False,
                xanchor="right",
                yanchor="bottom",
                font=dict(size=10, color=MUTED),
            )
        ]
    return styled_figure(traces, lay, title=title, height=height)
