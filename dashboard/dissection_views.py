"""Temporal dissection on the pages: the unit page's card, the overview's card, the search rows.

Everything is read from the run's dissection tables (:class:`dashboard.dissection.DissectionData`)
and drawn through :mod:`interp.report.figures.dissection_charts`; the clip cards are the unit page's
(:func:`dashboard.views.clip_card`, :func:`dashboard.views.clip_trace_figure`) with the events and
the unit's threshold drawn on them. Figure names (for the export route): ``dissection-profile``,
``dissection-clip-<i>`` (unit) and ``dissection`` (overview).
"""

from __future__ import annotations

import math
import sys
from typing import Any

import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ids
from dashboard import views as V
from dashboard.data import RunData
from dashboard.dissection import STATUS_WORDS
from interp.report.figures.dissection_charts import (
    CONCEPT_COUNTS_TITLE,
    concept_layer_heatmap,
    mark_events,
    onset_profile_figure,
)

__all__ = [
    "N_CLIPS",
    "CONCEPT_COUNTS_TITLE",
    "unit_figure_names",
    "unit_figure",
    "overview_figure",
    "status_chip",
    "unit_card",
    "overview_card",
    "concept_rows",
]

#: Clips shown on the unit page's dissection card.
N_CLIPS = 4


# --------------------------------------------------------------------------------------------
# unit: what to show
# --------------------------------------------------------------------------------------------
def _shown_concept(data: RunData, layer: str, unit: int) -> str | None:
    """The concept a unit's profile and clips show: its best (``dissection_units``: the highest
    IoU among the concepts passing both nulls, else the highest IoU)."""
    st = data.dissection.unit_status(layer, unit)
    if st is None:
        return None
    c = str(st.get("concept", ""))
    return c if c in data.dissection.concepts else None


def _threshold(data: RunData, layer: str, unit: int) -> float | None:
    rows = data.dissection.unit_rows(layer, unit)
    for v in rows.get("threshold", []):
        if v is not None and math.isfinite(float(v)):
            return float(v)
    return None


def unit_figure_names(data: RunData, layer: str, unit: int) -> list[str]:
    """The unit's dissection figures (none when it was not dissected)."""
    d = data.dissection
    if not d.available or _shown_concept(data, layer, unit) is None:
        return []
    names = ["dissection-profile"] if len(d.unit_profiles(layer, unit)) else []
    concept = _shown_concept(data, layer, unit) or ""
    return names + [f"dissection-clip-{i}" for i in range(len(d.clips(layer, unit, concept, k=N_CLIPS)))]


def profile_figure(data: RunData, layer: str, unit: int, *, titled: bool = False) -> go.Figure | None:
    """The unit's onset-aligned profile for its best concept (the others faintly)."""
    concept = _shown_concept(data, layer, unit)
    prof = data.dissection.unit_profiles(layer, unit)
    if concept is None or prof.empty or concept not in set(prof["concept"]):
        return None
    title = (
        f"{layer} unit {unit}: mean activation around the onsets of {concept} events "
        "(dotted: the other concepts; the unit's threshold)"
        if titled
        else None
    )
    return onset_profile_figure(
        prof, concept, threshold=_threshold(data, layer, unit), colors=data.dissection.colors, title=title
    )


def clip_figure(data: RunData, layer: str, unit: int, i: int, *, compact: bool = True) -> go.Figure | None:
    """The ``i``-th dissection clip: spectrogram and the unit's trace (the unit page's clip
    figure), the concept's events shaded, the other events as a band at the top, the threshold
    dashed."""
    concept = _shown_concept(data, layer, unit)
    if concept is None:
        return None
    clips = data.dissection.clips(layer, unit, concept, k=N_CLIPS)
    fig = V.clip_trace_figure(data, layer, unit, i, compact=compact, top=clips)
    if fig is None:
        return None
    row = clips.iloc[i]
    if not compact:
        fig.update_layout(
            title=dict(
                text=f"{layer} unit {unit} · {row['name']}: {int(row['n_concept'])} {concept} events shaded "
                f"(band at the top: other events; dashed: the unit's threshold)"
            )
        )
    return mark_events(
        fig,
        data.dissection.clip_events(str(row["clip_id"])),
        concept=concept,
        threshold=_threshold(data, layer, unit),
        colors=data.dissection.colors,
    )


