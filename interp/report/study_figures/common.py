"""Helpers the studies' figures share: styling, layer order, subplot grids, octave axes."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from interp.report.figures import apply_house_style, hz_label
from soundnet.model import CONV_LAYERS

__all__ = ["MUTED", "NONE", "HZ_TICKS", "styled", "layer_list", "grid", "log2_axis"]


MUTED = "#6b7785"
NONE = "#c5ccd5"
HZ_TICKS = (50, 100, 200, 500, 1000, 2000, 5000, 10000)


def styled(fig: go.Figure, title: str, *, height: int, width: int, top: int = 84) -> go.Figure:
    """House style, with room above the panel titles for the figure title."""
    fig = apply_house_style(fig, title=title, height=height, width=width)
    fig.update_layout(margin=dict(t=top), title=dict(y=1.0 - 14 / height, yanchor="top"))
    return fig


def layer_list(df: pd.DataFrame) -> list[str]:
    present = set(df["layer"])
    return [layer for layer in CONV_LAYERS if layer in present]


def grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return int(math.ceil(n / cols)), cols


def log2_axis(
    fig: go.Figure,
    lo_hz: float,
    hi_hz: float,
    *,
    row: int | None = None,
    col: int | None = None,
    title: str | None = "tone frequency (Hz)",
    axis: str = "x",
) -> None:
    ticks = [f for f in HZ_TICKS if lo_hz * 0.99 <= f <= hi_hz * 1.01]
    upd = dict(
        tickvals=[math.log2(f) for f in ticks],
        ticktext=[hz_label(f) for f in ticks],
        range=[math.log2(lo_hz) - 0.15, math.log2(hi_hz) + 0.15],
        title=dict(text=title),
    )
    (fig.update_xaxes if axis == "x" else fig.update_yaxes)(row=row, col=col, **upd)
