"""Multi-label linear probes (issue 19): one-vs-rest classifiers per layer, scored by mean
average precision.

When a corpus's clips carry several labels each (AudioSet, FSD50K: the ``labels`` column of the
corpus table, a list of str per clip), :func:`interp.analysis.linear_probes.layer_probes` hands
the features over to :func:`probe_arrays_multilabel`. The protocol follows the single-label one:

Features
    Each clip's per-unit mean over time, standardised within each training fold.
Classifier
    One L2 logistic regression per label (one-vs-rest: a clip is positive for each of its labels;
    what scikit-learn's ``OneVsRestClassifier(LogisticRegression)`` does), sharing one C per outer
    fold. A label without a positive (or without a negative) in a training fold gets that fold's
    constant training rate as its score.
Labels probed
    Those with positive clips in at least two groups (clips when there are no groups), so that a
    positive can fall both in a training and in a test fold; the other labels are left out (their
    clips stay, as negatives of the probed labels).
Folds
    The corpus's own folds where every clip has one; otherwise **group k-fold** on the ``group``
    column (scikit-learn's ``GroupKFold``, shuffled; plain shuffled k-fold when every clip is its own
    group). These folds are *not stratified*: scikit-learn has no stratified group k-fold for
    multi-label targets (iterative stratification is not in it), so a rare label's positives may
    fall unevenly over the folds; the chance level below is computed on the same test clips and
    moves with them.
Regularisation
    C chosen inside each outer training fold by an inner group k-fold (``inner_folds``) over
    :data:`~interp.analysis.probe_common.C_GRID`, by the mean over inner folds of the inner
    validation mAP (ties: the smaller C); ``C=`` fixes it.
Metric (``accuracy`` column, ``metric`` = ``"mAP"``)
    Every clip is scored by the probes of the fold that tests it (predicted probabilities, pooled
    over the folds); average precision per label (scikit-learn's ``average_precision_score``:
    the sum over thresholds of the recall step times the precision), macro-averaged over the labels
    with at least one positive among the test clips.
Chance (``chance``)
    The mAP of a constant score: a constant ranks every clip level, so its AP is the label's
    prevalence among the test clips, and chance is the mean prevalence of the probed labels. It is
    what a probe that learned nothing scores.
Interval (``ci_low``, ``ci_high``)
    Percentile interval of a group bootstrap stratified by test fold (the same resampling units as
    the accuracy: :func:`interp.analysis.probe_stats.bootstrap_units`); each sample's mAP is
    computed with the clips weighted by their draw counts (a label without a positive in a sample
    leaves that sample's average). ``fold_sd``: the standard deviation of the per-fold mAPs.
Best layer
    :func:`best_layer_map` and :func:`compare_map_pairs` mirror
    :func:`interp.analysis.probe_stats.best_layer` with a paired group bootstrap of the mAP
    difference (same draws for both layers; p = twice the smaller tail beyond 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis.probe_common import C_GRID, PROBE_COLUMNS, fold_of_clips, single_blas_thread
from interp.analysis.probe_stats import COMPARISON_COLUMNS, best_of, bootstrap_units
from interp.analysis.resampling import group_codes
from interp.analysis.unitlabels import _clean_labels, is_multilabel
from interp.run.store import Run
from soundnet.errors import ParameterError

__all__ = [
    "MULTILABEL_PREDICTION_COLUMNS",
    "AP_COLUMNS",
    "run_label_sets",
    "label_matrix",
    "multilabel_folds",
    "weighted_average_precision",
    "mean_average_precision",
    "multilabel_scores",
    "probe_arrays_multilabel",
    "multilabel_layer_table",
    "per_label_ap",
    "compare_map_pairs",
    "best_layer_map",
]

#: Columns of the multi-label predictions table: one row per probe, layer, clip and probed label.
MULTILABEL_PREDICTION_COLUMNS = ("probe", "layer", "clip_id", "category", "score", "positive", "fold", "group")
#: Columns of :func:`per_label_ap`.
AP_COLUMNS = ("probe", "layer", "category", "ap", "prevalence", "n_pos")
_BOOT_CHUNK = 250  # bootstrap samples per block of the weighted AP (memory: chunk x clips floats)


def run_label_sets(run: Run) -> pd.Series | None:
    """The label sets of a multi-label run, or None for a single-label one.

    Parameters
    ----------
    run : Run

    Returns
    -------
    pandas.Series of tuple of str, or None
        Indexed like ``run.ok_clips``: each labelled clip's sorted distinct labels (clips without
        any are left out). None when the run has no ``labels`` column or no clip with two labels
        or more (the same rule as :mod:`interp.analysis.selectivity`): then the single-label
        ``label`` column is probed as before.
    """
    ok = run.ok_clips
    if "labels" not in ok.columns or not is_multilabel(ok["labels"]):
        return None
    sets = _clean_labels(ok["labels"])
    if sets.empty or sets.map(len).max() < 2:
        return None
    return sets


def label_matrix(
    label_sets: Sequence[Sequence[str]] | pd.Series,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    min_groups: int = 2,
) -> tuple[np.ndarray, list[str]]:
    """``(n_clips, n_labels)`` bool membership of the labels that have enough positive groups.

    Parameters
    ----------
    label_sets : sequence of sequences of str
        Each clip's labels.
    groups : array-like, shape (n_clips,), optional
        Each clip's group (None: every clip its own).
    min_groups : int
        A label is kept when its positive clips span at least this many groups and some clip is
        negative for it.

    Returns
    -------
    Y : np.ndarray of bool, shape (n_clips, n_kept)
    categories : list of str
        The kept labels, sorted.
    """
    sets = [tuple(str(x) for x in v) for v in label_sets]
    cats = sorted({x for v in sets for x in v})
    index = {c: j for j, c in enumerate(cats)}
    full = np.zeros((len(sets), len(cats)), dtype=bool)
    for i, v in enumerate(sets):
        full[i, [index[x] for x in v]] = True
    g = group_codes(groups, len(sets))
    keep = [j for j in range(len(cats)) if len(np.unique(g[full[:, j]])) >= min_groups and not full[:, j].all()]
    return full[:, keep], [cats[j] for j in keep]


def multilabel_folds(
    n: int,
    folds: Sequence[int] | np.ndarray | None = None,
    *,
    groups: Sequence[Any] | np.ndarray | None = None,
    n_splits: int = 5,
    seed: int = 0,
) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    """Train / test splits of multi-label clips: the corpus's folds, else (group) k-fold.

    Parameters
    ----------
    n : int
        Number of clips.
    folds : array of int, shape (n,), optional
        The corpus's fold of each clip (-1: none); used when every clip has one and there are two
        or more.
    groups : array-like, shape (n,), optional
        Each clip's group: the folds keep groups whole (``GroupKFold``, shuffled with ``seed``).
    n_splits : int
        Folds (reduced to the number of groups, at least 2).
    seed : int

    Returns
    -------
    splits : list of (train_index, test_index)
    description : str
        E.g. ``"group 5-fold (not stratified: multi-label)"``.
    """
    from sklearn.model_selection import GroupKFold, KFold

    if folds is not None:
        f = np.asarray(folds).astype(int)
        uniq = np.unique(f)
        if len(f) == n and (f >= 0).all() and len(uniq) >= 2:
            return [(np.flatnonzero(f != k), np.flatnonzero(f == k)) for k in uniq], f"corpus folds ({len(uniq)})"
    g = group_codes(groups, n)
    n_groups = len(np.unique(g))
    k = min(int(n_splits), n_groups)
    if k < 2:
        raise ParameterError(f"Multi-label probes need at least 2 groups for cross-validation. Got {n_groups}.")
    if n_groups < n:
        gkf = GroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return [
            (tr, te) for tr, te in gkf.split(np.zeros(n), groups=g)
        ], f"group {k}-fold (not stratified: multi-label)"
    kf = KFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in kf.split(np.zeros(n))], f"{k}-fold (not stratified: multi-label)"


def weighted_average_precision(y: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Average precision of one label under several weightings of the clips (bootstrap draws).

    Parameters
    ----------
    y : array of bool, shape (n,)
        Positive clips.
    score : array of float, shape (n,)
        Higher: more likely positive. Tied scores form one threshold, as in scikit-learn.
    weights : array, shape (B, n) or (n,), optional
        Each clip's weight (its bootstrap count) in each of B samples; default one sample of ones.

    Returns
    -------
    np.ndarray of float, shape (B,)
        ``sum_k (R_k - R_{k-1}) P_k`` over the distinct thresholds (equal to scikit-learn's
        ``average_precision_score`` with ``sample_weight``); NaN where no positive has weight.
    """
    y = np.asarray(y, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    w = np.ones((1, len(y))) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(-s, kind="mergesort")
    ss = s[order]
    ends = np.r_[np.flatnonzero(np.diff(ss) != 0), len(ss) - 1]  # last clip of each tie block
    ws = w[:, order]
    tp = np.cumsum(ws * y[order], axis=1)[:, ends]
    tot = np.cumsum(ws, axis=1)[:, ends]
    prec = np.divide(tp, tot, out=np.zeros_like(tp), where=tot > 0)
    dtp = np.diff(tp, axis=1, prepend=0.0)
    pos = tp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pos > 0, (dtp * prec).sum(axis=1) / pos, np.nan)


