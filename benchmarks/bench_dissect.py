"""Temporal dissection throughput against ``record`` on the same audio, in one run.

Synthesizes ``--n`` soundscapes of ``--seconds`` s from the demo's drum one-shots
(:func:`interp.corpus.soundscapes.synthesize_soundscapes`), then times, interleaved,
``--repeats`` times each:

(a) ``record_corpus`` over conv1..conv7 (the toolkit's recorder, default lanes);
(b) ``dissect`` over conv1..conv7 (:func:`interp.analysis.dissection.dissect`: thresholds from a
    tenth of the clips (at least 64), then every frame against the events, both nulls, profiles).

It prints x real time for each, the speed of (b) over the speed of (a) (time a / time b; the
issue's target: at least 0.5), the time of (b) spent in each layer's counting (summed over the
lanes, which also run the forward passes), and the peak resident memory of (b) for n/4 and n
clips (a fresh process each), whose ratio shows that memory does not grow with the corpus. The
last line is machine-readable::

    RESULT dissect_over_record=<time a / time b> memory_ratio=<peak n / peak n/4>

Usage: ``python benchmarks/bench_dissect.py [--n 500] [--seconds 10] [--repeats 1]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from interp.analysis import dissection as D  # noqa: E402
from interp.analysis import dissection_stream as S  # noqa: E402
from interp.corpus.corpora import demo_dir, load_corpus  # noqa: E402
from interp.corpus.events import events_for_clips, read_events  # noqa: E402
from interp.corpus.soundscapes import synthesize_soundscapes  # noqa: E402
from interp.recording import record_corpus  # noqa: E402
from soundnet.model import CONV_LAYERS, load_soundnet  # noqa: E402

LABELS = ["kick_drum", "snare_drum", "cymbal"]


def _scapes(root: Path, n: int, seconds: float) -> Path:
    out = root / f"scapes_{n}"
    if not (out / "manifest.csv").is_file():
        synthesize_soundscapes(demo_dir(), out, n=n, duration_s=seconds, labels=LABELS, seed=0)
    return out


def _peak_child(scapes: Path) -> float:
    """Peak resident memory (MB) of a fresh process that dissects ``scapes``."""
    code = (
        "import resource, sys; sys.path.insert(0, {!r})\n"
        "from pathlib import Path\n"
        "from interp.analysis.dissection import dissect, _fast\n"
        "from interp.corpus.corpora import load_corpus\n"
        "from interp.corpus.events import events_for_clips, read_events\n"
        "from soundnet.model import load_soundnet\n"
        "c = load_corpus({!r})\n"
        "e = events_for_clips(read_events({!r}), c)\n"
        "dissect(_fast(load_soundnet(), None, {{}}), c, e)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    ).format(str(REPO), str(scapes / "manifest.csv"), str(scapes / "events.tsv"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench_dissect_"))
    try:
        scapes = _scapes(root, args.n, args.seconds)
        corpus = load_corpus(str(scapes / "manifest.csv"))
        events = events_for_clips(read_events(scapes / "events.tsv"), corpus)
        model = load_soundnet()
        fast = D._fast(model, None, {})
        audio_s = args.n * args.seconds
        rec, dis = [], []
        layer_s: dict[str, float] = {}
        add = S.LayerAccumulator.add

        def timed_add(self, *a, **k):  # the accumulation's time per layer
            t0 = time.perf_counter()
            add(self, *a, **k)
            layer_s[self.layer] = layer_s.get(self.layer, 0.0) + time.perf_counter() - t0

        for r in range(args.repeats):
            run = root / f"run{r}"
            t0 = time.perf_counter()
            record_corpus(corpus, run, model=model, layers=tuple(CONV_LAYERS), progress=False)
            rec.append(time.perf_counter() - t0)
            shutil.rmtree(run, ignore_errors=True)
            layer_s.clear()
            S.LayerAccumulator.add = timed_add  # type: ignore[method-assign]
            try:
                t0 = time.perf_counter()
                D.dissect(fast, corpus, events)
                dis.append(time.perf_counter() - t0)
            finally:
                S.LayerAccumulator.add = add  # type: ignore[method-assign]
        a, b = statistics.median(rec), statistics.median(dis)
        print(f"{args.n} soundscapes x {args.seconds:g} s = {audio_s:.0f} s of audio, conv1..conv7")
        print(f"(a) record : {a:7.2f} s  {audio_s / a:7.0f}x real time")
        print(f"(b) dissect: {b:7.2f} s  {audio_s / b:7.0f}x real time")
        acc = sum(layer_s.values())
        print(
            "    counting per layer: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in layer_s.items())
            + f" (summed over the lanes; {acc:.1f} s in all)"
        )
        ratio = a / b
        print(f"dissect speed / record speed = {ratio:.3f} (target >= 0.5)")
        mem_ratio = float("nan")
        if not args.skip_memory:
            small = _scapes(root, max(8, args.n // 4), args.seconds)
            m_small, m_big = _peak_child(small), _peak_child(scapes)
            mem_ratio = m_big / m_small
            print(f"peak memory: {m_small:.0f} MB for {max(8, args.n // 4)} clips, {m_big:.0f} MB for {args.n}")
        print("RESULT " + json.dumps({"dissect_over_record": round(ratio, 4), "memory_ratio": round(mem_ratio, 3)}))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
