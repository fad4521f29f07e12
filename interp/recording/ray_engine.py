"""Record a corpus on a Ray cluster (Ray Data), with the same run directory as the local engine.

:func:`record_corpus_ray` is :func:`interp.recording.record_corpus` with the decoding and the model
spread over a Ray cluster. It shares everything that defines the result with the local engine:

- the cache key and ``run.json`` (the local engine writes them: called with ``max_shards=0`` it
  checks the key, creates the run directory and returns before any clip is processed);
- the shard layout: shard ``i`` holds corpus rows ``i * shard_size ... (i + 1) * shard_size - 1``;
  the driver writes each finished shard with the local engine's
  :func:`~interp.recording.shards.write_shard` (temporary folder, renamed when complete), so a
  run started by one engine can be resumed by the other;
- the per-clip computation: decoding is :func:`~interp.recording.decode.decode_row` and the
  forward passes are :class:`~interp.recording.engine.BatchEngine` fed exactly one shard's clips
  in corpus order (:func:`~interp.recording.lanes.summarize_shard`), which is what the local
  engine feeds it, so the same clips share the same batches (values can differ only by float
  rounding: a CPU actor runs PyTorch on one thread);
- the merge (the local engine's, again through ``record_corpus``): ``clips.parquet``,
  ``activations/<layer>.<stat>.parquet`` and an exact top-k over all shards.

The Ray Data pipeline, one row per pending shard (no shuffle, so memory stays bounded and the
stream starts at once)::

    from_items(shard rows)                      shard index + the shard's corpus rows
      -> map(_decode_shard)          tasks      decode + resample the shard's clips
      -> map_batches(_ShardEngine)   actors     the model (CPU or GPU), summaries per clip
      -> driver                                 write_shard, then the merge

Ray is an optional dependency: ``pip install soundnet-interp[distributed]``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from interp.recording.config import RecordConfig, RecordSummary, progress_bar, run_summary
from interp.recording.decode import decode_row
from interp.recording.engine import BatchEngine
from interp.recording.lanes import summarize_shard
from interp.recording.pipeline import normalise_corpus, record_corpus
from interp.recording.shards import done_clips, shard_done, write_shard
from interp.run.store import HEAD_STATS, STATS, atomic_write_json
from soundnet.errors import ParameterError, SoundNetError
from soundnet.model import SPEC_BY_NAME, SoundNet8, load_soundnet
from soundnet.weights import resolve_weights

__all__ = ["record_corpus_ray", "ray_available"]

#: ``ray.init`` options used when this module starts a local Ray instance itself.
_LOCAL_INIT = {"include_dashboard": False, "log_to_driver": False}
#: Shards a decoding worker process decodes before Ray replaces it (decoders may leak memory).
_DECODE_MAX_CALLS = 16


def ray_available() -> bool:
    """Whether Ray and Ray Data can be imported (the ``distributed`` extra is installed)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


def _import_ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SoundNetError(
            f"The Ray engine needs Ray Data: pip install 'soundnet-interp[distributed]' (import failed: {exc})."
        ) from exc
    return ray


# ---------------------------------------------------------------------------------------------
# the two stages (run in Ray workers; module-level so that they pickle by reference)
# ---------------------------------------------------------------------------------------------
def _decode_shard(item: dict[str, Any], *, long_s: float) -> dict[str, Any]:
    """Ray Data ``map``: decode every clip of one shard (a Ray task).

    Parameters
    ----------
    item : dict
        ``shard`` (int) and ``rows`` (pickled list of the shard's corpus rows, as dicts).
    long_s : float (in seconds)
        Clips longer than this are left to the model stage, which streams them (``chunk_s``).

    Returns
    -------
    dict
        ``shard``, ``rows`` (unchanged) and ``decoded`` (pickled list of ``Decoded``, one per row,
        in corpus order: mono float32 audio at 22050 Hz, or the status that says why not).
    """
    rows = pickle.loads(item["rows"])
    decoded = [decode_row(r, long_s) for r in rows]
    return {
        "shard": int(item["shard"]),
        "rows": item["rows"],
        "decoded": pickle.dumps(decoded, protocol=pickle.HIGHEST_PROTOCOL),
    }


