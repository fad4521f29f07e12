"""Recording throughput of the local engine and the Ray engine, and what an AudioSet-scale run costs.

Measured in this one run, on this machine: ``record_corpus`` (local engine) and
``record_corpus_ray`` (a local Ray instance with the same CPUs) on

(a) the built-in demo corpus (174 clips, 1.7 s on average), and
(b) 10 s excerpts of the long corpus, one every second (70 clips, AudioSet's clip length),

each in a fresh run directory. Prints x real time (audio seconds per wall second) for each, the
ratio Ray / local, the CPU cost of (a) and (b) in audio seconds per CPU-second (the local engine's
lanes, one per CPU, are threads of this process, so the whole cost is counted and does not depend
on what else runs on the machine), and the
core-hours and wall-clock time that 2 million 10 s clips (AudioSet, 5,556 hours of audio) would
take at that per-core rate, scaled linearly with cores; and the work that stays on the Ray driver
whatever the cluster size (unpickling and writing each shard, the final merge) per clip, timed on
synthetic summaries of the real shapes.
The last line is machine-readable::

    RESULT local_demo_x=<x> local_10s_x=<x> cpu_demo_x=<x> cpu_10s_x=<x> ray_10s_x=<x>
           ray_over_local=<ratio> core_hours_2M=<h> driver_write_ms=<ms> merge_ms=<ms>

Usage: ``python benchmarks/bench_distributed.py [--cpus 2] [--no-fast] [--skip-ray]``
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from interp.corpus.corpora import clip_id_for, load_corpus, long_dir
from interp.recording import RecordConfig, record_corpus
from soundnet.audio import audio_info

REPO = Path(__file__).resolve().parents[1]
AUDIOSET_CLIPS = 2_000_000
AUDIOSET_CLIP_S = 10.0


def _ten_second_clips(folder: Path, *, hop_s: float) -> pd.DataFrame:
    """Every 10 s excerpt of the long corpus's files, starting every ``hop_s`` seconds."""
    files = load_corpus(folder)
    rows = []
    for path, label in zip(files["path"], files["label"]):
        duration_s = audio_info(path).duration_s
        for start_s in np.arange(0.0, duration_s - AUDIOSET_CLIP_S + 1e-9, hop_s):
            end_s = float(start_s) + AUDIOSET_CLIP_S
            rows.append(
                {
                    "clip_id": clip_id_for(path, float(start_s), end_s),
                    "path": path,
                    "label": label,
                    "fold": -1,
                    "start_s": float(start_s),
                    "end_s": end_s,
                }
            )
    return pd.DataFrame(rows)


