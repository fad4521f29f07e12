"""The Ray engine records the same run directory as the local engine; its workers write the shards.

One local Ray instance (2 CPUs, small object store) serves the whole module. The corpus is a CSV
manifest of 24 real minibank clips, one 35 s file stitched from two real recordings (streamed in
chunks) and five bad rows (missing, corrupt, silent, empty, a duplicate), in shards of 6 clips.
The shard store (:mod:`interp.recording.ray_writer`) is tested on the local filesystem, directly
and through fsspec (the path an object store takes: upload, ``_SUCCESS`` last).
"""

from __future__ import annotations

import json
import shutil

import fsspec
import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
import ray
import soundfile as sf

from interp.recording import RecordConfig, record_corpus
from interp.recording.decode import Decoded
from interp.recording.ray_engine import _calls, record_corpus_ray
from interp.recording.ray_writer import ShardStore, as_filesystem
from interp.recording.shards import SHARD_MATRIX, shard_dir, shard_done, write_shard
from interp.run.store import STATS, RunError, open_run

CONFIG = RecordConfig(shard_size=6, batch_size=4, workers=0, topk=5, chunk_s=30.0)
N_GOOD = 24


@pytest.fixture(scope="module")
def ray_local():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=500 * 2**20, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus_csv(tmp_path_factory, minibank_dir, long_dir):
    """A manifest of real clips plus bad rows, and what each bad row must become."""
    root = tmp_path_factory.mktemp("ray-corpus")
    manifest = pd.read_csv(minibank_dir / "manifest.csv")
    picked = manifest.groupby("label", sort=True).head(3).head(N_GOOD)  # every label, short and long clips
    rows = [{"path": str(minibank_dir / p), "label": lab} for p, lab in zip(picked["path"], picked["label"])]
    # a 35 s file (over chunk_s): 30 s of orchestra + 5 s of whale song
    a, sr = sf.read(long_dir / "hungarian_dance_5.flac", dtype="float32")
    b, _ = sf.read(long_dir / "humpback_whale.flac", dtype="float32", frames=5 * sr)
    sf.write(root / "stitched_35s.wav", np.concatenate([a.reshape(len(a), -1)[:, 0], b.reshape(len(b), -1)[:, 0]]), sr)
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt this is not audio at all" * 4)
    sf.write(root / "silent.wav", np.zeros(22050, dtype=np.float32), 22050)
    sf.write(root / "empty.wav", np.zeros(0, dtype=np.float32), 22050)
    rows[3:3] = [
        {"path": str(root / "stitched_35s.wav"), "label": "music"},
        {"path": str(root / "missing.wav"), "label": "speech"},
    ]
    rows[11:11] = [
        {"path": str(root / "corrupt.wav"), "label": "tabla"},
        {"path": rows[0]["path"], "label": rows[0]["label"]},  # duplicate of row 0
        {"path": str(root / "silent.wav"), "label": "ambient"},
    ]
    rows.append({"path": str(root / "empty.wav"), "label": "cymbal"})
    path = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    expected = {"missing.wav": "missing", "corrupt.wav": "corrupt", "silent.wav": "silent", "empty.wav": "empty"}
    return path, expected


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, corpus_csv, model):
    out = tmp_path_factory.mktemp("local") / "run"
    record_corpus(corpus_csv[0], out, config=CONFIG, model=model, progress=False)
    return open_run(out)


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, corpus_csv, ray_local):
    out = tmp_path_factory.mktemp("ray") / "run"
    summary = record_corpus_ray(corpus_csv[0], out, config=CONFIG, num_actors=1, progress=False)
    return open_run(out), summary


def _shard(tmp_path, i: int = 3):
    """A run-directory-shaped folder holding shard ``i`` (two ok clips, one missing) written by
    write_shard."""
    scratch = tmp_path / "scratch"
    rows = [{"clip_id": f"c{o}", "path": f"/x/{o}.wav", "order": o, "status": "ok"} for o in (0, 1, 2)]
    decoded = [
        Decoded(0, "c0", None, "ok", "", 1.0, 22050),
        Decoded(1, "c1", None, "missing: no file", "", float("nan"), -1),
        Decoded(2, "c2", None, "ok", "", 2.0, 44100),
    ]
    units = {"conv1": 16}
    summaries = {o: {"conv1": {st: np.full(16, o + k, np.float32) for k, st in enumerate(STATS)}} for o in (0, 2)}
    write_shard(scratch, i, rows, decoded, summaries, units, ("conv1",))
    return scratch


