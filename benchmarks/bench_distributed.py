"""Recording throughput of the local engine and the Ray engine, where the Ray engine's time goes,
and what an AudioSet-scale run costs.

Measured in this one run, on this machine: ``record_corpus`` (local engine) and
``record_corpus_ray`` (a local Ray instance with the same CPUs) on

(a) the built-in demo corpus (174 clips, 1.7 s on average), and
(b) 10 s excerpts of the long corpus, one every ``--hop-s`` seconds (270 clips by default,
    AudioSet's clip length),

each in a fresh run directory. Prints x real time (audio seconds per wall second) for each; on
(b) the two engines alternate ``--repeats`` times (the machine is shared: the ratio of each pair is
taken, then the median), both per CPU (x real time / CPUs, the same CPUs for both), with Ray's
one-time start-up (``ray.init``, the actors loading the model) printed but not counted; and by
CPU time (audio seconds per CPU-second: the local engine's process against Ray's actors, driver
and own processes), which other work on a shared machine does not disturb. Then:

- the costs of the previous Ray design (Ray Data: decoding tasks, audio through the object
  store, summaries pickled back to a driver that wrote every shard), each measured here: a
  shard's decoded audio through the object store, decoding against the model's CPU time (how
  idle a decoding CPU of its own stays), pickling a clip's summaries, writing a shard on the
  driver;
- the CPU cost of (a) and (b) in audio seconds per CPU-second (the local engine's lanes, one per
  CPU, are threads of this process, so the whole cost is counted and does not depend on what
  else runs on the machine), and the core-hours and wall-clock time that 2 million 10 s clips
  (AudioSet, 5,556 hours of audio) would take at that per-core rate, scaled linearly with cores;
  and the work that stays on the driver whatever the cluster size (the final merge) per clip,
  timed on synthetic summaries of the real shapes.

The last line is machine-readable::

    RESULT local_demo_x=<x> local_10s_x=<x> cpu_demo_x=<x> cpu_10s_x=<x> ray_10s_x=<x>
           ray_over_local=<ratio> ray_over_local_cpu=<ratio> ray_startup_s=<s> core_hours_2M=<h> driver_write_ms=<ms> merge_ms=<ms>

Usage: ``python benchmarks/bench_distributed.py [--cpus 2] [--repeats 3] [--hop-s 0.25] [--no-fast] [--skip-ray]``
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


def _unpickled_len(blob: bytes) -> int:
    """What a Ray Data model actor of the previous design did first with a shard: unpickle it."""
    return len(pickle.loads(blob))


def _old_design_costs(ray, corpus: pd.DataFrame, model, config: RecordConfig, *, n_clips: int) -> dict[str, float]:
    """Milliseconds per clip of each cost of the previous (Ray Data) design, on ``n_clips`` clips
    of ``corpus`` and one torch thread (one CPU per task or actor, as it ran).

    ``decode_ms`` and ``model_ms`` (CPU time) are the work itself; ``audio_store_ms`` (wall
    time, best of 3) a shard's decoded audio pickled, put in the object store, read and
    unpickled by another worker process; ``summaries_pickle_ms`` (CPU) a clip's summaries pickled
    and unpickled on their way to the driver.
    """
    import torch

    from interp.recording.decode import decode_row
    from interp.recording.engine import BatchEngine
    from interp.recording.lanes import summarize_shard
    from interp.recording.pipeline import normalise_corpus

    rows = normalise_corpus(corpus.head(n_clips).reset_index(drop=True))[0].to_dict("records")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu0 = time.process_time()
        decoded = [decode_row(r, config.chunk_s) for r in rows]
        decode_s = time.process_time() - cpu0
        blob = pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL)
        unpickle = ray.remote(num_cpus=0)(_unpickled_len)
        ray.get(unpickle.remote(pickle.dumps([])))  # a worker started
        trips = []
        for _ in range(3):
            t = time.perf_counter()
            ray.get(unpickle.remote(ray.put(blob)))
            trips.append(time.perf_counter() - t)
            t = time.perf_counter()
            ray.get(unpickle.remote(ray.put(pickle.dumps([]))))
            trips[-1] -= time.perf_counter() - t  # less an empty call's overhead
        pickle_s = min(trips) + _timed(lambda: pickle.loads(pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL)))
        engine = BatchEngine(model, config)
        cpu0 = time.process_time()
        summaries = summarize_shard(engine, rows, decoded)
        model_s = time.process_time() - cpu0
        summaries_s = _timed(lambda: pickle.loads(pickle.dumps(summaries, protocol=pickle.HIGHEST_PROTOCOL)))
    finally:
        torch.set_num_threads(threads)
    n = len(rows)
    return {
        "decode_ms": 1000 * decode_s / n,
        "model_ms": 1000 * model_s / n,
        "audio_store_ms": 1000 * pickle_s / n,
        "audio_mb": len(blob) / 2**20 / n,
        "summaries_pickle_ms": 1000 * summaries_s / n,
    }


def _timed(fn) -> float:
    """CPU seconds of ``fn()``, best of 3."""
    best = float("inf")
    for _ in range(3):
        cpu0 = time.process_time()
        fn()
        best = min(best, time.process_time() - cpu0)
    return best


def _ray_processes_cpu() -> dict[int, float]:
    """CPU seconds so far of each process this one started (a local Ray's GCS, raylet, workers)."""
    import psutil

    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            out[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def _ray_section(args, config: RecordConfig, model, long10: pd.DataFrame, tmp: Path, results: dict) -> None:
    """Local and Ray engines alternated on the 10 s corpus, Ray's start-up, the old design's costs."""
    import ray

    from interp.recording.ray_engine import record_corpus_ray

    t = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t
    print(f"ray.init     {init_s:.1f} s (one-time start-up, not counted)")
    try:
        s = record_corpus_ray("demo", tmp / "ray_demo", config=config, progress=False)
        results["ray_demo"] = s.times_real_time
        print(f"ray_demo     {s} [start-up {s.startup_s:.1f} s]")
        local, rayx, ratios, cpu_ratios, startups = [], [], [], [], []
        for r in range(args.repeats):  # alternated: a noisy neighbour hits both
            cpu0 = time.process_time()
            a = record_corpus(long10, tmp / f"pair-local-{r}", config=config, model=model, progress=False)
            local_cpu = time.process_time() - cpu0
            daemons = _ray_processes_cpu()
            cpu0 = time.process_time()
            b = record_corpus_ray(long10, tmp / f"pair-ray-{r}", config=config, progress=False)
            driver_cpu = time.process_time() - cpu0
            after = _ray_processes_cpu()
            ray_own = sum(after[p] - c for p, c in daemons.items() if p in after)
            ray_cpu = b.cpu_s + driver_cpu + ray_own
            local.append(a.times_real_time)
            rayx.append(b.times_real_time)
            ratios.append(b.times_real_time / a.times_real_time)
            cpu_ratios.append(local_cpu / ray_cpu)
            startups.append(b.startup_s)
            print(
                f"pair {r}: local {a.times_real_time:6.1f}x, ray {b.times_real_time:6.1f}x real time "
                f"({b.actors} actor(s) x {b.cpus_per_actor} CPUs; start-up {b.startup_s:.1f} s, not counted): "
                f"ratio {ratios[-1]:.2f}; CPU: local {a.audio_s / local_cpu:.0f}x real time per CPU-second, "
                f"ray {b.audio_s / ray_cpu:.0f}x (actors {b.cpu_s:.1f} s + driver {driver_cpu:.1f} s + Ray's own "
                f"processes {ray_own:.1f} s): ratio {cpu_ratios[-1]:.2f}"
            )
        results["ray_10s"] = statistics.median(rayx)
        results["ray_over_local"] = statistics.median(ratios)
        results["ray_over_local_cpu"] = statistics.median(cpu_ratios)
        results["ray_startup_s"] = init_s + statistics.median(startups)
        cpus = args.cpus
        print(
            f"10 s clips ({len(long10)}), per CPU (median of {args.repeats}): local "
            f"{statistics.median(local) / cpus:.1f}x, ray {results['ray_10s'] / cpus:.1f}x real time per CPU "
            f"(wall clock / {cpus} CPUs); ray / local = {results['ray_over_local']:.2f} (median of the pairs' "
            f"ratios); by CPU time (not disturbed by other work on the machine): ray / local = "
            f"{results['ray_over_local_cpu']:.2f}"
        )
        print(
            f"Ray's one-time start-up: ray.init {init_s:.1f} s + actors ready (model loaded) "
            f"{statistics.median(startups):.1f} s (median)"
        )
        c = _old_design_costs(ray, long10, model, config, n_clips=32)
    finally:
        ray.shutdown()
    # the previous design on these CPUs: max(1, cpus // 8) decoding, the rest model actors that
    # also unpickled the audio and pickled the summaries
    dec_cpus = max(1, cpus // 8)
    mod_cpus = max(1, cpus - dec_cpus)
    actor_ms = c["model_ms"] + c["audio_store_ms"] + c["summaries_pickle_ms"]
    old_rate = min(mod_cpus / actor_ms, dec_cpus / c["decode_ms"])  # clips per ms, the slower stage
    new_rate = cpus / (c["model_ms"] + c["decode_ms"])
    print(
        f"previous design, per 10 s clip: decode {c['decode_ms']:.1f} ms, model {c['model_ms']:.1f} ms of CPU; "
        f"audio through the object store {c['audio_store_ms']:.1f} ms ({c['audio_mb']:.2f} MB); "
        f"summaries pickled {c['summaries_pickle_ms']:.2f} ms\n"
        f"  on {cpus} CPUs: {dec_cpus} decoding (busy {100 * old_rate * c['decode_ms'] / dec_cpus:.0f} % of the time), "
        f"{mod_cpus} model actor(s): at best {old_rate / new_rate:.2f}x the local engine from the CPU split "
        f"and transfers alone (plus actor start-up in every run and the driver's writes)"
    )
    results["old_predicted"] = old_rate / new_rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs (the local Ray gets as many)")
    ap.add_argument("--repeats", type=int, default=3, help="local/Ray pairs on the 10 s clips")
    ap.add_argument("--hop-s", type=float, default=0.25, help="one 10 s clip every so many seconds of the long corpus")
    ap.add_argument("--no-fast", action="store_true", help="plain PyTorch model in both engines")
    ap.add_argument("--skip-ray", action="store_true")
    args = ap.parse_args()
    config = RecordConfig(workers=args.cpus, fast=not args.no_fast)  # one lane per CPU
    demo = load_corpus("demo")
    long10 = _ten_second_clips(long_dir(), hop_s=args.hop_s)
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
            _ray_section(args, config, model, long10, tmp, results)
        driver = {size: _driver_costs(tmp, shard_size=size, n_shards=n) for size, n in ((128, 8), (1024, 2))}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for size, c in driver.items():
        print(
            f"driver, shards of {size:4d}: merge {c['merge_ms']:.2f} ms/clip (CPU), merged activations "
            f"{c['kb_per_clip']:.0f} KB/clip; the previous design also wrote each shard on the driver: "
            f"{c['write_ms']:.2f} ms/clip (summaries unpickled + write_shard)"
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
            f"  driver with shards of {size}: merge {AUDIOSET_CLIPS * c['merge_ms'] / 3.6e6:.1f} h (after the "
            f"recording), {AUDIOSET_CLIPS * c['kb_per_clip'] / 1024**2:.0f} GB of merged activations"
        )
    nan = float("nan")
    print(
        f"RESULT local_demo_x={results['local_demo']:.2f} local_10s_x={results['local_10s']:.2f} "
        f"cpu_demo_x={results['cpu_demo']:.2f} cpu_10s_x={results['cpu_10s']:.2f} "
        f"ray_10s_x={results.get('ray_10s', nan):.2f} ray_over_local={results.get('ray_over_local', nan):.2f} "
        f"ray_over_local_cpu={results.get('ray_over_local_cpu', nan):.2f} "
        f"ray_startup_s={results.get('ray_startup_s', nan):.1f} core_hours_2M={core_h:.0f} "
        f"driver_write_ms={driver[1024]['write_ms']:.2f} merge_ms={driver[1024]['merge_ms']:.2f}"
    )


if __name__ == "__main__":
    main()
