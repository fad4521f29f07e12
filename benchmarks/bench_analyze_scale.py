"""``analyze`` at scale: wall time and peak memory for N/10 and N clips, and equality with the
in-memory path.

Writes synthetic run directories in the run-directory format (``run.json``, ``clips.parquet``,
``activations/<layer>.vmean.parquet`` for all 3,433 units, and the heads' ``mean`` logits), N/10
and N clips, 10 categories, clips nested in groups of 4, a few planted selective units, then
runs ``analyze`` on each in a fresh process (the nuisance report is skipped: there is no audio)
and prints wall time, CPU time (what other jobs on a shared machine do not move) and peak
resident memory, and their ratios. With ``--check-clips`` (default
50,000) it also analyses a run of that size in memory (every layer's table read whole, as before
the out-of-core path) and checks that the selectivity table and the unit labels are identical.

    RESULT time_ratio=<t(N) / t(N/10), wall> cpu_ratio=<the same, CPU time> peak_gb=<peak at N> equal=<true|false>

With ``--dashboard`` the N-clip run is then served by the dashboard: its clips are pointed at the
demo corpus's recordings (cyclically, with their real durations), a ``topk.parquet`` of each
unit's 16 highest-``vmean`` clips is computed by a streaming pass over the tables, and
``benchmarks/bench_dashboard.py --in-place --target-ms 1000`` times unit pages cold and warm on
it (its peak memory printed too).

Usage: ``python benchmarks/bench_analyze_scale.py [--clips 1000000] [--memory-gb 4]
[--check-clips 50000] [--keep DIR] [--dashboard]``. The default N writes about 14 GB of Parquet
and takes long on 2 cores; ``--clips 100000`` gives the ratio in minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from interp.run.store import FORMAT_VERSION, activation_file, unit_columns, write_parquet  # noqa: E402
from soundnet.model import LAYERS, SPEC_BY_NAME  # noqa: E402

CATEGORIES = [f"cat{i}" for i in range(10)]
_ROWS = 8192  # rows written per row group


def write_synthetic_run(path: Path, n_clips: int, *, seed: int = 0) -> None:
    """A run directory of ``n_clips`` synthetic clips (no audio) that ``analyze`` reads."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    (path / "activations").mkdir(exist_ok=True)
    labels = np.asarray(CATEGORIES)[rng.integers(0, len(CATEGORIES), size=n_clips)]
    ids = np.asarray([f"c{i:010d}" for i in range(n_clips)])
    clips = pd.DataFrame(
        {
            "clip_id": ids,
            "path": [f"/nonexistent/{i}.wav" for i in range(n_clips)],
            "label": labels,
            "fold": -1,
            "start_s": 0.0,
            "end_s": np.nan,
            "duration_s": rng.uniform(1.0, 10.0, size=n_clips),
            "sample_rate_hz": 22050,
            "status": "ok",
            "note": "",
            "order": np.arange(n_clips),
            "group": [f"g{i // 4}" for i in range(n_clips)],
        }
    )
    write_parquet(path / "clips.parquet", clips)
    units = {layer: SPEC_BY_NAME[layer].out_channels for layer in LAYERS}
    for layer in LAYERS:
        n = units[layer]
        stats = ("vmean", "mean") if layer in ("conv8", "conv8_2") else ("vmean",)
        for stat in stats:
            schema = pa.schema(
                [pa.field("clip_id", pa.string())] + [pa.field(c, pa.float32()) for c in unit_columns(n)]
            )
            with pq.ParquetWriter(path / "activations" / activation_file(layer, stat), schema) as w:
                for r0 in range(0, n_clips, _ROWS):
                    r1 = min(n_clips, r0 + _ROWS)
                    x = rng.gamma(2.0, 0.5, size=(r1 - r0, n)).astype(np.float32)
                    for j, cat in enumerate(CATEGORIES[: min(10, n)]):  # planted: unit j fires for cat j
                        x[labels[r0:r1] == cat, j] += 1.5
                    cols = [pa.array(ids[r0:r1])] + [pa.array(x[:, j]) for j in range(n)]
                    w.write_table(pa.Table.from_arrays(cols, schema=schema))
    meta = {
        "format": FORMAT_VERSION,
        "complete": True,
        "created": "synthetic",
        "finished": f"synthetic-{n_clips}-{seed}",
        "layers": list(LAYERS),
        "units": units,
        "settings": {"layers": list(LAYERS)},
        "n_ok": n_clips,
        "n_failed": 0,
    }
    (path / "run.json").write_text(json.dumps(meta))


