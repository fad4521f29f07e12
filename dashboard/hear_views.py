"""The unit page's on-demand portraits: "What it wants to hear" and attribution on its top clips.

Both are computed when the user asks (a button starts a background job, :func:`dashboard.hear.start`;
the card polls until the result is cached in the run directory) and shown at once when already
cached. Audio comes from the plain route
``/hear/<layer>/<unit>/seed<i>.wav`` (a seed's optimised sound) and
``/hear/<layer>/<unit>/<clip_id>.<top|complement>.wav`` (the clip filtered to its top-attributed
region or to the rest), served only from the cache. Figure names (export route):
``hear-seed-<i>`` and ``hear-attribution-<clip rank>``, present once computed.
"""

from __future__ import annotations

import io
import math
import re
import sys
from typing import Any

import dash
import flask
import numpy as np
import plotly.graph_objects as go
import soundfile as sf
from dash import Input, Output, State, dcc, html

from dashboard import hear, ids
from dashboard import views as V
from dashboard.data import CONFIG_KEY, RunData, get_data
from interp.analysis.visualize import visualization_spectrogram
from interp.report import figures as F
from interp.report.figures.portrait_charts import attribution_overlay
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import CONV_LAYERS

__all__ = [
    "N_ATTRIBUTED",
    "unit_figure_names",
    "unit_figure",
    "overview_figure",
    "visualize_card",
    "attribution_card",
    "audio_route",
    "register_callbacks",
]

#: Top clips offered for attribution on the unit page.
N_ATTRIBUTED = 6
_POLL_MS = 700  # how often a card asks whether its background job is done
_CLIP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _can(layer: str) -> bool:
    return layer in CONV_LAYERS


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def seed_figure(data: RunData, layer: str, unit: int, seed: int, *, titled: bool = False) -> go.Figure | None:
    """Spectrogram of one seed's optimised sound (None when not computed)."""
    vis = hear.visualization(data, layer, unit, compute=False)
    if vis is None or not 0 <= seed < len(vis.waveforms):
        return None
    spec = visualization_spectrogram(vis.waveforms[seed])
    rel = vis.relative_vmean[seed]
    title = (
        f"{layer} unit {unit}: what it wants to hear, seed {seed} (activation {vis.vmean[seed]:.3g}"
        + (f", {rel:.2f}x the best natural clip)" if math.isfinite(rel) else ")")
        if titled
        else None
    )
    fig = F.spectrogram_figure(spec, title=title, height=240 if not titled else 320)
    if not titled:  # a thumbnail: no colour bar
        fig.update_traces(selector=dict(type="heatmap"), showscale=False)
        fig.update_layout(margin=dict(r=10))
    return fig


def _top(data: RunData, layer: str, unit: int):
    return data.top_clips(layer, unit, k=N_ATTRIBUTED)


def attribution_figure(data: RunData, layer: str, unit: int, rank: int, *, titled: bool = False) -> go.Figure | None:
    """The clip's spectrogram with the unit's attribution over it (None when not computed)."""
    top = _top(data, layer, unit)
    if not 0 <= rank < len(top):
        return None
    cid = str(top["clip_id"].iloc[rank])
    a = hear.attribution(data, layer, unit, cid, compute=False)
    if a is None:
        return None
    spec = data.spectrogram(cid)
    name = str(top["name"].iloc[rank])
    title = (
        f"{layer} unit {unit} on {name}: what in the clip drives it at {a.frame_times_s[0]:.2f} s "
        f"(red: attribution, outlined: top region)"
        if titled
        else None
    )
    fig = F.spectrogram_figure(spec, title=title, height=300 if titled else 240)
    fig.update_traces(selector=dict(type="heatmap"), colorscale="Greys", reversescale=True, showscale=False)
    return attribution_overlay(
        fig,
        spec.freqs_hz,
        a.map,
        a.time_edges_s,
        a.freq_edges_hz,
        top_mask=a.top_mask,
        evaluated=a.evaluated,
    )


def unit_figure_names(data: RunData, layer: str, unit: int) -> list[str]:
    """The computed portraits' figures: ``hear-seed-<i>``, ``hear-attribution-<rank>``."""
    if not _can(layer):
        return []
    names: list[str] = []
    vis = hear.visualization(data, layer, unit, compute=False) if hear.visualization_cached(data, layer, unit) else None
    if vis is not None:
        names += [f"hear-seed-{i}" for i in range(len(vis.waveforms))]
    top = _top(data, layer, unit)
    for r, cid in enumerate(top["clip_id"].astype(str)):
        if hear.attribution_cached(data, layer, unit, cid) is not None:
            names.append(f"hear-attribution-{r}")
    return names


