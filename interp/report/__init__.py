"""What people read: text cards, figures in one house style, the studies' report plumbing.

- :mod:`interp.report.cards`: a ranking as a text table, one unit's card;
- :mod:`interp.report.figures`: Plotly figures (style, run charts, unit and clip charts, export);
- :mod:`interp.report.study_figures`: the studies' figures;
- :mod:`interp.report.reporting`: flags, getting a run and the report folder the studies share.
"""
