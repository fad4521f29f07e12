"""Robustness of unit rankings and probes to level, noise, time shifts and resampling.

A :class:`Perturbation` changes a clip's waveform the way real recordings differ:

``level``     the clip scaled by ``strength`` dB (-40 .. -10; 0 dB is the original);
``noise``     white Gaussian noise added at an SNR of ``strength`` dB relative to the clip's RMS
              (seeded from the clip's id, so a run is reproducible);
``shift``     the clip delayed by ``strength`` ms of silence (moves every frame off its grid);
``resample``  the clip as if recorded at ``strength`` Hz: resampled to that rate and back to
              22050 Hz with soxr, as the audio front end does for such a file (8 and 16 kHz
              remove everything above 4 and 8 kHz).

:func:`compare_conditions` then measures, per layer, how much of the clean picture survives:

``response_spearman``  median over units of the Spearman correlation, across clips, between the
                       unit's clean and perturbed activation (do the same clips drive it?);
``auroc_spearman``     mean over categories of the Spearman correlation, across the layer's units,
                       between clean and perturbed one-vs-rest AUROC (is the selectivity ranking
                       kept?);
``top_overlap``        mean over categories of the fraction of the clean top-N units (by AUROC)
                       still in the perturbed top-N, beside two references:
                       ``top_overlap_chance`` (:func:`top_overlap_chance`: N / n_units, the
                       hypergeometric expectation for two unrelated top-N sets: 0.63 for conv1's
                       16 units keeping 10, 0.01 for conv7's 1,024) and ``top_overlap_resample``
                       (:func:`resample_overlap`: the mean overlap between the top-N of two
                       bootstrap resamples of the clean clips, how much the clean ranking itself
                       moves when the clips are redrawn; a perturbed overlap near it is as good
                       as the data allow);
``probe_accuracy``     accuracy of linear probes trained on clean clips and tested on the perturbed
                       copies of the held-out clips (same folds as the clean probe), with
                       ``probe_ci_low`` / ``probe_ci_high`` (95 % Wilson).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import soxr

from interp.analysis import stats
from interp.analysis.linear_probes import fit_folds, logistic_probe, predict_folds, probe_row, single_blas_thread
from interp.corpus.corpora import clip_waves
from interp.recording import summarize_waves
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import CONV_LAYERS
from soundnet.options import Family, HeadStat, check_option, choices

__all__ = [
    "FAMILIES",
    "ROBUSTNESS_COLUMNS",
    "Perturbation",
    "default_perturbations",
    "perturb",
    "summarize_conditions",
    "column_spearman",
    "top_overlap",
    "top_overlap_chance",
    "resample_overlap",
    "compare_conditions",
]

#: Perturbation families, in report order.
FAMILIES: tuple[Family, ...] = choices(Family)
#: Columns of the table :func:`compare_conditions` returns.
ROBUSTNESS_COLUMNS = (
    "family",
    "strength",
    "label",
    "layer",
    "response_spearman",
    "auroc_spearman",
    "top_overlap",
    "probe_accuracy",
    "probe_ci_low",
    "probe_ci_high",
    "clean_probe_accuracy",
    "top_overlap_chance",
    "top_overlap_resample",
)

_UNITS = {"level": "dB", "noise": "dB SNR", "shift": "ms", "resample": "Hz"}


@dataclass(frozen=True)
class Perturbation:
    """One perturbation condition.

    Attributes
    ----------
    family : {"level", "noise", "shift", "resample"}
    strength : float
        dB change (level), SNR in dB (noise), delay in ms (shift) or source rate in Hz (resample).
    """

    family: Family
    strength: float

    def __post_init__(self) -> None:
        check_option("family", self.family, Family, where="Perturbation")
        ok = (
            math.isfinite(self.strength)
            and {
                "level": self.strength <= 0,
                "noise": True,
                "shift": self.strength >= 0,
                "resample": self.strength >= 1000,
            }[self.family]
        )
        if not ok:
            raise ParameterError(
                f"The 'strength' of a {self.family!r} perturbation must be "
                f"{ {'level': '<= 0 dB', 'noise': 'finite', 'shift': '>= 0 ms', 'resample': '>= 1000 Hz'}[self.family] }. "
                f"Got {self.strength!r} instead."
            )

    @property
    def label(self) -> str:
        """E.g. ``"level -20 dB"``, ``"noise 10 dB SNR"``."""
        return f"{self.family} {self.strength:g} {_UNITS[self.family]}"


def default_perturbations(*, quick: bool = False) -> list[Perturbation]:
    """The study's conditions: 4 levels, 4 SNRs, 3 shifts, 3 source rates (one each with ``quick``)."""
    if quick:
        grid: dict[str, tuple[float, ...]] = {
            "level": (-20.0,),
            "noise": (10.0,),
            "shift": (10.0,),
            "resample": (8000.0,),
        }
    else:
        grid = {
            "level": (-40.0, -30.0, -20.0, -10.0),
            "noise": (30.0, 20.0, 10.0, 0.0),
            "shift": (1.0, 10.0, 100.0),
            "resample": (8000.0, 16000.0, 44100.0),
        }
    return [Perturbation(f, s) for f in FAMILIES for s in grid[f]]


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "little")


