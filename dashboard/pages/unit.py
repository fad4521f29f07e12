"""Unit page ``/unit/<layer>/<unit>``: what one unit responds to, with its clips and their audio."""

from __future__ import annotations

from typing import Any

import dash
import numpy as np
from dash import ALL, Input, Output, State, dash_table, dcc, html
from dash.dash_table.Format import Format, Scheme

from dashboard import dissection_views as DV
from dashboard import hear_views as HV
from dashboard import ids
from dashboard import portrait_views as PV
from dashboard import views as V
from dashboard.data import N_BOOT, RunData, describe_stat, get_data
from interp.analysis.resampling import BOOTSTRAP_MAX_CLIPS
from soundnet.labels import head_labels
from soundnet.model import HEAD_LAYERS


def _title(layer: str | None = None, unit: str | None = None, **_: Any) -> str:
    return f"{layer} unit {unit} · SoundNet units"


dash.register_page(__name__, path_template="/unit/<layer>/<unit>", title=_title, name="Unit")
HV.register_callbacks()  # the on-demand portraits' callbacks, for the app that loads this page

_NUM = Format(precision=3, scheme=Scheme.fixed)
_P = Format(precision=2, scheme=Scheme.decimal_or_exponent)
_METRIC_COLUMNS = [
    {"name": "category", "id": "category"},
    {"name": "n", "id": "n_pos", "type": "numeric"},
    {"name": "left out", "id": "n_excluded", "type": "numeric"},
    {"name": "AUROC", "id": "auroc", "type": "numeric", "format": _NUM},
    {"name": "95% CI", "id": "ci"},
    {"name": "d′", "id": "dprime", "type": "numeric", "format": Format(precision=2, scheme=Scheme.fixed)},
    {"name": "CSI", "id": "csi", "type": "numeric", "format": _NUM},
    {"name": "MI (bits)", "id": "mi_bits", "type": "numeric", "format": _NUM},
    {"name": "IoU", "id": "iou", "type": "numeric", "format": _NUM},
    {"name": "p", "id": "p", "type": "numeric", "format": _P},
    {"name": "q", "id": "q", "type": "numeric", "format": _P},
    {"name": "mean in / out", "id": "means"},
]


def layout(layer: str | None = None, unit: str | None = None, **_: Any) -> html.Div:
    data = get_data()
    ok = data.check_unit(layer, unit)
    if ok is None:
        return _not_found(data, layer, unit)
    layer, u = ok
    return html.Div(
        className="unit-page",
        children=[
            dcc.Store(id=ids.UNIT_STORE, data={"layer": layer, "unit": u}),
            _header(data, layer, u),
            html.Div(
                className="grid two",
                children=[
                    V.card(
                        "Activation over the corpus",
                        dcc.Graph(
                            id=ids.UNIT_HISTOGRAM_GRAPH,
                            figure=V.histogram_figure(data, layer, u),
                            config=_graph_config(),
                        ),
                        right=V.export_links("unit", [layer, str(u)], "histogram"),
                    ),
                    V.card(
                        "Per category",
                        dcc.Graph(
                            id=ids.UNIT_DISTRIBUTIONS_GRAPH,
                            figure=V.distributions_figure(data, layer, u),
                            config=_graph_config(),
                        ),
                        right=V.export_links("unit", [layer, str(u)], "distributions"),
                    ),
                ],
            ),
            _metrics_card(data, layer, u),
            _topk_card(data, layer, u),
            DV.unit_card(data, layer, u),
            PV.strf_card(data, layer, u),
            HV.visualize_card(data, layer, u),
            HV.attribution_card(data, layer, u),
            html.Div(className="grid two", children=[_quantiles_card(data, layer, u), _promoted_card(data, layer, u)]),
            _tuning_card(data, layer, u),
        ],
    )


