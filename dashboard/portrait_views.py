"""Unit portraits on the pages: the unit page's STRF card, the layer gallery, the overview card.

Everything is read from the run's STRF tables (:class:`dashboard.portraits.StrfData`) and drawn
through :mod:`interp.report.figures.portrait_charts`. Figure names (for the export route):
``strf-filter`` (unit), ``strf-gallery`` (layer, ``/export/layer/<layer>/strf-gallery.<fmt>``)
and ``strf`` (overview: every unit's held-out r per layer).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ids
from dashboard import views as V
from dashboard.data import RunData
from interp.report.figures.portrait_charts import STRF_NOTE, strf_figure, strf_gallery_figure, strf_r_figure

__all__ = [
    "GALLERY_K",
    "unit_figure_names",
    "unit_figure",
    "layer_figure_names",
    "layer_figure",
    "overview_figure",
    "strf_card",
    "gallery",
    "overview_card",
]

#: STRFs shown in a layer's gallery (the highest held-out r).
GALLERY_K = 24
_MEANING = (
    "Held-out r: how well a linear filter of the log-mel spectrogram predicts this unit on held-out clips; "
    "near 0: the unit is not linear in the spectrogram (its STRF then says little about it)."
)


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def unit_strf_figure(data: RunData, layer: str, unit: int, *, titled: bool = False) -> go.Figure | None:
    """The unit's STRF heatmap (None without one)."""
    s = data.strf
    row, w = s.unit_row(layer, unit), s.unit_filter(layer, unit)
    if row is None or w is None:
        return None
    r = float(row["r_heldout"])
    title = f"{layer} unit {unit}: spectro-temporal receptive field (held-out r {r:.2f})" if titled else None
    return strf_figure(w, float(row["lag_s"]), s.mel_hz(w.shape[1]), r_heldout=r, title=title, height=320)


def unit_figure_names(data: RunData, layer: str, unit: int) -> list[str]:
    """``["strf-filter"]`` when the unit has an STRF."""
    return ["strf-filter"] if data.strf.unit_filter(layer, unit) is not None else []


def unit_figure(data: RunData, layer: str, unit: int, name: str) -> go.Figure | None:
    """The unit's STRF figure called ``name``."""
    return unit_strf_figure(data, layer, unit, titled=True) if name == "strf-filter" else None


def layer_figure_names(data: RunData, layer: str) -> list[str]:
    """``["strf-gallery"]`` when the layer has STRFs."""
    return ["strf-gallery"] if layer in data.strf.layers else []


def _label(row: Any) -> str:
    return f"unit {int(row['unit'])} · r {float(row['r_heldout']):.2f}"


def layer_figure(data: RunData, layer: str, name: str, *, titled: bool = True) -> go.Figure | None:
    """The layer's gallery: the :data:`GALLERY_K` STRFs with the highest held-out r."""
    if name != "strf-gallery" or layer not in data.strf.layers:
        return None
    s = data.strf
    best = s.best_units(layer, GALLERY_K)
    items: list[tuple[str, np.ndarray]] = []
    for r in best.to_dict("records"):
        w = s.unit_filter(layer, int(r["unit"]))
        if w is not None:
            items.append((_label(r), w))
    if not items:
        return None
    lag_s = float(best["lag_s"].iloc[0])
    title = f"{data.name}: {layer} STRFs with the highest held-out r" if titled else None
    return strf_gallery_figure(items, lag_s, s.mel_hz(items[0][1].shape[1]), title=title)


def overview_figure(data: RunData, *, titled: bool = True) -> go.Figure | None:
    """Every unit's held-out r per layer (None without STRFs)."""
    s = data.strf
    if not s.layers:
        return None
    t = s.table
    r = [t.loc[t["layer"].astype(str) == layer, "r_heldout"].to_numpy(float) for layer in s.layers]
    return strf_r_figure(
        s.layers, r, title=f"{data.name}: how linear the units are (STRF held-out r)" if titled else None
    )


# --------------------------------------------------------------------------------------------
# components
# --------------------------------------------------------------------------------------------
def strf_card(data: RunData, layer: str, unit: int) -> html.Div | None:
    """The unit page's "Spectro-temporal receptive field" card (None without STRF tables)."""
    s = data.strf
    if not s.available:
        return None
    row = s.unit_row(layer, unit)
    fig = unit_strf_figure(data, layer, unit)
    if row is None or fig is None:
        fitted = ", ".join(s.layers) or "none"
        return V.card(
            "Spectro-temporal receptive field",
            html.P(f"No STRF of {layer} in this run (layers fitted: {fitted}).", className="muted"),
            id=ids.UNIT_STRF_CARD,
        )
    r = float(row["r_heldout"])
    n_frames = row.get("n_frames")
    n_clips = s.settings.get("n_clips")
    lag_ms = 1000 * float(row["lag_s"])
    facts = html.P(
        [
            html.Span("held-out r ", className="muted"),
            html.B(f"{r:.2f}" if math.isfinite(r) else "–", id=ids.UNIT_STRF_R),
            html.Span(
                f" · ridge α {V.fmt_num(row.get('alpha'))} · {V.fmt_num(n_frames, 6)} valid frames"
                + (f" of {n_clips} clips" if n_clips else ""),
                className="muted",
            ),
        ],
        className="strf-facts",
    )
    note = html.P(
        f"{_MEANING} The filter spans the unit's receptive field: x is time from the start of the field "
        f"({int(row.get('n_lags', 0))} bins of {lag_ms:.3g} ms), y the mel band's centre; red: more energy there "
        "raises the unit, blue: lowers it (weights of the log-mel, ridge regression, α chosen by generalised "
        "cross-validation on the training clips). ",
        className="note",
    )
    link = dcc.Link(f"{layer} gallery →", href=f"/strf/{layer}", className="small")
    return V.card(
        "Spectro-temporal receptive field",
        html.Div(
            [
                facts,
                dcc.Graph(id=ids.UNIT_STRF_GRAPH, figure=fig, config={"displaylogo": False}),
                note,
                html.Div(link, className="right"),
            ]
        ),
        right=V.export_links("unit", [layer, str(unit)], "strf-filter"),
        id=ids.UNIT_STRF_CARD,
    )


