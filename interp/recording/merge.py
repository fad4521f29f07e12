"""The merge: a run's shards streamed into its final tables.

:func:`merge` writes ``clips.parquet``, ``activations/<layer>.<stat>.parquet`` (one wide table
per layer and statistic, row groups of whole shards gathered, written once, here) and
``topk.parquet`` (an exact streaming top-k per unit over every shard), on up to four threads.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from interp.recording.shards import SHARD_MATRIX, ShardMatrix, shard_blocks, shard_dir
from interp.run.runningstats import TopK
from interp.run.store import RunError, activation_file, unit_columns, write_parquet
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_window, layer_geometry

__all__ = ["merge"]

#: The leading columns of ``clips.parquet``, in this order (any other corpus column follows).
_CLIP_COLUMNS = (
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
)


def merge(run_dir: Path, n_shards: int, layers: tuple[str, ...], units: dict[str, int], k: int) -> pd.DataFrame:
    """Stream the shards into the final tables; returns the clip table.

    Each ``activations/<layer>.<stat>.parquet`` gets row groups of about
    :data:`_ROW_GROUP_ROWS` rows (whole shards gathered) and each layer's top-k is an exact
    streaming top-k over the shards. Each job reads its block of rows of each shard's summary
    matrix (:class:`ShardMatrix`: contiguous, read at its offset, no file left open); the
    jobs run on up to four threads (Parquet encoding and numpy release the GIL), the largest
    first. Memory: one row group's block per job at a time, a :class:`TopK` of
    ``(n_units, k)`` per layer, and the clip table itself.
    """
    shard_dirs = [shard_dir(run_dir, i) for i in range(n_shards)]
    parts = [pd.read_parquet(d / "clips.parquet") for d in shard_dirs]
    clips = pd.concat(parts, ignore_index=True).sort_values("order", kind="stable").reset_index(drop=True)
    if clips["clip_id"].duplicated().any() or len(clips) != clips["order"].nunique():
        raise RunError(f"Shards of {str(run_dir)!r} overlap; delete the folder and record again.")
    front = [c for c in _CLIP_COLUMNS if c in clips.columns]
    clips = clips[front + [c for c in clips.columns if c not in front]]
    blocks = shard_blocks(layers, units)
    n_rows = sum(n for *_, n in blocks)
    mats, orders, ids = [], [], []
    for d, part in zip(shard_dirs, parts):
        ok = part[part["status"] == "ok"].sort_values("order", kind="stable")
        mats.append(ShardMatrix.open(d / SHARD_MATRIX, (n_rows, len(ok))))
        orders.append(ok["order"].to_numpy(np.int64))
        ids.append(ok["clip_id"].to_numpy(str))
    groups = _row_groups([len(o) for o in orders])
    index = _ClipIndex.of(clips)
    act_dir = run_dir / "activations"
    act_dir.mkdir(exist_ok=True)

    def write_stat(layer: str, stat: str, row0: int, n: int) -> None:
        out = act_dir / activation_file(layer, stat)
        tmp = out.with_name(f".{out.name}.tmp")
        schema = _stat_schema(n)
        # a buffered stream: the writer's many small writes (a few per column chunk) become
        # few large ones (11 % of the writing time of a 1024-column table)
        with (
            pa.output_stream(tmp, buffer_size=1 << 20) as sink,
            pq.ParquetWriter(sink, schema, **_ACT_PARQUET) as writer,
        ):
            for group in groups:  # few, large row groups
                block = np.concatenate([mats[i].rows(row0, n) for i in group], axis=1)
                writer.write_table(_stat_table(np.concatenate([ids[i] for i in group]), block))
        os.replace(tmp, out)

    def layer_topk(layer: str) -> pa.Table:
        rows = {stat: row0 for name, stat, row0, _ in blocks if name == layer}
        n = units[layer]
        top = TopK(n, k)  # ties: corpus order
        for group in groups:  # a row group's shards at once
            mx, pk = (
                np.concatenate([mats[i].rows(rows[stat], n) for i in group], axis=1).T for stat in ("max", "peak_s")
            )
            top.add(mx, np.concatenate([orders[i] for i in group]), pk)
        return _topk_table(top, layer, index)

    # the top-k first (this thread writes their table while the pool writes the activation
    # tables), then the largest tables first, so that the threads finish together
    by_size = sorted(blocks, key=lambda b: -b[3])
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="merge") as pool:
        tops = {layer: pool.submit(layer_topk, layer) for layer in sorted(layers, key=lambda l: -units[l])}
        writes = [pool.submit(write_stat, *block) for block in by_size]
        writes.append(pool.submit(write_parquet, run_dir / "clips.parquet", clips))
        write_parquet(
            run_dir / "topk.parquet",
            pa.concat_tables([tops[layer].result() for layer in layers]),
            use_dictionary=["layer", "clip_id"],
        )  # (a dictionary of floats: 40 % of the time)
        for f in writes:
            f.result()
    return clips


#: Parquet settings of the activation tables: no dictionary or statistics for the float unit
#: columns (they do not help and cost 1.5 to 2.5x the writing time).
_ACT_PARQUET = {"use_dictionary": ["clip_id"], "write_statistics": ["clip_id"]}


#: Rows gathered from the shards into one row group of an activation table (most of the cost
#: of writing a wide table is per column chunk; 4096 rows of conv7 are 16 MB).
_ROW_GROUP_ROWS = 4096


def _row_groups(sizes: list[int]) -> list[list[int]]:
    """Consecutive shards (by index) gathered into groups of at least :data:`_ROW_GROUP_ROWS`
    rows (the last group: what is left); ``sizes`` are the shards' rows."""
    groups: list[list[int]] = [[]]
    rows = 0
    for i, n in enumerate(sizes):
        if rows >= _ROW_GROUP_ROWS:
            groups.append([])
            rows = 0
        groups[-1].append(i)
        rows += n
    return groups