def test_shard_store_publishes_through_a_filesystem(tmp_path):
    scratch = _shard(tmp_path)
    expected = {p.name: p.read_bytes() for p in shard_dir(scratch, 3).iterdir()}
    # through fsspec, as an object store: no rename, every file uploaded, _SUCCESS last
    root = tmp_path / "run"
    store = ShardStore.of((fsspec.filesystem("file"), str(root)))
    assert store.local_root() is None and not store.done(3)
    store.publish(scratch, 3)
    assert {p.name: p.read_bytes() for p in shard_dir(root, 3).iterdir()} == expected
    assert store.done(3) and shard_done(root, 3) and not shard_dir(scratch, 3).exists()
    # published again over an older copy (a shard recorded twice): replaced
    scratch = _shard(tmp_path)
    (shard_dir(root, 3) / SHARD_MATRIX).write_bytes(b"stale")
    store.publish(scratch, 3)
    assert (shard_dir(root, 3) / SHARD_MATRIX).read_bytes() == expected[SHARD_MATRIX]
    # a shard without its _SUCCESS is not done, and is refused
    (shard_dir(root, 3) / "_SUCCESS").unlink()
    assert not store.done(3)
    with pytest.raises(FileNotFoundError, match="not complete"):
        store.publish(tmp_path / "nothing", 3)
    # fetched back into another run directory: the same bytes, renamed into place when complete
    home = tmp_path / "home"
    scratch = _shard(tmp_path)
    store.publish(scratch, 3)
    store.fetch(3, home)
    assert {p.name: p.read_bytes() for p in shard_dir(home, 3).iterdir()} == expected
    assert shard_done(home, 3) and [p.name for p in (home / "shards").iterdir()] == ["00003"]
    with pytest.raises(FileNotFoundError, match="not complete in the store"):
        store.fetch(4, home)
    assert not store.is_at(home) and ShardStore.of(home).is_at(home)
    ShardStore.of(home).fetch(3, home)  # the store is the run directory: nothing to do
    # a local path or a file:// URI: shards are written in place (nothing to publish)
    for where in (root, f"file://{root}"):
        local = ShardStore.of(where)
        assert local.local_root() == root.resolve()
        with local.scratch() as folder:
            assert folder == root.resolve()
    with pytest.raises(TypeError, match=r"pyarrow\.fs\.FileSystem"):
        as_filesystem("s3://bucket")
    assert isinstance(as_filesystem(pafs.LocalFileSystem()), pafs.LocalFileSystem)


def test_calls_are_runs_of_consecutive_shards():
    # two calls per actor at least, at most 2048 clips each, never across a gap
    assert _calls([0, 1, 2], 128, 1) == [[0, 1], [2]]
    assert _calls(list(range(10)), 1024, 1) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert _calls([0, 1, 3, 4, 5], 6, 1) == [[0, 1], [3, 4, 5]]
    assert _calls(list(range(5)), 128, 4) == [[i] for i in range(5)]
    calls = _calls(list(range(1000)), 128, 8)
    assert [i for c in calls for i in c] == list(range(1000)) and max(map(len, calls)) == 16


