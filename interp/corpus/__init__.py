"""Corpora: any labeled sound collection as one table, synthetic stimuli, the built-in data.

- :mod:`interp.corpus.corpora`: :func:`~interp.corpus.corpora.load_corpus` reads ESC-50,
  UrbanSound8K, GTZAN, AudioSet and FSD50K layouts (multi-label: a ``labels`` list per clip,
  :mod:`interp.corpus.multilabel`), a folder per class, a CSV manifest, the built-in ``demo``
  (174 real clips in 10 categories) or ``probes``; ``demo_dir()``/``long_dir()`` locate the
  built-in audio (``data/demo``, ``data/long``, each with its ``CREDITS.md``).
- :mod:`interp.corpus.stimuli`: synthetic probes (tones, noise bands, AM noise, click trains,
  chirps, harmonic complexes, silence), rendered on demand from their parameters.
- :mod:`interp.corpus.events`: strong labels (time-stamped events; DCASE tables, JAMS);
  :mod:`interp.corpus.soundscapes`: soundscapes with exact strong labels from one-shots.
"""
