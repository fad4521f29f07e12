"""Record a corpus on a Ray cluster, with the same run directory as the local engine.

:func:`record_corpus_ray` is :func:`interp.recording.record_corpus` with whole shards spread
over Ray actors. It shares everything that defines the result with the local engine:

- the cache key and ``run.json`` (the local engine writes them: called with ``max_shards=0`` it
  checks the key, creates the run directory, removes half-written shards and returns before any
  clip is processed);
- the shard layout: shard ``i`` holds corpus rows ``i * shard_size ... (i + 1) * shard_size - 1``,
  written by :func:`~interp.recording.shards.write_shard` (temporary folder, renamed when
  complete), so a run started by one engine can be resumed by the other;
- the per-clip computation: each actor runs the local engine itself
  (:func:`~interp.recording.lanes.process_shards`: lanes that decode clips and run the batches
  of :class:`~interp.recording.engine.BatchEngine`, one lane per CPU of the actor, one torch
  thread each), so the same clips share the same batches;
- the merge (the local engine's, again through ``record_corpus``): ``clips.parquet``,
  ``activations/<layer>.<stat>.parquet`` and an exact top-k over all shards.

The driver plans, hands out runs of consecutive shards, reports progress and commits (the
merge); it never holds audio or summaries::

    driver: pending shards -> calls of a few consecutive shards, two queued per actor
      -> _ShardRecorder actors (num_cpus = lanes)   decode + model + write_shard, in the actor
      -> the run directory's storage                 (interp.recording.ray_writer.ShardStore)
      -> driver: the merge, once every shard is there

Why not Ray Data (the previous design, 0.2 to 0.5x the local engine on the same CPUs): each
shard's decoded audio went through the object store (a pickle, a copy, an unpickle: 2 to 3 ms
per 10 s clip); decoding had CPUs of its own, idle most of the time (decoding is a tenth of the
work: on 2 CPUs, one CPU decoded and one ran the model, so half the machine waited); the
summaries were pickled back to the driver, which wrote every shard itself; and actors and
operators started for every run. ``benchmarks/bench_distributed.py`` measures each.

Ray is an optional dependency: ``pip install soundnet-interp[distributed]``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast, overload

import pandas as pd
import torch

from interp.recording.config import RecordConfig, RecordSummary, progress_bar, run_summary
from interp.recording.lanes import process_shards
from interp.recording.pipeline import normalise_corpus, record_corpus
from interp.recording.ray_writer import ShardStore
from interp.recording.shards import done_clips, shard_done
from interp.run.store import atomic_write_json
from soundnet.errors import ParameterError, SoundNetError
from soundnet.fast import fast_model
from soundnet.model import SPEC_BY_NAME, SoundNet8, load_soundnet
from soundnet.weights import resolve_weights

__all__ = ["RaySummary", "ray_available", "record_corpus_ray"]

#: ``ray.init`` options used when this module starts a local Ray instance itself.
_LOCAL_INIT = {"include_dashboard": False, "log_to_driver": False}
#: Lanes (CPUs) of one actor at most by default, as the local engine's default lanes.
_MAX_LANES = 8
#: Clips of one call to an actor at most (a few shards: the actor's lanes then overlap one
#: shard's last batches with the next one's decoding; small enough to balance the actors at the
#: end of a run).
_CALL_CLIPS = 2048
#: Calls queued on each actor (the next one is there when the current one ends).
_QUEUED = 2
#: Seconds between the driver's looks at the store for finished shards (progress bar only).
_POLL_S = 1.0


@dataclass
class RaySummary(RecordSummary):
    """What a Ray recording did: a :class:`RecordSummary` (``wall_s``: from the actors ready to
    the last shard written, start-up and merge excluded) plus the start-up and the actors."""

    startup_s: float = 0.0  # ray.init (when started here) + the actors' start (model loaded)
    actors: int = 0
    cpus_per_actor: int = 0
    cpu_s: float = 0.0  # CPU seconds the actors' processes spent recording (all their threads)


def ray_available() -> bool:
    """Whether Ray can be imported (the ``distributed`` extra is installed)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _import_ray():
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SoundNetError(
            f"The Ray engine needs Ray: pip install 'soundnet-interp[distributed]' (import failed: {exc})."
        ) from exc
    return ray