def _assert_same_tables(a, b) -> None:
    """Two run directories hold the same clips, activations (within 1e-5) and top-k."""
    pd.testing.assert_frame_equal(a.clips, b.clips)
    files = sorted(p.name for p in (a.path / "activations").glob("*.parquet"))
    assert files == sorted(p.name for p in (b.path / "activations").glob("*.parquet"))
    assert len(files) == 9 * len(STATS) + 2  # conv1..conv8_2 x mean/max/peak_s/vmean, prob for the two heads
    for name in files:
        x = pd.read_parquet(a.path / "activations" / name)
        y = pd.read_parquet(b.path / "activations" / name)
        assert x["clip_id"].tolist() == y["clip_id"].tolist(), name
        assert list(x.columns) == list(y.columns), name
        np.testing.assert_allclose(
            y.drop(columns="clip_id").to_numpy(),
            x.drop(columns="clip_id").to_numpy(),
            rtol=1e-5,
            atol=1e-5,
            err_msg=name,
        )
    ta, tb = pd.read_parquet(a.path / "topk.parquet"), pd.read_parquet(b.path / "topk.parquet")
    key = ["layer", "unit", "rank", "clip_id"]
    pd.testing.assert_frame_equal(ta[key], tb[key])
    np.testing.assert_allclose(
        tb[["value", "peak_s", "start_s", "end_s"]].to_numpy(),
        ta[["value", "peak_s", "start_s", "end_s"]].to_numpy(),
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.slow
def test_ray_tables_equal_local_engine(local_run, ray_run):
    run, summary = ray_run
    n_rows = N_GOOD + 6
    assert summary.n_clips == n_rows and summary.n_ok == N_GOOD + 1 and summary.n_failed == 5
    # one actor with the Ray instance's 2 CPUs (two lanes) did the work, start-up apart
    assert summary.actors == 1 and summary.cpus_per_actor == 2 and summary.cpu_s > 0 and summary.startup_s > 0
    assert summary.audio_s > 35.0
    assert len(run.clips) == n_rows and run.clips["clip_id"].is_unique
    assert run.clips["order"].tolist() == list(range(n_rows))
    meta_local = json.loads((local_run.path / "run.json").read_text())
    meta_ray = json.loads((run.path / "run.json").read_text())
    assert meta_ray["key"] == meta_local["key"] and meta_ray["complete"] is True
    assert meta_ray["engine"] == "ray" and meta_ray["corpus"]["spec"] == meta_local["corpus"]["spec"]
    assert sorted(p.name for p in (run.path / "shards").iterdir()) == [f"{i:05d}" for i in range(5)]
    stitched = run.clips[run.clips["path"].str.endswith("stitched_35s.wav")].iloc[0]
    assert stitched["status"] == "ok" and "streamed in chunks" in stitched["note"]
    assert stitched["duration_s"] == pytest.approx(35.0, abs=0.01)
    _assert_same_tables(local_run, run)


@pytest.mark.slow
def test_ray_run_stopped_midway_resumes_without_lost_or_duplicated_rows(
    tmp_path, corpus_csv, ray_local, local_run, model
):
    out = tmp_path / "run"
    # the actors write to another storage through fsspec, as to an object store that the driver
    # does not mount (shards uploaded there, _SUCCESS last; the driver fetches them to merge)
    bucket = tmp_path / "bucket"
    storage = (fsspec.filesystem("file"), str(bucket))
    first = record_corpus_ray(
        corpus_csv[0], out, config=CONFIG, num_actors=1, progress=False, max_shards=2, storage=storage
    )
    assert first.n_clips == 12 and first.resumed_shards == 0
    assert not json.loads((out / "run.json").read_text())["complete"]
    assert not (out / "clips.parquet").exists()
    # the driver brought them home once the workers had finished
    assert sorted(p.name for p in (bucket / "shards").iterdir()) == ["00000", "00001"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00000", "00001"]
    # what a process killed while writing shard 2 leaves behind: a half-written temporary folder
    stale = out / "shards" / ".tmp-00002-424242"
    shutil.copytree(bucket / "shards" / "00000", stale)
    (stale / "_SUCCESS").unlink()
    # the local engine takes one more shard of the same run (in the run directory), then Ray
    # finishes it: 3 and 4 into the store, fetched home before the merge
    record_corpus(corpus_csv[0], out, config=CONFIG, model=model, progress=False, max_shards=1)
    rest = record_corpus_ray(corpus_csv[0], out, config=CONFIG, num_actors=1, progress=True, storage=storage)
    assert rest.resumed_shards == 3 and rest.n_clips == N_GOOD + 6
    assert not stale.exists()
    assert sorted(p.name for p in (bucket / "shards").iterdir()) == ["00000", "00001", "00003", "00004"]
    assert sorted(p.name for p in (out / "shards").iterdir()) == [f"{i:05d}" for i in range(5)]
    run = open_run(out)
    assert run.clips["clip_id"].is_unique and len(run.clips) == N_GOOD + 6
    _assert_same_tables(local_run, run)
    # a complete run returns at once; other inputs are refused
    again = record_corpus_ray(corpus_csv[0], out, config=CONFIG, progress=False)
    assert again.wall_s == 0.0 and again.n_clips == N_GOOD + 6
    with pytest.raises(RunError, match="other inputs"):
        record_corpus_ray(corpus_csv[0], out, config=CONFIG, topk=3, progress=False)


@pytest.mark.slow
def test_ray_bad_clips_become_the_same_status_rows(local_run, ray_run, corpus_csv):
    run, summary = ray_run
    _, expected = corpus_csv
    cols = ["clip_id", "path", "status", "note", "duration_s", "sample_rate_hz", "order"]
    bad_local = local_run.clips.loc[local_run.clips["status"] != "ok", cols].reset_index(drop=True)
    bad_ray = run.clips.loc[run.clips["status"] != "ok", cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(bad_ray, bad_local)
    reasons = {p.rsplit("/", 1)[-1]: s.split(":")[0] for p, s in zip(bad_ray["path"], bad_ray["status"])}
    dup = reasons.pop(run.clips.loc[0, "path"].rsplit("/", 1)[-1])
    assert dup == "duplicate" and reasons == expected
    assert summary.failures == {"corrupt": 1, "duplicate": 1, "empty": 1, "missing": 1, "silent": 1}
    # bad clips have no activation rows, good ones all have theirs
    ok_ids = run.clips.loc[run.clips["status"] == "ok", "clip_id"].tolist()
    assert run.activations("conv7", "max").index.tolist() == ok_ids
    assert not set(bad_ray["clip_id"]) & set(pd.read_parquet(run.path / "topk.parquet")["clip_id"])
