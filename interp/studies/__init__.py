"""The studies: one module per experiment, each a ``main(argv)`` that writes a report folder.

Each study is thin over :mod:`interp` (corpus -> run -> analysis -> report) and writes tables
(Parquet and CSV), figures (HTML, PNG, SVG, PDF) and a ``summary.md`` to ``--out``. Run one with
``soundnet-interp study NAME [flags]``, ``python -m interp.studies.NAME`` or, from a checkout,
``python studies/NAME.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from soundnet.errors import ParameterError

__all__ = ["STUDIES", "run_study"]

STUDIES: tuple[str, ...] = (
    "ablation",
    "frequency_tuning",
    "layer_probes",
    "robustness",
    "sound_categories",
    "temporal_dissection",
    "temporal_tuning",
    "unit_portraits",
)


def run_study(name: str, argv: Sequence[str] = ()) -> int:
    """Run study ``name`` with command-line flags ``argv``; returns its exit status.

    Raises
    ------
    ParameterError
        When ``name`` is not one of :data:`STUDIES`.
    """
    if name not in STUDIES:
        raise ParameterError(
            f"The 'name' parameter of run_study must be one of {', '.join(STUDIES)}. Got {name!r} instead."
        )
    module = importlib.import_module(f"interp.studies.{name}")
    return int(module.main(list(argv)))
