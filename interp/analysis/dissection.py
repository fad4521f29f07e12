"""Temporal dissection: every unit against time-stamped sound events (the NetDissect of sound).

NetDissect (Bau et al. 2017) made unit interpretability a measurement: threshold each unit at a
top quantile of its activations over the dataset and score the overlap (IoU) of its
above-threshold region with annotated concept masks. Here the masks are *time spans*: a unit's
above-threshold frames against the spans of each concept's events, over a corpus with strong
labels (``path, onset_s, offset_s, label``; :mod:`interp.corpus.events`).

The computation streams the corpus twice, every layer at once, in memory independent of its
size (the passes: :mod:`interp.analysis.dissection_stream`):

1. **Threshold.** Each unit's ``quantile`` (default 0.95: its top 5 %) over the *valid* frames
   (:func:`soundnet.geometry.valid_frames`) of a random subset of the clips (a tenth, at least
   64 or all), from a uniform sample of at most ``sample_values`` activations per layer.
2. **Overlap.** (Decoding, the forward passes and the counting run in batches on ``lanes``
   threads.) A frame stands for its hop-centred span (``[centre - hop / 2, centre + hop /
   2)``, :func:`soundnet.geometry.frames_to_time`); it belongs to a concept when its centre lies
   inside one of the concept's events. Per (unit, concept), over every valid frame of the
   corpus: the intersection ``I`` of the unit's above-threshold frames with the concept's, the
   union, ``iou = I / union``, ``precision = I / above``, ``recall = I / concept frames``.

Two nulls answer two questions:

- **Alignment** (``p_time``): does the unit fire at these events at all? Each clip's event spans
  are shifted circularly in time (over its valid frames) by a lag drawn uniformly from the
  clip's lag set: every lag when the clip has at most ``null_lags`` valid frames, else lag 0 and
  ``null_lags - 1`` distinct random lags of its own (a random set that includes the observed
  lag keeps the test exact; :func:`interp.analysis.dissection_stream.clip_lags`). The
  intersection under each lag is counted exactly (differences of prefix sums), so each clip's
  null mean, variance and skewness over its lag set are exact; the clips' lags are
  independent, and the one-sided p is the tail of the corpus total (a sum over clips) from its
  mean, variance and skewness (a normal tail with the first Edgeworth correction). It assumes
  that, under no relation, the unit's firing is as likely at any time of a clip or the events
  are placed uniformly in it. ``iou_null_time`` uses the mean over all lags (exact: above-
  threshold frames x concept frames / valid frames, per clip).
- **Specificity** (``p_label``): does it fire at *this* concept's events more than at other
  events? The concept labels are permuted across the annotated events, within each clip that
  holds events of at least two labels (the others are pooled across clips). The statistic is
  the share of the concept's event frames on which the unit is above threshold; its null mean,
  standard deviation and skewness come from ``n_label_permutations`` permutations, and the
  one-sided p is their normal tail with the first Edgeworth correction.

Each null gets Benjamini-Hochberg q over units x concepts (per layer set, all layers together).
A unit is labelled with a concept (``status = "concept"``) only when both q are below
``q_max``; a unit whose events pass the alignment null but no concept passes specificity is a
detector of *events*, not of a concept (``"events"``); otherwise ``"unlabelled"``.

Also per (unit, concept): the **onset-aligned profile**, the unit's mean activation (not
thresholded) in 50 ms bins from 1 s before to 2 s after each of the concept's onsets.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from interp.analysis import stats
from interp.analysis.dissection_stream import ClipEvents, Group, LayerAccumulator, clip_events, lane_map, thresholds
from soundnet.errors import ParameterError
from soundnet.model import CONV_LAYERS

__all__ = [
    "DISSECTION_COLUMNS",
    "DissectConfig",
    "Dissection",
    "DISSECTION_TABLES",
    "dissect",
    "dissection_labels",
    "format_dissection",
    "run_dissection",
]

#: Columns of ``dissection.parquet``, one row per (layer, unit, concept).
DISSECTION_COLUMNS = (
    "layer",
    "unit",
    "concept",
    "iou",
    "iou_null_time",
    "iou_null_label",
    "p_time",
    "q_time",
    "p_label",
    "q_label",
    "precision",
    "recall",
    "threshold",
    "quantile",
    "n_events",
    "concept_frames",
    "above_frames",
)


@dataclass(frozen=True)
class DissectConfig:
    """Options of :func:`dissect` (stored with the tables).

    Attributes
    ----------
    layers : tuple of str
        Conv layers to dissect (default conv1..conv7).
    quantile : float
        Each unit's threshold: this quantile of its valid-frame activations (0.95: the top 5 %
        of frames are "firing"; NetDissect used 0.995 for image pixels).
    threshold_fraction : float
        Share of the clips (a random subset, at least ``threshold_min_clips``) whose frames set
        the thresholds.
    threshold_min_clips : int
    sample_values : int
        At most this many activations (frames x units) per layer are kept to set the thresholds
        (a uniform sample of frames); bounds the memory of the first pass.
    n_label_permutations : int
        Label permutations of the specificity null.
    null_lags : int
        Circular lags of the alignment null per clip and layer: every lag when the clip has at
        most this many valid frames (conv5..conv7 on 10 s clips), else lag 0 and this many
        minus one distinct lags drawn at random for the clip (conv1..conv4 on 10 s clips).
    profile_window_s : tuple of float
        Onset-aligned profile window, seconds relative to the onset.
    profile_bin_s : float
        Its bin width in seconds.
    min_inside : float
        Valid frames: at least this fraction of the receptive field inside the clip (default
        1: the whole field; the alignment null shifts events circularly, also onto the clip's
        edges, where frames that read some padding respond unlike the others and would make
        the null conservative).
    batch_size : int
        Clips per forward pass (clips of equal length are batched together).
    lanes : int
        Threads that decode and run the model, each single-threaded (as the recorder's lanes),
        while this thread accumulates; the results are taken in corpus order (the tables do not
        depend on it).
    q_max : float
        Both q below this for a concept label.
    seed : int
    """

    layers: tuple[str, ...] = tuple(CONV_LAYERS)
    quantile: float = 0.95
    threshold_fraction: float = 0.1
    threshold_min_clips: int = 64
    sample_values: int = 1_000_000
    n_label_permutations: int = 200
    null_lags: int = 128
    profile_window_s: tuple[float, float] = (-1.0, 2.0)
    profile_bin_s: float = 0.05
    min_inside: float = 1.0
    batch_size: int = 16
    lanes: int = 2
    q_max: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [layer for layer in self.layers if layer not in CONV_LAYERS]
        if bad or not self.layers:
            raise ParameterError(
                f"The 'layers' parameter of DissectConfig must name conv layers from {list(CONV_LAYERS)}. "
                f"Got {list(self.layers)} instead."
            )
        object.__setattr__(self, "layers", tuple(sorted(set(self.layers), key=list(CONV_LAYERS).index)))
        if not 0 < self.quantile < 1:
            raise ParameterError(
                f"The 'quantile' parameter of DissectConfig must be in (0, 1). Got {self.quantile!r} instead."
            )
        if not 0 < self.threshold_fraction <= 1:
            raise ParameterError(
                f"The 'threshold_fraction' parameter of DissectConfig must be in (0, 1]. Got {self.threshold_fraction!r} instead."
            )
        lo, hi = self.profile_window_s
        if not lo < 0 < hi or self.profile_bin_s <= 0:
            raise ParameterError(
                "The 'profile_window_s' parameter of DissectConfig must hold a negative start and a positive end, "
                f"and 'profile_bin_s' must be > 0. Got {self.profile_window_s!r} and {self.profile_bin_s!r} instead."
            )
        for name in ("n_label_permutations", "null_lags", "batch_size", "threshold_min_clips", "sample_values"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(
                    f"The '{name}' parameter of DissectConfig must be >= 1. Got {getattr(self, name)!r} instead."
                )


@dataclass
class Dissection:
    """What :func:`dissect` measured.

    Attributes
    ----------
    table : DataFrame
        One row per (layer, unit, concept), columns :data:`DISSECTION_COLUMNS`.
    profiles : DataFrame
        ``layer, unit, concept, t_s, activation``: the onset-aligned profile (``t_s`` the bin
        centre in seconds from the onset).
    units : DataFrame
        Per unit its best concept and label status (:func:`dissection_labels`).
    config : DissectConfig
    n_clips : int
        Clips dissected (with at least one valid frame in some layer).
    """

    table: pd.DataFrame
    profiles: pd.DataFrame
    units: pd.DataFrame
    config: DissectConfig
    n_clips: int
    meta: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# the whole computation
# ------------------------------------------------------------------------------------------
def dissect(
    model: Any,
    clips: pd.DataFrame,
    events: pd.DataFrame,
    *,
    config: DissectConfig | None = None,
    **options: Any,
) -> Dissection:
    """Dissect every unit of ``config.layers`` against the events (see the module docstring).

    Parameters
    ----------
    model : SoundNet8 (or anything with its ``extract_features(x, layers=...)``)
    clips : DataFrame
        A corpus table (:func:`interp.corpus.corpora.load_corpus`): ``clip_id, path`` and
        optionally ``start_s, end_s, duration_s``.
    events : DataFrame
        ``clip_id, onset_s, offset_s, label``: events in each clip's own time (seconds).
    config : DissectConfig, optional
    **options
        :class:`DissectConfig` fields.

    Returns
    -------
    Dissection
    """
    base = config or DissectConfig()
    cfg = DissectConfig(**(asdict(base) | options)) if options else base
    need = {"clip_id", "onset_s", "offset_s", "label"}
    if not need <= set(events.columns):
        raise ParameterError(
            f"The 'events' parameter of dissect must have columns {sorted(need)}. Got {list(events.columns)} instead."
        )
    ev = events[events["clip_id"].astype(str).isin(set(clips["clip_id"].astype(str)))]
    concepts = sorted(ev["label"].astype(str).unique())
    if not concepts:
        raise ParameterError("The 'events' parameter of dissect holds no event of the clips dissected.")
    per_clip = clip_events(ev, concepts)
    thr = thresholds(model, clips, cfg)
    acc = {layer: LayerAccumulator(layer, thr[layer], len(concepts), cfg) for layer in cfg.layers}
    strata = _label_strata(per_clip)
    n_clips = 0

    def accumulate(_: int, groups: list[Group]) -> tuple[int, dict[str, LayerAccumulator]]:
        part = {layer: acc[layer].empty() for layer in cfg.layers}
        for g in groups:
            evs = [per_clip.get(cid) for cid in g.clip_ids]
            st = [strata.get(cid, -1) for cid in g.clip_ids]
            for layer, a in g.feats.items():
                part[layer].add(a, g.clip_samples, evs, st, g.positions)
        return sum(len(g.clip_ids) for g in groups), part

    for n_job, part in lane_map(model, clips, cfg.layers, cfg.batch_size, accumulate, lanes=cfg.lanes):
        n_clips += n_job
        for layer in cfg.layers:
            acc[layer].merge(part[layer])
    rng = np.random.default_rng(cfg.seed + 1)
    rows, profiles = [], []
    for layer in cfg.layers:
        t, p = _layer_table(acc[layer], concepts, cfg, rng)
        rows.append(t)
        profiles.append(p)
    table = pd.concat(rows, ignore_index=True)
    table["q_time"] = stats.bh_qvalues(table["p_time"].to_numpy())
    table["q_label"] = stats.bh_qvalues(table["p_label"].to_numpy())
    table = table[list(DISSECTION_COLUMNS)]
    table.attrs["dissection"] = asdict(cfg) | {"concepts": concepts}
    return Dissection(
        table,
        pd.concat(profiles, ignore_index=True),
        dissection_labels(table, q_max=cfg.q_max),
        cfg,
        n_clips,
        {"concepts": concepts, "n_events": int(len(ev))},
    )


def _label_strata(per_clip: dict[str, ClipEvents]) -> dict[str, int]:
    """The stratum of each clip's events in the label permutations: its own (a clip with events
    of at least two labels) or the shared stratum -1 (the other clips' events, pooled)."""
    out, s = {}, 0
    for cid, e in per_clip.items():
        if len(np.unique(e.concept)) >= 2:
            out[cid] = s
            s += 1
        else:
            out[cid] = -1
    return out


def _layer_table(
    acc: LayerAccumulator, concepts: list[str], cfg: DissectConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    inter = acc.inter.T  # (u, k)
    u, k = inter.shape
    above, cf = acc.above[:, None], acc.concept_frames[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        union = above + cf - inter
        iou = np.where(union > 0, inter / union, np.nan)
        precision = np.where(above > 0, inter / above, np.nan)
        recall = np.where(cf > 0, inter / cf, np.nan)
        m, sd = acc.null_mean.T, np.sqrt(acc.null_var.T)
        z_time = np.where(sd > 0, (inter - m) / sd, np.where(inter > m, np.inf, -np.inf))
        m_all = acc.null_mean_all.T  # the intersection expected under a uniform lag over all lags
        iou_null_time = m_all / (above + cf - m_all)
        skew = np.where(sd > 0, acc.null_mu3.T / sd**3, 0.0)
    p_time = _edgeworth_sf(z_time, skew)
    p_time[:, cf[0] == 0] = np.nan
    # the specificity null: labels permuted across events within strata
    p_label = np.full((u, k), np.nan)
    iou_null_label = np.full((u, k), np.nan)
    lab = np.concatenate(acc.event_label).astype(np.int64) if acc.event_label else np.zeros(0, np.int64)
    n_events = np.bincount(lab, minlength=k)
    if acc.hits and len(np.unique(lab)) >= 2:
        h = np.concatenate(acc.hits, axis=0).T.astype(np.float64)  # (u, n_ev)
        length = np.concatenate(acc.event_len).astype(np.float64)
        strat = np.concatenate(acc.event_stratum).astype(np.int64)
        onehot = np.eye(k)[lab]  # (n_ev, k)
        obs = (h @ onehot) / np.maximum(length @ onehot, 1.0)
        b = cfg.n_label_permutations
        perm_lab = np.empty((b, len(lab)), dtype=np.int64)
        for s in np.unique(strat):
            members = np.flatnonzero(strat == s)
            keys = rng.random((b, len(members)))
            perm_lab[:, members] = lab[members][np.argsort(keys, axis=1)]
        num, den = _permuted_sums(h, length, perm_lab, k)  # (b, u, k), (b, 1, k)
        null = num / den
        mu, sdl = null.mean(axis=0), null.std(axis=0, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = np.where(sdl > 0, (obs - mu) / sdl, np.where(obs > mu, np.inf, -np.inf))
            skew = np.where(sdl > 0, ((null - mu) ** 3).mean(axis=0) / sdl**3, 0.0)
            i_null = (num.mean(axis=0)) / (above + np.maximum(den[:, 0, :].mean(axis=0), 1.0) - num.mean(axis=0))
        p_label = _edgeworth_sf(z, skew)  # the permutations' skewness too: the plain normal tail was liberal
        p_label[:, n_events == 0] = np.nan
        iou_null_label = i_null
    table = pd.DataFrame(
        {
            "layer": acc.layer,
            "unit": np.repeat(np.arange(u), k).astype(np.int64),
            "concept": np.tile(np.asarray(concepts, dtype=object), u),
            "iou": iou.ravel(),
            "iou_null_time": iou_null_time.ravel(),
            "iou_null_label": iou_null_label.ravel(),
            "p_time": p_time.ravel(),
            "p_label": p_label.ravel(),
            "precision": precision.ravel(),
            "recall": recall.ravel(),
            "threshold": np.repeat(acc.thr.astype(np.float64), k),
            "quantile": cfg.quantile,
            "n_events": np.tile(n_events, u).astype(np.int64),
            "concept_frames": np.tile(acc.concept_frames, u).astype(np.int64),
            "above_frames": np.repeat(acc.above, k).astype(np.int64),
        }
    )
    centres = (acc.edges[:-1] + acc.edges[1:]) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = (acc.prof_sum / acc.prof_n[:, :, None]).transpose(0, 2, 1)  # (k, u, bins)
    profiles = pd.DataFrame(
        {
            "layer": acc.layer,
            "unit": np.tile(np.repeat(np.arange(u), len(centres)), k).astype(np.int64),
            "concept": np.repeat(np.asarray(concepts, dtype=object), u * len(centres)),
            "t_s": np.tile(centres, u * k),
            "activation": prof.ravel(),
        }
    )
    return table, profiles


def _permuted_sums(
    h: np.ndarray, length: np.ndarray, perm_lab: np.ndarray, k: int, *, chunk_values: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray]:
    """Per permutation ``b`` and concept ``c``: the hits (``h``: units x events) and the frames
    (``length``) of the events whose permuted label is ``c``. One matrix product per chunk of
    permutations with their one-hot labels (events x (permutations x concepts)), at most
    ``chunk_values`` one-hot entries at a time.

    Returns
    -------
    num : (b, units, k) and den : (b, 1, k), ``den`` at least 1
    """
    b, n_ev = perm_lab.shape
    step = max(1, chunk_values // max(1, n_ev * k))
    num = np.empty((b, h.shape[0], k))
    den = np.empty((b, 1, k))
    for lo in range(0, b, step):
        p = perm_lab[lo : lo + step]  # (m, n_ev)
        m = len(p)
        oh = np.zeros((n_ev, m * k))
        oh[np.arange(n_ev)[None, :], np.arange(m)[:, None] * k + p] = 1.0
        num[lo : lo + m] = (h @ oh).reshape(h.shape[0], m, k).transpose(1, 0, 2)
        den[lo : lo + m, 0] = np.maximum(length @ oh, 1.0).reshape(m, k)
    return num, den


def _edgeworth_sf(z: np.ndarray, skew: np.ndarray) -> np.ndarray:
    """Upper tail of a standardised statistic with skewness ``skew``: the normal tail with its
    first Edgeworth correction, ``1 - Phi(z) + phi(z) * skew / 6 * (z^2 - 1)``, clipped to
    [0, 1]. A right-skewed statistic (sparse firing against sparse events) has a heavier upper
    tail than the normal one beyond z = 1, where the correction raises p (the normal tail alone
    is liberal for it); where the skewness is zero or negative, p is never below the plain
    normal tail."""
    zf = np.where(np.isfinite(z), z, 0.0)
    base = sps.norm.sf(z)
    corr = base + sps.norm.pdf(zf) * skew / 6.0 * (zf**2 - 1.0)
    out = np.where(np.isfinite(z), np.clip(np.maximum(corr, base * (skew <= 0)), 0.0, 1.0), base)
    return out


def dissection_labels(table: pd.DataFrame, *, q_max: float = 0.05) -> pd.DataFrame:
    """Per unit: its best concept (highest IoU among those passing both nulls, else highest
    IoU) and status: ``concept`` (both q below ``q_max``), ``events`` (some concept passes the
    alignment null but none the specificity null: it fires at events, not at a concept), or
    ``unlabelled``.

    Returns
    -------
    DataFrame ``layer, unit, status, concept, iou, q_time, q_label, n_concepts``
    (``n_concepts``: concepts passing both nulls).
    """
    t = table.assign(
        _both=(table["q_time"] < q_max) & (table["q_label"] < q_max),
        _time=table["q_time"] < q_max,
        _iou=table["iou"].fillna(-1.0),
    )
    t = t.sort_values(["layer", "unit", "_both", "_iou"], ascending=[True, True, False, False], kind="stable")
    best = t.groupby(["layer", "unit"], sort=False).head(1).copy()
    g = t.groupby(["layer", "unit"], sort=False)
    n_both = g["_both"].sum().reindex(pd.MultiIndex.from_frame(best[["layer", "unit"]])).to_numpy()
    any_time = g["_time"].any().reindex(pd.MultiIndex.from_frame(best[["layer", "unit"]])).to_numpy()
    best["status"] = np.where(best["_both"], "concept", np.where(any_time, "events", "unlabelled"))
    best["n_concepts"] = n_both.astype(np.int64)
    order = {name: i for i, name in enumerate(pd.unique(table["layer"]))}
    best = best.assign(_o=best["layer"].map(order)).sort_values(["_o", "unit"], kind="stable")
    return best[["layer", "unit", "status", "concept", "iou", "q_time", "q_label", "n_concepts"]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------
# run level: a corpus or a run directory, an annotation file, tables written
# ------------------------------------------------------------------------------------------
#: The tables :func:`run_dissection` writes.
DISSECTION_TABLES = ("dissection", "dissection_units", "dissection_profiles", "dissection_events")


def run_dissection(
    source: str | os.PathLike,
    events: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    model: Any = None,
    audio_root: str | os.PathLike | None = None,
    config: DissectConfig | None = None,
    **options: Any,
) -> Dissection:
    """Dissect a run's (or a corpus's) clips against an annotation file and write the tables.

    Parameters
    ----------
    source : path
        A run directory (its ok clips are dissected and the tables written into it, where the
        dashboard finds them) or anything :func:`interp.corpus.corpora.load_corpus` reads.
    events : path
        Strong labels (:func:`interp.corpus.events.read_events`: a DCASE-style table, JAMS, or a
        folder of them). Rows it cannot use are reported (a warning naming each) and left out.
    out : path, optional
        Folder of the tables (default: the run directory; required for a corpus).
    model : SoundNet8, optional
        Default: the pretrained model.
    audio_root : path, optional
        Folder the annotation's file names are relative to.
    config : DissectConfig, optional
    **options
        :class:`DissectConfig` fields.

    Returns
    -------
    Dissection
        Also written: ``dissection.parquet`` (:data:`DISSECTION_COLUMNS`),
        ``dissection_units.parquet`` (:func:`dissection_labels`), ``dissection_profiles.parquet``,
        ``dissection_events.parquet`` (the events in each clip's own time: ``clip_id, onset_s,
        offset_s, label``) and ``dissection.json`` (settings, concepts, counts).
    """
    from interp.corpus.corpora import load_corpus
    from interp.corpus.events import events_for_clips, read_events
    from interp.run.store import atomic_write_json, open_run, write_parquet

    path = Path(source)
    if (path / "clips.parquet").is_file() and (path / "run.json").is_file():
        run = open_run(path)
        clips = run.ok_clips.reset_index(drop=True)
        out_dir = Path(out) if out is not None else run.path
    else:
        clips = load_corpus(str(source))
        if out is None:
            raise ParameterError(
                "The 'out' parameter of run_dissection is needed when 'source' is a corpus, not a run."
            )
        out_dir = Path(out)
    table = read_events(events, audio_root=audio_root)
    aligned = events_for_clips(table, clips)
    if model is None:
        from soundnet.model import load_soundnet

        model = load_soundnet()
    res = dissect(_fast(model, config, options), clips, aligned, config=config, **options)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_parquet(out_dir / "dissection.parquet", res.table)
    write_parquet(out_dir / "dissection_units.parquet", res.units)
    write_parquet(out_dir / "dissection_profiles.parquet", res.profiles)
    kept = aligned[aligned["clip_id"].astype(str).isin(set(clips["clip_id"].astype(str)))]
    write_parquet(
        out_dir / "dissection_events.parquet",
        kept[["clip_id", "onset_s", "offset_s", "label"]].reset_index(drop=True),
    )
    atomic_write_json(
        out_dir / "dissection.json",
        {
            "settings": asdict(res.config),
            "concepts": res.meta["concepts"],
            "n_clips": res.n_clips,
            "n_events": res.meta["n_events"],
            "events": str(Path(events).resolve()),
            "events_left_out": len(table.problems),
        },
    )
    return res


def _fast(model: Any, config: DissectConfig | None, options: dict) -> Any:
    """The fast inference path of a plain SoundNet8 (same outputs), else the model itself."""
    from soundnet.fast import fast_model
    from soundnet.model import SoundNet8

    if not isinstance(model, SoundNet8):
        return model
    layers = options.get("layers") or (config or DissectConfig()).layers
    try:
        return fast_model(model, layers=tuple(layers))
    except Exception:  # an unusual build: the plain model is exact too
        return model


def format_dissection(res: Dissection, *, top: int = 3) -> str:
    """The text summary ``soundnet-interp dissect`` prints: per layer the units labelled with a
    concept (or with events only), and per concept its best units."""
    u = res.units
    lines = [
        f"dissected {res.n_clips} clips, {res.meta['n_events']} events, concepts: {', '.join(res.meta['concepts'])}",
        f"(threshold: each unit's {res.config.quantile:g} quantile over valid frames; a concept label needs "
        f"q_time and q_label < {res.config.q_max:g})",
    ]
    for layer, g in u.groupby("layer", sort=False):
        n_c, n_e = int((g["status"] == "concept").sum()), int((g["status"] == "events").sum())
        lines.append(f"  {layer:6s} {n_c:5d} / {len(g):<5d} units with a concept, {n_e} fire at events of any kind")
    t = res.table
    for concept in res.meta["concepts"]:
        best = t[(t["concept"] == concept) & (t["q_time"] < res.config.q_max) & (t["q_label"] < res.config.q_max)]
        best = best.sort_values("iou", ascending=False).head(top)
        shown = ", ".join(
            f"{r.layer}:{r.unit} IoU {r.iou:.2f} (q {max(r.q_time, r.q_label):.1g})" for r in best.itertuples()
        )
        lines.append(f"  {concept}: {shown or 'no unit passes both nulls'}")
    return "\n".join(lines)