def unit_figure(data: RunData, layer: str, unit: int, name: str) -> go.Figure | None:
    """The figure called ``name`` (see :func:`unit_figure_names`)."""
    m = re.fullmatch(r"hear-(seed|attribution)-(\d{1,3})", name)
    if m is None or not _can(layer):
        return None
    i = int(m.group(2))
    if m.group(1) == "seed":
        return seed_figure(data, layer, unit, i, titled=True)
    return attribution_figure(data, layer, unit, i, titled=True)


def overview_figure(data: RunData, *, titled: bool = True) -> None:
    """No overview figure."""
    return None


# --------------------------------------------------------------------------------------------
# what it wants to hear
# --------------------------------------------------------------------------------------------
def visualize_card(data: RunData, layer: str, unit: int) -> html.Div | None:
    """The "What it wants to hear" card: a button, and the result (filled by a callback)."""
    if not _can(layer):
        return None
    cached = hear.visualization_cached(data, layer, unit)
    button = html.Button(
        "Show" if cached else "Compute (about 10 s)", id=ids.UNIT_HEAR_BUTTON, className="btn", n_clicks=0
    )
    intro = html.P(
        "Sounds optimised to drive this unit as hard as possible (gradient ascent on a few seconds of audio "
        "from several random starts, with smoothness priors and random shifts, gains and pitch changes so that "
        "the result stays audio); its activation compared with the unit's best natural clip of this run.",
        className="note",
    )
    return V.card(
        "What it wants to hear",
        html.Div(
            [
                intro,
                html.Div(button, className="hear-actions"),
                html.Div(id=ids.UNIT_HEAR_RESULT),
                dcc.Interval(id=ids.UNIT_HEAR_POLL, interval=_POLL_MS, disabled=True),
            ]
        ),
        id=ids.UNIT_HEAR_CARD,
        right=html.Span("feature visualization (soundnet-interp visualize)", className="muted small"),
    )


def _visualize_body(data: RunData, layer: str, unit: int) -> html.Div:
    vis = hear.visualization(data, layer, unit, compute=False)
    if vis is None:
        return html.Div()
    b = vis.best_seed
    rel = vis.relative_vmean
    if vis.natural_clip_id and data.has_clip(vis.natural_clip_id):
        ref: Any = [
            " the best natural clip, ",
            dcc.Link(data.clip(vis.natural_clip_id)["name"], href=f"/clip/{vis.natural_clip_id}"),
            f" ({V.fmt_num(vis.natural_vmean)})",
        ]
    else:
        ref = [" the best natural clip (none with a valid frame)"]
    summary = html.P(
        [
            "Best seed: activation ",
            html.B(V.fmt_num(vis.vmean[b]), id=ids.UNIT_HEAR_ACTIVATION),
            " (mean over its valid frames) = ",
            html.B(f"{rel[b]:.2f}×" if math.isfinite(rel[b]) else "–", id=ids.UNIT_HEAR_RELATIVE),
            *ref,
            f"; {len(vis.vmean)} seeds, diversity (mean pairwise log-mel correlation, 1 = the same sound) "
            f"{V.fmt_num(vis.diversity, 2)}.",
        ],
        className="hear-summary",
    )
    tiles = []
    for i in range(len(vis.waveforms)):
        fig = seed_figure(data, layer, unit, i)
        tiles.append(
            html.Div(
                className="clip-card",
                children=[
                    html.Div(
                        className="clip-card-head",
                        children=[
                            html.Span(f"seed {i}" + (" (best)" if i == b else ""), className="rank"),
                            html.Span(
                                f"activation {V.fmt_num(vis.vmean[i])}"
                                + (f" · {rel[i]:.2f}× natural" if math.isfinite(rel[i]) else ""),
                                className="muted nowrap",
                            ),
                        ],
                    ),
                    dcc.Graph(figure=fig, config={"displayModeBar": False}, className="clip-graph"),
                    html.Div(
                        className="clip-card-foot",
                        children=[
                            html.Audio(
                                src=f"/hear/{layer}/{unit}/seed{i}.wav",
                                controls=True,
                                preload="none",
                                className="audio small",
                            ),
                            V.export_links("unit", [layer, str(unit)], f"hear-seed-{i}"),
                        ],
                    ),
                ],
            )
        )
    return html.Div([summary, html.Div(tiles, className="clip-grid", id=ids.UNIT_HEAR_SEEDS)])