def gallery(data: RunData, layer: str) -> html.Div:
    """The gallery page's body: the layer's best STRFs as thumbnails, each linking to its unit."""
    s = data.strf
    nav = html.Div(
        className="unit-facts",
        children=[html.Span("layers:", className="muted")]
        + [
            dcc.Link(other, href=f"/strf/{other}", className="unitlink" + (" current" if other == layer else ""))
            for other in s.layers
        ],
    )
    if layer not in s.layers:
        msg = (
            f"No STRFs of {layer} in this run."
            if s.available
            else "No STRFs in this run: run `soundnet-interp strf RUN_DIR`."
        )
        return html.Div(
            [html.H2("Spectro-temporal receptive fields"), nav, V.card(None, html.P(msg, className="muted"))]
        )
    best = s.best_units(layer, GALLERY_K)
    lag_s = float(best["lag_s"].iloc[0]) if len(best) else math.nan
    field_s = lag_s * int(best["n_lags"].iloc[0]) if len(best) else math.nan
    tiles = []
    for i, r in enumerate(best.to_dict("records")):
        u = int(r["unit"])
        w = s.unit_filter(layer, u)
        if w is None:
            continue
        fig = strf_figure(w, lag_s, s.mel_hz(w.shape[1]), compact=True, height=150)
        tiles.append(
            html.Div(
                className="strf-tile",
                children=[
                    html.Div(
                        className="strf-tile-head",
                        children=[
                            html.Span(f"#{i + 1}", className="rank"),
                            dcc.Link(f"unit {u}", href=f"/unit/{layer}/{u}", className="strf-unit-link"),
                            html.Span(f"r {float(r['r_heldout']):.2f}", className="muted nowrap strf-r"),
                        ],
                    ),
                    dcc.Graph(figure=fig, config={"staticPlot": True}, className="strf-thumb"),
                ],
            )
        )
    n = int((s.table["layer"].astype(str) == layer).sum())
    note = html.P(
        f"The {len(tiles)} of {n} {layer} units whose STRF predicts them best on held-out clips, highest first "
        f"(each with its own colour range, red positive, blue negative; x: {field_s:.3g} s "
        f"of receptive field, y: mel band centre, log axis). {STRF_NOTE[0].upper() + STRF_NOTE[1:]}.",
        className="note",
    )
    return html.Div(
        [
            html.Div(
                className="unit-header",
                children=[
                    html.Div(
                        className="unit-title",
                        children=[
                            html.H2([html.Span(layer, className="layer-tag"), " spectro-temporal receptive fields"]),
                            nav,
                        ],
                    ),
                ],
            ),
            V.card(
                f"Highest held-out r ({len(tiles)} units)",
                html.Div([html.Div(tiles, id=ids.STRF_GALLERY, className="strf-grid"), note]),
                right=V.export_links("layer", [layer], "strf-gallery"),
            ),
        ]
    )


def overview_card(data: RunData) -> html.Div | None:
    """The overview's STRF card: per layer the held-out r, with links to the galleries."""
    s = data.strf
    if not s.layers:
        return None
    summary = s.layer_summary()
    head = html.Tr(
        [html.Th("layer"), html.Th("units", className="num"), html.Th("median r", className="num")]
        + [html.Th("best r", className="num"), html.Th("r > 0.5", className="num"), html.Th("")]
    )
    rows = [
        html.Tr(
            [
                html.Td(r["layer"], className="mono"),
                html.Td(str(int(r["units"])), className="num"),
                html.Td(V.fmt_num(r["median_r"], 2), className="num"),
                html.Td(V.fmt_num(r["best_r"], 2), className="num"),
                html.Td(str(int(r["above_half"])), className="num"),
                html.Td(dcc.Link("gallery →", href=f"/strf/{r['layer']}")),
            ]
        )
        for r in summary.to_dict("records")
    ]
    n_clips = s.settings.get("n_clips")
    note = html.P(f"{_MEANING} Fitted on {n_clips or '?'} clips of the run (soundnet-interp strf).", className="note")
    return V.card(
        "Spectro-temporal receptive fields",
        html.Div(
            className="grid two",
            children=[
                dcc.Graph(figure=overview_figure(data, titled=False), config={"displaylogo": False}),
                html.Div([html.Table([html.Thead(head), html.Tbody(rows)], className="best"), note]),
            ],
        ),
        right=V.export_links("overview", [], "strf"),
        id=ids.OVERVIEW_STRF_CARD,
    )


V.register_figures("strf", sys.modules[__name__])
