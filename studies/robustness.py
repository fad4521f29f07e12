"""Robustness: do unit rankings and probe accuracy survive level changes, noise, shifts and resampling?

Thin entry point: the study lives in :mod:`interp.studies.robustness` (installed with the package, also run
as ``soundnet-interp study robustness``). Flags: ``python studies/robustness.py --help``.
"""

from interp.studies.robustness import main

if __name__ == "__main__":
    raise SystemExit(main())
