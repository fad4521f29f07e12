"""Search page ``/search``: rank units for a category by any metric; list the units labelled with a
sound-event concept (temporal dissection); find clips by name or label."""

from __future__ import annotations

from typing import Any, cast

import dash
import numpy as np
from dash import ALL, Input, Output, State, ctx, dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from dashboard import dissection_views as DV
from dashboard import ids
from dashboard import views as V
from dashboard.data import get_data
from soundnet.model import HEAD_LAYERS
from soundnet.options import Metric

dash.register_page(__name__, path="/search", title="Search · SoundNet units", name="Search", order=1)

_METRICS = [
    ("auroc", "AUROC"),
    ("dprime", "d′"),
    ("csi", "CSI"),
    ("mi_bits", "MI (bits)"),
    ("iou", "IoU"),
    ("z", "Mann-Whitney z"),
    ("q", "q (ascending)"),
    ("p", "p (ascending)"),
]
_TOPS = [20, 50, 100, 500]
_NUM = Format(precision=3, scheme=Scheme.fixed)
_P = Format(precision=2, scheme=Scheme.decimal_or_exponent)
_TABLE_STYLE = dict(
    style_as_list_view=True,
    cell_selectable=False,
    style_cell={
        "fontFamily": "inherit",
        "fontSize": "12px",
        "padding": "4px 8px",
        "textAlign": "right",
        "border": "none",
        "borderBottom": "1px solid #eef1f4",
    },
    style_header={
        "fontWeight": 600,
        "color": "#52606d",
        "backgroundColor": "white",
        "borderBottom": "2px solid #d9dee4",
    },
)