def _graph_config() -> Any:  # dcc.Graph's config (a TypedDict in its stubs)
    return {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d", "toggleSpikelines"]}


def _not_found(data: RunData, layer: Any, unit: Any) -> html.Div:
    if isinstance(layer, str) and layer in data.layers:
        msg = f"{layer} has units 0 to {data.n_units(layer) - 1}."
    else:
        msg = f"Recorded layers: {', '.join(data.layers)}."
    return html.Div(
        className="card notfound",
        children=[
            html.H2("No such unit"),
            html.P(f"There is no unit {unit!s} in layer {layer!s}. {msg}"),
            dcc.Link("back to the overview", href="/"),
        ],
    )


def _header(data: RunData, layer: str, unit: int) -> html.Div:
    prev, nxt = data.neighbours(layer, unit)
    lab = data.unit_label(layer, unit)
    top = data.top_clips(layer, unit, k=V.TOP_K)
    facts: list[Any] = []
    if lab is not None:
        facts.append(V.status_chip(data, layer, unit))
        th = data.label_thresholds
        n_pass = lab.get("n_selective_categories")
        if isinstance(n_pass, (int, float, np.integer, np.floating)) and np.isfinite(n_pass):
            facts.append(
                html.Span(
                    f"{int(n_pass)} {'category passes' if int(n_pass) == 1 else 'categories pass'} the pair-level "
                    f"thresholds (q < {th['q_max']:g}, AUROC ≥ {th['auroc_min']:g})",
                    className="muted",
                )
            )
    elif not data.has_selectivity:
        facts.append(html.Span("run `soundnet-interp analyze` for selectivity statistics", className="muted"))
    if layer in HEAD_LAYERS:
        facts.append(html.Span(["output class ", html.B(head_labels(layer)[unit])]))
    if len(top):
        counts = top["label"].value_counts()
        facts.append(
            html.Span(
                [f"top {len(top)} clips: "]
                + [
                    html.Span(f"{c} {n}", className="purity", style={"--chip": data.colors.get(str(c), "#9aa5b1")})
                    for c, n in counts.head(4).items()
                ]
            )
        )
    return html.Div(
        className="unit-header",
        children=[
            html.Div(
                className="unit-title",
                children=[
                    html.H2([html.Span(layer, className="layer-tag"), f" unit {unit}"]),
                    html.Div(className="unit-facts", children=facts),
                ],
            ),
            html.Div(
                className="unit-nav",
                children=[
                    dcc.Link(
                        "← prev",
                        id=ids.UNIT_PREV,
                        href=f"/unit/{prev[0]}/{prev[1]}" if prev else "#",
                        className="btn ghost" + ("" if prev else " disabled"),
                    ),
                    html.Span(f"{unit + 1} / {data.n_units(layer)}", className="muted"),
                    dcc.Link(
                        "next →",
                        id=ids.UNIT_NEXT,
                        href=f"/unit/{nxt[0]}/{nxt[1]}" if nxt else "#",
                        className="btn ghost" + ("" if nxt else " disabled"),
                    ),
                ],
            ),
        ],
    )


def _metric_rows(data: RunData, layer: str, unit: int, intervals: Any = None) -> list[dict]:
    m = data.unit_metrics(layer, unit)
    if m.empty:
        return []
    ci = {} if intervals is None else {r.category: (r.auroc_lo, r.auroc_hi) for r in intervals.itertuples()}
    rows = []
    for r in m.itertuples(index=False):
        lo, hi = ci.get(r.category, (np.nan, np.nan))
        rows.append(
            {
                "category": r.category,
                "n_pos": int(r.n_pos),
                "n_excluded": int(getattr(r, "n_excluded", 0)),
                "auroc": float(r.auroc),
                "ci": f"[{lo:.3f}, {hi:.3f}]" if np.isfinite(lo) else ("…" if intervals is None else "–"),
                "dprime": float(r.dprime),
                "csi": float(r.csi),
                "mi_bits": float(r.mi_bits),
                "iou": float(r.iou),
                "p": float(r.p),
                "q": float(r.q),
                "means": f"{V.fmt_num(r.mean_pos)} / {V.fmt_num(r.mean_rest)}",
            }
        )
    return rows


_CI_PENDING = "computing…"
# what the interval is, by the method unit_auroc_intervals chose (filled in when it is known)
_CI_METHOD = {
    "bootstrap": f"stratified bootstrap of whole groups of clips, {N_BOOT} resamples",
    "normal": (
        "clustered DeLong normal approximation, groups of clips as clusters (used above "
        f"{BOOTSTRAP_MAX_CLIPS:,} clips, where a bootstrap would cost resamples x clips)"
    ),
}


def _metrics_card(data: RunData, layer: str, unit: int) -> html.Div:
    rows = _metric_rows(data, layer, unit)
    if not rows:
        body: Any = html.P(
            "No selectivity table in this run: run `soundnet-interp analyze RUN_DIR`.", className="muted"
        )
    else:
        qmax, amin = data.label_thresholds["q_max"], data.label_thresholds["auroc_min"]
        sel = data.selectivity
        grouped = sel is not None and bool((sel.attrs.get("run") or {}).get("groups", False))
        on_groups = " on the group means (a group's clips count once)" if grouped else ""
        body = html.Div(
            [
                dash_table.DataTable(  # type: ignore[attr-defined]  # generated at import, unknown to the stubs
                    id=ids.UNIT_METRICS_TABLE,
                    columns=_METRIC_COLUMNS,
                    data=rows,
                    sort_action="native",
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
                    style_cell_conditional=[{"if": {"column_id": "category"}, "textAlign": "left", "fontWeight": 600}],
                    style_header={
                        "fontWeight": 600,
                        "color": "#52606d",
                        "backgroundColor": "white",
                        "borderBottom": "2px solid #d9dee4",
                    },
                    style_data_conditional=[
                        {
                            "if": {"filter_query": f"{{q}} < {qmax} && {{auroc}} >= {amin}"},
                            "backgroundColor": "#eef6ff",
                        },
                        {
                            "if": {"filter_query": f"{{q}} < {qmax} && {{auroc}} >= {amin}", "column_id": "auroc"},
                            "fontWeight": 700,
                            "color": "#1d4ed8",
                        },
                    ],
                ),
                html.P(
                    id=ids.UNIT_METRICS_NOTE,
                    className="note",
                    children=(
                        f"Statistic per clip: {data.stat_description}. n: the category's clips used (those with a "
                        f"valid {layer} frame, a receptive field at least half inside the clip); left out: its "
                        "clips without one (an AUROC on a few clips says little). "
                        f"AUROC one category vs the rest, 95% CI {_CI_PENDING} (on the clips that rank "
                        f"the unit, so too narrow for a unit chosen as the best of many: `soundnet-interp rank` "
                        f"prints selection-free ones); p one-sided Mann-Whitney{on_groups} (permutation for small "
                        f"categories); q Benjamini-Hochberg over all units x categories. Highlighted: q < {qmax} and "
                        f"AUROC ≥ {amin}."
                    ),
                ),
            ]
        )
    return V.card("Selectivity per category", body)


@dash.callback(
    Output(ids.UNIT_METRICS_TABLE, "data"),
    Output(ids.UNIT_METRICS_NOTE, "children"),
    Input(ids.UNIT_STORE, "data"),
    State(ids.UNIT_METRICS_NOTE, "children"),
)
def fill_intervals(store: dict | None, note: str | None):
    """Fill the AUROC intervals once the page is shown, and say in the note how they were computed."""
    data = get_data()
    ok = data.check_unit((store or {}).get("layer"), str((store or {}).get("unit")))
    if ok is None:
        return dash.no_update, dash.no_update
    intervals = data.unit_intervals(ok[0], ok[1])
    rows = _metric_rows(data, ok[0], ok[1], intervals)
    return rows, (note or "").replace(_CI_PENDING, _CI_METHOD[intervals.attrs.get("method", "bootstrap")])


def _topk_card(data: RunData, layer: str, unit: int) -> html.Div:
    top = data.top_clips(layer, unit, k=V.TOP_K)
    cards = [
        V.clip_card(
            data,
            layer,
            unit,
            r,
            top,
            {"type": ids.UNIT_CLIP_GRAPH, "rank": r},
            {"type": ids.UNIT_CLIP_AUDIO, "rank": r},
        )
        for r in range(len(top))
    ]
    legend = html.Span(
        className="legend-inline",
        children=[
            html.Span(className="swatch trace"),
            "activation over time (right axis) ",
            html.Span(className="swatch window"),
            "receptive field of the peak frame ",
            html.Span("◆", className="peak-mark"),
            " peak (max over time)",
        ],
    )
    stat = str(top.attrs.get("stat", data.stat))
    note = None
    if stat == "vmean" and f"valid_frames_{layer}" in data.clips.columns:
        note = html.P(
            f"Each clip's value is the mean over its valid {layer} frames (receptive field at least half inside "
            "the clip); a mean over one or two frames of a short clip is noisier than one over many, so the "
            "highest values often come from short clips: weigh each by its count of valid frames.",
            className="note",
        )
    return V.card(
        f"Top {len(top)} clips (highest {describe_stat(stat)})",
        html.Div([html.Div(cards, id=ids.UNIT_TOPK_GRID, className="clip-grid"), note]),
        right=legend,
    )


def _quantile_groups(q) -> list[tuple[list[int], float, float, Any]]:
    """Deciles from the top; consecutive deciles with the same value range (e.g. all zero) merged."""
    groups: list[tuple[list[int], float, float, Any]] = []
    for b in sorted(q["bin"].unique(), reverse=True):
        part = q[q["bin"] == b]
        lo, hi = float(part["bin_lo"].iloc[0]), float(part["bin_hi"].iloc[0])
        if groups and groups[-1][1] == lo and groups[-1][2] == hi and lo == hi:
            groups[-1][0].append(int(b))
            continue
        groups.append(([int(b)], lo, hi, part))
    return groups


def _quantiles_card(data: RunData, layer: str, unit: int) -> html.Div:
    q = data.quantile_clips(layer, unit, n_bins=10, per_bin=3)
    rows = []
    for bins, lo, hi, part in _quantile_groups(q):
        name = f"D{bins[0] + 1}" if len(bins) == 1 else f"D{min(bins) + 1}–D{max(bins) + 1}"
        rows.append(
            html.Tr(
                [
                    html.Td(name, className="bin nowrap"),
                    html.Td(
                        V.fmt_num(lo) if lo == hi else f"{V.fmt_num(lo)}–{V.fmt_num(hi)}", className="muted nowrap"
                    ),
                    html.Td(
                        className="examples",
                        children=[
                            html.Span(
                                className="example",
                                children=[
                                    V.play_button(str(r.clip_id), key=f"q{bins[0]}-{i}", title=f"play {r.name}"),
                                    html.Span(
                                        className="dot",
                                        style={"background": data.colors.get(str(r.label), "#9aa5b1")},
                                        title=str(r.label),
                                    ),
                                    dcc.Link(
                                        str(r.name),
                                        href=f"/clip/{r.clip_id}",
                                        title=f"{r.label} · {data.stat_description} {r.value:.3g}",
                                    ),
                                    html.Span(V.fmt_num(r.value), className="muted small"),
                                ],
                            )
                            for i, r in enumerate(part.itertuples(index=False))
                        ],
                    ),
                ]
            )
        )
    body = html.Div(
        [
            html.Audio(id=ids.UNIT_PLAYER, className="hidden-player"),
            html.Table(
                className="quantiles",
                children=[
                    html.Thead(
                        html.Tr(
                            [
                                html.Th("decile"),
                                html.Th(data.stat_description),
                                html.Th("examples (evenly spaced in rank; ▶ plays)"),
                            ]
                        )
                    ),
                    html.Tbody(rows),
                ],
            ),
        ]
    )
    return V.card("Across the activation range", body)


dash.clientside_callback(
    """
    function(clicks) {
        const trig = dash_clientside.callback_context.triggered_id;
        if (!trig || !clicks.some(c => c)) { return dash_clientside.no_update; }
        const player = document.getElementById('"""
    + ids.UNIT_PLAYER
    + """');
        const src = '/audio/' + encodeURIComponent(trig.clip) + '.wav';
        if (player.getAttribute('src') === src && !player.paused) { player.pause(); return trig.clip; }
        player.setAttribute('src', src);
        player.play();
        return trig.clip;
    }
    """,
    Output(ids.UNIT_PLAYER, "title"),
    Input({"type": ids.PLAY_BUTTON, "clip": ALL, "key": ALL}, "n_clicks"),
    prevent_initial_call=True,
)


def _promoted_card(data: RunData, layer: str, unit: int) -> html.Div:
    graphs: list[Any] = []
    for head, gid, name in (("conv8", ids.UNIT_OBJECTS_GRAPH, "objects"), ("conv8_2", ids.UNIT_PLACES_GRAPH, "places")):
        fig = V.promoted_figure(data, layer, unit, head)
        if fig is not None:
            graphs.append(
                html.Div(
                    className="promoted",
                    children=[
                        dcc.Graph(id=gid, figure=fig, config={"displayModeBar": False}),
                        html.Div(V.export_links("unit", [layer, str(unit)], name), className="right"),
                    ],
                )
            )
    if not graphs:
        graphs = [
            html.P("Needs the heads recorded and `soundnet-interp analyze` (unit_outputs.parquet).", className="muted")
        ]
    return V.card(
        "Classes the unit promotes",
        html.Div(graphs, className="grid two tight"),
        right=html.Span("Pearson r across clips: unit activation vs clip-level probability", className="muted small"),
    )


def _tuning_card(data: RunData, layer: str, unit: int) -> html.Div | None:
    if data.probes_run is None:
        return None
    figs = V.tuning_figures(data, layer, unit)
    if not figs:
        return V.card(
            "Tuning (probes run)", html.P(f"The probes run has no {layer} or no tone / rate probes.", className="muted")
        )
    return V.card(
        "Tuning (synthetic probes)",
        html.Div(
            className="grid two",
            children=[
                html.Div(
                    [
                        dcc.Graph(
                            id=ids.UNIT_TUNING_GRAPH if i == 0 else f"{ids.UNIT_TUNING_GRAPH}-{i}",
                            figure=f,
                            config=_graph_config(),
                        ),
                        html.Div(V.export_links("unit", [layer, str(unit)], name), className="right"),
                    ]
                )
                for i, (name, f) in enumerate(figs.items())
            ],
        ),
    )
