"""Clip page ``/clip/<clip_id>``: one clip's spectrogram, its most active units, its predictions."""

from __future__ import annotations

import math
from typing import Any

import dash
import numpy as np
from dash import Input, Output, State, dcc, html

from dashboard import ids
from dashboard import views as V
from dashboard.data import RunData, get_data
from soundnet.model import HEAD_LAYERS


def _title(clip_id: str | None = None, **_: Any) -> str:
    return f"clip {clip_id} · SoundNet units"


dash.register_page(__name__, path_template="/clip/<clip_id>", title=_title, name="Clip")

#: Units listed per layer.
N_UNITS = 6


def layout(clip_id: str | None = None, **_: Any) -> html.Div:
    data = get_data()
    if not data.has_clip(clip_id):
        return html.Div(
            className="card notfound",
            children=[
                html.H2("No such clip"),
                html.P(f"{clip_id!s} is not a clip of this run."),
                dcc.Link("search the clips", href="/search"),
            ],
        )
    row = data.clip(clip_id)
    active = _active_units(data, clip_id)
    default_layer, why = _default_layer(data, clip_id, active)
    default_unit = int(active[default_layer][0][0]) if default_layer and active[default_layer] else None
    fig = V.clip_spectrogram_figure(data, clip_id, layer=default_layer, unit=default_unit)
    return html.Div(
        className="clip-page",
        children=[
            dcc.Store(id=ids.CLIP_STORE, data={"clip_id": clip_id}),
            _header(data, clip_id, row),
            V.card(
                "Spectrogram and unit activation",
                html.Div(
                    [
                        html.Div(
                            className="controls",
                            children=[
                                html.Div(
                                    className="control",
                                    children=[
                                        html.Label("overlay layer"),
                                        dcc.Dropdown(
                                            id=ids.CLIP_OVERLAY_LAYER,
                                            options=[{"label": l, "value": l} for l in data.conv_layers],
                                            value=default_layer,
                                            clearable=True,
                                            placeholder="none",
                                        ),
                                    ],
                                ),
                                html.Div(
                                    className="control",
                                    children=[
                                        html.Label("unit"),
                                        dcc.Input(
                                            id=ids.CLIP_OVERLAY_UNIT,
                                            type="number",
                                            min=0,
                                            step=1,
                                            value=default_unit,
                                            debounce=True,
                                        ),
                                    ],
                                ),
                                html.Div(
                                    className="control grow muted small",
                                    children=[
                                        f"Defaults to the {default_layer} unit for which this clip stands out most "
                                        f"(z-score of its max; {why})."
                                        if default_layer
                                        else "No conv layer recorded."
                                    ],
                                ),
                            ],
                        ),
                        dcc.Graph(id=ids.CLIP_SPECTROGRAM_GRAPH, figure=fig, config={"displaylogo": False}),
                    ]
                ),
                right=V.export_links("clip", [clip_id], "spectrogram"),
            ),
            html.Div(
                className="grid two",
                children=[
                    V.card(
                        "Most active units per layer",
                        _units_table(data, clip_id, active),
                        right=html.Span(
                            "ranked by how unusual this clip's max is for the unit", className="muted small"
                        ),
                    ),
                    html.Div(
                        [
                            _head_card(data, clip_id, "conv8", "objects", ids.CLIP_OBJECTS_GRAPH),
                            _head_card(data, clip_id, "conv8_2", "places", ids.CLIP_PLACES_GRAPH),
                        ]
                    ),
                ],
            ),
        ],
    )


def _header(data: RunData, clip_id: str, row: Any) -> html.Div:
    facts = [
        *V.label_chips(data, clip_id, links=True, most=8),
        html.Span(f"{float(row['duration_s']):.2f} s", className="muted"),
    ]
    start = float(row.get("start_s", 0.0) or 0.0)
    end = row.get("end_s")
    if start > 0 or (end is not None and math.isfinite(float(end))):
        facts.append(
            html.Span(
                f"excerpt {start:.2f}–{float(end) if end is not None and math.isfinite(float(end)) else float('nan'):.2f} s of the file",
                className="muted",
            )
        )
    for col in ("source", "license", "credit"):
        if col in row.index and str(row[col]) not in ("", "nan", "None"):
            facts.append(html.Span(f"{col}: {row[col]}", className="muted small"))
    if str(row.get("note", "") or ""):
        facts.append(html.Span(str(row["note"]), className="muted small"))
    return html.Div(
        className="unit-header",
        children=[
            html.Div(
                className="unit-title",
                children=[
                    html.H2([html.Span("clip", className="layer-tag"), f" {row['name']}"]),
                    html.Div(className="unit-facts", children=facts),
                ],
            ),
            html.Div(className="clip-audio", children=[V.audio_player(clip_id, element_id=ids.CLIP_AUDIO)]),
        ],
    )