def prepare_for_dashboard(path: Path, *, k: int = 16) -> None:
    """Give a synthetic run what the dashboard's unit pages read besides the analysis tables.

    Clip paths point at the demo corpus's recordings (cyclically; ``duration_s`` their real
    durations) so that top-clip cards can be heard and traced. One streaming pass per layer over
    the ``vmean`` table (a row group at a time) writes the ``max`` and ``peak_s`` tables the
    recorder would (``max`` is 1.5 x ``vmean`` and ``peak_s`` the clip's middle, both on a grid
    of 256 values so that Parquet's dictionary encoding keeps them at about a byte a value) and
    keeps each unit's running top ``k`` for ``topk.parquet``.
    """
    import soundfile as sf

    from interp.corpus.corpora import demo_dir

    audio = sorted((demo_dir() / "audio").rglob("*.flac"))
    seconds = np.asarray([sf.info(str(f)).duration for f in audio])
    clips = pd.read_parquet(path / "clips.parquet")
    pick = np.arange(len(clips)) % len(audio)
    clips["path"] = [str(audio[i]) for i in pick]
    clips["duration_s"] = seconds[pick]
    write_parquet(path / "clips.parquet", clips)
    duration = dict(zip(clips["clip_id"], clips["duration_s"], strict=True))
    rows = []
    for layer in LAYERS:
        pf = pq.ParquetFile(path / "activations" / activation_file(layer, "vmean"))
        n = SPEC_BY_NAME[layer].out_channels
        cols = unit_columns(n)
        schema = pa.schema([pa.field("clip_id", pa.string())] + [pa.field(c, pa.float32()) for c in cols])
        best_v = np.full((k, n), -np.inf, dtype=np.float32)
        best_id = np.full((k, n), "", dtype=object)
        with (
            pq.ParquetWriter(path / "activations" / activation_file(layer, "max"), schema) as w_max,
            pq.ParquetWriter(path / "activations" / activation_file(layer, "peak_s"), schema) as w_peak,
        ):
            for g in range(pf.num_row_groups):
                t = pf.read_row_group(g)
                x = np.column_stack([t.column(c).to_numpy() for c in cols])
                ids = np.asarray(t.column("clip_id").to_pylist(), dtype=object)
                mx = (np.round(np.clip(1.5 * x, 0.0, 16.0) * 16.0) / 16.0).astype(np.float32)
                mid = np.round(0.5 * np.asarray([duration[c] for c in ids]) * 32.0) / 32.0
                peak = np.broadcast_to(mid[:, None].astype(np.float32), x.shape)
                for w, v in ((w_max, mx), (w_peak, peak)):
                    arrays = [t.column("clip_id")] + [pa.array(v[:, j]) for j in range(n)]
                    w.write_table(pa.Table.from_arrays(arrays, schema=schema))
                v = np.concatenate([best_v, x], axis=0)
                top = np.argpartition(-v, k - 1, axis=0)[:k]
                idx = np.concatenate([best_id, np.broadcast_to(ids[:, None], x.shape)], axis=0)
                best_v, best_id = np.take_along_axis(v, top, 0), np.take_along_axis(idx, top, 0)
        order = np.argsort(-best_v, axis=0, kind="stable")
        best_v, best_id = np.take_along_axis(best_v, order, 0), np.take_along_axis(best_id, order, 0)
        for unit in range(n):
            for rank in range(k):
                cid = best_id[rank, unit]
                peak_s = 0.5 * duration[cid]
                rows.append(
                    (layer, unit, rank, cid, best_v[rank, unit], peak_s, max(0.0, peak_s - 0.05), peak_s + 0.05)
                )
    topk = pd.DataFrame(rows, columns=["layer", "unit", "rank", "clip_id", "value", "peak_s", "start_s", "end_s"])
    f32 = {c: "float32" for c in ("value", "peak_s", "start_s", "end_s")}
    write_parquet(path / "topk.parquet", topk.astype({"unit": "int32", "rank": "int32", **f32}))


_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from interp.analysis import selectivity as S

