"""SoundNet's own ESC-50 evaluation, step by step as in the authors' ``eval_esc50.lua``.

The authors' code (github.com/cvondrick/soundnet, ``eval_esc50.lua``; ``extract_feat.lua`` and
``main_train.lua`` for the scale and the layer numbering) does, for each ESC-50 fold:

1. **Input scale** (:data:`PAPER_INPUT_SCALE`): Torch's ``audio.load`` gives samples at int32
   full scale (+-2^31); the evaluation multiplies them by 2^-22, i.e. [-1, 1] audio times
   2^31 x 2^-22 = 512, *twice* the training scale (``extract_feat.lua``: 2^-23, "make range
   [-256, 256]", our :data:`soundnet.audio.INPUT_SCALE` = 256).
2. **Loop and cut** (:func:`paper_loop`): repeat the clip ``ceil(11 s x sr / n)`` times (circular
   repetition to at least ``sound_length + 1`` = 11 s) and keep the first 10 s, so every clip is
   exactly 220,500 samples at 22050 Hz. (The Lua code runs at the file's own rate; here audio
   is decoded at SoundNet's 22050 Hz, the rate the net was trained at.)
3. **Layer** (:func:`paper_layer_output`): the output of one module of the Torch net, by default
   18, pool5 (our ``conv5`` block, which ends with its max-pool); :data:`LUA_MODULES` maps our
   layers to the Torch modules (``conv1`` = 4, pool1; ``conv2`` = 8, pool2; ``conv3`` = 11;
   ``conv4`` = 14; ``conv5`` = 18, pool5; ``conv6`` = 21; ``conv7`` = 24; ``conv8`` = 25, the two
   heads' outputs concatenated, 1,000 + 401 channels).
4. **Windows** (:func:`paper_windows`): with ``T`` frames of the layer for the 10 s input, a
   window is ``w = ceil(1 s / 10 s x T)`` frames; one example per stride-1 window, ``T - w + 1``
   of them, each the ``(units, w)`` slice flattened unit-major (Torch's ``view(-1)``). pool5:
   T = 27, w = 3, 25 windows of 768 dimensions.
5. **Sparse conversion** (:func:`liblinear_values`): ``convert_to_liblinear`` keeps only the
   entries > 0 (a ReLU layer's output is >= 0, so this changes nothing there; for ``conv8``'s
   logits the negative entries become 0).
6. **Classifier** (:func:`liblinear_svm`): ``liblinear -s 1 -c 0.01 -B 1``, the L2-regularised
   L2-loss SVC solved in the dual, one-vs-rest, with a bias feature of value 1 (regularised like
   the weights), trained on every window of the training folds. scikit-learn's ``LinearSVC``
   wraps the same liblinear: ``loss="squared_hinge", dual=True, C=0.01, fit_intercept=True,
   intercept_scaling=1`` and ``tol=0.1`` (liblinear's default stopping tolerance for ``-s 1``;
   scikit-learn's own default is 1e-4), ``max_iter=1000`` (liblinear's default).
7. **Clip decision** (:func:`clip_decisions`): a test clip's class is the argmax over classes of
   its windows' mean decision values.
8. **Folds**: ESC-50's five folds, each tested by the SVM trained on the other four (other
   corpora: their folds, else stratified group k-fold); accuracy pooled over the test clips.

The paper (Aytar, Vondrick and Torralba 2016, Table 1) reports 74.2 % on ESC-50 and 92.2 % on
ESC-10 for the 8-layer SoundNet's pool5 (:data:`PAPER_REFERENCE`); :func:`paper_reference` names
the matching dataset only for the full ESC-50 (2,000 clips, 50 categories, 5 folds) or the full
ESC-10 (400 clips, 10 categories), never for a subset or another corpus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from interp.analysis import linear_probes as lp
from interp.analysis.probe_stats import group_bootstrap_accuracy
from interp.corpus.corpora import clip_waves
from interp.run.store import Run
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import CONV_LAYERS, SoundNet8

__all__ = [
    "PAPER_INPUT_SCALE",
    "PAPER_SOUND_LENGTH_S",
    "PAPER_TIME_WINDOW_S",
    "PAPER_C",
    "PAPER_LAYER",
    "PAPER_LAYERS",
    "LUA_MODULES",
    "PAPER_REFERENCE",
    "PAPER_COLUMNS",
    "paper_loop",
    "paper_layer_output",
    "window_frames",
    "paper_windows",
    "liblinear_values",
    "liblinear_svm",
    "clip_decisions",
    "paper_reference",
    "paper_protocol",
]

#: The evaluation's input scale for [-1, 1] audio: int32 full scale 2^31 times 2^-22 (= 2 x 256).
PAPER_INPUT_SCALE = 2.0**31 * 2.0**-22  # 512.0 = 2 x soundnet.audio.INPUT_SCALE
#: Clips are looped and cut to this length (``opt.sound_length``), in seconds.
PAPER_SOUND_LENGTH_S = 10
#: The window length (``-timewindow``), in seconds of the 10 s input.
PAPER_TIME_WINDOW_S = 1
#: liblinear's ``-c``.
PAPER_C = 0.01
#: The default layer: pool5 (Torch module 18), our ``conv5`` block.
PAPER_LAYER = "conv5"
#: Layers the protocol accepts: our conv blocks and ``conv8`` (both heads concatenated).
PAPER_LAYERS = (*CONV_LAYERS, "conv8")
#: Our layer -> (Torch module index in ``soundnet8_final.t7``, the paper's name for it).
LUA_MODULES = {
    "conv1": (4, "pool1"),
    "conv2": (8, "pool2"),
    "conv3": (11, "conv3"),
    "conv4": (14, "conv4"),
    "conv5": (18, "pool5"),
    "conv6": (21, "conv6"),
    "conv7": (24, "conv7"),
    "conv8": (25, "conv8"),
}
#: The paper's accuracy (fraction) for the 8-layer SoundNet, pool5: ``{(dataset, layer): accuracy}``.
PAPER_REFERENCE = {("ESC-50", "conv5"): 0.742, ("ESC-10", "conv5"): 0.922}
#: Columns of :func:`paper_protocol`'s table.
PAPER_COLUMNS = (
    "method",
    "layer",
    "paper_layer",
    "lua_module",
    "window_frames",
    "n_windows",
    "feature_dim",
    "input_scale",
    "loop_s",
    "C",
    "accuracy",
    "ci_low",
    "ci_high",
    "paper_accuracy",
    "dataset",
    "n_clips",
    "n_correct",
    "n_classes",
    "chance",
    "fold_sd",
    "cv",
    "interval",
    "classifier",
)
METHOD = "paper (eval_esc50.lua)"


def paper_loop(y: np.ndarray, *, length_s: float = PAPER_SOUND_LENGTH_S, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Repeat a clip circularly to at least ``length_s + 1`` seconds and cut it to ``length_s``.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono audio (any scale).
    length_s : float (in seconds)
        ``opt.sound_length`` (10).
    sr : int (in Hz)

    Returns
    -------
    np.ndarray, shape (round(length_s * sr),)
        ``tile(y, ceil((length_s + 1) * sr / n_samples))[: length_s * sr]``.
    """
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ParameterError(
            f"The 'y' parameter of paper_loop must be a non-empty 1-D array. Got shape {y.shape} instead."
        )
    if length_s <= 0:
        raise ParameterError(f"The 'length_s' parameter of paper_loop must be > 0. Got {length_s} instead.")
    rep = math.ceil((length_s + 1) * sr / len(y))
    return np.tile(y, rep)[: int(round(length_s * sr))]


