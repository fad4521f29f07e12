"""STRF gallery ``/strf/<layer>``: the layer's spectro-temporal receptive fields with the highest
held-out r, each linking to its unit page."""

from __future__ import annotations

from typing import Any

import dash
from dash import html

from dashboard import portrait_views as PV
from dashboard.data import get_data


def _title(layer: str | None = None, **_: Any) -> str:
    return f"{layer} STRFs · SoundNet units"


dash.register_page(__name__, path_template="/strf/<layer>", title=_title, name="STRFs")


def layout(layer: str | None = None, **_: Any) -> html.Div:
    data = get_data()
    name = layer if isinstance(layer, str) and layer in data.layers else str(layer)
    return html.Div(className="strf-page", children=[PV.gallery(data, name)])
