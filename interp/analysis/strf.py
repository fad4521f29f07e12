"""Spectro-temporal receptive fields (STRFs) of every unit, by regularised reverse correlation.

The standard of auditory neuroscience (Theunissen et al. 2001): a unit's response at time t is
modelled as a linear function of the log-mel spectrogram in the window that precedes (and, for a
convolutional frame, surrounds) it,

    a_u(t) ~ b_u + sum_{lag, mel} W_u[lag, mel] * S[t - lag, mel],

fitted by ridge regression. Here the window of a frame is its receptive field
(:func:`soundnet.geometry.frames_to_window`), cut into ``max_lags`` equal time bins (log-mel
frames averaged within each), so that every layer's STRF spans exactly what its units can hear:
from 36 ms (conv2) to 4.1 s (conv7). conv1's 3.5 ms field is shorter than one log-mel hop: its
STRF has a single time bin (a spectral tuning curve), and its frames (one every 0.7 ms) are taken
every ``hop_s / 2`` (5 ms: finer than the log-mel resolves; the rows in between repeat the same
spectrogram column). Only valid frames count (the whole field inside the clip).

One decomposition per layer serves all its units: the design matrix (one row per valid frame,
one column per lag x mel bin) is shared, so the eigendecomposition of its centred cross-product
``x'x`` gives every unit's ridge solution at every regularisation at once. Only sufficient
statistics (``x'x``, ``x'y``, sums) are kept per held-out fold, so memory does not grow with the
number of clips. Per unit the ridge parameter is chosen by
generalised cross-validation on the training clips only, and ``r_heldout`` is the correlation
between predicted and actual activations on held-out clips (``n_folds`` folds of whole clips):
how linear the unit is. A unit with ``r_heldout`` near 0 is not described by its STRF.

:func:`run_strf` writes ``strf.parquet`` (one row per unit: ``layer, unit, r_heldout, alpha,
n_frames, n_lags, lag_s, n_mels``) and ``strf_filters.parquet`` (``layer, unit, lag, mel,
weight``; lag 0 is the start of the receptive field) into the run directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import librosa
import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from interp.corpus.corpora import read_clip
from interp.run.store import Run, open_run
from soundnet.audio import INPUT_SCALE
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_window, layer_geometry, n_frames, valid_frames
from soundnet.model import CONV_LAYERS

__all__ = [
    "STRFConfig",
    "STRFResult",
    "strf_features",
    "layer_lags",
    "frame_stride",
    "fit_strfs",
    "estimate_strfs",
    "run_strf",
]


@dataclass(frozen=True)
class STRFConfig:
    """Options of the STRF estimation.

    Attributes
    ----------
    n_mels : int
        Mel bands of the log-mel spectrogram (20 Hz to 11 kHz).
    hop_s : float
        Hop of the log-mel spectrogram in seconds.
    max_lags : int
        Time bins of a receptive field (the STRF's width in columns).
    alphas : tuple of float
        Ridge parameters tried (relative to the mean squared singular value).
    n_folds : int
        Held-out folds of whole clips for ``r_heldout``.
    seed : int
    """

    n_mels: int = 32
    hop_s: float = 0.01
    max_lags: int = 16
    alphas: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
    n_folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_mels", "max_lags", "n_folds"):
            if int(getattr(self, name)) < (2 if name == "n_folds" else 1):
                raise ParameterError(f"The '{name}' parameter of STRFConfig is too small. Got {getattr(self, name)!r}.")
        if not self.hop_s > 0 or not self.alphas:
            raise ParameterError("The 'hop_s' parameter of STRFConfig must be > 0 and 'alphas' non-empty.")


@dataclass
class STRFResult:
    """STRFs of one layer: ``table`` (one row per unit) and ``filters`` ``(units, lags, mels)``."""

    layer: str
    table: pd.DataFrame
    filters: np.ndarray
    lag_s: float
    mel_hz: np.ndarray


def _log_mel(y: np.ndarray, cfg: STRFConfig) -> np.ndarray:
    """``(n_frames, n_mels)`` log-mel spectrogram (dB re 1, floor -80 dB), hop ``cfg.hop_s``."""
    hop = max(1, int(round(cfg.hop_s * SAMPLE_RATE_HZ)))
    m = librosa.feature.melspectrogram(
        y=np.asarray(y, dtype=np.float32),
        sr=SAMPLE_RATE_HZ,
        n_fft=1024,
        hop_length=hop,
        n_mels=cfg.n_mels,
        fmin=20.0,
        fmax=11025.0,
        center=True,
    )
    return librosa.power_to_db(m, ref=1.0, top_db=80.0).T.astype(np.float64)


def mel_centres_hz(cfg: STRFConfig) -> np.ndarray:
    """Centre frequency of each mel band, Hz."""
    return librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=20.0, fmax=11025.0)[1:-1]


def layer_lags(layer: str, cfg: STRFConfig) -> int:
    """Time bins of ``layer``'s STRF: ``cfg.max_lags``, or 1 when its receptive field is shorter
    than one log-mel hop (conv1), whose bins would all read the same spectrogram column."""
    return 1 if layer_geometry(layer).receptive_field_s < cfg.hop_s else cfg.max_lags


def frame_stride(layer: str, cfg: STRFConfig) -> int:
    """Every how many valid frames of ``layer`` a regression row is taken: frames closer than
    ``cfg.hop_s / 2`` apart (conv1's, 0.7 ms) see the same spectrogram, so every frame would
    only repeat rows."""
    return max(1, int(cfg.hop_s / 2 / (layer_geometry(layer).hop_samples / SAMPLE_RATE_HZ)))


def strf_features(
    y: np.ndarray, layer: str, frames: np.ndarray, cfg: STRFConfig, *, spec: np.ndarray | None = None
) -> np.ndarray:
    """The regression rows of ``frames`` of ``layer`` in clip ``y``: the log-mel spectrogram in
    each frame's receptive field, cut into :func:`layer_lags` equal time bins (the log-mel frames
    whose centre falls in a bin are averaged; an empty bin takes the nearest frame).

    ``spec``: the clip's log-mel spectrogram when already computed (``_log_mel(y, cfg)``).

    Returns
    -------
    np.ndarray, shape (len(frames), layer_lags(layer, cfg) * n_mels)
    """
    if spec is None:
        spec = _log_mel(y, cfg)
    t_mel = np.arange(len(spec)) * cfg.hop_s
    start, end = frames_to_window(np.asarray(frames), layer)
    lags = layer_lags(layer, cfg)
    edges = start[:, None] + (end - start)[:, None] * np.arange(lags + 1)[None, :] / lags  # (F, lags+1)
    centres = (edges[:, :-1] + edges[:, 1:]) / 2
    # each bin: mean of the log-mel frames within it; cumulative sums make that O(1) per bin
    cum = np.vstack([np.zeros((1, spec.shape[1])), np.cumsum(spec, axis=0)])
    lo = np.searchsorted(t_mel, edges[:, :-1], side="left")
    hi = np.searchsorted(t_mel, edges[:, 1:], side="left")
    near = np.clip(np.rint(centres / cfg.hop_s).astype(int), 0, len(spec) - 1)
    empty = hi <= lo
    lo = np.where(empty, near, lo)
    hi = np.where(empty, near + 1, hi)
    lo, hi = np.clip(lo, 0, len(spec)), np.clip(hi, 0, len(spec))
    sums = cum[hi] - cum[lo]  # (F, lags, mels)
    counts = np.maximum(hi - lo, 1)[:, :, None]
    out = sums / counts
    # bins outside the clip (cannot happen for valid frames with min_inside=1) read the floor
    out[(hi <= lo)] = -80.0
    return out.reshape(len(frames), lags * spec.shape[1])


class _Moments:
    """Sufficient statistics of a ridge regression, per fold: ``n, sum x, sum y, x'x, x'y, y'y``
    (the rows themselves are not kept: memory ``n_folds x (d^2 + d x units)``)."""

    def __init__(self, d: int, u: int, n_folds: int) -> None:
        self.n = np.zeros(n_folds)
        self.sx = np.zeros((n_folds, d))
        self.sy = np.zeros((n_folds, u))
        self.sxx = np.zeros((n_folds, d, d))
        self.sxy = np.zeros((n_folds, d, u))
        self.syy = np.zeros((n_folds, u))

    def add(self, fold: int, x: np.ndarray, y: np.ndarray) -> None:
        self.n[fold] += len(x)
        self.sx[fold] += x.sum(axis=0)
        self.sy[fold] += y.sum(axis=0)
        self.sxx[fold] += x.T @ x
        self.sxy[fold] += x.T @ y
        self.syy[fold] += (y * y).sum(axis=0)

    def total(
        self, drop: int | None = None
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        keep = np.ones(len(self.n), dtype=bool)
        if drop is not None:
            keep[drop] = False
        return (
            float(self.n[keep].sum()),
            self.sx[keep].sum(axis=0),
            self.sy[keep].sum(axis=0),
            self.sxx[keep].sum(axis=0),
            self.sxy[keep].sum(axis=0),
            self.syy[keep].sum(axis=0),
        )


def _ridge_from_moments(
    n: float, sx: np.ndarray, sy: np.ndarray, sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray, alphas: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ridge solutions of all units from one eigendecomposition of the centred x'x; per unit the
    alpha (relative to the mean eigenvalue) with the smallest generalised cross-validation error.
    The same solution as the SVD of the centred rows: ``x'x = V S^2 V'``, ``U'y = S^-1 V' x'y``."""
    mx, my = sx / n, sy / n
    cxx = sxx - n * np.outer(mx, mx)
    cxy = sxy - n * np.outer(mx, my)
    cyy = syy - n * my**2
    with threadpool_limits(1):  # LAPACK's eigh on 2 busy cores: 0.04 s on one thread, 6 s on two
        lam, v = np.linalg.eigh(cxx)
    keep = lam > max(float(lam.max(initial=0.0)), 1e-300) * 1e-10  # the span of the centred rows
    lam, v = lam[keep], v[:, keep]
    z = v.T @ cxy  # (k, units) = S U'y
    proj = z**2 / lam[:, None]  # (U'y)^2
    scale = float(lam.mean()) if len(lam) else 1.0
    resid0 = cyy - proj.sum(axis=0)
    best_err = np.full(len(my), np.inf)
    best = np.zeros_like(z)
    best_alpha = np.zeros(len(my))
    for a in alphas:
        shrink = lam / (lam + a * scale)
        resid = resid0 + (((1 - shrink) ** 2)[:, None] * proj).sum(axis=0)
        err = n * resid / max(n - shrink.sum(), 1.0) ** 2
        better = err < best_err
        coef = z / (lam + a * scale)[:, None]
        best[:, better] = coef[:, better]
        best_err[better] = err[better]
        best_alpha[better] = a
    w = (v @ best).T  # (units, features)
    return w, my - w @ mx, best_alpha


def fit_strfs(
    x: np.ndarray, y: np.ndarray, clip_index: np.ndarray, cfg: STRFConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ridge STRFs of every unit from one shared design matrix.

    Parameters
    ----------
    x : array, shape (n_frames, n_features)
        Regression rows (:func:`strf_features`).
    y : array, shape (n_frames, n_units)
        The units' activations at those frames.
    clip_index : array of int, shape (n_frames,)
        The clip of each row: held-out folds keep clips whole.
    cfg : STRFConfig

    Returns
    -------
    weights : (n_units, n_features); intercept : (n_units,); alpha : (n_units,) chosen by
    generalised cross-validation on the training folds; r_heldout : (n_units,) correlation of
    the held-out predictions (pooled over folds) with the activations.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    m = _Moments(x.shape[1], y.shape[1], cfg.n_folds)
    for fold, rows in _fold_rows(clip_index, cfg).items():
        m.add(fold, x[rows], y[rows])
    return _fit_moments(m, cfg)


def _fold_rows(clip_index: np.ndarray, cfg: STRFConfig) -> dict[int, np.ndarray]:
    """Rows of each held-out fold (whole clips, seeded)."""
    rng = np.random.default_rng(cfg.seed)
    clips = np.unique(clip_index)
    fold_of_clip = dict(zip(clips.tolist(), (rng.permutation(len(clips)) % cfg.n_folds).tolist()))
    fold = np.asarray([fold_of_clip[c] for c in np.asarray(clip_index).tolist()])
    return {k: np.flatnonzero(fold == k) for k in range(cfg.n_folds)}


def _fit_moments(m: _Moments, cfg: STRFConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per fold a fit on the others and its predictions' sums on the fold; the final fit on all."""
    u = m.sy.shape[1]
    s_p, s_pp, s_yp = np.zeros(u), np.zeros(u), np.zeros(u)
    for k in range(len(m.n)):
        if m.n[k] == 0 or m.n[k] == m.n.sum():
            continue
        w, b, _ = _ridge_from_moments(*m.total(drop=k), cfg.alphas)
        xw = m.sx[k] @ w.T  # (u,): sum over the fold of x . w
        s_p += m.n[k] * b + xw
        s_pp += m.n[k] * b**2 + 2 * b * xw + ((w @ m.sxx[k]) * w).sum(axis=1)
        s_yp += b * m.sy[k] + (m.sxy[k].T * w).sum(axis=1)
    n, _, sy, _, _, syy = m.total()
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = s_yp - sy * s_p / n
        r = cov / np.sqrt((syy - sy**2 / n) * (s_pp - s_p**2 / n))
    r = np.where(np.isfinite(r), r, 0.0)
    w, b, alpha = _ridge_from_moments(*m.total(), cfg.alphas)
    return w, b, alpha, r


def estimate_strfs(
    model: Any,
    waves: Sequence[np.ndarray],
    layers: Sequence[str] = tuple(CONV_LAYERS),
    *,
    config: STRFConfig | None = None,
) -> dict[str, STRFResult]:
    """STRFs of every unit of ``layers`` from clips held in memory (see the module docstring).

    Parameters
    ----------
    model : SoundNet8 (or anything with its ``extract_features(x, layers=...)``)
    waves : sequence of np.ndarray
        Mono clips at 22,050 Hz in [-1, 1].
    layers : sequence of str
        Conv layers (default all; conv1's STRF has one time bin, :func:`layer_lags`).
    config : STRFConfig, optional

    Returns
    -------
    dict of layer -> STRFResult
    """
    cfg = config or STRFConfig()
    bad = [layer for layer in layers if layer not in CONV_LAYERS]
    if bad:
        raise ParameterError(f"The 'layers' parameter of estimate_strfs must name conv layers. Got {bad} instead.")
    moments: dict[str, _Moments] = {}
    n_rows: dict[str, int] = {layer: 0 for layer in layers}
    rng = np.random.default_rng(cfg.seed)
    folds = rng.permutation(len(waves)) % cfg.n_folds  # whole clips per held-out fold
    for i, y in enumerate(waves):
        y = np.asarray(y, dtype=np.float32)
        if len(y) == 0:
            continue
        with torch.inference_mode():
            feats = model.extract_features(torch.from_numpy(y * INPUT_SCALE).reshape(1, 1, -1), layers=list(layers))
        spec = _log_mel(y, cfg)  # once per clip, for every layer
        for layer in layers:
            t = n_frames(len(y), layer)
            ok = np.flatnonzero(valid_frames(len(y), layer, min_inside=1.0)[:t])[:: frame_stride(layer, cfg)]
            if len(ok) == 0:
                continue
            x = strf_features(y, layer, ok, cfg, spec=spec)
            a = feats[layer][0][:, ok].T.double().numpy()
            if layer not in moments:
                moments[layer] = _Moments(x.shape[1], a.shape[1], cfg.n_folds)
            moments[layer].add(int(folds[i]), x, a)  # the rows are folded in and dropped
            n_rows[layer] += len(ok)
    out = {}
    for layer in layers:
        if layer not in moments:
            continue
        w, _, alpha, r = _fit_moments(moments[layer], cfg)
        n_units = len(r)
        g = layer_geometry(layer)
        lags = layer_lags(layer, cfg)
        table = pd.DataFrame(
            {
                "layer": layer,
                "unit": np.arange(n_units, dtype=np.int64),
                "r_heldout": r,
                "alpha": alpha,
                "n_frames": n_rows[layer],
                "n_lags": lags,
                "lag_s": g.receptive_field_s / lags,
                "n_mels": cfg.n_mels,
            }
        )
        out[layer] = STRFResult(
            layer,
            table,
            w.reshape(n_units, lags, cfg.n_mels),
            g.receptive_field_s / lags,
            mel_centres_hz(cfg),
        )
    return out


def run_strf(
    run: Run | str | os.PathLike,
    *,
    model: Any = None,
    layers: Sequence[str] | None = None,
    max_clips: int = 1000,
    config: STRFConfig | None = None,
    write: bool = True,
) -> dict[str, STRFResult]:
    """STRFs of a run's conv units over its clips (at most ``max_clips``, a seeded sample),
    written as ``strf.parquet`` and ``strf_filters.parquet`` (see the module docstring)."""
    run = open_run(run)
    cfg = config or STRFConfig()
    if model is None:
        from soundnet.model import load_soundnet

        model = load_soundnet()
    if layers is None:
        layers = [layer for layer in run.layers if layer in CONV_LAYERS]
    ok = run.ok_clips
    if len(ok) > max_clips:
        ok = ok.sample(n=max_clips, random_state=cfg.seed).sort_values("order")
    waves = [read_clip(rec) for rec in ok.to_dict("records")]
    res = estimate_strfs(model, waves, layers, config=cfg)
    if write and res:
        table = pd.concat([r.table for r in res.values()], ignore_index=True)
        table.attrs["strf"] = asdict(cfg) | {"n_clips": len(waves)}
        run.write_table("strf", table)
        filters = []
        for r in res.values():
            u, lags, mels = r.filters.shape
            filters.append(
                pd.DataFrame(
                    {
                        "layer": r.layer,
                        "unit": np.repeat(np.arange(u), lags * mels).astype(np.int64),
                        "lag": np.tile(np.repeat(np.arange(lags), mels), u).astype(np.int64),
                        "mel": np.tile(np.arange(mels), u * lags).astype(np.int64),
                        "weight": r.filters.ravel().astype(np.float32),
                    }
                )
            )
        run.write_table("strf_filters", pd.concat(filters, ignore_index=True))
    return res
