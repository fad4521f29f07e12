"""Ablation: does zeroing a category's most selective units hurt that category more than random units?

Thin entry point: the study lives in :mod:`interp.studies.ablation` (installed with the package, also run
as ``soundnet-interp study ablation``). Flags: ``python studies/ablation.py --help``.
"""

from interp.studies.ablation import main

if __name__ == "__main__":
    raise SystemExit(main())
