"""The run directory: the single hand-off between recording, analysis, dashboard and studies.

- :mod:`interp.run.store`: :func:`~interp.run.store.open_run` and :class:`~interp.run.store.Run`
  (Parquet tables, atomic writes, pandas accessors);
- :mod:`interp.run.runningstats`: streaming statistics that save, restore and merge exactly;
- :mod:`interp.run.traces`: one clip's unit activation traces and mel spectrogram, cached.

See ``docs/run-directory.md`` for the tables.
"""
