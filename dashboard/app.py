"""The Dash app: ``create_app(run_dir)`` and the ``soundnet-interp dashboard`` entry point.

The app reads one run directory (never recomputes activations; time-resolved traces and
spectrograms come from :mod:`interp.run.traces`, cached in ``<run>/cache``). Besides the Dash pages
(overview ``/``, unit ``/unit/<layer>/<unit>``, search ``/search``, clip ``/clip/<clip_id>``) the
server has two plain routes:

``/audio/<clip_id>.wav``
    The clip's excerpt as 16-bit WAV at 22050 Hz. Only ids of the run's ``ok`` clips are
    served; the file read is the one the clip table names. Anything else under ``/audio/``
    (unknown ids, ``..``, absolute or encoded paths) is a 404. Optional ``?t0=&t1=`` (seconds)
    select part of a long clip.
``/export/<kind>/.../<figure>.<format>``
    A figure of a page as a download (``html``, ``png``, ``svg``, ``pdf``), rendered by
    :func:`interp.report.figures.export_figure`; kinds ``unit/<layer>/<unit>``, ``clip/<clip_id>``,
    ``layer/<layer>`` (the STRF gallery), ``overview``.

``/hear/<layer>/<unit>/...wav``
    The unit page's on-demand sounds (what it wants to hear, a clip filtered to its
    top-attributed region or the rest), from the run's cache only
    (:func:`dashboard.hear_views.audio_route`).

Nothing a browser sends is executed or used as a file path: every URL part is checked against
the run's own layers, units, clip ids and fixed figure names.
"""

from __future__ import annotations

import argparse
import io
import math
import re
import tempfile
from pathlib import Path
from typing import Any, cast

import dash
import flask
import soundfile as sf
from dash import Input, Output, State, dcc, html, no_update

from dashboard import hear_views, ids, views
from dashboard.data import CONFIG_KEY, RunData
from interp.report.figures import ExportFormat, export_figure
from soundnet.errors import SoundNetError
from soundnet.geometry import SAMPLE_RATE_HZ

__all__ = ["create_app", "main", "MAX_AUDIO_S"]

PACKAGE_DIR = Path(__file__).resolve().parent
#: Longest excerpt the audio route renders, in seconds.
MAX_AUDIO_S = 600.0
_CLIP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME = re.compile(r"[a-z0-9-]{1,40}")
_MIMETYPES = {"html": "text/html", "png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}


def create_app(run_dir: str | Path, *, probes_dir: str | Path | None = None, title: str | None = None) -> dash.Dash:
    """Build the dashboard for one run directory.

    Parameters
    ----------
    run_dir : str or path
        A complete run directory; analysis tables (``soundnet-interp analyze``) are used when
        present.
    probes_dir : str or path, optional
        A run recorded on the ``probes`` corpus, for tuning curves (default: ``<run_dir>/probes``
        when it exists).
    title : str, optional
        Browser title (default: ``"SoundNet units · <run name>"``).

    Returns
    -------
    dash.Dash
        ``app.server`` is the Flask server; call ``app.run(host=..., port=...)`` to serve.
    """
    data = RunData(run_dir, probes_dir=probes_dir).preload()
    app = dash.Dash(
        "dashboard",
        use_pages=True,
        pages_folder=str(PACKAGE_DIR / "pages"),
        assets_folder=str(PACKAGE_DIR / "assets"),
        title=title or f"SoundNet units · {data.name}",
        suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]  # Dash documents None (no "Updating..." title)
    )
    app.server.config[CONFIG_KEY] = data
    app.layout = _shell(data)
    _register_routes(app.server)
    _register_shell_callbacks(app)
    # take this app's page callbacks now, so that several apps can live in one process: Dash
    # collects the pages' global callbacks in a before-request hook, which Flask's public
    # preprocess_request runs here as it would for the first request
    with app.server.test_request_context("/"):
        app.server.preprocess_request()
    return app