def unit_figure(data: RunData, layer: str, unit: int, name: str) -> go.Figure | None:
    """The unit's dissection figure called ``name`` (see :func:`unit_figure_names`)."""
    if name not in unit_figure_names(data, layer, unit):
        return None
    if name == "dissection-profile":
        return profile_figure(data, layer, unit, titled=True)
    return clip_figure(data, layer, unit, int(name.rsplit("-", 1)[1]), compact=False)


# --------------------------------------------------------------------------------------------
# unit: components
# --------------------------------------------------------------------------------------------
def _q(v: Any) -> str:
    return V.fmt_p(v)


def status_chip(data: RunData, layer: str, unit: int) -> html.Span | None:
    """The unit's dissection status as a chip line (docs/dissection.md's wording): "concept
    <kick_drum> (IoU ..., q_time ..., q_label ...)", "fires at events of any kind (...)" or
    "unlabelled (...)"; None when the unit was not dissected."""
    d = data.dissection
    st = d.unit_status(layer, unit)
    if st is None:
        return None
    status = str(st["status"])
    concept = str(st.get("concept", ""))
    best = f"{concept} IoU {V.fmt_num(st.get('iou'), 2)}"
    children: list[Any]
    if status == "concept":
        n = int(st.get("n_concepts", 1) or 1)
        more = f"; {n} concepts pass both nulls" if n > 1 else ""
        text = (
            f"concept {concept}: IoU {V.fmt_num(st.get('iou'), 2)}, q_time {_q(st.get('q_time'))}, "
            f"q_label {_q(st.get('q_label'))} (both nulls pass, q < {d.q_max:g}{more})"
        )
        children = [
            html.Span("concept", className="status-word"),
            V.label_chip(concept, d.colors.get(concept), href=f"/search?concept={concept}"),
            text[len(f"concept {concept}:") :].strip(),
        ]
    elif status == "events":
        text = (
            f"fires at events of any kind: the alignment null passes (q_time < {d.q_max:g}) but no concept passes "
            f"the specificity null (best: {best}, q_label {_q(st.get('q_label'))})"
        )
        children = [html.Span(STATUS_WORDS["events"], className="status-word"), text.split(":", 1)[1].strip()]
    else:
        text = f"unlabelled: no concept passes the alignment null (best: {best}, q_time {_q(st.get('q_time'))})"
        children = [html.Span("unlabelled", className="status-word"), text.split(":", 1)[1].strip()]
    return html.Span(children, className=f"status dissection-status dstatus-{status}", title=text)


_COLUMNS = [
    ("concept", "concept", ""),
    ("IoU", "iou", "|above ∩ concept| / |above ∪ concept| over the corpus's valid frames"),
    ("null IoU (time)", "iou_null_time", "mean IoU with each clip's events shifted by a random lag"),
    ("null IoU (label)", "iou_null_label", "IoU with the labels permuted across events"),
    ("q_time", "q_time", "alignment null: does the unit fire at these events at all? (BH q)"),
    ("q_label", "q_label", "specificity null: at this concept's events more than at other events? (BH q)"),
    ("precision", "precision", "|above ∩ concept| / |above|"),
    ("recall", "recall", "|above ∩ concept| / |concept|"),
    ("events", "n_events", "the concept's events in the corpus"),
]


def _concept_table(data: RunData, layer: str, unit: int) -> html.Table:
    d = data.dissection
    rows = d.unit_rows(layer, unit)
    body = []
    for r in rows.itertuples(index=False):
        cells: list[Any] = [html.Td(V.label_chip(str(r.concept), d.colors.get(str(r.concept))))]
        for _, col, _ in _COLUMNS[1:]:
            v = getattr(r, col)
            if col.startswith("q_"):
                txt = _q(v)
            elif col == "n_events":
                txt = str(int(v))
            else:
                txt = V.fmt_num(v, 3)
            cells.append(html.Td(txt, className="num"))
        body.append(html.Tr(cells, className="pass" if bool(r.passes) else None))
    return html.Table(
        id=ids.UNIT_DISSECTION_TABLE,
        className="best dissection-table",
        children=[
            html.Thead(
                html.Tr(
                    [
                        html.Th(name, title=tip, className=None if col == "concept" else "num")
                        for name, col, tip in _COLUMNS
                    ]
                )
            ),
            html.Tbody(body),
        ],
    )


