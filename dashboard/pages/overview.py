"""Overview page ``/``: the run at a glance, selectivity per layer and category, units labelled with
sound-event concepts (temporal dissection), probe accuracy."""

from __future__ import annotations

from typing import Any

import dash
from dash import Input, Output, dcc, html

from dashboard import dissection_views as DV
from dashboard import ids
from dashboard import portrait_views as PV
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
            DV.overview_card(data),
            PV.overview_card(data),
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
    conv_summary = summary[summary["layer"].isin(conv)] if summary is not None else None
    n_sel = int(conv_summary["n_selective"].sum()) if conv_summary is not None else None
    n_poly = (
        int(conv_summary["n_polysemantic"].sum())
        if conv_summary is not None and "n_polysemantic" in conv_summary.columns
        else None
    )
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
                                f" · statistic: {data.stat_description}",
                            ],
                        ),
                        html.Div(
                            className="stats",
                            children=[
                                _stat(len(data.clips), "clips ok"),
                                _stat(n_bad, "clips failed"),
                                _stat(len(data.categories), "categories"),
                                _stat(f"{n_units:,}", "conv units"),
                                _stat("–" if n_sel is None else f"{n_sel:,}", "conv units labelled selective"),
                                _stat(f"{n_poly:,}", "conv units polysemantic") if n_poly is not None else None,
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
    if data.has_unit_status:
        rule = (
            "A unit is labelled selective when it passes the unit-level test (its smallest pair-level p "
            "times the number of its testable categories, Bonferroni, then Benjamini-Hochberg across "
            f"units: q < {th['q_max']:g}), its best category reaches AUROC ≥ {th['auroc_min']:g} with "
            f"pair-level q < {th['q_max']:g} (one-vs-rest, {data.stat_description} per clip) and beats "
            f"each of the next categories in at least {100 * th['win_min']:g} % of paired "
            "group-bootstrap resamples; it is counted once, under that category. Polysemantic units "
            "(several categories that cannot be told apart) and unlabelled ones are not counted."
        )
    else:
        rule = (
            f"A unit is labelled selective when some category has pair-level q < {th['q_max']:g} (BH over "
            f"all unit × category pairs) and AUROC ≥ {th['auroc_min']:g} (one-vs-rest, {data.stat_description} "
            "per clip); "
            "it is counted once, under its best such category."
        )
    note = html.P(rule + " Click a cell to rank that layer's units for the category.", className="note")
    return html.Div(
        className="grid two",
        children=[
            V.card(
                V.layers_title(data),
                dcc.Graph(
                    id=ids.OVERVIEW_LAYERS_GRAPH,
                    figure=V.overview_figure(data, "layers", titled=False),
                    config={"displaylogo": False},
                ),
                right=V.export_links("overview", [], "layers"),
            ),
            V.card(
                V.CATEGORIES_TITLE,
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


#: A layer is left out of a category's highest-AUROC units when fewer of the category's clips
#: have a valid frame there (an AUROC on one or two clips says little).
MIN_CLIPS_RANKED = 3


def _clips_used(conv: Any) -> Any:
    """Per ``(category, layer)``: ``n_pos`` (clips of the category used: with a valid frame in the
    layer) and ``n_labelled`` (``n_pos + n_excluded``; ``n_pos`` for tables without ``n_excluded``)."""
    cols = ["n_pos"] + (["n_excluded"] if "n_excluded" in conv.columns else [])
    t = conv.groupby(["category", "layer"], sort=False)[cols].max()
    t["n_labelled"] = t["n_pos"] + (t["n_excluded"] if "n_excluded" in t.columns else 0)
    return t[["n_pos", "n_labelled"]].astype(int)


def _best_units(data: RunData) -> html.Div | None:
    sel = data.selectivity
    if sel is None:
        return None
    conv = sel[~sel["layer"].isin(HEAD_LAYERS)]
    th = data.label_thresholds
    used = _clips_used(conv)
    order = [layer for layer in data.layers if layer in set(conv["layer"])]
    rows = []
    for cat in data.categories:
        mine = conv[conv["category"] == cat]
        counts = {layer: used.loc[(cat, layer)] for layer in order if (cat, layer) in used.index}
        thin = [layer for layer in order if layer in counts and int(counts[layer]["n_pos"]) < MIN_CLIPS_RANKED]
        part = mine[~mine["layer"].isin(thin)].nlargest(6, "auroc")
        statuses = data.short_statuses(list(part["layer"]), list(part["unit"].astype(int)))
        links: list[Any] = []
        for r, st in zip(part.itertuples(index=False), statuses, strict=True):
            n_used, n_all = int(counts[r.layer]["n_pos"]), int(counts[r.layer]["n_labelled"])
            links.append(
                dcc.Link(
                    className="unitlink",
                    href=f"/unit/{r.layer}/{int(r.unit)}",
                    title=f"{r.layer} unit {int(r.unit)}: {st or 'no unit label'}; AUROC on {n_used} of the "
                    f"{n_all} {cat} clips (those with a valid {r.layer} frame)",
                    children=[
                        html.Span(f"{r.layer}·{int(r.unit)}", className="mono"),
                        html.Span(f" {r.auroc:.2f}", className="muted"),
                        html.Span(f" n {n_used}/{n_all}", className="muted small clips-used"),
                        _status_tag(st, cat),
                    ],
                )
            )
        notes = [
            f"{layer}: {int(counts[layer]['n_pos'])} of {int(counts[layer]['n_labelled'])} {cat} clips "
            f"{'has' if int(counts[layer]['n_pos']) == 1 else 'have'} a valid frame: not ranked"
            for layer in thin
        ]
        if notes:
            links.append(html.Div("; ".join(notes), className="muted small not-ranked"))
        n_pass = int(((mine["q"] < th["q_max"]) & (mine["auroc"] >= th["auroc_min"])).sum())
        rows.append(
            html.Tr(
                [
                    html.Td(V.label_chip(cat, data.colors.get(cat), href=f"/search?category={cat}")),
                    html.Td(f"{n_pass}", className="num"),
                    html.Td(links, className="links"),
                ]
            )
        )
    table = html.Table(
        id=ids.OVERVIEW_BEST_TABLE,
        className="best",
        children=[
            html.Thead(
                html.Tr(
                    [
                        html.Th("category"),
                        html.Th(
                            "conv units passing for it",
                            className="num",
                            title=f"units whose (unit, category) pair has q < {th['q_max']:g} and AUROC ≥ "
                            f"{th['auroc_min']:g}; a unit can pass for several categories",
                        ),
                        html.Th("highest-AUROC conv units (AUROC, clips used, unit label status)"),
                    ]
                )
            ),
            html.Tbody(rows),
        ],
    )
    note = html.P(
        f"n used/labelled: the category's clips the AUROC rests on (those with a valid frame in the unit's "
        f"layer: a receptive field at least half inside the clip) of its labelled clips. Layers where fewer "
        f"than {MIN_CLIPS_RANKED} of a category's clips have a valid frame are not ranked for it.",
        className="note",
    )
    return V.card("Highest-AUROC conv units per category, with their label status", html.Div([table, note]))


def _status_tag(status: str, category: str) -> html.Span | None:
    """A unit's label status beside a link listed under ``category``: ``selective``,
    ``selective: <other category>``, ``polysemantic`` or ``unlabelled``."""
    if not status:
        return None
    if status.startswith("polysemantic"):
        return html.Span("polysemantic", className="status-tag poly", title=status)
    if status == "unlabelled":
        return html.Span("unlabelled", className="status-tag", title=status)
    text = "selective" if status == category else f"selective: {status}"
    return html.Span(text, className="status-tag", title=f"labelled selective for {status}")


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


@dash.callback(
    Output(ids.NAV_LOCATION, "href", allow_duplicate=True),
    Input(ids.OVERVIEW_DISSECTION_GRAPH, "clickData"),
    prevent_initial_call=True,
)
def dissection_click(click: dict | None):
    """A cell of the dissection heatmap lists that concept's units of that layer on the search page."""
    data = get_data()
    try:
        pt = (click or {})["points"][0]
        concept, layer = str(pt["y"]), str(pt["x"])
    except (KeyError, IndexError, TypeError):
        return dash.no_update
    if concept not in data.dissection.concepts or layer not in data.layers:
        return dash.no_update
    return f"/search?concept={concept}&layer={layer}"