def _waiting(what: str) -> html.P:
    return html.P(f"Computing {what} in the background: this card fills in when it is done.", className="muted small")


def _failed(message: str) -> html.P:
    return html.P(f"It failed: {message}", className="hear-failed small")


def show_visualization(clicks: int | None, _ticks: int | None, store: dict | None):
    """Show what the unit wants to hear when cached; start it on a click (a background job) and
    poll until it is done. Outputs: the result, the button's text, whether polling stops."""
    data = get_data()
    ok = data.check_unit((store or {}).get("layer"), str((store or {}).get("unit")))
    if ok is None or not _can(ok[0]):
        return dash.no_update, dash.no_update, True
    layer, unit = ok
    if hear.visualization_cached(data, layer, unit):
        return _visualize_body(data, layer, unit), "Computed (cached in the run directory)", True
    key = f"visualize/{layer}/{unit}"
    if dash.callback_context.triggered_id == ids.UNIT_HEAR_BUTTON and clicks:
        hear.start(data, key, lambda: hear.visualization(data, layer, unit, compute=True))
    state, message = hear.job_state(data, key)
    if state == "running":
        return _waiting("the sounds"), "Computing…", False
    if state == "failed":
        return _failed(message), "Compute again", True
    return html.Div(), dash.no_update, True


# --------------------------------------------------------------------------------------------
# attribution on the top clips
# --------------------------------------------------------------------------------------------
def attribution_card(data: RunData, layer: str, unit: int) -> html.Div | None:
    """The "What in its top clips drives it" card: a clip chooser, a button, the result."""
    if not _can(layer):
        return None
    top = _top(data, layer, unit)
    if top.empty:
        return None
    options = [
        {"label": f"#{r + 1} {row['name']} ({row['label']})", "value": r}
        for r, row in enumerate(top.to_dict("records"))
    ]
    intro = html.P(
        "Which time-frequency regions of a top clip drive the unit at its peak: each cell of a 32 × 16 grid of "
        "the clip's spectrogram is silenced in turn (Captum occlusion on the resynthesised audio) and the "
        "activation lost is its attribution (red over the spectrogram; outlined: the top 10 % of cells). Listen to "
        "the clip filtered to that top region and to the rest.",
        className="note",
    )
    controls = html.Div(
        className="hear-actions",
        children=[
            dcc.Dropdown(
                id=ids.UNIT_ATTR_CLIP, options=options, value=0, clearable=False, className="hear-clip-choice"
            ),
            html.Button("Attribute", id=ids.UNIT_ATTR_BUTTON, className="btn", n_clicks=0),
        ],
    )
    return V.card(
        "What in its top clips drives it",
        html.Div(
            [
                intro,
                controls,
                html.Div(id=ids.UNIT_ATTR_RESULT),
                dcc.Interval(id=ids.UNIT_ATTR_POLL, interval=_POLL_MS, disabled=True),
            ]
        ),
        id=ids.UNIT_ATTR_CARD,
        right=html.Span("attribution (soundnet-interp attribute)", className="muted small"),
    )


def _attribution_body(data: RunData, layer: str, unit: int, rank: int) -> html.Div:
    top = _top(data, layer, unit)
    cid = str(top["clip_id"].iloc[rank])
    a = hear.attribution(data, layer, unit, cid, compute=False)
    if a is None:
        return html.Div()
    fig = attribution_figure(data, layer, unit, rank)
    player = "audio small"
    return html.Div(
        [
            html.P(
                [
                    f"{layer} unit {unit} at {a.frame_times_s[0]:.2f} s of ",
                    dcc.Link(str(top["name"].iloc[rank]), href=f"/clip/{cid}"),
                    f": activation {V.fmt_num(a.baseline_activation)}; {int(a.top_mask.sum())} top cells of "
                    f"{int(a.evaluated.sum())} that reach its receptive field.",
                ],
                className="hear-summary",
            ),
            dcc.Graph(id=ids.UNIT_ATTR_GRAPH, figure=fig, config={"displayModeBar": False}),
            html.Div(
                className="hear-audio",
                children=[
                    html.Span("top region", className="muted small"),
                    html.Audio(
                        src=f"/hear/{layer}/{unit}/{cid}.top.wav", controls=True, preload="none", className=player
                    ),
                    html.Span("the rest", className="muted small"),
                    html.Audio(
                        src=f"/hear/{layer}/{unit}/{cid}.complement.wav",
                        controls=True,
                        preload="none",
                        className=player,
                    ),
                    html.Span("whole clip", className="muted small"),
                    V.audio_player(cid, small=True),
                    V.export_links("unit", [layer, str(unit)], f"hear-attribution-{rank}"),
                ],
            ),
        ]
    )


