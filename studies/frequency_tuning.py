"""Frequency tuning: pure-tone sweeps through every layer of SoundNet.

Thin entry point: the study lives in :mod:`interp.studies.frequency_tuning` (installed with the package, also run
as ``soundnet-interp study frequency_tuning``). Flags: ``python studies/frequency_tuning.py --help``.
"""

from interp.studies.frequency_tuning import main

if __name__ == "__main__":
    raise SystemExit(main())