def layout(
    category: str | None = None,
    layer: str | None = None,
    metric: str | None = None,
    concept: str | None = None,
    **_: Any,
) -> html.Div:
    data = get_data()
    cats = data.categories
    category = category if category in cats else None
    layers_default = [layer] if layer in data.layers else data.conv_layers
    metric = metric if metric in dict(_METRICS) else "auroc"
    return html.Div(
        className="search-page",
        children=[
            V.card(
                "Find units selective for a category",
                html.Div(
                    [
                        html.Div(
                            className="controls",
                            children=[
                                html.Div(
                                    className="control grow",
                                    children=[
                                        html.Label("category (type to search)", htmlFor=ids.SEARCH_TEXT),
                                        dcc.Input(
                                            id=ids.SEARCH_TEXT,
                                            type="search",
                                            value=category or "",
                                            placeholder="e.g. speech, drum …",
                                            debounce=False,
                                            autoComplete="off",
                                            className="search-input",
                                        ),
                                        html.Div(
                                            id=ids.SEARCH_MATCHES,
                                            className="chips",
                                            children=_chips(data, category or ""),
                                        ),
                                    ],
                                ),
                                html.Div(
                                    className="control",
                                    children=[
                                        html.Label("selected"),
                                        dcc.Dropdown(
                                            id=ids.SEARCH_CATEGORY,
                                            options=[{"label": c, "value": c} for c in cats],
                                            value=category,
                                            placeholder="category",
                                            clearable=True,
                                        ),
                                    ],
                                ),
                                html.Div(
                                    className="control",
                                    children=[
                                        html.Label("rank by"),
                                        dcc.Dropdown(
                                            id=ids.SEARCH_METRIC,
                                            options=[{"label": n, "value": m} for m, n in _METRICS],
                                            value=metric,
                                            clearable=False,
                                        ),
                                    ],
                                ),
                                html.Div(
                                    className="control",
                                    children=[
                                        html.Label("show"),
                                        dcc.Dropdown(
                                            id=ids.SEARCH_TOP,
                                            options=[{"label": f"top {t}", "value": t} for t in _TOPS]
                                            + [{"label": "all", "value": 0}],
                                            value=50,
                                            clearable=False,
                                        ),
                                    ],
                                ),
                            ],
                        ),
                        html.Div(
                            className="controls",
                            children=[
                                html.Div(
                                    className="control grow",
                                    children=[
                                        html.Label("layers"),
                                        dcc.Checklist(
                                            id=ids.SEARCH_LAYERS,
                                            options=[{"label": l, "value": l} for l in data.layers],
                                            value=layers_default,
                                            inline=True,
                                            className="checks",
                                        ),
                                    ],
                                ),
                                html.Div(
                                    className="control",
                                    children=[
                                        dcc.Checklist(
                                            id=ids.SEARCH_SELECTIVE_ONLY,
                                            options=[
                                                {
                                                    "label": f" only units {data.selective_rule('this category')}",
                                                    "value": "yes",
                                                }
                                            ],
                                            value=[],
                                            className="checks",
                                        ),
                                    ],
                                ),
                            ],
                        ),
                        html.Div(id=ids.SEARCH_SUMMARY, className="summary muted"),
                        dash_table.DataTable(  # type: ignore[attr-defined]  # generated at import, unknown to the stubs
                            id=ids.SEARCH_TABLE,
                            data=[],
                            sort_action="native",
                            page_action="native",
                            page_size=25,
                            columns=[
                                {"name": "#", "id": "rank", "type": "numeric"},
                                {"name": "unit", "id": "unit_link", "presentation": "markdown"},
                                {"name": "unit label status", "id": "label"},
                                {"name": "AUROC", "id": "auroc", "type": "numeric", "format": _NUM},
                                {
                                    "name": "d′",
                                    "id": "dprime",
                                    "type": "numeric",
                                    "format": Format(precision=2, scheme=Scheme.fixed),
                                },
                                {"name": "CSI", "id": "csi", "type": "numeric", "format": _NUM},
                                {"name": "MI (bits)", "id": "mi_bits", "type": "numeric", "format": _NUM},
                                {"name": "IoU", "id": "iou", "type": "numeric", "format": _NUM},
                                {"name": "q", "id": "q", "type": "numeric", "format": _P},
                                {"name": "mean in / out", "id": "means"},
                            ],
                            style_cell_conditional=[
                                {"if": {"column_id": c}, "textAlign": "left"} for c in ("unit_link", "label")
                            ],
                            style_data_conditional=[
                                {"if": {"filter_query": '{selective} = "yes"'}, "backgroundColor": "#eef6ff"},
                                {
                                    "if": {"filter_query": '{selective} = "yes"', "column_id": "label"},
                                    "fontWeight": 700,
                                    "color": "#1d4ed8",
                                },
                            ],
                            markdown_options={"link_target": "_self"},
                            **_TABLE_STYLE,
                        ),
                        html.P(
                            f"Highlighted: units {data.selective_rule('the chosen category')}.",
                            id=ids.SEARCH_NOTE,
                            className="note",
                        ),
                    ]
                ),
            ),
            _concept_card(data, concept, layer),
            V.card(
                "Clips",
                html.Div(
                    [
                        dcc.Input(
                            id=ids.CLIPS_TEXT,
                            type="search",
                            placeholder="filter clips by name or label …",
                            debounce=False,
                            autoComplete="off",
                            className="search-input",
                        ),
                        dash_table.DataTable(  # type: ignore[attr-defined]  # generated at import, unknown to the stubs
                            id=ids.CLIPS_TABLE,
                            data=_clip_rows(data, ""),
                            page_action="native",
                            page_size=12,
                            sort_action="native",
                            columns=[
                                {"name": "clip", "id": "clip_link", "presentation": "markdown"},
                                {"name": "label", "id": "label"},
                                {
                                    "name": "duration (s)",
                                    "id": "duration_s",
                                    "type": "numeric",
                                    "format": Format(precision=2, scheme=Scheme.fixed),
                                },
                                {"name": "source", "id": "source"},
                            ],
                            style_cell_conditional=[
                                {"if": {"column_id": c}, "textAlign": "left"} for c in ("clip_link", "label", "source")
                            ],
                            markdown_options={"link_target": "_self"},
                            **_TABLE_STYLE,
                        ),
                    ]
                ),
            ),
        ],
    )