def show_attribution(clicks: int | None, rank: Any, _ticks: int | None, store: dict | None):
    """Show the chosen top clip's attribution when cached; start it on a click (a background
    job) and poll until it is done. Outputs: the result, whether polling stops."""
    data = get_data()
    ok = data.check_unit((store or {}).get("layer"), str((store or {}).get("unit")))
    if ok is None or not _can(ok[0]):
        return dash.no_update, True
    layer, unit = ok
    top = _top(data, layer, unit)
    if not isinstance(rank, int) or not 0 <= rank < len(top):
        return html.Div(), True
    cid = str(top["clip_id"].iloc[rank])
    if hear.attribution_cached(data, layer, unit, cid) is not None:
        return _attribution_body(data, layer, unit, rank), True
    key = f"attribution/{layer}/{unit}/{cid}"
    if dash.callback_context.triggered_id == ids.UNIT_ATTR_BUTTON and clicks:
        hear.start(data, key, lambda: hear.attribution(data, layer, unit, cid, compute=True))
    state, message = hear.job_state(data, key)
    if state == "running":
        return _waiting("the attribution"), False
    if state == "failed":
        return _failed(message), True
    return html.P("Not computed yet: press Attribute (about a second).", className="muted small"), True


# --------------------------------------------------------------------------------------------
# callbacks
# --------------------------------------------------------------------------------------------
def register_callbacks() -> None:
    """Register the two cards' callbacks; the unit page calls this when Dash loads it (for each
    app: Dash collects the page modules' callbacks as each app is created, while this module is
    imported once per process)."""
    dash.callback(
        Output(ids.UNIT_HEAR_RESULT, "children"),
        Output(ids.UNIT_HEAR_BUTTON, "children"),
        Output(ids.UNIT_HEAR_POLL, "disabled"),
        Input(ids.UNIT_HEAR_BUTTON, "n_clicks"),
        Input(ids.UNIT_HEAR_POLL, "n_intervals"),
        State(ids.UNIT_STORE, "data"),
    )(show_visualization)
    dash.callback(
        Output(ids.UNIT_ATTR_RESULT, "children"),
        Output(ids.UNIT_ATTR_POLL, "disabled"),
        Input(ids.UNIT_ATTR_BUTTON, "n_clicks"),
        Input(ids.UNIT_ATTR_CLIP, "value"),
        Input(ids.UNIT_ATTR_POLL, "n_intervals"),
        State(ids.UNIT_STORE, "data"),
    )(show_attribution)


# --------------------------------------------------------------------------------------------
# audio route
# --------------------------------------------------------------------------------------------
def audio_route(rest: str) -> flask.Response:
    """``/hear/<layer>/<unit>/seed<i>.wav`` or ``/hear/<layer>/<unit>/<clip_id>.<top|complement>.wav``,
    from the cache only; 404 for anything else (nothing is computed here)."""
    data: RunData = flask.current_app.config[CONFIG_KEY]
    parts = rest.split("/")
    if len(parts) != 3 or not parts[2].endswith(".wav"):
        flask.abort(404)
    ok = data.check_unit(parts[0], parts[1])
    if ok is None or not _can(ok[0]):
        flask.abort(404)
    layer, unit = ok
    stem = parts[2][: -len(".wav")]
    y: np.ndarray | None = None
    m = re.fullmatch(r"seed(\d{1,3})", stem)
    if m is not None:
        vis = hear.visualization(data, layer, unit, compute=False)
        if vis is not None and int(m.group(1)) < len(vis.waveforms):
            y = vis.waveforms[int(m.group(1))]
    elif "." in stem:
        cid, kind = stem.rsplit(".", 1)
        if kind in ("top", "complement") and _CLIP_ID.fullmatch(cid) and data.has_clip(cid):
            a = hear.attribution_cached(data, layer, unit, cid)
            if a is not None:
                y = a.top_audio if kind == "top" else a.complement_audio
    if y is None:
        flask.abort(404)
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    buf.seek(0)
    return flask.send_file(buf, mimetype="audio/wav", download_name=parts[2], max_age=0)


V.register_figures("hear", sys.modules[__name__])
