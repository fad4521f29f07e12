"""The dashboard, its figures and the trace cache, on a real recorded minibank run.

The run fixture records 4 real minibank clips per category with the real weights and analyses
them; browser tests drive Debian's headless Chromium through dash[testing]'s ``DashComposite``.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import soundfile as sf

from soundnet.errors import ParameterError

# a run recorded for the module, Chromium and kaleido: end-to-end, not part of the fast subset
pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
PER_CATEGORY = 4


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def dash_run(tmp_path_factory, minibank_dir, long_dir, model) -> Path:
    """A recorded and analysed run: 4 minibank clips per category plus the long read-speech clip
    (17 s, so the heads have frames over time); all layers, heads included."""
    from interp.analysis.selectivity import analyze
    from interp.corpus.corpora import load_corpus
    from interp.recording import record_corpus

    corpus = load_corpus(minibank_dir)
    long = load_corpus(long_dir)
    sub = pd.concat(
        [corpus.groupby("label", sort=True).head(PER_CATEGORY), long[long["label"] == "speech"]], ignore_index=True
    )
    sub["order"] = np.arange(len(sub))
    out = tmp_path_factory.mktemp("dash") / "run"
    record_corpus(sub, out, model=model, workers=0, progress=False)
    analyze(out, n_permutations=1000)
    return out


@pytest.fixture(scope="module")
def app(dash_run):
    from dashboard.app import create_app

    return create_app(dash_run)


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


@pytest.fixture(scope="module")
def data(app):
    from dashboard.data import CONFIG_KEY

    return app.server.config[CONFIG_KEY]


@pytest.fixture(scope="module")
def speech_unit(data) -> tuple[str, int]:
    """The conv5 unit most selective for speech."""
    r = data.rank("speech", metric="auroc", layers=["conv5"], top=1)
    return str(r["layer"].iloc[0]), int(r["unit"].iloc[0])


def _route(client, path: str, search: str = ""):
    """What the Dash pages router returns for ``path`` (the server-side page build)."""
    body = {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": path},
            {"id": "_pages_location", "property": "search", "value": search},
        ],
        "changedPropIds": ["_pages_location.pathname"],
        "state": [],
    }
    return client.post("/_dash-update-component", json=body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def test_figure_functions_are_valid_plotly_and_share_category_colours(data, speech_unit):
    from interp.report import figures as F
    from interp.run.traces import clip_spectrogram, unit_traces

    layer, unit = speech_unit
    v = data.unit_values(layer, unit)
    top = data.top_clips(layer, unit, k=3, stat="max")  # the trace peaks at the clip's max
    cid = str(top["clip_id"].iloc[0])
    spec = clip_spectrogram(data.run, cid)
    times, acts = unit_traces(data.run, cid, layer, model=data.model)
    figs = [
        F.layer_selectivity_figure(data.layer_summary),
        F.category_layer_heatmap(data.category_counts, normalize=True),
        F.probe_accuracy_figure(
            pd.DataFrame(
                {"layer": ["conv5", "conv7"], "accuracy": [0.5, 0.7], "ci_low": [0.4, 0.6], "ci_high": [0.6, 0.8]}
            ),
            chance=0.1,
        ),
        F.activation_histogram(v["value"].to_numpy(), v["label"].to_numpy(), colors=data.colors),
        F.category_distributions(v["value"].to_numpy(), v["label"].to_numpy(), colors=data.colors),
        F.spectrogram_figure(spec),
        F.clip_activation_figure(
            spec,
            times,
            acts[unit],
            peak_s=float(top["peak_s"].iloc[0]),
            window_s=(float(top["start_s"].iloc[0]), float(top["end_s"].iloc[0])),
        ),
        F.head_predictions_figure(np.array([0.5, 1.5]), np.array([[0.2, 0.3], [0.8, 0.7]]), ["a", "b"], k=2),
        F.promoted_classes_figure(["x", "y"], [0.3, -0.1]),
        F.tuning_curve_figure(
            pd.DataFrame(
                {
                    "freq_hz": [100.0, 1000.0, 100.0, 1000.0],
                    "level_db": [-20, -20, -6, -6],
                    "activation": [1.0, 2.0, 1.5, 2.5],
                }
            ),
            x="freq_hz",
            group="level_db",
        ),
    ]
    for fig in figs:
        assert isinstance(fig, go.Figure)
        go.Figure(fig.to_dict())  # full plotly validation of data and layout: raises on any bad property
        assert fig.layout.template.layout.font.family == F.FONT_FAMILY
    # the histogram draws one trace per category, in the category's colour
    hist = figs[3]
    assert {t.name: t.marker.color for t in hist.data} == {c: data.colors[c] for c in sorted(set(v["label"]))}
    assert sum(int(np.sum(t.y)) for t in hist.data) == int(np.isfinite(v["value"]).sum())
    # the trace of the top clip peaks where the recorder said, at the recorded value
    trace = figs[6].data[1]
    j = int(np.argmax(trace.y))
    assert abs(float(trace.x[j]) - float(top["peak_s"].iloc[0])) < 1e-3
    assert abs(float(trace.y[j]) - float(top["value"].iloc[0])) < 1e-3 * max(1.0, abs(float(top["value"].iloc[0])))
    assert F.category_colors(["b", "a", "b"]) == F.category_colors(["a", "b"])
    # the page passes the labels as a Categorical (grouped by its codes, labels factorised once
    # per clip index and shared by every unit): the same figures as from the label strings
    assert isinstance(v["label"].dtype, pd.CategoricalDtype)
    other = data.unit_values(layer, (unit + 1) % data.n_units(layer))
    assert data._labels_of(other.index) is data._labels_of(v.index)  # one factorisation
    for fn in (F.activation_histogram, F.category_distributions):
        assert (
            fn(v["value"].to_numpy(), v["label"].array).to_json()
            == fn(v["value"].to_numpy(), v["label"].astype(str).to_numpy()).to_json()
        )
    with pytest.raises(ParameterError, match="'labels' parameter of activation_histogram"):
        F.activation_histogram([1.0, 2.0], ["a"])
    with pytest.raises(ParameterError, match="'formats' parameter of export_figure"):
        F.export_figure(figs[0], "/tmp/never-written", formats=("gif",))


# --------------------------------------------------------------------------------------------
# traces cache
# --------------------------------------------------------------------------------------------
def test_unit_traces_equal_recorded_maxima_and_are_cached_atomically(dash_run, model):
    from interp.run.store import open_run
    from interp.run.traces import clip_spectrogram, unit_traces

    run = open_run(dash_run)
    top = run.topk("conv3", 5)
    for r in top.head(3).itertuples():
        times, acts = unit_traces(run, r.clip_id, "conv3", model=model)
        assert acts.shape[0] == 64 and acts.shape[1] == len(times)
        assert np.isclose(acts[5].max(), r.value, rtol=1e-4, atol=1e-5)
        assert np.isclose(times[int(np.argmax(acts[5]))], r.peak_s, atol=1e-4)
    files = sorted((run.path / "cache" / "traces").glob(f"{top['clip_id'].iloc[0]}.*.npz"))
    assert len(files) == 1 and not list((run.path / "cache" / "traces").glob(".*.tmp"))
    mtime = files[0].stat().st_mtime_ns
    again = unit_traces(run, top["clip_id"].iloc[0], "conv7", model=model)  # another layer: same file, no recompute
    assert files[0].stat().st_mtime_ns == mtime and again[1].shape[0] == 1024
    # a cache file whose key does not match is recomputed, not trusted
    with np.load(files[0]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["key"] = np.array("stale")
    arrays["conv3.acts"] = np.zeros_like(arrays["conv3.acts"])
    np.savez(files[0], **arrays)
    times, acts = unit_traces(run, top["clip_id"].iloc[0], "conv3", model=model)
    assert np.isclose(acts[5].max(), top["value"].iloc[0], rtol=1e-4)
    spec = clip_spectrogram(run, top["clip_id"].iloc[0])
    assert spec.db.shape == (80, len(spec.times_s)) and abs(spec.db.max()) < 1e-4 and spec.db.min() >= -80.0 - 1e-4
    with pytest.raises(KeyError):
        unit_traces(run, "../../etc/passwd", "conv3", model=model)


def test_windowed_traces_equal_the_whole_clip_pass(dash_run, model):
    from interp.run.store import open_run
    from interp.run.traces import clip_spectrogram, unit_traces

    run = open_run(dash_run)
    long_id = str(run.ok_clips.sort_values("duration_s").index[-1])
    assert run.ok_clips.loc[long_id, "duration_s"] > 15
    for layer in ("conv2", "conv7", "conv8"):
        full_t, full_a = unit_traces(run, long_id, layer, model=model)
        win_t, win_a = unit_traces(run, long_id, layer, window_s=(5.0, 12.0), model=model)
        inside = (full_t >= 5.0) & (full_t <= 12.0)
        assert inside.sum() == len(win_t) > 0, layer
        assert np.allclose(full_t[inside], win_t, atol=1e-5)
        assert np.allclose(full_a[:, inside], win_a, rtol=1e-3, atol=1e-3), layer
    spec = clip_spectrogram(run, long_id, window_s=(5.0, 12.0))
    assert 4.9 < spec.times_s[0] < 5.1 and 11.8 < spec.times_s[-1] <= 12.1
    with pytest.raises(ParameterError, match="'window_s' parameter of clip_traces"):
        unit_traces(run, long_id, "conv2", window_s=(3.0, 1.0), model=model)


# --------------------------------------------------------------------------------------------
# pages (server side)
# --------------------------------------------------------------------------------------------
def test_pages_render_and_unknown_units_say_so(client, data, speech_unit):
    layer, unit = speech_unit
    cid = str(data.top_clips(layer, unit, k=1)["clip_id"].iloc[0])
    for path, needle in [
        ("/", "Highest-AUROC conv units per category"),
        ("/", "Nuisance check"),
        (f"/unit/{layer}/{unit}", "Top "),
        ("/search", "Find units selective"),
        (f"/clip/{cid}", "Most active units per layer"),
        (f"/unit/{layer}/99999", "No such unit"),
        ("/unit/conv99/1", "No such unit"),
        ("/unit/conv5/..%2F1", "No such unit"),
        ("/clip/c000000000000", "No such clip"),
    ]:
        r = _route(client, path)
        assert r.status_code == 200, path
        assert needle in json.dumps(r.get_json()), path
    page = json.dumps(_route(client, f"/unit/{layer}/{unit}").get_json())
    assert f"/audio/{cid}.wav" in page and f"/export/unit/{layer}/{unit}/histogram.png" in page
    prev, nxt = data.neighbours(layer, unit)
    assert f"/unit/{nxt[0]}/{nxt[1]}" in page and f"/unit/{prev[0]}/{prev[1]}" in page
    assert data.neighbours("conv1", 0)[0] is None and data.neighbours("conv2", 0)[0] == ("conv1", 15)


def _callback(
    client,
    outputs: list[tuple[str, str]],
    inputs: list[tuple[str, str, object]],
    state: Sequence[tuple[str, str, object]] = (),
):
    out = "...".join(f"{i}.{p}" for i, p in outputs)
    body = {
        "output": f"..{out}.." if len(outputs) > 1 else out,
        "outputs": [{"id": i, "property": p} for i, p in outputs]
        if len(outputs) > 1
        else {"id": outputs[0][0], "property": outputs[0][1]},
        "inputs": [{"id": i, "property": p, "value": v} if i is not None else v for i, p, v in inputs],
        "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
        "changedPropIds": [f"{inputs[0][0]}.{inputs[0][1]}"],
    }
    return client.post("/_dash-update-component", json=body)


def test_jump_box_search_and_overlay_callbacks(client, data, speech_unit):
    from dashboard import ids

    jump = [(ids.NAV_LOCATION, "href"), (ids.NAV_JUMP_MESSAGE, "children")]
    ok = _callback(
        client,
        jump,
        [(ids.NAV_JUMP_GO, "n_clicks", 1), (ids.NAV_JUMP_UNIT, "n_submit", None)],
        [(ids.NAV_JUMP_LAYER, "value", "conv3"), (ids.NAV_JUMP_UNIT, "value", 5)],
    ).get_json()
    assert ok["response"][ids.NAV_LOCATION]["href"] == "/unit/conv3/5"
    bad = _callback(
        client,
        jump,
        [(ids.NAV_JUMP_GO, "n_clicks", 2), (ids.NAV_JUMP_UNIT, "n_submit", None)],
        [(ids.NAV_JUMP_LAYER, "value", "conv3"), (ids.NAV_JUMP_UNIT, "value", 64)],
    ).get_json()
    assert ids.NAV_LOCATION not in bad["response"] and "0–63" in bad["response"][ids.NAV_JUMP_MESSAGE]["children"]
    ranked = _callback(
        client,
        [(ids.SEARCH_TABLE, "data"), (ids.SEARCH_SUMMARY, "children")],
        [
            (ids.SEARCH_CATEGORY, "value", "speech"),
            (ids.SEARCH_METRIC, "value", "dprime"),
            (ids.SEARCH_LAYERS, "value", ["conv4", "conv5"]),
            (ids.SEARCH_SELECTIVE_ONLY, "value", []),
            (ids.SEARCH_TOP, "value", 20),
        ],
    ).get_json()["response"]
    rows = ranked[ids.SEARCH_TABLE]["data"]
    assert len(rows) == 20 and all(
        r["unit_link"].split("](/unit/")[1].split("/")[0] in ("conv4", "conv5") for r in rows
    )
    assert [r["dprime"] for r in rows] == sorted((r["dprime"] for r in rows), reverse=True)
    picked = _callback(
        client,
        [(ids.SEARCH_MATCHES, "children"), (ids.SEARCH_CATEGORY, "value")],
        [(ids.SEARCH_TEXT, "value", "spee"), (None, None, [])],  # no chip clicked (ALL: none)
        [(ids.SEARCH_CATEGORY, "value", None)],
    ).get_json()
    assert picked["response"][ids.SEARCH_CATEGORY]["value"] == "speech"
    layer, unit = speech_unit
    cid = str(data.top_clips(layer, unit, k=1)["clip_id"].iloc[0])
    fig = _callback(
        client,
        [(ids.CLIP_SPECTROGRAM_GRAPH, "figure")],
        [(ids.CLIP_OVERLAY_LAYER, "value", layer), (ids.CLIP_OVERLAY_UNIT, "value", unit)],
        [(ids.CLIP_STORE, "data", {"clip_id": cid})],
    ).get_json()["response"][ids.CLIP_SPECTROGRAM_GRAPH]["figure"]
    assert [t["type"] for t in fig["data"][:2]] == ["heatmap", "scatter"] and f"{layer} unit {unit}" in fig["layout"][
        "title"
    ]["text"]


def test_tuning_curves_from_an_attached_probes_run(dash_run, tmp_path, model):
    from dashboard.app import create_app
    from dashboard.data import CONFIG_KEY
    from dashboard.views import unit_figure_names
    from interp.recording import record_corpus
    from interp.run.store import open_run

    probes = tmp_path / "probes"
    record_corpus(
        "probes",
        probes,
        model=model,
        workers=0,
        progress=False,
        layers=("conv1", "conv2", "conv3"),
        corpus_options=dict(kinds=["tone", "am_noise"], n_freqs=6, levels_db=(-20.0,), rates_hz=(2.0, 8.0, 32.0)),
    )
    app = create_app(dash_run, probes_dir=probes)
    client = app.server.test_client()
    page = json.dumps(_route(client, "/unit/conv2/7").get_json())
    assert "Tuning (synthetic probes)" in page and "tuning-frequency" in page
    data = app.server.config[CONFIG_KEY]
    assert "tuning-rate" in unit_figure_names(data, "conv2", 7)
    fig = data.tuning("conv2", 7)
    pr = open_run(probes)
    tones = pr.ok_clips[pr.ok_clips["kind"] == "tone"]
    expected = pr.activations("conv2", data.stat).loc[tones.index, 7].to_numpy()
    got = fig[fig["kind"] == "tone"].set_index("freq_hz").loc[tones["freq_hz"], "response"].to_numpy()
    assert np.allclose(got, expected)
    assert data.tuning("conv5", 7) is None  # the probes run has no conv5
    assert "The probes run has no conv5" in json.dumps(_route(client, "/unit/conv5/7").get_json())


# --------------------------------------------------------------------------------------------
# audio route
# --------------------------------------------------------------------------------------------
def test_audio_route_serves_known_clips_only_and_reads_no_other_file(client, data, dash_run, minibank_dir, tmp_path):
    from interp.corpus.corpora import read_clip

    cid = str(data.clips.index[0])
    row = data.clips.loc[cid]
    r = client.get(f"/audio/{cid}.wav")
    assert r.status_code == 200 and r.mimetype == "audio/wav"
    y, sr = sf.read(io.BytesIO(r.data), dtype="float32")
    ref = read_clip(row.to_dict())
    assert sr == 22050 and y.shape == ref.shape and np.max(np.abs(y - ref)) < 1.0 / 32767 + 1e-6

    opened: list[str] = []
    watching = [False]

    def audit(event: str, args: tuple) -> None:
        if watching[0] and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(audit)  # hooks cannot be removed; this one only records while watching
    target = Path(dash_run) / "run.json"
    abs_target = str(target.resolve())
    secret = tmp_path / "secret.wav"  # a real audio file outside the corpus
    sf.write(secret, np.zeros(2205, dtype=np.float32), 22050)
    rel = os.path.relpath(secret, Path(str(row["path"])).parent)
    bad = [
        f"/audio/{urllib.parse.quote(str(secret), safe='')}",
        f"/audio/{urllib.parse.quote(rel, safe='')}",
        f"/audio/{rel}",
        f"/audio/{secret.stem}.wav",
        f"/audio/{urllib.parse.quote(urllib.parse.quote(rel, safe=''), safe='')}",
        "/audio/c000000000000.wav",
        "/audio/unknown.wav",
        f"/audio/{cid}.mp3",
        f"/audio/{cid}",
        "/audio/../run.json",
        "/audio/..%2Frun.json",
        "/audio/..%2F..%2F..%2Fetc%2Fpasswd.wav",
        "/audio/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        f"/audio/{abs_target}",
        f"/audio/{urllib.parse.quote(abs_target, safe='')}",
        "/audio//etc/passwd",
        "/audio/%2Fetc%2Fpasswd.wav",
        f"/audio/{cid}.wav/../../run.json",
        f"/audio/{urllib.parse.quote(str(minibank_dir / 'manifest.csv'), safe='')}",
        "/audio/%252e%252e%252frun.json",
        f"/audio/{cid}.wav?t0=-1&t1=2",
        f"/audio/{cid}.wav?t0=abc",
    ]
    watching[0] = True
    try:
        codes = {u: client.get(u).status_code for u in bad}
    finally:
        watching[0] = False
    assert all(code == 404 for code in codes.values()), codes
    assert opened == [], opened  # no Python-level open at all while refusing
    # a known clip: whatever Python opens is the clip's own file (libsndfile opens it in C)
    watching[0] = True
    try:
        again = client.get(f"/audio/{cid}.wav")
    finally:
        watching[0] = False
    assert again.status_code == 200 and again.data == r.data
    assert all(Path(p).resolve() == Path(row["path"]).resolve() for p in opened), opened


# --------------------------------------------------------------------------------------------
# export (kaleido drives Chromium)
# --------------------------------------------------------------------------------------------
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


@pytest.mark.browser
def test_export_downloads_are_valid_png_svg_pdf_html(client, data, speech_unit, tmp_path):
    from interp.report.figures import export_figure

    layer, unit = speech_unit
    for name in ("histogram", "clip-0"):
        for fmt, mime in (
            ("png", "image/png"),
            ("svg", "image/svg+xml"),
            ("pdf", "application/pdf"),
            ("html", "text/html"),
        ):
            r = client.get(f"/export/unit/{layer}/{unit}/{name}.{fmt}")
            assert r.status_code == 200, (name, fmt)
            assert r.mimetype == mime and "attachment" in r.headers["Content-Disposition"]
            blob = r.data
            assert len(blob) > 1000, (name, fmt, len(blob))
            if fmt in MAGIC:
                assert blob.startswith(MAGIC[fmt]), (name, fmt, blob[:16])
            elif fmt == "svg":
                assert b"<svg" in blob[:400] and blob.rstrip().endswith(b"</svg>")
            else:
                assert blob.lstrip().lower().startswith((b"<html", b"<!doctype html")) and b"Plotly.newPlot" in blob
        if name == "histogram":
            png = client.get(f"/export/unit/{layer}/{unit}/{name}.png").data
            w, h = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            assert w >= 900 and h >= 300  # rendered at 2x the figure's size
    for url in (
        f"/export/unit/{layer}/{unit}/histogram.gif",
        f"/export/unit/{layer}/{unit}/nothing.png",
        f"/export/unit/{layer}/99999/histogram.png",
        "/export/unit/../../run.json",
        f"/export/unit/{layer}/{unit}/clip-999.png",
        "/export/overview/..%2Frun.png",
    ):
        assert client.get(url).status_code == 404, url
    written = export_figure(go.Figure(go.Bar(x=[1, 2], y=[3, 1])), tmp_path / "sub" / "bars")
    assert sorted(written) == ["html", "pdf", "png", "svg"]
    assert written["png"].read_bytes().startswith(MAGIC["png"]) and written["pdf"].read_bytes().startswith(MAGIC["pdf"])
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary file left behind


# --------------------------------------------------------------------------------------------
# times in the clip, short clips, titles and unit label status
# --------------------------------------------------------------------------------------------
def _html_text(component) -> str:
    """All the text and titles of a Dash component tree, as one string."""
    return json.dumps(component.to_plotly_json(), default=lambda o: o.to_plotly_json())


def test_peak_times_are_shown_in_the_clip_own_time(client, data):
    from dashboard import views as V
    from soundnet.geometry import frames_to_time, frames_to_window

    long_id = str(data.clips.sort_values("duration_s").index[-1])
    dur = float(data.clip(long_id)["duration_s"])
    peak = float(frames_to_time(0, "conv7"))  # conv7's first frame is centred before the clip
    assert peak < 0
    start, end = frames_to_window(0, "conv7", duration_s=dur)
    top = data.top_clips("conv7", 0, k=1).assign(
        clip_id=long_id, peak_s=peak, start_s=float(start), end_s=float(end), duration_s=dur
    )
    fig = V.clip_trace_figure(data, "conv7", 0, 0, top=top, compact=False)
    marker = next(t for t in fig.data if t.name == "peak")
    assert marker.x[0] == 0.0 and "receptive field starts before the clip" in marker.hovertemplate
    assert fig.layout.xaxis.range[0] >= 0.0 and fig.layout.xaxis.range[1] <= dur + 1e-9
    assert any(t.type == "scatter" and len(t.x) > 1 for t in fig.data)  # a 17 s clip has a conv7 trace
    text = _html_text(V.clip_card(data, "conv7", 0, 0, top, "g", "a"))
    assert " at 0.00 s" in text and "peak at 0.00 s: its receptive field starts before the clip" in text
    # the pages never show a time before the clip start
    for layer in ("conv6", "conv7"):
        for unit in (0, 1):
            page = json.dumps(_route(client, f"/unit/{layer}/{unit}").get_json())
            assert " at -" not in page and "peak at -" not in page, (layer, unit)
    # the clip page's overlay: the peak marker and axis inside [0, duration]
    over = V.clip_spectrogram_figure(data, long_id, layer="conv7", unit=0)
    assert over.layout.xaxis.range[0] >= 0.0
    assert all(x >= 0.0 for t in over.data if t.name == "peak" for x in t.x)


def test_clips_shorter_than_the_receptive_field_get_a_message_not_a_trace(client, data):
    from dashboard import views as V
    from soundnet.geometry import layer_geometry

    rf = layer_geometry("conv7").receptive_field_s
    short = data.clips[data.clips["duration_s"] < rf / 2]
    cid = str(short.index[0])
    dur = float(short["duration_s"].iloc[0])
    msg = V.short_clip_message(data, cid, "conv7")
    assert msg is not None and msg.startswith(
        f"This {dur:.2f} s clip is shorter than conv7's {rf:.2g} s receptive field"
    )
    assert "every conv7 frame reads mostly padding" in msg and msg.endswith("or an earlier layer.")
    long_id = str(data.clips.sort_values("duration_s").index[-1])
    assert V.short_clip_message(data, long_id, "conv7") is None
    assert V.short_clip_message(data, cid, "conv1") is None
    top = data.top_clips("conv7", 0, k=1).assign(clip_id=cid, duration_s=dur)
    for compact in (True, False):
        fig = V.clip_trace_figure(data, "conv7", 0, 0, top=top, compact=compact)
        assert [t.type for t in fig.data] == ["heatmap"], compact  # the spectrogram, no trace
    assert "shorter than conv7" in fig.layout.annotations[0].text  # the exported figure says why
    assert msg in _html_text(V.clip_card(data, "conv7", 0, 0, top, "g", "a"))
    over = V.clip_spectrogram_figure(data, cid, layer="conv7", unit=0)
    assert [t.type for t in over.data] == ["heatmap"] and "shorter than conv7" in over.layout.annotations[0].text
    # the unit page: every top clip of a conv7 unit that is shorter than 4.1 s carries the message
    top7 = data.top_clips("conv7", 3, k=V.TOP_K)
    n_short = int((top7["duration_s"] < rf).sum())
    page = json.dumps(_route(client, "/unit/conv7/3").get_json())
    assert n_short > 0 and page.count("shorter than conv7") == n_short


def _run_copy(dash_run: Path, dest: Path) -> Path:
    shutil.copytree(dash_run, dest, ignore=shutil.ignore_patterns("cache"))
    return dest


def _labels_table(run_dir: Path):
    from dashboard.data import RunData

    d = RunData(run_dir)
    return d.run, "unit_labels" + d.table_suffix


def test_overview_titles_say_what_is_counted(client, data):
    from dashboard import views as V

    page = json.dumps(_route(client, "/").get_json())
    assert "Units labelled with each category (each unit counted once, under its label)" in page
    assert "Fraction of units labelled selective" in page and "units selective for" not in page
    heat = V.overview_figure(data, "categories")
    assert "units labelled" in heat.data[0].hovertemplate and "counted once" in heat.data[0].hovertemplate
    assert heat.data[0].colorbar.title.text == "units labelled" and V.CATEGORIES_TITLE in heat.layout.title.text
    bars = V.overview_figure(data, "layers")
    assert "labelled selective" in bars.layout.yaxis.title.text and "labelled selective" in bars.data[0].hovertemplate


def test_unit_status_from_new_and_old_unit_label_tables(dash_run, tmp_path):
    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.data import CONFIG_KEY

    new_dir = _run_copy(dash_run, tmp_path / "new")
    run, name = _labels_table(new_dir)
    t = run.read_table(name)
    attrs = dict(t.attrs)
    k = t.index[(t["layer"] == "conv5")][:3]
    hand = {
        "status": ["selective", "polysemantic", "unlabelled"],
        "label": ["speech", "none", "none"],
        "selective": [True, False, False],
        "best_category": ["speech", "speech", "speech"],
        "runner_up": ["music_loop", "kick_drum", "tabla"],
        "auroc": [0.912, 0.88, 0.61],
        "auroc_runner_up": [0.62, 0.86, 0.58],
        "margin": [0.292, 0.02, 0.03],
        "win_fraction": [0.99, 0.6, np.nan],
        "p_unit": [0.001, 0.002, 0.4],
        "q_unit": [0.0021, 0.004, 0.6],
        "categories": ["speech", "speech;kick_drum", ""],
    }
    for col, values in hand.items():
        if col not in t.columns:
            t[col] = pd.Series([np.nan] * len(t), dtype=object if isinstance(values[0], str) else float)
        t[col] = t[col].astype(object) if isinstance(values[0], str) else t[col]
        t.loc[k, col] = values
    t.attrs = attrs
    run.write_table(name, t)
    units = [int(u) for u in t.loc[k, "unit"]]

    app = create_app(new_dir)
    c = app.server.test_client()
    pages = [json.dumps(_route(c, f"/unit/conv5/{u}").get_json()) for u in units]
    assert "selective for" in pages[0] and "status-selective" in pages[0]
    assert "(AUROC 0.91 vs 0.62 for music_loop, wins 99 % of resamples, unit q = 0.002)" in pages[0]
    assert "polysemantic:" in pages[1] and '"kick_drum"' in pages[1] and "status-polysemantic" in pages[1]
    assert "(best: speech, AUROC 0.61)" in pages[2] and "status-unlabelled" in pages[2]
    overview = json.dumps(_route(c, "/").get_json())
    assert "Fraction of units labelled selective (unit-level test, BH across units)" in overview
    data = app.server.config[CONFIG_KEY]
    assert data.has_unit_status
    ranked = data.rank("speech", layers=["conv5"], top=None).set_index("unit")
    assert [ranked.loc[u, "status"] for u in units] == ["speech", "polysemantic: speech; kick_drum", "unlabelled"]
    rows = _callback(
        c,
        [(ids.SEARCH_TABLE, "data"), (ids.SEARCH_SUMMARY, "children")],
        [
            (ids.SEARCH_CATEGORY, "value", "speech"),
            (ids.SEARCH_METRIC, "value", "auroc"),
            (ids.SEARCH_LAYERS, "value", ["conv5"]),
            (ids.SEARCH_SELECTIVE_ONLY, "value", []),
            (ids.SEARCH_TOP, "value", 0),
        ],
    ).get_json()["response"][ids.SEARCH_TABLE]["data"]
    by_unit = {r["unit_link"].split("](/unit/conv5/")[1].rstrip(")"): r["label"] for r in rows}
    assert by_unit[str(units[1])] == "polysemantic: speech; kick_drum"

    # an old table (no unit-level columns): status from `selective`, pair-level wording
    old_dir = _run_copy(dash_run, tmp_path / "old")
    run, name = _labels_table(old_dir)
    t = run.read_table(name)
    attrs = dict(t.attrs)
    old = t.drop(
        columns=[
            c
            for c in (
                "status",
                "runner_up",
                "auroc_runner_up",
                "margin",
                "win_fraction",
                "p_unit",
                "q_unit",
                "categories",
            )
            if c in t.columns
        ]
    )
    first, second = old.index[old["layer"] == "conv5"][:2]
    old.loc[first, "selective"], old.loc[first, "label"] = True, str(old.loc[first, "best_category"])
    old.loc[second, "selective"], old.loc[second, "label"] = False, "none"
    old.attrs = attrs
    run.write_table(name, old)
    app = create_app(old_dir)
    c = app.server.test_client()
    data = app.server.config[CONFIG_KEY]
    assert not data.has_unit_status
    lab = old[old["selective"]].iloc[0]
    page = json.dumps(_route(c, f"/unit/{lab['layer']}/{int(lab['unit'])}").get_json())
    assert "status-selective" in page and "pair-level q = " in page and "unit q" not in page
    off = old[~old["selective"]].iloc[0]
    page = json.dumps(_route(c, f"/unit/{off['layer']}/{int(off['unit'])}").get_json())
    assert "status-unlabelled" in page and f"(best: {off['best_category']}, AUROC" in page
    overview = json.dumps(_route(c, "/").get_json())
    assert "Fraction of units labelled selective (a category with pair-level q" in overview
    assert "unit-level test" not in overview


# --------------------------------------------------------------------------------------------
# the analysis statistic: top clips, the clip page's layer, the search's selective units
# --------------------------------------------------------------------------------------------
def _find(tree, component_id: str) -> dict:
    """The props of the component with ``component_id`` in a page's JSON tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and props.get("id") == component_id:
                return props
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    raise KeyError(component_id)