def _default_layer(
    data: RunData, clip_id: str, active: dict[str, list[tuple[int, float, float, float]]]
) -> tuple[str | None, str]:
    """The layer the overlay opens on, and why.

    The deepest conv layer in which the clip has a valid frame (``clips.parquet``
    ``valid_frames_<layer>`` > 0: a frame whose receptive field lies at least half inside the
    clip). A run without those columns, or a clip without a valid frame in any layer, opens on
    conv5 (else the first layer).
    """
    row = data.clip(clip_id)
    layers = [layer for layer in data.conv_layers if active.get(layer)]
    if layers and all(f"valid_frames_{layer}" in row.index for layer in layers):
        valid = [layer for layer in layers if _count(row[f"valid_frames_{layer}"]) > 0]
        if valid:
            return valid[-1], "the deepest layer in which the clip has a valid frame"
        why = "the clip has no valid frame in any layer"
    else:
        why = "the run has no valid-frame counts"
    if "conv5" in layers:
        return "conv5", why
    return (layers[0], why) if layers else (None, "")


def _count(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def _active_units(data: RunData, clip_id: str) -> dict[str, list[tuple[int, float, float, float]]]:
    """Per conv layer, the ``N_UNITS`` units whose max on this clip stands out most from their usual.

    Units are ranked by the z-score of the clip's max among the unit's per-clip maxima over the
    corpus; each entry is ``(unit, max, fraction of the unit's corpus max, z)``.
    """
    out: dict[str, list[tuple[int, float, float, float]]] = {}
    for layer in data.conv_layers:
        v = data.clip_values(clip_id, layer)
        mom = data.unit_max_moments(layer)
        with np.errstate(all="ignore"):
            z = np.where(mom["std"] > 0, (v - mom["mean"]) / mom["std"], np.nan)
            rel = np.where(mom["max"] > 0, v / mom["max"], np.nan)
        key = np.where(np.isfinite(z), z, -np.inf)
        order = np.argsort(-key, kind="stable")[:N_UNITS]
        out[layer] = [(int(u), float(v[u]), float(rel[u]), float(z[u])) for u in order if np.isfinite(key[u])]
    return out


_NO_VALID_TIP = (
    "no frame of this layer has its receptive field at least half inside the clip: the clip has no "
    "value of the mean over valid frames here, and its max reads mostly padding"
)


def _no_valid_frame(row: Any, layer: str) -> bool:
    """Whether ``clips.parquet`` says the clip has no valid frame in ``layer`` (False without the column)."""
    col = f"valid_frames_{layer}"
    return col in row.index and _count(row[col]) <= 0


def _units_table(data: RunData, clip_id: str, active: dict[str, list[tuple[int, float, float, float]]]) -> html.Table:
    row = data.clip(clip_id)
    rows = []
    for layer, units in active.items():
        cells = []
        for u, value, rel, z in units:
            st = data.unit_status(layer, u)
            status = "" if st is None else str(st["status"])
            label = str(st["label"]) if st is not None and status == "selective" else ""
            tip = label or ("polysemantic: " + "; ".join(st["categories"]) if st and status == "polysemantic" else "")
            cells.append(
                dcc.Link(
                    className="unitlink",
                    href=f"/unit/{layer}/{u}",
                    title=f"max {value:.3g} = {100 * rel:.0f}% of the unit's corpus max",
                    children=[
                        html.Span(f"{u}", className="mono"),
                        html.Span(f" z {z:.1f}", className="muted"),
                        html.Span(
                            className="dot",
                            style={"background": data.colors.get(label, "#9aa5b1")}
                            if label
                            else {"boxSizing": "border-box", "border": "1.5px solid #7b3fa0"},
                            title=tip,
                        )
                        if tip
                        else None,
                    ],
                )
            )
        name: list[Any] = [layer]
        if _no_valid_frame(row, layer):
            name.append(html.Div("no valid frame", className="muted small", title=_NO_VALID_TIP))
        rows.append(html.Tr([html.Td(name, className="mono"), html.Td(cells, className="links")]))
    return html.Table(
        className="best",
        children=[
            html.Thead(
                html.Tr(
                    [
                        html.Th("layer"),
                        html.Th("units (z of this clip's max among the unit's clips; dot: label, ring: polysemantic)"),
                    ]
                )
            ),
            html.Tbody(rows),
        ],
    )


def _head_card(data: RunData, clip_id: str, head: str, name: str, graph_id: str) -> html.Div | None:
    if head not in data.layers:
        return None
    fig = V.head_figure(data, clip_id, head)
    if fig is None:
        return None
    return V.card(
        f"Predicted {name}",
        dcc.Graph(id=graph_id, figure=fig, config={"displaylogo": False}),
        right=V.export_links("clip", [clip_id], name),
    )


@dash.callback(
    Output(ids.CLIP_SPECTROGRAM_GRAPH, "figure"),
    Input(ids.CLIP_OVERLAY_LAYER, "value"),
    Input(ids.CLIP_OVERLAY_UNIT, "value"),
    State(ids.CLIP_STORE, "data"),
    prevent_initial_call=True,
)
def overlay(layer: str | None, unit: Any, store: dict | None):
    """Redraw the spectrogram with another unit's activation (or none)."""
    data = get_data()
    clip_id = (store or {}).get("clip_id")
    if not data.has_clip(clip_id):
        return dash.no_update
    if not layer:
        return V.clip_spectrogram_figure(data, clip_id)
    text = str(int(unit)) if isinstance(unit, (int, float)) and float(unit).is_integer() else str(unit)
    ok = data.check_unit(layer, text)
    if ok is None or ok[0] in HEAD_LAYERS:
        return dash.no_update
    return V.clip_spectrogram_figure(data, clip_id, layer=ok[0], unit=ok[1])
