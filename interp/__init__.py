"""soundnet-interp: unit-level interpretability of SoundNet.

The names a user calls, along the data flow (corpus -> recording -> run directory -> analysis ->
report)::

    import interp

    corpus = interp.load_corpus("demo")                     # a corpus table (one row per clip)
    interp.record_corpus(corpus, "runs/demo")               # the run directory (Parquet)
    run = interp.open_run("runs/demo")
    interp.analyze(run)                                     # selectivity, unit labels, top clips
    print(interp.rank_units(run, "speech", top=10))
    print(interp.unit_card(run, "conv7", 123))
    interp.run_study("frequency_tuning", ["--quick"])

Each name is imported from its sub-package the first time it is used (so that ``import interp``
and the command line start fast); the sub-packages are :mod:`interp.corpus`,
:mod:`interp.recording`, :mod:`interp.run`, :mod:`interp.analysis`, :mod:`interp.report` and
:mod:`interp.studies` (see ``docs/architecture.md``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from soundnet import __version__

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # corpus
    "load_corpus": "interp.corpus.corpora",
    "describe_corpus": "interp.corpus.corpora",
    "read_clip": "interp.corpus.corpora",
    "clip_waves": "interp.corpus.corpora",
    "demo_dir": "interp.corpus.corpora",
    "long_dir": "interp.corpus.corpora",
    "probe_table": "interp.corpus.stimuli",
    "read_events": "interp.corpus.events",
    "events_for_clips": "interp.corpus.events",
    "synthesize_soundscapes": "interp.corpus.soundscapes",
    # recording
    "record_corpus": "interp.recording",
    "record_corpus_ray": "interp.recording",
    "RecordConfig": "interp.recording",
    "RecordSummary": "interp.recording",
    "summarize_waves": "interp.recording",
    # the run directory
    "open_run": "interp.run.store",
    "Run": "interp.run.store",
    "RunError": "interp.run.store",
    "clip_spectrogram": "interp.run.traces",
    "unit_traces": "interp.run.traces",
    # analysis
    "analyze": "interp.analysis.selectivity",
    "compute_selectivity": "interp.analysis.selectivity",
    "rank_units": "interp.analysis.selectivity",
    "top_clips": "interp.analysis.topclips",
    "layer_probes": "interp.analysis.linear_probes",
    "tone_curves": "interp.analysis.tuning",
    "ablate": "interp.analysis.ablation",
    "category_ablation_table": "interp.analysis.causal",
    "label_units": "interp.analysis.unitlabels",
    "dissect": "interp.analysis.dissection",
    "run_dissection": "interp.analysis.dissection",
    "run_strf": "interp.analysis.strf",
    "run_visualize": "interp.analysis.visualize",
    "run_attribution": "interp.analysis.attribution",
    "causal_effects": "interp.analysis.causal",
    # report and studies
    "unit_card": "interp.report.cards",
    "Report": "interp.report.reporting",
    "STUDIES": "interp.studies",
    "run_study": "interp.studies",
}

__all__ = [
    "__version__",
    "load_corpus",
    "describe_corpus",
    "read_clip",
    "clip_waves",
    "demo_dir",
    "long_dir",
    "probe_table",
    "read_events",
    "events_for_clips",
    "synthesize_soundscapes",
    "record_corpus",
    "record_corpus_ray",
    "RecordConfig",
    "RecordSummary",
    "summarize_waves",
    "open_run",
    "Run",
    "RunError",
    "clip_spectrogram",
    "unit_traces",
    "analyze",
    "compute_selectivity",
    "rank_units",
    "top_clips",
    "layer_probes",
    "tone_curves",
    "ablate",
    "category_ablation_table",
    "label_units",
    "dissect",
    "run_dissection",
    "run_strf",
    "run_visualize",
    "run_attribution",
    "causal_effects",
    "unit_card",
    "Report",
    "STUDIES",
    "run_study",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'interp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, for type checkers and editors
    from interp.analysis.ablation import ablate
    from interp.analysis.causal import category_ablation_table
    from interp.analysis.linear_probes import layer_probes
    from interp.analysis.selectivity import analyze, compute_selectivity, rank_units
    from interp.analysis.topclips import top_clips
    from interp.analysis.tuning import tone_curves
    from interp.corpus.corpora import clip_waves, demo_dir, describe_corpus, load_corpus, long_dir, read_clip
    from interp.corpus.stimuli import probe_table
    from interp.recording import RecordConfig, RecordSummary, record_corpus, record_corpus_ray, summarize_waves
    from interp.report.cards import unit_card
    from interp.report.reporting import Report
    from interp.run.store import Run, RunError, open_run
    from interp.run.traces import clip_spectrogram, unit_traces
    from interp.studies import STUDIES, run_study
