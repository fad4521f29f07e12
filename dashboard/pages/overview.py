"""Overview page ``/``: the run at a glance, selectivity per layer and category, probe accuracy."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, dcc, html

from dashboard import ids
from dashboard import views as V
from dashboard.data import RunData, get_data
from soundnet.model import HEAD_LAYERS

dash.register_page(__name__, path="/", title="Overview · SoundNet units", name="Overview", order=0)


def layout(**_: Any) -> html.Div:
    data = get_data()
    return html.Div(
        className="overview-page",
        children=[
            _facts(data),
            _nuisance(data),
            _selectivity(data),
            _probes(data),
            _best_units(data),
        ],
    )


def _stat(value: Any, label: str) -> html.Div:
    return html.Div(
        className="stat",
        children=[html.Div(str(value), className="stat-value"), html.Div(label, className="stat-label")],
    )


def _facts(data: RunData) -> html.Div:
    meta = data.run.meta
    clips = data.run.clips
    n_bad = int((clips["status"] != "ok").sum())
    conv = data.conv_layers
    n_units = sum(data.n_units(layer) for layer in conv)
    summary = data.layer_summary
    n_sel = int(summary[summary["layer"].isin(conv)]["n_selective"].sum()) if summary is not None else None
    counts = data.clips["label"].value_counts()
    bars = [
        html.Div(
            className="classbar",
            title=f"{c}: {n} clips",
            children=[
                html.Span(c, className="classbar-name"),
                html.Span(
                    className="classbar-bar",
                    style={"width": f"{100 * n / counts.max():.0f}%", "background": data.colors.get(str(c), "#9aa5b1")},
                ),
                html.Span(str(n), className="classbar-n muted"),
            ],
        )
        for c, n in counts.items()
    ]
    created = str(meta.get("finished", meta.get("created", "")))[:16].replace("T", " ")
    return html.Div(
        className="grid facts",
        children=[
            V.card(
                None,
                html.Div(
                    [
                        html.H2(["Run ", html.Span(data.name, className="mono")]),
                        html.P(
                            className="muted",
                            children=[
                                f"corpus {data.corpus_name or '(a table)'} · recorded {created} UTC · weights ",
                                html.Span(str(meta.get("weights_sha256", ""))[:12], className="mono"),
                                f" · statistic {data.stat} over time",
                            ],
                        ),
                        html.Div(
                            className="stats",
                            children=[
                                _stat(len(data.clips), "clips ok"),
                                _stat(n_bad, "clips failed"),
                                _stat(len(data.categories), "categories"),
                                _stat(f"{n_units:,}", "conv units"),
                                _stat("–" if n_sel is None else f"{n_sel:,}", "selective conv units"),
                            ],
                        ),
                    ]
                ),
            ),
            V.card("Clips per category", html.Div(bars, className="classbars")),
        ],
    )


def _nuisance(data: RunData) -> html.Div | None:
    """Categories that a nuisance alone separates (AUROC >= 0.9): the warning every claim needs."""
    table = data.nuisance
    if table is None or table.empty:
        return None
    flagged = table[table["flagged"]].sort_values(["category", "separation"], ascending=[True, False])
    threshold = float((table.attrs.get("nuisance") or {}).get("flag_at", 0.9))
    note = html.P(
        f"AUROC of the nuisance alone, one category against the rest, with a 95% group-bootstrap interval; "
        f"flagged at {threshold:g} (or below {1 - threshold:g}). A unit that looks selective for a flagged "
        "category may only follow that property: compare it with the nuisance before reading it as a "
        "detector of the category. Nuisances: duration_s, rms_db (level), centroid_hz, rolloff95_hz, "
        "bandwidth_hz (-70 dB band edge), cliff_db (steepest spectral drop: a resampled low-rate source), "
        "sample_rate_hz (source).",
        className="note",
    )
    if flagged.empty:
        body = html.Div([html.P("No nuisance alone separates any category (AUROC < 0.9).", className="muted"), note])
    else:
        rows = [
            html.Tr(
                [
                    html.Td(V.label_chip(str(cat), data.colors.get(str(cat)))),
                    html.Td(
                        "; ".join(
                            f"{r.nuisance} {r.direction} (AUROC {r.auroc:.2f} [{r.auroc_lo:.2f}, {r.auroc_hi:.2f}])"
                            for r in grp.itertuples()
                        )
                    ),
                ]
            )
            for cat, grp in flagged.groupby("category", sort=True)
        ]
        body = html.Div(
            [
                html.Table(
                    className="nuisance-table",
                    children=[
                        html.Thead(html.Tr([html.Th("category"), html.Th("separated by, alone")])),
                        html.Tbody(rows),
                    ],
                ),
                note,
            ]
        )
    title = f"Nuisance check: {flagged['category'].nunique()} categories separated by a nuisance alone"
    return V.card(title, body, class_name="nuisance-card" + (" warn" if len(flagged) else ""), id=ids.NUISANCE_CARD)


def _selectivity(data: RunData) -> html.Div:
    if not data.has_selectivity or data.layer_summary is None:
        return V.card(
            "Selectivity",
            html.P(
                "This run has no selectivity tables yet: run `soundnet-interp analyze RUN_DIR`, then reload. "
                "Units can still be browsed (use the jump box above).",
                className="muted",
            ),
        )
    th = data.label_thresholds
    note = html.P(
        f"A unit is selective for a category when q < {th['q_max']:g} and AUROC ≥ {th['auroc_min']:g} "
        f"(one-vs-rest, {data.stat} over time per clip); it is labelled with its best such category. "
        "Click a cell to rank that layer's units for the category.",
        className="note",
    )
    return html.Div(
        className="grid two",
        children=[
            V.card(
                "Selective units per layer",
                dcc.Graph(
                    id=ids.OVERVIEW_LAYERS_GRAPH,
                    figure=V.overview_figure(data, "layers", titled=False),
                    config={"displaylogo": False},
                ),
                right=V.export_links("overview", [], "layers"),
            ),
            V.card(
                "Category × layer",
                html.Div(
                    [
                        dcc.Graph(
                            id=ids.OVERVIEW_HEATMAP_GRAPH,
                            figure=V.overview_figure(data, "categories", titled=False),
                            config={"displaylogo": False},
                        ),
                        note,
                    ]
                ),
                right=V.export_links("overview", [], "categories"),
            ),
        ],
    )


def _probes(data: RunData) -> html.Div | None:
    fig = V.overview_figure(data, "probes", titled=False)
    if fig is None:
        return None
    return V.card(
        "How much each layer knows (linear probes)",
        dcc.Graph(id=ids.OVERVIEW_PROBES_GRAPH, figure=fig, config={"displaylogo": False}),
        right=V.export_links("overview", [], "probes"),
    )


def _best_units(data: RunData) -> html.Div | None:
    sel = data.selectivity
    if sel is None:
        return None
    conv = sel[~sel["layer"].isin(HEAD_LAYERS)]
    rows = []
    for cat in data.categories:
        part = conv[conv["category"] == cat].nlargest(6, "auroc")
        links = [
            dcc.Link(
                className="unitlink",
                href=f"/unit/{r.layer}/{int(r.unit)}",
                children=[
                    html.Span(f"{r.layer}·{int(r.unit)}", className="mono"),
                    html.Span(f" {r.auroc:.2f}", className="muted"),
                ],
            )
            for r in part.itertuples(index=False)
        ]
        n_sel = int(
            (
                conv[(conv["category"] == cat)].pipe(
                    lambda d: (
                        (d["q"] < data.label_thresholds["q_max"]) & (d["auroc"] >= data.label_thresholds["auroc_min"])
                    )
                )
            ).sum()
        )
        rows.append(
            html.Tr(
                [
                    html.Td(V.label_chip(cat, data.colors.get(cat), href=f"/search?category={cat}")),
                    html.Td(f"{n_sel}", className="num"),
                    html.Td(links, className="links"),
                ]
            )
        )
    table = html.Table(
        className="best",
        children=[
            html.Thead(
                html.Tr(
                    [
                        html.Th("category"),
                        html.Th("selective pairs", className="num"),
                        html.Th("highest AUROC conv units"),
                    ]
                )
            ),
            html.Tbody(rows),
        ],
    )
    return V.card("Best units per category", table)


@dash.callback(
    Output(ids.NAV_LOCATION, "href", allow_duplicate=True),
    Input(ids.OVERVIEW_HEATMAP_GRAPH, "clickData"),
    prevent_initial_call=True,
)
def heatmap_click(click: dict | None):
    """A heatmap cell opens the search for that category and layer."""
    data = get_data()
    try:
        pt = (click or {})["points"][0]
        cat, layer = str(pt["y"]), str(pt["x"])
    except (KeyError, IndexError, TypeError):
        return dash.no_update
    if cat not in data.categories or layer not in data.layers:
        return dash.no_update
    return f"/search?category={cat}&layer={layer}"
