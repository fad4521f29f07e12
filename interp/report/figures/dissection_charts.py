"""Temporal dissection charts: a unit's onset-aligned profile, event spans on a clip figure, and
the layer x concept count of units labelled with a concept.

They draw the tables of :func:`interp.analysis.dissection.run_dissection` (``dissection.parquet``,
``dissection_units.parquet``, ``dissection_profiles.parquet``, ``dissection_events.parquet``);
nothing here computes a statistic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp.report.figures.style import MUTED, category_colors, check_columns, layer_order, styled_figure
from soundnet.errors import ParameterError

__all__ = ["onset_profile_figure", "mark_events", "concept_layer_heatmap", "CONCEPT_COUNTS_TITLE"]

#: Title of :func:`concept_layer_heatmap`: what each cell counts.
CONCEPT_COUNTS_TITLE = (
    "Units labelled with each concept (status concept: alignment and specificity nulls both pass; "
    "each unit counted once, under its best concept)"
)
#: Colour of the threshold line.
THRESHOLD_COLOR = "#f59e0b"


def onset_profile_figure(
    profiles: pd.DataFrame,
    concept: str,
    *,
    threshold: float | None = None,
    colors: Mapping[str, str] | None = None,
    others: bool = True,
    title: str | None = None,
    height: int = 300,
) -> go.Figure:
    """One unit's onset-aligned mean activation for ``concept``, the other concepts faintly.

    Parameters
    ----------
    profiles : pandas.DataFrame
        One unit's rows of ``dissection_profiles.parquet``: ``concept, t_s, activation`` (``t_s``:
        bin centre, seconds from each event's onset).
    concept : str
        The concept drawn in full (a line of its colour); a vertical line marks the onset.
    threshold : float, optional
        The unit's dissection threshold, drawn as a dotted horizontal line.
    colors : mapping of str to str, optional
        Concept colours (default :func:`interp.report.figures.category_colors` of the concepts).
    others : bool
        Draw the other concepts' profiles faintly, for comparison.
    """
    check_columns("profiles", "onset_profile_figure", profiles, ("concept", "t_s", "activation"))
    concepts = sorted(str(c) for c in profiles["concept"].unique())
    if str(concept) not in concepts:
        raise ParameterError(
            f"The 'concept' parameter of onset_profile_figure must be one of the profiles' concepts "
            f"({', '.join(concepts) or 'none'}). Got {concept!r} instead."
        )
    cols = dict(category_colors(concepts))
    cols.update({str(k): str(v) for k, v in (colors or {}).items()})
    traces: list[Any] = []
    drawn = [c for c in concepts if c != str(concept)] if others else []
    for c in [*drawn, str(concept)]:
        p = profiles[profiles["concept"].astype(str) == c].sort_values("t_s")
        main = c == str(concept)
        traces.append(
            go.Scatter(
                x=p["t_s"].to_numpy(dtype=np.float64),
                y=p["activation"].to_numpy(dtype=np.float64),
                mode="lines",
                name=c,
                opacity=1.0 if main else 0.45,
                line=dict(color=cols.get(c, MUTED), width=2.4 if main else 1.2, dash=None if main else "dot"),
                hovertemplate=f"{c}: %{{x:+.3f}} s from onset · mean activation %{{y:.3g}}<extra></extra>",
            )
        )
    shapes: list[dict[str, Any]] = [
        dict(type="line", xref="x", yref="paper", x0=0.0, x1=0.0, y0=0, y1=1, line=dict(color=MUTED, width=1))
    ]
    annotations: list[dict[str, Any]] = [
        dict(text="onset", x=0.0, y=1.0, xref="x", yref="paper", showarrow=False, xanchor="left", yanchor="top")
    ]
    if threshold is not None and math.isfinite(float(threshold)):
        shapes.append(
            dict(
                type="line",
                xref="paper",
                yref="y",
                x0=0,
                x1=1,
                y0=float(threshold),
                y1=float(threshold),
                line=dict(color=THRESHOLD_COLOR, width=1.2, dash="dot"),
            )
        )
        annotations.append(
            dict(
                text="threshold",
                x=1.0,
                y=float(threshold),
                xref="paper",
                yref="y",
                showarrow=False,
                xanchor="right",
                yanchor="bottom",
                font=dict(color=THRESHOLD_COLOR, size=10),
            )
        )
    return styled_figure(
        traces,
        dict(
            xaxis=dict(title=dict(text="time from onset (s)"), zeroline=False),
            yaxis=dict(title=dict(text="mean activation")),
            shapes=shapes,
            annotations=annotations,
            legend=dict(orientation="h", y=-0.25, x=0),
            hovermode="x unified",
            margin=dict(t=40 if title else 16),
        ),
        title=title,
        height=height,
    )


def mark_events(
    fig: go.Figure,
    events: pd.DataFrame,
    *,
    concept: str | None = None,
    threshold: float | None = None,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Draw annotated event spans and a unit's threshold on a clip figure (in place).

    ``fig`` is a :func:`~interp.report.figures.clip_activation_figure` (spectrogram on ``y``,
    activation on ``y2``); its shaded receptive-field window is replaced by the events.

    Parameters
    ----------
    fig : plotly.graph_objects.Figure
    events : pandas.DataFrame
        ``onset_s, offset_s, label``, seconds in the clip's own time.
    concept : str, optional
        Events with this label are shaded over the spectrogram's full height; the others are a
        thin band at the top. Default: every event shaded.
    threshold : float, optional
        A horizontal dashed line at this activation (the activation axis is widened to show it).
    colors : mapping of str to str, optional
        Label colours (default :func:`interp.report.figures.category_colors` of the labels).
    """
    check_columns("events", "mark_events", events, ("onset_s", "offset_s", "label"))
    labels = sorted(str(x) for x in events["label"].unique())
    cols = dict(category_colors(labels))
    cols.update({str(k): str(v) for k, v in (colors or {}).items()})
    shapes: list[dict[str, Any]] = []
    for r in events.itertuples(index=False):
        lab = str(r.label)
        main = concept is None or lab == str(concept)
        color = cols.get(lab, MUTED)
        shapes.append(
            dict(
                type="rect",
                xref="x",
                yref="paper",
                x0=float(r.onset_s),
                x1=float(r.offset_s),
                y0=0.0 if main else 0.93,
                y1=1.0,
                fillcolor=color,
                opacity=0.3 if main else 0.8,
                layer="above",
                line=dict(color=color, width=1.2 if main else 0),
                name=f"event {lab}",
            )
        )
    if threshold is not None and math.isfinite(float(threshold)):
        th = float(threshold)
        shapes.append(
            dict(
                type="line",
                xref="paper",
                yref="y2",
                x0=0,
                x1=1,
                y0=th,
                y1=th,
                line=dict(color=THRESHOLD_COLOR, width=1.4, dash="dash"),
                layer="above",
                name="threshold",
            )
        )
        rng = fig.layout.yaxis2.range
        if rng is not None and th > float(rng[1]) * 0.94:
            fig.update_layout(yaxis2=dict(range=[float(rng[0]), th * 1.12]))
    fig.update_layout(shapes=shapes)
    return fig


