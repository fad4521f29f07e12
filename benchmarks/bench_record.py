"""Recording throughput: the seed's way against the toolkit's ``record``, in one run.

On one generated corpus (default 200 clips of 5 s of real minibank audio written as 44.1 kHz WAV,
so that decoding and resampling count), this measures

(a) the seed's way: the seed's model structure (``Conv2d`` with width 1, as ``SoundNet8_pytorch``),
    per-clip ``librosa.load`` at 22050 Hz, ``extract_feat`` to numpy, summaries in numpy;
(b) the toolkit's ``record_corpus`` (``--workers`` lanes, threads that each decode clips and
    run whole batches single-threaded, or take the clips from worker processes with ``--decoder
    process``; the fast inference path; per-clip summaries; shards, merge into Parquet tables
    and top-k),

both over conv1..conv7. Both ways first run on 8 clips (one-time costs such as librosa's lazy
imports and numba compilation are not counted), then ``--repeats`` timed runs of each,
interleaved; medians are reported. It prints x real time for each and the ratio b/a; the
model's FLOPs per audio second, the forward pass's achieved GFLOP/s (batches as ``record`` runs
them) and a float32 GEMM peak measured in the same run, with their ratio; and the peak memory of
``record`` for 100 and 1,000 clips. The last line is machine-readable::

    RESULT peak_fraction=<forward GFLOP/s / GEMM peak> speedup=<b / a> memory_ratio=<peak 1000 / peak 100>

Usage: ``python benchmarks/bench_record.py [--clips 200] [--seconds 5] [--repeats 3]
[--workers 2] [--decoder thread] [--skip-memory]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from interp.recording import RecordConfig  # noqa: E402
from soundnet.fast import FastSoundNet, flops_per_second_of_audio  # noqa: E402
from soundnet.model import CONV_LAYERS, LAYER_SPECS, load_soundnet  # noqa: E402


# --------------------------------------------------------------------------------------------
# (a) the seed's way
# --------------------------------------------------------------------------------------------
class SeedSoundNet8(nn.Module):
    """The seed course code's model structure: Conv2d of width 1 on (batch, 1, T, 1) inputs."""

    def __init__(self) -> None:
        super().__init__()
        for spec in LAYER_SPECS[:7]:  # conv1..conv7: Conv2d (k, 1), BatchNorm2d, ReLU, max-pool
            mods = [
                nn.Conv2d(spec.in_channels, spec.out_channels, (spec.kernel, 1), (spec.stride, 1), (spec.padding, 0)),
                nn.BatchNorm2d(spec.out_channels),
                nn.ReLU(inplace=True),
            ]
            if spec.pool:
                mods.append(nn.MaxPool2d((spec.pool, 1), (spec.pool, 1)))
            setattr(self, spec.name, nn.Sequential(*mods))

    def extract_feat(self, x: torch.Tensor) -> list[np.ndarray]:
        out = []
        for net in [self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6, self.conv7]:
            x = net(x)
            out.append(x.detach().cpu().numpy())
        return out


def seed_model() -> SeedSoundNet8:
    """The seed structure with the real weights (Conv1d kernels unsqueezed to width 1)."""
    plain = load_soundnet().state_dict()
    m = SeedSoundNet8()
    sd = {
        k: (v.unsqueeze(-1) if k.endswith(".0.weight") else v)
        for k, v in plain.items()
        if k.split(".")[0] in CONV_LAYERS
    }
    m.load_state_dict(sd)
    return m.eval()


def run_seed_way(paths: list[str]) -> tuple[float, dict]:
    """Per clip: librosa.load (22050 Hz, mono), extract_feat, numpy mean/max/argmax per layer."""
    import librosa

    model = seed_model()
    summaries = {}
    t0 = time.perf_counter()
    for p in paths:
        y, _ = librosa.load(p, sr=22050, mono=True)
        x = torch.from_numpy(y * 256.0).reshape(1, 1, -1, 1)
        with torch.no_grad():
            feats = model.extract_feat(x)
        summaries[p] = [
            (f[0, :, :, 0].mean(axis=1), f[0, :, :, 0].max(axis=1), f[0, :, :, 0].argmax(axis=1)) for f in feats
        ]
    return time.perf_counter() - t0, summaries


# --------------------------------------------------------------------------------------------
# (b) the toolkit
# --------------------------------------------------------------------------------------------
def run_toolkit(manifest: Path, out: Path, *, workers: int, decoder: str = "thread") -> float:
    """Wall seconds of ``record_corpus`` (conv1..conv7, default settings otherwise) into ``out``."""
    from interp.recording import record_corpus

    t0 = time.perf_counter()
    record_corpus(
        str(manifest),
        out,
        layers=CONV_LAYERS,
        heads_short="none",
        workers=workers,
        decoder=decoder,
        progress=False,
        overwrite=True,
    )
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# machine figures
# --------------------------------------------------------------------------------------------
def gemm_peak_gflops(n: int = 2048, repeats: int = 7) -> float:
    """Best float32 GEMM throughput (GFLOP/s) of torch.mm on n x n matrices
    (:func:`bench_forward.gemm_times`)."""
    from bench_forward import gemm_times

    return 2 * n**3 / min(wall for wall, _ in gemm_times(size=n, repeats=repeats)) / 1e9