class _ShardEngine:
    """Ray Data callable class (an actor): SoundNet and its taps, one shard per row.

    Parameters
    ----------
    weights_ref : list of one ray.ObjectRef
        The state dict, put in the object store once by the driver (worker nodes need no weights
        file); wrapped in a list so that the reference, not the object, is the argument.
    config : RecordConfig
        ``device`` says where the model runs in the actor (``"cuda"`` for GPU actors).
    """

    def __init__(self, weights_ref: list, config: RecordConfig) -> None:
        import ray

        model = SoundNet8()
        model.load_state_dict(ray.get(weights_ref[0]))
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        model = model.to(config.device)
        self.engine = BatchEngine(model, config)  # as the local engine builds it (fast path inside)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for rows_blob, decoded_blob in zip(batch["rows"], batch["decoded"]):
            rows, decoded = pickle.loads(rows_blob), pickle.loads(decoded_blob)
            summaries = summarize_shard(self.engine, rows, decoded)
            for d in decoded:  # the driver needs no audio back
                d.audio = None
            keep = (*STATS, *HEAD_STATS, "n_valid")  # what write_shard stores (not the frame indices)
            summaries = {
                o: {layer: {k: v for k, v in stats.items() if k in keep} for layer, stats in by_layer.items()}
                for o, by_layer in summaries.items()
            }
            results.append(pickle.dumps((decoded, summaries), protocol=pickle.HIGHEST_PROTOCOL))
        return {"shard": np.asarray(batch["shard"], dtype=np.int64), "result": np.asarray(results, dtype=object)}