def test_unit_page_top_clips_rank_by_the_analysis_statistic(client, data):
    from dashboard import views as V
    from interp.analysis.topclips import top_clips
    from interp.run.store import STAT_DESCRIPTIONS

    assert data.stat == "vmean"
    words = STAT_DESCRIPTIONS["vmean"]
    # a conv7 unit whose top clips by max include a clip without a valid conv7 frame (NaN vmean)
    vm = data.run.activations("conv7", "vmean")
    nan_ids = set(vm.index[~np.isfinite(vm[0].to_numpy(dtype=float))])
    assert nan_ids, "the run should have clips without a valid conv7 frame"
    unit = next(u for u in range(64) if set(data.top_clips("conv7", u, k=V.TOP_K, stat="max")["clip_id"]) & nan_ids)
    top = data.top_clips("conv7", unit, k=V.TOP_K)
    vals = data.unit_column("conv7", unit, "vmean")
    finite = vals[np.isfinite(vals.to_numpy())]
    assert list(top["clip_id"]) == list(top_clips(data.run, "conv7", unit, k=V.TOP_K, stat="vmean")["clip_id"])
    assert np.allclose(top["value"], np.sort(finite.to_numpy())[::-1][: len(top)])
    assert not set(top["clip_id"]) & nan_ids and np.isfinite(top["value"]).all()
    assert (data.clips.loc[top["clip_id"], "valid_frames_conv7"] > 0).all()
    assert list(top["rank"]) == list(range(len(top)))
    # moments from the peak_s statistic; the trace scale covers each clip's max over time
    peak = data.run.activations("conv7", "peak_s")[unit].reindex(top["clip_id"]).to_numpy()
    assert np.allclose(top["peak_s"], peak)
    mx = data.unit_column("conv7", unit, "max").reindex(top["clip_id"]).to_numpy()
    assert np.allclose(top["max"], mx) and (top["max"] >= top["value"] - 1e-6).all()
    fig = V.clip_trace_figure(data, "conv7", unit, 0, top=top, compact=False)
    if any(t.type == "scatter" and len(t.x) > 1 for t in fig.data):
        assert fig.layout.yaxis2.range[1] >= float(top["max"].max()) - 1e-6
        # evenly spaced activation ticks: not synced to the mel axis below (plotly.js's default)
        assert fig.layout.yaxis2.tickmode == "auto"
    page = json.dumps(_route(client, f"/unit/conv7/{unit}").get_json())
    assert f"Top {len(top)} clips (highest {words})" in page and "highest max over time" not in page
    assert f"Statistic per clip: {words}." in page and "vmean over time" not in page
    for cid in top["clip_id"]:
        assert f"/clip/{cid}" in page
    assert not [cid for cid in nan_ids if f"/clip/{cid}" in page]  # neither top nor decile examples
    card = _html_text(V.clip_card(data, "conv7", unit, 0, top, "g", "a"))
    assert f"{words} " in card and "peak at" in card
    # the histogram's axis names the statistic in words
    assert V.histogram_figure(data, "conv7", unit).layout.xaxis.title.text == f"activation ({words})"


