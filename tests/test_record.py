"""The recorder end to end, on the real weights and real recordings.

1. hook summaries of unequal-length batches == one clip at a time through ``extract_features``;
2. a ``soundnet-interp record`` killed with SIGKILL and run again == an uninterrupted run;
3. a corpus of bad inputs: every row ends with a clear status, good clips are recorded,
   ``--strict`` exits non-zero (this test records conv1 only: it streams a one-hour file);
4. a long file streamed in 30 s chunks == one forward pass over the whole file.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from interp.corpus.corpora import load_corpus
from interp.recording import RecordConfig, record_corpus
from interp.run.store import STATS, RunError, open_run
from soundnet.audio import fit_length, read_audio, to_model_input
from soundnet.errors import ParameterError
from soundnet.geometry import (
    HEADS_TILE_SAMPLES,
    SAMPLE_RATE_HZ,
    clean_frames,
    frames_to_time,
    min_samples,
    time_to_frames,
    valid_frames,
)
from soundnet.model import HEAD_LAYERS, LAYERS

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-5


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _reference(
    model, y: np.ndarray, layers, *, edge: str, clip_samples: int | None = None
) -> dict[str, dict[str, np.ndarray] | None]:
    """Summaries of one unbatched, unpadded clip straight from ``extract_features``: over every
    frame (``edge="keep"``) or over the clean ones (``"drop"``, soundnet.geometry.clean_frames);
    ``vmean`` over the valid frames (soundnet.geometry.valid_frames) of a clip of
    ``clip_samples`` (default ``len(y)``) samples, padded to ``y``."""
    with torch.inference_mode():
        feats = model.extract_features(to_model_input(y), layers=list(layers))
    out: dict[str, dict[str, np.ndarray] | None] = {}
    for layer, f in feats.items():
        a = f[0].double().numpy()  # (units, frames)
        valid = valid_frames(len(y), layer, clip_samples=clip_samples)
        vmean = a[:, valid].mean(axis=1) if valid.any() else np.full(a.shape[0], np.nan)
        if edge == "drop" and a.shape[1]:
            ok = clean_frames(len(y), layer)
            assert ok.shape == (a.shape[1],)
            a = a[:, ok]
        if a.shape[1] == 0:
            out[layer] = None
            continue
        ref = {
            "mean": a.mean(axis=1),
            "max": a.max(axis=1),
            "peak_s": frames_to_time(a.argmax(axis=1), layer),
            "vmean": vmean,
            "acts": a,
        }
        if layer in HEAD_LAYERS:
            ref["prob"] = torch.softmax(torch.from_numpy(a), dim=0).numpy().mean(axis=1)
        out[layer] = ref
    return out


def _assert_peaks(peak_s: np.ndarray, ref: dict, layer: str, what: str) -> None:
    """``peak_s`` is, per unit, the time of a frame whose activation is the maximum within TOL:
    the reference's first argmax, or a frame tied with it up to float rounding (tiled clips
    repeat themselves, so their frames can tie)."""
    frames = time_to_frames(peak_s, layer)
    np.testing.assert_allclose(frames_to_time(frames, layer), peak_s, atol=1e-4, err_msg=f"{what}: not frame times")
    a = ref["acts"]
    assert (frames < a.shape[1]).all(), what
    reached = a[np.arange(a.shape[0]), frames]
    np.testing.assert_allclose(reached, ref["max"], rtol=TOL, atol=TOL, err_msg=f"{what}: peak is not a max")
    same = np.isclose(peak_s, ref["peak_s"], rtol=0, atol=1e-4)
    assert same.mean() > 0.99, f"{what}: {(~same).sum()} peaks differ from the first argmax"


def _assert_summaries(run, clip_id: str, ref: dict, layers) -> None:
    for layer in layers:
        r = ref[layer]
        for stat in ("mean", "max", "peak_s", "vmean") + (("prob",) if layer in HEAD_LAYERS else ()):
            got = run.activations(layer, stat).loc[clip_id].to_numpy(dtype=np.float64)
            if r is None:
                assert np.isnan(got).all(), (clip_id, layer, stat)
            elif stat == "peak_s":
                _assert_peaks(got, r, layer, f"{clip_id} {layer}")
            elif stat == "vmean" and np.isnan(r["vmean"]).all():
                assert np.isnan(got).all(), (clip_id, layer, "vmean: no valid frame")
            else:
                np.testing.assert_allclose(got, r[stat], rtol=TOL, atol=TOL, err_msg=f"{clip_id} {layer} {stat}")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "interp", "record", *args]


def _write_manifest(path: Path, paths: list, labels: list | None = None) -> Path:
    pd.DataFrame({"path": [str(p) for p in paths], "label": labels or ["x"] * len(paths)}).to_csv(path, index=False)
    return path


def _session_processes(sid: int) -> list[int]:
    """Live processes of session ``sid`` (a process started with ``start_new_session``)."""
    import psutil

    out = []
    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getsid(p.pid) == sid and p.info["status"] != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except (ProcessLookupError, PermissionError):
            pass
    return out


def _tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    out = {"clips": pd.read_parquet(run_dir / "clips.parquet"), "topk": pd.read_parquet(run_dir / "topk.parquet")}
    for f in sorted((run_dir / "activations").glob("*.parquet")):
        out[f.name] = pd.read_parquet(f)
    return out


# ---------------------------------------------------------------------------------------------
# 1. hooks == extract_features, clip by clip
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_corpus(minibank_dir) -> pd.DataFrame:
    """Ten minibank clips of unequal lengths: three under conv5's 0.21 s, a few around the
    median, four of 4 s (same length: a batch without padding)."""
    c = load_corpus(minibank_dir)
    secs = pd.read_csv(minibank_dir / "manifest.csv")["seconds"].to_numpy()
    order = np.argsort(secs, kind="stable")
    pick = list(order[:3]) + list(order[len(order) // 2 : len(order) // 2 + 3]) + list(order[-4:])
    assert secs[order[2]] < min_samples("conv7") / SAMPLE_RATE_HZ
    sub = c.iloc[sorted(pick)].reset_index(drop=True)
    return sub.sample(frac=1.0, random_state=3).reset_index(drop=True)  # not sorted by length


@pytest.mark.slow
@pytest.mark.parametrize("short,fast,edge", [("none", False, "keep"), ("pad", True, "drop")])
def test_hook_summaries_equal_unbatched_extract_features(tmp_path, mixed_corpus, model, short, fast, edge):
    cfg = RecordConfig(short=short, fast=fast, edge=edge, batch_size=4, shard_size=64, workers=0)
    record_corpus(mixed_corpus, tmp_path / "run", config=cfg, model=model, progress=False)
    run = open_run(tmp_path / "run")
    assert (run.clips["status"] == "ok").all()
    conv = LAYERS[:7]
    n_nan = 0
    for row in mixed_corpus.to_dict("records"):
        y = read_audio(row["path"])
        y_conv = fit_length(y, min_samples=min_samples("conv7"), policy="pad") if short == "pad" else y
        ref = _reference(model, y_conv, conv, edge=edge, clip_samples=len(y))
        # heads: clips this short are tiled to 20 s (a clean head frame)
        y_heads = fit_length(y, min_samples=HEADS_TILE_SAMPLES, policy="tile")
        assert len(y_heads) == HEADS_TILE_SAMPLES
        ref.update(_reference(model, y_heads, HEAD_LAYERS, edge=edge))
        n_nan += ref["conv7"] is None
        _assert_summaries(run, row["clip_id"], ref, LAYERS)
        clip = run.clips.set_index("clip_id").loc[row["clip_id"]]
        for layer in conv:  # the valid-frame counts recorded per clip and layer
            assert clip[f"valid_frames_{layer}"] == valid_frames(len(y_conv), layer, clip_samples=len(y)).sum()
    # short="none" leaves the shortest clips without deep frames (NaN rows); "pad" gives them frames
    assert n_nan == (3 if short == "none" else 0)


# ---------------------------------------------------------------------------------------------
# 2. resume after SIGKILL
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_killed_record_resumes_to_the_uninterrupted_tables(tmp_path, minibank_dir, model):
    corpus = load_corpus(minibank_dir)
    manifest = _write_manifest(
        tmp_path / "sixty.csv", corpus["path"].tolist()[::2][:60], corpus["label"].tolist()[::2][:60]
    )
    layers = "conv3,conv7,conv8"
    args = [
        str(manifest),
        "--out",
        str(tmp_path / "killed"),
        "--shard-size",
        "8",
        "--workers",
        "1",
        "--decoder",
        "process",
        "--layers",
        layers,
        "--topk",
        "4",
        "-q",
    ]
    log = tmp_path / "killed.log"
    with open(log, "wb") as fh:  # not a pipe: the decoding workers inherit it
        proc = subprocess.Popen(_cli(*args), cwd=REPO, stdout=fh, stderr=fh, start_new_session=True)
    first_shard = tmp_path / "killed" / "shards" / "00000" / "_SUCCESS"
    try:
        deadline = time.monotonic() + 300
        while not first_shard.exists():
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "no shard was written in 300 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        # the killed recorder's decoding workers (and their forkserver) exit by themselves
        deadline = time.monotonic() + 30
        while _session_processes(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _session_processes(proc.pid)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL
    meta = json.loads((tmp_path / "killed" / "run.json").read_text())
    done = sorted((tmp_path / "killed" / "shards").glob("*/_SUCCESS"))
    assert not meta["complete"] and 1 <= len(done) < 8, (meta["complete"], len(done))
    with pytest.raises(RunError, match="incomplete"):
        open_run(tmp_path / "killed")

    again = subprocess.run(_cli(*args), cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert re.search(r"^60 ok, 0 failed", again.stdout, re.M), again.stdout
    assert f"resumed: {len(done)} shard(s)" in again.stdout

    record_corpus(
        str(manifest),
        tmp_path / "straight",
        model=model,
        layers=tuple(layers.split(",")),
        topk=4,
        shard_size=8,
        workers=0,
        progress=False,
    )
    got, want = _tables(tmp_path / "killed"), _tables(tmp_path / "straight")
    assert sorted(got) == sorted(want) and len(want) == 2 + 3 * len(STATS) + 1
    assert len(got["clips"]) == 60 and got["clips"]["clip_id"].is_unique
    for name in want:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True, obj=name)


# ---------------------------------------------------------------------------------------------
# 3. bad inputs
# ---------------------------------------------------------------------------------------------
def _bad_corpus(tmp: Path, minibank_dir: Path) -> tuple[Path, dict[str, str]]:
    """A manifest mixing good clips and every kind of bad input; returns it and, per path, the
    expected status prefix (or ``ok|<note fragment>``)."""
    corpus = load_corpus(minibank_dir)
    good = [p for p, s in zip(corpus["path"], pd.read_csv(minibank_dir / "manifest.csv")["seconds"]) if s > 1.0][:2]
    y = read_audio(good[0])[:SAMPLE_RATE_HZ]  # 1 s of a real recording
    expect: dict[str, str] = {good[0]: "ok|", good[1]: "ok|"}

    odd = tmp / "dir with spaces" / "ünïcødé clip ©.wav"
    odd.parent.mkdir()
    sf.write(odd, y, SAMPLE_RATE_HZ)
    expect[str(odd)] = "ok|"

    corrupt = tmp / "truncated.wav"
    sf.write(corrupt, y, SAMPLE_RATE_HZ, subtype="PCM_16")
    corrupt.write_bytes(corrupt.read_bytes()[: corrupt.stat().st_size // 2])
    expect[str(corrupt)] = "corrupt"

    empty = tmp / "empty.wav"
    empty.write_bytes(b"")
    expect[str(empty)] = "empty"

    text = tmp / "readme.wav"
    text.write_text("This is a text file that only pretends to be audio.\n" * 20)
    expect[str(text)] = "not audio"

    nan = tmp / "nan.wav"
    z = y.copy()
    z[1000:1100] = np.nan
    sf.write(nan, z, SAMPLE_RATE_HZ, subtype="FLOAT")
    expect[str(nan)] = "non-finite samples"

    six = tmp / "six_channels.wav"
    sf.write(six, np.stack([y * g for g in (1.0, 0.5, 0.25, 0.8, 0.1, 0.6)], axis=1), SAMPLE_RATE_HZ)
    expect[str(six)] = "ok|mixed 6 channels to mono"

    for rate in (192_000, 8_000):
        p = tmp / f"rate_{rate}.wav"
        sf.write(p, soxr.resample(y, SAMPLE_RATE_HZ, rate), rate, subtype="FLOAT")
        expect[str(p)] = f"ok|resampled {rate} Hz -> 22050 Hz"

    hour = tmp / "one_hour_tone.flac"  # a quiet 440 Hz tone at 8 kHz, ~8 MB of FLAC
    with sf.SoundFile(hour, "w", samplerate=8000, channels=1, subtype="PCM_16", format="FLAC") as f:
        for minute in range(60):
            t = (np.arange(60 * 8000) + minute * 60 * 8000) / 8000
            f.write((0.01 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))
    expect[str(hour)] = "ok|streamed in chunks"

    missing = tmp / "not_there.wav"
    expect[str(missing)] = "missing"

    paths = [
        good[0],
        odd,
        corrupt,
        empty,
        text,
        nan,
        six,
        tmp / "rate_192000.wav",
        tmp / "rate_8000.wav",
        hour,
        missing,
        good[1],
        good[0],
    ]  # the last row repeats the first
    return _write_manifest(tmp / "bad inputs.csv", paths), expect


@pytest.mark.slow
def test_bad_inputs_end_as_statuses_and_strict_fails(tmp_path, minibank_dir):
    manifest, expect = _bad_corpus(tmp_path, minibank_dir)
    out = tmp_path / "run"
    # conv1 only: the one-hour file is streamed through the model in full
    res = subprocess.run(
        _cli(str(manifest), "--out", str(out), "--layers", "conv1", "--chunk-s", "300", "--workers", "1", "--strict"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode != 0, res.stdout + res.stderr[-2000:]
    assert re.search(r"^7 ok, 6 failed \(13 clips", res.stdout, re.M), res.stdout + res.stderr[-2000:]
    assert "--strict: 6 clip(s) failed" in res.stderr
    # the progress bar: clips/s, x real time, ETA
    assert re.search(r"clip/s", res.stderr) and "x real time" in res.stderr and "ETA" in res.stderr

    run = open_run(out)
    clips = run.clips
    assert len(clips) == 13 and clips["order"].tolist() == list(range(13))
    first = clips.iloc[0]
    dup = clips.iloc[12]
    assert dup["status"] == f"duplicate: same file and range as {first['clip_id']}"
    for row in clips.iloc[:12].to_dict("records"):
        want = expect[row["path"]]
        if want.startswith("ok|"):
            assert row["status"] == "ok", (row["path"], row["status"])
            assert want[3:] in row["note"], (row["path"], row["note"])
            assert row["duration_s"] > 0.9
        else:
            assert row["status"].startswith(want + ":"), (row["path"], row["status"])
            assert len(row["status"]) > len(want) + 3  # a reason follows
    hour = clips[clips["path"].str.endswith("one_hour_tone.flac")].iloc[0]
    assert "resampled 8000 Hz -> 22050 Hz" in hour["note"] and hour["sample_rate_hz"] == 8000
    assert abs(hour["duration_s"] - 3600.0) < 0.01
    six = clips[clips["path"].str.endswith("six_channels.wav")].iloc[0]
    assert six["note"] == "mixed 6 channels to mono"
    # a failed file's rate is its header's when libsndfile read that, else -1
    rate = dict(zip(clips["path"].map(lambda p: Path(p).name), clips["sample_rate_hz"]))
    assert rate["nan.wav"] == SAMPLE_RATE_HZ
    assert rate["truncated.wav"] == rate["empty.wav"] == rate["readme.wav"] == rate["not_there.wav"] == -1
    # every good clip is recorded, with finite values, in corpus order
    acts = run.activations("conv1", "max")
    assert acts.index.tolist() == clips.loc[clips["status"] == "ok", "clip_id"].tolist()
    assert np.isfinite(acts.to_numpy()).all() and (acts.to_numpy() >= 0).all()
    assert (acts.to_numpy().max(axis=1) > 0).all()
    peaks = run.activations("conv1", "peak_s").loc[hour["clip_id"]].to_numpy()
    assert (peaks >= 0).all() and (peaks <= 3600.0).all()


# ---------------------------------------------------------------------------------------------
# 4. long files in chunks
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_chunked_long_file_equals_one_pass(tmp_path, long_dir, model):
    y = np.concatenate([read_audio(p) for p in sorted(long_dir.glob("*.flac"))[:3]])
    assert 60 < len(y) / SAMPLE_RATE_HZ < 90
    path = tmp_path / "long.wav"
    sf.write(path, y, SAMPLE_RATE_HZ, subtype="FLOAT")
    corpus = load_corpus(_write_manifest(tmp_path / "long.csv", [path]))
    record_corpus(corpus, tmp_path / "chunked", model=model, chunk_s=30.0, workers=0, progress=False)
    record_corpus(corpus, tmp_path / "whole", model=model, chunk_s=1000.0, workers=0, progress=False)
    chunked, whole = open_run(tmp_path / "chunked"), open_run(tmp_path / "whole")
    assert "streamed in chunks" in chunked.clips["note"].iloc[0]
    assert "streamed" not in whole.clips["note"].iloc[0]
    assert chunked.clips["duration_s"].iloc[0] == pytest.approx(len(y) / SAMPLE_RATE_HZ, abs=1e-6)
    cid = corpus["clip_id"].iloc[0]
    ref = _reference(model, y, LAYERS, edge="drop")
    for layer in LAYERS:
        for stat in ("mean", "max", "peak_s", "vmean") + (("prob",) if layer in HEAD_LAYERS else ()):
            a = chunked.activations(layer, stat).loc[cid].to_numpy(dtype=np.float64)
            b = whole.activations(layer, stat).loc[cid].to_numpy(dtype=np.float64)
            if stat == "peak_s":  # the same frame, up to float ties
                _assert_peaks(a, ref[layer], layer, f"chunked {layer}")
                assert np.isclose(a, b, rtol=0, atol=1e-4).mean() > 0.99, layer
            else:
                np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL, err_msg=f"{layer} {stat}")
    # and the one pass is extract_features over the whole file
    _assert_summaries(whole, cid, ref, LAYERS)
    # edge="drop": conv7's padded last frame holds no clip's peak
    last7 = frames_to_time(len(clean_frames(len(y), "conv7")) - 1, "conv7")
    for run in (chunked, whole):
        assert (run.activations("conv7", "peak_s").loc[cid] < last7 - 1e-3).all()


# ---------------------------------------------------------------------------------------------
# the cache key
# ---------------------------------------------------------------------------------------------
def test_a_run_made_from_other_settings_is_refused(tmp_path, minibank_dir, model):
    corpus = load_corpus(minibank_dir).iloc[:3]
    out = tmp_path / "run"
    s = record_corpus(corpus, out, model=model, layers=("conv1",), workers=0, progress=False)
    assert str(s).startswith("3 ok, 0 failed")
    again = record_corpus(corpus, out, model=model, layers=("conv1",), workers=0, progress=False, batch_size=2)
    assert again.n_ok == 3 and "nothing left to record" in str(again)  # execution settings: same run
    with pytest.raises(RunError, match="other inputs"):
        record_corpus(corpus, out, model=model, layers=("conv1",), topk=3, workers=0, progress=False)
    record_corpus(corpus, out, model=model, layers=("conv1",), topk=3, workers=0, progress=False, overwrite=True)
    assert json.loads((out / "run.json").read_text())["settings"]["topk"] == 3
    assert len(open_run(out).topk("conv1", 0)) == 3


# ---------------------------------------------------------------------------------------------
# decoding workers
# ---------------------------------------------------------------------------------------------
def test_a_killed_decoding_worker_loses_no_clip(minibank_dir):
    import psutil

    from interp.recording.workers import process_decode_stream

    rows = load_corpus(minibank_dir).iloc[:24].to_dict("records")
    me = psutil.Process()
    got, killed = [], []
    for i, d in enumerate(process_decode_stream(rows, workers=2, lookahead=8, long_s=120.0)):
        got.append(d)
        if i in (3, 12):  # kill a busy worker (a forked child: same command line as this process)
            workers = [
                p
                for p in me.children()
                if p.pid not in killed and p.cmdline() == me.cmdline() and p.status() != psutil.STATUS_ZOMBIE
            ]
            assert workers, "no decoding worker found"
            killed.append(workers[0].pid)
            os.kill(workers[0].pid, signal.SIGKILL)
    assert [d.order for d in got] == list(range(24))
    assert all(d.status == "ok" and d.audio is not None and d.audio.size for d in got)
    for pid in killed:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_process_decoder_gives_the_inline_result_in_order(tmp_path, minibank_dir):
    from interp.recording.decode import decode_row_safe
    from interp.recording.workers import process_decode_stream

    rows = load_corpus(minibank_dir).iloc[:12].to_dict("records")
    rows[5] = dict(rows[5], path=str(tmp_path / "missing.wav"))  # a failure mid-stream
    inline = [decode_row_safe(r, 120.0) for r in rows]
    assert inline[5].status.startswith("missing") and all(d.status == "ok" for k, d in enumerate(inline) if k != 5)
    stream = process_decode_stream(rows, workers=2, lookahead=3, long_s=120.0)
    got = list(stream)
    stream.close()  # idempotent after exhaustion
    assert [(d.order, d.status, str(d.duration_s)) for d in got] == [
        (d.order, d.status, str(d.duration_s)) for d in inline
    ]
    for a, b in zip(got, inline):
        assert (a.audio is None) == (b.audio is None)
        if a.audio is not None:
            np.testing.assert_array_equal(a.audio, b.audio)
    # a consumer that stops early can close the stream: nothing keeps running
    stream = process_decode_stream(rows, workers=2, lookahead=3, long_s=120.0)
    next(stream)
    stream.close()
    with pytest.raises(ParameterError, match="decoder"):
        RecordConfig(decoder="fork")


def test_batches_of_a_plan_give_the_same_summaries_in_any_order(minibank_dir, long_dir, model):
    """Lanes run a shard's batches in any order: a clip without a clean head frame must get its
    heads from the tiled second pass whether the main pass runs before or after it."""
    from interp.recording.decode import Decoded
    from interp.recording.engine import BatchEngine

    waves = [read_audio(p) for p in sorted((minibank_dir / "audio").rglob("*.flac"))[:3]]
    full = read_audio(sorted(long_dir.glob("*.flac"))[0])
    waves += [full[: 12 * SAMPLE_RATE_HZ], full[: 10 * SAMPLE_RATE_HZ], full[: 25 * SAMPLE_RATE_HZ]]
    clips = [Decoded(i, f"c{i}", y, "ok", "", len(y) / SAMPLE_RATE_HZ, SAMPLE_RATE_HZ) for i, y in enumerate(waves)]
    for fast in (True, False):
        engine = BatchEngine(model, RecordConfig(layers=("conv5", "conv8", "conv8_2"), batch_size=4, fast=fast))
        runs = []
        for order in (1, -1):
            out, jobs = engine.plan(clips)
            assert len(jobs) >= 3  # main-pass batches and a heads batch
            for job in jobs[::order]:
                job()
            runs.append(out)
        for i in range(len(clips)):
            for layer in ("conv5", "conv8", "conv8_2"):
                for stat in ("mean", "max", "peak_s"):
                    a, b = runs[0][i][layer][stat], runs[1][i][layer][stat]
                    np.testing.assert_array_equal(a, b, err_msg=f"fast={fast} clip {i} {layer} {stat}")
                    assert np.isfinite(a).all(), (fast, i, layer, stat)  # heads from the tiled pass


@pytest.mark.slow
def test_lanes_give_the_one_lane_tables(tmp_path, minibank_dir, model):
    """Two lanes (decoding in threads or from worker processes) over many small shards and
    batches, with failures and short clips among them: the tables of one lane."""
    corpus = load_corpus(minibank_dir).iloc[:23].reset_index(drop=True)
    corpus.loc[4, "path"] = str(tmp_path / "missing.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corpus.loc[17, "path"] = str(empty)
    settings = dict(model=model, layers=("conv1", "conv5", "conv8"), topk=3, shard_size=5, batch_size=2, progress=False)
    threads = torch.get_num_threads()
    record_corpus(corpus, tmp_path / "one", workers=0, **settings)
    want = _tables(tmp_path / "one")
    assert (want["clips"]["status"] != "ok").sum() == 2 and len(want["clips"]) == 23
    for decoder in ("thread", "process"):
        s = record_corpus(corpus, tmp_path / decoder, workers=2, decoder=decoder, **settings)
        assert str(s).startswith("21 ok, 2 failed")
        got = _tables(tmp_path / decoder)
        ok = got["clips"]["status"] == "ok"  # the progress counts each clip once
        assert s.audio_s == pytest.approx(got["clips"].loc[ok, "duration_s"].sum(), rel=1e-9)
        assert sorted(got) == sorted(want)
        for name in want:  # the same batches; threads per lane may round differently (head logits by ~1e-6)
            pd.testing.assert_frame_equal(
                got[name], want[name], check_exact=False, rtol=1e-5, atol=1e-5, obj=f"{decoder}: {name}"
            )
    # the plain model's hooks are shared by the lanes: its forward passes take turns
    record_corpus(corpus, tmp_path / "plain-one", workers=0, fast=False, **settings)
    record_corpus(corpus, tmp_path / "plain-two", workers=2, fast=False, **settings)
    want, got = _tables(tmp_path / "plain-one"), _tables(tmp_path / "plain-two")
    for name in want:
        pd.testing.assert_frame_equal(
            got[name], want[name], check_exact=False, rtol=1e-5, atol=1e-5, obj=f"plain: {name}"
        )
    assert torch.get_num_threads() == threads  # the caller's setting is restored


def test_head_waveform_tiles_only_clips_without_a_clean_head_frame(minibank_dir):
    from interp.recording import head_waveform

    y = read_audio(load_corpus(minibank_dir)["path"].iloc[0])
    tiled = head_waveform(y, heads_short="tile")
    assert len(tiled) == HEADS_TILE_SAMPLES
    np.testing.assert_array_equal(tiled, np.tile(y, -(-HEADS_TILE_SAMPLES // len(y)))[:HEADS_TILE_SAMPLES])
    padded = head_waveform(y, heads_short="pad")
    assert len(padded) == HEADS_TILE_SAMPLES and not padded[len(y) :].any()
    assert head_waveform(y, heads_short="none") is y
    only_dirty = np.resize(y, 230_000)  # 10.4 s: its one head frame reads conv7's padded edge
    assert len(head_waveform(only_dirty)) == HEADS_TILE_SAMPLES
    clean = np.resize(y, 260_000)  # 11.8 s: one clean head frame, used as it is
    assert head_waveform(clean) is clean


def test_frame_reductions_compiled_equal_python_and_numpy():
    """The compiled reduction (mean, max, argmax over each clip's valid frames) on the same
    numbers as plain Python and as numpy: equal lengths, unequal lengths, a clip without frames,
    a layer without frames."""
    import interp.recording.reduce as reduce

    assert isinstance(reduce._REDUCE_FRAMES, torch.jit.ScriptFunction)
    rng = np.random.default_rng(7)
    out = torch.from_numpy(rng.standard_normal((4, 5, 9)).astype(np.float32))
    for valid in ([9, 9, 9, 9], [9, 3, 1, 6], [4, 0, 2, 9], [0, 0, 0, 0]):
        v = torch.tensor(valid)
        compiled = reduce._REDUCE_FRAMES(out, v)
        python = reduce._reduce_frames(out, v)
        for a, b in zip(compiled, python):
            assert torch.equal(a, b) or (
                (torch.isnan(a) == torch.isnan(b)).all() and torch.equal(a.nan_to_num(), b.nan_to_num())
            )
        mean, mx, arg = (t.numpy() for t in compiled)
        for i, k in enumerate(valid):
            if k == 0:
                assert np.isnan(mean[i]).all() and np.isnan(mx[i]).all()
                continue
            frames = out[i, :, :k].numpy()
            np.testing.assert_allclose(mean[i], frames.mean(axis=1), rtol=1e-6, atol=1e-6)
            np.testing.assert_array_equal(mx[i], frames.max(axis=1))
            np.testing.assert_array_equal(arg[i], frames.argmax(axis=1))
    empty = reduce._REDUCE_FRAMES(out[:, :, :0], torch.tensor([0, 0, 0, 0]))
    assert all(t.shape == (4, 5) for t in empty) and torch.isnan(empty[0]).all()


def test_tapered_batches_stay_within_their_batches():
    """The last shard's batches are re-cut into quarters, each original batch on its own: a batch
    kept small by the sample cap (long clips) never grows."""
    from interp.recording.engine import _tapered

    plain = [list(range(i, min(i + 16, 72))) for i in range(0, 72, 16)]  # 16, 16, 16, 16, 8
    tapered = _tapered(plain, 16)
    assert [len(b) for b in tapered] == [16, 16, 16, 4, 4, 4, 4, 4, 4]
    assert [i for b in tapered for i in b] == list(range(72))  # same clips, same order
    capped = [list(range(i, i + 4)) for i in range(0, 64, 4)]  # batch_size 64, 4 clips per batch allowed
    assert max(len(b) for b in _tapered(capped, 64)) <= 4
    assert [i for b in _tapered(capped, 64) for i in b] == list(range(64))


def test_merge_holds_no_file_per_shard(tmp_path, minibank_dir):
    """The merge of more shards than the process may open files (one clip per shard, the file
    limit set below the shard count) completes: shard matrices are read, not kept open."""
    rows = load_corpus(minibank_dir).iloc[:4]
    paths = [p for p in rows["path"] for _ in range(30)]  # 120 clips: the same 4 files, excerpts
    manifest = tmp_path / "many.csv"
    pd.DataFrame(
        {
            "path": paths,
            "label": "x",
            "start_s": [0.01 * i for i in range(120)],
            "end_s": [0.01 * i + 0.5 for i in range(120)],
        }
    ).to_csv(manifest, index=False)
    run = tmp_path / "run"
    record_corpus(str(manifest), run, layers=("conv1", "conv2"), shard_size=1, workers=1, progress=False)
    script = (  # the merge again, under the limit
        "import json, os, resource, sys\n"
        "from pathlib import Path\n"
        "from interp.recording.merge import merge\n"
        f"run = Path({str(run)!r})\n"
        "open_now = len(os.listdir('/proc/self/fd'))\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 60, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))\n"
        "clips = merge(run, 120, ('conv1', 'conv2'), {'conv1': 16, 'conv2': 32}, 16)\n"
        "print(len(clips))\n"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split()[-1] == "120"
    acts = open_run(run).activations("conv2", "max")
    assert len(acts) == 120 and np.isfinite(acts.to_numpy()).all()
