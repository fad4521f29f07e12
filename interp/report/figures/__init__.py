"""Plotly figures with one house style, and their export to HTML, PNG, SVG and PDF.

The package's modules: :mod:`~interp.report.figures.style` (palette, template, category colours),
:mod:`~interp.report.figures.run_charts` (layer- and run-level charts),
:mod:`~interp.report.figures.unit_charts` (unit and clip charts) and
:mod:`~interp.report.figures.export` (files in four formats); every public name is re-exported here.

Every figure of the toolkit is a function here that takes data (arrays or tidy tables) and
returns a :class:`plotly.graph_objects.Figure` styled by :func:`apply_house_style`; the dashboard,
the studies and the CLI all draw through these functions, and :func:`export_figure` writes any of
them to files (static formats are rendered by kaleido driving a Chromium-family browser).

Conventions
-----------
- Categories always get the same colour in every figure: :func:`category_colors` assigns a
  colour-blind-friendly palette in sorted category order.
- Units are numbered from 0; times are in seconds from the clip start; frequencies in Hz.
- Spectrograms are mel power in dB relative to the clip's peak (0 dB = loudest bin).

Examples
--------
>>> fig = layer_selectivity_figure(summary)            # doctest: +SKIP
>>> export_figure(fig, "reports/selectivity", formats=("html", "png"))  # doctest: +SKIP
"""

from interp.report.figures.export import export_figure, figure_bytes, find_browser
from interp.report.figures.run_charts import category_layer_heatmap, layer_selectivity_figure, probe_accuracy_figure
from interp.report.figures.style import (
    EXPORT_FORMATS,
    FONT_FAMILY,
    PALETTE,
    ExportFormat,
    apply_house_style,
    category_colors,
    house_template,
    hz_label,
)
from interp.report.figures.unit_charts import (
    activation_histogram,
    category_distributions,
    clip_activation_figure,
    head_predictions_figure,
    promoted_classes_figure,
    spectrogram_figure,
    tuning_curve_figure,
)

__all__ = [
    # style
    "ExportFormat",
    "EXPORT_FORMATS",
    "FONT_FAMILY",
    "PALETTE",
    "house_template",
    "apply_house_style",
    "category_colors",
    "hz_label",
    # run charts
    "layer_selectivity_figure",
    "category_layer_heatmap",
    "probe_accuracy_figure",
    # unit and clip charts
    "activation_histogram",
    "category_distributions",
    "clip_activation_figure",
    "spectrogram_figure",
    "head_predictions_figure",
    "promoted_classes_figure",
    "tuning_curve_figure",
    # export
    "find_browser",
    "figure_bytes",
    "export_figure",
]
