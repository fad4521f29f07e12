"""Sound categories: which units of which layers are selective for which categories of a corpus.

Thin entry point: the study lives in :mod:`interp.studies.sound_categories` (installed with the package, also run
as ``soundnet-interp study sound_categories``). Flags: ``python studies/sound_categories.py --help``.
"""

from interp.studies.sound_categories import main

if __name__ == "__main__":
    raise SystemExit(main())
