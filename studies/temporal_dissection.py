"""Temporal dissection: which units of which layers fire at the events of which sound concepts.

Thin entry point: the study lives in :mod:`interp.studies.temporal_dissection` (installed with the package, also run
as ``soundnet-interp study temporal_dissection``). Flags: ``python studies/temporal_dissection.py --help``.
"""

from interp.studies.temporal_dissection import main

if __name__ == "__main__":
    raise SystemExit(main())
