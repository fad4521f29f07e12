"""Shards written by the Ray engine's workers to the run directory's storage, through a filesystem.

The Ray engine's actors record whole shards with the local engine's own code
(:func:`interp.recording.lanes.process_shards`, which writes each shard with
:func:`interp.recording.shards.write_shard`) and put them in the run directory themselves; the
driver never sees a shard's summaries. :class:`ShardStore` is where they put them: a
``pyarrow.fs.FileSystem`` (an fsspec filesystem is wrapped in one) and the run directory's path
on it.

- On a **local** filesystem (a local disk, or NFS, EFS, Lustre mounted on every node) the shards
  are written in place: :meth:`ShardStore.local_root` is the run directory, and ``write_shard``
  writes each shard to a temporary folder renamed when complete.
- On any **other** filesystem (S3, GCS, Azure, HDFS, an fsspec filesystem) a shard is first
  written to a local scratch folder (:meth:`ShardStore.scratch`), then :meth:`ShardStore.publish`
  uploads its files, ``_SUCCESS`` last: object stores have no atomic rename of a folder, and a
  shard counts as done only when its ``_SUCCESS`` and summaries are there
  (:func:`interp.recording.shards.shard_done`), so a half-uploaded shard is recorded again on
  resume and its files overwritten.

Either way the layout is the one :func:`~interp.recording.shards.write_shard` writes. When the
store is not the driver's run directory (an object store that is not mounted there), the driver
brings each finished shard home with :meth:`ShardStore.fetch` once the workers are done (downloaded to a
temporary folder renamed when complete, so a fetch cut short is fetched again).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from interp.recording.shards import SHARD_MATRIX, shard_dir
from interp.run.store import remove_tree

__all__ = ["ShardStore", "as_filesystem"]

#: The marker that makes a shard complete; uploaded after every other file of the shard.
_SUCCESS = "_SUCCESS"
#: Bytes per write when uploading a file.
_CHUNK = 8 << 20


def as_filesystem(fs: Any) -> pafs.FileSystem:
    """A ``pyarrow.fs.FileSystem`` for ``fs``: itself, or an fsspec filesystem wrapped.

    Raises
    ------
    TypeError
        ``fs`` is neither.
    """
    if isinstance(fs, pafs.FileSystem):
        return fs
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with the test extras
        fsspec = None
    if fsspec is not None and isinstance(fs, fsspec.AbstractFileSystem):
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs))
    raise TypeError(
        "The 'fs' parameter of as_filesystem must be a pyarrow.fs.FileSystem or an fsspec "
        f"AbstractFileSystem. Got {type(fs).__name__} instead."
    )


@dataclass(frozen=True)
class ShardStore:
    """A run directory on a filesystem, where workers put finished shards.

    Parameters
    ----------
    fs : pyarrow.fs.FileSystem
        The filesystem, as the workers reach it (see :func:`as_filesystem`).
    root : str
        The run directory's path on ``fs`` (no scheme: ``"bucket/runs/x"`` on S3).

    Notes
    -----
    Picklable (pyarrow filesystems are): the driver builds it and ships it to the actors.
    """

    fs: pafs.FileSystem
    root: str

    @classmethod
    def of(cls, where: str | os.PathLike | tuple[Any, str]) -> ShardStore:
        """A store from a local path, a URI (``"s3://bucket/runs/x"``, ``"file:///runs/x"``,
        resolved by ``pyarrow.fs.FileSystem.from_uri``) or a ``(filesystem, path)`` pair
        (pyarrow or fsspec filesystem)."""
        if isinstance(where, tuple):
            fs, path = where
            return cls(as_filesystem(fs), str(path).rstrip("/"))
        text = os.fspath(where)
        if "://" in text:
            fs, path = pafs.FileSystem.from_uri(text)
            return cls(fs, path.rstrip("/"))
        return cls(pafs.LocalFileSystem(), str(Path(text).resolve()))

    # -- where the shards go -------------------------------------------------------------------
    def local_root(self) -> Path | None:
        """The run directory as a local path when the filesystem is the local one (shards are
        then written in place, renamed when complete), else None."""
        return Path(self.root) if isinstance(self.fs, pafs.LocalFileSystem) else None

    def is_at(self, run_dir: Path) -> bool:
        """Whether the store is the run directory ``run_dir`` of the local filesystem itself."""
        local = self.local_root()
        return local is not None and local.resolve() == Path(run_dir).resolve()

    def shard_path(self, i: int) -> str:
        """The path of shard ``i``'s folder on the filesystem."""
        return f"{self.root}/shards/{i:05d}"

    def done(self, i: int) -> bool:
        """Whether shard ``i`` is complete (its ``_SUCCESS`` and summaries are there)."""
        base = self.shard_path(i)
        infos = self.fs.get_file_info([f"{base}/{_SUCCESS}", f"{base}/{SHARD_MATRIX}"])
        return all(info.type == pafs.FileType.File for info in infos)

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A run-directory-shaped folder for ``write_shard`` to write shards into.

        The run directory itself on a local filesystem (nothing to publish, nothing removed);
        otherwise a temporary local folder, removed on exit.
        """
        local = self.local_root()
        if local is not None:
            yield local
            return
        tmp = Path(tempfile.mkdtemp(prefix="soundnet-shards-"))
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def publish(self, scratch: Path, i: int) -> None:
        """Put shard ``i``, complete in ``scratch`` (its ``_SUCCESS`` written), in the store.

        Nothing to do when ``scratch`` is the run directory itself (a local filesystem). Else
        every file of the shard is uploaded, ``_SUCCESS`` last, and the local copy removed.

        Raises
        ------
        FileNotFoundError
            Shard ``i`` is not complete in ``scratch``.
        """
        src = shard_dir(scratch, i)
        if not (src / _SUCCESS).is_file():
            raise FileNotFoundError(f"Shard {i} is not complete in {str(scratch)!r} (no {_SUCCESS}).")
        local = self.local_root()
        if local is not None and local.resolve() == scratch.resolve():
            return
        dest = self.shard_path(i)
        if self.fs.get_file_info(f"{dest}/{_SUCCESS}").type != pafs.FileType.NotFound:
            self.fs.delete_file(f"{dest}/{_SUCCESS}")  # an older copy stops counting as done first
        self.fs.create_dir(dest, recursive=True)
        files = sorted(p.name for p in src.iterdir() if p.is_file() and p.name != _SUCCESS)
        for name in [*files, _SUCCESS]:
            with open(src / name, "rb") as fin, self.fs.open_output_stream(f"{dest}/{name}") as fout:
                _copy(fin, fout)
        remove_tree(src)

    def fetch(self, i: int, run_dir: Path) -> None:
        """Copy shard ``i``, complete in the store, into the local run directory ``run_dir``.

        Nothing to do when the store is ``run_dir`` itself. Else the shard's files are
        downloaded to a temporary folder beside the shard's, ``_SUCCESS`` last, which is then
        renamed into place (replacing an older local copy): a fetch cut short leaves no shard
        that counts as done.

        Raises
        ------
        FileNotFoundError
            Shard ``i`` is not complete in the store.
        """
        if self.is_at(run_dir):
            return
        if not self.done(i):
            raise FileNotFoundError(f"Shard {i} is not complete in the store at {self.root!r} (no {_SUCCESS}).")
        final = shard_dir(Path(run_dir), i)
        tmp = final.with_name(f".fetch-{final.name}-{os.getpid()}")
        remove_tree(tmp)
        tmp.mkdir(parents=True)
        base = self.shard_path(i)
        infos = self.fs.get_file_info(pafs.FileSelector(base))
        names = sorted(
            Path(f.path).name for f in infos if f.type == pafs.FileType.File and Path(f.path).name != _SUCCESS
        )
        for name in [*names, _SUCCESS]:
            with self.fs.open_input_stream(f"{base}/{name}") as fin, open(tmp / name, "wb") as fout:
                _copy(fin, fout)
        remove_tree(final)
        os.replace(tmp, final)


def _copy(fin: Any, fout: Any) -> None:
    """Copy an open binary stream into another, :data:`_CHUNK` bytes at a time."""
    while chunk := fin.read(_CHUNK):
        fout.write(chunk)