# ---------------------------------------------------------------------------------------------
# the driver
# ---------------------------------------------------------------------------------------------
def record_corpus_ray(
    corpus: pd.DataFrame | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    config: RecordConfig | None = None,
    address: str | None = None,
    num_actors: int | None = None,
    use_gpu: bool = False,
    weights: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    corpus_options: dict | None = None,
    max_shards: int | None = None,
    init_options: dict | None = None,
    **settings: Any,
) -> RecordSummary:
    """Record every unit of SoundNet over a corpus on Ray Data (resumable, same run directory).

    The result is the local engine's (:func:`interp.recording.record_corpus`): same cache key,
    ``run.json``, shards, tables and top-k; a run directory started by one engine can be resumed
    by the other.

    Parameters
    ----------
    corpus : DataFrame, str or path
        A corpus table, a built-in name or a path (see :func:`interp.corpus.corpora.load_corpus`). Every
        node of the cluster must be able to read the audio files at the paths in the table.
    out_dir : str or path
        The run directory, written by the driver only (it need not be visible to the workers).
    config : RecordConfig, optional
        Settings; keyword ``settings`` override its fields. ``workers`` is unused (Ray schedules
        the decoding) and ``device`` is replaced by ``use_gpu``.
    address : str, optional
        Ray cluster to connect to (``"auto"``, ``"ray://head:10001"``); default: the Ray instance
        this process is already connected to, else a new local one (stopped again at the end).
    num_actors : int, optional
        Model actors (one CPU each, or one GPU each with ``use_gpu``). Default: one per GPU of
        the cluster with ``use_gpu``, else all the cluster's CPUs but an eighth (at least one),
        which decode; at least 1 actor.
    use_gpu : bool
        Run the model actors on GPUs (one GPU each, ``device="cuda"``).
    weights : str or path, optional
        Weights file (see :func:`soundnet.weights.resolve_weights`); read by the driver and
        shipped to the actors.
    overwrite : bool
        Delete a run directory made from other inputs instead of refusing.
    progress : bool
        Show a progress bar (clips, x real time) on stderr.
    corpus_options : dict, optional
        Passed to :func:`interp.corpus.corpora.load_corpus`.
    max_shards : int, optional
        Stop after this many new shards (for tests of resumption).
    init_options : dict, optional
        Extra ``ray.init`` keywords (``num_cpus``, ``object_store_memory``, ``runtime_env``, ...).

    Returns
    -------
    RecordSummary
        ``wall_s`` counts the pipeline (Ray start-up excluded), ``audio_s`` the audio recorded by
        this call.

    Raises
    ------
    ParameterError
        Bad ``num_actors`` or ``max_shards``.
    RunError
        ``out_dir`` holds a run made from other inputs (and not ``overwrite``).
    """
    if num_actors is not None and (isinstance(num_actors, bool) or int(num_actors) < 1):
        raise ParameterError(
            f"The 'num_actors' parameter of record_corpus_ray must be an int >= 1 or None. Got {num_actors!r} instead."
        )
    if max_shards is not None and int(max_shards) < 0:
        raise ParameterError(
            f"The 'max_shards' parameter of record_corpus_ray must be >= 0 or None. Got {max_shards!r} instead."
        )
    config = dataclasses.replace(config or RecordConfig(), **settings) if settings else (config or RecordConfig())
    config = dataclasses.replace(config, device="cuda" if use_gpu else "cpu")
    ray = _import_ray()
    run_dir = Path(out_dir)
    df, spec = normalise_corpus(corpus, **(corpus_options or {}))
    weights_path = resolve_weights(weights)
    model = load_soundnet(str(weights_path))  # on the driver's CPU: the actors get its state dict
    # 1. cache key and run.json: the local engine's own code, processing no shard
    first = record_corpus(
        df, run_dir, config=config, model=model, weights=weights_path, overwrite=overwrite, progress=False, max_shards=0
    )
    meta_path = run_dir / "run.json"
    meta = json.loads(meta_path.read_text())
    if meta.get("complete"):
        return first
    meta["corpus"]["spec"] = spec if meta["corpus"].get("spec") == "<DataFrame>" else meta["corpus"]["spec"]
    meta["engine"] = "ray"
    meta.setdefault("versions", {})["ray"] = ray.__version__
    atomic_write_json(meta_path, meta)

    # 2. the pending shards (same boundaries as the local engine)
    size = config.shard_size
    n_shards = max(1, -(-len(df) // size))
    todo = [i for i in range(n_shards) if not shard_done(run_dir, i)]
    resumed = n_shards - len(todo)
    if max_shards is not None:
        todo = todo[: int(max_shards)]
    records = df.to_dict("records")
    shard_rows = {i: records[i * size : (i + 1) * size] for i in todo}
    units = {layer: SPEC_BY_NAME[layer].out_channels for layer in config.layers}

    started = False
    if not ray.is_initialized():
        options = dict(_LOCAL_INIT) if address is None else {"log_to_driver": False}
        options.update(init_options or {})
        ray.init(address=address, **options)
        started = True
    audio_s, n_done = 0.0, 0
    t0 = time.perf_counter()
    try:
        if todo:
            bar = progress_bar(sum(len(r) for r in shard_rows.values()), enabled=progress)
            ds = _pipeline(ray, shard_rows, model, config, num_actors=num_actors, use_gpu=use_gpu)
            for row in ds.iter_rows():
                i = int(row["shard"])
                decoded, summaries = pickle.loads(row["result"])
                write_shard(run_dir, i, shard_rows[i], decoded, summaries, units, config.layers)
                audio_s += sum(d.duration_s for d in decoded if d.status == "ok")
                n_done += 1
                if bar is not None:
                    bar.update(len(shard_rows[i]))
                    el = time.perf_counter() - t0
                    bar.set_postfix_str(f"{audio_s / el:.0f}x real time" if el > 0 else "")
            if bar is not None:
                bar.close()
    finally:
        if started:
            ray.shutdown()
    wall = time.perf_counter() - t0
    if n_done != len(todo):
        raise SoundNetError(
            f"The Ray pipeline returned {n_done} of {len(todo)} shards; run the same command again to resume."
        )

    # 3. the merge: again the local engine's code, which finds every shard done
    if all(shard_done(run_dir, i) for i in range(n_shards)):
        record_corpus(df, run_dir, config=config, model=model, weights=weights_path, progress=False, max_shards=0)
        clips = pd.read_parquet(run_dir / "clips.parquet")
    else:
        clips = done_clips(run_dir, n_shards)
    return run_summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)


def _pipeline(
    ray,
    shard_rows: dict[int, list[dict]],
    model: torch.nn.Module,
    config: RecordConfig,
    *,
    num_actors: int | None,
    use_gpu: bool,
):
    """The Ray Data dataset: one row per pending shard, decoded by tasks, summarised by actors."""
    resources = ray.cluster_resources()
    if num_actors is None:
        if use_gpu and resources.get("GPU", 0) < 1:
            raise ParameterError(
                "The 'use_gpu' parameter of record_corpus_ray asks for GPU actors but the Ray "
                f"cluster has no GPU (resources {resources}). Got use_gpu=True and "
                "num_actors=None instead; pass num_actors for a cluster that adds GPU nodes on demand."
            )
        cpus = int(resources.get("CPU", 1))
        # decoding costs about a tenth of the model on CPU: leave an eighth of the CPUs to it
        num_actors = int(resources.get("GPU", 0)) if use_gpu else cpus - max(1, cpus // 8)
        num_actors = max(1, num_actors)
    items = [
        {"shard": i, "rows": pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)} for i, rows in shard_rows.items()
    ]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ctx = ds.context
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    weights_ref = ray.put({k: v.detach().cpu() for k, v in model.state_dict().items()})
    # decoding: one single-threaded task per shard, in worker processes recycled every few shards
    # (decoders may leak); this task-only option also keeps Ray Data from fusing the decoding
    # into the model actors
    ds = ds.map(_decode_shard, fn_kwargs={"long_s": config.chunk_s}, num_cpus=1, max_calls=_DECODE_MAX_CALLS)
    ds = ds.map_batches(
        _ShardEngine,
        fn_constructor_args=([weights_ref], config),
        batch_size=1,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=int(num_actors)),
        num_cpus=1,
        num_gpus=1 if use_gpu else 0,
    )
    return ds