# --------------------------------------------------------------------------------------------
# shell
# --------------------------------------------------------------------------------------------
def _shell(data: RunData) -> html.Div:
    n_ok = len(data.clips)
    return html.Div(
        className="app",
        children=[
            dcc.Location(id=ids.NAV_LOCATION, refresh="callback-nav"),
            html.Header(
                className="topbar",
                children=[
                    dcc.Link(
                        className="brand", href="/", children=[html.Span("◉", className="brand-mark"), "SoundNet units"]
                    ),
                    html.Nav(
                        className="topnav",
                        children=[
                            dcc.Link("Overview", href="/", className="navlink"),
                            dcc.Link("Search", href="/search", className="navlink"),
                        ],
                    ),
                    html.Div(
                        className="jump",
                        children=[
                            dcc.Dropdown(
                                id=ids.NAV_JUMP_LAYER,
                                options=[{"label": l, "value": l} for l in data.layers],
                                value=data.layers[min(4, len(data.layers) - 1)],
                                clearable=False,
                                searchable=False,
                                className="jump-layer",
                            ),
                            dcc.Input(
                                id=ids.NAV_JUMP_UNIT,
                                type="number",
                                min=0,
                                step=1,
                                placeholder="unit",
                                debounce=True,
                                className="jump-unit",
                            ),
                            html.Button("Go", id=ids.NAV_JUMP_GO, className="btn"),
                            html.Span(id=ids.NAV_JUMP_MESSAGE, className="jump-msg"),
                        ],
                    ),
                    html.Div(
                        className="runinfo",
                        title=str(data.run.path),
                        children=[
                            html.B(data.name),
                            f" · {data.corpus_name + ' · ' if data.corpus_name else ''}{n_ok} clips · {len(data.categories)} categories",
                        ],
                    ),
                ],
            ),
            html.Main(className="page", children=[dash.page_container]),
        ],
    )


def _register_shell_callbacks(app: dash.Dash) -> None:
    @app.callback(
        Output(ids.NAV_LOCATION, "href"),
        Output(ids.NAV_JUMP_MESSAGE, "children"),
        Input(ids.NAV_JUMP_GO, "n_clicks"),
        Input(ids.NAV_JUMP_UNIT, "n_submit"),
        State(ids.NAV_JUMP_LAYER, "value"),
        State(ids.NAV_JUMP_UNIT, "value"),
        prevent_initial_call=True,
    )
    def jump(_clicks: Any, _submit: Any, layer: Any, unit: Any):
        data: RunData = flask.current_app.config[CONFIG_KEY]
        if unit is None:
            return no_update, "enter a unit number"
        ok = data.check_unit(
            layer, str(int(unit)) if isinstance(unit, (int, float)) and float(unit).is_integer() else unit
        )
        if ok is None:
            n = data.n_units(layer) if layer in data.layers else 0
            return no_update, f"{layer} has units 0–{n - 1}"
        return f"/unit/{ok[0]}/{ok[1]}", ""


# --------------------------------------------------------------------------------------------
# plain routes: audio and export
# --------------------------------------------------------------------------------------------
_OWN_PREFIXES = {"/audio/": "soundnet_audio", "/export/": "soundnet_export", "/hear/": "soundnet_hear"}


def _register_routes(server: flask.Flask) -> None:
    server.add_url_rule("/audio/<path:name>", "soundnet_audio", _audio_route)
    server.add_url_rule("/export/<path:rest>", "soundnet_export", _export_route)
    server.add_url_rule("/hear/<path:rest>", "soundnet_hear", hear_views.audio_route)

    @server.before_request
    def _own_prefixes_only() -> None:
        # paths under /audio/ and /export/ that the routes above do not match (an absolute path
        # after the prefix, say) would otherwise reach Dash's catch-all page route: refuse them
        for prefix, endpoint in _OWN_PREFIXES.items():
            if flask.request.path.startswith(prefix) and flask.request.endpoint != endpoint:
                flask.abort(404)


def _window_arg() -> tuple[float, float] | None:
    t0, t1 = flask.request.args.get("t0"), flask.request.args.get("t1")
    if t0 is None and t1 is None:
        return None
    try:
        a, b = float(t0 or 0.0), float(t1) if t1 is not None else math.nan
    except ValueError:
        flask.abort(404)
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b <= a:
        flask.abort(404)
    return a, b