def perturb(y: np.ndarray, p: Perturbation, *, key: str = "") -> np.ndarray:
    """Apply a perturbation to one waveform.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono float32 in [-1, 1] at 22050 Hz.
    p : Perturbation
    key : str
        Seeds the noise (use the clip id): the same clip and condition give the same noise.

    Returns
    -------
    np.ndarray, float32
        Same length, except ``shift`` (longer by the delay); not clipped to [-1, 1] (the model
        takes any amplitude, and clipping would add a second perturbation).
    """
    y = np.asarray(y, dtype=np.float32)
    if p.family == "level":
        return (y * 10.0 ** (p.strength / 20.0)).astype(np.float32)
    if p.family == "noise":
        rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) if len(y) else 0.0
        rng = np.random.default_rng(_seed(f"{key}|{p.label}"))
        sigma = rms / 10.0 ** (p.strength / 20.0)
        return (y + sigma * rng.standard_normal(len(y))).astype(np.float32)
    if p.family == "shift":
        n = int(round(p.strength / 1000.0 * SAMPLE_RATE_HZ))
        return np.concatenate([np.zeros(n, dtype=np.float32), y])
    down = soxr.resample(y, SAMPLE_RATE_HZ, int(p.strength), quality="HQ")
    back = soxr.resample(down, int(p.strength), SAMPLE_RATE_HZ, quality="HQ").astype(np.float32)
    return back[: len(y)] if len(back) >= len(y) else np.concatenate([back, np.zeros(len(y) - len(back), np.float32)])


def summarize_conditions(
    model,
    clips: pd.DataFrame,
    perturbations: Sequence[Perturbation],
    *,
    layers: Sequence[str] = CONV_LAYERS,
    config=None,
    progress: bool = False,
):
    """Per-clip summaries of the clean clips and of every perturbed copy.

    Parameters
    ----------
    model : SoundNet8
    clips : pandas.DataFrame
        Clip rows (e.g. ``run.ok_clips``), indexed by clip id (which seeds the noise).
    perturbations : sequence of Perturbation
    layers : sequence of str
    config : interp.recording.RecordConfig, optional
        The run's recorder settings (:meth:`interp.recording.RecordConfig.from_meta`), so that the
        clean summaries equal the run's.
    progress : bool
        Print each condition when done.

    Returns
    -------
    clean : dict ``{layer: {"mean", "max": (n_clips, n_units)}}``
    perturbed : dict ``{Perturbation: {layer: {stat: (n_clips, n_units)}}}``
    """

    waves = clip_waves(clips)

    def summarize(ws):
        return summarize_waves(
            model, ws, layers=layers, stats=("mean", "max"), config=config, fast=False, heads_short="none"
        )

    clean = summarize(waves)
    perturbed = {}
    for p in perturbations:
        perturbed[p] = summarize([perturb(w, p, key=str(c)) for w, c in zip(waves, clips.index)])
        if progress:
            print(f"  {p.label}", flush=True)
    return clean, perturbed


def column_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation between matching columns of two ``(n_rows, n_cols)`` arrays.

    Returns ``(n_cols,)``; NaN for a column that is constant in either array.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ParameterError(f"column_spearman needs two 2-D arrays of one shape. Got {a.shape} and {b.shape} instead.")
    return _diag_corr(stats.rank_columns(a)[0], stats.rank_columns(b)[0])


def _diag_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=0) / np.where(den > 0, den, 1.0), np.nan)


def top_overlap(clean: np.ndarray, perturbed: np.ndarray, *, top_n: int) -> np.ndarray:
    """Per column (category), the fraction of the clean top-``top_n`` rows (units) still in the perturbed top.

    Parameters
    ----------
    clean, perturbed : np.ndarray, shape (n_units, n_categories)
        Scores (higher = more selective).
    top_n : int

    Returns
    -------
    np.ndarray, shape (n_categories,), values in [0, 1]
    """
    n = min(int(top_n), clean.shape[0])
    if n < 1:
        raise ParameterError(f"The 'top_n' parameter of top_overlap must be >= 1. Got {top_n} instead.")
    a = np.argsort(-clean, axis=0, kind="stable")[:n]
    b = np.argsort(-perturbed, axis=0, kind="stable")[:n]
    return np.array([len(set(a[:, j]) & set(b[:, j])) / n for j in range(clean.shape[1])])


def top_overlap_chance(n_units: int, top_n: int) -> float:
    """Expected :func:`top_overlap` of two unrelated rankings: ``min(top_n, n_units) / n_units``.

    Two top-k sets drawn at random from n units share k * k / n units on average (the mean of the
    hypergeometric distribution), a fraction k / n of k: 10 / 16 = 0.625 for conv1, 10 / 1024 =
    0.0098 for conv7.
    """
    if n_units < 1 or top_n < 1:
        raise ParameterError(f"top_overlap_chance needs n_units >= 1 and top_n >= 1. Got {n_units}, {top_n} instead.")
    return min(int(top_n), int(n_units)) / int(n_units)


