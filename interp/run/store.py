"""The run directory: Parquet tables, atomic writes, resumable shards, pandas accessors.

See ``docs/run-directory.md`` for the layout and every column. A run directory is the single
hand-off between the recorder, the analyses, the dashboard and the studies.

Examples
--------
>>> run = open_run("runs/demo")
>>> run.clips.head()                       # one row per clip, with status
>>> run.activations("conv7", "max")        # DataFrame: clip_id x units (0..1023)
>>> run.topk("conv7", 123)                 # the unit's top clips and moments
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from soundnet.errors import ParameterError, SoundNetError
from soundnet.options import HeadStat, check_option

__all__ = [
    "read_keyed_arrays",
    "write_keyed_arrays",
    "FORMAT_VERSION",
    "STATS",
    "HEAD_STATS",
    "STAT_DESCRIPTIONS",
    "RunError",
    "Run",
    "open_run",
    "atomic_write_bytes",
    "atomic_write_json",
    "write_parquet",
    "unit_columns",
    "activation_file",
]

FORMAT_VERSION = 1
#: Per-clip summaries recorded for every layer: the mean and max over the counted frames, the
#: max's time, and ``vmean``, the mean over the valid frames (duration-invariant; see
#: :func:`soundnet.geometry.valid_frames`).
STATS = ("mean", "max", "peak_s", "vmean")
#: Extra per-clip summaries recorded for the heads.
HEAD_STATS = ("prob",)
#: What each per-clip statistic is, in words (for titles, cards and the CLI).
STAT_DESCRIPTIONS: dict[str, str] = {
    "vmean": "mean over valid frames",
    "max": "max over time",
    "mean": "mean over time",
    "peak_s": "time of the max",
    "prob": "clip probability",
}
TOPK_COLUMNS = ("layer", "unit", "rank", "clip_id", "value", "peak_s", "start_s", "end_s")


class RunError(SoundNetError):
    """A run directory is missing, incomplete, or was produced with other inputs."""


def unit_columns(n_units: int) -> list[str]:
    """Parquet column names of the unit columns: ``["0", "1", ...]``."""
    return [str(i) for i in range(n_units)]


def activation_file(layer: str, stat: str) -> str:
    """File name (relative to ``activations/``) of one layer's per-clip statistic."""
    return f"{layer}.{stat}.parquet"


