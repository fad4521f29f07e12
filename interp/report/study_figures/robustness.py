"""Figure of the robustness study's top-N overlap against its chance level and resampling baseline."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from interp.report.figures import PALETTE
from interp.report.study_figures.common import MUTED, layer_list, styled

__all__ = ["overlap_baselines_figure"]


def overlap_baselines_figure(table: pd.DataFrame, *, top_n: int, title: str | None = None) -> go.Figure:
    """Per layer, the perturbed top-N overlaps beside their chance level and resampling baseline.

    Parameters
    ----------
    table : pandas.DataFrame
        :func:`interp.analysis.robustness.compare_conditions` (``layer, family, label,
        top_overlap, top_overlap_chance, top_overlap_resample``).
    top_n : int
        N of the overlap (for the titles).
    """
    layers = layer_list(table)
    refs = table.groupby("layer", sort=False)[["top_overlap_chance", "top_overlap_resample"]].first().reindex(layers)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(x=layers, y=refs["top_overlap_chance"], name=f"chance ({top_n} / units)", marker_color="#cccccc")
    )
    fig.add_trace(
        go.Bar(
            x=layers,
            y=refs["top_overlap_resample"],
            name="two bootstrap resamples of the clean clips",
            marker_color=MUTED,
        )
    )
    for i, fam in enumerate(sorted(table["family"].unique())):
        sub = table[table["family"] == fam]
        fig.add_trace(
            go.Scatter(
                x=sub["layer"],
                y=sub["top_overlap"],
                mode="markers",
                name=fam,
                marker=dict(color=PALETTE[i % len(PALETTE)], size=8, line=dict(color="white", width=1)),
                customdata=sub["label"],
                hovertemplate="%{x}, %{customdata}: %{y:.2f}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.18, x=0))
    fig.update_yaxes(title=dict(text=f"fraction of the clean top-{top_n} kept"), range=[0, 1.02])
    title = title or f"Top-{top_n} overlap under perturbation, against chance and the resampling baseline"
    return styled(fig, title, height=440, width=900, top=56)
