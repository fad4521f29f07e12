"""Unit portraits: the top units of each layer and category, three portraits of each side by side.

Thin entry point: the study lives in :mod:`interp.studies.unit_portraits` (installed with the package, also run
as ``soundnet-interp study unit_portraits``). Flags: ``python studies/unit_portraits.py --help``.
"""

from interp.studies.unit_portraits import main

if __name__ == "__main__":
    raise SystemExit(main())
