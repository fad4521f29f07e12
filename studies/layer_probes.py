"""Layer probes: how well a linear classifier on each layer's units recognises the corpus's categories.

Thin entry point: the study lives in :mod:`interp.studies.layer_probes` (installed with the package, also run
as ``soundnet-interp study layer_probes``). Flags: ``python studies/layer_probes.py --help``.
"""

from interp.studies.layer_probes import main

if __name__ == "__main__":
    raise SystemExit(main())
