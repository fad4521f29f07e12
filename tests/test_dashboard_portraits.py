"""Unit portraits on the dashboard: the STRF card, the layer gallery, their exports.

A run of 12 demo clips with STRFs of conv2 and conv3 (interp.analysis.strf.run_strf); the
Chromium fixture and the request helpers are tests/test_dashboard.py's.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from tests.test_dashboard import _array, _callback, _fetch_in_browser, _free_port, _route, browser  # noqa: F401  (browser: a fixture)

pytestmark = pytest.mark.slow

SHOTS = Path("/tmp/shots/strf")
STRF_LAYERS = ["conv2", "conv3"]


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def strf_run(tmp_path_factory, model) -> Path:
    """12 demo clips (two per category), recorded, with STRFs of conv2 and conv3."""
    from interp.analysis.strf import run_strf
    from interp.corpus.corpora import demo_dir, load_corpus
    from interp.recording import record_corpus

    root = tmp_path_factory.mktemp("portraits")
    m = pd.read_csv(demo_dir() / "manifest.csv")
    sub = m.groupby("label", sort=True).head(2).head(12).copy()
    sub["path"] = [str(demo_dir() / p) for p in sub["path"]]
    sub.to_csv(root / "manifest.csv", index=False)
    record_corpus(load_corpus(str(root / "manifest.csv")), root / "run", model=model, workers=0, progress=False)
    run_strf(root / "run", model=model, layers=STRF_LAYERS, max_clips=12)
    return root / "run"


@pytest.fixture(scope="module")
def app(strf_run):
    from dashboard.app import create_app

    return create_app(strf_run)


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


@pytest.fixture(scope="module")
def table(strf_run) -> pd.DataFrame:
    """strf.parquet as written (read here, not through the dashboard)."""
    return pd.read_parquet(strf_run / "strf.parquet")


@pytest.fixture(scope="module")
def best_unit(table) -> tuple[str, int, float]:
    """The conv3 unit with the highest held-out r."""
    t = table[table["layer"] == "conv3"].sort_values("r_heldout", ascending=False).iloc[0]
    return "conv3", int(t["unit"]), float(t["r_heldout"])


def _page(client, path: str) -> str:
    r = _route(client, path)
    assert r.status_code == 200, path
    return json.dumps(r.get_json())


def _find(tree, component_id: str):
    """The props of the component with ``component_id`` in a serialised layout."""
    if isinstance(tree, dict):
        props = tree.get("props")
        if isinstance(props, dict) and props.get("id") == component_id:
            return props
        for v in tree.values():
            got = _find(v, component_id)
            if got is not None:
                return got
    elif isinstance(tree, list):
        for v in tree:
            got = _find(v, component_id)
            if got is not None:
                return got
    return None


def _poll_until_done(client, outputs, inputs, state, poll_id: str, timeout_s: float = 180.0) -> dict:
    """Fire the card's polling input (as its dcc.Interval does) until the callback stops polling;
    the last response."""
    deadline = time.monotonic() + timeout_s
    for tick in range(1, 10_000):
        body = {
            "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
            "outputs": [{"id": i, "property": p} for i, p in outputs],
            "inputs": [{"id": i, "property": p, "value": tick if i == poll_id else v} for i, p, v in inputs],
            "state": [{"id": i, "property": p, "value": v} for i, p, v in state],
            "changedPropIds": [f"{poll_id}.n_intervals"],
        }
        got = client.post("/_dash-update-component", json=body).get_json()["response"]
        if got[poll_id]["disabled"] is True:
            return got
        assert time.monotonic() < deadline, "the background job did not finish"
        time.sleep(0.2)
    raise AssertionError("unreachable")


def _text(tree) -> str:
    out: list[str] = []

    def walk(t) -> None:
        if isinstance(t, str):
            out.append(t)
        elif isinstance(t, dict):  # a component, or a component's props
            walk((t["props"] if "props" in t else t).get("children"))
        elif isinstance(t, list):
            for v in t:
                walk(v)

    walk(tree)
    return " ".join(out)


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------
def test_strf_figures_are_valid_and_put_the_weights_where_they_belong():
    from interp.analysis.strf import STRFConfig, mel_centres_hz
    from interp.report.figures.portrait_charts import strf_edges, strf_figure, strf_gallery_figure, strf_r_figure
    from soundnet.errors import ParameterError

    hz = mel_centres_hz(STRFConfig(n_mels=8))
    w = np.zeros((4, 8))
    w[3, 6] = 2.0  # late in the field, high band
    w[0, 1] = -1.0
    fig = strf_figure(w, 0.01, hz, r_heldout=0.42)
    go.Figure(fig.to_dict())  # full validation
    hm = fig.data[0]
    t, f = strf_edges(4, 0.01, hz)
    assert np.allclose(hm.x, [0.0, 0.01, 0.02, 0.03, 0.04]) and np.allclose(hm.x, t)
    assert len(hm.y) == 9 and np.all(np.diff(hm.y) > 0) and np.all((f[:-1] < hz) & (hz < f[1:]))
    z = np.asarray(hm.z)
    assert z.shape == (8, 4) and z[6, 3] == 2.0 and z[1, 0] == -1.0  # rows: bands, columns: lags
    assert hm.zmid == 0 and hm.zmin == -2.0 and hm.zmax == 2.0 and fig.layout.yaxis.type == "log"
    assert "held-out r = 0.42" in fig.layout.annotations[0].text
    gal = strf_gallery_figure([("a", w), ("b", -w), ("c", w)], 0.01, hz, columns=2)
    go.Figure(gal.to_dict())
    assert len(gal.data) == 3 and [a.text for a in gal.layout.annotations] == ["a", "b", "c"]
    go.Figure(strf_r_figure(["conv2"], [np.array([0.1, np.nan, 0.5])]).to_dict())
    with pytest.raises(ParameterError, match="'mel_hz' parameter of strf_figure"):
        strf_figure(w, 0.01, hz[:-1])
    with pytest.raises(ParameterError, match="'items' parameter of strf_gallery_figure"):
        strf_gallery_figure([], 0.01, hz)


# --------------------------------------------------------------------------------------------
# pages
# --------------------------------------------------------------------------------------------
def test_unit_page_shows_the_strf_card_with_the_unit_r(client, strf_run, table, best_unit):
    from dashboard import ids

    layer, unit, r = best_unit
    tree = _route(client, f"/unit/{layer}/{unit}").get_json()
    card = _find(tree, ids.UNIT_STRF_CARD)
    assert card is not None, "no STRF card"
    text = _text(card)
    assert "Spectro-temporal receptive field" in text and "not linear in the spectrogram" in text
    assert _find(tree, ids.UNIT_STRF_R)["children"] == f"{r:.2f}"
    fig = _find(tree, ids.UNIT_STRF_GRAPH)["figure"]
    z = _array(fig["data"][0]["z"]).astype(float)
    f = pd.read_parquet(strf_run / "strf_filters.parquet")
    part = f[(f["layer"] == layer) & (f["unit"] == unit)]
    want = np.zeros((int(part["mel"].max()) + 1, int(part["lag"].max()) + 1))
    want[part["mel"], part["lag"]] = part["weight"]
    assert np.allclose(z, want, rtol=1e-6, atol=1e-12)  # the unit's own filter, bands as rows
    assert f"/export/unit/{layer}/{unit}/strf-filter.png" in json.dumps(card) and f"/strf/{layer}" in json.dumps(card)
    # another unit's page shows its own r
    other = table[(table["layer"] == "conv2")].iloc[3]
    t2 = _route(client, f"/unit/conv2/{int(other['unit'])}").get_json()
    assert _find(t2, ids.UNIT_STRF_R)["children"] == f"{float(other['r_heldout']):.2f}"
    # a layer without STRFs says so in the card
    assert "No STRF of conv4" in _text(_find(_route(client, "/unit/conv4/0").get_json(), ids.UNIT_STRF_CARD))


def test_gallery_lists_units_by_held_out_r_and_links_them(client, table):
    from dashboard import ids
    from dashboard.portrait_views import GALLERY_K

    for layer in STRF_LAYERS:
        tree = _route(client, f"/strf/{layer}").get_json()
        grid = _find(tree, ids.STRF_GALLERY)
        links = [
            c["props"]["children"][0]["props"]["children"][1]["props"]["href"] for c in grid["children"]
        ]  # each tile's header: rank, link, r
        units = [int(h.rsplit("/", 1)[1]) for h in links]
        assert all(h.startswith(f"/unit/{layer}/") for h in links)
        part = table[table["layer"] == layer]
        want = part.sort_values(["r_heldout", "unit"], ascending=[False, True])["unit"].head(GALLERY_K).tolist()
        assert units == want and len(units) == min(GALLERY_K, len(part))
        rs = part.set_index("unit").loc[units, "r_heldout"].to_numpy()
        assert np.all(np.diff(rs) <= 0)
    assert "No STRFs of conv5" in _page(client, "/strf/conv5")
    # the overview links to each layer's gallery
    page = _page(client, "/")
    assert all(f"/strf/{layer}" in page for layer in STRF_LAYERS) and "/export/overview/strf.png" in page


def test_strf_figures_export_in_every_format(client, best_unit):
    layer, unit, _ = best_unit
    magic = {"png": b"\x89PNG", "svg": b"<svg", "pdf": b"%PDF", "html": b"<html"}
    for fmt in ("html", "svg"):  # kaleido is slow on the busy machine: two formats each
        for url in (
            f"/export/unit/{layer}/{unit}/strf-filter.{fmt}",
            f"/export/layer/{layer}/strf-gallery.{fmt}",
            f"/export/overview/strf.{fmt}",
        ):
            r = client.get(url)
            assert r.status_code == 200, url
            assert magic[fmt] in r.data[:2000], url
    r = client.get(f"/export/layer/{layer}/strf-gallery.png")
    assert r.status_code == 200 and r.data.startswith(magic["png"])
    for bad in (
        "/export/layer/conv5/strf-gallery.png",  # no STRFs of conv5
        "/export/layer/conv99/strf-gallery.png",
        "/export/layer/conv3/histogram.png",
        "/export/unit/conv4/0/strf-filter.png",
    ):
        assert client.get(bad).status_code == 404, bad


def test_run_without_strf_tables_shows_no_card_and_no_error(strf_run, tmp_path):
    import shutil

    from dashboard import ids
    from dashboard.app import create_app
    from dashboard.views import unit_figure_names

    bare = tmp_path / "run"
    shutil.copytree(strf_run, bare, ignore=shutil.ignore_patterns("strf*.parquet", "cache"))
    app = create_app(bare)
    client = app.server.test_client()
    tree = _route(client, "/unit/conv3/0").get_json()
    assert _find(tree, ids.UNIT_STRF_CARD) is None
    page = json.dumps(tree)
    assert "Spectro-temporal" not in page and "Traceback" not in page
    assert "Spectro-temporal" not in _page(client, "/")
    assert "No STRFs in this run" in _page(client, "/strf/conv3")
    from dashboard.data import CONFIG_KEY

    assert "strf-filter" not in unit_figure_names(app.server.config[CONFIG_KEY], "conv3", 0)
    assert client.get("/export/unit/conv3/0/strf-filter.png").status_code == 404
    assert client.get("/export/overview/strf.png").status_code == 404


# --------------------------------------------------------------------------------------------
# in Chromium
# --------------------------------------------------------------------------------------------
@pytest.mark.browser
def test_browser_strf_card_and_gallery(browser, strf_run, best_unit):  # noqa: F811
    from dashboard import hear
    from dashboard.app import create_app
    from dashboard.data import CONFIG_KEY
    from interp.analysis.visualize import VisualizeConfig

    app = create_app(strf_run)
    hear.set_visualize_config(app.server.config[CONFIG_KEY], VisualizeConfig(n_seeds=2, steps=6))
    browser.start_server(app, port=_free_port())
    driver = browser.driver
    SHOTS.mkdir(parents=True, exist_ok=True)
    layer, unit, r = best_unit

    browser.server_url = browser.server.url + f"/unit/{layer}/{unit}"
    browser.wait_for_element("#unit-strf-graph .js-plotly-plot", timeout=60)
    browser.wait_for_contains_text("#unit-strf-r", f"{r:.2f}", timeout=30)
    drawn = driver.execute_script(
        """const gd = document.querySelector('#unit-strf-graph .js-plotly-plot');
        return {type: gd._fullData[0].type, img: gd.querySelectorAll('.hm image, .heatmaplayer image').length,
                log: gd._fullLayout.yaxis.type};"""
    )
    assert drawn == {"type": "heatmap", "img": 1, "log": "log"}
    time.sleep(1.0)
    card = driver.find_element("css selector", "#unit-strf-card")
    driver.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -70);", card)  # below the top bar
    time.sleep(0.5)
    card.screenshot(str(SHOTS / "unit_strf_card.png"))
    assert (SHOTS / "unit_strf_card.png").stat().st_size > 10_000

    # on demand: what it wants to hear, and the attribution of the top clip
    for button, result, name in (
        ("#unit-hear-button", "#unit-hear-seeds .js-plotly-plot", "unit_hear_card"),
        ("#unit-attr-button", "#unit-attr-graph .js-plotly-plot", "unit_attr_card"),
    ):
        el = driver.find_element("css selector", button)
        driver.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -200);", el)
        el.click()
        browser.wait_for_element(result, timeout=120)
        time.sleep(1.0)
        card = driver.find_element("css selector", "#" + name.replace("_", "-"))
        driver.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -70);", card)
        time.sleep(0.5)
        card.screenshot(str(SHOTS / f"{name}.png"))
    audio = [a.get_attribute("src") for a in driver.find_elements("css selector", "#unit-attr-card audio")]
    assert any(src.endswith(".top.wav") for src in audio) and any(src.endswith(".complement.wav") for src in audio)
    got = _fetch_in_browser(driver, audio[0])
    assert got.get("status") == 200 and got["head"] == "RIFF"

    browser.server_url = browser.server.url + f"/strf/{layer}"
    browser.wait_for_element("#strf-gallery .js-plotly-plot", timeout=60)
    n = driver.execute_script("return document.querySelectorAll('#strf-gallery .js-plotly-plot').length")
    assert n == 24
    time.sleep(1.5)
    driver.set_window_size(1440, min(6000, driver.execute_script("return document.body.scrollHeight") + 40))
    time.sleep(0.5)
    driver.save_screenshot(str(SHOTS / "gallery.png"))
    link = driver.find_element("css selector", "#strf-gallery .strf-unit-link")
    href = link.get_attribute("href")
    assert href.endswith(f"/unit/{layer}/{unit}")
    driver.set_window_size(1440, 1000)
    link.click()
    browser.wait_for_element("#unit-strf-graph .js-plotly-plot", timeout=60)
    assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]


# --------------------------------------------------------------------------------------------
# on demand: what it wants to hear, attribution
# --------------------------------------------------------------------------------------------
def test_what_it_wants_to_hear_and_attribution_on_demand(strf_run, tmp_path):
    import shutil

    from dashboard import hear, ids
    from dashboard.app import create_app
    from dashboard.data import CONFIG_KEY
    from interp.analysis.visualize import VisualizeConfig, natural_best

    run = tmp_path / "run"  # a copy: the cache written here is this test's
    shutil.copytree(strf_run, run, ignore=shutil.ignore_patterns("cache"))
    app = create_app(run)
    client = app.server.test_client()
    data = app.server.config[CONFIG_KEY]
    hear.set_visualize_config(data, VisualizeConfig(n_seeds=2, steps=6))
    layer, unit = "conv2", 3
    store = [(ids.UNIT_STORE, "data", {"layer": layer, "unit": unit})]
    page = _route(client, f"/unit/{layer}/{unit}").get_json()
    assert _find(page, ids.UNIT_HEAR_BUTTON)["children"].startswith("Compute")
    assert _find(page, ids.UNIT_ATTR_CARD) is not None
    # nothing is computed by the page, the routes or the exports before a click
    hear_out = [
        (ids.UNIT_HEAR_RESULT, "children"),
        (ids.UNIT_HEAR_BUTTON, "children"),
        (ids.UNIT_HEAR_POLL, "disabled"),
    ]
    hear_in = [(ids.UNIT_HEAR_BUTTON, "n_clicks", 0), (ids.UNIT_HEAR_POLL, "n_intervals", None)]
    first = _callback(client, hear_out, hear_in, store).get_json()
    assert _find(first["response"][ids.UNIT_HEAR_RESULT], ids.UNIT_HEAR_ACTIVATION) is None
    assert client.get(f"/hear/{layer}/{unit}/seed0.wav").status_code == 404
    assert client.get(f"/export/unit/{layer}/{unit}/hear-seed-0.png").status_code == 404
    assert not (run / "cache" / "visualize").exists()

    # a click starts a background job and the card polls until it is done
    clicked = [(ids.UNIT_HEAR_BUTTON, "n_clicks", 1), (ids.UNIT_HEAR_POLL, "n_intervals", None)]
    started = _callback(client, hear_out, clicked, store).get_json()["response"]
    assert "in the background" in json.dumps(started[ids.UNIT_HEAR_RESULT])
    assert started[ids.UNIT_HEAR_POLL]["disabled"] is False
    got = _poll_until_done(client, hear_out, clicked, store, ids.UNIT_HEAR_POLL)
    body = got[ids.UNIT_HEAR_RESULT]["children"]
    vis = hear.visualization(data, layer, unit, compute=False)
    assert vis is not None and len(vis.waveforms) == 2
    nat_v, _, nat_clip = natural_best(run, layer, unit)  # the reference, read from the run
    b = int(np.argmax(vis.vmean))
    assert _find(body, ids.UNIT_HEAR_ACTIVATION)["children"] == f"{vis.vmean[b]:.3g}"
    assert _find(body, ids.UNIT_HEAR_RELATIVE)["children"] == f"{vis.vmean[b] / nat_v:.2f}×"
    assert f"/clip/{nat_clip}" in json.dumps(body)
    for i in range(2):
        r = client.get(f"/hear/{layer}/{unit}/seed{i}.wav")
        assert r.status_code == 200 and r.data[:4] == b"RIFF"
    assert client.get(f"/hear/{layer}/{unit}/seed2.wav").status_code == 404
    assert client.get(f"/export/unit/{layer}/{unit}/hear-seed-1.svg").data.lstrip()[:4] in (b"<svg", b"<?xm")
    # shown at once (no recomputation) on the next visit
    again = _callback(client, hear_out, hear_in, store).get_json()["response"]
    assert _find(again[ids.UNIT_HEAR_RESULT]["children"], ids.UNIT_HEAR_ACTIVATION) is not None
    assert again[ids.UNIT_HEAR_POLL]["disabled"] is True

    # attribution of the top clip: not before the click, then the map and both sounds
    cid = str(data.top_clips(layer, unit, k=6)["clip_id"].iloc[0])
    attr_out = [(ids.UNIT_ATTR_RESULT, "children"), (ids.UNIT_ATTR_POLL, "disabled")]
    poll = (ids.UNIT_ATTR_POLL, "n_intervals", None)
    quiet = _callback(
        client, attr_out, [(ids.UNIT_ATTR_BUTTON, "n_clicks", 0), (ids.UNIT_ATTR_CLIP, "value", 0), poll], store
    )
    assert "Not computed yet" in json.dumps(quiet.get_json())
    assert client.get(f"/hear/{layer}/{unit}/{cid}.top.wav").status_code == 404
    clicked = [(ids.UNIT_ATTR_BUTTON, "n_clicks", 1), (ids.UNIT_ATTR_CLIP, "value", 0), poll]
    started = _callback(client, attr_out, clicked, store).get_json()["response"]
    assert started[ids.UNIT_ATTR_POLL]["disabled"] is False
    done = _poll_until_done(client, attr_out, clicked, store, ids.UNIT_ATTR_POLL)
    res = done[ids.UNIT_ATTR_RESULT]["children"]
    fig = _find(res, ids.UNIT_ATTR_GRAPH)["figure"]
    assert [t.get("name") for t in fig["data"]][-1] == "attribution" and len(fig["layout"]["shapes"]) >= 1
    a = hear.attribution_cached(data, layer, unit, cid)
    assert a is not None and len(fig["layout"]["shapes"]) == int(a.top_mask.sum())
    import soundfile as sf

    sounds = {}
    for kind in ("top", "complement"):
        r = client.get(f"/hear/{layer}/{unit}/{cid}.{kind}.wav")
        assert r.status_code == 200 and r.data[:4] == b"RIFF"
        sounds[kind] = sf.read(io.BytesIO(r.data))[0]
    for kind, want in (("top", a.top_audio), ("complement", a.complement_audio)):  # the cached sounds, as WAV
        assert len(sounds[kind]) == len(want)
        assert np.allclose(sounds[kind], np.clip(want, -1, 1), atol=1e-4)
    clip = data.audio(cid)
    mid = slice(len(clip) // 4, 3 * len(clip) // 4)  # and they add up to the clip (away from its edges)
    assert np.allclose(a.top_audio[mid] + a.complement_audio[mid], clip[mid], atol=2e-3)
    assert client.get(f"/export/unit/{layer}/{unit}/hear-attribution-0.html").status_code == 200
    assert client.get(f"/hear/{layer}/{unit}/{cid}.other.wav").status_code == 404
    assert client.get(f"/hear/{layer}/{unit}/..%2Fx.top.wav").status_code == 404