# ---------------------------------------------------------------------------------------------
# the actor (module-level so that it pickles by reference)
# ---------------------------------------------------------------------------------------------
class _ShardRows(Sequence):
    """The corpus rows as :func:`process_shards` reads them (``records[i * size : (i + 1) *
    size]`` and ``len(records)``), holding only the rows of the shards of one call."""

    def __init__(self, n_records: int, size: int, rows: dict[int, list[dict]]) -> None:
        self.n_records, self.size, self.rows = n_records, size, rows

    def __len__(self) -> int:
        return self.n_records

    @overload
    def __getitem__(self, key: int) -> dict: ...
    @overload
    def __getitem__(self, key: slice) -> list[dict]: ...
    def __getitem__(self, key: int | slice) -> dict | list[dict]:
        if isinstance(key, slice):
            start = key.start or 0
            if start % self.size == 0 and start // self.size in self.rows:
                return self.rows[start // self.size]
        raise IndexError(f"only whole shards of this call can be read, not {key!r}")


class _ShardRecorder:
    """A Ray actor: SoundNet, recording whole shards into the run directory's storage.

    Parameters
    ----------
    weights_ref : list of one ray.ObjectRef
        The state dict, put in the object store once by the driver (worker nodes need no weights
        file); wrapped in a list so that the reference, not the object, is the argument.
    config : RecordConfig
        ``workers``: the actor's lanes (its CPUs); ``device``: where the model runs.
    store : ShardStore
        Where the shards go.
    n_records : int
        Rows of the corpus (the corpus's last shard ends with smaller batches).
    threads : int
        torch's intra-op threads in this process (the actor's CPUs), divided among the lanes.
    """

    def __init__(self, weights_ref: list, config: RecordConfig, store: ShardStore, n_records: int, threads: int):
        import ray

        torch.set_num_threads(max(1, threads))
        plain = SoundNet8()
        plain.load_state_dict(ray.get(weights_ref[0]))
        plain.eval()
        for p in plain.parameters():
            p.requires_grad_(False)
        plain = plain.to(config.device)
        model: torch.nn.Module = plain
        if config.fast:  # as the local engine's BatchEngine builds it, once per actor
            try:
                model = fast_model(plain, layers=config.layers)
            except Exception:
                model = plain
        self.model, self.config, self.store, self.n_records = model, config, store, n_records
        self.units = {layer: SPEC_BY_NAME[layer].out_channels for layer in config.layers}

    def ready(self) -> int:
        """The actor's process id, once the model is loaded."""
        return os.getpid()

    def record(self, shard_rows: dict[int, list[dict]]) -> tuple[int, float, float]:
        """Record the shards ``shard_rows`` (index to corpus rows) and put them in the store;
        returns ``(clips, audio seconds, CPU seconds of this process)``."""
        cpu0 = time.process_time()
        todo = sorted(shard_rows)
        rows = _ShardRows(self.n_records, self.config.shard_size, shard_rows)
        with self.store.scratch() as scratch:
            audio_s = process_shards(
                scratch, cast(list[dict], rows), todo, lambda: self.model, self.config, self.units, progress=False
            )
            for i in todo:
                self.store.publish(scratch, i)
        return sum(len(r) for r in shard_rows.values()), float(audio_s), time.process_time() - cpu0


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
    cpus_per_actor: int | None = None,
    use_gpu: bool = False,
    storage: str | tuple[Any, str] | None = None,
    weights: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    corpus_options: dict | None = None,
    max_shards: int | None = None,
    init_options: dict | None = None,
    **settings: Any,
) -> RaySummary:
    """Record every unit of SoundNet over a corpus on Ray actors (resumable, same run directory).

    The result is the local engine's (:func:`interp.recording.record_corpus`): same cache key,
    ``run.json``, shards, tables and top-k; a run directory started by one engine can be resumed
    by the other. Each actor records whole shards with the local engine's lanes and writes them
    to the run directory's storage itself; the driver plans, reports progress and merges.

    Parameters
    ----------
    corpus : DataFrame, str or path
        A corpus table, a built-in name or a path (see :func:`interp.corpus.corpora.load_corpus`). Every
        node of the cluster must be able to read the audio files at the paths in the table.
    out_dir : str or path
        The run directory, as the driver sees it (it writes ``run.json`` and the merged tables).
    config : RecordConfig, optional
        Settings; keyword ``settings`` override its fields. ``workers`` is replaced by
        ``cpus_per_actor`` (each actor's lanes) and ``device`` by ``use_gpu``.
    address : str, optional
        Ray cluster to connect to (``"auto"``, ``"ray://head:10001"``); default: the Ray instance
        this process is already connected to, else a new local one (stopped again at the end).
    num_actors : int, optional
        Recording actors. Default: one per GPU with ``use_gpu``, else as many as fit
        ``cpus_per_actor`` CPUs in each node; never more than the pending shards.
    cpus_per_actor : int, optional
        CPUs (lanes: threads that decode and run batches, one torch thread each) of each actor.
        Default: the CPUs of the smallest node, at most 8 (with ``num_actors``: the cluster's CPUs
        divided among them, at most 8; with ``use_gpu``: the CPUs per GPU, at most 8).
    use_gpu : bool
        Run the model on GPUs (one GPU per actor, ``device="cuda"``).
    storage : str or (filesystem, path), optional
        The run directory as the workers reach it, when not at ``out_dir`` on a file system they
        all mount: a URI (``"s3://bucket/runs/x"``, resolved by ``pyarrow.fs.FileSystem.from_uri``
        on each worker) or a ``(filesystem, path)`` pair (pyarrow or fsspec). The driver keeps
        ``run.json`` and the merged tables at ``out_dir``: a shard the store holds counts as
        done (resumption asks the store), and when the store is not ``out_dir`` itself the
        driver downloads the finished shards into ``out_dir/shards`` before the merge. See
        :class:`interp.recording.ray_writer.ShardStore`.
    weights : str or path, optional
        Weights file (see :func:`soundnet.weights.resolve_weights`); read by the driver and
        shipped to the actors.
    overwrite : bool
        Delete a run directory made from other inputs instead of refusing.
    progress : bool
        Show a progress bar (clips, x real time) on stderr, updated as calls finish.
    corpus_options : dict, optional
        Passed to :func:`interp.corpus.corpora.load_corpus`.
    max_shards : int, optional
        Stop after this many new shards (for tests of resumption).
    init_options : dict, optional
        Extra ``ray.init`` keywords (``num_cpus``, ``object_store_memory``, ``runtime_env``, ...).

    Returns
    -------
    RaySummary
        ``wall_s`` counts the recording from the moment every actor is ready (Ray's start-up,
        ``startup_s``, and the merge excluded), ``audio_s`` the audio recorded by this call.

    Raises
    ------
    ParameterError
        Bad ``num_actors``, ``cpus_per_actor`` or ``max_shards``; ``use_gpu`` on a cluster without
        GPUs and no ``num_actors``.
    RunError
        ``out_dir`` holds a run made from other inputs (and not ``overwrite``).
    SoundNetError
        An actor failed twice on the same shards (the shards recorded before are kept: run the
        same command again to resume).
    """
    for name, value in (("num_actors", num_actors), ("cpus_per_actor", cpus_per_actor)):
        if value is not None and (isinstance(value, bool) or int(value) < 1):
            raise ParameterError(
                f"The '{name}' parameter of record_corpus_ray must be an int >= 1 or None. Got {value!r} instead."
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
        return RaySummary(**{f.name: getattr(first, f.name) for f in dataclasses.fields(first)})
    meta["corpus"]["spec"] = spec if meta["corpus"].get("spec") == "<DataFrame>" else meta["corpus"]["spec"]
    meta["engine"] = "ray"
    meta.setdefault("versions", {})["ray"] = ray.__version__
    atomic_write_json(meta_path, meta)
    store = ShardStore.of(storage if storage is not None else run_dir)

    # 2. the pending shards (same boundaries as the local engine)
    size = config.shard_size
    n_shards = max(1, -(-len(df) // size))
    home = store.is_at(run_dir)  # else the workers' store is elsewhere: shards fetched before the merge
    todo = [i for i in range(n_shards) if not (shard_done(run_dir, i) or (not home and store.done(i)))]
    resumed = n_shards - len(todo)
    if max_shards is not None:
        todo = todo[: int(max_shards)]
    records = df.to_dict("records")
    shard_rows = {i: records[i * size : (i + 1) * size] for i in todo}
    del records

    t_start = time.perf_counter()
    started = False
    if todo and not ray.is_initialized():
        options = dict(_LOCAL_INIT) if address is None else {"log_to_driver": False}
        options.update(init_options or {})
        ray.init(address=address, **options)
        started = True
    audio_s, cpu_s, wall, startup, actors, per_actor = 0.0, 0.0, 0.0, 0.0, [], 0
    try:
        if todo:
            n_actors, per_actor = _actor_shape(ray, num_actors, cpus_per_actor, use_gpu, len(todo))
            actors = _start_actors(ray, model, config, store, len(df), n_actors, per_actor, use_gpu)
            startup = time.perf_counter() - t_start
            t0 = time.perf_counter()
            audio_s, cpu_s = _drive(ray, actors, _calls(todo, size, len(actors)), shard_rows, store, progress=progress)
            wall = time.perf_counter() - t0
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()

    # 3. shards the workers put in another store are brought into the run directory (also when
    # the run is not complete: resumption, the summary and the local engine read them there);
    # then the merge: again the local engine's code, which finds every shard done
    if not home:
        for i in range(n_shards):
            if not shard_done(run_dir, i) and store.done(i):
                store.fetch(i, run_dir)
    if all(shard_done(run_dir, i) for i in range(n_shards)):
        record_corpus(df, run_dir, config=config, model=model, weights=weights_path, progress=False, max_shards=0)
        clips = pd.read_parquet(run_dir / "clips.parquet")
    else:
        clips = done_clips(run_dir, n_shards)
    s = run_summary(run_dir, clips, wall, resumed=resumed, audio_s=audio_s)
    fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
    return RaySummary(**fields, startup_s=startup, actors=len(actors), cpus_per_actor=per_actor, cpu_s=cpu_s)


def _actor_shape(
    ray, num_actors: int | None, cpus_per_actor: int | None, use_gpu: bool, n_todo: int
) -> tuple[int, int]:
    """``(actors, CPUs each)`` on this cluster (see :func:`record_corpus_ray`)."""
    resources = ray.cluster_resources()
    cpus = max(1, int(resources.get("CPU", 1)))
    node_cpus = [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    smallest = min([c for c in node_cpus if c > 0] or [cpus])
    if use_gpu:
        gpus = int(resources.get("GPU", 0))
        if num_actors is None and gpus < 1:
            raise ParameterError(
                "The 'use_gpu' parameter of record_corpus_ray asks for GPU actors but the Ray "
                f"cluster has no GPU (resources {resources}). Got use_gpu=True and "
                "num_actors=None instead; pass num_actors for a cluster that adds GPU nodes on demand."
            )
        n = int(num_actors or gpus)
        per = int(cpus_per_actor or max(1, min(_MAX_LANES, cpus // max(1, gpus or n))))
    elif num_actors is not None:
        n = int(num_actors)
        per = int(cpus_per_actor or max(1, min(_MAX_LANES, smallest, cpus // n)))
    else:
        per = int(cpus_per_actor or max(1, min(_MAX_LANES, smallest)))
        n = max(1, sum(c // per for c in node_cpus) if node_cpus else cpus // per)
    return max(1, min(n, n_todo)), per


def _start_actors(
    ray,
    model: torch.nn.Module,
    config: RecordConfig,
    store: ShardStore,
    n_records: int,
    n_actors: int,
    per_actor: int,
    use_gpu: bool,
) -> list:
    """Start the actors and wait until each has its model (a failed start raises here)."""
    weights_ref = ray.put({k: v.detach().cpu() for k, v in model.state_dict().items()})
    remote = ray.remote(_ShardRecorder).options(
        num_cpus=per_actor,
        num_gpus=1 if use_gpu else 0,
        max_restarts=1,  # a worker lost (a node, a decoder that crashes its process): once
        max_task_retries=1,
    )
    actor_config = dataclasses.replace(config, workers=per_actor)
    actors = [remote.remote([weights_ref], actor_config, store, n_records, per_actor) for _ in range(n_actors)]
    ray.get([a.ready.remote() for a in actors])
    return actors


def _calls(todo: list[int], size: int, n_actors: int) -> list[list[int]]:
    """The pending shards cut into calls of consecutive shards: at most :data:`_CALL_CLIPS`
    clips, and at least :data:`_QUEUED` calls per actor when there are enough shards."""
    per_call = max(1, min(math.ceil(len(todo) / (_QUEUED * n_actors)), _CALL_CLIPS // size))
    calls: list[list[int]] = []
    for i in todo:
        if calls and len(calls[-1]) < per_call and calls[-1][-1] == i - 1:
            calls[-1].append(i)
        else:
            calls.append([i])
    return calls


def _drive(
    ray,
    actors: list,
    calls: list[list[int]],
    shard_rows: dict[int, list[dict]],
    store: ShardStore,
    *,
    progress: bool,
) -> tuple[float, float]:
    """Hand the calls to the actors (:data:`_QUEUED` at a time each) until all are done; returns
    the audio seconds recorded and the actors' CPU seconds."""
    pending = deque(calls)
    inflight: dict[Any, tuple[Any, list[int]]] = {}

    def submit(actor) -> None:
        if pending:
            call = pending.popleft()
            inflight[actor.record.remote({i: shard_rows[i] for i in call})] = (actor, call)

    for _ in range(_QUEUED):
        for actor in actors:
            submit(actor)
    bar = progress_bar(sum(len(shard_rows[i]) for c in calls for i in c), enabled=progress)
    shown: set[int] = set()  # shards counted by the bar

    def show(i: int) -> None:
        if bar is not None and i not in shown:
            shown.add(i)
            bar.update(len(shard_rows[i]))
            el = time.perf_counter() - t0
            bar.set_postfix_str(f"{audio_s / el:.0f}x real time" if el > 0 and audio_s else "")

    audio_s, cpu_s, t0 = 0.0, 0.0, time.perf_counter()
    try:
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=_POLL_S if bar is not None else None)
            if not ready:  # progress between calls: the next shard of each call, once in the store
                for _, call in inflight.values():
                    nxt = next((i for i in call if i not in shown), None)
                    if nxt is not None and store.done(nxt):
                        show(nxt)
                continue
            actor, call = inflight.pop(ready[0])
            ref = ready[0]
            try:
                _, seconds, cpu = ray.get(ref)
            except Exception as exc:
                raise SoundNetError(
                    f"A Ray actor failed twice on shards {call[0]}..{call[-1]} ({type(exc).__name__}: {exc}). "
                    "The shards written so far are kept: run the same command again to resume."
                ) from exc
            audio_s += seconds
            cpu_s += cpu
            submit(actor)
            for i in call:
                show(i)
    finally:
        if bar is not None:
            bar.close()
    return audio_s, cpu_s
