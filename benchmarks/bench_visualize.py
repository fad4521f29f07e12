"""Benchmark: one unit's feature visualization (issue 18: at most 10 s on 2 cores).

For a unit of each layer asked for, :func:`interp.analysis.visualize.visualize_unit` runs with
its default settings (3 seeds optimised as one batch, ``VisualizeConfig.steps`` steps, the
layer's default duration); the script prints its wall time, the process CPU time (all threads)
and the machine's load average, since a machine shared with other work stretches wall time.

The baseline, measured in the same run, is the plain loop the optimisation cannot beat: the
same number of forward + backward passes of the plain model (:class:`soundnet.model.SoundNet8`,
all units of conv1 .. the layer, no parameterisation, no transformations) on a batch of the same
shape. Each is timed ``--repeat`` times and the fastest kept (on a shared machine the wall time
of the same work varies several-fold from minute to minute). Their ratio is the cost of the sound parameterisation, the transformations and the
folded, one-unit network (below 1: the folded network saves more than the rest costs).

Each visualization is also scored: its ``vmean`` relative to the best natural clip of a run,
when ``--run`` names one with ``vmean`` tables (the demo run), and the seeds' diversity.

Usage::

    python benchmarks/bench_visualize.py [--layers conv3 conv5 conv7] [--threads 2] [--repeat 3] [--run RUN]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from interp.analysis.visualize import VisualizeConfig, default_duration_s, natural_best, visualize_unit
from soundnet import load_soundnet
from soundnet.audio import INPUT_SCALE
from soundnet.geometry import SAMPLE_RATE_HZ


def plain_loop(model, layer: str, unit: int, n_seeds: int, n_samples: int, steps: int) -> float:
    """Seconds for ``steps`` forward + backward passes of the plain model on ``(n_seeds, 1, n)``."""
    x = (0.1 * torch.randn(n_seeds, 1, n_samples)).requires_grad_(True)
    t0 = time.perf_counter()
    for _ in range(steps):
        feats = model.extract_features(x * INPUT_SCALE, layers=(layer,))[layer]
        feats[:, unit].mean().backward()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", nargs="+", default=["conv1", "conv3", "conv5", "conv7"])
    ap.add_argument("--unit", type=int, default=None, help="unit index (default: the run's strongest, else 0)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (the target is 2 cores)")
    ap.add_argument("--steps", type=int, default=None, help="override VisualizeConfig.steps")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions; the fastest is reported (busy machines)")
    ap.add_argument("--run", default=None, help="a run directory with vmean tables, for the relative activation")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_soundnet()
    cfg = VisualizeConfig() if args.steps is None else VisualizeConfig(steps=args.steps)
    if args.run:
        from interp.run.store import open_run

        run = open_run(args.run)
    print(
        f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs, {cfg.n_seeds} seeds, {cfg.steps} steps, "
        f"load average at start {os.getloadavg()[0]:.1f}"
    )
    print(
        f"{'unit':<10}{'dur s':>6}{'wall s':>8}{'cpu s':>7}{'load':>6}{'plain s':>9}{'ratio':>7}{'rel vmean':>10}{'div':>6}"
    )
    for layer in args.layers:
        unit = args.unit if args.unit is not None else 0
        natural = None
        if args.run:
            if args.unit is None:
                best = run.activations(layer, "vmean").max().dropna().sort_values()
                unit = int(best.index[int(0.9 * (len(best) - 1))])
            natural = natural_best(run, layer, unit)
        visualize_unit(model, layer, unit, config=VisualizeConfig(steps=1, n_seeds=1))  # warm-up
        dur = cfg.duration_s or default_duration_s(layer)
        wall = cpu = plain = float("inf")
        for _ in range(max(1, args.repeat)):
            c0, t0 = time.process_time(), time.perf_counter()
            vis = visualize_unit(model, layer, unit, config=cfg, natural=natural)
            if time.perf_counter() - t0 < wall:
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            n = int(round(dur * SAMPLE_RATE_HZ))
            plain = min(plain, plain_loop(model, layer, unit, cfg.n_seeds, n, cfg.steps))
        load = os.getloadavg()[0]
        rel = float(np.max(vis.relative_vmean))
        print(
            f"{layer + ':' + str(unit):<10}{dur:>6.2f}{wall:>8.2f}{cpu:>7.1f}{load:>6.1f}{plain:>9.2f}"
            f"{wall / plain:>7.2f}{rel:>10.2f}{vis.diversity:>6.2f}",
            flush=True,
        )
    print("target: wall <= 10 s per unit on 2 otherwise idle cores (cpu s / threads is the idle-machine floor)")


if __name__ == "__main__":
    main()
