"""Server-side time to build a unit page of the dashboard, cold and warm, in one run.

On a run of the built-in demo corpus (recorded and analysed first if ``--run`` does not exist), a
copy of the run without its ``cache/`` folder is served by :func:`dashboard.app.create_app` and
20 units spread over conv1..conv7 (fixed seed) are requested through the Dash pages router with
Flask's test client: the time is everything the server does for ``/unit/<layer>/<unit>`` (layout,
figures, JSON response), not the browser's drawing.

(a) cold: first visit, nothing cached (each top clip needs a forward pass and a spectrogram);
(b) warm: a fresh app on the same run directory (no in-memory memo), traces and spectrograms
    read from ``cache/``: the dashboard's normal case;
(c) revisit: the same app again (memo warm).

It prints the median of each over the 20 units, the ratio a/b (what the cache buys), the AUROC
interval callback that follows each page, and the target check (b under 300 ms). The last line
is machine-readable::

    RESULT warm_median_ms=<b> warm_cpu_median_ms=<b, CPU> cold_median_ms=<a> cold_over_warm=<a/b> revisit_median_ms=<c> target_ms=300 pass=<bool>

(``warm_cpu_median_ms``, this process's CPU time for (b), is printed too: on a shared, loaded
machine the wall times grow with the load and the CPU times do not.)

Usage: ``python benchmarks/bench_dashboard.py [--run runs/demo] [--units 20] [--seed 0]
[--in-place] [--target-ms 300]``. ``--in-place`` serves ``--run`` itself after deleting its
``cache/`` folder, instead of a copy (for runs too large to copy, such as the 1,000,000-clip run
of ``bench_analyze_scale.py --dashboard``, whose target is 1,000 ms).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TARGET_MS = 300.0


def _ensure_run(run: Path) -> None:
    from interp.analysis.selectivity import analyze
    from interp.recording import record_corpus

    if not (run / "run.json").is_file():
        print(f"recording the demo corpus into {run} ...", flush=True)
        record_corpus("demo", run, progress=False)
    if not (run / "selectivity.parquet").is_file():
        print(f"analysing {run} ...", flush=True)
        analyze(run)


def _router_body(path: str) -> dict:
    return {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [{"id": "_pages_content", "property": "children"}, {"id": "_pages_store", "property": "data"}],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": path},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
        "state": [],
    }


def _intervals_body(layer: str, unit: int) -> dict:
    from dashboard import ids

    return {
        "output": f"..{ids.UNIT_METRICS_TABLE}.data...{ids.UNIT_METRICS_NOTE}.children..",
        "outputs": [
            {"id": ids.UNIT_METRICS_TABLE, "property": "data"},
            {"id": ids.UNIT_METRICS_NOTE, "property": "children"},
        ],
        "inputs": [{"id": ids.UNIT_STORE, "property": "data", "value": {"layer": layer, "unit": unit}}],
        "changedPropIds": [f"{ids.UNIT_STORE}.data"],
        "state": [{"id": ids.UNIT_METRICS_NOTE, "property": "children", "value": "computing…"}],
    }


def _time_pages(client, units: list[tuple[str, int]], cpu: list[float] | None = None) -> list[float]:
    """Wall-clock seconds per page (and, into ``cpu``, this process's CPU seconds per page)."""
    out = []
    for layer, unit in units:
        c0, t0 = time.process_time(), time.perf_counter()
        r = client.post("/_dash-update-component", json=_router_body(f"/unit/{layer}/{unit}"))
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
        if r.status_code != 200 or b"unit-topk-grid" not in r.data:
            raise RuntimeError(f"/unit/{layer}/{unit} failed: {r.status_code} {r.data[:200]!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "demo")
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-place", action="store_true", help="serve --run itself, its cache/ deleted first")
    ap.add_argument("--target-ms", type=float, default=TARGET_MS)
    args = ap.parse_args(argv)
    target_ms = args.target_ms

    _ensure_run(args.run)
    from dashboard.app import create_app
    from interp.run.store import open_run
    from soundnet.model import CONV_LAYERS

    run = open_run(args.run)
    rng = np.random.default_rng(args.seed)
    layers = [layer for layer in CONV_LAYERS if layer in run.layers]
    units = []
    for i in range(args.units):
        layer = layers[i % len(layers)]
        units.append((layer, int(rng.integers(run.n_units(layer)))))

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        copy = Path(tmp) / "run"
        if args.in_place:
            copy = args.run
            shutil.rmtree(copy / "cache", ignore_errors=True)
        else:
            shutil.copytree(args.run, copy, ignore=shutil.ignore_patterns("cache", "shards"))
        t0 = time.perf_counter()
        app = create_app(copy)
        startup = time.perf_counter() - t0
        client = app.server.test_client()
        cold = _time_pages(client, units)
        fresh = create_app(copy)
        fclient = fresh.server.test_client()
        warm_cpu: list[float] = []
        warm = _time_pages(fclient, units, warm_cpu)
        revisit = _time_pages(fclient, units)
        intervals = []
        for layer, unit in units:
            t0 = time.perf_counter()
            r = fclient.post("/_dash-update-component", json=_intervals_body(layer, unit))
            intervals.append(time.perf_counter() - t0)
            assert r.status_code == 200, r.data[:200]

    ms = lambda xs: 1000.0 * statistics.median(xs)  # noqa: E731
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(
        f"run: {args.run} ({len(run.ok_clips)} clips); {len(units)} units over {', '.join(layers)}; "
        f"machine load {load:.1f} per core (wall times grow with it; CPU times do not)"
    )
    print(f"    app start-up (run-level tables read and indexed) {startup:.1f} s")
    print(f"(a) cold page build     median {ms(cold):8.1f} ms  (max {1000 * max(cold):.0f} ms)")
    print(
        f"(b) warm page build     median {ms(warm):8.1f} ms  (max {1000 * max(warm):.0f} ms; CPU {ms(warm_cpu):.1f} ms)"
    )
    print(f"(c) revisit (memo warm) median {ms(revisit):8.1f} ms")
    print(f"    AUROC interval callback median {ms(intervals):.1f} ms (after the page is shown)")
    print(
        f"    cold / warm = {ms(cold) / ms(warm):.1f}x; target warm < {target_ms:.0f} ms: "
        f"{'PASS' if ms(warm) < target_ms else 'FAIL'}"
    )
    print(
        f"RESULT warm_median_ms={ms(warm):.1f} warm_cpu_median_ms={ms(warm_cpu):.1f} cold_median_ms={ms(cold):.1f} cold_over_warm={ms(cold) / ms(warm):.2f} "
        f"revisit_median_ms={ms(revisit):.1f} target_ms={target_ms:.0f} pass={ms(warm) < target_ms}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
