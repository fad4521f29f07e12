"""Forward-pass throughput: plain SoundNet8 vs soundnet.fast.FastSoundNet vs the GEMM peak.

Everything is measured in this one run, on this machine, so that the ratios mean something on a
shared, noisy computer: a float32 matrix-product peak (``torch.mm`` of large square matrices,
best of several), then the plain model's and the fast model's forward throughput on real clips
(minibank clips tiled to a fixed length), interleaved repeat by repeat, medians reported. Speed
is given as times real time (audio seconds per wall second) and as GFLOP/s from the analytic
count of :func:`soundnet.fast.flops_per_second_of_audio` (conv1..conv7, and with the heads).

Run: ``.venv/bin/python benchmarks/bench_forward.py [--clips 32 --seconds 5 --batch 8]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from interp.corpus.corpora import demo_dir
from soundnet import load_soundnet
from soundnet.audio import fit_length, read_audio, to_model_input
from soundnet.fast import FastSoundNet, flops_per_second_of_audio, forward_flops
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import CONV_LAYERS, LAYERS

REPO = Path(__file__).resolve().parents[1]


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, process CPU seconds, all threads) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def gemm_times(*, size: int = 2048, repeats: int = 7) -> list[tuple[float, float]]:
    """(wall, cpu) seconds of ``repeats`` float32 ``torch.mm`` of two ``size`` x ``size`` matrices."""
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)
    return [_timed(lambda: torch.mm(a, b, out=out)) for _ in range(repeats)]


def load_clips(corpus: Path, *, n_clips: int, seconds: float) -> torch.Tensor:
    """``(n_clips, 1, seconds * 22050)`` real clips, tiled to the length, scaled x256."""
    manifest = pd.read_csv(corpus / "manifest.csv").sort_values("path")
    n = int(round(seconds * SAMPLE_RATE_HZ))
    waves = []
    for path in manifest["path"].iloc[np.linspace(0, len(manifest) - 1, n_clips).astype(int)]:
        waves.append(to_model_input(fit_length(read_audio(corpus / path), min_samples=n, policy="tile")[:n]))
    return torch.cat(waves)


def interleaved(fns: dict, *, repeats: int) -> dict[object, list[tuple[float, float]]]:
    """Run every function once to warm up, then ``repeats`` rounds, one call of each per round."""
    times: dict[object, list[tuple[float, float]]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed(fn))
    return times


def over_batches(net, x: torch.Tensor, batch: int, layers) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            for i in range(0, x.shape[0], batch):
                net.extract_features(x[i : i + batch], layers=layers)

    return run


def _label_blocks(model) -> list:
    """Forward hooks that wrap each plain block in a profiler label ``soundnet.plain.<name>``."""
    handles = []
    for name in LAYERS:
        block = getattr(model, name)
        ctx: list = []

        def pre(module, args, name=name, ctx=ctx):
            ctx.append(torch.profiler.record_function(f"soundnet.plain.{name}"))
            ctx[-1].__enter__()

        def post(module, args, output, ctx=ctx):
            ctx.pop().__exit__(None, None, None)

        handles += [block.register_forward_pre_hook(pre), block.register_forward_hook(post)]
    return handles


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (the profiler's C++ start/stop lines)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def layer_breakdown(nets: dict[str, object], x: torch.Tensor, *, repeats: int) -> pd.DataFrame:
    """Per-layer wall ms of conv1..conv7 on ``x``: medians over repeats of profiler labels.

    The fast model labels its layers ``soundnet.fast.<name>``; the plain model's blocks get
    ``soundnet.plain.<name>`` from forward hooks. Both are timed the same way, in one pass.
    """
    handles = _label_blocks(nets["plain"])
    samples: dict[tuple[str, str], list[float]] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: [handle.remove() for handle in handles])
        stack.enter_context(_quiet_stderr())
        for _ in range(repeats + 1):
            for net_name, net in nets.items():
                prefix = "plain" if net_name == "plain" else "fast"
                with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                    with torch.inference_mode():
                        net.extract_features(x, layers=CONV_LAYERS)
                totals = {e.key: e.cpu_time_total / 1e3 for e in prof.key_averages()}
                for layer in CONV_LAYERS:
                    samples.setdefault((net_name, layer), []).append(totals.get(f"soundnet.{prefix}.{layer}", 0.0))
    table = pd.DataFrame(
        {net_name: [statistics.median(samples[(net_name, layer)][1:]) for layer in CONV_LAYERS] for net_name in nets},
        index=list(CONV_LAYERS),
    )
    table.index.name = "layer (ms)"
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=demo_dir())
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument(
        "--head-seconds", type=float, default=20.0, help="clip length of the with-heads workload (heads need >= 9.5 s)"
    )
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)

    try:
        from threadpoolctl import threadpool_info

        pools = ", ".join(f"{p['internal_api']}:{p['num_threads']}" for p in threadpool_info())
    except ImportError:
        pools = "threadpoolctl not installed"
    print(
        f"torch {torch.__version__}, torch.get_num_threads()={torch.get_num_threads()}, "
        f"os.cpu_count()={os.cpu_count()}, thread pools: {pools}"
    )

    model = load_soundnet()
    # fast: the default (chunks one after the other, each operation on torch's intra-op
    # threads); fast-w2: chunks shared by 2 worker threads, each single-threaded (for busy
    # machines); fast-conv: the simple method (folded BatchNorm + conv1d) that CUDA gets.
    nets = {
        "plain": model,
        "fast": FastSoundNet(model),
        "fast-w2": FastSoundNet(model, workers=2),
        "fast-conv": FastSoundNet(model, method="conv"),
    }
    x = load_clips(args.corpus, n_clips=args.clips, seconds=args.seconds)
    xh = load_clips(args.corpus, n_clips=args.batch, seconds=args.head_seconds)
    audio_s, audio_h_s = x.shape[0] * x.shape[-1] / SAMPLE_RATE_HZ, xh.shape[0] * xh.shape[-1] / SAMPLE_RATE_HZ
    trunk_flop = flops_per_second_of_audio(CONV_LAYERS)
    all_flop = flops_per_second_of_audio(LAYERS)

    gemm = gemm_times()
    fns = {}
    for name, net in nets.items():
        fns[(name, "trunk")] = over_batches(net, x, args.batch, CONV_LAYERS)
        fns[(name, "all")] = over_batches(net, xh, args.batch, LAYERS)
    times = interleaved(fns, repeats=args.repeats)
    gemm += gemm_times()
    gemm_flop = 2 * 2048**3
    peak = gemm_flop / min(w for w, _ in gemm) / 1e9
    gemm_median = gemm_flop / statistics.median(w for w, _ in gemm) / 1e9
    gemm_cpu = gemm_flop / statistics.median(c for _, c in gemm) / 1e9

    print(
        f"\nGEMM peak (torch.mm 2048x2048 float32, best of 14, before and after): {peak:.1f} GFLOP/s "
        f"(median {gemm_median:.1f}; per CPU-second {gemm_cpu:.1f})"
    )
    print(f"analytic cost: conv1..conv7 {trunk_flop / 1e6:.2f} MFLOP per audio second, with heads {all_flop / 1e6:.2f}")
    print(
        f"exact cost of the workloads: conv1..conv7 on {args.seconds:g} s clips "
        f"{forward_flops(x.shape[-1]) / (x.shape[-1] / SAMPLE_RATE_HZ) / 1e6:.2f} MFLOP/s of audio; "
        f"all layers on {args.head_seconds:g} s clips "
        f"{forward_flops(xh.shape[-1], layers=LAYERS) / (xh.shape[-1] / SAMPLE_RATE_HZ) / 1e6:.2f}"
    )
    print(
        "\nGFLOP/s from the analytic cost; '% peak' = median GFLOP/s / GEMM peak (best); "
        "'cpu GF/s' = per CPU-second (all threads), vs the GEMM's per CPU-second"
    )
    print(
        f"{'workload':40s} {'model':9s} {'median s':>9s} {'best s':>7s} {'x real time':>11s} "
        f"{'GFLOP/s':>8s} {'% peak':>7s} {'best GF/s':>9s} {'cpu GF/s':>8s}"
    )
    summary = {}
    for (name, work), ts in times.items():
        med = statistics.median(w for w, _ in ts)
        best = min(w for w, _ in ts)
        cpu = statistics.median(c for _, c in ts)
        secs, flop = (audio_s, trunk_flop) if work == "trunk" else (audio_h_s, all_flop)
        label = (
            f"conv1..conv7, {x.shape[0]} x {args.seconds:g} s, batch {args.batch}"
            if work == "trunk"
            else f"all layers, {xh.shape[0]} x {args.head_seconds:g} s, batch {args.batch}"
        )
        gflops = secs * flop / med / 1e9
        summary[(name, work)] = (secs / med, gflops, secs * flop / best / 1e9, secs * flop / cpu / 1e9)
        print(
            f"{label:40s} {name:9s} {med:9.4f} {best:7.4f} {secs / med:11.1f} {gflops:8.1f} "
            f"{100 * gflops / peak:6.1f}% {summary[(name, work)][2]:9.1f} {summary[(name, work)][3]:8.1f}"
        )

    print("\nratios (same run):")
    for work in ("trunk", "all"):
        rt_plain = summary[("plain", work)][0]
        for name in ("fast", "fast-w2", "fast-conv"):
            print(f"  {work:5s} {name:9s} / plain speed-up (medians): {summary[(name, work)][0] / rt_plain:5.2f}x")
    _, gf, gf_best, gf_cpu = summary[("fast", "trunk")]
    print(
        f"  conv1..conv7 fast vs GEMM: median/peak {100 * gf / peak:.1f}% (target >= 40%: "
        f"{'met' if gf >= 0.4 * peak else 'NOT met'}), median/median {100 * gf / gemm_median:.1f}%, "
        f"best/best {100 * gf_best / peak:.1f}%, per CPU-second {100 * gf_cpu / gemm_cpu:.1f}%"
    )
    _, gf, gf_best, gf_cpu = summary[("plain", "trunk")]
    print(
        f"  conv1..conv7 plain vs GEMM: median/peak {100 * gf / peak:.1f}%, median/median "
        f"{100 * gf / gemm_median:.1f}%, best/best {100 * gf_best / peak:.1f}%, per CPU-second "
        f"{100 * gf_cpu / gemm_cpu:.1f}%"
    )

    print(
        f"\nper-layer wall time, one batch of {args.batch} x {args.seconds:g} s, medians of "
        f"{args.repeats} (profiler labels, so slightly slower than above):"
    )
    breakdown = layer_breakdown(nets, x[: args.batch], repeats=args.repeats)
    breakdown["MFLOP"] = [forward_flops(x.shape[-1], layers=(layer,)) * args.batch / 1e6 for layer in CONV_LAYERS]
    breakdown.loc["total"] = breakdown.sum()
    for name in nets:
        breakdown[f"{name} GF/s"] = breakdown["MFLOP"] / breakdown[name]
        breakdown[f"{name} %"] = 100 * breakdown[name] / breakdown.loc["total", name]
    print(breakdown.round(1).to_string())


if __name__ == "__main__":
    main()