def test_clip_page_opens_on_the_deepest_layer_with_a_valid_frame(client, data, dash_run):
    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.data import CONFIG_KEY

    def default_layer(c, cid: str) -> str:
        return _find(_route(c, f"/clip/{cid}").get_json(), ids.CLIP_OVERLAY_LAYER)["value"]

    cols = [f"valid_frames_{layer}" for layer in data.conv_layers]
    valid = data.clips[cols].gt(0)
    no5 = valid.index[~valid["valid_frames_conv5"] & valid.any(axis=1)]
    assert len(no5), "the run should have a clip without a valid conv5 frame"
    for cid in no5[:3]:
        deepest = [layer for layer in data.conv_layers if valid.loc[cid, f"valid_frames_{layer}"]][-1]
        assert deepest != "conv5" and default_layer(client, str(cid)) == deepest
        page = json.dumps(_route(client, f"/clip/{cid}").get_json())
        assert f"Defaults to the {deepest} unit" in page and "no valid frame" in page
    long_id = str(data.clips.sort_values("duration_s").index[-1])
    assert valid.loc[long_id].all() and default_layer(client, long_id) == data.conv_layers[-1]
    # a run without the valid-frame counts: conv5, as before
    app = create_app(dash_run)
    old = app.server.config[CONFIG_KEY]
    old._memo["clips"] = data.clips.drop(columns=[c for c in data.clips.columns if c.startswith("valid_frames_")])
    c = app.server.test_client()
    assert default_layer(c, str(no5[0])) == "conv5" and default_layer(c, long_id) == "conv5"


