"""Fallback page for any path the app does not define."""

from __future__ import annotations

from typing import Any

import dash
from dash import dcc, html

dash.register_page(__name__, path="/404", title="Not found · SoundNet units", name="Not found")


def layout(**_: Any) -> html.Div:
    return html.Div(
        className="card notfound",
        children=[
            html.H2("Page not found"),
            html.P("Pages: the overview, /unit/<layer>/<unit>, /clip/<clip_id> and /search."),
            dcc.Link("back to the overview", href="/"),
        ],
    )
