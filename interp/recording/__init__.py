"""Recording: a corpus in, a run directory of per-clip summaries of every SoundNet unit out.

The public API:

- :func:`record_corpus` (local engine) and :func:`record_corpus_ray` (the same run directory on
  a Ray cluster; Ray is imported only when it runs), with :class:`RecordConfig` and
  :class:`RecordSummary`;
- :func:`summarize_waves`: the recorder's summaries for waveforms held in memory;
- the per-clip reduction the recorder applies: :class:`LayerTap`, :func:`summarize_batch`,
  :func:`summary_frames`, :func:`head_waveform`.

The modules, along the data flow:

========================================  ===================================================
:mod:`~interp.recording.config`           settings, summary, progress bar
:mod:`~interp.recording.decode`           a corpus row decoded into audio (or a status)
:mod:`~interp.recording.workers`          decoding in worker processes (``decoder="process"``)
:mod:`~interp.recording.reduce`           layer outputs reduced to per-clip statistics
:mod:`~interp.recording.stream`           long files in chunks, statistics stitched exactly
:mod:`~interp.recording.engine`           the forward passes; :func:`summarize_waves`
:mod:`~interp.recording.lanes`            threads that decode and run batches, shard by shard
:mod:`~interp.recording.shards`           a shard on disk
:mod:`~interp.recording.merge`            shards into the run's tables and top-k
:mod:`~interp.recording.pipeline`         :func:`record_corpus`: cache key, shards, merge
:mod:`~interp.recording.ray_engine`       :func:`record_corpus_ray`
========================================  ===================================================
"""

from interp.recording.config import DECODERS, RecordConfig, RecordSummary, default_workers
from interp.recording.engine import summarize_waves
from interp.recording.pipeline import record_corpus
from interp.recording.ray_engine import ray_available, record_corpus_ray
from interp.recording.reduce import LayerTap, head_waveform, summarize_batch, summary_frames

__all__ = [
    "record_corpus",
    "record_corpus_ray",
    "ray_available",
    "RecordConfig",
    "RecordSummary",
    "summarize_waves",
    "LayerTap",
    "summarize_batch",
    "summary_frames",
    "head_waveform",
    "default_workers",
    "DECODERS",
]
