"""The studies' figures, in the house style of :mod:`interp.report.figures`.

Modules: :mod:`~interp.report.study_figures.tuning` (frequency and temporal tuning),
:mod:`~interp.report.study_figures.categories` (categories, robustness, ablation, probes) and
:mod:`~interp.report.study_figures.common` (shared helpers); every figure is re-exported here.

Each function takes the tidy tables the studies write (see :mod:`interp.analysis.tuning`,
:mod:`interp.analysis.linear_probes`, :mod:`interp.analysis.robustness`) and returns a plotly ``Figure``; export
them with :func:`interp.report.figures.export_figure`. Frequencies are drawn on octave (log2) axes and
labelled in Hz; responses of different units are compared after scaling each unit to its own
range (0 = the unit's weakest response in the sweep, 1 = its strongest).
"""

from __future__ import annotations

from interp.report.study_figures.categories import (
    ablation_figure,
    recall_heatmap,
    robustness_figure,
    top_clips_figure,
    unit_label_chart,
)
from interp.report.study_figures.tuning import (
    best_frequency_histograms,
    direction_figure,
    example_curves_figure,
    following_figure,
    kernel_agreement_figure,
    kernel_response_figure,
    level_figure,
    rate_tuning_figure,
    tonotopy_figure,
)

__all__ = [
    "tonotopy_figure",
    "example_curves_figure",
    "best_frequency_histograms",
    "kernel_agreement_figure",
    "kernel_response_figure",
    "level_figure",
    "rate_tuning_figure",
    "following_figure",
    "direction_figure",
    "unit_label_chart",
    "top_clips_figure",
    "robustness_figure",
    "ablation_figure",
    "recall_heatmap",
]
