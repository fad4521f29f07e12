"""Causal effects of category-selective units, cross-fitted and against matched random units.

:func:`causal_effects` asks, for every category A of a labelled run: when A's most selective
units of one layer are ablated, does the network lose A more than when as many random units
*of the same activation strength* are ablated, and does it lose A more than other categories?

1. **Folds** (:func:`interp.analysis.linear_probes.probe_folds`, groups kept whole). In each
   fold the top units of A are chosen by AUROC on the training clips only
   (:func:`interp.analysis.effects.fold_top_units`), the readouts are fitted on the training
   clips only, and every effect is measured on the held-out clips: no clip both chooses the
   units and measures their effect (cross-fitting). Each clip is held out once, so the effects
   cover every clip.
2. **Ablation**: ``mean`` (default) sets a unit's output to its mean over the corpus's valid
   frames as the network sees them here (clips tiled to 20 s for the heads:
   :meth:`interp.analysis.ablation_runner.AblationRunner.unit_means`; the untiled clips' valid
   frames, :func:`interp.analysis.ablation.unit_means`, give some units a mean several times
   larger, so that "ablation" would raise them on most clips), which removes the information the unit
   carries without pushing the next layer into a state it never saw; ``zero`` sets it to 0.
3. **Readouts** (``measure``): the log-probability of the clip's category under a multinomial
   logistic regression (scikit-learn, standardised inputs, balanced classes) on ``heads``
   (the object and place heads' 1,401 clip-level log-probabilities) or on ``probe`` (the mean
   of a later conv layer, default conv7). ``drop`` = unablated - ablated, in nats, averaged over
   clips: positive when the ablation removed evidence for the category.
4. **Control**: ``n_random`` (default 500) sets of units matched to the top units on activation
   strength (:func:`interp.analysis.effects.matched_random_units`), drawn per fold;
   ``p = (1 + #{draws with drop >= top's drop}) / (n_random + 1)``; ``q``: Benjamini-Hochberg
   across categories (per measure).
5. **Intervals**: percentile intervals of the drops from a bootstrap over groups of the
   category's clips (:func:`interp.analysis.effects.group_bootstrap_mean`).
6. **Specificity**: A's top units ablated, the drop measured on the clips of every category B.
7. **Dose-response**: the top 1, 2, 4, 8, ... units ablated, with matched random sets at each dose.

The costly part, thousands of ablations, runs through
:class:`interp.analysis.ablation_runner.AblationRunner` (one pass up to the ablated layer, then
only the layers above it, many ablations per batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from interp.analysis import effects as fx
from interp.analysis import linear_probes as lp
from interp.analysis import stats
from interp.analysis.ablation_runner import AblationRunner
from interp.analysis.outputs import DEFAULT_STAT
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.model import CONV_LAYERS, SoundNet8
from soundnet.options import ClipStat

__all__ = [
    "MEASURES",
    "EFFECT_COLUMNS",
    "ABLATION_COLUMNS",
    "DRAW_COLUMNS",
    "SPECIFICITY_COLUMNS",
    "DOSE_COLUMNS",
    "UNIT_COLUMNS",
    "causal_effects",
    "ablation_summary",
    "category_ablation_table",
]

Measure = Literal["heads", "probe"]
MEASURES: tuple[Measure, ...] = ("heads", "probe")
#: One row per (category, measure): the top units' drop against matched random units.
EFFECT_COLUMNS = (
    "category",
    "measure",
    "n_units",
    "drop",
    "ci_low",
    "ci_high",
    "random_drop",
    "random_sd",
    "excess",
    "excess_ci_low",
    "excess_ci_high",
    "p",
    "q",
    "n_draws",
    "n_clips",
    "n_groups",
    "base",
    "auroc_train",
    "strength_top",
    "strength_random",
)
#: The study's summary: one row per (category, measure, condition).
ABLATION_COLUMNS = (
    "category",
    "measure",
    "condition",
    "drop",
    "drop_sd",
    "base",
    "n_draws",
    "units",
    "ci_low",
    "ci_high",
    "p",
    "q",
)
#: One row per ablation of the control: ``units`` lists each fold's units.
DRAW_COLUMNS = ("category", "measure", "condition", "draw", "units", "score", "drop")
#: The category x category table: A's top units ablated, the drop on B's clips.
SPECIFICITY_COLUMNS = ("ablated", "measured", "measure", "drop", "ci_low", "ci_high", "n_clips")
#: Drop against the number of units ablated.
DOSE_COLUMNS = ("category", "measure", "n_ablated", "condition", "drop", "low", "high", "n_draws")
#: The units chosen in each fold.
UNIT_COLUMNS = ("category", "fold", "rank", "unit", "auroc_train", "strength")


def _default_doses(n_layer: int, n_units: int) -> list[int]:
    top = max(int(n_units), 1) * 4
    return [d for d in (2**k for k in range(12)) if d <= min(top, n_layer // 4)] or [1]


def causal_effects(
    run: Run,
    model: SoundNet8,
    *,
    layer: str = "conv5",
    probe_layer: str = "conv7",
    measures: Sequence[Measure] = MEASURES,
    n_units: int = 16,
    n_random: int = 500,
    ablation: Literal["mean", "zero"] = "mean",
    doses: Sequence[int] | None = None,
    n_dose_random: int = 20,
    n_bins: int = 10,
    stat: ClipStat = DEFAULT_STAT,
    n_boot: int = 1000,
    confidence: float = 0.95,
    C: float = 0.1,
    categories: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, pd.DataFrame]:
    """Cross-fitted causal effects of each category's top units (see the module docstring).

    Parameters
    ----------
    run : Run
        A labelled run with ``layer`` recorded in ``stat`` (the heads need not be recorded: the
        clips are run again, tiled to 9.5 s as the recorder does).
    model : SoundNet8
        The model whose units are ablated (a changed copy of SoundNet for planted checks).
    layer : str
        Conv layer whose units are ablated.
    probe_layer : str
        Layer the ``probe`` readout reads (its mean over counted frames), after ``layer``.
    measures : sequence of {"heads", "probe"}
    n_units : int
        Top units ablated per category (and per random set).
    n_random : int
        Matched random sets per category (per fold); the smallest p is ``1 / (n_random + 1)``.
    ablation : {"mean", "zero"}
    doses : sequence of int, optional
        Numbers of top units for the dose-response (default 1, 2, 4, ... up to ``4 * n_units``
        and a quarter of the layer). Empty: no dose-response.
    n_dose_random : int
        Matched random sets per dose.
    n_bins : int
        Strength bins of the matching.
    stat : str
        Per-clip statistic the units are chosen and matched on (default ``vmean``).
    n_boot, confidence
        Group bootstrap of the intervals.
    C : float
        Inverse regularisation of the readouts.
    categories : sequence of str, optional
        Default: every category with at least 2 clips.
    seed : int
    progress : bool
        Print each category when done.

    Returns
    -------
    dict of DataFrame
        ``effects`` (:data:`EFFECT_COLUMNS`), ``draws`` (:data:`DRAW_COLUMNS`),
        ``specificity`` (:data:`SPECIFICITY_COLUMNS`), ``dose`` (:data:`DOSE_COLUMNS`) and
        ``units`` (:data:`UNIT_COLUMNS`); ``effects.attrs["causal"]`` holds the options and the
        folds' description.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    run = open_run(run)
    if layer not in CONV_LAYERS:
        raise ParameterError(f"The 'layer' parameter of causal_effects must be a conv layer. Got {layer!r} instead.")
    measures = list(dict.fromkeys(measures))
    if not measures or set(measures) - set(MEASURES):
        raise ParameterError(
            f"The 'measures' parameter of causal_effects must hold some of {list(MEASURES)}. Got {measures} instead."
        )
    if "probe" in measures and (
        probe_layer not in CONV_LAYERS or CONV_LAYERS.index(probe_layer) <= CONV_LAYERS.index(layer)
    ):
        raise ParameterError(
            f"The 'probe_layer' parameter of causal_effects must be a conv layer after {layer} (a probe on the "
            f"ablated layer reads the ablated units themselves). Got {probe_layer!r} instead."
        )
    if ablation not in ("mean", "zero"):
        raise ParameterError(
            f"The 'ablation' parameter of causal_effects must be 'mean' or 'zero'. Got {ablation!r} instead."
        )
    if int(n_units) < 1 or int(n_random) < 1:
        raise ParameterError(
            f"The 'n_units' and 'n_random' parameters of causal_effects must be >= 1. Got {n_units}, {n_random} instead."
        )
    ok = run.ok_clips
    lab_all = ok["label"].fillna("").astype(str).str.strip().to_numpy()
    labelled = np.flatnonzero(lab_all != "")
    counts = pd.Series(lab_all[labelled]).value_counts()
    cats = sorted(counts.index[counts >= 2]) if categories is None else [str(c) for c in categories]
    missing = [c for c in cats if counts.get(c, 0) < 2]
    if missing or len(cats) < 1 or len(counts) < 2:
        raise ParameterError(
            f"The 'categories' parameter of causal_effects must name categories with at least 2 clips (of at least 2). "
            f"Got {missing or cats} instead."
        )
    all_cats = sorted(counts.index)
    groups = ok["group"].to_numpy(dtype=object) if "group" in ok.columns else None
    folds = ok["fold"].to_numpy() if "fold" in ok.columns else None
    splits, fold_desc = lp.probe_folds(
        lab_all[labelled],
        None if folds is None else folds[labelled],
        groups=None if groups is None else groups[labelled],
        seed=seed,
    )
    splits = [(labelled[tr], labelled[te]) for tr, te in splits]
    acts = run.activations(layer, stat).reindex(ok.index).to_numpy(np.float64)
    n_layer = acts.shape[1]
    if int(n_units) * 2 > n_layer:
        raise ParameterError(
            f"The 'n_units' parameter of causal_effects must leave as many other units in {layer} ({n_layer} units). "
            f"Got {n_units} instead."
        )
    dose_list = _default_doses(n_layer, n_units) if doses is None else sorted({int(d) for d in doses})
    if any(d < 1 or 2 * d > n_layer for d in dose_list):
        raise ParameterError(
            f"The 'doses' parameter of causal_effects must be in [1, {n_layer // 2}]. Got {dose_list} instead."
        )
    n_max = max([int(n_units), *dose_list])
    feat_of = {"heads": "heads", "probe": probe_layer}
    runner = AblationRunner.for_run(run, model, layer=layer, features=[feat_of[m] for m in measures])
    if ablation == "mean":  # over the frames the readouts see (clips tiled for the heads)
        runner.set_fill(runner.unit_means())

    # readouts: one per fold and measure, on the training clips' unablated outputs
    base_feats = runner.features([(labelled, [])])[0]
    full = {m: np.full((len(ok), base_feats[feat_of[m]].shape[1]), np.nan) for m in measures}
    for m in measures:
        full[m][labelled] = base_feats[feat_of[m]]
    col = {c: i for i, c in enumerate(all_cats)}
    readouts: dict[tuple[str, int], tuple[object, np.ndarray]] = {}
    with lp.single_blas_thread():
        for m in measures:
            for k, (tr, _) in enumerate(splits):
                x = full[m][tr]
                fin = np.isfinite(x).all(axis=1)
                clf = make_pipeline(
                    StandardScaler(), LogisticRegression(C=float(C), class_weight="balanced", max_iter=5000)
                )
                clf.fit(x[fin], lab_all[tr][fin])
                order = np.array([col[c] for c in clf.classes_])
                readouts[(m, k)] = (clf, order)

    def logp(m: str, k: int, x: np.ndarray) -> np.ndarray:
        """Log-probabilities of every category (columns in ``all_cats`` order; NaN rows where x is not finite)."""
        clf, order = readouts[(m, k)]
        out = np.full((len(x), len(all_cats)), np.nan)
        fin = np.isfinite(x).all(axis=1)
        if fin.any():
            with lp.single_blas_thread():
                out[np.ix_(np.flatnonzero(fin), order)] = clf.predict_log_proba(x[fin])  # type: ignore[attr-defined]
        return out

    fold_of = np.full(len(ok), -1)
    for k, (_, te) in enumerate(splits):
        fold_of[te] = k
    base = {m: np.full((len(ok), len(all_cats)), np.nan) for m in measures}
    for m in measures:
        for k, (_, te) in enumerate(splits):
            base[m][te] = logp(m, k, full[m][te])

    def ablated(specs: list[tuple[int, np.ndarray, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Log-probabilities (n_clips, n_categories) per measure of each (fold, clips, units) ablation."""
        feats = runner.features([(c, list(u)) for _, c, u in specs])
        res: list[dict[str, np.ndarray]] = [{} for _ in specs]
        for m in measures:
            for k in range(len(splits)):
                js = [j for j, s in enumerate(specs) if s[0] == k]
                if not js:
                    continue
                stacked = np.concatenate([feats[j][feat_of[m]] for j in js])
                lp_all = logp(m, k, stacked)
                start = 0
                for j in js:
                    n = len(specs[j][1])
                    res[j][m] = lp_all[start : start + n]
                    start += n
        return res

    rng = np.random.default_rng(seed)
    eff_rows, draw_rows, spec_rows, dose_rows, unit_rows = [], [], [], [], []
    for cat in cats:
        pos = lab_all == cat
        ci = col[cat]
        tops, rand, auc_tr, s_top, s_rand, dose_rand = [], [], [], [], [], {}
        for k, (tr, _) in enumerate(splits):
            units, auc = fx.fold_top_units(acts, pos, tr, top=n_max)
            strength = fx.unit_strength(acts, tr[pos[tr]])
            draws = fx.matched_random_units(strength, units[:n_units], n_draws=n_random, n_bins=n_bins, seed=rng)
            tops.append(units)
            rand.append(draws)
            auc_tr.append(float(np.mean(auc[:n_units])))
            fin = np.isfinite(strength)
            s_top.append(float(np.mean(strength[units[:n_units]][fin[units[:n_units]]])))
            s_rand.append(float(np.mean(strength[draws][fin[draws]])))
            for d in dose_list:
                dose_rand[(k, d)] = fx.matched_random_units(
                    strength, units[:d], n_draws=n_dose_random, n_bins=n_bins, seed=rng
                )
            unit_rows += [(cat, k, r, int(u), float(a), float(strength[u])) for r, (u, a) in enumerate(zip(units, auc))]
        tests = [te for _, te in splits]
        tests_a = [te[pos[te]] for te in tests]
        # every ablation of this category: (kind, draw or dose, fold, clips, units)
        plan: list[tuple[str, int, int, np.ndarray, np.ndarray]] = []
        plan += [("top", 0, k, tests[k], tops[k][:n_units]) for k in range(len(splits))]
        plan += [("random", d, k, tests_a[k], rand[k][d]) for d in range(n_random) for k in range(len(splits))]
        for dose in dose_list:
            plan += [("dose", dose, k, tests_a[k], tops[k][:dose]) for k in range(len(splits))]
            plan += [
                ("dose_random", dose * 10_000 + d, k, tests_a[k], dose_rand[(k, dose)][d])
                for d in range(n_dose_random)
                for k in range(len(splits))
            ]
        res = ablated([(k, c, u) for _, _, k, c, u in plan])
        clips_a = np.concatenate(tests_a)
        g_a = None if groups is None else groups[clips_a]
        where: dict[tuple[str, int], list[int]] = {}
        for j, (kind, key, _, _, _) in enumerate(plan):
            where.setdefault((kind, key), []).append(j)

        def per_clip(m: Measure, kind: str, key: int, which: int, where=where, plan=plan, res=res) -> np.ndarray:
            """Per-clip drop of category column ``which`` under one ablation (all folds; NaN elsewhere)."""
            vals = np.full(len(ok), np.nan)
            for j in where[(kind, key)]:
                clips = plan[j][3]
                vals[clips] = base[m][clips, which] - res[j][m][:, which]
            return vals

        for m in measures:
            top_all = per_clip(m, "top", 0, ci)
            top_drop = top_all[clips_a]
            rnd = np.stack([per_clip(m, "random", d, ci)[clips_a] for d in range(n_random)])
            rnd_drop = np.nanmean(rnd, axis=1)
            drop = float(np.nanmean(top_drop))
            lo, hi = fx.group_bootstrap_mean(top_drop, g_a, n_boot=n_boot, confidence=confidence, seed=seed)
            elo, ehi = fx.group_bootstrap_mean(
                top_drop - np.nanmean(rnd, axis=0), g_a, n_boot=n_boot, confidence=confidence, seed=seed
            )
            eff_rows.append(
                {
                    "category": cat,
                    "measure": m,
                    "n_units": int(n_units),
                    "drop": drop,
                    "ci_low": lo,
                    "ci_high": hi,
                    "random_drop": float(np.mean(rnd_drop)),
                    "random_sd": float(np.std(rnd_drop, ddof=1)) if n_random > 1 else np.nan,
                    "excess": drop - float(np.mean(rnd_drop)),
                    "excess_ci_low": elo,
                    "excess_ci_high": ehi,
                    "p": fx.empirical_p(drop, rnd_drop),
                    "q": np.nan,
                    "n_draws": int(n_random),
                    "n_clips": int(np.isfinite(top_drop).sum()),
                    "n_groups": len(set(fx.group_codes(g_a, len(clips_a))[np.isfinite(top_drop)].tolist())),
                    "base": float(np.nanmean(base[m][clips_a, ci])),
                    "auroc_train": float(np.mean(auc_tr)),
                    "strength_top": float(np.mean(s_top)),
                    "strength_random": float(np.mean(s_rand)),
                }
            )
            base_a = float(np.nanmean(base[m][clips_a, ci]))
            draw_rows.append((cat, m, "top", 0, [t[:n_units].tolist() for t in tops], base_a - drop, drop))
            draw_rows += [
                (cat, m, "random", d, [r[d].tolist() for r in rand], base_a - float(rnd_drop[d]), float(rnd_drop[d]))
                for d in range(n_random)
            ]
            for other in all_cats:
                pb = lab_all == other
                ob = col[other]
                vals = per_clip(m, "top", 0, ob)
                clips_b = np.flatnonzero(pb & (fold_of >= 0))
                v = vals[clips_b]
                blo, bhi = fx.group_bootstrap_mean(
                    v, None if groups is None else groups[clips_b], n_boot=n_boot, confidence=confidence, seed=seed
                )
                spec_rows.append((cat, other, m, float(np.nanmean(v)), blo, bhi, int(np.isfinite(v).sum())))
            for dose in dose_list:
                dv = per_clip(m, "dose", dose, ci)[clips_a]
                dlo, dhi = fx.group_bootstrap_mean(dv, g_a, n_boot=n_boot, confidence=confidence, seed=seed)
                dose_rows.append((cat, m, dose, "top", float(np.nanmean(dv)), dlo, dhi, 1))
                rd = np.array(
                    [
                        np.nanmean(per_clip(m, "dose_random", dose * 10_000 + d, ci)[clips_a])
                        for d in range(n_dose_random)
                    ]
                )
                if len(rd):
                    lo5, hi95 = np.quantile(rd, [0.05, 0.95])
                    dose_rows.append((cat, m, dose, "random", float(rd.mean()), float(lo5), float(hi95), len(rd)))
        if progress:
            print(f"  {cat}", flush=True)

    eff = pd.DataFrame(eff_rows, columns=list(EFFECT_COLUMNS))
    for m in measures:
        sel = (eff["measure"] == m).to_numpy()
        eff.loc[sel, "q"] = stats.bh_qvalues(eff.loc[sel, "p"].to_numpy(np.float64))
    eff.attrs["causal"] = {
        "layer": layer,
        "probe_layer": probe_layer,
        "ablation": ablation,
        "stat": stat,
        "n_units": int(n_units),
        "n_random": int(n_random),
        "n_bins": int(n_bins),
        "doses": dose_list,
        "folds": fold_desc,
        "n_boot": int(n_boot),
        "confidence": float(confidence),
        "seed": int(seed),
    }
    return {
        "effects": eff,
        "draws": pd.DataFrame(draw_rows, columns=list(DRAW_COLUMNS)),
        "specificity": pd.DataFrame(spec_rows, columns=list(SPECIFICITY_COLUMNS)),
        "dose": pd.DataFrame(dose_rows, columns=list(DOSE_COLUMNS)),
        "units": pd.DataFrame(unit_rows, columns=list(UNIT_COLUMNS)),
    }


def ablation_summary(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (category, measure, condition) from :func:`causal_effects`
    (:data:`ABLATION_COLUMNS`): the top units' drop with its interval, p and q, and the matched
    random sets' mean drop and sd; ``base`` is the unablated mean log-probability of the category
    on its held-out clips; ``units`` lists each fold's top units."""
    eff, draws = tables["effects"], tables["draws"]
    rows = []
    for r in eff.itertuples():
        top_units = draws.loc[
            (draws["category"] == r.category) & (draws["measure"] == r.measure) & (draws["condition"] == "top"), "units"
        ].iloc[0]
        rows.append((r.category, r.measure, "top", r.drop, np.nan, r.base, 1, top_units, r.ci_low, r.ci_high, r.p, r.q))
        rows.append(
            (
                r.category,
                r.measure,
                "random",
                r.random_drop,
                r.random_sd,
                r.base,
                r.n_draws,
                [],
                np.nan,
                np.nan,
                np.nan,
                np.nan,
            )
        )
    return pd.DataFrame(rows, columns=list(ABLATION_COLUMNS))


def category_ablation_table(
    run: Run,
    model: SoundNet8,
    *,
    layer: str = "conv5",
    probe_layer: str = "conv7",
    n_units: int = 16,
    n_random: int = 500,
    seed: int = 0,
    progress: bool = False,
    **options,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`causal_effects` summarised: ``(ablation_summary(...), draws)``.

    ``options`` go to :func:`causal_effects` (``ablation``, ``doses``, ``stat``, ...).
    """
    tables = causal_effects(
        run,
        model,
        layer=layer,
        probe_layer=probe_layer,
        n_units=n_units,
        n_random=n_random,
        seed=seed,
        progress=progress,
        **options,
    )
    return ablation_summary(tables), tables["draws"]