def _tmp_path(path: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


def write_keyed_arrays(path: str | os.PathLike, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Cache ``arrays`` in an ``.npz`` file stored under ``key`` (written atomically); read back
    by :func:`read_keyed_arrays` only with the same key."""
    buf = io.BytesIO()
    np.savez(buf, __key__=np.array(key), **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(path, buf.getvalue())


def read_keyed_arrays(path: str | os.PathLike, key: str) -> dict[str, np.ndarray] | None:
    """The arrays :func:`write_keyed_arrays` stored at ``path`` under ``key``; None when the file
    is missing, unreadable or stored under another key (the caller recomputes)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__key__" not in z.files or str(z["__key__"]) != key:
                return None
            return {name: z[name] for name in z.files if name != "__key__"}
    except (OSError, ValueError):
        return None


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (no half file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically (indent 1, sorted keys)."""
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_parquet(path: str | os.PathLike, df: pd.DataFrame | pa.Table, **options: Any) -> None:
    """Write a DataFrame or Arrow table to Parquet atomically (temporary name, then rename);
    ``options`` go to :func:`pyarrow.parquet.write_table` (e.g. ``use_dictionary``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    tmp = _tmp_path(path)
    try:
        pq.write_table(table, tmp, **options)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class Run:
    """A recorded run directory (see :func:`open_run`).

    Parameters
    ----------
    path : str or path
        The run directory.

    Attributes
    ----------
    path : pathlib.Path
    meta : dict
        The contents of ``run.json``.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        meta_path = self.path / "run.json"
        if not meta_path.is_file():
            raise RunError(
                f"{str(self.path)!r} is not a run directory (no run.json). "
                "Create one with `soundnet-interp record CORPUS --out DIR`."
            )
        try:
            self.meta: dict = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise RunError(f"The run.json of {str(self.path)!r} is not valid JSON ({exc}).") from exc
        fmt = self.meta.get("format")
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise RunError(
                f"Run {str(self.path)!r} has format {fmt!r}; this version of soundnet-interp reads "
                f"format {FORMAT_VERSION} and older. Upgrade soundnet-interp or record it again."
            )
        if not self.meta.get("complete", False):
            raise RunError(
                f"Run {str(self.path)!r} is incomplete (interrupted?). Re-run the same "
                "`soundnet-interp record` command to resume it."
            )
        self._act_cache: dict[tuple[str, str], pd.DataFrame] = {}
        self._ids: tuple[pa.ChunkedArray, pd.Index] | None = None

    def __repr__(self) -> str:
        n = len(self.clips)
        ok = int((self.clips["status"] == "ok").sum())
        return f"Run({str(self.path)!r}, {n} clips, {ok} ok, layers={self.layers})"

    # -- metadata ------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Recorded layers, in forward order."""
        return list(self.meta["layers"])

    def n_units(self, layer: str) -> int:
        """Number of units of ``layer``."""
        self._check_layer(layer)
        return int(self.meta["units"][layer])

    def _check_layer(self, layer: str) -> None:
        if layer not in self.meta["layers"]:
            raise ParameterError(
                f"Layer {layer!r} was not recorded in {str(self.path)!r}; recorded layers: {self.layers}."
            )

    # -- tables --------------------------------------------------------------------------
    @cached_property
    def clips(self) -> pd.DataFrame:
        """All clip rows (every status), in corpus order."""
        return pd.read_parquet(self.path / "clips.parquet")

    @cached_property
    def ok_clips(self) -> pd.DataFrame:
        """Clip rows with ``status == "ok"``, indexed by ``clip_id``."""
        c = self.clips
        return c[c["status"] == "ok"].set_index("clip_id", drop=False)

    @property
    def labels(self) -> pd.Series:
        """Label of each ok clip, indexed by ``clip_id``."""
        return self.ok_clips["label"]

    def activations(self, layer: str, stat: HeadStat = "max") -> pd.DataFrame:
        """Per-clip summary of every unit of ``layer``.

        Parameters
        ----------
        layer : str
        stat : {"mean", "max", "peak_s", "vmean", "prob"}
            ``peak_s`` is the time of the max in seconds from the clip start; ``vmean`` the
            mean over the clip's valid frames (duration-invariant); ``prob`` (heads only) is
            the clip-level probability.

        Returns
        -------
        pandas.DataFrame, shape (n_ok_clips, n_units)
            Indexed by ``clip_id`` (corpus order), integer unit columns ``0..n_units-1``,
            float32. NaN where the clip gave the layer no frame.
        """
        self._check_layer(layer)
        allowed = STATS + (HEAD_STATS if layer in ("conv8", "conv8_2") else ())
        check_option("stat", stat, allowed, where="activations")
        key = (layer, stat)
        if key not in self._act_cache:
            path = self.path / "activations" / activation_file(layer, stat)
            if not path.is_file():
                raise RunError(
                    f"Run {str(self.path)!r} has no {stat!r} table for {layer} ({path.name}): it was "
                    "recorded by an older version; record it again (delete the folder) to get it."
                )
            df = pd.read_parquet(path)
            df = df.set_index("clip_id")
            df.columns = df.columns.astype(int)
            self._act_cache[key] = df
        return self._act_cache[key]

    def unit_block(self, layer: str, stat: HeadStat, units: Iterable[int]) -> pd.DataFrame:
        """The per-clip summaries of some units of ``layer`` only, read column by column from
        the Parquet table (no other unit is read, no value is cached; the clip-id index is shared
        by every read): as :meth:`activations` restricted to ``units``, in bounded memory."""
        self._check_layer(layer)
        allowed = STATS + (HEAD_STATS if layer in ("conv8", "conv8_2") else ())
        check_option("stat", stat, allowed, where="unit_block")
        cols = [int(u) for u in units]
        key = (layer, stat)
        if key in self._act_cache:  # already in memory: no need to read
            return self._act_cache[key][cols]
        path = self.path / "activations" / activation_file(layer, stat)
        if not path.is_file():
            raise RunError(
                f"Run {str(self.path)!r} has no {stat!r} table for {layer} ({path.name}): it was "
                "recorded by an older version; record it again (delete the folder) to get it."
            )
        table = pq.read_table(path, columns=["clip_id", *[str(u) for u in cols]])
        df = table.drop_columns(["clip_id"]).to_pandas()  # one float32 block, as read_parquet gives
        df.index = self._clip_index(table.column(0))
        df.columns = pd.Index(cols, dtype=np.int64)
        return df

    def _clip_index(self, ids: pa.ChunkedArray) -> pd.Index:
        """``ids`` (a table's ``clip_id`` column) as a pandas Index, one object shared by every
        read of a table in the same clip order (the recorder writes every table in one order):
        building it from a million strings takes longer than reading a column."""
        known = self._ids
        if known is not None and known[0].equals(ids):
            return known[1]
        index = pd.Index(ids.to_pandas(), name="clip_id")
        _ = index.is_unique  # its lookup table built now, not lazily by concurrent readers
        self._ids = (ids, index)
        return index

    def unit_blocks(self, layer: str, stat: HeadStat, block_units: int) -> Iterator[pd.DataFrame]:
        """:meth:`unit_block` over all units of ``layer``, ``block_units`` at a time."""
        n = self.n_units(layer)
        for u0 in range(0, n, max(1, int(block_units))):
            yield self.unit_block(layer, stat, range(u0, min(n, u0 + int(block_units))))

    def _table_path(self, layer: str, stat: HeadStat, where: str) -> Path:
        self._check_layer(layer)
        allowed = STATS + (HEAD_STATS if layer in ("conv8", "conv8_2") else ())
        check_option("stat", stat, allowed, where=where)
        path = self.path / "activations" / activation_file(layer, stat)
        if not path.is_file():
            raise RunError(
                f"Run {str(self.path)!r} has no {stat!r} table for {layer} ({path.name}): it was "
                "recorded by an older version; record it again (delete the folder) to get it."
            )
        return path

    @cached_property
    def _row_of(self) -> dict[str, int]:
        """Each ok clip's row in the activation tables (read once from one table's ``clip_id``
        column; the recorder writes every table in the same order, checked on each read)."""
        path = next(iter(sorted((self.path / "activations").glob("*.parquet"))), None)
        if path is None:
            return {}
        ids = pq.read_table(path, columns=["clip_id"]).column(0).to_pylist()
        return {str(c): i for i, c in enumerate(ids)}

    def clip_row(self, layer: str, stat: HeadStat, clip_id: str) -> np.ndarray:
        """Every unit's ``stat`` on one clip, shape ``(n_units,)`` float32, read from the one
        row group that holds the clip (a few MB whatever the corpus size), nothing cached."""
        path = self._table_path(layer, stat, "clip_row")
        key = (layer, stat)
        if key in self._act_cache:
            return self._act_cache[key].loc[clip_id].to_numpy(dtype=np.float32)
        row = self._row_of.get(str(clip_id))
        if row is None:
            raise KeyError(f"Clip {clip_id!r} has no row in run {str(self.path)!r}.")
        f = pq.ParquetFile(path)
        starts = np.cumsum([0] + [f.metadata.row_group(i).num_rows for i in range(f.num_row_groups)])
        g = int(np.searchsorted(starts, row, side="right") - 1)
        t = f.read_row_group(g)
        i = row - int(starts[g])
        if str(t.column("clip_id")[i]) != str(clip_id):  # a table in another order: find it
            ids = t.column("clip_id").to_pylist()
            if str(clip_id) not in ids:
                return self.activations(layer, stat).loc[clip_id].to_numpy(dtype=np.float32)
            i = ids.index(str(clip_id))
        one = t.slice(i, 1)
        return np.asarray([one.column(str(u))[0].as_py() for u in range(self.n_units(layer))], dtype=np.float32)

    def unit_moments(self, layer: str, stat: HeadStat = "max") -> dict[str, np.ndarray]:
        """Per unit of ``layer``, the ``mean``, ``std`` (population), ``max`` and ``n`` over the ok
        clips of its per-clip ``stat`` (NaN left out), streamed row group by row group (memory:
        one row group; groups combined by Chan's formulas). Kept in
        ``<run>/cache/moments/<layer>.<stat>.npz`` under the table's size and time (when the
        run directory is writable), so only the first call reads the table.

        Returns
        -------
        dict of str to np.ndarray, each shape (n_units,)
        """
        path = self._table_path(layer, stat, "unit_moments")
        st = path.stat()
        key = f"{st.st_size}:{st.st_mtime_ns}"
        cached = self.cache_dir / "moments" / f"{layer}.{stat}.npz"
        got = read_keyed_arrays(cached, key)
        if got is not None:
            return got
        n_units = self.n_units(layer)
        cols = [str(u) for u in range(n_units)]
        n, mean, m2 = np.zeros(n_units), np.zeros(n_units), np.zeros(n_units)
        mx = np.full(n_units, -np.inf)
        f = pq.ParquetFile(path)
        for g in range(f.num_row_groups):
            t = f.read_row_group(g, columns=cols)
            m = np.column_stack([c.to_numpy() for c in t.columns]).astype(np.float64)
            ok = np.isfinite(m)
            n_g = ok.sum(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean_g = np.where(ok, m, 0.0).sum(axis=0) / np.maximum(n_g, 1)
                m2_g = (np.where(ok, m - mean_g, 0.0) ** 2).sum(axis=0)
                tot = n + n_g
                delta = mean_g - mean
                mean = np.where(tot > 0, mean + delta * n_g / np.maximum(tot, 1), 0.0)
                m2 = m2 + m2_g + delta**2 * n * n_g / np.maximum(tot, 1)
            n = tot
            mx = np.maximum(mx, np.where(ok, m, -np.inf).max(axis=0, initial=-np.inf))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = {
                "mean": np.where(n > 0, mean, np.nan),
                "std": np.where(n > 0, np.sqrt(m2 / n), np.nan),
                "max": np.where(n > 0, mx, np.nan),
                "n": n,
            }
        try:
            write_keyed_arrays(cached, key, out)
        except OSError:  # a read-only run: computed again next time
            pass
        return out

    def activation_matrix(self, layer: str, stat: HeadStat = "max") -> np.ndarray:
        """:meth:`activations` as a float32 array ``(n_ok_clips, n_units)``."""
        return self.activations(layer, stat).to_numpy(dtype=np.float32, copy=False)

    @cached_property
    def _topk(self) -> pd.DataFrame:
        return pd.read_parquet(self.path / "topk.parquet")

    def topk(self, layer: str | None = None, unit: int | None = None) -> pd.DataFrame:
        """Top-k clips and moments: ``layer, unit, rank, clip_id, value, peak_s, start_s, end_s``.

        Parameters
        ----------
        layer : str, optional
        unit : int, optional
            Filter to one layer / one unit.
        """
        t = self._topk
        if layer is not None:
            self._check_layer(layer)
            t = t[t["layer"] == layer]
        if unit is not None:
            t = t[t["unit"] == int(unit)]
        return t.reset_index(drop=True)

    def has_table(self, name: str) -> bool:
        """Whether an analysis table ``<name>.parquet`` exists."""
        return (self.path / f"{_safe_name(name)}.parquet").is_file()

    def read_table(self, name: str) -> pd.DataFrame:
        """Read an analysis table ``<name>.parquet`` from the run directory."""
        p = self.path / f"{_safe_name(name)}.parquet"
        if not p.is_file():
            raise RunError(f"No table {name!r} in {str(self.path)!r}.")
        return pd.read_parquet(p)

    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Write an analysis table ``<name>.parquet`` atomically; returns its path."""
        p = self.path / f"{_safe_name(name)}.parquet"
        write_parquet(p, df)
        return p

    @property
    def cache_dir(self) -> Path:
        """Folder for derived caches (spectrograms, traces)."""
        d = self.path / "cache"
        d.mkdir(exist_ok=True)
        return d

    def clip(self, clip_id: str) -> pd.Series:
        """The clip row of ``clip_id`` (any status)."""
        rows = self.clips[self.clips["clip_id"] == clip_id]
        if rows.empty:
            raise KeyError(clip_id)
        return rows.iloc[0]


def _safe_name(name: str) -> str:
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ParameterError(f"Table names are plain file stems. Got {name!r} instead.")
    return name


def open_run(path: Run | str | os.PathLike) -> Run:
    """Open a complete run directory; see :class:`Run` (a :class:`Run` is returned as it is, so
    that every function can take a run or its path).

    Raises
    ------
    RunError
        No ``run.json``, or the run is incomplete.
    """
    return path if isinstance(path, Run) else Run(path)


def iter_parquet_batches(paths: Iterable[Path]) -> Iterable[pa.Table]:
    """Read Parquet files one after another (helper for streaming merges)."""
    for p in paths:
        yield pq.read_table(p)


def remove_tree(path: Path) -> None:
    """Delete a folder if it exists."""
    shutil.rmtree(path, ignore_errors=True)