def test_search_selective_only_uses_the_unit_level_status(dash_run, tmp_path):
    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.data import CONFIG_KEY

    def search(c, selective: bool):
        r = _callback(
            c,
            [(ids.SEARCH_TABLE, "data"), (ids.SEARCH_SUMMARY, "children")],
            [
                (ids.SEARCH_CATEGORY, "value", "speech"),
                (ids.SEARCH_METRIC, "value", "auroc"),
                (ids.SEARCH_LAYERS, "value", ["conv5"]),
                (ids.SEARCH_SELECTIVE_ONLY, "value", ["yes"] if selective else []),
                (ids.SEARCH_TOP, "value", 0),
            ],
        ).get_json()["response"]
        rows = r[ids.SEARCH_TABLE]["data"]
        units = {int(x["unit_link"].split("](/unit/conv5/")[1].rstrip(")")) for x in rows}
        marked = {int(x["unit_link"].split("](/unit/conv5/")[1].rstrip(")")) for x in rows if x["selective"]}
        return units, marked, r[ids.SEARCH_SUMMARY]["children"]

    new_dir = _run_copy(dash_run, tmp_path / "new")
    run, name = _labels_table(new_dir)
    t = run.read_table(name)
    attrs = dict(t.attrs)
    sel = run.read_table(name.replace("unit_labels", "selectivity"))
    speech = sel[(sel["layer"] == "conv5") & (sel["category"] == "speech")].set_index("unit")
    by_auroc = list(speech["auroc"].sort_values(ascending=False).index.astype(int))
    a, b = by_auroc[0], by_auroc[-1]  # the most and the least speech-selective conv5 units
    conv5 = t["layer"] == "conv5"
    t["status"], t["label"] = t["status"].astype(object), t["label"].astype(object)
    t.loc[conv5 & (t["unit"] == a), ["status", "label", "categories"]] = ["polysemantic", "none", "speech;kick_drum"]
    t.loc[conv5 & (t["unit"] == b), ["status", "label", "categories"]] = ["selective", "speech", "speech"]
    t.attrs = attrs
    run.write_table(name, t)
    expected = set(t.loc[conv5 & (t["status"] == "selective") & (t["label"] == "speech"), "unit"].astype(int))
    assert b in expected and a not in expected

    app = create_app(new_dir)
    c = app.server.test_client()
    assert app.server.config[CONFIG_KEY].has_unit_status
    units, marked, summary = search(c, True)
    assert units == marked == expected
    assert f"{len(expected)} of them are labelled selective for speech (unit-level test, BH across units)" in summary
    units, marked, _ = search(c, False)
    assert len(units) == 256 and marked == expected
    page = json.dumps(_route(c, "/search").get_json())
    assert "only units labelled selective for this category (unit-level test" in page
    assert "Highlighted: units labelled selective for the chosen category" in page

    # an old table (no status column): the pair-level rule, and the page says so
    old_dir = _run_copy(dash_run, tmp_path / "old")
    run, name = _labels_table(old_dir)
    t = run.read_table(name)
    attrs = dict(t.attrs)
    t = t.drop(columns=["status"])
    t.attrs = attrs
    run.write_table(name, t)
    app = create_app(old_dir)
    c = app.server.test_client()
    th = app.server.config[CONFIG_KEY].label_thresholds
    passing = set(speech.index[(speech["q"] < th["q_max"]) & (speech["auroc"] >= th["auroc_min"])].astype(int))
    units, marked, _ = search(c, True)
    assert units == marked == passing  # may be none: 4 clips per category rarely reach q < 0.05
    units, marked, summary = search(c, False)
    assert len(units) == 256 and marked == passing
    assert f"{len(passing)} of them pass for speech (pair-level q < {th['q_max']:g}" in summary
    assert "only units passing for this category (pair-level q" in json.dumps(_route(c, "/search").get_json())


