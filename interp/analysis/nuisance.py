"""Nuisances: how well clip length, level, brightness, bandwidth or source rate alone tell a category.

A unit is not "selective for speech" because speech clips are short, quiet or band-limited. Before
any unit is read, this module measures how far each category is separable by properties of the
clips that are not the sound category:

=================  =========================================================================
nuisance           per clip
=================  =========================================================================
``duration_s``     decoded length of the excerpt, seconds (``clips.parquet``)
``sample_rate_hz`` the source file's sampling rate (``clips.parquet``): 8 kHz speech corpora
                   hold nothing above 4 kHz
``rms_db``         level: root mean square in dB relative to full scale
``centroid_hz``    spectral centroid of the clip's mean power spectrum, Hz
``rolloff95_hz``   the frequency below which 95 % of the power lies, Hz
``bandwidth_hz``   band edge: the highest frequency whose power is within 70 dB of the
                   spectrum's peak, Hz. A recording made at 8 kHz and resampled has nothing
                   above 4 kHz, whatever its content: this finds it where the source rate
                   is no longer known
``cliff_db``       the largest persistent drop of the spectrum, dB: for an edge anywhere from
                   1 to 10.5 kHz, the median power of the 500 Hz band below it over the
                   loudest 500 Hz band (mean power) between the edge and Nyquist. Natural
                   sounds, and a strong tone over broadband noise, stay under about 20 dB;
                   audio resampled from a lower rate stays 40 dB or more down from the old
                   Nyquist frequency to the new one
=================  =========================================================================

:func:`nuisance_report` gives, per (category, nuisance), the AUROC of the nuisance alone
(one-vs-rest, the category's clips against the others) with a group-bootstrap interval
(:mod:`interp.analysis.resampling`), and ``separation = max(auroc, 1 - auroc)``: a nuisance
with separation >= 0.9 (``flag_at``) separates the category by itself, and every selectivity
claim for that category must be read with it (``flagged``). ``flagged`` is descriptive, a rule
on the point estimate; ``flagged_ci`` is the stricter reading: the whole interval of the
separation is at or above ``flag_at`` (the AUROC's interval lies above ``flag_at`` or below
``1 - flag_at``). :func:`stratified_auroc` is the control: a unit's AUROC within strata of the
nuisances, pooled, so that a unit that only follows clip length or bandwidth loses its apparent
selectivity.

The spectral nuisances need the audio: :func:`clip_nuisances` decodes each ok clip once
(:func:`interp.corpus.corpora.read_clip`) and caches the table in the run directory
(``clip_nuisances.parquet``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis.resampling import group_bootstrap_auroc
from interp.corpus.corpora import read_clip
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError, SoundNetError
from soundnet.geometry import SAMPLE_RATE_HZ

__all__ = [
    "NUISANCES",
    "NUISANCE_COLUMNS",
    "clip_features",
    "clip_nuisances",
    "nuisance_report",
    "run_nuisance_report",
    "stratified_auroc",
    "nuisance_strata",
    "format_nuisance_warnings",
]

NUISANCES: tuple[str, ...] = (
    "duration_s",
    "rms_db",
    "centroid_hz",
    "rolloff95_hz",
    "bandwidth_hz",
    "cliff_db",
    "sample_rate_hz",
)
NUISANCE_COLUMNS = (
    "category",
    "nuisance",
    "auroc",
    "auroc_lo",
    "auroc_hi",
    "separation",
    "direction",
    "n_pos",
    "n_rest",
    "n_groups_pos",
    "n_groups_rest",
    "flagged",
    "flagged_ci",
)
_N_FFT = 2048
_HOP = 1024
_EDGE_DB = 70.0
_CLIFF_BAND_HZ = 500.0
_CLIFF_RANGE_HZ = (1000.0, 10500.0)


def clip_features(y: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ) -> dict[str, float]:
    """Level and spectral shape of one clip.

    Parameters
    ----------
    y : np.ndarray, shape (n_samples,)
        Mono waveform in [-1, 1].
    sample_rate_hz : int

    Returns
    -------
    dict
        ``rms_db`` (dB re full scale), ``centroid_hz``, ``rolloff95_hz`` and ``bandwidth_hz``
        (the -70 dB band edge), all in Hz, and ``cliff_db`` (the largest drop that persists up
        to Nyquist, dB; see the module table) of the mean power spectrum (Hann windows of 2048
        samples, hop 1024; a shorter clip is zero-padded to one window). NaN for an empty or
        silent clip.
    """
    y = np.asarray(y, dtype=np.float64).ravel()
    nan = {"rms_db": np.nan, "centroid_hz": np.nan, "rolloff95_hz": np.nan, "bandwidth_hz": np.nan, "cliff_db": np.nan}
    if y.size == 0:
        return nan
    rms = float(np.sqrt(np.mean(y * y)))
    if rms == 0.0:
        return nan
    if len(y) < _N_FFT:
        y = np.pad(y, (0, _N_FFT - len(y)))
    n_frames = 1 + (len(y) - _N_FFT) // _HOP
    frames = np.lib.stride_tricks.sliding_window_view(y, _N_FFT)[::_HOP][:n_frames]
    power = (np.abs(np.fft.rfft(frames * np.hanning(_N_FFT), axis=1)) ** 2).mean(axis=0)
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / sample_rate_hz)
    total = power.sum()
    centroid = float((freqs * power).sum() / total)
    rolloff = float(freqs[np.searchsorted(np.cumsum(power), 0.95 * total)])
    edge = float(freqs[np.flatnonzero(power >= power.max() * 10.0 ** (-_EDGE_DB / 10.0))[-1]])
    return {
        "rms_db": 20.0 * np.log10(rms),
        "centroid_hz": centroid,
        "rolloff95_hz": rolloff,
        "bandwidth_hz": edge,
        "cliff_db": _cliff_db(power, freqs),
    }


def _cliff_db(power: np.ndarray, freqs: np.ndarray) -> float:
    """Largest persistent drop (dB) of a mean power spectrum (see the module table).

    For every candidate edge from 1 to 10.5 kHz: the median power of the 500 Hz band just
    below the edge over the largest mean power of any 500 Hz band from the edge up to Nyquist.
    The median ignores a tonal peak below the edge, and the maximum above it makes the drop
    count only when the spectrum stays down all the way to Nyquist, so the fall of power on
    the high side of a strong tone over broadband noise is not a cliff; the band limit of a
    source recorded at a lower rate is.
    """
    df = freqs[1] - freqs[0]
    width = max(1, int(round(_CLIFF_BAND_HZ / df)))
    lo = int(np.searchsorted(freqs, _CLIFF_RANGE_HZ[0]))
    hi = int(np.searchsorted(freqs, _CLIFF_RANGE_HZ[1]))
    edges = np.arange(max(lo, width), min(hi, len(power) - width))
    if not len(edges):
        return float("nan")
    tiny = power.max() * 1e-15
    cum = np.concatenate([[0.0], np.cumsum(power)])
    band_mean = (cum[width:] - cum[:-width]) / width  # band_mean[k]: mean of power[k : k + width]
    loudest_above = np.maximum.accumulate(band_mean[::-1])[::-1]  # max over bands starting at >= k
    windows = np.lib.stride_tricks.sliding_window_view(power, width)
    below = np.median(windows[edges - width], axis=1) + tiny
    above = loudest_above[edges] + tiny
    return float(np.max(10.0 * np.log10(below / above)))


def clip_nuisances(run: Run | str | os.PathLike, *, recompute: bool = False, write: bool = True) -> pd.DataFrame:
    """The nuisances of every ok clip of a run (see the module docstring).

    Read from ``clip_nuisances.parquet`` when it was made from this recording, else computed
    (one decode of each clip) and written.

    Returns
    -------
    DataFrame indexed by clip id, columns :data:`NUISANCES`.
    """
    run = open_run(run)
    key = {
        "path": str(run.path),
        "finished": run.meta.get("finished", run.meta.get("created")),
        "nuisances": list(NUISANCES),
        "n_fft": _N_FFT,
        "hop": _HOP,
        "edge_db": _EDGE_DB,
        "cliff": [_CLIFF_BAND_HZ, *_CLIFF_RANGE_HZ, "median below / loudest band above"],
    }
    if not recompute and run.has_table("clip_nuisances"):
        old = run.read_table("clip_nuisances")
        if old.attrs.get("run") == key:
            return old.set_index("clip_id")
    ok = run.ok_clips
    rows, unreadable = [], []
    for rec in ok.to_dict("records"):
        try:
            rows.append(clip_features(read_clip(rec)))
        except (OSError, SoundNetError, ValueError, RuntimeError) as exc:  # moved or deleted since
            rows.append(dict.fromkeys(NUISANCES, np.nan))
            unreadable.append(f"{rec.get('path')}: {exc}")
    if unreadable:
        warnings.warn(
            f"{len(unreadable)} clip(s) of {str(run.path)!r} could not be read again for the nuisance check "
            f"(their nuisances are NaN), e.g. {unreadable[0]}",
            stacklevel=2,
        )
    table = pd.DataFrame(rows, index=ok.index).drop(columns=["duration_s", "sample_rate_hz"], errors="ignore")
    table.insert(0, "duration_s", ok["duration_s"].astype(np.float64))
    table["sample_rate_hz"] = ok["sample_rate_hz"].astype(np.float64)
    table = table[list(NUISANCES)]
    if write:
        out = table.rename_axis("clip_id").reset_index()
        out.attrs["run"] = key
        run.write_table("clip_nuisances", out)
    return table


def nuisance_report(
    nuisances: pd.DataFrame,
    labels: pd.Series,
    groups: pd.Series | None = None,
    *,
    categories: Sequence[str] | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    flag_at: float = 0.9,
) -> pd.DataFrame:
    """How well each nuisance alone separates each category (one-vs-rest AUROC with an interval).

    Parameters
    ----------
    nuisances : DataFrame indexed by clip id
        From :func:`clip_nuisances` (any numeric columns are used as nuisances).
    labels : pandas.Series
        Each clip's category, indexed by clip id; clips without a label are left out.
    groups : pandas.Series, optional
        Each clip's group (source file, speaker...), indexed by clip id: the interval resamples
        groups (:func:`interp.analysis.resampling.group_bootstrap_auroc`); a clip with a missing
        group is a group of its own.
    categories : sequence of str, optional
        Default: the sorted labels.
    n_boot, confidence, seed
        The bootstrap.
    flag_at : float
        ``flagged`` when ``separation = max(auroc, 1 - auroc)`` reaches it (a descriptive rule
        on the point estimate); ``flagged_ci`` when the lower bound of the separation's
        interval reaches it, i.e. ``auroc_lo >= flag_at`` or ``auroc_hi <= 1 - flag_at``
        (False where the interval is NaN).

    Returns
    -------
    DataFrame with :data:`NUISANCE_COLUMNS`; ``direction`` is ``"higher"`` when the category's
    clips have larger values, ``"lower"`` otherwise; ``auroc_lo``/``auroc_hi`` bound the AUROC
    itself (not the separation) and always contain it; they are NaN when the category or the
    rest has fewer than 2 groups, and have zero width when the nuisance separates every
    resample perfectly (:func:`interp.analysis.resampling.group_bootstrap_auroc`). A nuisance
    constant over the clips gets AUROC 0.5.
    """
    lab = labels.reindex(nuisances.index)
    keep = lab.notna() & (lab.astype(str).str.strip().str.len() > 0)
    nz = nuisances[keep]
    lab = lab[keep].astype(str)
    grp = None if groups is None else groups.reindex(nz.index).to_numpy(dtype=object)
    cats = sorted(lab.unique()) if categories is None else [str(c) for c in categories]
    rows = []
    for nuisance in nz.columns:
        x = nz[nuisance].to_numpy(dtype=np.float64)
        finite = np.isfinite(x)
        for cat in cats:
            pos = (lab.to_numpy() == cat)[finite]
            if not 0 < pos.sum() < len(pos):
                continue
            g = None if grp is None else grp[finite]
            r = group_bootstrap_auroc(x[finite], pos, g, n_boot=n_boot, confidence=confidence, seed=seed).iloc[0]
            auc, lo, hi = float(r["auroc"]), float(r["auroc_lo"]), float(r["auroc_hi"])
            rows.append(
                {
                    "category": cat,
                    "nuisance": str(nuisance),
                    "auroc": auc,
                    "auroc_lo": lo,
                    "auroc_hi": hi,
                    "separation": max(auc, 1.0 - auc),
                    "direction": "higher" if auc >= 0.5 else "lower",
                    "n_pos": int(pos.sum()),
                    "n_rest": int((~pos).sum()),
                    "n_groups_pos": int(r["n_groups_pos"]),
                    "n_groups_rest": int(r["n_groups_rest"]),
                    "flagged": max(auc, 1.0 - auc) >= flag_at,
                    "flagged_ci": bool(lo >= flag_at or hi <= 1.0 - flag_at),
                }
            )
    out = pd.DataFrame(rows, columns=list(NUISANCE_COLUMNS))
    out.attrs["nuisance"] = {
        "n_boot": int(n_boot),
        "confidence": float(confidence),
        "seed": int(seed),
        "flag_at": float(flag_at),
        "grouped": groups is not None,
    }
    return out


def run_nuisance_report(
    run: Run | str | os.PathLike, *, group_column: str | None = "group", write: bool = True, **options: Any
) -> pd.DataFrame:
    """:func:`nuisance_report` of a run's clips, written as ``nuisance.parquet``.

    Parameters
    ----------
    run : Run or path
    group_column : str, optional
        Column of ``clips.parquet`` naming each clip's group; used when present.
    **options
        Passed to :func:`nuisance_report` (``n_boot``, ``flag_at``, ...).
    """
    run = open_run(run)
    ok = run.ok_clips
    groups = ok[group_column] if group_column and group_column in ok.columns else None
    report = nuisance_report(clip_nuisances(run, write=write), ok["label"], groups, **options)
    if write:
        run.write_table("nuisance", report)
    return report


def format_nuisance_warnings(report: pd.DataFrame) -> list[str]:
    """One line per category that a nuisance alone separates (``flagged`` rows), strongest first."""
    lines = []
    flagged = report[report["flagged"]].sort_values(["category", "separation"], ascending=[True, False])
    for cat, rows in flagged.groupby("category", sort=True):
        parts = [
            f"{r.nuisance} ({r.direction}, AUROC {r.auroc:.2f} [{r.auroc_lo:.2f}, {r.auroc_hi:.2f}])"
            for r in rows.itertuples()
        ]
        lines.append(f"{cat}: separated by {', '.join(parts)} alone")
    return lines


def nuisance_strata(nuisances: pd.DataFrame, columns: Sequence[str], *, n_bins: int = 3) -> np.ndarray:
    """Stratum of each clip: the cross of the bins of the named nuisances.

    Per nuisance: a column with at most ``n_bins`` distinct values gets one bin per value; any
    other column is cut into ``n_bins`` quantile bins by the mid-rank of each value (the
    fraction of clips below it plus half of its ties), so that equal values share a bin and a
    value tied over many clips sits in the bin of its middle rank. Unlike quantile edges with
    duplicates dropped (``pandas.qcut(..., duplicates="drop")``, which puts a column 70 % zeros
    into a single bin when ``n_bins`` is 2), a column with two or more distinct values always
    gets two or more bins. A missing (NaN) value is a bin of its own: clips whose nuisance is
    unknown are compared only with one another, never merged into a measured bin nor dropped.

    Parameters
    ----------
    nuisances : DataFrame
    columns : sequence of str
        Nuisances to control for, e.g. ``("duration_s", "rolloff95_hz")``.
    n_bins : int
        Bins per nuisance (at most; fewer with ties or few distinct values).

    Returns
    -------
    np.ndarray of int, shape (n_clips,)
        Codes ``0 .. S-1`` of the strata that occur.
    """
    bad = [c for c in columns if c not in nuisances.columns]
    if bad:
        raise ParameterError(
            f"The 'columns' parameter of nuisance_strata must name nuisances from "
            f"{list(nuisances.columns)}. Got {bad} instead."
        )
    if int(n_bins) < 1:
        raise ParameterError(f"The 'n_bins' parameter of nuisance_strata must be at least 1. Got {n_bins!r} instead.")
    bins = np.zeros((len(nuisances), len(columns)), dtype=np.int64)
    for k, c in enumerate(columns):
        values = pd.to_numeric(nuisances[c], errors="coerce").astype(np.float64)
        known = values.notna().to_numpy()
        b = np.full(len(values), -1, dtype=np.int64)  # -1: the stratum of the missing values
        v = values[known].to_numpy()
        distinct = np.unique(v)
        if len(distinct) <= n_bins:
            b[known] = np.searchsorted(distinct, v)
        else:
            mid = (values[known].rank(method="average").to_numpy() - 0.5) / len(v)  # in (0, 1)
            b[known] = np.minimum((mid * n_bins).astype(np.int64), int(n_bins) - 1)
        bins[:, k] = b
    if not len(columns):
        return np.zeros(len(nuisances), dtype=np.int64)
    _, codes = np.unique(bins, axis=0, return_inverse=True)
    return codes.reshape(-1).astype(np.int64)


def stratified_auroc(x: np.ndarray, pos: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """AUROC of every unit computed within strata and pooled (comparisons across strata dropped).

    Every (positive, negative) pair of clips *in the same stratum* is compared; the pooled AUROC
    is the fraction of such pairs the unit orders right (ties one half), i.e. the strata's
    AUROCs weighted by their number of pairs. Strata with clips of one side only contribute
    nothing. A unit that follows a nuisance only orders pairs within a stratum at chance.

    Parameters
    ----------
    x : array, shape (n_clips, n_units)
    pos : array of bool, shape (n_clips,)
    strata : array of int, shape (n_clips,)

    Returns
    -------
    np.ndarray, shape (n_units,); NaN when no stratum holds both sides.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    pos = np.asarray(pos, dtype=bool)
    strata = np.asarray(strata)
    num = np.zeros(x.shape[1])
    pairs = 0.0
    for s in np.unique(strata):
        m = strata == s
        n1, n0 = int((pos & m).sum()), int((~pos & m).sum())
        if n1 == 0 or n0 == 0:
            continue
        xs = x[m]
        ranks = pd.DataFrame(xs).rank(method="average").to_numpy()
        u1 = ranks[pos[m]].sum(axis=0) - n1 * (n1 + 1) / 2.0
        num += u1
        pairs += n1 * n0
    return num / pairs if pairs else np.full(x.shape[1], np.nan)
