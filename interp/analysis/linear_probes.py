"""Linear probes: how much each layer of SoundNet knows about a corpus's categories.

Default protocol (:func:`layer_probes`)
    Features: each clip's per-unit ``mean`` over time from the run directory (``max`` on
    request), standardised; classifier: multinomial L2 logistic regression. Cross-validation
    uses the corpus's own folds when it has them (ESC-50's 5 folds, UrbanSound8K's 10: leave one
    fold out), stratified k-fold otherwise. Every clip is predicted once, by the model that did
    not see it; accuracy is the fraction right, with a Wilson score interval over the clips.

Paper protocol (:func:`paper_protocol`)
    As in SoundNet's evaluation (Aytar et al. 2016): pool5 features (the conv5 block output),
    each clip looped to 10 s, split into 1 s windows (a window's feature is the mean of the
    pool5 frames whose receptive-field centre falls in it), a linear SVM with C = 0.01 trained
    on the windows (no feature scaling), and at test time the SVM's decision values averaged over
    a clip's windows; the clip's prediction is the class with the largest average. On ESC-50 the
    paper reports 74.2 % for the 8-layer SoundNet (pool5).

The probe table (``probes.parquet`` / ``probes.csv``) has the columns :data:`PROBE_COLUMNS`:
``layer, accuracy, ci_low, ci_high`` (fractions in [0, 1]) then ``n_clips, n_correct, n_classes,
chance, cv, features, classifier``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from interp.corpus.corpora import clip_waves
from interp.run.store import Run
from soundnet.audio import INPUT_SCALE, fit_length
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time
from soundnet.model import CONV_LAYERS, SoundNet8
from soundnet.options import ClipStat, check_option

__all__ = [
    "PROBE_COLUMNS",
    "PAPER_ESC50_POOL5",
    "single_blas_thread",
    "wilson_interval",
    "chance_level",
    "probe_folds",
    "logistic_probe",
    "fit_folds",
    "predict_folds",
    "cross_validate",
    "probe_row",
    "layer_probes",
    "paper_window_features",
    "paper_protocol",
]

#: Columns of the probe table, in order (the first four are what other tools read back).
PROBE_COLUMNS = (
    "layer",
    "accuracy",
    "ci_low",
    "ci_high",
    "n_clips",
    "n_correct",
    "n_classes",
    "chance",
    "cv",
    "features",
    "classifier",
)
#: SoundNet paper, Table 2: 8-layer SoundNet, pool5 features, ESC-50 accuracy.
PAPER_ESC50_POOL5 = 0.742


def single_blas_thread():
    """Context manager: BLAS on one thread while probes are fitted.

    The probes' matrices are small (clips x units); multi-threaded OpenBLAS gains nothing on them
    and, on a machine whose cores are busy, its spinning threads made a 3 s fit take 5 minutes.
    """

    return threadpool_limits(limits=1, user_api="blas")


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


def chance_level(labels: Sequence[str] | np.ndarray) -> float:
    """Accuracy of always answering the most frequent label."""
    y = pd.Series(np.asarray(labels).astype(str))
    return float(y.value_counts(normalize=True).iloc[0]) if len(y) else math.nan


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


def probe_row(
    layer: str,
    labels: np.ndarray,
    pred: np.ndarray,
    *,
    cv: str,
    features: str,
    classifier: str,
    confidence: float = 0.95,
) -> dict:
    """One row of the probe table from labels and cross-validated predictions."""
    done = pred != ""
    n = int(done.sum())
    k = int((pred[done] == labels[done]).sum())
    lo, hi = wilson_interval(k, n, confidence=confidence)
    return {
        "layer": layer,
        "accuracy": k / n,
        "ci_low": lo,
        "ci_high": hi,
        "n_clips": n,
        "n_correct": k,
        "n_classes": int(len(np.unique(labels))),
        "chance": chance_level(labels),
        "cv": cv,
        "features": features,
        "classifier": classifier,
    }


def _labelled(run: Run, label_column: str = "label") -> pd.DataFrame:
    clips = run.ok_clips
    lab = clips[label_column].fillna("").astype(str)
    return clips[lab != ""]


def layer_probes(
    run: Run,
    *,
    layers: Sequence[str] | None = None,
    stat: ClipStat = "mean",
    C: float = 1.0,
    n_splits: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    return_predictions: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """A linear probe per layer on a labelled run (the default protocol, see the module docstring).

    Parameters
    ----------
    run : Run
    layers : sequence of str, optional
        Default: every recorded conv layer.
    stat : {"mean", "max"}
        Per-clip summary used as features.
    C : float
        Inverse L2 strength of the logistic regression.
    n_splits, seed : int
        Stratified k-fold settings (when the corpus has no folds).
    confidence : float
        Coverage of the Wilson interval.
    return_predictions : bool
        Also return every clip's cross-validated prediction per layer
        (``layer, clip_id, label, predicted``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PROBE_COLUMNS`, one row per layer, in forward order.
    """
    check_option("stat", stat, ClipStat, where="layer_probes")
    layers = [layer for layer in run.layers if layer in CONV_LAYERS] if layers is None else list(layers)
    clips = _labelled(run)
    rows, preds = [], []
    for layer in layers:
        acts = run.activations(layer, stat).reindex(clips.index)
        ok = np.isfinite(acts.to_numpy(dtype=np.float64)).all(axis=1)
        sub = clips[ok]
        counts = sub["label"].value_counts()
        sub = sub[sub["label"].map(counts) >= 2]  # a category with one clip cannot be tested
        y = sub["label"].astype(str).to_numpy()
        x = acts.loc[sub.index].to_numpy(dtype=np.float64)
        splits, cv = probe_folds(
            y,
            sub["fold"].to_numpy() if "fold" in sub.columns else None,
            n_splits=n_splits,
            seed=seed,
            groups=sub["group"].to_numpy() if "group" in sub.columns else None,
        )
        pred = cross_validate(x, y, splits, make_classifier=logistic_probe(C=C))
        rows.append(
            probe_row(
                layer,
                y,
                pred,
                cv=cv,
                features=f"{stat} over time, standardised",
                classifier=f"logistic regression (L2, C={C:g})",
                confidence=confidence,
            )
        )
        preds.append(pd.DataFrame({"layer": layer, "clip_id": sub.index.to_numpy(), "label": y, "predicted": pred}))
    table = pd.DataFrame(rows, columns=list(PROBE_COLUMNS))
    if return_predictions:
        return table, pd.concat(preds, ignore_index=True)
    return table


# --------------------------------------------------------------------------------------------
# the paper's protocol
# --------------------------------------------------------------------------------------------
def paper_window_features(
    model: SoundNet8,
    waves: Sequence[np.ndarray],
    *,
    layer: str = "conv5",
    loop_s: float = 10.0,
    window_s: float = 1.0,
    batch_size: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window features of clips looped to ``loop_s`` (the paper's protocol).

    Parameters
    ----------
    model : SoundNet8
    waves : sequence of np.ndarray, each (n_samples,)
        Mono float32 in [-1, 1] at 22050 Hz.
    layer : str
        ``"conv5"`` is the paper's pool5.
    loop_s : float (in seconds)
        Clips shorter than this are tiled (looped) up to it; longer clips are kept whole.
    window_s : float (in seconds)
        Window length; a window's feature is the mean of the layer's frames whose receptive-field
        centre falls in ``[k * window_s, (k + 1) * window_s)`` (frames centred in the zero padding
        go to the first or last window).

    Returns
    -------
    features : np.ndarray, shape (n_windows, n_units), float32
    clip_index : np.ndarray, shape (n_windows,), int
        Which clip each window belongs to.
    """
    if layer not in CONV_LAYERS or loop_s <= 0 or window_s <= 0:
        raise ParameterError(
            f"paper_window_features needs a conv layer, loop_s > 0 and window_s > 0. "
            f"Got {layer!r}, {loop_s}, {window_s} instead."
        )
    n_loop = int(round(loop_s * SAMPLE_RATE_HZ))
    looped = [fit_length(np.asarray(w, dtype=np.float32), min_samples=n_loop, policy="tile") for w in waves]
    feats, index = [], []
    order = np.argsort([len(w) for w in looped], kind="stable")
    i = 0
    while i < len(order):
        j = i + 1
        while j < len(order) and j - i < batch_size and len(looped[order[j]]) == len(looped[order[i]]):
            j += 1
        idx = order[i:j]
        i = j
        x = torch.from_numpy(np.stack([looped[k] for k in idx])[:, None, :]) * INPUT_SCALE
        with torch.inference_mode():
            out = model.extract_features(x, layers=(layer,))[layer].float().cpu().numpy()  # (b, units, frames)
        dur_s = len(looped[idx[0]]) / SAMPLE_RATE_HZ
        n_win = max(1, int(math.floor(dur_s / window_s + 1e-9)))
        t = np.asarray(frames_to_time(np.arange(out.shape[2]), layer), dtype=np.float64)
        win = np.clip(np.floor(t / window_s).astype(int), 0, n_win - 1)
        for r, k in enumerate(idx):
            for w in range(n_win):
                sel = win == w
                if sel.any():
                    feats.append(out[r][:, sel].mean(axis=1))
                    index.append(int(k))
    order_back = np.argsort(np.asarray(index), kind="stable")
    return np.asarray(feats, dtype=np.float32)[order_back], np.asarray(index, dtype=np.int64)[order_back]


def paper_protocol(
    run: Run,
    model: SoundNet8,
    *,
    C: float = 0.01,
    n_splits: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    loop_s: float = 10.0,
    window_s: float = 1.0,
) -> pd.DataFrame:
    """SoundNet's own evaluation on a labelled run: pool5, 10 s loops, 1 s windows, linear SVM.

    Parameters
    ----------
    run : Run
        Any labelled run (its clips are decoded again; no layer needs to be recorded).
    model : SoundNet8
    C : float
        The linear SVM's C (0.01 in the paper).
    n_splits, seed, confidence
        As in :func:`layer_probes` (the corpus's folds are used where it has them).
    loop_s, window_s : float (in seconds)

    Returns
    -------
    pandas.DataFrame
        One row (layer ``conv5``), columns :data:`PROBE_COLUMNS`.
    """
    from sklearn.svm import LinearSVC  # (lazily: see probe_folds)

    clips = _labelled(run)
    counts = clips["label"].value_counts()
    clips = clips[clips["label"].map(counts) >= 2]
    y = clips["label"].astype(str).to_numpy()
    xw, ci = paper_window_features(model, clip_waves(clips), layer="conv5", loop_s=loop_s, window_s=window_s)
    splits, cv = probe_folds(
        y,
        clips["fold"].to_numpy() if "fold" in clips.columns else None,
        n_splits=n_splits,
        seed=seed,
        groups=clips["group"].to_numpy() if "group" in clips.columns else None,
    )
    pred = np.full(len(y), "", dtype=object)
    with single_blas_thread():
        for train, test in splits:
            tr = np.isin(ci, train)
            svm = LinearSVC(C=C, max_iter=20000)
            svm.fit(xw[tr], y[ci[tr]])
            te = np.isin(ci, test)
            dec = svm.decision_function(xw[te])
            if dec.ndim == 1:  # two classes: one column for classes_[1]
                dec = np.stack([-dec, dec], axis=1)
            frame = pd.DataFrame(dec).groupby(ci[te]).mean()
            pred[frame.index.to_numpy()] = svm.classes_[frame.to_numpy().argmax(axis=1)]
    return pd.DataFrame(
        [
            probe_row(
                "conv5",
                y,
                pred.astype(str),
                cv=cv,
                features=f"pool5, clips looped to {loop_s:g} s, {window_s:g} s windows",
                classifier=f"linear SVM (C={C:g}), decision values averaged per clip",
                confidence=confidence,
            )
        ],
        columns=list(PROBE_COLUMNS),
    )