def paper_layer_output(model: SoundNet8, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of the Torch module the protocol reads (:data:`LUA_MODULES`).

    Parameters
    ----------
    model : SoundNet8
    x : torch.Tensor, shape (batch, 1, n_samples)
        Looped audio already multiplied by :data:`PAPER_INPUT_SCALE`.
    layer : str
        One of :data:`PAPER_LAYERS`.

    Returns
    -------
    torch.Tensor, shape (batch, units, T)
        For ``conv8``: objects then places, 1,401 channels.
    """
    if layer not in PAPER_LAYERS:
        raise ParameterError(
            f"The 'layer' parameter of paper_layer_output must be one of {list(PAPER_LAYERS)}. Got {layer!r} instead."
        )
    if layer == "conv8":
        out = model.extract_features(x, layers=("conv8", "conv8_2"))
        return torch.cat([out["conv8"], out["conv8_2"]], dim=1)
    return model.extract_features(x, layers=(layer,))[layer]


def window_frames(
    n_frames: int, *, window_s: float = PAPER_TIME_WINDOW_S, length_s: float = PAPER_SOUND_LENGTH_S
) -> int:
    """Frames per window: ``ceil(window_s / length_s x n_frames)`` (``twindow_size`` in the Lua code).

    Parameters
    ----------
    n_frames : int
        Frames of the layer for the ``length_s`` input (pool5: 27).
    window_s, length_s : float (in seconds)

    Returns
    -------
    int (in frames), at least 1
    """
    if n_frames < 1:
        raise ParameterError(f"The 'n_frames' parameter of window_frames must be >= 1. Got {n_frames} instead.")
    return max(1, math.ceil(window_s / length_s * n_frames))


def paper_windows(feat: np.ndarray, w: int) -> np.ndarray:
    """Stride-1 windows of ``w`` frames, each flattened unit-major.

    Parameters
    ----------
    feat : np.ndarray, shape (units, T)
        One clip's layer output.
    w : int (in frames)

    Returns
    -------
    np.ndarray, shape (T - w + 1, units * w)
        Row ``i`` is ``feat[:, i : i + w].reshape(-1)`` (unit 0's frames first, as Torch's
        ``view(-1)`` of the ``(units, w)`` slice).
    """
    feat = np.asarray(feat)
    if feat.ndim != 2 or not 1 <= w <= feat.shape[1]:
        raise ParameterError(
            f"paper_windows needs feat (units, T) and 1 <= w <= T. Got {feat.shape} and w={w} instead."
        )
    n_win = feat.shape[1] - w + 1
    view = np.lib.stride_tricks.sliding_window_view(feat, w, axis=1)  # (units, n_win, w)
    return np.ascontiguousarray(view.transpose(1, 0, 2)).reshape(n_win, -1)


def liblinear_values(x: np.ndarray) -> np.ndarray:
    """The features liblinear sees: ``convert_to_liblinear`` keeps only entries > 0 (others are 0)."""
    x = np.asarray(x, dtype=np.float32)
    return np.where(x > 0, x, np.float32(0))


def liblinear_svm(*, C: float = PAPER_C, seed: int = 0):
    """``liblinear -s 1 -c C -B 1`` as scikit-learn's ``LinearSVC`` (which wraps liblinear).

    Returns
    -------
    sklearn.svm.LinearSVC
        ``loss="squared_hinge", dual=True, C=C, fit_intercept=True, intercept_scaling=1,
        multi_class="ovr", tol=0.1, max_iter=1000`` (liblinear's defaults for ``-s 1``).
    """
    from sklearn.svm import LinearSVC

    if C <= 0:
        raise ParameterError(f"The 'C' parameter of liblinear_svm must be > 0. Got {C} instead.")
    return LinearSVC(
        penalty="l2",
        loss="squared_hinge",
        dual=True,
        C=C,
        fit_intercept=True,
        intercept_scaling=1,
        multi_class="ovr",
        tol=0.1,
        max_iter=1000,
        random_state=seed,
    )


def clip_decisions(decision: np.ndarray, clip_index: np.ndarray, classes: np.ndarray) -> pd.Series:
    """Each clip's class: argmax over classes of its windows' mean decision values.

    Parameters
    ----------
    decision : np.ndarray, shape (n_windows, n_classes) or (n_windows,)
        ``decision_function`` of the windows (one column for two classes: ``classes[1]``).
    clip_index : np.ndarray of int, shape (n_windows,)
        The clip of each window.
    classes : np.ndarray, shape (n_classes,)

    Returns
    -------
    pandas.Series
        Predicted class, indexed by clip.
    """
    d = np.asarray(decision, dtype=np.float64)
    if d.ndim == 1:
        d = np.stack([-d, d], axis=1)
    mean = pd.DataFrame(d).groupby(np.asarray(clip_index)).mean()
    return pd.Series(np.asarray(classes)[mean.to_numpy().argmax(axis=1)], index=mean.index)


def _clip_windows(
    model: SoundNet8, waves: Sequence[np.ndarray], layer: str, batch_size: int, device: str
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """All clips' windows: (features (n_windows, dim) float32, clip index, window frames, windows per clip)."""
    feats, index, w, n_win = [], [], 0, 0
    for start in range(0, len(waves), batch_size):
        chunk = waves[start : start + batch_size]
        x = np.stack([paper_loop(np.asarray(y, dtype=np.float32)) for y in chunk])[:, None, :] * np.float32(
            PAPER_INPUT_SCALE
        )
        with torch.inference_mode():
            out = paper_layer_output(model, torch.from_numpy(x).to(device), layer).float().cpu().numpy()
        if w == 0:
            w = window_frames(out.shape[2])
            n_win = out.shape[2] - w + 1
        for r in range(len(chunk)):
            feats.append(liblinear_values(paper_windows(out[r], w)))
            index.append(np.full(n_win, start + r, dtype=np.int64))
    return np.concatenate(feats), np.concatenate(index), w, n_win


def paper_reference(clips: pd.DataFrame) -> str | None:
    """``"ESC-50"`` or ``"ESC-10"`` when ``clips`` are that whole dataset, else None.

    Parameters
    ----------
    clips : pandas.DataFrame
        The clips evaluated (with ESC-50's columns ``esc10``, ``src_file``, ``take``, ``fold``).

    Returns
    -------
    str or None
        ``"ESC-50"``: 2,000 clips in 50 categories and folds 1-5; ``"ESC-10"``: 400 clips, all
        ``esc10``, in 10 categories and folds 1-5; None for anything else (a subset, another corpus).
    """
    if not {"esc10", "src_file", "take", "fold", "label"} <= set(clips.columns):
        return None
    folds = set(pd.to_numeric(clips["fold"], errors="coerce").dropna().astype(int))
    n_cat = clips["label"].nunique()
    if folds != {1, 2, 3, 4, 5}:
        return None
    if len(clips) == 2000 and n_cat == 50:
        return "ESC-50"
    if len(clips) == 400 and n_cat == 10 and clips["esc10"].astype(bool).all():
        return "ESC-10"
    return None


def paper_protocol(
    run: Run,
    model: SoundNet8,
    *,
    layers: Sequence[str] = (PAPER_LAYER,),
    C: float = PAPER_C,
    reference: bool = True,
    n_splits: int = 5,
    seed: int = 0,
    confidence: float = 0.95,
    n_boot: int = 2000,
    batch_size: int = 8,
    device: str = "cpu",
    return_predictions: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """The authors' ESC-50 evaluation on a labelled run (every step in the module docstring).

    Parameters
    ----------
    run : Run
        Any labelled run (its clips are decoded again; no layer needs to be recorded).
    model : SoundNet8
        The pretrained net (plain model).
    layers : sequence of str
        Layers to evaluate (:data:`PAPER_LAYERS`; the paper's comparison: ``conv4`` .. ``conv8``).
    C : float
        liblinear's ``-c`` (0.01 in the paper).
    reference : bool
        Show the paper's number where the dataset matches (:func:`paper_reference`); pass False
        for a reduced run (``--quick``).
    n_splits, seed
        Folds when the corpus has none (:func:`interp.analysis.linear_probes.probe_folds`).
    confidence, n_boot
        The interval (group bootstrap stratified by test fold).
    batch_size : int
        Clips per forward pass.
    device : str

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PAPER_COLUMNS`, one row per layer; ``paper_accuracy`` is NaN except for
        the matching dataset and layer. With ``return_predictions``, also ``layer, clip_id, label,
        predicted, correct, fold, group``.
    """
    bad = [layer for layer in layers if layer not in PAPER_LAYERS]
    if bad or not layers:
        raise ParameterError(
            f"The 'layers' parameter of paper_protocol must name layers from {list(PAPER_LAYERS)}. Got {list(layers)} instead."
        )
    clips = run.ok_clips
    clips = clips[clips["label"].fillna("").astype(str) != ""]
    counts = clips["label"].value_counts()
    clips = clips[clips["label"].map(counts) >= 2]
    y = clips["label"].astype(str).to_numpy()
    groups = clips["group"].to_numpy() if "group" in clips.columns else None
    splits, cv = lp.probe_folds(
        y, clips["fold"].to_numpy() if "fold" in clips.columns else None, n_splits=n_splits, seed=seed, groups=groups
    )
    fold = lp.fold_of_clips(splits, len(y))
    dataset = paper_reference(clips) if reference else None
    waves = clip_waves(clips)
    model = model.to(device).eval()
    rows, preds = [], []
    for layer in layers:
        xw, ci, w, n_win = _clip_windows(model, waves, layer, batch_size, device)
        pred = np.full(len(y), "", dtype=object)
        with lp.single_blas_thread():
            for train, test in splits:
                tr = np.isin(ci, train)
                svm = liblinear_svm(C=C, seed=seed)
                svm.fit(xw[tr], y[ci[tr]])
                te = np.isin(ci, test)
                got = clip_decisions(svm.decision_function(xw[te]), ci[te], svm.classes_)
                pred[got.index.to_numpy()] = got.to_numpy()
        pred = pred.astype(str)
        done = pred != ""
        correct = pred == y
        lo, hi = group_bootstrap_accuracy(
            correct[done],
            groups=None if groups is None else groups[done],
            strata=fold[done],
            confidence=confidence,
            n_boot=n_boot,
            seed=seed,
        )
        per_fold = pd.Series(correct[done]).groupby(fold[done]).mean()
        module, paper_name = LUA_MODULES[layer]
        rows.append(
            {
                "method": METHOD,
                "layer": layer,
                "paper_layer": paper_name,
                "lua_module": module,
                "window_frames": w,
                "n_windows": n_win,
                "feature_dim": int(xw.shape[1]),
                "input_scale": PAPER_INPUT_SCALE,
                "loop_s": float(PAPER_SOUND_LENGTH_S),
                "C": C,
                "accuracy": float(correct[done].mean()),
                "ci_low": lo,
                "ci_high": hi,
                "paper_accuracy": PAPER_REFERENCE.get((dataset, layer), math.nan) if dataset else math.nan,
                "dataset": dataset or "",
                "n_clips": int(done.sum()),
                "n_correct": int(correct[done].sum()),
                "n_classes": int(len(np.unique(y))),
                "chance": lp.chance_level(y, splits),
                "fold_sd": float(per_fold.std(ddof=1)) if len(per_fold) >= 2 else math.nan,
                "cv": cv,
                "interval": f"{confidence:.0%} group bootstrap, stratified by test fold",
                "classifier": f"liblinear -s 1 -c {C:g} -B 1 (LinearSVC), mean decision values per clip",
            }
        )
        g = clips.index.to_numpy().astype(str) if groups is None else pd.Series(groups).astype(str).to_numpy()
        preds.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "clip_id": clips.index.to_numpy(),
                    "label": y,
                    "predicted": pred,
                    "correct": correct,
                    "fold": fold,
                    "group": g,
                }
            )
        )
    table = pd.DataFrame(rows, columns=list(PAPER_COLUMNS))
    if return_predictions:
        return table, pd.concat(preds, ignore_index=True)
    return table