def forward_gflops(seconds: float, *, batch: int, repeats: int = 7) -> tuple[float, float]:
    """(GFLOP/s, x real time) of the fast forward pass conv1..conv7 on a batch of clips, as
    ``record`` runs it (outputs left in the model's time-major buffers: ``contiguous=False``)."""
    fast = FastSoundNet(load_soundnet())
    x = torch.randn(batch, 1, int(seconds * 22050)) * 20
    fast.extract_features(x, layers=list(CONV_LAYERS), contiguous=False)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fast.extract_features(x, layers=list(CONV_LAYERS), contiguous=False)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    audio_s = batch * seconds
    return flops_per_second_of_audio(CONV_LAYERS) * audio_s / t / 1e9, audio_s / t


def make_corpus(folder: Path, n_clips: int, seconds: float, *, sr: int = 44100) -> Path:
    """``n_clips`` WAV files of ``seconds`` s at ``sr`` Hz, excerpts of real minibank audio
    (:func:`bench_memory.make_corpus`); returns their manifest."""
    import bench_memory

    manifest = folder / "manifest.csv"
    bench_memory.make_corpus(folder, n_clips=n_clips, seconds=seconds, sr=sr).to_csv(manifest, index=False)
    return manifest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2, help="record's lanes (see interp.recording.RecordConfig)")
    ap.add_argument(
        "--decoder",
        choices=("thread", "process"),
        default="thread",
        help="record's decoder (see interp.recording.RecordConfig)",
    )
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each way, interleaved (medians)")
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-record-"))
    try:
        manifest = make_corpus(tmp / "corpus", args.clips, args.seconds)
        table = pd.read_csv(manifest)
        paths = table["path"].tolist()
        audio_s = args.clips * args.seconds
        print(
            f"corpus: {args.clips} clips x {args.seconds:g} s at 44.1 kHz WAV ({audio_s:.0f} s of audio); "
            f"torch threads {torch.get_num_threads()}; record: {args.workers} lanes, decoder {args.decoder}"
        )

        # Warm-up, the same for both ways, on 8 clips: first calls pay one-time costs that a
        # recording of a real corpus amortises (librosa's lazy imports and numba compilation,
        # about 1.2 s on the seed's side; torch's and pyarrow's first calls on ours).
        warm = tmp / "warmup.csv"
        table.iloc[:8].to_csv(warm, index=False)
        run_seed_way(paths[:8])
        run_toolkit(warm, tmp / "warmup", workers=args.workers, decoder=args.decoder)
        t_seed, t_tool = [], []
        for r in range(args.repeats):
            t_seed.append(run_seed_way(paths)[0])
            t_tool.append(run_toolkit(manifest, tmp / f"run{r}", workers=args.workers, decoder=args.decoder))
            print(f"  repeat {r + 1}: seed's way {t_seed[-1]:.2f} s, record {t_tool[-1]:.2f} s")
        ta, tb = statistics.median(t_seed), statistics.median(t_tool)
        xa, xb = audio_s / ta, audio_s / tb
        print(f"(a) seed's way:        {ta:7.2f} s  {xa:7.1f}x real time  (median of {args.repeats})")
        print(f"(b) toolkit record:    {tb:7.2f} s  {xb:7.1f}x real time  (median of {args.repeats})")
        print(f"speedup b/a:           {xb / xa:7.2f}")

        flops = flops_per_second_of_audio(CONV_LAYERS)
        peak = gemm_peak_gflops()
        batch = RecordConfig().batch_size
        fwd, fwd_x = forward_gflops(args.seconds, batch=batch)
        with_heads = flops_per_second_of_audio(list(CONV_LAYERS) + ["conv8", "conv8_2"])
        print(
            f"model cost:            {flops / 1e6:7.1f} MFLOP per audio second (conv1..conv7), "
            f"{with_heads / 1e6:.1f} with the heads"
        )
        print(f"GEMM peak (float32):   {peak:7.1f} GFLOP/s")
        print(
            f"forward conv1..conv7:  {fwd:7.1f} GFLOP/s  ({fwd_x:.0f}x real time; batches of {batch} clips as "
            f"record runs them)  = {fwd / peak:.0%} of GEMM peak"
        )

        ratio = float("nan")
        if not args.skip_memory:
            import bench_memory

            mem_args = argparse.Namespace(
                workers=args.workers, decoder=args.decoder, batch_size=16, shard_size=128, layers="", interval_s=0.05
            )
            rows = bench_memory.make_corpus(tmp / "mem", n_clips=1000, seconds=2.0)
            rows.iloc[:100].to_csv(tmp / "mem100.csv", index=False)
            rows.to_csv(tmp / "mem1000.csv", index=False)
            m100 = bench_memory.record_peak(tmp / "mem100.csv", tmp / "run_mem100", mem_args)["peak"]
            m1000 = bench_memory.record_peak(tmp / "mem1000.csv", tmp / "run_mem1000", mem_args)["peak"]
            ratio = m1000 / m100
            print(
                f"peak memory record:    {m100 / 2**20:7.0f} MiB for 100 clips, {m1000 / 2**20:.0f} MiB "
                f"for 1,000 (2 s clips, all layers, incl. any decoding processes; ratio {ratio:.2f})"
            )
        print(f"RESULT peak_fraction={fwd / peak:.3f} speedup={xb / xa:.2f} memory_ratio={ratio:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
