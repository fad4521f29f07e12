"""What the single-label probes (:mod:`interp.analysis.linear_probes`) and the multi-label probes
(:mod:`interp.analysis.multilabel_probes`) share: the probe table's columns, the grid of C, the
BLAS guard and the fold bookkeeping.

Both modules re-export these names; :mod:`interp.analysis.linear_probes` is where readers find them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

__all__ = ["PROBE_COLUMNS", "C_GRID", "INTERVAL", "METRICS", "single_blas_thread", "fold_of_clips"]

#: Columns of the probe table, in order (the first four are what other tools read back). For a
#: multi-label corpus ``accuracy`` holds the mean average precision and ``metric`` says so.
PROBE_COLUMNS = (
    "layer",
    "accuracy",
    "ci_low",
    "ci_high",
    "probe",
    "n_clips",
    "n_correct",
    "n_classes",
    "chance",
    "fold_sd",
    "C",
    "cv",
    "interval",
    "features",
    "classifier",
    "metric",
)
#: The values of the probe table's ``metric`` column: single-label probes, multi-label probes.
METRICS = ("accuracy", "mAP")
#: The inner cross-validation's grid of C (inverse L2 strength): 10^-3 .. 10^2.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2)
#: What the probe table's interval is.
INTERVAL = "95% group bootstrap, stratified by test fold"


def single_blas_thread():
    """Context manager: BLAS on one thread while probes are fitted.

    The probes' matrices are small (clips x units); multi-threaded OpenBLAS gains nothing on them
    and, on a machine whose cores are busy, its spinning threads made a 3 s fit take 5 minutes.
    """

    return threadpool_limits(limits=1, user_api="blas")


def fold_of_clips(splits: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    """Each clip's test fold: the index of the split that tests it (-1: none).

    Parameters
    ----------
    splits : list of (train_index, test_index)
    n : int
        Number of clips.

    Returns
    -------
    np.ndarray of int, shape (n,)
    """
    fold = np.full(n, -1, dtype=np.int64)
    for i, (_, test) in enumerate(splits):
        fold[np.asarray(test, dtype=np.int64)] = i
    return fold
