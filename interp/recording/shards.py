"""Shards: the resumable unit of a recording, on disk.

Shard ``i`` holds corpus rows ``i * shard_size ... (i + 1) * shard_size - 1``, in the folder
:func:`shard_dir`: ``clips.parquet`` (every row with its status), the ok clips' summaries as
one float32 matrix (:data:`SHARD_MATRIX`, blocks of rows in :func:`shard_blocks` order, read
back by :class:`ShardMatrix`) and ``_SUCCESS``. :func:`write_shard` writes a shard to a
temporary folder and renames it when complete; :func:`shard_done` and :func:`done_clips` read
what a run already holds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from interp.recording.decode import Decoded
from interp.run.store import HEAD_STATS, STATS, RunError, remove_tree, write_parquet
from soundnet.model import HEAD_LAYERS

__all__ = ["SHARD_MATRIX", "ShardMatrix", "done_clips", "shard_blocks", "shard_dir", "shard_done", "write_shard"]


def shard_dir(run_dir: Path, i: int) -> Path:
    """The folder of shard ``i`` of a run."""
    return run_dir / "shards" / f"{i:05d}"


#: A shard's per-clip summaries: one float32 ``.npy`` matrix ``(n_rows, n_ok)`` (no pickle): a
#: block of rows per layer and statistic, in :func:`shard_blocks` order, and a column per ok clip,
#: in corpus order (the ok rows of the shard's ``clips.parquet``). The merge reads each table's
#: block as one contiguous, unit-major slice (:class:`ShardMatrix`). Parquet is written once, at
#: the merge.
SHARD_MATRIX = "summaries.npy"


def shard_blocks(layers: Iterable[str], units: dict[str, int]) -> list[tuple[str, str, int, int]]:
    """``(layer, stat, first_row, n_units)`` of each block of a shard's summary matrix."""
    blocks, row = [], 0
    for layer in layers:
        for stat in STATS + (HEAD_STATS if layer in HEAD_LAYERS else ()):
            blocks.append((layer, stat, row, units[layer]))
            row += units[layer]
    return blocks


@dataclass(frozen=True)
class ShardMatrix:
    """Where a shard's summary matrix (:data:`SHARD_MATRIX`) lies in its file, so that a block of
    its rows is one read at an offset (no file left open or mapped: a merge of thousands of
    shards would run out of file descriptors)."""

    path: Path
    shape: tuple[int, int]  # (rows, ok clips)
    offset: int  # bytes of the .npy header

    @classmethod
    def open(cls, path: Path, shape: tuple[int, int]) -> ShardMatrix:
        """Check the header of ``path`` against the ``shape`` expected (:class:`RunError`)."""
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            got, fortran, dtype = read_header(fh)
            offset = fh.tell()
        if tuple(got) != tuple(shape) or fortran or dtype != np.float32:
            raise RunError(
                f"Shard {str(path.parent)!r} holds summaries of shape {tuple(got)} ({dtype}), "
                f"not {tuple(shape)} float32; delete the run folder and record again."
            )
        return cls(path, (int(shape[0]), int(shape[1])), offset)

    def rows(self, row0: int, n: int) -> np.ndarray:
        """Rows ``[row0, row0 + n)``: ``(n, ok clips)`` float32."""
        n_ok = self.shape[1]
        if n_ok == 0:
            return np.zeros((n, 0), np.float32)
        return np.fromfile(self.path, np.float32, count=n * n_ok, offset=self.offset + row0 * n_ok * 4).reshape(n, n_ok)


def shard_done(run_dir: Path, i: int) -> bool:
    """Whether shard ``i`` of a run is complete (in the current layout)."""
    d = shard_dir(run_dir, i)
    # a shard of an older layout (no summaries file) is recorded again
    return (d / "_SUCCESS").is_file() and (d / SHARD_MATRIX).is_file()


def write_shard(
    run_dir: Path,
    i: int,
    rows: list[dict],
    decoded: list[Decoded],
    summaries: dict[int, dict],
    units: dict[str, int],
    layers: tuple[str, ...],
) -> None:
    """Write one shard to a temporary folder and rename it into place when complete.

    The folder holds ``clips.parquet`` (every row with its status), the ok clips' summaries
    (:data:`SHARD_MATRIX`) and ``_SUCCESS``.

    Parameters
    ----------
    rows : list of dict
        The shard's corpus rows.
    decoded : list of Decoded
        One per row (any order): status, note, duration.
    summaries : dict
        ``{order: {layer: {stat: (n_units,)}}}`` for the ok clips.
    units : dict
        Units per layer.
    layers : tuple of str
    """
    final = shard_dir(run_dir, i)
    tmp = final.with_name(f".tmp-{final.name}-{os.getpid()}")
    remove_tree(tmp)
    tmp.mkdir(parents=True)
    by_order = {d.order: d for d in decoded}
    clip_rows = []
    for r in rows:
        d = by_order[int(r["order"])]
        row = dict(r)
        row.update(status=d.status, note=d.note, duration_s=float(d.duration_s), sample_rate_hz=int(d.sample_rate_hz))
        summ = summaries.get(d.order, {}) if d.status == "ok" else {}
        for layer in layers:  # valid frames per layer (soundnet.geometry.valid_frames); 0: none
            n_valid = summ.get(layer, {}).get("n_valid")
            row[f"valid_frames_{layer}"] = int(n_valid) if n_valid is not None else 0
        clip_rows.append(row)
    write_parquet(tmp / "clips.parquet", pd.DataFrame(clip_rows))
    ok = [d for d in sorted(decoded, key=lambda d: d.order) if d.status == "ok"]
    blocks = shard_blocks(layers, units)
    mat = np.full((sum(n for *_, n in blocks), len(ok)), np.nan, dtype=np.float32)
    per_clip = [summaries.get(d.order, {}) for d in ok]
    for layer, stat, row0, n in blocks:  # one block at a time (NaN where a clip has none)
        values = [s[layer].get(stat) if layer in s else None for s in per_clip]
        have = [j for j, v in enumerate(values) if v is not None]
        present = [cast(np.ndarray, values[j]) for j in have]
        if len(have) == len(values):
            np.stack(present, axis=1, out=mat[row0 : row0 + n])
        elif have:
            mat[row0 : row0 + n, have] = np.stack(present, axis=1)
    np.save(tmp / SHARD_MATRIX, mat)
    (tmp / "_SUCCESS").write_text("ok\n")
    remove_tree(final)
    os.replace(tmp, final)


def done_clips(run_dir: Path, n_shards: int) -> pd.DataFrame:
    """The clip rows of the finished shards (empty table with the core columns when none)."""
    parts = [
        pd.read_parquet(shard_dir(run_dir, i) / "clips.parquet") for i in range(n_shards) if shard_done(run_dir, i)
    ]
    if not parts:
        return pd.DataFrame(
            {
                "clip_id": pd.Series([], dtype=str),
                "status": pd.Series([], dtype=str),
                "duration_s": pd.Series([], dtype=float),
            }
        )
    return pd.concat(parts, ignore_index=True)