def _clip_cards(data: RunData, layer: str, unit: int, concept: str) -> list[html.Div]:
    clips = data.dissection.clips(layer, unit, concept, k=N_CLIPS)
    cards = []
    for i in range(len(clips)):
        row = clips.iloc[i]
        n_c, n_all = int(row["n_concept"]), int(row["n_events"])
        others = n_all - n_c
        extra = html.P(
            f"{n_c} {concept} event{'' if n_c == 1 else 's'}"
            + (f", {others} other{'' if others == 1 else 's'}" if others else ""),
            className="clip-card-note",
        )
        cards.append(
            V.clip_card(
                data,
                layer,
                unit,
                i,
                clips,
                {"type": ids.UNIT_DISSECTION_GRAPH, "rank": i},
                {"type": ids.UNIT_DISSECTION_AUDIO, "rank": i},
                figure=clip_figure(data, layer, unit, i),
                export_name=f"dissection-clip-{i}",
                extra=extra,
            )
        )
    return cards


def unit_card(data: RunData, layer: str, unit: int) -> html.Div | None:
    """The unit page's "Temporal dissection" card (None when the run has no dissection tables)."""
    d = data.dissection
    if not d.available:
        return None
    st = d.unit_status(layer, unit)
    if st is None:
        return V.card(
            "Temporal dissection",
            html.P(f"{layer} was not dissected (dissected layers: {', '.join(d.layers)}).", className="muted"),
            id=ids.UNIT_DISSECTION_CARD,
        )
    concept = _shown_concept(data, layer, unit) or ""
    prof = profile_figure(data, layer, unit)
    profile: Any = (
        html.Div(
            [
                html.H4(f"Around the onsets of {concept} events", className="subhead"),
                dcc.Graph(id=ids.UNIT_DISSECTION_PROFILE, figure=prof, config={"displaylogo": False}),
                html.Div(V.export_links("unit", [layer, str(unit)], "dissection-profile"), className="right"),
            ]
        )
        if prof is not None
        else html.P("No onset-aligned profile in this run (dissection_profiles.parquet).", className="muted")
    )
    th = _threshold(data, layer, unit)
    note = html.P(
        f"The unit is above threshold on its top {100 * (1 - d.quantile):.3g} % of valid frames "
        f"(threshold {V.fmt_num(th)}); IoU, precision and recall compare those frames with each concept's event "
        f"frames over the {d.meta.get('n_clips', '?')} dissected clips ({d.meta.get('n_events', '?')} events). "
        f"Two nulls: alignment (q_time: events shifted by a random lag within each clip; does the unit fire at "
        f"these events at all?) and specificity (q_label: labels permuted across events; at this concept's events "
        f"more than at others?). Highlighted: both q < {d.q_max:g}. See docs/dissection.md.",
        className="note",
    )
    cards = _clip_cards(data, layer, unit, concept) if concept else []
    legend = html.Span(
        className="legend-inline",
        children=[
            html.Span(className="swatch event", style={"background": d.colors.get(concept, "#9aa5b1")}),
            f"{concept} events ",
            html.Span(className="swatch band"),
            "other events (top band) ",
            html.Span(className="swatch trace"),
            "activation ",
            html.Span(className="swatch threshold"),
            "threshold",
        ],
    )
    clips: Any = (
        html.Div(
            [
                html.Div(
                    className="card-subhead",
                    children=[
                        html.H4(
                            f"Clips with the most {concept} events (chosen without the unit's activation)",
                            className="subhead",
                        ),
                        legend,
                    ],
                ),
                html.Div(cards, id=ids.UNIT_DISSECTION_CLIPS, className="clip-grid"),
            ]
        )
        if cards
        else html.P(
            "No event table in this run (dissection_events.parquet)"
            if d.events is None
            else f"No clip has {concept} events.",
            className="muted",
        )
    )
    return V.card(
        "Temporal dissection",
        html.Div(
            [
                html.Div(status_chip(data, layer, unit), className="unit-facts"),
                html.Div(className="grid two", children=[html.Div([_concept_table(data, layer, unit), note]), profile]),
                clips,
            ]
        ),
        id=ids.UNIT_DISSECTION_CARD,
        right=html.Span("sound events (soundnet-interp dissect)", className="muted small"),
    )


