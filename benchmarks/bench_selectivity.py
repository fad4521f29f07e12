"""Benchmark: selectivity statistics for every unit x category of a large run.

Target: 10,000 clips x 3,433 units (all nine SoundNet layers) x 50 categories in under a minute
on 2 cores. The baseline, measured in the same run, is the straightforward per-(unit, category)
loop (``scipy.stats.mannwhitneyu`` + ``sklearn.metrics.roc_auc_score``) on a sample of units,
extrapolated to all of them; the script prints the vectorised time, the baseline estimate and
their ratio, and checks that both give the same AUROC and p-values on the sampled units.

Usage::

    python benchmarks/bench_selectivity.py [--clips 10000] [--categories 50] [--baseline-units 8]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from interp.analysis.selectivity import compute_selectivity
from soundnet.model import LAYER_SPECS


def synthetic_run(n_clips: int, n_categories: int, *, seed: int = 0) -> tuple[dict[str, pd.DataFrame], pd.Series]:
    """ReLU-like activations (many exact zeros, float32) for every SoundNet layer, and labels.

    One category is kept small (8 clips) so that the permutation path is exercised too.
    """
    rng = np.random.default_rng(seed)
    ids = [f"c{i:012x}" for i in range(n_clips)]
    labels = rng.integers(0, n_categories - 1, size=n_clips)
    labels[rng.choice(n_clips, size=8, replace=False)] = n_categories - 1
    lab = pd.Series([f"cat{c:02d}" for c in labels], index=ids)
    acts = {}
    for spec in LAYER_SPECS:
        x = rng.normal(size=(n_clips, spec.out_channels)).astype(np.float32)
        x += 0.5 * (labels[:, None] == (np.arange(spec.out_channels) % n_categories)[None, :])
        if spec.batchnorm:
            np.maximum(x, 0.0, out=x)
        acts[spec.name] = pd.DataFrame(x, index=ids, columns=range(spec.out_channels))
    return acts, lab


def baseline(acts: dict[str, pd.DataFrame], lab: pd.Series, n_units: int) -> tuple[float, list]:
    """Per-(unit, category) scipy/sklearn loop on ``n_units`` units; seconds per unit and results."""
    layer = "conv7"
    x = acts[layer]
    cats = sorted(lab.unique())
    y = lab.reindex(x.index).to_numpy()
    out = []
    t0 = time.perf_counter()
    for u in range(n_units):
        v = x[u].to_numpy(dtype=np.float64)
        for c in cats:
            pos = y == c
            p = sps.mannwhitneyu(v[pos], v[~pos], alternative="greater", method="asymptotic").pvalue
            out.append((layer, u, c, roc_auc_score(pos, v), p))
    return (time.perf_counter() - t0) / n_units, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=10_000)
    ap.add_argument("--categories", type=int, default=50)
    ap.add_argument("--baseline-units", type=int, default=8)
    ap.add_argument("--budget-s", type=float, default=60.0)
    args = ap.parse_args(argv)

    acts, lab = synthetic_run(args.clips, args.categories)
    n_units = sum(a.shape[1] for a in acts.values())
    print(f"{args.clips} clips x {n_units} units x {args.categories} categories; {os.cpu_count()} CPUs visible")

    t0 = time.perf_counter()
    sel = compute_selectivity(acts, lab)
    t_vec = time.perf_counter() - t0
    print(
        f"vectorised compute_selectivity: {t_vec:.1f} s ({len(sel)} rows, "
        f"{n_units * args.categories / t_vec:,.0f} unit x category pairs per second)"
    )

    per_unit, ref = baseline(acts, lab, args.baseline_units)
    t_base = per_unit * n_units
    print(
        f"baseline scipy/sklearn loop: {per_unit:.2f} s per unit ({args.baseline_units} units measured) "
        f"-> {t_base:.0f} s estimated for all {n_units} units"
    )
    print(f"speed-up: {t_base / t_vec:.0f}x")

    s = sel.set_index(["layer", "unit", "category"])
    worst_auc = max(abs(s.loc[(l, u, c), "auroc"] - a) for l, u, c, a, _ in ref)
    worst_p = max(abs(s.loc[(l, u, c), "p_mwu"] - p) / max(p, 1e-300) for l, u, c, _, p in ref)
    print(f"agreement on the sampled units: max |AUROC diff| {worst_auc:.1e}, max relative p diff {worst_p:.1e}")
    ok = t_vec < args.budget_s and worst_auc < 1e-9 and worst_p < 1e-6
    print(f"{'PASS' if ok else 'FAIL'}: {t_vec:.1f} s against a budget of {args.budget_s:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
