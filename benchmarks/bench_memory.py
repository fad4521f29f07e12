"""Peak memory of ``soundnet-interp record`` for 100 and for 1,000 clips, and their ratio.

The recorder must not hold anything that grows with the corpus (decoding has a bounded look-ahead,
summaries are written shard by shard, the merge streams the shards), so recording ten times more
clips should cost about the same peak memory. Target: ``peak(1000) / peak(100) <= 1.5``.

The corpus: ``--clips`` distinct excerpts of ``--seconds`` seconds cut from the real minibank
recordings (all of them end to end, each excerpt at its own start offset), written as 16-bit WAV
files with a CSV manifest; the 100-clip corpus is the manifest's first 100 rows.

Memory is the resident set size of the recording process *plus all its children* (the
decoding worker processes with ``--decoder process``), summed, sampled every ``--interval-s`` seconds with psutil;
the largest single process (``getrusage(RUSAGE_CHILDREN).ru_maxrss``, exact, not sampled) is
printed too. The last line is machine-readable::

    RESULT peak_small_mib=<...> peak_large_mib=<...> memory_ratio=<large / small> target_met=<0|1>

Usage: ``python benchmarks/bench_memory.py [--clips 1000] [--small 100] [--seconds 2]
[--layers conv1,...] [--workers 2] [--decoder thread] [--batch-size 16] [--shard-size 128]``
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from interp.corpus.corpora import demo_dir, load_corpus  # noqa: E402
from soundnet.audio import read_audio  # noqa: E402
from soundnet.geometry import SAMPLE_RATE_HZ  # noqa: E402

TARGET_RATIO = 1.5


def minibank_dir() -> Path:
    """The minibank corpus shipped as the built-in demo corpus."""
    return demo_dir()


def make_corpus(folder: Path, *, n_clips: int, seconds: float, sr: int = SAMPLE_RATE_HZ) -> pd.DataFrame:
    """``n_clips`` distinct ``seconds``-long excerpts of the minibank audio as 16-bit WAV files
    at ``sr`` Hz (resampled when not 22050); returns the manifest (absolute paths)."""
    corpus = load_corpus(minibank_dir())
    audio = np.concatenate([read_audio(p) for p in corpus["path"]])
    n = int(round(seconds * SAMPLE_RATE_HZ))
    if len(audio) < n + n_clips:
        raise SystemExit(f"not enough audio for {n_clips} distinct excerpts")
    starts = np.linspace(0, len(audio) - n, n_clips).astype(np.int64)  # distinct offsets
    rows = []
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(starts):
        path = folder / "audio" / f"excerpt_{i:05d}.wav"
        y = audio[s : s + n] if sr == SAMPLE_RATE_HZ else soxr.resample(audio[s : s + n], SAMPLE_RATE_HZ, sr)
        sf.write(path, y, sr, subtype="PCM_16")
        rows.append({"path": str(path), "label": f"offset_{s / SAMPLE_RATE_HZ:07.2f}s"})
    return pd.DataFrame(rows)


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of ``proc`` and all its descendants, summed."""
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def record_peak(manifest: Path, out: Path, args: argparse.Namespace) -> dict:
    """Run ``record`` in a subprocess, sampling its tree's RSS; returns peak, time and summary."""
    cmd = [
        sys.executable,
        "-m",
        "interp",
        "record",
        str(manifest),
        "--out",
        str(out),
        "-q",
        "--workers",
        str(args.workers),
        "--decoder",
        getattr(args, "decoder", "thread"),
        "--batch-size",
        str(args.batch_size),
        "--shard-size",
        str(args.shard_size),
    ]
    if args.layers:
        cmd += ["--layers", args.layers]
    t0 = time.perf_counter()
    with open(out.with_suffix(".log"), "w") as log:
        child = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        proc = psutil.Process(child.pid)
        peak = 0
        while child.poll() is None:
            peak = max(peak, tree_rss(proc))
            time.sleep(args.interval_s)
    wall = time.perf_counter() - t0
    text = out.with_suffix(".log").read_text()
    if child.returncode != 0:
        raise SystemExit(f"record failed ({child.returncode}):\n{text[-3000:]}")
    summary = next((line for line in text.splitlines() if " ok, " in line and " failed" in line), "")
    return {"peak": peak, "wall_s": wall, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=1000, help="clips of the large corpus")
    ap.add_argument("--small", type=int, default=100, help="clips of the small corpus (its first rows)")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    ap.add_argument("--layers", default="", help="comma-separated layers (default: all)")
    ap.add_argument("--workers", type=int, default=2, help="record's lanes")
    ap.add_argument("--decoder", choices=("thread", "process"), default="thread")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--shard-size", type=int, default=128)
    ap.add_argument("--interval-s", type=float, default=0.05, help="RSS sampling period")
    args = ap.parse_args(argv)
    if not 0 < args.small < args.clips:
        ap.error("need 0 < --small < --clips")

    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        rows = make_corpus(tmp / "corpus", n_clips=args.clips, seconds=args.seconds)
        rows.iloc[: args.small].to_csv(tmp / "small.csv", index=False)
        rows.to_csv(tmp / "large.csv", index=False)
        print(
            f"corpus: {args.clips} x {args.seconds:g} s WAV excerpts of minibank written in "
            f"{time.perf_counter() - t:.1f} s; layers: {args.layers or 'all'}; {args.workers} lanes, decoder {args.decoder}, "
            f"batch {args.batch_size}, shard {args.shard_size}",
            flush=True,
        )
        results = {}
        for name, n in (("small", args.small), ("large", args.clips)):
            r = record_peak(tmp / f"{name}.csv", tmp / f"run_{name}", args)
            results[name] = r
            print(
                f"{n:>6} clips: peak RSS (process + children) {r['peak'] / 2**20:8.1f} MiB, "
                f"{r['wall_s']:6.1f} s wall | {r['summary']}",
                flush=True,
            )
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB (Linux)
    ratio = results["large"]["peak"] / results["small"]["peak"]
    met = ratio <= TARGET_RATIO
    print(f"largest single process over both runs: {largest:.1f} MiB")
    print(
        f"ratio peak({args.clips}) / peak({args.small}) = {ratio:.3f} "
        f"(target <= {TARGET_RATIO}: {'met' if met else 'NOT met'})"
    )
    print(
        f"RESULT peak_small_mib={results['small']['peak'] / 2**20:.1f} "
        f"peak_large_mib={results['large']['peak'] / 2**20:.1f} memory_ratio={ratio:.3f} target_met={int(met)}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