def concept_layer_heatmap(
    counts: pd.DataFrame,
    *,
    events: Mapping[str, int] | None = None,
    title: str | None = CONCEPT_COUNTS_TITLE,
    height: int | None = None,
) -> go.Figure:
    """Heatmap of units labelled with each concept, concepts (rows) by layers (columns).

    Parameters
    ----------
    counts : pandas.DataFrame
        Index: concept; columns: layers; values: units whose dissection status is ``concept``
        with that concept (``dissection_units.parquet``).
    events : mapping of layer to int, optional
        Units of each layer that fire at events of any kind (status ``events``): written under the
        layer's name on the axis.
    """
    if not isinstance(counts, pd.DataFrame):
        raise ParameterError(
            f"The 'counts' parameter of concept_layer_heatmap must be a DataFrame. Got {type(counts).__name__} instead."
        )
    layers = layer_order([str(c) for c in counts.columns])
    df = counts[layers].sort_index(ascending=False)
    z = df.to_numpy(dtype=float)
    text = [[f"{int(v)}" if v > 0 else "" for v in row] for row in z]
    ticks = [f"{layer}<br>{int(events.get(layer, 0))} events" if events is not None else layer for layer in layers]
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
        colorbar=dict(title=dict(text="units with the concept", side="right"), thickness=10),
        hovertemplate="%{x}: %{z:.0f} units labelled with the concept %{y} (in the layer, %{customdata} units fire at events of any kind)<extra></extra>",
        customdata=[
            [int(events.get(layer, 0)) if events is not None else 0 for layer in layers] for _ in range(len(df))
        ],
    )
    h = height if height is not None else 150 + 30 * max(1, len(df))
    return styled_figure(
        [hm],
        dict(
            xaxis=dict(
                side="bottom",
                showgrid=False,
                showline=False,
                ticks="",
                tickmode="array",
                tickvals=layers,
                ticktext=ticks,
            ),
            yaxis=dict(showgrid=False, showline=False, ticks=""),
            margin=dict(t=64 if title else 16, b=64 if events is not None else 40),
            title=dict(y=0.98, font=dict(size=13)),
        ),
        title=title,
        height=h,
    )