def _concept_card(data, concept: str | None, layer: str | None) -> html.Div | None:
    """Units labelled with a concept by the temporal dissection (only when the run has it)."""
    d = data.dissection
    if not d.available:
        return None
    concept = concept if concept in d.concepts else None
    layers: list[str] = [str(layer)] if layer in d.layers else d.layers
    rows, summary = DV.concept_rows(data, concept, layers)
    return V.card(
        "Find units by sound-event concept (temporal dissection)",
        html.Div(
            [
                html.Div(
                    className="controls",
                    children=[
                        html.Div(
                            className="control",
                            children=[
                                html.Label("concept (type to search)"),
                                dcc.Dropdown(
                                    id=ids.SEARCH_CONCEPT,
                                    options=[{"label": c, "value": c} for c in d.concepts],
                                    value=concept,
                                    placeholder="concept",
                                    clearable=True,
                                    searchable=True,
                                ),
                            ],
                        ),
                        html.Div(
                            className="control grow",
                            children=[
                                html.Label("layers"),
                                dcc.Checklist(
                                    id=ids.SEARCH_CONCEPT_LAYERS,
                                    options=[{"label": l, "value": l} for l in d.layers],
                                    value=layers,
                                    inline=True,
                                    className="checks",
                                ),
                            ],
                        ),
                    ],
                ),
                html.Div(summary, id=ids.SEARCH_CONCEPT_SUMMARY, className="summary muted"),
                dash_table.DataTable(  # type: ignore[attr-defined]  # generated at import, unknown to the stubs
                    id=ids.SEARCH_CONCEPT_TABLE,
                    data=rows,
                    sort_action="native",
                    page_action="native",
                    page_size=25,
                    columns=[
                        {"name": "#", "id": "rank", "type": "numeric"},
                        {"name": "unit", "id": "unit_link", "presentation": "markdown"},
                        {"name": "IoU", "id": "iou", "type": "numeric", "format": _NUM},
                        {"name": "null IoU (time)", "id": "iou_null_time", "type": "numeric", "format": _NUM},
                        {"name": "null IoU (label)", "id": "iou_null_label", "type": "numeric", "format": _NUM},
                        {"name": "q_time", "id": "q_time", "type": "numeric", "format": _P},
                        {"name": "q_label", "id": "q_label", "type": "numeric", "format": _P},
                        {"name": "precision", "id": "precision", "type": "numeric", "format": _NUM},
                        {"name": "recall", "id": "recall", "type": "numeric", "format": _NUM},
                        {"name": "concepts passing", "id": "n_concepts", "type": "numeric"},
                    ],
                    style_cell_conditional=[{"if": {"column_id": "unit_link"}, "textAlign": "left"}],
                    markdown_options={"link_target": "_self"},
                    **_TABLE_STYLE,
                ),
                html.P(
                    "Units whose dissection status is concept with the chosen concept: their above-threshold frames "
                    "overlap its events more than under both nulls (events shifted in time; labels permuted across "
                    "events). concepts passing: how many concepts pass both nulls for the unit (it is listed under "
                    "its best, by IoU).",
                    className="note",
                ),
            ]
        ),
    )


@dash.callback(
    Output(ids.SEARCH_CONCEPT_TABLE, "data"),
    Output(ids.SEARCH_CONCEPT_SUMMARY, "children"),
    Input(ids.SEARCH_CONCEPT, "value"),
    Input(ids.SEARCH_CONCEPT_LAYERS, "value"),
    prevent_initial_call=True,
)
def concept_units(concept: str | None, layers: list[str] | None):
    """The units labelled with a concept (from ``dissection_units.parquet``), highest IoU first."""
    return DV.concept_rows(get_data(), concept, list(layers or []))


def _matches(cats: list[str], text: str) -> list[str]:
    t = (text or "").strip().lower()
    if not t:
        return list(cats)
    return [c for c in cats if t in c.lower() or t in c.lower().replace("_", " ")]


def _chips(data, text: str) -> list:
    found = _matches(data.categories, text)
    if not found:
        return [html.Span("no category matches", className="muted")]
    return [
        html.Button(
            c,
            id={"type": ids.SEARCH_CHIP, "category": c},
            className="chip button",
            style={"--chip": data.colors.get(c, "#9aa5b1")},
            n_clicks=0,
        )
        for c in found
    ]