# --------------------------------------------------------------------------------------------
# overview and search
# --------------------------------------------------------------------------------------------
def overview_figure(data: RunData, *, titled: bool = True) -> go.Figure | None:
    """Units labelled with each concept per layer, the layers' units that fire at events of any
    kind under their names."""
    d = data.dissection
    if not d.available:
        return None
    st = d.status_counts()
    return concept_layer_heatmap(
        d.concept_counts(),
        events={str(k): int(v) for k, v in st["events"].items()},
        title=f"{data.name}: {CONCEPT_COUNTS_TITLE}" if titled else None,
    )


def overview_card(data: RunData) -> html.Div | None:
    """The overview's "Temporal dissection" card (None without the tables)."""
    d = data.dissection
    if not d.available:
        return None
    st = d.status_counts()
    head = html.Tr(
        [html.Th("layer"), html.Th("units", className="num")]
        + [html.Th(STATUS_WORDS[s], className="num") for s in STATUS_WORDS]
    )
    rows = [
        html.Tr(
            [html.Td(layer, className="mono"), html.Td(str(int(r["units"])), className="num")]
            + [html.Td(str(int(r[s])), className="num") for s in STATUS_WORDS]
        )
        for layer, r in st.iterrows()
    ]
    note = html.P(
        f"Status per unit (docs/dissection.md): concept: the alignment null (q_time) and the specificity null "
        f"(q_label) both pass (q < {d.q_max:g}) for some concept, the unit is counted once under the best; "
        "fires at events of any kind: the alignment null passes for some concept but no concept passes "
        f"specificity. {d.meta.get('n_clips', '?')} clips, {d.meta.get('n_events', '?')} events, threshold: "
        f"each unit's {d.quantile:g} quantile. Click a cell to list that concept's units.",
        className="note",
    )
    return V.card(
        CONCEPT_COUNTS_TITLE,
        html.Div(
            className="grid two",
            children=[
                dcc.Graph(
                    id=ids.OVERVIEW_DISSECTION_GRAPH,
                    figure=overview_figure(data, titled=False),
                    config={"displaylogo": False},
                ),
                html.Div(
                    [
                        html.H4("Temporal dissection: units per status", className="subhead"),
                        html.Table(
                            [html.Thead(head), html.Tbody(rows)], className="best", id=ids.OVERVIEW_DISSECTION_TABLE
                        ),
                        note,
                    ]
                ),
            ],
        ),
        right=V.export_links("overview", [], "dissection"),
        id=ids.OVERVIEW_DISSECTION_CARD,
    )


def concept_rows(data: RunData, concept: str | None, layers: list[str] | None) -> tuple[list[dict], str]:
    """The search's rows for ``concept``: units whose dissection status is concept with it,
    highest IoU first, each linking to its page; and a summary line."""
    d = data.dissection
    if not d.available:
        return [], "No temporal dissection in this run: run `soundnet-interp dissect RUN_DIR --events EVENTS`."
    if not concept or concept not in d.concepts:
        return [], "Choose a concept to list the units labelled with it."
    t = d.concept_units(concept, layers=[layer for layer in (layers or d.layers) if layer in d.layers])
    if t.empty:
        return [], f"No unit of the chosen layers is labelled with {concept} (both nulls, q < {d.q_max:g})."
    rows = [
        {
            "rank": i + 1,
            "unit_link": f"[{r.layer} · {int(r.unit)}](/unit/{r.layer}/{int(r.unit)})",
            "iou": float(r.iou),
            "iou_null_time": float(r.iou_null_time),
            "iou_null_label": float(r.iou_null_label),
            "q_time": float(r.q_time),
            "q_label": float(r.q_label),
            "precision": float(r.precision),
            "recall": float(r.recall),
            "n_concepts": int(r.n_concepts),
        }
        for i, r in enumerate(t.itertuples(index=False))
    ]
    return rows, (
        f"{len(rows)} units labelled with the concept {concept} (alignment and specificity nulls both pass, "
        f"q < {d.q_max:g}; each unit under its best concept), highest IoU first."
    )


V.register_figures("dissection", sys.modules[__name__])
