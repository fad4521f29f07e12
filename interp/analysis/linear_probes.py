"""Linear probes: how much each layer of SoundNet knows about a corpus's categories.

Protocol (:func:`layer_probes`, :func:`probe_arrays`)
    Features: each clip's per-unit ``mean`` over time from the run directory (``max`` on
    request), standardised within each training fold; classifier: multinomial L2 logistic
    regression. Outer cross-validation: the corpus's own folds when it has them (ESC-50's 5,
    UrbanSound8K's 10: leave one fold out), else stratified *group* k-fold on the ``group``
    column (all clips of one source recording in one fold; stratified k-fold when every clip is
    its own group). The regularisation C is chosen *inside* each outer training fold by an inner
    stratified group k-fold over the log grid :data:`C_GRID` (nested cross-validation: the test
    fold never sees the choice); ``C=`` fixes it instead. Every clip is predicted once, by the
    probe that did not see it.

Chance (:func:`chance_level`, one definition everywhere)
    The accuracy of the best constant guess under the same folds: each training fold's most
    frequent category (ties: the mean over the tied ones, i.e. a random tie-break), scored on its
    test fold, pooled over the test clips. It is what a probe that learned only how often each
    category occurs would score. It equals 1/K on a balanced corpus (ESC-50) and is higher on an
    unbalanced one (13.8 % on the demo with its grouped folds, whose largest categories are speech,
    27 of 174 clips, and tabla, 26, against 1/K = 10 %); 1/K would flatter a probe on unbalanced data, and the majority rate of the test
    folds would use the test labels. Readers of a probe table take it from its ``chance`` column
    (:func:`probe_chance`).

Intervals and tests (:mod:`interp.analysis.probe_stats`)
    ``ci_low, ci_high``: percentile interval of a group bootstrap stratified by test fold (groups
    are redrawn within their fold; a clip without a group is its own group). ``fold_sd``: the
    standard deviation of the per-fold accuracies. Layers are compared on the same clips by a
    paired test (exact McNemar without clustering, the paired group bootstrap with it); a best
    layer is named only when it is significantly better than the runner-up
    (:func:`interp.analysis.probe_stats.best_layer`).

Baselines (:mod:`interp.analysis.baselines`)
    ``layer_probes(..., baselines=...)`` adds rows for log-mel statistics, a randomly initialised
    SoundNet and the pretrained net with shuffled weights, probed the same way on the same clips.

The paper's ESC-50 protocol (windows of pool5, liblinear) is :mod:`interp.analysis.paper_protocol`.

The probe table (``probes.parquet`` / ``probes.csv``) has the columns :data:`PROBE_COLUMNS`:
``layer, accuracy, ci_low, ci_high`` (fractions in [0, 1]) then ``probe`` (``pretrained`` or a
baseline's name), ``n_clips, n_correct, n_classes, chance, fold_sd, C`` (the C chosen in each
outer fold), ``cv, interval, features, classifier, metric`` (``"accuracy"``).

Multi-label corpora (a clip with several labels: AudioSet, FSD50K) are probed one-vs-rest by
:mod:`interp.analysis.multilabel_probes` (:func:`layer_probes` hands them over): the same table
with ``metric`` ``"mAP"`` and the mean average precision in ``accuracy``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from interp.analysis import baselines as bl
from interp.analysis import multilabel_probes as mlp
from interp.analysis.probe_common import C_GRID, INTERVAL, PROBE_COLUMNS, fold_of_clips, single_blas_thread
from interp.analysis.probe_stats import group_bootstrap_accuracy
from interp.run.store import Run
from soundnet.errors import ParameterError
from soundnet.model import CONV_LAYERS, SoundNet8
from soundnet.options import ClipStat, check_option

__all__ = [
    "INTERVAL",
    "PROBE_COLUMNS",
    "PREDICTION_COLUMNS",
    "C_GRID",
    "single_blas_thread",
    "wilson_interval",
    "chance_level",
    "probe_chance",
    "probe_folds",
    "fold_of_clips",
    "logistic_probe",
    "fit_folds",
    "predict_folds",
    "cross_validate",
    "nested_cross_validate",
    "probe_row",
    "probe_arrays",
    "layer_probes",
]

#: Columns of the predictions table (one row per probe, layer and clip).
PREDICTION_COLUMNS = ("probe", "layer", "clip_id", "label", "predicted", "correct", "fold", "group")


def wilson_interval(n_correct: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Parameters
    ----------
    n_correct : int
        Successes.
    n : int
        Trials (> 0).
    confidence : float
        Coverage, e.g. 0.95.

    Returns
    -------
    (float, float)
        Lower and upper bounds in [0, 1].
    """
    if n <= 0 or not 0 <= n_correct <= n:
        raise ParameterError(f"wilson_interval needs 0 <= n_correct <= n and n > 0. Got {n_correct}, {n} instead.")
    if not 0 < confidence < 1:
        raise ParameterError(
            f"The 'confidence' parameter of wilson_interval must be in (0, 1). Got {confidence} instead."
        )
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    p = n_correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def chance_level(
    labels: Sequence[str] | np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]] | None = None
) -> float:
    """Chance accuracy: the best constant guess learned on each training fold, scored on its test fold.

    The one definition of chance in the toolkit (see the module docstring for why).

    Parameters
    ----------
    labels : array of str, shape (n_clips,)
    splits : list of (train_index, test_index), optional
        The probe's folds (:func:`probe_folds`). Without them: the most frequent label's rate.

    Returns
    -------
    float
        A fraction in [0, 1] (NaN without labels). With splits: for each split, the rate in the
        test fold of the training fold's most frequent label (averaged over tied labels), pooled
        over the test clips.
    """
    y = np.asarray(labels).astype(str)
    if len(y) == 0:
        return math.nan
    if splits is None:
        return float(pd.Series(y).value_counts(normalize=True).iloc[0])
    hits, n = 0.0, 0
    for train, test in splits:
        counts = pd.Series(y[np.asarray(train)]).value_counts()
        if len(counts) == 0 or len(test) == 0:
            continue
        top = counts.index[counts == counts.iloc[0]]
        yt = y[np.asarray(test)]
        hits += float(np.mean([(yt == t).sum() for t in top]))
        n += len(yt)
    return hits / n if n else math.nan


