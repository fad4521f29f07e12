"""Temporal tuning: modulation rate and sweep direction through every layer of SoundNet.

Thin entry point: the study lives in :mod:`interp.studies.temporal_tuning` (installed with the package, also run
as ``soundnet-interp study temporal_tuning``). Flags: ``python studies/temporal_tuning.py --help``.
"""

from interp.studies.temporal_tuning import main

if __name__ == "__main__":
    raise SystemExit(main())
