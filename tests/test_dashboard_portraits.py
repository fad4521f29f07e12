"""Unit portraits on the dashboard: the STRF card, the layer gallery, their exports.

A run of 12 demo clips with STRFs of conv2 and conv3 (interp.analysis.strf.run_strf); the
Chromium fixture and the request helpers are tests/test_dashboard.py's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from tests.test_dashboard import _array, _callback, _free_port, _route, browser  # noqa: F401  (browser: a fixture)

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
    from dashboard.app import create_app

    app = create_app(strf_run)
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
