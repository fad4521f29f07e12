"""Per-category ablation effects on two readouts: the heads and a linear probe.

:func:`category_ablation_table` zeroes, for each category, its ``n_units`` most selective units of
one layer (by AUROC, :mod:`interp.analysis.selectivity`) and, as a control, ``n_random`` draws of as many
random units of the same layer, and measures the damage with two readouts:

``heads``
    the category's score read out linearly from the object and place heads
    (:func:`interp.analysis.ablation.category_ablation_effect`: log-odds of a logistic regression on the
    heads' log-probabilities, fitted on the unablated clips, averaged over the category's clips);
``probe``
    the recall of the category by a linear probe on a later layer, trained fold by fold on the
    unablated clips and tested on the held-out clips passed through the ablated model.

``drop`` is always unablated minus ablated: positive when the ablation removed evidence.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp.analysis import ablation as ab
from interp.analysis import linear_probes as lp
from interp.analysis import selectivity as sel
from interp.corpus.corpora import clip_waves
from interp.recording import RecordConfig, summarize_waves
from interp.run.store import Run
from soundnet.errors import ParameterError
from soundnet.model import CONV_LAYERS, SoundNet8

__all__ = ["ABLATION_COLUMNS", "DRAW_COLUMNS", "category_ablation_table"]

#: Columns of the summary table.
ABLATION_COLUMNS = ("category", "measure", "condition", "drop", "drop_sd", "base", "n_draws", "units")
#: Columns of the per-draw table.
DRAW_COLUMNS = ("category", "measure", "condition", "draw", "units", "score", "drop")


def category_ablation_table(
    run: Run,
    model: SoundNet8,
    *,
    layer: str = "conv5",
    probe_layer: str = "conv7",
    n_units: int = 16,
    n_random: int = 5,
    seed: int = 0,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Top-N vs random-N ablations of every category, read out by the heads and by a probe.

    Parameters
    ----------
    run : Run
        A labelled run with ``layer`` recorded (the heads need not be recorded: they are run
        from the clips, tiled to 9.5 s as the recorder does).
    model : SoundNet8
    layer : str
        Conv layer whose units are zeroed.
    probe_layer : str
        Layer the probe reads (``layer`` or a later one).
    n_units : int
        Units zeroed per condition.
    n_random : int
        Random draws of the control.
    seed : int
        Seed of the random draws.
    progress : bool
        Print each category when done.

    Returns
    -------
    table : pandas.DataFrame
        :data:`ABLATION_COLUMNS`, one row per (category, measure, condition): mean ``drop`` over
        draws, its ``drop_sd`` (random only), the unablated ``base`` score (log-odds for the heads,
        recall for the probe), ``n_draws`` and the top ``units``.
    draws : pandas.DataFrame
        :data:`DRAW_COLUMNS`, one row per ablation.
    """
    if (
        layer not in CONV_LAYERS
        or probe_layer not in CONV_LAYERS
        or CONV_LAYERS.index(probe_layer) < CONV_LAYERS.index(layer)
    ):
        raise ParameterError(
            f"category_ablation_table needs conv layers with probe_layer at or after layer. "
            f"Got layer={layer!r}, probe_layer={probe_layer!r} instead."
        )
    clips = run.ok_clips
    labels = clips["label"].fillna("").astype(str).to_numpy()
    cats = sorted(c for c in set(labels) if c and (labels == c).sum() >= 2)
    stats = sel.run_selectivity(run)  # every layer: the table other studies of the run share

    # heads: one runner caches the ablated layer's input for all clips
    runner = ab.HeadRunner.for_run(run, model, layer=layer)

    # probe: trained once per fold on unablated clips, tested on ablated ones
    config = RecordConfig.from_meta(run.meta)
    waves = clip_waves(clips)

    def features() -> np.ndarray:
        return summarize_waves(
            model, waves, layers=(probe_layer,), stats=("mean",), config=config, fast=False, heads_short="none"
        )[probe_layer]["mean"]

    def recall(pred: np.ndarray, cat: str) -> float:
        return float((pred[labels == cat] == cat).mean())

    splits, _ = lp.probe_folds(
        labels, clips["fold"].to_numpy(), groups=clips["group"].to_numpy() if "group" in clips.columns else None
    )
    base_features = features()
    models = lp.fit_folds(base_features, labels, splits)
    base_pred = lp.predict_folds(models, splits, base_features)
    predictions: dict[tuple[int, ...], np.ndarray] = {}  # the random draws repeat across categories

    def ablated_pred(units: list[int]) -> np.ndarray:
        key = tuple(sorted(units))
        if key not in predictions:
            with ab.ablate(model, {layer: list(key)}):
                predictions[key] = lp.predict_folds(models, splits, features())
        return predictions[key]

    rows, draws = [], []
    with lp.single_blas_thread():  # the heads readout is a logistic regression too
        for cat in cats:
            top = sel.rank_table(stats, cat, metric="auroc", layer=layer, top=n_units)["unit"].astype(int).tolist()
            eff = ab.category_ablation_effect(
                run, cat, layer, units=top, n_random=n_random, runner=runner, model=model, seed=seed
            )
            base_recall = recall(base_pred, cat)
            mine = []
            for d in eff.itertuples():
                mine.append((cat, "heads", d.condition, int(d.draw), list(d.units), float(d.score), float(d.drop)))
                r = recall(ablated_pred([int(u) for u in d.units]), cat)
                mine.append((cat, "probe", d.condition, int(d.draw), list(d.units), r, base_recall - r))
            for measure, base in (("heads", eff.attrs["base_score"]), ("probe", base_recall)):
                for cond in ("top", "random"):
                    g = [x for x in mine if x[1] == measure and x[2] == cond]
                    dr = np.array([x[6] for x in g])
                    rows.append(
                        (
                            cat,
                            measure,
                            cond,
                            float(dr.mean()),
                            float(dr.std(ddof=1)) if len(dr) > 1 else np.nan,
                            float(base),
                            len(dr),
                            g[0][4] if cond == "top" else [],
                        )
                    )
            draws += mine
            if progress:
                print(f"  {cat}", flush=True)
    return pd.DataFrame(rows, columns=list(ABLATION_COLUMNS)), pd.DataFrame(draws, columns=list(DRAW_COLUMNS))