def _boot_map(Y: np.ndarray, S: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """mAP in each weighting (B, n): mean over labels with positive weight (NaN: none)."""
    aps = np.stack([weighted_average_precision(Y[:, j], S[:, j], weights) for j in range(Y.shape[1])], axis=1)
    out = np.full(len(aps), np.nan)
    have = np.isfinite(aps).any(axis=1)
    out[have] = np.nanmean(aps[have], axis=1)
    return out


def mean_average_precision(Y: np.ndarray, scores: np.ndarray) -> float:
    """Macro mean of the average precision over the labels (columns) with at least one positive.

    Parameters
    ----------
    Y : array of bool, shape (n_clips, n_labels)
    scores : array of float, shape (n_clips, n_labels)

    Returns
    -------
    float
        NaN when no label has a positive.
    """
    Y = np.asarray(Y, dtype=bool)
    S = np.asarray(scores, dtype=np.float64)
    if Y.ndim != 2 or Y.shape != S.shape:
        raise ParameterError(f"mean_average_precision needs Y and scores of one 2-D shape. Got {Y.shape}, {S.shape}.")
    return float(_boot_map(Y, S, np.ones((1, len(Y))))[0])


def _fit_predict(xtr: np.ndarray, Ytr: np.ndarray, xte: np.ndarray, C: float) -> np.ndarray:
    """One-vs-rest probabilities of the test clips: standardise on the training clips, one
    logistic regression per label (a constant label scores its training rate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(xtr)
    a, b = sc.transform(xtr), sc.transform(xte)
    out = np.empty((len(xte), Ytr.shape[1]))
    for j in range(Ytr.shape[1]):
        yj = Ytr[:, j]
        if yj.all() or not yj.any():
            out[:, j] = float(yj.mean())
            continue
        out[:, j] = LogisticRegression(C=C, max_iter=3000).fit(a, yj).predict_proba(b)[:, 1]
    return out


def multilabel_scores(
    x: np.ndarray,
    Y: np.ndarray,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    C: float | None = None,
    groups: Sequence[Any] | np.ndarray | None = None,
    C_grid: Sequence[float] = C_GRID,
    inner_folds: int = 3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated one-vs-rest scores, C fixed or chosen by nested CV on the inner mAP.

    Parameters
    ----------
    x : np.ndarray, shape (n_clips, n_features)
    Y : array of bool, shape (n_clips, n_labels)
    splits : list of (train_index, test_index)
    C : float, optional
        Fixed C; default: chosen in each outer training fold over ``C_grid`` by an inner group
        ``inner_folds``-fold (:func:`multilabel_folds`), highest mean inner mAP, ties to the
        smaller C.
    groups : array-like, optional
        Each clip's group (the inner folds keep groups whole).
    C_grid : sequence of float
    inner_folds, seed : int

    Returns
    -------
    scores : np.ndarray, shape (n_clips, n_labels)
        Each clip's probability per label from the probes of its test fold (NaN: in no test fold).
    chosen_C : np.ndarray, shape (n_splits,)
    """
    x = np.asarray(x, dtype=np.float64)
    Y = np.asarray(Y, dtype=bool)
    if x.ndim != 2 or Y.ndim != 2 or len(x) != len(Y):
        raise ParameterError(f"multilabel_scores needs x (n, d) and Y (n, L). Got {x.shape} and {Y.shape} instead.")
    grid = [float(C)] if C is not None else sorted(float(c) for c in C_grid)
    if not grid or grid[0] <= 0:
        raise ParameterError(f"The C values of multilabel_scores must be > 0. Got {C if C is not None else C_grid}.")
    g = group_codes(groups, len(x))
    S = np.full(Y.shape, np.nan)
    chosen = np.full(len(splits), math.nan)
    with single_blas_thread():
        for i, (train, test) in enumerate(splits):
            train, test = np.asarray(train), np.asarray(test)
            best = grid[0]
            if len(grid) > 1:
                inner, _ = multilabel_folds(len(train), groups=g[train], n_splits=inner_folds, seed=seed)
                means: list[float] = []
                for c in grid:
                    vals = [
                        mean_average_precision(Y[train][va], _fit_predict(x[train][tr], Y[train][tr], x[train][va], c))
                        for tr, va in inner
                    ]
                    vals = [v for v in vals if np.isfinite(v)]
                    means.append(float(np.mean(vals)) if vals else -np.inf)
                best = grid[int(np.argmax(means))]  # first maximum: the smaller C
            chosen[i] = best
            S[test] = _fit_predict(x[train], Y[train], x[test], best)
    return S, chosen


def _row(layer, probe, Y, S, splits, groups, *, cv, features, classifier, C, confidence, n_boot, seed) -> dict:
    done = np.isfinite(S).all(axis=1)
    Yd, Sd = Y[done], S[done]
    fold = fold_of_clips(splits, len(Y))[done]
    scored = Yd.any(axis=0)
    m = mean_average_precision(Yd[:, scored], Sd[:, scored])
    g = None if groups is None else np.asarray(groups, dtype=object)[done]
    unit, counts = bootstrap_units(len(Yd), groups=g, strata=fold, n_boot=n_boot, seed=seed)
    boot = np.concatenate(
        [
            _boot_map(Yd[:, scored], Sd[:, scored], counts[k : k + _BOOT_CHUNK][:, unit])
            for k in range(0, n_boot, _BOOT_CHUNK)
        ]
    )
    alpha = (1 - confidence) / 2
    per_fold = [mean_average_precision(Yd[fold == f][:, scored], Sd[fold == f][:, scored]) for f in np.unique(fold)]
    per_fold = [v for v in per_fold if np.isfinite(v)]
    return {
        "layer": layer,
        "accuracy": m,
        "ci_low": float(np.nanquantile(boot, alpha)),
        "ci_high": float(np.nanquantile(boot, 1 - alpha)),
        "probe": probe,
        "n_clips": int(done.sum()),
        "n_correct": math.nan,
        "n_classes": int(scored.sum()),
        "chance": float(Yd[:, scored].mean(axis=0).mean()),
        "fold_sd": float(np.std(per_fold, ddof=1)) if len(per_fold) >= 2 else math.nan,
        "C": C,
        "cv": cv,
        "interval": f"{confidence:.0%} group bootstrap, stratified by test fold",
        "features": features,
        "classifier": classifier,
        "metric": "mAP",
    }


def probe_arrays_multilabel(
    features: Mapping[tuple[str, str], np.ndarray],
    label_sets: Sequence[Sequence[str]] | pd.Series,
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
    """One-vs-rest probes of several feature sets of the same multi-label clips, same folds.

    Parameters
    ----------
    features : mapping ``{(probe, layer): np.ndarray (n_clips, n_features)}``
    label_sets : sequence of sequences of str, length n_clips
        Each clip's labels (a clip without labels is left out).
    folds, groups, clip_ids, descriptions, C, C_grid, inner_folds, n_splits, seed, confidence, n_boot
        As in :func:`interp.analysis.linear_probes.probe_arrays` (folds: :func:`multilabel_folds`;
        C: :func:`multilabel_scores`).

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`~interp.analysis.probe_common.PROBE_COLUMNS`, ``metric`` ``"mAP"``:
        ``accuracy`` is the mAP, ``chance`` the mean prevalence, ``n_classes`` the probed labels,
        ``n_correct`` NaN.
    predictions : pandas.DataFrame
        Columns :data:`MULTILABEL_PREDICTION_COLUMNS`.
    """
    sets = [tuple(v) if not isinstance(v, str) else (v,) for v in pd.Series(label_sets, dtype=object)]
    n = len(sets)
    if not features:
        raise ParameterError("The 'features' parameter of probe_arrays_multilabel must hold a feature set. Got none.")
    xs = {k: np.asarray(v, dtype=np.float64) for k, v in features.items()}
    for key, x in xs.items():
        if x.ndim != 2 or len(x) != n:
            raise ParameterError(f"probe_arrays_multilabel: {key} has shape {x.shape}; need ({n}, n_features).")
    if C is not None and C <= 0:
        raise ParameterError(f"The 'C' parameter of probe_arrays_multilabel must be > 0. Got {C} instead.")
    keep = np.all([np.isfinite(x).all(axis=1) for x in xs.values()], axis=0) & np.array([len(v) > 0 for v in sets])
    idx = np.flatnonzero(keep)
    g = None if groups is None else np.asarray(groups, dtype=object)[idx]
    Y, cats = label_matrix([sets[i] for i in idx], groups=g)
    if not cats:
        raise ParameterError("Multi-label probes need a label whose positives span 2 groups or more. Got none.")
    ids = (np.arange(n) if clip_ids is None else np.asarray(clip_ids))[idx]
    splits, cv = multilabel_folds(len(idx), None if folds is None else np.asarray(folds)[idx], groups=g,
                                  n_splits=n_splits, seed=seed)  # fmt: skip
    fold = fold_of_clips(splits, len(idx))
    group_col = ids.astype(str) if g is None else pd.Series(g).astype(str).to_numpy()
    clf = (
        f"one-vs-rest logistic regression (L2, C={C:g})"
        if C is not None
        else f"one-vs-rest logistic regression (L2; C by nested {inner_folds}-fold group CV on mAP over {len(C_grid)} values)"
    )
    rows, preds = [], []
    for (probe, layer), x in xs.items():
        S, chosen = multilabel_scores(
            x[idx], Y, splits, C=C, groups=g, C_grid=C_grid, inner_folds=inner_folds, seed=seed
        )
        rows.append(
            _row(layer, probe, Y, S, splits, g, cv=cv, features=(descriptions or {}).get((probe, layer), ""),
                 classifier=clf, C=",".join(f"{c:g}" for c in chosen), confidence=confidence, n_boot=n_boot,
                 seed=seed)
        )  # fmt: skip
        L = len(cats)
        preds.append(
            pd.DataFrame(
                {
                    "probe": probe,
                    "layer": layer,
                    "clip_id": np.repeat(ids, L),
                    "category": np.tile(np.asarray(cats, dtype=object), len(ids)),
                    "score": S.ravel(),
                    "positive": Y.ravel(),
                    "fold": np.repeat(fold, L),
                    "group": np.repeat(group_col, L),
                }
            )
        )
    return pd.DataFrame(rows, columns=list(PROBE_COLUMNS)), pd.concat(preds, ignore_index=True)


def multilabel_layer_table(
    features: Mapping[tuple[str, str], np.ndarray],
    clips: pd.DataFrame,
    label_sets: pd.Series,
    *,
    return_predictions: bool = False,
    **options: Any,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`probe_arrays_multilabel` on a run's clips (``fold``, ``group`` columns when present);
    what :func:`interp.analysis.linear_probes.layer_probes` returns for a multi-label run."""
    table, preds = probe_arrays_multilabel(
        features,
        label_sets.reindex(clips.index).to_list(),
        folds=clips["fold"].to_numpy() if "fold" in clips.columns else None,
        groups=clips["group"].to_numpy() if "group" in clips.columns else None,
        clip_ids=clips.index.to_numpy(),
        **options,
    )
    return (table, preds) if return_predictions else table


def _matrices(
    predictions: pd.DataFrame, probe: str | None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], pd.DataFrame]:
    need = set(MULTILABEL_PREDICTION_COLUMNS) - {"probe"}
    if not need <= set(predictions.columns):
        raise ParameterError(
            f"Multi-label predictions need the columns {sorted(need)}. Got {list(predictions.columns)}."
        )
    p = (
        predictions
        if probe is None or "probe" not in predictions.columns
        else predictions[predictions["probe"] == probe]
    )
    key = p["layer"].astype(str)
    if probe is None and "probe" in p.columns:
        key = p["probe"].astype(str) + ":" + key
    meta = p.drop_duplicates("clip_id").set_index("clip_id")[["fold", "group"]]
    out = {}
    for k, df in p.groupby(key, sort=False):
        s = df.pivot(index="clip_id", columns="category", values="score").reindex(meta.index)
        y = df.pivot(index="clip_id", columns="category", values="positive").reindex(meta.index)
        out[str(k)] = (y.to_numpy(dtype=bool), s.to_numpy(dtype=np.float64))
    return out, meta


def per_label_ap(predictions: pd.DataFrame) -> pd.DataFrame:
    """Each probe's, layer's and label's average precision (columns :data:`AP_COLUMNS`)."""
    rows = []
    for (probe, layer, cat), df in predictions.groupby(["probe", "layer", "category"], sort=False):
        y, s = df["positive"].to_numpy(dtype=bool), df["score"].to_numpy(dtype=np.float64)
        ap = float(weighted_average_precision(y, s)[0])
        rows.append({"probe": probe, "layer": layer, "category": cat, "ap": ap, "prevalence": float(y.mean()),
                     "n_pos": int(y.sum())})  # fmt: skip
    return pd.DataFrame(rows, columns=list(AP_COLUMNS))


def _paired(a, b, meta, *, confidence, n_boot, seed) -> dict[str, Any]:
    (Y, Sa), (_, Sb) = a, b
    scored = Y.any(axis=0)
    Y, Sa, Sb = Y[:, scored], Sa[:, scored], Sb[:, scored]
    unit, counts = bootstrap_units(len(Y), groups=meta["group"].to_numpy(), strata=meta["fold"].to_numpy(),
                                   n_boot=n_boot, seed=seed)  # fmt: skip
    d = np.concatenate(
        [
            _boot_map(Y, Sa, w) - _boot_map(Y, Sb, w)
            for w in (counts[k : k + _BOOT_CHUNK][:, unit] for k in range(0, n_boot, _BOOT_CHUNK))
        ]
    )
    d = d[np.isfinite(d)]
    ma, mb = mean_average_precision(Y, Sa), mean_average_precision(Y, Sb)
    tail = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p = 1.0 if np.array_equal(Sa, Sb) else min(1.0, 2 * (tail + 1) / (len(d) + 1))
    alpha = (1 - confidence) / 2
    return {"accuracy_a": ma, "accuracy_b": mb, "diff": ma - mb, "ci_low": float(np.quantile(d, alpha)),
            "ci_high": float(np.quantile(d, 1 - alpha)), "p": float(p), "test": "paired group bootstrap (mAP)",
            "n_clips": len(Y), "n_groups": int(len(np.unique(group_codes(meta["group"].to_numpy(), len(Y)))))}  # fmt: skip


def compare_map_pairs(
    predictions: pd.DataFrame,
    pairs: Sequence[tuple[str, str]],
    *,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired mAP comparisons (``"probe:layer"`` names) on the same clips: columns
    :data:`~interp.analysis.probe_stats.COMPARISON_COLUMNS`, ``accuracy_a``/``_b`` holding mAP."""
    mats, meta = _matrices(predictions, None)
    rows = []
    for a, b in pairs:
        if a not in mats or b not in mats:
            raise ParameterError(
                f"compare_map_pairs: no predictions for {a if a not in mats else b!r}. Have {sorted(mats)}."
            )
        rows.append(
            {"a": a, "b": b, **_paired(mats[a], mats[b], meta, confidence=confidence, n_boot=n_boot, seed=seed)}
        )
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def best_layer_map(
    predictions: pd.DataFrame,
    *,
    probe: str | None = "pretrained",
    alpha: float = 0.05,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """:func:`interp.analysis.probe_stats.best_layer` for mAP: the leader is named only when the
    paired group bootstrap finds it better than the runner-up (same keys; ``accuracy_*`` hold mAP,
    so :func:`~interp.analysis.probe_stats.describe_best` reads it)."""
    if not 0 < alpha < 1:
        raise ParameterError(f"The 'alpha' parameter of best_layer_map must be in (0, 1). Got {alpha} instead.")
    mats, meta = _matrices(predictions, probe)
    if not mats:
        raise ParameterError(f"best_layer_map: no predictions for probe {probe!r}.")
    score = {k: mean_average_precision(y[:, y.any(axis=0)], s[:, y.any(axis=0)]) for k, (y, s) in mats.items()}
    return best_of(
        score,
        lambda a, b: _paired(mats[a], mats[b], meta, confidence=confidence, n_boot=n_boot, seed=seed),
        alpha=alpha,
    )
