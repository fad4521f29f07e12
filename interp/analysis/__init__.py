"""Analyses of a run directory, one module per idea, each returning (and writing) tables.

- :mod:`~interp.analysis.stats`: vectorised statistics (AUROC, Mann-Whitney, BH, d', CSI, MI,
  bootstrap intervals, permutations);
- :mod:`~interp.analysis.resampling`: bootstraps and permutations that move whole groups of clips;
- :mod:`~interp.analysis.nuisance`: how well clip length, level, spectral shape or source rate alone
  separate each category, and the within-strata control;
- :mod:`~interp.analysis.selectivity`: per (unit, category) selectivity, rankings, unit labels,
  :func:`~interp.analysis.selectivity.analyze`;
- :mod:`~interp.analysis.topclips`: a unit's top clips and moments;
- :mod:`~interp.analysis.tuning`: tuning to synthetic probes;
- :mod:`~interp.analysis.linear_probes`: linear probes per layer (nested CV, grouped folds,
  baselines, paired tests: :mod:`~interp.analysis.probe_stats`, :mod:`~interp.analysis.baselines`)
  and :mod:`~interp.analysis.paper_protocol`, the paper's ESC-50 protocol;
- :mod:`~interp.analysis.unitlabels`, :mod:`~interp.analysis.ranktests`: unit-level labels and the
  rank tests behind them; :mod:`~interp.analysis.outputs`: correlations with the heads;
- :mod:`~interp.analysis.dissection`: temporal dissection against time-stamped events;
  :mod:`~interp.analysis.strf`: spectro-temporal receptive fields;
- :mod:`~interp.analysis.ablation`, :mod:`~interp.analysis.causal`: ablating units, effects on the
  heads and on a probe;
- :mod:`~interp.analysis.robustness`: rankings and probes under perturbations.

The modules are imported one by one (scikit-learn, for instance, only where a probe is fitted).
"""