# --------------------------------------------------------------------------------------------
# clips behind a statistic: clips used per category, valid frames per top clip
# --------------------------------------------------------------------------------------------
def _texts(tree) -> list[str]:
    """Every string child of a page's JSON tree, in order."""
    out: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, dict):
            stack.extend(reversed([node.get("props", {}).get("children")] if "props" in node else list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return out


def test_overview_best_units_say_the_clips_used_and_skip_thin_layers(client, data):
    from dashboard import ids
    from dashboard.pages.overview import MIN_CLIPS_RANKED

    sel = data.selectivity
    conv = sel[sel["layer"].isin(data.conv_layers)]
    per = conv.groupby(["category", "layer"])[["n_pos", "n_excluded"]].max()
    thin = per[per["n_pos"] < MIN_CLIPS_RANKED]
    assert len(thin), "the run should have a category with fewer than 3 clips with a valid frame in some layer"
    table = _find(_route(client, "/").get_json(), ids.OVERVIEW_BEST_TABLE)
    rows = {}
    for tr in table["children"][1]["props"]["children"]:
        cells = tr["props"]["children"]
        cat = cells[0]["props"]["children"]["props"]["children"]  # the category chip
        rows[cat] = cells[2]["props"]["children"]
    assert set(rows) == set(data.categories)
    for cat, links in rows.items():
        units = [x for x in links if x["props"].get("href", "").startswith("/unit/")]
        assert units, cat
        for link in units:
            layer = link["props"]["href"].split("/")[2]
            n, k = per.loc[(cat, layer)]
            assert n >= MIN_CLIPS_RANKED, (cat, layer)  # no unit from a layer with too few clips used
            assert f" n {int(n)}/{int(n + k)}" in _texts(link), (cat, layer)
            assert f"AUROC on {int(n)} of the {int(n + k)} {cat} clips" in link["props"]["title"]
        text = " ".join(_texts(links))
        for (c, layer), r in thin.iterrows():
            if c == cat:
                verb = "has" if int(r["n_pos"]) == 1 else "have"
                expect = f"{layer}: {int(r['n_pos'])} of {int(r['n_pos'] + r['n_excluded'])} {cat} clips {verb} a valid frame: not ranked"
                assert expect in text
    # the unit page's per-category table: clips used and left out, from the selectivity table
    layer, c = thin.index[0][1], thin.index[0][0]
    page = _route(client, f"/unit/{layer}/0").get_json()
    metrics = _find(page, ids.UNIT_METRICS_TABLE)
    assert [col["id"] for col in metrics["columns"]][1:3] == ["n_pos", "n_excluded"]
    got = {r["category"]: (r["n_pos"], r["n_excluded"]) for r in metrics["data"]}
    mine = conv[(conv["layer"] == layer) & (conv["unit"] == 0)].set_index("category")
    assert got == {cat: (int(r.n_pos), int(r.n_excluded)) for cat, r in mine.iterrows()}
    assert got[c][0] < MIN_CLIPS_RANKED and got[c][1] > 0
    assert "left out: its clips without one" in json.dumps(page)


def test_unit_page_top_clips_show_their_valid_frames(client, data):
    from dashboard import views as V

    layer = "conv5"
    unit = next(
        u
        for u in range(data.n_units(layer))
        if (data.clips.loc[data.top_clips(layer, u, k=V.TOP_K)["clip_id"], f"valid_frames_{layer}"] < 3).any()
    )
    top = data.top_clips(layer, unit, k=V.TOP_K)
    frames = data.clips.loc[top["clip_id"], f"valid_frames_{layer}"].astype(int).to_numpy()
    page = json.dumps(_route(client, f"/unit/{layer}/{unit}").get_json())
    for rank, n in enumerate(frames):
        card = _html_text(V.clip_card(data, layer, unit, rank, top, "g", "a"))
        words = f"{n} valid {layer} frame{'' if n == 1 else 's'}"
        assert f'"{words}"' in card, (rank, n)
        assert f"the mean over {n} frame" in card
    assert sum(page.count(f'"{n} valid {layer} frame') for n in set(frames)) == len(frames)
    assert "the highest values often come from short clips" in page
    # under another statistic the count is not shown
    by_max = data.top_clips(layer, unit, k=V.TOP_K, stat="max")
    assert "valid conv5 frame" not in _html_text(V.clip_card(data, layer, unit, 0, by_max, "g", "a"))


# --------------------------------------------------------------------------------------------
# end to end in headless Chromium
# --------------------------------------------------------------------------------------------
@pytest.fixture()
def browser(tmp_path):
    from dash.testing.application_runners import ThreadedRunner
    from dash.testing.composite import DashComposite
    from selenium.webdriver.chrome.options import Options

    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-extensions",
        "--disable-component-update",
        "--no-first-run",
        "--mute-audio",
        "--window-size=1440,1000",
    ):
        opts.add_argument(arg)
    with (
        ThreadedRunner() as server,
        DashComposite(
            server,
            browser="chrome",
            headless=True,
            options=[opts],
            download_path=str(tmp_path),
            percy_run=False,
            wait_timeout=30,
        ) as dc,
    ):
        yield dc


def _fetch_in_browser(driver, url: str) -> dict:
    return driver.execute_async_script(
        """const done = arguments[arguments.length - 1];
        fetch(arguments[0]).then(async r => {
            const b = new Uint8Array(await r.arrayBuffer());
            done({status: r.status, type: r.headers.get('content-type'), n: b.length,
                  head: String.fromCharCode(...b.slice(0, 4))});
        }).catch(e => done({error: String(e)}));""",
        url,
    )


@pytest.mark.browser
def test_browser_unit_page_audio_and_search(browser, dash_run, speech_unit, artifacts_dir):
    from dashboard.app import create_app

    app = create_app(dash_run)
    browser.start_server(app, port=_free_port())
    driver = browser.driver
    driver.set_script_timeout(30)
    layer, unit = speech_unit

    # the unit page: a spectrogram figure with the unit's trace, and playable audio
    browser.server_url = browser.server.url + f"/unit/{layer}/{unit}"
    browser.wait_for_element("#unit-topk-grid .js-plotly-plot", timeout=60)
    browser.wait_for_contains_text(".unit-title h2", f"unit {unit}", timeout=30)
    fig = driver.execute_script(
        """const gd = document.querySelector('#unit-topk-grid .js-plotly-plot');
        const full = gd._fullData;  // plotly's decoded traces
        return {types: full.map(t => t.type), n: full[1].y.length, rows: full[0].z.length, cols: full[0].z[0].length,
                drawn: gd.querySelectorAll('.heatmaplayer image, .hm image').length + gd.querySelectorAll('.scatterlayer path.js-line').length};"""
    )
    assert fig["types"][:2] == ["heatmap", "scatter"] and fig["n"] > 0 and fig["rows"] == 80 and fig["cols"] > 1
    assert fig["drawn"] >= 2  # the spectrogram image and the activation line are on screen
    audio = driver.find_elements("css selector", "#unit-topk-grid audio")
    assert audio, "no audio element on the unit page"
    src = audio[0].get_attribute("src")
    assert urllib.parse.urlparse(src).path.startswith("/audio/")
    got = _fetch_in_browser(driver, src)
    assert got.get("status") == 200 and got["type"].startswith("audio/") and got["head"] == "RIFF" and got["n"] > 1000
    with urllib.request.urlopen(src) as resp:  # the same bytes outside the browser
        assert resp.headers.get_content_type().startswith("audio/") and resp.read(4) == b"RIFF"
    # the AUROC intervals are filled in by a callback once the page is shown
    browser.wait_for_contains_text("#unit-metrics-table td[data-dash-column='ci']", "[", timeout=60)
    # and the note says how: the demo run is small, so a bootstrap
    browser.wait_for_contains_text(
        "#unit-metrics-note", "stratified bootstrap of whole groups of clips, 2000", timeout=30
    )
    assert "computing" not in browser.find_element("#unit-metrics-note").text
    time.sleep(1.0)  # let the thumbnails finish drawing
    shot = artifacts_dir / "dashboard_unit_page.png"
    driver.set_window_size(1440, min(6000, driver.execute_script("return document.body.scrollHeight") + 40))
    time.sleep(0.5)
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 50_000 and shot.read_bytes().startswith(MAGIC["png"])
    driver.set_window_size(1440, 1000)

    # search: type 'speech', follow the first ranked unit
    browser.server_url = browser.server.url + "/search"
    box = browser.wait_for_element("#search-text", timeout=30)
    box.send_keys("speech")
    browser.wait_for_contains_text("#search-summary", "units shown for speech", timeout=30)
    link = browser.wait_for_element("#search-table td[data-dash-column='unit_link'] a", timeout=30)
    href = urllib.parse.urlparse(link.get_attribute("href")).path
    assert href.startswith("/unit/")
    link.click()
    browser.wait_for_element("#unit-topk-grid .js-plotly-plot", timeout=60)
    assert urllib.parse.urlparse(driver.current_url).path == href
    _, _, u = href.split("/")[1:4]
    browser.wait_for_contains_text(".unit-title h2", f"unit {u}", timeout=30)
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


# --------------------------------------------------------------------------------------------
# temporal dissection: unit card, overview heatmap, search by concept
# --------------------------------------------------------------------------------------------
DISSECT_LAYERS = ("conv2", "conv3", "conv4")
SHOTS = Path("/tmp/shots/dissect")


@pytest.fixture(scope="session")
def dissected_run(tmp_path_factory, model) -> Path:
    """20 soundscapes of 6 s (the demo's kick drums, snares and cymbals), recorded and dissected
    on conv2..conv4, not analysed (no selectivity tables)."""
    from interp.analysis.dissection import run_dissection
    from interp.corpus.corpora import load_corpus
    from interp.corpus.soundscapes import synthesize_soundscapes
    from interp.recording import record_corpus

    root = tmp_path_factory.mktemp("dissect")
    synthesize_soundscapes(
        "demo", root / "scapes", n=20, duration_s=6.0, labels=["kick_drum", "snare_drum", "cymbal"], seed=0
    )
    record_corpus(
        load_corpus(str(root / "scapes" / "manifest.csv")), root / "run", model=model, workers=0, progress=False
    )
    run_dissection(root / "run", root / "scapes" / "events.tsv", model=model, layers=list(DISSECT_LAYERS))
    return root / "run"


@pytest.fixture(scope="module")
def dissect_app(dissected_run):
    from dashboard.app import create_app

    return create_app(dissected_run)


@pytest.fixture(scope="module")
def concept_unit(dissected_run) -> dict:
    """The unit with status concept and the highest IoU (read from the table, not the dashboard)."""
    u = pd.read_parquet(dissected_run / "dissection_units.parquet")
    best = u[u["status"] == "concept"].sort_values("iou", ascending=False).iloc[0]
    return {
        "layer": str(best["layer"]),
        "unit": int(best["unit"]),
        "concept": str(best["concept"]),
        "iou": float(best["iou"]),
    }


def test_dissection_unit_card_shows_status_concepts_profile_and_clips(dissect_app, dissected_run, concept_unit):
    from dashboard import ids

    client = dissect_app.server.test_client()
    layer, unit, concept = concept_unit["layer"], concept_unit["unit"], concept_unit["concept"]
    tree = _route(client, f"/unit/{layer}/{unit}").get_json()
    card = _find(tree, ids.UNIT_DISSECTION_CARD)
    texts = _texts(card)
    assert "Temporal dissection" in json.dumps(card) and "concept" in texts and concept in texts
    # the concepts table: every concept of the unit, by IoU, with the values of dissection.parquet
    table = pd.read_parquet(dissected_run / "dissection.parquet")
    mine = table[(table["layer"] == layer) & (table["unit"] == unit)].sort_values("iou", ascending=False)
    rows = _texts(_find(card, ids.UNIT_DISSECTION_TABLE))
    shown = [t for t in rows if t in set(mine["concept"])]
    assert shown == list(mine["concept"]), shown
    assert f"{concept_unit['iou']:.3g}" in rows and f"{mine['recall'].iloc[0]:.3g}" in rows
    assert "q_time" in rows and "q_label" in rows and "null IoU (time)" in rows
    # the onset-aligned profile of the best concept, with the onset at 0
    prof = _find(card, ids.UNIT_DISSECTION_PROFILE)["figure"]
    main = [t for t in prof["data"] if t["name"] == concept]
    assert len(main) == 1 and len(prof["data"]) == mine["concept"].nunique()
    p = pd.read_parquet(dissected_run / "dissection_profiles.parquet")
    p = p[(p["layer"] == layer) & (p["unit"] == unit) & (p["concept"] == concept)].sort_values("t_s")
    assert np.allclose(_array(main[0]["x"]), p["t_s"]) and np.allclose(_array(main[0]["y"]), p["activation"])
    assert any(s["type"] == "line" and s["x0"] == 0.0 and s["x1"] == 0.0 for s in prof["layout"]["shapes"])
    # the clips: those with the most events of the concept, each with its events and the threshold
    events = pd.read_parquet(dissected_run / "dissection_events.parquet")
    n_concept = events[events["label"] == concept].groupby("clip_id").size()
    graphs = [
        n["props"]
        for n in _walk(card)
        if isinstance(n, dict)
        and isinstance(n.get("props", {}).get("id"), dict)
        and n["props"]["id"].get("type") == ids.UNIT_DISSECTION_GRAPH
    ]
    graphs.sort(key=lambda g: g["id"]["rank"])
    assert len(graphs) == 4
    order = pd.read_parquet(dissected_run / "clips.parquet")["clip_id"].tolist()
    counts = pd.DataFrame({"n_concept": n_concept, "n_all": events.groupby("clip_id").size().reindex(n_concept.index)})
    counts["o"] = [order.index(c) for c in counts.index]
    expected = counts.sort_values(["n_concept", "n_all", "o"], ascending=[False, False, True]).index[:4].tolist()
    page = json.dumps(card)
    assert page.index(f"/clip/{expected[0]}") < page.index(f"/clip/{expected[1]}")
    threshold = float(mine["threshold"].iloc[0])
    for g, cid in zip(graphs, expected, strict=True):
        fig = g["figure"]
        assert [t["type"] for t in fig["data"][:2]] == ["heatmap", "scatter"]  # the unit page's clip figure
        rects = [s for s in fig["layout"]["shapes"] if s["type"] == "rect"]
        lines = [s for s in fig["layout"]["shapes"] if s["type"] == "line" and s.get("yref") == "y2"]
        assert len(lines) == 1 and abs(lines[0]["y0"] - threshold) < 1e-9
        ev = events[events["clip_id"] == cid]
        assert len(rects) == len(ev)  # every event of the clip, and no receptive-field window
        full = sorted((s["x0"], s["x1"]) for s in rects if s["y0"] == 0.0)  # the concept's: the full height
        want = sorted(zip(ev.loc[ev["label"] == concept, "onset_s"], ev.loc[ev["label"] == concept, "offset_s"]))
        assert np.allclose(full, want)
    # exported like the other figures
    r = client.get(f"/export/unit/{layer}/{unit}/dissection-profile.html")
    assert r.status_code == 200 and b"Plotly.newPlot" in r.data
    assert client.get(f"/export/unit/{layer}/{unit}/dissection-clip-9.html").status_code == 404
    # a layer that was not dissected says so; a head unit too
    other = _route(client, "/unit/conv5/0").get_json()
    assert "conv5 was not dissected" in " ".join(_texts(_find(other, ids.UNIT_DISSECTION_CARD)))


def _array(v) -> np.ndarray:
    """A figure array from a page's JSON (a list, or plotly's typed array ``{dtype, bdata}``)."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        shape = v.get("shape", -1)
        shape = tuple(int(x) for x in shape.split(",")) if isinstance(shape, str) else shape
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"])).reshape(shape)
    return np.asarray(v, dtype=np.float64)


def _walk(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def test_dissection_overview_counts_and_search_by_concept(dissect_app, dissected_run, concept_unit):
    from dashboard import ids
    from interp.report.figures.dissection_charts import CONCEPT_COUNTS_TITLE

    client = dissect_app.server.test_client()
    tree = _route(client, "/").get_json()
    card = _find(tree, ids.OVERVIEW_DISSECTION_CARD)
    assert CONCEPT_COUNTS_TITLE in _texts(card)
    fig = _find(card, ids.OVERVIEW_DISSECTION_GRAPH)["figure"]
    hm = fig["data"][0]
    z = _array(hm["z"]).reshape(len(hm["y"]), len(hm["x"]))
    u = pd.read_parquet(dissected_run / "dissection_units.parquet")
    assert list(hm["x"]) == list(DISSECT_LAYERS)
    for i, c in enumerate(hm["y"]):
        for j, layer in enumerate(hm["x"]):
            n = int(((u["layer"] == layer) & (u["status"] == "concept") & (u["concept"] == c)).sum())
            assert z[i, j] == n, (c, layer)
    n_events = [int(((u["layer"] == layer) & (u["status"] == "events")).sum()) for layer in DISSECT_LAYERS]
    assert fig["layout"]["xaxis"]["ticktext"] == [f"{l}<br>{n} events" for l, n in zip(DISSECT_LAYERS, n_events)]
    status_rows = _texts(_find(card, ids.OVERVIEW_DISSECTION_TABLE))
    assert "fires at events of any kind" in status_rows and str(n_events[0]) in status_rows
    # no selectivity tables: the overview still says so, without an error
    assert "This run has no selectivity tables yet" in json.dumps(tree)
    r = client.get("/export/overview/dissection.html")
    assert r.status_code == 200 and CONCEPT_COUNTS_TITLE.encode() in r.data

    # search by concept: the units labelled with it, highest IoU first, linking to their pages
    concept = concept_unit["concept"]
    page = _route(client, "/search", f"?concept={concept}").get_json()
    rows = _find(page, ids.SEARCH_CONCEPT_TABLE)["data"]
    expected = u[(u["status"] == "concept") & (u["concept"] == concept)]
    assert len(rows) == len(expected) > 0
    first = f"[{concept_unit['layer']} · {concept_unit['unit']}](/unit/{concept_unit['layer']}/{concept_unit['unit']})"
    assert rows[0]["unit_link"] == first
    assert [r["iou"] for r in rows] == sorted((r["iou"] for r in rows), reverse=True)
    # the callback, narrowed to one layer
    got = _callback(
        client,
        [(ids.SEARCH_CONCEPT_TABLE, "data"), (ids.SEARCH_CONCEPT_SUMMARY, "children")],
        [(ids.SEARCH_CONCEPT, "value", concept), (ids.SEARCH_CONCEPT_LAYERS, "value", ["conv3"])],
    ).get_json()["response"]
    rows3 = got[ids.SEARCH_CONCEPT_TABLE]["data"]
    assert len(rows3) == int((expected["layer"] == "conv3").sum())
    assert all("(/unit/conv3/" in r["unit_link"] for r in rows3)
    assert f"units labelled with the concept {concept}" in got[ids.SEARCH_CONCEPT_SUMMARY]["children"]


def test_run_without_dissection_shows_no_dissection(client, data, speech_unit):
    assert not data.dissection.available
    layer, unit = speech_unit
    for path in (f"/unit/{layer}/{unit}", "/", "/search"):
        r = _route(client, path)
        assert r.status_code == 200, path
        page = json.dumps(r.get_json())
        assert "dissection" not in page.lower(), path
    assert client.get(f"/export/unit/{layer}/{unit}/dissection-profile.png").status_code == 404
    assert client.get("/export/overview/dissection.png").status_code == 404


@pytest.mark.browser
def test_browser_dissection_unit_page_and_overview(browser, dissected_run, concept_unit):
    from dashboard.app import create_app

    app = create_app(dissected_run)
    browser.start_server(app, port=_free_port())
    driver = browser.driver
    SHOTS.mkdir(parents=True, exist_ok=True)
    layer, unit = concept_unit["layer"], concept_unit["unit"]

    browser.server_url = browser.server.url + f"/unit/{layer}/{unit}"
    browser.wait_for_element("#unit-dissection-clips .js-plotly-plot", timeout=60)
    browser.wait_for_contains_text("#unit-dissection-card", concept_unit["concept"], timeout=30)
    drawn = driver.execute_script(
        """const gd = document.querySelector('#unit-dissection-profile .js-plotly-plot') ||
                     document.querySelector('#unit-dissection-profile');
        const clip = document.querySelector('#unit-dissection-clips .js-plotly-plot');
        return {lines: gd.querySelectorAll('.scatterlayer path.js-line').length,
                shapes: clip.querySelectorAll('.shapelayer path').length};"""
    )
    assert drawn["lines"] >= 1 and drawn["shapes"] >= 2  # the profile, the event spans and the threshold
    time.sleep(1.0)
    card = driver.find_element("css selector", "#unit-dissection-card")
    driver.execute_script("arguments[0].scrollIntoView()", card)
    driver.set_window_size(1440, min(6000, driver.execute_script("return document.body.scrollHeight") + 40))
    time.sleep(0.5)
    shot = SHOTS / "unit_page.png"
    driver.save_screenshot(str(shot))
    card.screenshot(str(SHOTS / "unit_dissection_card.png"))
    assert shot.stat().st_size > 50_000
    driver.set_window_size(1440, 1000)

    browser.server_url = browser.server.url + "/"
    browser.wait_for_element("#overview-dissection-graph .js-plotly-plot", timeout=60)
    time.sleep(1.0)
    driver.set_window_size(1440, min(6000, driver.execute_script("return document.body.scrollHeight") + 40))
    time.sleep(0.5)
    driver.save_screenshot(str(SHOTS / "overview.png"))
    driver.find_element("css selector", "#overview-dissection-card").screenshot(
        str(SHOTS / "overview_dissection_card.png")
    )
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


def test_category_distributions_draw_a_sample_of_points_but_the_box_of_every_clip():
    """A category of many clips: the box (quartiles, whiskers) is computed from all of them, the
    points drawn are a seeded sample of ``max_points`` (the figure stays small on a large run)."""
    import numpy as np

    from interp.report.figures.unit_charts import category_distributions

    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(size=20_000), rng.normal(3.0, 1.0, size=100)])
    lab = np.asarray(["big"] * 20_000 + ["small"] * 100)
    fig = category_distributions(v, lab, stat="vmean", max_points=500)
    big = [t for t in fig.data if t.name == "big"]
    stats_box, points = big
    assert stats_box.x is None and points.x is not None and len(points.x) == 500
    assert stats_box.median[0] == pytest.approx(np.median(v[:20_000]))
    assert stats_box.q1[0] == pytest.approx(np.percentile(v[:20_000], 25))
    assert set(points.x) <= set(v[:20_000]) and "a random 500 of 20,000" in points.hovertemplate
    small = [t for t in fig.data if t.name == "small"]
    assert len(small) == 1 and len(small[0].x) == 100  # few clips: every point, one trace
    assert len(fig.to_json()) < 100_000