def resample_overlap(
    scores: np.ndarray, labels: Sequence[str] | np.ndarray, *, top_n: int, n_resamples: int = 20, seed: int = 0
) -> float:
    """Mean top-N overlap between the AUROC rankings of two bootstrap resamples of the clips.

    Parameters
    ----------
    scores : np.ndarray, shape (n_clips, n_units)
        Clean per-clip responses.
    labels : array of str, shape (n_clips,)
    top_n : int
    n_resamples : int
        Pairs of resamples (clips drawn with replacement within each category).
    seed : int

    Returns
    -------
    float
        Mean over pairs and categories of :func:`top_overlap` of the two resamples' AUROCs.
    """
    if n_resamples < 1:
        raise ParameterError(
            f"The 'n_resamples' parameter of resample_overlap must be >= 1. Got {n_resamples} instead."
        )
    y = np.asarray(labels).astype(str)
    x = np.asarray(scores, np.float64)
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)]

    def draw() -> np.ndarray:
        idx = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        onehot, _ = stats.onehot_labels(y[idx], categories=list(np.unique(y)))
        with single_blas_thread():
            return stats.auroc(x[idx], onehot)

    vals = [float(top_overlap(draw(), draw(), top_n=top_n).mean()) for _ in range(int(n_resamples))]
    return float(np.mean(vals))


def compare_conditions(
    clean: Mapping[str, Mapping[str, np.ndarray]],
    perturbed: Mapping[Perturbation, Mapping[str, Mapping[str, np.ndarray]]],
    labels: Sequence[str] | np.ndarray,
    splits,
    *,
    top_n: int = 10,
    rank_stat: HeadStat = "max",
    probe_stat: HeadStat = "mean",
    C: float = 1.0,
    n_resamples: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """How much of the clean rankings and probe accuracy survives each perturbation, per layer.

    Parameters
    ----------
    clean : mapping ``{layer: {stat: (n_clips, n_units)}}``
        Summaries of the clean clips (:func:`interp.recording.summarize_waves`).
    perturbed : mapping ``{Perturbation: {layer: {stat: (n_clips, n_units)}}}``
        The same for each condition, clips in the same order.
    labels : array of str, shape (n_clips,)
    splits : list of (train_index, test_index)
        Cross-validation folds (:func:`interp.analysis.linear_probes.probe_folds`).
    top_n : int
        N of the top-N overlap.
    rank_stat, probe_stat : {"mean", "max", "peak_s", "prob"}
        Summaries used for the AUROC rankings and for the probes.
    C : float
        The probes' inverse L2 strength.
    n_resamples, seed : int
        Bootstrap pairs of :func:`resample_overlap` (per layer) and their seed.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`ROBUSTNESS_COLUMNS` (see the module docstring), one row per (condition, layer).
    """
    y = np.asarray(labels).astype(str)
    onehot, _ = stats.onehot_labels(y)
    make = logistic_probe(C=C)
    rows = []
    clean_acc, models, clean_rank, clean_auroc, chance, resampled = {}, {}, {}, {}, {}, {}
    for layer, s in clean.items():
        models[layer] = fit_folds(s[probe_stat], y, splits, make_classifier=make)
        pred = predict_folds(models[layer], splits, s[probe_stat])
        clean_acc[layer] = probe_row(layer, y, pred, cv="", features="", classifier="")["accuracy"]
        clean_rank[layer] = np.asarray(s[rank_stat], np.float64)
        with single_blas_thread():
            clean_auroc[layer] = stats.auroc(clean_rank[layer], onehot)  # (n_units, n_categories)
        chance[layer] = top_overlap_chance(clean_rank[layer].shape[1], top_n)
        resampled[layer] = resample_overlap(clean_rank[layer], y, top_n=top_n, n_resamples=n_resamples, seed=seed)
    for p, feats in perturbed.items():
        for layer, s in feats.items():
            a0, a1 = clean_rank[layer], np.asarray(s[rank_stat], np.float64)
            with single_blas_thread():
                resp = float(np.nanmedian(column_spearman(a0, a1)))
                au0, au1 = clean_auroc[layer], stats.auroc(a1, onehot)
            rho = column_spearman(au0, au1)  # per category, across units
            over = top_overlap(au0, au1, top_n=top_n)
            pred = predict_folds(models[layer], splits, s[probe_stat])
            pr = probe_row(layer, y, pred, cv="", features="", classifier="")
            rows.append(
                (
                    p.family,
                    p.strength,
                    p.label,
                    layer,
                    resp,
                    float(np.nanmean(rho)),
                    float(over.mean()),
                    pr["accuracy"],
                    pr["ci_low"],
                    pr["ci_high"],
                    clean_acc[layer],
                    chance[layer],
                    resampled[layer],
                )
            )
    return pd.DataFrame(rows, columns=list(ROBUSTNESS_COLUMNS))