phases = {{}}
for name in ("run_selectivity", "run_unit_labels", "run_output_correlations"):  # analyze's stages
    def timed(*a, _f=getattr(S, name), _n=name, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return _f(*a, **k)
        finally:
            phases[_n] = phases.get(_n, 0.0) + time.perf_counter() - t
            cpu[_n] = cpu.get(_n, 0.0) + time.process_time() - c
    setattr(S, name, timed)
cpu = {{}}
t, c = time.perf_counter(), time.process_time()
S.analyze({run!r}, recompute=True, nuisance=False, memory_gb={memory_gb})
wall, cpu_s = time.perf_counter() - t, time.process_time() - c
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print(json.dumps({{"wall": wall, "cpu": cpu_s, "peak": peak, "phases": phases, "cpu_phases": cpu}}))
"""


def _analyze_child(run: Path, memory_gb: float) -> dict:
    """``analyze`` on ``run`` in a fresh process: ``wall`` and ``cpu`` seconds (the process's CPU
    time, all its threads: what other jobs on a shared machine do not move), ``peak`` resident
    GB, and seconds per stage, wall (``phases``) and CPU (``cpu_phases``), timed by wrapping the
    module functions that ``analyze`` calls."""
    code = _CHILD.format(repo=str(REPO), run=str(run), memory_gb=memory_gb)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _equal_to_in_memory(run: Path) -> bool:
    """The out-of-core selectivity table and labels equal the in-memory computation's (floats to
    a relative 1e-9: the sums run in other block shapes)."""
    from interp.analysis import selectivity as S
    from interp.analysis.unitlabels import label_units
    from interp.run.store import open_run

    r = open_run(run)
    blockwise = S.run_selectivity(r, recompute=True, memory_gb=0.05)
    groups = r.ok_clips["group"].astype(str)
    whole = S.compute_selectivity(
        {layer: r.activations(layer, "vmean") for layer in r.layers}, r.ok_clips["label"], groups=groups
    )

    def same(x: pd.DataFrame, y: pd.DataFrame) -> bool:
        try:  # strings and integers exactly, floats to rounding (BLAS sums in other block shapes)
            pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True), rtol=1e-9, atol=1e-12)
        except AssertionError as exc:
            print(f"  differs: {str(exc)[:300]}")
            return False
        return True

    lab_a = S.run_unit_labels(r, write=False, memory_gb=0.05)["unit_labels"]
    lab_b = label_units(
        whole, acts={layer: r.activations(layer, "vmean") for layer in r.layers}, labels=r.labels, groups=groups
    )
    return same(blockwise, whole) and same(lab_a, lab_b)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1_000_000)
    ap.add_argument("--memory-gb", type=float, default=4.0)
    ap.add_argument("--check-clips", type=int, default=50_000, help="0: skip the equality check")
    ap.add_argument("--keep", type=Path, help="write the runs here and keep them")
    ap.add_argument("--dashboard", action="store_true", help="then time dashboard unit pages on the N-clip run")
    args = ap.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench_analyze_"))
    try:
        results = {}
        for n in (args.clips // 10, args.clips):
            run = root / f"run_{n}"
            if not (run / "run.json").is_file():
                t0 = time.perf_counter()
                write_synthetic_run(run, n)
                print(f"wrote {n:,} clips x 3,433 units in {time.perf_counter() - t0:.0f} s")
            load = os.getloadavg()[0]
            res = results[n] = _analyze_child(run, args.memory_gb)
            load = max(load, os.getloadavg()[0])
            split = ", ".join(
                f"{k.removeprefix('run_')} {v:.0f} s (CPU {res['cpu_phases'][k]:.0f} s)"
                for k, v in res["phases"].items()
            )
            print(
                f"analyze {n:>9,} clips: {res['wall']:8.1f} s (CPU {res['cpu']:.1f} s), peak {res['peak']:5.2f} GB "
                f"(budget {args.memory_gb:g} GB); {split}; load average {load:.1f} at start/end on "
                f"{os.cpu_count()} CPUs"
            )
        small, big = results[args.clips // 10], results[args.clips]
        t_ratio, cpu_ratio, m_big = big["wall"] / small["wall"], big["cpu"] / small["cpu"], big["peak"]
        print(
            f"time ratio N / (N/10) = {t_ratio:.2f} wall, {cpu_ratio:.2f} CPU (target <= 11); "
            f"memory ratio {m_big / small['peak']:.2f}"
        )
        print(
            "  per stage, wall (CPU): "
            + ", ".join(
                f"{k.removeprefix('run_')} {big['phases'][k] / small['phases'][k]:.2f} "
                f"({big['cpu_phases'][k] / small['cpu_phases'][k]:.2f})"
                for k in big["phases"]
            )
        )
        if args.dashboard:
            run = root / f"run_{args.clips}"
            t0 = time.perf_counter()
            prepare_for_dashboard(run)
            print(f"prepared {args.clips:,} clips for the dashboard in {time.perf_counter() - t0:.0f} s")
            code = (
                "import resource, runpy, sys\n"
                f"sys.argv = ['bench_dashboard.py', '--run', {str(run)!r}, '--in-place', '--target-ms', '1000']\n"
                f"try:\n    runpy.run_path({str(REPO / 'benchmarks' / 'bench_dashboard.py')!r}, run_name='__main__')\n"
                "finally:\n    print(f'dashboard process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB')\n"
            )
            subprocess.run([sys.executable, "-c", code], check=True)
        equal: bool | None = None
        if args.check_clips:
            run = root / f"check_{args.check_clips}"
            if not (run / "run.json").is_file():
                write_synthetic_run(run, args.check_clips, seed=1)
            equal = _equal_to_in_memory(run)
            print(f"{args.check_clips:,} clips: out-of-core tables equal to the in-memory path: {equal}")
        print(
            "RESULT "
            + json.dumps(
                {
                    "time_ratio": round(t_ratio, 3),
                    "cpu_ratio": round(cpu_ratio, 3),
                    "peak_gb": round(m_big, 3),
                    "equal": equal,
                }
            )
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
