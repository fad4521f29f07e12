"""The run directory: atomic writes, open_run errors, and the Run accessors on a real recording."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from interp.corpus.corpora import load_corpus
from interp.recording import record_corpus
from interp.run.store import Run, RunError, atomic_write_json, open_run, unit_columns, write_parquet
from soundnet.errors import ParameterError

LAYERS = ("conv5", "conv8")
K = 3


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, minibank_dir, model):
    """A complete run over 7 minibank clips (two shards), conv5 and the object head."""
    corpus = load_corpus(minibank_dir).iloc[::25].reset_index(drop=True)
    out = tmp_path_factory.mktemp("store") / "run"
    record_corpus(corpus, out, model=model, layers=LAYERS, topk=K, shard_size=4, workers=0, progress=False)
    return out, corpus


def test_write_parquet_and_json_are_atomic_and_replace(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    p = tmp_path / "t.parquet"
    write_parquet(p, df)
    write_parquet(p, df.assign(a=[3, 4]))  # replacing an existing file
    assert pd.read_parquet(p)["a"].tolist() == [3, 4]
    atomic_write_json(tmp_path / "m.json", {"n": np.int64(3), "x": np.float32(0.5), "t": (1, 2)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"n": 3, "x": 0.5, "t": [1, 2]}
    assert sorted(f.name for f in tmp_path.iterdir()) == ["m.json", "t.parquet"]  # no temporary left


def test_open_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        open_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": 1, "complete": False}))
    with pytest.raises(RunError, match="incomplete"):
        open_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"format": 99, "complete": True}))
    with pytest.raises(RunError, match="format 99"):
        open_run(tmp_path)
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        open_run(tmp_path)


def test_run_tables_follow_the_contract(small_run):
    path, corpus = small_run
    run = open_run(path)
    assert isinstance(run, Run) and run.layers == list(LAYERS)
    assert run.n_units("conv5") == 256 and run.n_units("conv8") == 1000
    clips = run.clips
    for col in (
        "clip_id",
        "path",
        "label",
        "fold",
        "start_s",
        "end_s",
        "duration_s",
        "sample_rate_hz",
        "status",
        "note",
        "order",
    ):
        assert col in clips.columns, col
    assert clips["clip_id"].tolist() == corpus["clip_id"].tolist()
    assert (clips["status"] == "ok").all() and (clips["sample_rate_hz"] == 22050).all()
    assert run.labels.tolist() == corpus["label"].tolist()

    acts = run.activations("conv5", "max")
    assert acts.shape == (len(corpus), 256)
    assert acts.index.tolist() == corpus["clip_id"].tolist()
    assert acts.columns.tolist() == list(range(256))
    assert (acts.dtypes == np.float32).all()
    assert run.activation_matrix("conv8", "prob").shape == (len(corpus), 1000)
    probs = run.activation_matrix("conv8", "prob")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)  # mean of softmaxes
    with pytest.raises(ParameterError, match="'stat' parameter"):
        run.activations("conv5", "prob")  # heads only
    with pytest.raises(ParameterError, match="not recorded"):
        run.activations("conv7")


def test_topk_accessor_matches_activations(small_run):
    run = open_run(small_run[0])
    acts = run.activations("conv5", "max")
    peaks = run.activations("conv5", "peak_s")
    for unit in (0, 17, 255):
        t = run.topk("conv5", unit)
        assert t["rank"].tolist() == list(range(K))
        assert t["value"].is_monotonic_decreasing
        col = acts[unit]
        order = sorted(range(len(col)), key=lambda i: (-col.iloc[i], i))[:K]
        assert t["clip_id"].tolist() == [col.index[i] for i in order]
        np.testing.assert_array_equal(t["value"].to_numpy(), col.iloc[order].to_numpy())
        np.testing.assert_array_equal(t["peak_s"].to_numpy(), peaks[unit].iloc[order].to_numpy())
        assert ((t["start_s"] >= 0) & (t["start_s"] <= t["peak_s"]) & (t["peak_s"] <= t["end_s"])).all()
    assert len(run.topk()) == K * (256 + 1000)
    assert set(run.topk("conv8")["layer"]) == {"conv8"}


def test_clip_lookup_and_analysis_tables(small_run):
    run = open_run(small_run[0])
    cid = run.clips["clip_id"].iloc[2]
    assert run.clip(cid)["order"] == 2
    with pytest.raises(KeyError):
        run.clip("c000000000000")
    assert not run.has_table("selectivity")
    df = pd.DataFrame({"layer": ["conv5"], "unit": [3], "score": [0.5]})
    p = run.write_table("selectivity", df)
    assert p.name == "selectivity.parquet" and run.has_table("selectivity")
    pd.testing.assert_frame_equal(run.read_table("selectivity"), df)
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(ParameterError, match="plain file stems"):
            run.write_table(bad, df)
    with pytest.raises(RunError, match="No table"):
        run.read_table("nothing")


def test_unit_columns_names():
    assert unit_columns(3) == ["0", "1", "2"]


def test_clip_row_and_unit_moments_read_row_groups_only(small_run, tmp_path):
    """One clip's row from its row group, and per-unit moments streamed over row groups (and kept
    in the run's cache), equal to the whole table read into memory; a rewritten table is read
    again."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute
    import pyarrow.parquet as pq

    run_dir = tmp_path / "run"
    shutil.copytree(small_run[0], run_dir, ignore=shutil.ignore_patterns("cache"))
    path = run_dir / "activations" / "conv5.max.parquet"
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=3)  # several row groups, as a large run has
    assert pq.ParquetFile(path).num_row_groups > 2
    whole = open_run(run_dir).activations("conv5", "max")
    run = open_run(run_dir)  # a fresh one: nothing in memory
    for cid in whole.index:
        np.testing.assert_array_equal(run.clip_row("conv5", "max", cid), whole.loc[cid].to_numpy(np.float32))
    with pytest.raises(KeyError, match="no row"):
        run.clip_row("conv5", "max", "not-a-clip")
    from interp.analysis.outputs import _row_batches  # streamed reads gather whole row groups

    batches = list(_row_batches(run, "conv5", "max", rows=4))
    assert [len(b) for b in batches[:-1]] == [6] * (len(batches) - 1)  # 2 row groups of 3 rows
    np.testing.assert_array_equal(np.concatenate(batches), whole.to_numpy(np.float64))
    a = whole.to_numpy(np.float64)
    m = run.unit_moments("conv5", "max")
    np.testing.assert_allclose(m["mean"], np.nanmean(a, axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m["std"], np.nanstd(a, axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(m["max"], np.nanmax(a, axis=0))
    np.testing.assert_array_equal(m["n"], np.isfinite(a).sum(axis=0))
    cached = run_dir / "cache" / "moments" / "conv5.max.npz"
    assert cached.is_file()
    again = open_run(run_dir).unit_moments("conv5", "max")
    np.testing.assert_array_equal(again["mean"], m["mean"])
    doubled = table.set_column(1, table.column_names[1], pa.compute.multiply(table.column(1), 2.0))
    pq.write_table(doubled, path, row_group_size=5)  # the table changes: the cache is stale
    fresh = open_run(run_dir).unit_moments("conv5", "max")
    assert fresh["max"][0] == pytest.approx(2 * m["max"][0])


def test_unit_block_reads_columns_equal_to_the_table_and_shares_one_clip_index(small_run):
    """Column reads equal the whole table's columns (float32, integer unit names, clip-id index)
    and every read of the run's tables gives one shared index object (a million strings are not
    indexed again per read)."""
    run = open_run(small_run[0])
    a = run.unit_block("conv5", "max", [3, 0])
    b = run.unit_block("conv8", "prob", [7])
    assert a.index is b.index and a.index.name == "clip_id"
    assert list(a.columns) == [3, 0] and a.columns.dtype == np.int64 and (a.dtypes == np.float32).all()
    whole = open_run(small_run[0]).activations("conv5", "max")
    pd.testing.assert_frame_equal(a, whole[[3, 0]])
    pd.testing.assert_frame_equal(b, open_run(small_run[0]).activations("conv8", "prob")[[7]])
    assert run.unit_block("conv5", "max", []).shape == (len(whole), 0)
