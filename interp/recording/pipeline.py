"""Record every SoundNet unit over a labeled corpus into a resumable run directory.

:func:`record_corpus` runs the pipeline (NetDissect-style numbered steps, each resuming from its
saved files):

1. **corpus**: the corpus table (:func:`interp.corpus.corpora.load_corpus`, put in corpus order
   by :func:`normalise_corpus`) is frozen into the run's cache key together with the weights'
   SHA-256 and the :class:`~interp.recording.config.RecordConfig`.
2. **shards**: lanes (one thread per core, :mod:`interp.recording.lanes`) decode the clips of a
   shard (or take them from worker processes that survive a crashing decoder, with
   ``decoder="process"``: :mod:`interp.recording.workers`), then run its batches, at most about
   one shard ahead, so memory does not grow with the corpus. The fast inference path
   (:mod:`soundnet.fast`; forward hooks on the plain model otherwise) runs batches of clips
   sorted by length, zeroing each clip's frames past its end after every layer (so batching
   changes no statistic), and each layer is reduced to per-clip ``mean``, ``max`` and
   ``peak_s`` at once (:mod:`interp.recording.engine`, :mod:`interp.recording.reduce`), so
   time-resolved activations of a whole corpus are never held. Each shard of ``shard_size``
   clips (its clip rows in Parquet, its summaries as one float32 ``.npy`` matrix) is written,
   by the calling thread, to a temporary folder and renamed when complete
   (:mod:`interp.recording.shards`).
3. **merge**: shards are streamed into ``clips.parquet``, ``activations/<layer>.<stat>.parquet``
   (the wide Parquet tables are written once, here) and ``topk.parquet`` (an exact streaming
   top-k), then ``run.json`` is marked complete (:mod:`interp.recording.merge`).

A killed run resumes from its completed shards when the same command is run again: no clip is
lost or duplicated. Clips longer than ``chunk_s`` are streamed from disk in overlapping chunks
aligned to the deepest layer's hop; each frame is taken from a chunk that holds its whole
receptive field, so the stitched statistics equal one forward pass over the whole file
(:mod:`interp.recording.stream`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.corpus.corpora import corpus_sha256, load_corpus
from interp.recording.config import RecordConfig, RecordSummary, run_summary
from interp.recording.lanes import process_shards
from interp.recording.merge import merge
from interp.recording.shards import done_clips, shard_done
from interp.run.store import FORMAT_VERSION, RunError, atomic_write_json, remove_tree
from soundnet.errors import ParameterError
from soundnet.fast import FastSoundNet
from soundnet.model import SPEC_BY_NAME, check_device, load_soundnet
from soundnet.weights import resolve_weights, sha256_file_memo

__all__ = ["normalise_corpus", "record_corpus"]


def record_corpus(
    corpus: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: RecordConfig | None = None,
    model: torch.nn.Module | None = None,
    weights: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    corpus_options: dict | None = None,
    max_shards: int | None = None,
    **settings: Any,
) -> RecordSummary:
    """Record every unit of SoundNet over a corpus into a run directory (resumable).

    Parameters
    ----------
    corpus : DataFrame, str or path
        A corpus table, a built-in name (``"demo"``, ``"probes"``) or a path that
        :func:`interp.corpus.corpora.load_corpus` recognises.
    out_dir : str or path
        The run directory. An interrupted run in it resumes; a complete one with the same cache
        key returns at once; one made from other inputs raises :class:`RunError` unless
        ``overwrite``.
    config : RecordConfig, optional
        Settings; keyword ``settings`` override its fields (``layers=("conv5",)``, ...).
    model : torch.nn.Module, optional
        A loaded SoundNet8 (default: :func:`soundnet.load_soundnet` with ``weights``).
    weights : str or path, optional
        Weights file (see :func:`soundnet.weights.resolve_weights`).
    overwrite : bool
        Delete a run directory made from other inputs instead of refusing.
    progress : bool
        Show a progress bar (clips/s, x real time, ETA) on stderr.
    corpus_options : dict, optional
        Passed to :func:`interp.corpus.corpora.load_corpus` (``esc10=True``, ``segment_s=10``, ...).
    max_shards : int, optional
        Stop after processing this many new shards (for tests of resumption).

    Returns
    -------
    RecordSummary
        ``str(summary)`` starts ``"N ok, M failed"``.
    """
    config = dataclasses.replace(config or RecordConfig(), **settings) if settings else (config or RecordConfig())
    if max_shards is not None and (isinstance(max_shards, bool) or int(max_shards) < 0):
        raise ParameterError(
            f"The 'max_shards' parameter of record_corpus must be an int >= 0 or None. Got {max_shards!r} instead."
        )
    if model is None:
        check_device(config.device, "record_corpus")  # before anything is written
    run_dir = Path(out_dir)
    df, spec = normalise_corpus(corpus, **(corpus_options or {}))
    weights_path = resolve_weights(weights)
    key = {
        "weights_sha256": sha256_file_memo(weights_path),
        "corpus_sha256": corpus_sha256(df),
        "settings": config.key_settings(),
    }
    meta_path = run_dir / "run.json"
    if meta_path.is_file():
        old = json.loads(meta_path.read_text())
        if old.get("key") != key:
            if not overwrite:
                raise RunError(
                    f"{str(run_dir)!r} holds a run made from other inputs (weights, corpus or settings "
                    "differ). Choose another --out, or pass --overwrite to replace it."
                )
            remove_tree(run_dir)
        elif old.get("complete"):
            clips = pd.read_parquet(run_dir / "clips.parquet")
            return run_summary(run_dir, clips, 0.0, resumed=0)
    run_dir.mkdir(parents=True, exist_ok=True)

    def get_model() -> torch.nn.Module:
        if model is not None:
            return model
        if config.fast:  # the fast path alone, built for the layers recorded (no plain model)
            return FastSoundNet.from_weights(weights_path, device=config.device, layers=config.layers)
        return load_soundnet(str(weights_path), device=config.device)

    units = {l: SPEC_BY_NAME[l].out_channels for l in config.layers}
    meta = {
        "format": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights_sha256": key["weights_sha256"],
        "weights_path": str(weights_path),
        "corpus": {"spec": spec, "n_clips": len(df), "sha256": key["corpus_sha256"]},
        "settings": dataclasses.asdict(config) | {"layers": list(config.layers)},
        "layers": list(config.layers),
        "units": units,
        "versions": _versions(),
        "key": key,
        "complete": False,
    }
    if not meta_path.is_file():
        atomic_write_json(meta_path, meta)
    n_shards = max(1, -(-len(df) // config.shard_size))
    todo = [i for i in range(n_shards) if not shard_done(run_dir, i)]
    resumed = n_shards - len(todo)
    for stale in (run_dir / "shards").glob(".tmp-*") if (run_dir / "shards").is_dir() else []:
        remove_tree(stale)
    if max_shards is not None:
        todo = todo[: int(max_shards)]
    records = df.to_dict("records")
    del df
    with _frozen_gc():
        t0 = time.perf_counter()
        audio_s = process_shards(run_dir, records, todo, get_model, config, units, progress=progress)
        wall = time.perf_counter() - t0
        if not all(shard_done(run_dir, i) for i in range(n_shards)):
            clips = done_clips(run_dir, n_shards)
            return run_summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)
        clips = merge(run_dir, n_shards, config.layers, units, config.topk)
    meta = json.loads(meta_path.read_text())
    meta.update(
        complete=True,
        finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        n_ok=int((clips["status"] == "ok").sum()),
        n_failed=int((clips["status"] != "ok").sum()),
    )
    atomic_write_json(meta_path, meta)
    return run_summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)


def normalise_corpus(corpus: pd.DataFrame | str | os.PathLike, **corpus_options) -> tuple[pd.DataFrame, str]:
    """The corpus as a table in corpus order with the core columns, and its spec string."""
    if isinstance(corpus, pd.DataFrame):
        df, spec = corpus.copy(), "<DataFrame>"
        missing = [c for c in ("clip_id", "path") if c not in df.columns]
        if missing:
            raise ParameterError(
                f"The 'corpus' parameter of record_corpus must be a corpus table "
                f"(interp.corpus.corpora.load_corpus) with columns clip_id and path. "
                f"Got a table without {missing} instead."
            )
    else:
        spec = str(corpus)
        df = load_corpus(corpus, **corpus_options)
    if len(df) == 0:
        raise ParameterError(
            f"The 'corpus' parameter of record_corpus must hold at least one clip. "
            f"Got an empty corpus ({spec!r}) instead."
        )
    if "order" not in df.columns:
        df["order"] = np.arange(len(df))
    df = df.sort_values("order", kind="stable").reset_index(drop=True)
    df["order"] = np.arange(len(df))
    if "status" not in df.columns:
        df["status"] = "ok"
    df["status"] = df["status"].fillna("ok").astype(str)
    for col, default in (("label", ""), ("fold", -1), ("start_s", 0.0), ("end_s", np.nan)):
        if col not in df.columns:
            df[col] = default
    dup = df["clip_id"].duplicated()
    if dup.any():
        raise ParameterError(f"The corpus table has duplicated clip_id values {df.loc[dup, 'clip_id'].tolist()[:5]}.")
    return df, spec


def _versions() -> dict[str, str]:
    """Versions of the packages that shape a recording, and Python's."""
    return dict(_package_versions())


@functools.cache
def _package_versions() -> tuple[tuple[str, str], ...]:
    out = {}
    for pkg in ("soundnet-interp", "torch", "numpy", "pandas", "pyarrow", "soundfile", "soxr", "librosa"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return tuple(out.items())


@contextlib.contextmanager
def _frozen_gc() -> Iterator[None]:
    """Leave the objects that exist now out of the garbage collector's full collections while
    recording (:func:`gc.freeze`), and put them back afterwards.

    A full collection walks every object of the process (about 200,000 with torch, pandas and
    pyarrow loaded) holding the GIL, so it stops every lane: 60 to 130 ms, once every few
    recordings of 200 clips. Nothing is done when the collector is off or the process froze
    objects itself.
    """
    if not gc.isenabled() or gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