def probe_chance(table: pd.DataFrame) -> float:
    """The chance level of a probe table (its ``chance`` column): what a reader draws beside it.

    Parameters
    ----------
    table : pandas.DataFrame
        A probe table (:data:`PROBE_COLUMNS`, e.g. ``probes.parquet``).

    Returns
    -------
    float
        A fraction in [0, 1]: :func:`chance_level` of the probes' clips and folds (every row of a
        table shares it). NaN when the table has no ``chance`` column.
    """
    if "chance" not in table.columns or table.empty:
        return math.nan
    return (
        float(pd.to_numeric(table["chance"], errors="coerce").dropna().iloc[0])
        if table["chance"].notna().any()
        else math.nan
    )


def probe_folds(
    labels: Sequence[str] | np.ndarray,
    folds: Sequence[int] | np.ndarray | None = None,
    *,
    n_splits: int = 5,
    seed: int = 0,
    groups: Sequence[Any] | np.ndarray | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Train / test splits: the corpus's folds where it has them, stratified (group) k-fold
    otherwise.

    Parameters
    ----------
    labels : array of str, shape (n_clips,)
    folds : array of int, shape (n_clips,), optional
        The corpus's fold of each clip (-1: none). Used when every clip has a fold and there are
        at least two folds.
    n_splits : int
        Folds of the stratified k-fold (reduced to the size of the smallest class, at least 2).
    seed : int
        Shuffling seed of the stratified k-fold.
    groups : array-like, shape (n_clips,), optional
        Each clip's group (source file, speaker, recording). When some group holds several
        clips, the folds keep groups whole (scikit-learn's ``StratifiedGroupKFold``): a probe is
        never tested on a source it was trained on. (The corpus's own folds are used as they
        are: ESC-50's and UrbanSound8K's keep their sources whole already.)

    Returns
    -------
    splits : list of (train_index, test_index)
    description : str
        E.g. ``"corpus folds (5)"``, ``"stratified 5-fold"`` or ``"stratified group 5-fold"``.
    """
    # scikit-learn is imported where it is used: 0.1 s more at this module's import (measured with
    # python -X importtime; scipy is loaded already), 0.5 s for interp.analysis.ablation (see there)
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(labels).astype(str)
    if folds is not None:
        f = np.asarray(folds).astype(int)
        uniq = np.unique(f)
        if len(f) == len(y) and (f >= 0).all() and len(uniq) >= 2:
            return [(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in uniq], f"corpus folds ({len(uniq)})"
    smallest = int(pd.Series(y).value_counts().min()) if len(y) else 0
    k = min(int(n_splits), smallest)
    if k < 2:
        raise ParameterError(
            f"Probes need at least 2 clips of every category for cross-validation. The smallest "
            f"category has {smallest}."
        )
    if groups is not None:
        g = pd.Series(np.asarray(groups, dtype=object)).astype(str).to_numpy()
        if len(g) == len(y) and len(set(g)) < len(g):
            per_cat = pd.DataFrame({"y": y, "g": g}).drop_duplicates().groupby("y").size()
            kg = min(int(n_splits), int(per_cat.min()))
            if kg < 2:
                raise ParameterError(
                    f"Probes with groups need at least 2 groups of every category for cross-validation. "
                    f"{per_cat.idxmin()!r} has {int(per_cat.min())}."
                )
            sgkf = StratifiedGroupKFold(n_splits=kg, shuffle=True, random_state=seed)
            splits = [(tr, te) for tr, te in sgkf.split(np.zeros(len(y)), y, g)]
            return splits, f"stratified group {kg}-fold"
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in skf.split(np.zeros(len(y)), y)], f"stratified {k}-fold"


def logistic_probe(*, C: float = 1.0) -> Callable[[], Any]:
    """A factory of the default probe: standardise, then multinomial L2 logistic regression."""
    # (scikit-learn lazily: see probe_folds)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make():
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))

    return make


def _check_xy(x, labels, func: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(labels).astype(str)
    if x.ndim != 2 or len(x) != len(y):
        raise ParameterError(
            f"{func} needs x (n_clips, n_features) with one label per row. Got x {x.shape} and {len(y)} labels instead."
        )
    return x, y


def fit_folds(
    x: np.ndarray, labels: Sequence[str] | np.ndarray, splits, *, make_classifier: Callable[[], Any] | None = None
) -> list:
    """One probe per fold, each trained on the fold's training clips.

    Parameters
    ----------
    x : np.ndarray, shape (n_clips, n_features)
    labels : array of str, shape (n_clips,)
    splits : list of (train_index, test_index)
        From :func:`probe_folds`.
    make_classifier : callable, optional
        Returns a fresh scikit-learn classifier (default :func:`logistic_probe`).

    Returns
    -------
    list of fitted classifiers, one per split.
    """
    x, y = _check_xy(x, labels, "fit_folds")
    make = make_classifier or logistic_probe()
    models = []
    with single_blas_thread():
        for train, _ in splits:
            clf = make()
            clf.fit(x[train], y[train])
            models.append(clf)
    return models


def predict_folds(models: list, splits, x_test: np.ndarray) -> np.ndarray:
    """Predict each fold's test clips with that fold's probe (see :func:`fit_folds`).

    Parameters
    ----------
    models : list
        From :func:`fit_folds`, same ``splits``.
    splits : list of (train_index, test_index)
    x_test : np.ndarray, shape (n_clips, n_features)
        The features to predict from: the training features, or perturbed or ablated versions of
        the same clips.

    Returns
    -------
    np.ndarray of str, shape (n_clips,)
        Predicted label of every clip (empty string for a clip in no test fold).
    """
    xt = np.asarray(x_test, dtype=np.float64)
    pred = np.full(len(xt), "", dtype=object)
    with single_blas_thread():
        for clf, (_, test) in zip(models, splits):
            pred[test] = clf.predict(xt[test])
    return pred.astype(str)


def cross_validate(
    x: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    splits,
    *,
    make_classifier: Callable[[], object] | None = None,
    x_test: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-validated predictions: each clip predicted by the probe trained without it.

    Parameters
    ----------
    x : np.ndarray, shape (n_clips, n_features)
        Training features.
    labels : array of str, shape (n_clips,)
    splits : list of (train_index, test_index)
        From :func:`probe_folds`.
    make_classifier : callable, optional
        Returns a fresh scikit-learn classifier (default :func:`logistic_probe`).
    x_test : np.ndarray, shape (n_clips, n_features), optional
        Features the test clips are predicted from (default ``x``): e.g. perturbed or ablated
        versions of the same clips, to ask how a probe trained on clean clips copes.

    Returns
    -------
    np.ndarray of str, shape (n_clips,)
        Predicted label of every clip (empty string for a clip in no test fold).
    """
    x, _ = _check_xy(x, labels, "cross_validate")
    xt = x if x_test is None else np.asarray(x_test, dtype=np.float64)
    if xt.shape != x.shape:
        raise ParameterError(
            f"The 'x_test' parameter of cross_validate must have the shape of x {x.shape}. Got {xt.shape} instead."
        )
    return predict_folds(fit_folds(x, labels, splits, make_classifier=make_classifier), splits, xt)


def _inner_splits(y: np.ndarray, g: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group k-fold of a training fold (k reduced to the groups of its rarest class, >= 2)."""
    from sklearn.model_selection import StratifiedGroupKFold

    per_cat = pd.DataFrame({"y": y, "g": g}).drop_duplicates().groupby("y").size()
    kk = max(2, min(int(k), int(per_cat.min()), len(np.unique(g))))
    sgkf = StratifiedGroupKFold(n_splits=kk, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in sgkf.split(np.zeros(len(y)), y, g)]


def nested_cross_validate(
    x: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    C_grid: Sequence[float] = C_GRID,
    inner_folds: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated predictions with C chosen inside each training fold (nested CV).

    Parameters
    ----------
    x : np.ndarray, shape (n_clips, n_features)
    labels : array of str, shape (n_clips,)
    splits : list of (train_index, test_index)
        The outer folds (:func:`probe_folds`).
    groups : array-like, shape (n_clips,), optional
        Each clip's group: the inner folds keep groups whole (None: every clip its own group).
    C_grid : sequence of float
        Candidate C values (inverse L2 strength of :func:`logistic_probe`), > 0.
    inner_folds : int
        Folds of the inner stratified group k-fold (fewer when the rarest category of a training
        fold has fewer groups; at least 2).
    seed : int
        Shuffling seed of the inner folds.

    Returns
    -------
    pred : np.ndarray of str, shape (n_clips,)
        Every clip's prediction by the probe of its outer fold ("" for a clip in no test fold).
    chosen_C : np.ndarray of float, shape (n_splits,)
        The C each outer fold chose (highest mean inner accuracy; ties go to the smaller C, the
        stronger regularisation).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = _check_xy(x, labels, "nested_cross_validate")
    grid = sorted(float(c) for c in C_grid)
    if not grid or grid[0] <= 0:
        raise ParameterError(
            f"The 'C_grid' parameter of nested_cross_validate must hold values > 0. Got {C_grid} instead."
        )
    if inner_folds < 2:
        raise ParameterError(
            f"The 'inner_folds' parameter of nested_cross_validate must be >= 2. Got {inner_folds} instead."
        )
    g = (
        np.arange(len(y)).astype(str)
        if groups is None
        else pd.Series(np.asarray(groups, dtype=object)).astype(str).to_numpy()
    )
    pred = np.full(len(y), "", dtype=object)
    chosen = np.full(len(splits), math.nan)
    with single_blas_thread(), warnings.catch_warnings():
        # a rare category with fewer groups than inner folds: scikit-learn warns, the folds stay valid
        warnings.filterwarnings("ignore", message=".*least populated class.*")
        for i, (train, test) in enumerate(splits):
            train = np.asarray(train)
            inner = _inner_splits(y[train], g[train], inner_folds, seed)
            search = GridSearchCV(
                make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)),
                {"logisticregression__C": grid},
                cv=inner,
                scoring="accuracy",
                refit=True,
                error_score="raise",
            )
            search.fit(x[train], y[train])
            chosen[i] = float(search.best_params_["logisticregression__C"])
            pred[np.asarray(test)] = search.predict(x[np.asarray(test)])
    return pred.astype(str), chosen


def probe_row(
    layer: str,
    labels: np.ndarray,
    pred: np.ndarray,
    *,
    cv: str,
    features: str,
    classifier: str,
    confidence: float = 0.95,
    probe: str = "pretrained",
    splits: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    C: str = "",
    n_boot: int = 2000,
    seed: int = 0,
) -> dict:
    """One row of the probe table from labels and cross-validated predictions.

    Parameters
    ----------
    layer : str
    labels, pred : array of str, shape (n_clips,)
        True labels and cross-validated predictions ("" for a clip in no test fold).
    cv, features, classifier : str
        Descriptions for the table.
    confidence : float
        Coverage of the interval.
    probe : str
        ``"pretrained"`` or a baseline's name.
    splits : list of (train_index, test_index), optional
        The folds: chance (:func:`chance_level`), the bootstrap's strata and ``fold_sd`` use them.
    groups : array-like, shape (n_clips,), optional
        Each clip's group, the bootstrap's unit (None: every clip its own).
    C : str
        The C of each fold, for the table.
    n_boot, seed : int
        Bootstrap samples and seed.

    Returns
    -------
    dict with the keys :data:`PROBE_COLUMNS`.
    """
    labels = np.asarray(labels).astype(str)
    pred = np.asarray(pred).astype(str)
    done = pred != ""
    n = int(done.sum())
    if n == 0:
        raise ParameterError(f"probe_row: no clip of layer {layer!r} was predicted.")
    correct = pred[done] == labels[done]
    k = int(correct.sum())
    fold = fold_of_clips(splits, len(labels))[done] if splits is not None else None
    g = None if groups is None else np.asarray(groups, dtype=object)[done]
    lo, hi = group_bootstrap_accuracy(correct, groups=g, strata=fold, confidence=confidence, n_boot=n_boot, seed=seed)
    fold_sd = math.nan
    if fold is not None and len(np.unique(fold)) >= 2:
        fold_sd = float(pd.Series(correct).groupby(fold).mean().std(ddof=1))
    return {
        "layer": layer,
        "accuracy": k / n,
        "ci_low": lo,
        "ci_high": hi,
        "probe": probe,
        "n_clips": n,
        "n_correct": k,
        "n_classes": int(len(np.unique(labels[done]))),
        "chance": chance_level(labels, splits) if splits is not None else chance_level(labels[done]),
        "fold_sd": fold_sd,
        "C": C,
        "cv": cv,
        "interval": f"{confidence:.0%} group bootstrap, stratified by test fold",
        "features": features,
        "classifier": classifier,
        "metric": "accuracy",
    }


def probe_arrays(
    features: Mapping[tuple[str, str], np.ndarray],
    labels: Sequence[str] | np.ndarray,
    *,
    folds: Sequence[int] | np.ndarray | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    clip_ids: Sequence[Any] | np.ndarray | None = None,
    descriptions: Mapping[tuple[str, str], str] | None = None,
    C: float | None = None,
    C_grid: Sequence[float] = C_GRID,
    inner_folds: int = 3,
    n_splits: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    n_boot: int = 2000,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Probe several feature sets of the same clips with the same folds.

    Parameters
    ----------
    features : mapping ``{(probe, layer): np.ndarray (n_clips, n_features)}``
        E.g. ``{("pretrained", "conv5"): ..., ("log-mel", "log-mel"): ...}``, rows in clip order.
    labels : array of str, shape (n_clips,)
    folds : array of int, shape (n_clips,), optional
        The corpus's folds (see :func:`probe_folds`).
    groups : array-like, shape (n_clips,), optional
        Each clip's group (outer and inner folds keep groups whole; the bootstrap resamples them).
    clip_ids : array-like, shape (n_clips,), optional
        Ids for the predictions table (default ``0 .. n_clips-1``).
    descriptions : mapping ``{(probe, layer): str}``, optional
        The ``features`` column of each row.
    C : float, optional
        Fix C instead of choosing it by nested cross-validation over ``C_grid``.
    C_grid, inner_folds
        See :func:`nested_cross_validate`.
    n_splits, seed
        See :func:`probe_folds`.
    confidence, n_boot
        See :func:`interp.analysis.probe_stats.group_bootstrap_accuracy`.

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`PROBE_COLUMNS`, one row per feature set, in the mapping's order.
    predictions : pandas.DataFrame
        Columns :data:`PREDICTION_COLUMNS`.

    Notes
    -----
    Every feature set is scored on the same clips: a clip with a non-finite feature in any set is
    left out of all of them, and so is a category with fewer than 2 remaining clips. That keeps
    the paired comparisons (:mod:`interp.analysis.probe_stats`) paired.
    """
    y_all = np.asarray(labels).astype(str)
    n = len(y_all)
    if not features:
        raise ParameterError("The 'features' parameter of probe_arrays must hold at least one feature set. Got none.")
    xs = {}
    for key, x in features.items():
        xs[key] = np.asarray(x, dtype=np.float64)
        if xs[key].ndim != 2 or len(xs[key]) != n:
            raise ParameterError(
                f"The 'features' parameter of probe_arrays must hold (n_clips, n_features) arrays with {n} rows. "
                f"Got {xs[key].shape} for {key} instead."
            )
    if C is not None and C <= 0:
        raise ParameterError(f"The 'C' parameter of probe_arrays must be > 0. Got {C} instead.")
    keep = np.all([np.isfinite(x).all(axis=1) for x in xs.values()], axis=0) & (y_all != "")
    counts = pd.Series(y_all[keep]).value_counts()
    keep &= pd.Series(y_all).map(counts).fillna(0).to_numpy() >= 2
    idx = np.flatnonzero(keep)
    y = y_all[idx]
    g = None if groups is None else np.asarray(groups, dtype=object)[idx]
    f = None if folds is None else np.asarray(folds)[idx]
    ids = (np.arange(n) if clip_ids is None else np.asarray(clip_ids))[idx]
    splits, cv = probe_folds(y, f, n_splits=n_splits, seed=seed, groups=g)
    fold = fold_of_clips(splits, len(y))
    group_col = ids.astype(str) if g is None else pd.Series(g).astype(str).to_numpy()
    rows, preds = [], []
    for (probe, layer), x in xs.items():
        x = x[idx]
        if C is None:
            pred, chosen = nested_cross_validate(
                x, y, splits, groups=g, C_grid=C_grid, inner_folds=inner_folds, seed=seed
            )
            c_text = ",".join(f"{c:g}" for c in chosen)
            clf = f"logistic regression (L2; C by nested {inner_folds}-fold group CV over {len(C_grid)} values)"
        else:
            pred = cross_validate(x, y, splits, make_classifier=logistic_probe(C=C))
            c_text, clf = f"{C:g}", f"logistic regression (L2, C={C:g})"
        desc = (descriptions or {}).get((probe, layer), "")
        rows.append(
            probe_row(
                layer,
                y,
                pred,
                cv=cv,
                features=desc,
                classifier=clf,
                confidence=confidence,
                probe=probe,
                splits=splits,
                groups=g,
                C=c_text,
                n_boot=n_boot,
                seed=seed,
            )
        )
        preds.append(
            pd.DataFrame(
                {
                    "probe": probe,
                    "layer": layer,
                    "clip_id": ids,
                    "label": y,
                    "predicted": pred,
                    "correct": pred == y,
                    "fold": fold,
                    "group": group_col,
                }
            )
        )
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS)), pd.concat(preds, ignore_index=True)


def _labelled(run: Run, label_column: str = "label") -> pd.DataFrame:
    clips = run.ok_clips
    lab = clips[label_column].fillna("").astype(str)
    return clips[lab != ""]


def layer_probes(
    run: Run,
    *,
    layers: Sequence[str] | None = None,
    stat: ClipStat = "mean",
    C: float | None = None,
    C_grid: Sequence[float] = C_GRID,
    inner_folds: int = 3,
    n_splits: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    n_boot: int = 2000,
    baselines: Sequence[str] = (),
    model: SoundNet8 | None = None,
    return_predictions: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """A linear probe per layer on a labelled run, with baselines (see the module docstring).

    Parameters
    ----------
    run : Run
    layers : sequence of str, optional
        Default: every recorded conv layer.
    stat : {"mean", "max"}
        Per-clip summary used as features.
    C : float, optional
        Fix the logistic regression's C; default: chosen by nested CV over ``C_grid``.
    C_grid, inner_folds
        See :func:`nested_cross_validate`.
    n_splits, seed : int
        Stratified (group) k-fold settings when the corpus has no folds; ``seed`` also seeds
        the bootstrap and the baseline nets.
    confidence : float
        Coverage of the intervals.
    n_boot : int
        Bootstrap samples of the intervals.
    baselines : sequence of {"random init", "shuffled", "log-mel"}
        Baselines probed on the same clips (:mod:`interp.analysis.baselines`); they decode the
        clips again and run the baseline nets.
    model : SoundNet8, optional
        The pretrained net, needed for ``"shuffled"`` (default: :func:`soundnet.model.load_soundnet`).
    return_predictions : bool
        Also return the predictions table (:data:`PREDICTION_COLUMNS`), for
        :func:`interp.analysis.probe_stats.best_layer` and :func:`~interp.analysis.probe_stats.compare_pairs`.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PROBE_COLUMNS`: the pretrained layers in forward order, then each
        baseline's layers. A multi-label run (some clip with several ``labels``) is probed
        one-vs-rest and scored by mAP (:func:`interp.analysis.multilabel_probes.probe_arrays_multilabel`;
        predictions: :data:`~interp.analysis.multilabel_probes.MULTILABEL_PREDICTION_COLUMNS`).
    """
    check_option("stat", stat, ClipStat, where="layer_probes")
    layers = [layer for layer in run.layers if layer in CONV_LAYERS] if layers is None else list(layers)
    label_sets = mlp.run_label_sets(run)  # None unless some clip has several labels
    clips = _labelled(run) if label_sets is None else run.ok_clips.loc[label_sets.index]
    feats: dict[tuple[str, str], np.ndarray] = {}
    desc: dict[tuple[str, str], str] = {}
    for layer in layers:
        feats[("pretrained", layer)] = run.activations(layer, stat).reindex(clips.index).to_numpy(dtype=np.float64)
        desc[("pretrained", layer)] = f"{stat} over time, standardised"
    if baselines:
        if model is None:
            from soundnet.model import load_soundnet

            model = load_soundnet()
        bf, bd = bl.baseline_features(run, clips, model, layers=layers, baselines=baselines, seed=seed)
        feats.update(bf)
        desc.update(bd)
    if label_sets is not None:
        return mlp.multilabel_layer_table(
            feats, clips, label_sets, descriptions=desc, C=C, C_grid=C_grid, inner_folds=inner_folds,
            n_splits=n_splits, seed=seed, confidence=confidence, n_boot=n_boot,
            return_predictions=return_predictions,
        )  # fmt: skip
    table, preds = probe_arrays(
        feats,
        clips["label"].astype(str).to_numpy(),
        folds=clips["fold"].to_numpy() if "fold" in clips.columns else None,
        groups=clips["group"].to_numpy() if "group" in clips.columns else None,
        clip_ids=clips.index.to_numpy(),
        descriptions=desc,
        C=C,
        C_grid=C_grid,
        inner_folds=inner_folds,
        n_splits=n_splits,
        seed=seed,
        confidence=confidence,
        n_boot=n_boot,
    )
    if return_predictions:
        return table, preds
    return table