def _audio_route(name: str) -> flask.Response:
    """``/audio/<clip_id>.wav``: the clip's excerpt as WAV; 404 for anything that is not an ok clip id."""
    data: RunData = flask.current_app.config[CONFIG_KEY]
    if not name.endswith(".wav"):
        flask.abort(404)
    clip_id = name[: -len(".wav")]
    if not _CLIP_ID.fullmatch(clip_id) or not data.has_clip(clip_id):
        flask.abort(404)
    window = _window_arg()
    dur = float(data.clip(clip_id)["duration_s"])
    if window is None and math.isfinite(dur) and dur > MAX_AUDIO_S:
        window = (0.0, MAX_AUDIO_S)
    if window is not None and window[1] - window[0] > MAX_AUDIO_S:
        flask.abort(404)
    try:
        y = data.audio(clip_id, window_s=window)
    except (SoundNetError, OSError):
        flask.abort(404)
    buf = io.BytesIO()
    sf.write(buf, y, SAMPLE_RATE_HZ, format="WAV", subtype="PCM_16")
    buf.seek(0)
    return flask.send_file(buf, mimetype="audio/wav", conditional=True, download_name=f"{clip_id}.wav", max_age=3600)


def _export_route(rest: str) -> flask.Response:
    """``/export/...``: one figure as a file download; 404 for any name the app does not define."""

    data: RunData = flask.current_app.config[CONFIG_KEY]
    parts = rest.split("/")
    if not parts or "." not in parts[-1]:
        flask.abort(404)
    name, fmt = parts[-1].rsplit(".", 1)
    if fmt not in _MIMETYPES or not _NAME.fullmatch(name):
        flask.abort(404)
    kind, args = parts[0], parts[1:-1]
    fig = None
    if kind == "unit" and len(args) == 2:
        ok = data.check_unit(args[0], args[1])
        if ok is None or name not in views.unit_figure_names(data, *ok):
            flask.abort(404)
        fig = views.unit_figure(data, ok[0], ok[1], name)
        stem = f"{ok[0]}_unit{ok[1]}_{name}"
    elif kind == "clip" and len(args) == 1:
        if not _CLIP_ID.fullmatch(args[0]) or not data.has_clip(args[0]):
            flask.abort(404)
        fig = views.clip_figure(data, args[0], name)
        stem = f"clip_{args[0]}_{name}"
    elif kind == "layer" and len(args) == 1:
        if args[0] not in data.layers or name not in views.layer_figure_names(data, args[0]):
            flask.abort(404)
        fig = views.layer_figure(data, args[0], name)
        stem = f"{data.name}_{args[0]}_{name}"
    elif kind == "overview" and not args:
        fig = views.overview_figure(data, name)
        stem = f"{data.name}_{name}"
    if fig is None:
        flask.abort(404)
    with tempfile.TemporaryDirectory(prefix="soundnet-export-") as tmp:
        written = export_figure(fig, Path(tmp) / "figure", formats=(cast(ExportFormat, fmt),))
        blob = written[fmt].read_bytes()
    return flask.send_file(
        io.BytesIO(blob), mimetype=_MIMETYPES[fmt], as_attachment=True, download_name=f"{stem}.{fmt}"
    )


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``soundnet-interp dashboard RUN_DIR [--host 127.0.0.1] [--port 8050] [--probes DIR] [--debug]``."""
    ap = argparse.ArgumentParser(
        prog="soundnet-interp dashboard", description="Browse a run directory: units, selectivity, top clips, audio."
    )
    ap.add_argument("run", type=Path, help="run directory (soundnet-interp record / analyze)")
    ap.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8050)
    ap.add_argument("--probes", type=Path, default=None, help="a run recorded on the probes corpus (tuning curves)")
    ap.add_argument("--debug", action="store_true", help="Dash debug mode (reloader, dev tools)")
    args = ap.parse_args(argv)

    try:
        app = create_app(args.run, probes_dir=args.probes)
    except SoundNetError as exc:
        print(f"error: {exc}")
        return 2
    print(f"SoundNet units dashboard for {args.run} on http://{args.host}:{args.port}/")
    app.run(host=args.host, port=args.port, debug=args.debug)
    return 0
