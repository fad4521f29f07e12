"""Per-unit attribution speed on one clip (issue 18: at most 5 s on 2 cores), in one run.

For demo clips of several lengths (a kick, a cymbal, a 4 s instrument, a 4 s music loop) and a
conv3, a conv5 and a conv7 unit, times :func:`interp.analysis.attribution.attribute_unit` with the
defaults (occlusion, the unit's peak frame, a 32 x 16 grid) and with integrated gradients, on
2 torch threads, ``--repeats`` times each (the median is kept). Captum's import (once per
process, lazily) is timed apart.

The plain loop it is compared with does what a first version would: for each evaluated cell,
``torch.istft`` of the gated STFT of the whole clip and a forward pass of the whole clip (no
batching, no crop to the target's receptive field, no linear resynthesis). Its map is checked
against ours (they must agree to 1e-4 of the unit's activation). ``--valid`` also times the
target over the valid frames (a whole-clip forward per cell: slower, see docs/attribution.md).
The last line is machine-readable::

    RESULT attribution_max_s=<slowest clip, defaults> plain_over_ours=<ratio on the 4 s clip>

Usage: ``python benchmarks/bench_attribution.py [--repeats 3] [--valid] [--cpu]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from interp.analysis import attribution as A  # noqa: E402
from interp.corpus.corpora import demo_dir  # noqa: E402
from soundnet.audio import INPUT_SCALE, read_audio  # noqa: E402
from soundnet.model import load_soundnet  # noqa: E402

CLIPS = [
    "kick_drum/bd_808.flac",
    "cymbal/drum_cymbal_hard.flac",
    "instrument/" + "{instrument}",
    "music_loop/" + "{loop}",
]
UNITS = [("conv3", 8), ("conv5", 10), ("conv7", 100)]
CPU_TIME = False


def _clips() -> list[tuple[str, np.ndarray]]:
    root = demo_dir() / "audio"
    out = []
    for rel in CLIPS:
        if "{" in rel:  # the first file of the folder that lasts at least 4 s, cut to 4 s
            folder = root / rel.split("/")[0]
            for f in sorted(folder.glob("*.flac")):
                y = read_audio(f)
                if y.size >= 4 * 22050:
                    out.append((f"{folder.name}/{f.name}", y[: 4 * 22050]))
                    break
        else:
            out.append((rel, read_audio(root / rel)))
    return out


def _median_time(fn, repeats: int) -> tuple[float, object]:
    """Median over ``repeats`` of the wall time, or of the process CPU time / 2 with ``--cpu``
    (what 2 free cores would take: on a shared machine the wall time measures the neighbours)."""
    times, result = [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        times.append((time.process_time() - c) / 2 if CPU_TIME else time.perf_counter() - t)
    return statistics.median(times), result


def _plain_loop(model, wave: np.ndarray, a: A.Attribution) -> np.ndarray:
    """Occlusion cell by cell: istft of the whole gated clip, forward of the whole clip."""
    s = a.extra["settings"]
    p = A._problem("bench", model, wave, a.layer, a.unit, **s)
    out = np.zeros_like(a.map, dtype=np.float64)

    def target(y: torch.Tensor) -> float:
        with torch.no_grad():
            acts = model.extract_features((y.float() * INPUT_SCALE).reshape(1, 1, -1), layers=(a.layer,))[a.layer]
        return float(acts[0, a.unit, a.frames[0] : a.frames[1]].mean())

    base = target(torch.as_tensor(p.synth_full(np.ones(a.map.shape))))
    for t, f in zip(*np.nonzero(a.evaluated)):
        g = np.ones(a.map.shape)
        g[t, f] = 0.0
        out[t, f] = base - target(torch.as_tensor(p.synth_full(g)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--valid", action="store_true", help="also time target='valid'")
    ap.add_argument("--cpu", action="store_true", help="report process CPU time / 2 instead of wall time")
    args = ap.parse_args()
    global CPU_TIME
    CPU_TIME = args.cpu
    torch.set_num_threads(2)
    t = time.perf_counter()
    import captum.attr  # noqa: F401

    print(f"captum import: {time.perf_counter() - t:.2f} s (once per process)")
    model = load_soundnet()
    clips = _clips()
    for layer, unit in UNITS:  # warm-up: first calls build oneDNN kernels for new shapes
        A.attribute_unit(model, clips[-1][1], layer, unit, n_time=4, n_freq=4)
    worst = 0.0
    print(f"{'clip':42s} {'dur_s':>6s} {'unit':>9s} {'occl_s':>7s} {'ig_s':>7s} {'cells':>6s}")
    for name, wave in clips:
        for layer, unit in UNITS:
            if wave.size < 4574:
                continue
            occ_s, a = _median_time(lambda: A.attribute_unit(model, wave, layer, unit), args.repeats)  # noqa: B023
            ig_s, _ = _median_time(
                lambda: A.attribute_unit(model, wave, layer, unit, method="integrated_gradients"),  # noqa: B023
                args.repeats,
            )
            worst = max(worst, occ_s)
            cells = int(a.evaluated.sum())  # type: ignore[attr-defined]
            print(f"{name:42s} {wave.size / 22050:6.2f} {layer}:{unit:<4d} {occ_s:7.2f} {ig_s:7.2f} {cells:6d}")
    # the plain loop on the longest clip, conv5
    name, wave = max(clips, key=lambda c: c[1].size)
    ours_s, a = _median_time(lambda: A.attribute_unit(model, wave, "conv5", 10), args.repeats)
    t = time.perf_counter()
    plain = _plain_loop(model, wave, a)  # type: ignore[arg-type]
    plain_s = time.perf_counter() - t
    err = float(np.abs(plain - a.map).max()) / max(1e-9, abs(a.baseline_activation))  # type: ignore[attr-defined]
    assert err < 1e-4, err
    print(
        f"plain loop on {name} conv5:10: {plain_s:.2f} s vs {ours_s:.2f} s (x{plain_s / ours_s:.1f}); max rel diff {err:.1e}"
    )
    if args.valid:
        for layer, unit in UNITS[:2]:
            for method in ("occlusion", "integrated_gradients"):
                kw = dict(target="valid", method=method, n_time=16, n_freq=8)
                s, _ = _median_time(lambda: A.attribute_unit(model, wave, layer, unit, **kw), 1)  # noqa: B023
                print(f"target=valid {method:21s} {layer}:{unit} 16x8 grid on {wave.size / 22050:.1f} s: {s:.2f} s")
    print(f"RESULT attribution_max_s={worst:.2f} plain_over_ours={plain_s / ours_s:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