@functools.cache
def _stat_schema(n_units: int) -> pa.Schema:
    """The schema of an activation table: ``clip_id`` and ``n_units`` float32 unit columns, none
    nullable (a clip without a value has NaN; required columns carry no definition levels, 8 %
    of the writing time)."""
    return pa.schema(
        [pa.field("clip_id", pa.string(), nullable=False)]
        + [pa.field(c, pa.float32(), nullable=False) for c in unit_columns(n_units)]
    )


def _stat_table(clip_ids: np.ndarray, block: np.ndarray) -> pa.Table:
    """``clip_id`` plus one float32 column per unit (``"0"``, ``"1"``, ...) of a unit-major
    ``block`` ``(n_units, n_rows)``."""
    n_units, n_rows = block.shape
    # one Arrow array of the unit-major values, sliced into columns (no copies; half the time
    # of one pa.array per column)
    flat = pa.array(np.ascontiguousarray(block, dtype=np.float32).reshape(-1))
    return pa.Table.from_arrays(
        [pa.array(clip_ids.astype(str), pa.string())] + [flat.slice(i * n_rows, n_rows) for i in range(n_units)],
        schema=_stat_schema(n_units),
    )


def _topk_table(top: TopK, layer: str, clips: _ClipIndex) -> pa.Table:
    """The ``topk.parquet`` rows of one layer (see docs/run-directory.md), as Arrow columns
    (no Python object per row)."""
    unit_idx, rank = np.nonzero(top.keys_ >= 0)
    keys = top.keys_[unit_idx, rank]
    where = np.searchsorted(clips.orders, keys)  # positions of the keys (orders, sorted)
    if len(keys) and (where.max() >= len(clips.orders) or (clips.orders[where] != keys).any()):
        raise RunError(f"The top-k of {layer} names clips that no shard holds; delete the run folder and record again.")
    dur = clips.duration_s[where]
    peak_s = top.payload_[unit_idx, rank]
    # receptive-field window of the peak frame, clipped to the clip (a peak in the silence that
    # short="pad" appended keeps its window's right end)
    frame = (
        np.rint(
            (peak_s * SAMPLE_RATE_HZ - layer_geometry(layer).first_centre_samples) / layer_geometry(layer).hop_samples
        ).astype(np.int64)
        if len(peak_s)
        else np.zeros(0, np.int64)
    )
    w_start, w_end = frames_to_window(frame, layer)
    start = np.clip(w_start, 0.0, None)
    end = np.minimum(w_end, dur)
    end = np.where(end > start, end, w_end)
    return pa.table(
        {
            "layer": pa.array(np.full(len(keys), layer), pa.string()),
            "unit": unit_idx.astype(np.int32),
            "rank": rank.astype(np.int32),
            "clip_id": clips.clip_ids.take(pa.array(where)),
            "value": top.values_[unit_idx, rank].astype(np.float32),
            "peak_s": peak_s.astype(np.float32),
            "start_s": start.astype(np.float32),
            "end_s": end.astype(np.float32),
        }
    )


@dataclass(frozen=True)
class _ClipIndex:
    """The clip table's columns that the top-k rows look up, by position in corpus order."""

    orders: np.ndarray  # (n_clips,) int64, ascending
    clip_ids: pa.Array  # (n_clips,) string
    duration_s: np.ndarray  # (n_clips,) float64

    @classmethod
    def of(cls, clips: pd.DataFrame) -> _ClipIndex:
        """From a clip table sorted by ``order``."""
        return cls(
            clips["order"].to_numpy(np.int64),
            pa.array(clips["clip_id"], pa.string()),
            clips["duration_s"].to_numpy(np.float64),
        )