def _driver_costs(tmp: Path, *, shard_size: int, n_shards: int) -> dict[str, float]:
    """CPU milliseconds per clip of what the Ray driver does alone: unpickle + write a shard, merge.

    Synthetic summaries of the real shapes (all nine layers, rectified normal values) stand in
    for the model's, so that only the driver's own work is timed.
    """
    from interp.recording.decode import Decoded
    from interp.recording.merge import merge
    from interp.recording.shards import write_shard
    from interp.run.store import HEAD_STATS, STATS
    from soundnet.model import HEAD_LAYERS, LAYERS, SPEC_BY_NAME

    units = {layer: SPEC_BY_NAME[layer].out_channels for layer in LAYERS}
    rng = np.random.default_rng(0)
    run_dir = tmp / f"driver-{shard_size}"
    write_s = 0.0
    for k in range(n_shards):
        orders = range(k * shard_size, (k + 1) * shard_size)
        rows = [
            {
                "clip_id": f"c{o:012d}",
                "path": f"/corpus/{o}.flac",
                "label": "x",
                "fold": -1,
                "start_s": 0.0,
                "end_s": AUDIOSET_CLIP_S,
                "order": o,
                "status": "ok",
            }
            for o in orders
        ]
        decoded = [Decoded(o, f"c{o:012d}", None, "ok", "", AUDIOSET_CLIP_S, 44100) for o in orders]
        summaries = {
            o: {
                layer: {
                    stat: np.maximum(rng.standard_normal(u, dtype=np.float32), 0)
                    for stat in STATS + (HEAD_STATS if layer in HEAD_LAYERS else ())
                }
                for layer, u in units.items()
            }
            for o in orders
        }
        blob = pickle.dumps((decoded, summaries), protocol=pickle.HIGHEST_PROTOCOL)
        cpu0 = time.process_time()
        decoded, summaries = pickle.loads(blob)
        write_shard(run_dir, k, rows, decoded, summaries, units, LAYERS)
        write_s += time.process_time() - cpu0
    cpu0 = time.process_time()
    merge(run_dir, n_shards, LAYERS, units, 16)
    merge_s = time.process_time() - cpu0
    n = shard_size * n_shards
    size_kb = sum(f.stat().st_size for f in (run_dir / "activations").iterdir()) / 1024 / n
    return {"write_ms": 1000 * write_s / n, "merge_ms": 1000 * merge_s / n, "kb_per_clip": size_kb}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs (the local Ray gets as many)")
    ap.add_argument("--no-fast", action="store_true", help="plain PyTorch model in both engines")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    config = RecordConfig(workers=args.cpus, fast=not args.no_fast)  # one lane per CPU
    demo = load_corpus("demo")
    long10 = _ten_second_clips(long_dir(), hop_s=1.0)
    from soundnet import load_soundnet

    model = load_soundnet()
    tmp = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    results: dict[str, float] = {}
    try:
        for name, corpus in (("local_demo", demo), ("local_10s", long10)):
            s = record_corpus(corpus, tmp / name, config=config, model=model, progress=False)
            results[name] = s.times_real_time
            print(f"{name:12s} {s}")
        # CPU cost, independent of what else runs on the machine: the lanes are threads of this
        # process, so every CPU-second of decoding and model is counted by process_time
        for name, corpus, repeats in (("cpu_demo", demo, 1), ("cpu_10s", long10, 3)):
            rates = []
            for r in range(repeats):
                cpu0 = time.process_time()
                s = record_corpus(corpus, tmp / f"{name}-{r}", config=config, model=model, progress=False)
                rates.append(s.audio_s / (time.process_time() - cpu0))
            results[name] = statistics.median(rates)
            print(
                f"{name:12s} {s.audio_s:.0f} s of audio: {results[name]:.1f}x real time per CPU-second "
                f"(median of {repeats})"
            )
        if not args.skip_ray:
            import ray

            from interp.recording.ray_engine import record_corpus_ray

            t = time.perf_counter()
            ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
            print(f"ray.init     {time.perf_counter() - t:.1f} s")
            try:
                for name, corpus in (("ray_demo", demo), ("ray_10s", long10)):
                    s = record_corpus_ray(corpus, tmp / name, config=config, progress=False)
                    results[name] = s.times_real_time
                    print(f"{name:12s} {s}")
            finally:
                ray.shutdown()
        driver = {size: _driver_costs(tmp, shard_size=size, n_shards=n) for size, n in ((128, 8), (1024, 2))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for size, c in driver.items():
        print(
            f"driver, shards of {size:4d}: write {c['write_ms']:.2f} ms/clip, merge {c['merge_ms']:.2f} ms/clip "
            f"(CPU), merged activations {c['kb_per_clip']:.0f} KB/clip"
        )
    per_core = results["cpu_10s"]
    audio_h = AUDIOSET_CLIPS * AUDIOSET_CLIP_S / 3600
    core_h = audio_h / per_core
    print(f"\nper-core rate on 10 s clips: {per_core:.1f}x real time per CPU-second")
    print(
        f"AudioSet scale ({AUDIOSET_CLIPS:,} x {AUDIOSET_CLIP_S:.0f} s = {audio_h:,.0f} h of audio): "
        f"{core_h:,.0f} core-hours; on 64 cores {core_h / 64:,.1f} h, on 512 cores {core_h / 512:,.1f} h"
    )
    for size, c in driver.items():
        print(
            f"  driver with shards of {size}: writing {AUDIOSET_CLIPS * c['write_ms'] / 3.6e6:.1f} h (during the run), "
            f"merge {AUDIOSET_CLIPS * c['merge_ms'] / 3.6e6:.1f} h (after it), "
            f"{AUDIOSET_CLIPS * c['kb_per_clip'] / 1024**2:.0f} GB of merged activations"
        )
    ratio = results.get("ray_10s", float("nan")) / results["local_10s"]
    print(
        f"RESULT local_demo_x={results['local_demo']:.2f} local_10s_x={results['local_10s']:.2f} "
        f"cpu_demo_x={results['cpu_demo']:.2f} cpu_10s_x={results['cpu_10s']:.2f} "
        f"ray_10s_x={results.get('ray_10s', float('nan')):.2f} ray_over_local={ratio:.2f} core_hours_2M={core_h:.0f} "
        f"driver_write_ms={driver[1024]['write_ms']:.2f} merge_ms={driver[1024]['merge_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