@dash.callback(
    Output(ids.SEARCH_MATCHES, "children"),
    Output(ids.SEARCH_CATEGORY, "value"),
    Input(ids.SEARCH_TEXT, "value"),
    Input({"type": ids.SEARCH_CHIP, "category": ALL}, "n_clicks"),
    State(ids.SEARCH_CATEGORY, "value"),
    prevent_initial_call=True,
)
def search_categories(text: str | None, _clicks: list, current: str | None):
    """Free text over category names: chips for the matches; a single or exact match is selected."""
    data = get_data()
    trig = ctx.triggered_id
    if isinstance(trig, dict) and trig.get("type") == ids.SEARCH_CHIP:
        if not any(_clicks or []):
            return dash.no_update, dash.no_update
        cat = trig.get("category")
        return dash.no_update, cat if cat in data.categories else dash.no_update
    found = _matches(data.categories, text or "")
    exact = [c for c in found if c.lower() == (text or "").strip().lower()]
    pick = exact[0] if exact else (found[0] if len(found) == 1 and (text or "").strip() else dash.no_update)
    return _chips(data, text or ""), pick


@dash.callback(
    Output(ids.SEARCH_TABLE, "data"),
    Output(ids.SEARCH_SUMMARY, "children"),
    Input(ids.SEARCH_CATEGORY, "value"),
    Input(ids.SEARCH_METRIC, "value"),
    Input(ids.SEARCH_LAYERS, "value"),
    Input(ids.SEARCH_SELECTIVE_ONLY, "value"),
    Input(ids.SEARCH_TOP, "value"),
)
def rank_units(
    category: str | None, metric: str, layers: list[str] | None, selective: list[str] | None, top: int | None
):
    """The ranked units of a category (from ``selectivity.parquet``), each linking to its page."""
    data = get_data()
    if not data.has_selectivity:
        return [], "No selectivity table in this run: run `soundnet-interp analyze RUN_DIR` first."
    if not category or category not in data.categories:
        return [], "Choose a category (type its name above) to rank the units."
    metric = metric if metric in dict(_METRICS) else "auroc"
    df = data.rank(
        category,
        metric=cast(Metric, metric),  # one of _METRICS, checked above
        layers=[l for l in (layers or []) if l in data.layers],
        selective_only=bool(selective),
        top=int(top) if top else None,
    )
    if df.empty:
        return [], f"No unit of the chosen layers matches for {category}."
    rows = []
    for r in df.itertuples(index=False):
        rows.append(
            {
                "rank": int(r.rank) + 1,
                "unit_link": f"[{r.layer} · {int(r.unit)}](/unit/{r.layer}/{int(r.unit)})",
                "label": str(getattr(r, "status", "") or ""),
                "auroc": float(r.auroc),
                "dprime": float(r.dprime),
                "csi": float(r.csi),
                "mi_bits": float(r.mi_bits),
                "iou": float(r.iou),
                "q": float(r.q),
                "means": f"{V.fmt_num(r.mean_pos)} / {V.fmt_num(r.mean_rest)}",
                "selective": "yes" if bool(r.selective) else "",
            }
        )
    n_sel = int(df["selective"].sum())
    heads = [l for l in (layers or []) if l in HEAD_LAYERS]
    note = " Head units are output classes (logits)." if heads else ""
    return rows, (
        f"{len(df)} units shown for {category}, ranked by {dict(_METRICS)[metric]}; {n_sel} of them "
        f"{'are ' + data.selective_rule(category) if data.has_unit_status else data.selective_rule(category).replace('passing', 'pass', 1)}.{note}"
    )


def _clip_rows(data, text: str) -> list[dict]:
    c = data.clips
    t = (text or "").strip().lower()
    if t:
        mask = c["name"].str.lower().str.contains(t, regex=False) | c["label"].str.lower().str.contains(t, regex=False)
        c = c[mask]
    src = c["source"].astype(str) if "source" in c.columns else np.full(len(c), "")
    return [
        {"clip_link": f"[{n}](/clip/{cid})", "label": lab, "duration_s": float(d), "source": s}
        for cid, n, lab, d, s in zip(c.index, c["name"], c["label"], c["duration_s"], src)
    ]


@dash.callback(Output(ids.CLIPS_TABLE, "data"), Input(ids.CLIPS_TEXT, "value"), prevent_initial_call=True)
def filter_clips(text: str | None):
    """Clips whose name or label contains the text."""
    return _clip_rows(get_data(), text or "")
