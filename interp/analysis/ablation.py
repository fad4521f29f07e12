"""Zero units and measure what happens to SoundNet's outputs.

- :func:`ablate` is a context manager that zeroes chosen units of chosen layers with forward hooks
  that remove themselves on exit;
- :class:`HeadRunner` caches, for a set of clips, the input of one layer so that many ablations of
  that layer's units cost only the forward pass from that layer on;
- :func:`unit_output_effects` lists the object and place classes whose clip-level probability
  drops most when a unit is zeroed (the classes it promotes);
- :func:`category_ablation_effect` is the causal check of a selectivity ranking: zero a
  category's top units and compare the drop of the category's score (a linear probe on conv7 or
  on the heads' log-probabilities, :class:`CategoryReadout`) with the drop caused by as many
  random units of the same layer.

Clips are fed to the heads the way the recorder did (``heads_short`` of the run, ``tile`` by
default: clips shorter than 9.5 s are tiled to one conv8 frame), so the unablated probabilities
equal the run's ``prob`` tables.

Examples
--------
>>> with ablate(model, {"conv7": [12, 345]}):
...     objects, places = model(x)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from interp.analysis.selectivity import rank_table, run_selectivity
from interp.corpus.corpora import read_clip
from interp.recording import RecordConfig, head_waveform, summary_frames
from interp.run.store import Run, open_run
from soundnet.audio import INPUT_SCALE
from soundnet.errors import ParameterError
from soundnet.labels import head_labels
from soundnet.model import CONV_LAYERS, HEAD_LAYERS, LAYERS, SPEC_BY_NAME, SoundNet8, load_soundnet
from soundnet.options import Edge, Metric, MetricAlias, Readout, check_option, choices

__all__ = [
    "ablate",
    "unit_means",
    "HeadRunner",
    "run_clip_waves",
    "unit_output_effects",
    "READOUTS",
    "CategoryReadout",
    "fit_category_readout",
    "category_ablation_effect",
]


def _hook_target(model: SoundNet8, layer: str) -> nn.Module:
    """The module whose output is the layer's features: the block's last module.

    Hooking the last module (ReLU, max-pool or, for the heads, the conv) rather than the block
    makes the hook fire both for ``model(x)`` and for :meth:`SoundNet8.run_block`, which runs a
    pooled block in two pieces.
    """
    block = getattr(model, layer, None)
    if block is None:
        raise ParameterError(f"The model has no layer {layer!r}.")
    if isinstance(block, nn.Sequential) and len(block):
        return block[-1]
    return block


def _check_units(units: Mapping[str, Iterable[int]]) -> dict[str, list[int]]:
    if not isinstance(units, Mapping):
        raise ParameterError(
            f"The 'units' parameter of ablate must be a mapping {{layer: [unit, ...]}}. "
            f"Got {type(units).__name__} instead."
        )
    out: dict[str, list[int]] = {}
    for layer, idx in units.items():
        if layer not in SPEC_BY_NAME:
            raise ParameterError(
                f"The 'units' parameter of ablate must use layer names from {list(LAYERS)}. Got {layer!r} instead."
            )
        n = SPEC_BY_NAME[layer].out_channels
        lst = sorted({int(u) for u in idx})
        bad = [u for u in lst if not 0 <= u < n]
        if bad:
            raise ParameterError(f"The units of {layer} passed to ablate must be in [0, {n - 1}]. Got {bad} instead.")
        out[layer] = lst
    return out


@contextmanager
def ablate(
    model: SoundNet8, units: Mapping[str, Iterable[int]], *, values: Mapping[str, np.ndarray] | None = None
) -> Iterator[SoundNet8]:
    """Zero units of a model (or set them to fixed values) while the ``with`` block runs.

    Parameters
    ----------
    model : SoundNet8
    units : mapping of str to iterable of int
        ``{layer: [unit, ...]}``; units numbered from 0. The units' outputs (after ReLU and
        pooling, i.e. what the next layer sees) are set to 0 for every frame.
    values : mapping of str to np.ndarray, optional
        ``{layer: fill}`` with one value per unit of the layer (shape ``(n_units,)``, in the
        layer's activation units): an ablated unit takes ``fill[unit]`` at every frame instead
        of 0 (mean-ablation with :func:`unit_means`). Layers not in ``values`` are zeroed.

    Yields
    ------
    The model. The hooks are removed on exit, also when the block raises.
    """
    plan = _check_units(units)
    fills = {}
    for layer, v in (values or {}).items():
        arr = np.asarray(v, dtype=np.float32)
        n = SPEC_BY_NAME[layer].out_channels if layer in SPEC_BY_NAME else -1
        if arr.shape != (n,) or not np.isfinite(arr).all():
            raise ParameterError(
                f"The 'values' parameter of ablate must give {layer} one finite value per unit ({n}). "
                f"Got shape {arr.shape} instead."
            )
        fills[layer] = torch.from_numpy(arr)
    handles = []
    try:
        for layer, idx in plan.items():
            if not idx:
                continue
            index = torch.as_tensor(idx, dtype=torch.long)
            fill = fills.get(layer)

            def hook(module, inputs, out, index=index, fill=fill):
                if fill is None:
                    return out.index_fill(1, index.to(out.device), 0.0)
                out = out.clone()
                out[:, index] = fill[index].to(out)[None, :, None]
                return out

            handles.append(_hook_target(model, layer).register_forward_hook(hook))
        yield model
    finally:
        for h in handles:
            h.remove()


def unit_means(run: Run | str | os.PathLike, layer: str) -> np.ndarray:
    """Each unit's mean over all valid frames of a run's ok clips (the fill of mean-ablation).

    The per-clip ``vmean`` (mean over the clip's valid frames) weighted by the clip's number of
    valid frames (``valid_frames_<layer>`` of ``clips.parquet``): the mean over the corpus's
    valid frames, every frame counted once. Clips without a valid frame in ``layer`` add nothing.

    Returns
    -------
    np.ndarray, shape (n_units,), float64, in the layer's activation units (after ReLU and pooling)
    """
    run = open_run(run)
    col = f"valid_frames_{layer}"
    ok = run.ok_clips
    if col not in ok.columns:
        raise ParameterError(
            f"The run {str(run.path)!r} has no {col!r} column: record it again to get the valid-frame counts "
            "that mean-ablation needs (or ablate with zeros)."
        )
    w = ok[col].fillna(0).to_numpy(np.float64)
    acts = run.activations(layer, "vmean").reindex(ok.index).to_numpy(np.float64)
    use = (w > 0) & np.isfinite(acts).all(axis=1)
    if not use.any():
        raise ParameterError(f"No clip of {str(run.path)!r} has a valid {layer} frame: no mean to ablate with.")
    return (acts[use] * w[use, None]).sum(axis=0) / w[use].sum()


# ------------------------------------------------------------------------------------------
# heads on a fixed set of clips, from a cached layer input
# ------------------------------------------------------------------------------------------
def _layer_input(model: SoundNet8, x: torch.Tensor, layer: str) -> torch.Tensor:
    """Output of the block before ``layer`` (the waveform for conv1; conv7 for the heads)."""
    stop = CONV_LAYERS.index(layer) if layer in CONV_LAYERS else len(CONV_LAYERS)
    h = x
    for name in CONV_LAYERS[:stop]:
        h = model.run_block(name, h)
    return h


#: Unit sets whose outputs a :class:`HeadRunner` remembers.
_MEMO_SIZE = 16


class HeadRunner:
    """Clip-level head probabilities of a fixed set of clips, under ablations of one layer.

    The input of ``layer`` is computed once per clip (clips of equal length are batched), so
    each :meth:`probabilities` call only runs ``layer`` .. conv7 and the heads.

    Parameters
    ----------
    model : SoundNet8
    waves : list of np.ndarray
        Mono float32 waveforms at 22050 Hz in [-1, 1] (not scaled), already brought to the
        length the heads see (see :func:`run_clip_waves`).
    layer : str
        The layer whose units will be ablated.
    batch_size : int
    edge : {"drop", "keep"}
        Which frames enter the clip-level outputs, as the recorder's ``edge``
        (:func:`interp.recording.summary_frames`); :meth:`for_run` takes the run's.

    Notes
    -----
    The runner assumes that ``model`` is not changed (or ablated from outside) while it is used:
    it remembers recent outputs by unit set.
    """

    @classmethod
    def for_run(
        cls, run: Run, model: SoundNet8, *, layer: str, clip_ids: Iterable[str] | None = None, batch_size: int = 16
    ) -> HeadRunner:
        """A runner over a run's ok clips (or ``clip_ids``), as its heads saw them
        (:func:`run_clip_waves`), counting frames with the run's ``edge``."""
        _, waves = run_clip_waves(run, clip_ids)
        return cls(model, waves, layer=layer, batch_size=batch_size, edge=RecordConfig.from_meta(run.meta).edge)

    def __init__(
        self, model: SoundNet8, waves: list[np.ndarray], *, layer: str, batch_size: int = 16, edge: Edge = "drop"
    ) -> None:
        check_option("layer", layer, LAYERS, where="HeadRunner")
        self.model = model
        self.layer = layer
        self.edge = edge
        self.n_clips = len(waves)
        self._memo: dict[tuple[int, ...], dict[str, np.ndarray]] = {}  # recent outputs by unit set
        lengths = np.asarray([len(w) for w in waves])
        self._groups: list[tuple[np.ndarray, torch.Tensor, int]] = []
        with torch.inference_mode():
            for n in np.unique(lengths):
                idx = np.flatnonzero(lengths == n)
                for i in range(0, len(idx), batch_size):
                    part = idx[i : i + batch_size]
                    x = (
                        torch.from_numpy(np.stack([waves[j] for j in part]).astype(np.float32)[:, None, :])
                        * INPUT_SCALE
                    )
                    self._groups.append((part, _layer_input(model, x, layer), int(n)))

    def outputs(self, units: Iterable[int] | None = None) -> dict[str, np.ndarray]:
        """Clip-level outputs with ``units`` of the runner's layer zeroed.

        Parameters
        ----------
        units : iterable of int, optional
            None or empty: the unablated model.

        Returns
        -------
        dict of float64 arrays
            ``"conv8"`` (n_clips, 1000) and ``"conv8_2"`` (n_clips, 401): clip-level
            log-probabilities, ``log(mean over frames of the per-frame softmax)`` computed with
            log-sum-exp, so they stay finite where a probability underflows; only the frames the
            recorder counts enter (:func:`interp.recording.summary_frames`); NaN rows for clips too
            short for a head frame. ``"conv7"`` (n_clips, 1024): conv7's mean over its counted
            frames. The last :data:`_MEMO_SIZE` unit sets are remembered (the random control
            draws repeat across categories), and copies returned.
        """
        key = tuple(sorted({int(u) for u in units})) if units is not None else ()
        if key not in self._memo:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.pop(next(iter(self._memo)))
            self._memo[key] = self._outputs(list(key))
        return {name: v.copy() for name, v in self._memo[key].items()}

    def _outputs(self, chosen: list[int]) -> dict[str, np.ndarray]:
        out = {h: np.full((self.n_clips, SPEC_BY_NAME[h].out_channels), np.nan) for h in HEAD_LAYERS}
        out["conv7"] = np.full((self.n_clips, SPEC_BY_NAME["conv7"].out_channels), np.nan)
        plan = {self.layer: chosen} if chosen else {}
        start = CONV_LAYERS.index(self.layer) if self.layer in CONV_LAYERS else len(CONV_LAYERS)
        with ablate(self.model, plan), torch.inference_mode():
            for part, h, n_samples in self._groups:
                for name in CONV_LAYERS[start:]:
                    h = self.model.run_block(name, h)
                t7 = summary_frames(n_samples, "conv7", edge=self.edge)  # as the recorder counts frames
                if t7:
                    out["conv7"][part] = h[..., :t7].double().mean(dim=-1).cpu().numpy()
                for head in HEAD_LAYERS:
                    t = summary_frames(n_samples, head, edge=self.edge)
                    logits = self.model.run_block(head, h)[..., :t]
                    if t:
                        lsm = torch.log_softmax(logits.double(), dim=1)
                        out[head][part] = (torch.logsumexp(lsm, dim=2) - np.log(t)).cpu().numpy()
        return out

    def log_probabilities(self, units: Iterable[int] | None = None) -> dict[str, np.ndarray]:
        """The heads' clip-level log-probabilities of :meth:`outputs`: ``{"conv8": ..., "conv8_2": ...}``."""
        res = self.outputs(units)
        return {h: res[h] for h in HEAD_LAYERS}

    def probabilities(self, units: Iterable[int] | None = None) -> dict[str, np.ndarray]:
        """Clip-level probabilities (mean softmax over frames), ``exp`` of :meth:`log_probabilities`."""
        return {h: np.exp(v) for h, v in self.log_probabilities(units).items()}


def run_clip_waves(run: Run, clip_ids: Iterable[str] | None = None) -> tuple[list[str], list[np.ndarray]]:
    """Decode a run's clips as its heads saw them (:func:`interp.recording.head_waveform` with the
    run's ``heads_short``: a clip without a clean head frame is tiled to 20 s).

    Returns
    -------
    clip_ids : list of str
    waves : list of np.ndarray, mono float32 at 22050 Hz in [-1, 1]
    """
    ok = run.ok_clips
    ids = list(ok.index) if clip_ids is None else [str(c) for c in clip_ids]
    missing = [c for c in ids if c not in ok.index]
    if missing:
        raise ParameterError(f"Clips {missing[:5]} are not ok clips of {str(run.path)!r}.")
    policy = RecordConfig.from_meta(run.meta).heads_short
    waves = [head_waveform(read_clip(ok.loc[c].to_dict()), heads_short=policy) for c in ids]
    return ids, waves


def _model_for(run: Run, model: SoundNet8 | None) -> SoundNet8:
    if model is not None:
        return model

    path = run.meta.get("weights_path")
    return load_soundnet(path if path and os.path.isfile(path) else None)


def unit_output_effects(
    run: Run | str | os.PathLike,
    layer: str,
    unit: int | Iterable[int],
    *,
    model: SoundNet8 | None = None,
    clips: Iterable[str] | None = None,
    top: int = 5,
) -> pd.DataFrame:
    """The head classes a unit promotes: the largest drops of log-probability when it is zeroed.

    Parameters
    ----------
    run : Run or path
    layer : str
    unit : int or iterable of int
        One unit, or a group zeroed together.
    model : SoundNet8, optional
        Default: loaded from the run's weights.
    clips : iterable of str, optional
        Clip ids to average over (default: all ok clips of the run; the unit's top clips, where
        it is active, are a cheap and telling choice).
    top : int
        Classes kept per head.

    Returns
    -------
    DataFrame ``head, rank, class_index, class_name, delta_logp, delta, base``
        ``delta_logp``: mean over clips of the change (ablated - unablated) of the clip-level
        log-probability, most negative first (the classes the unit pushes up; ranking by it is
        ranking by the change of the class logit relative to the others); ``delta``: mean change
        of the probability itself; ``base``: mean unablated probability.
    """
    run = open_run(run)
    units = [int(unit)] if isinstance(unit, (int, np.integer)) else [int(u) for u in unit]
    _check_units({layer: units})
    model = _model_for(run, model)
    runner = HeadRunner.for_run(run, model, layer=layer, clip_ids=clips)
    base, abl = runner.log_probabilities(), runner.log_probabilities(units)
    rows = []
    for head in HEAD_LAYERS:
        dl = np.nanmean(abl[head] - base[head], axis=0)
        dp = np.nanmean(np.exp(abl[head]) - np.exp(base[head]), axis=0)
        b = np.nanmean(np.exp(base[head]), axis=0)
        names = head_labels(head)
        order = np.argsort(dl, kind="stable")[:top]
        rows += [(head, r, int(i), names[i], float(dl[i]), float(dp[i]), float(b[i])) for r, i in enumerate(order)]
    return pd.DataFrame(rows, columns=["head", "rank", "class_index", "class_name", "delta_logp", "delta", "base"])


# ------------------------------------------------------------------------------------------
# a category's score read out from the heads, and the causal check of a ranking
# ------------------------------------------------------------------------------------------
READOUTS: tuple[Readout, ...] = choices(Readout)


class CategoryReadout:
    """A linear probe for one category on clip-level outputs of :meth:`HeadRunner.outputs`.

    Features: ``"conv7"``, conv7's mean over frames (1024); or ``"heads"``, the 1000 object and
    401 place log-probabilities side by side (log-probabilities: small probabilities differ
    by orders of magnitude, which a linear readout sees better on the log scale).
    Standardised, then a one-vs-rest L2 logistic regression (scikit-learn, balanced class
    weights). The score of a clip is the probe's log-odds for the category.

    Parameters
    ----------
    category : str
    features : {"conv7", "heads"}
    C : float
        Inverse regularisation strength.

    Attributes
    ----------
    pipeline_ : sklearn Pipeline (after :meth:`fit`)
    """

    def __init__(self, category: str, *, features: Readout = "conv7", C: float = 0.1) -> None:
        check_option("features", features, Readout, where="CategoryReadout")
        self.category = category
        self.features = features
        self.C = C

    def matrix(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """The probe's input ``(n_clips, n_features)`` from :meth:`HeadRunner.outputs`."""
        if self.features == "conv7":
            return np.asarray(outputs["conv7"], dtype=np.float64)
        return np.concatenate([np.asarray(outputs[h], dtype=np.float64) for h in HEAD_LAYERS], axis=1)

    def fit(self, outputs: Mapping[str, np.ndarray], labels) -> CategoryReadout:
        """Fit on :meth:`HeadRunner.outputs` of some clips and their labels ``(n_clips,)``."""
        # scikit-learn is imported where a readout is fitted: it would add 0.5 s (python -X importtime)
        # to the import of every module that reaches this one (interp.report.cards: the CLI's rank and card)
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        y = np.asarray(labels).astype(str) == self.category
        if y.all() or not y.any():
            raise ParameterError(
                f"CategoryReadout needs clips in and out of {self.category!r}. Got {int(y.sum())} of {len(y)} in it."
            )
        self.pipeline_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, class_weight="balanced", max_iter=5000)
        )
        self.pipeline_.fit(self.matrix(outputs), y)
        return self

    def score(self, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Log-odds of the category for each clip, shape (n_clips,)."""
        return self.pipeline_.decision_function(self.matrix(outputs))


def fit_category_readout(
    run: Run | str | os.PathLike, category: str, runner: HeadRunner, *, features: Readout = "conv7", C: float = 0.1
) -> CategoryReadout:
    """Fit :class:`CategoryReadout` on the unablated outputs of all ok clips of a run.

    ``runner`` is a :class:`HeadRunner` over all ok clips in ``run.ok_clips`` order (any layer).
    """
    run = open_run(run)
    res = runner.outputs()
    lab = run.labels.astype(str).to_numpy()
    ro = CategoryReadout(category, features=features, C=C)
    ok = np.isfinite(ro.matrix(res)).all(axis=1)
    return ro.fit({k: v[ok] for k, v in res.items()}, lab[ok])


def category_ablation_effect(
    run: Run | str | os.PathLike,
    category: str,
    layer: str,
    *,
    n_units: int = 20,
    n_random: int = 10,
    metric: Metric | MetricAlias = "auroc",
    units: Iterable[int] | None = None,
    readout: Literal["auto"] | Readout | CategoryReadout = "auto",
    model: SoundNet8 | None = None,
    runner: HeadRunner | None = None,
    seed: int = 0,
    **selectivity_options,
) -> pd.DataFrame:
    """Zero a category's top units of a layer vs as many random units; how much does its score drop?

    The score of a clip is a linear probe's log-odds for the category (:class:`CategoryReadout`,
    fitted on the unablated clips of the run), averaged over the category's clips;
    ``drop = base - ablated`` (positive: the ablation removed evidence for the category).

    Parameters
    ----------
    run : Run or path
    category : str
    layer : str
        Layer whose units are zeroed.
    n_units : int
        Units zeroed per condition.
    n_random : int
        Random draws (units drawn uniformly from the whole layer, without replacement; the same
        draws for every category with the same ``seed``).
    metric : str
        Ranking metric for the top units (see :func:`interp.analysis.selectivity.rank_table`).
    units : iterable of int, optional
        The "top" units to use instead of the ranking.
    readout : {"auto", "conv7", "heads"} or CategoryReadout
        The probe's features: conv7 (mean over frames; for layers before conv7), the heads'
        log-probabilities, or a fitted probe. ``auto``: ``conv7`` for conv1..conv6, ``heads``
        for conv7 and the heads (a probe on the ablated layer itself would be circular).
    model, runner : optional
        Reuse a loaded model or a :class:`HeadRunner` of ``layer`` over all ok clips of the run
        (in ``run.ok_clips`` order).
    seed : int
    **selectivity_options
        Passed to :func:`interp.analysis.selectivity.run_selectivity`.

    Returns
    -------
    DataFrame ``condition`` ("top" or "random"), ``draw``, ``units`` (list), ``score``, ``drop``;
    ``df.attrs`` holds ``base_score`` (the unablated mean score) and ``readout``.
    """
    run = open_run(run)
    n_layer = run.n_units(layer)
    if units is None:
        sel = run_selectivity(run, **selectivity_options)
        units = rank_table(sel, category, metric=metric, layer=layer, top=n_units)["unit"].astype(int).tolist()
    units = [int(u) for u in units]
    _check_units({layer: units})
    if runner is None:
        runner = HeadRunner.for_run(run, _model_for(run, model), layer=layer)
    if runner.layer != layer or runner.n_clips != len(run.ok_clips):
        raise ParameterError(
            "The 'runner' parameter of category_ablation_effect must be a HeadRunner of the same "
            "layer over all ok clips of the run."
        )
    if isinstance(readout, str):
        check_option("readout", readout, ("auto", *READOUTS), where="category_ablation_effect")
        features: Readout = ("conv7" if layer in CONV_LAYERS[:-1] else "heads") if readout == "auto" else readout
        readout = fit_category_readout(run, category, runner, features=features)
    pos = (run.labels.astype(str) == category).to_numpy()

    def score(us):
        return float(readout.score({k: v[pos] for k, v in runner.outputs(us).items()}).mean())

    base = score(None)
    rng = np.random.default_rng(seed)
    plans = [("top", 0, units)] + [
        ("random", d, sorted(rng.choice(n_layer, size=len(units), replace=False).tolist())) for d in range(n_random)
    ]
    rows = []
    for cond, draw, us in plans:
        s = score(us)
        rows.append((cond, draw, us, s, base - s))
    out = pd.DataFrame(rows, columns=["condition", "draw", "units", "score", "drop"])
    out.attrs["base_score"] = base
    out.attrs["readout"] = readout.features
    return out
