"""Layer probes: how well a linear classifier on each layer's units recognises the corpus's categories.

Default protocol: for every conv layer, a linear probe (standardised per-clip mean activations,
logistic regression with C chosen by nested group cross-validation) is cross-validated on the
corpus's own folds (stratified group 5-fold on the ``group`` column when it has none); accuracy
comes with a 95 % group-bootstrap interval stratified by fold; chance is the best constant guess
under the same folds. Baselines in the same table: log-mel statistics, a randomly initialised
SoundNet and the pretrained net with shuffled weights. A best layer is named only when a paired
test finds it better than the runner-up.

``--protocol paper`` runs the authors' ``eval_esc50.lua`` exactly (input x 2^-22, clips looped to
10 s, stride-1 windows of ceil(T / 10) frames of pool5 = 768 dimensions, liblinear -s 1 -c 0.01
-B 1 on all windows, mean decision values per test clip); ``--layer conv4 conv5 conv6 conv7 conv8``
reproduces the paper's layer comparison. The paper's 74.2 % (ESC-50) or 92.2 % (ESC-10) is shown
only beside the whole matching dataset, never for a subset, ``--quick`` or another corpus.

    python studies/layer_probes.py                                   # demo corpus
    python studies/layer_probes.py --corpus path/to/ESC-50 --protocol paper
    python studies/layer_probes.py --run runs/minibank               # also writes runs/minibank/probes.parquet

Tables: ``probes`` (:data:`interp.analysis.linear_probes.PROBE_COLUMNS`; also written into the run
directory as ``probes.parquet``), ``predictions`` (probe, layer, clip_id, label, predicted,
correct, fold, group), ``comparisons`` (paired tests: a, b, accuracy_a, accuracy_b, diff, ci_low,
ci_high, p, test, n_clips, n_groups); paper protocol: ``paper_table``
(:data:`interp.analysis.paper_protocol.PAPER_COLUMNS`, also ``probes_paper.parquet`` in the run)
and ``predictions``.

Multi-label corpora (AudioSet, FSD50K: clips with several ``labels``) are probed one-vs-rest and
scored by mean average precision (:mod:`interp.analysis.multilabel_probes`): the ``probes`` table
keeps its columns (``metric`` = ``mAP``, the mAP in ``accuracy``, chance = mean prevalence),
``predictions`` has one row per clip and label (probe, layer, clip_id, category, score, positive,
fold, group), ``ap_per_category`` the AP per label, ``comparisons`` paired mAP tests.
"""

from __future__ import annotations

import argparse

import pandas as pd

from interp.analysis import baselines as bl
from interp.analysis import linear_probes as lp
from interp.analysis import multilabel_probes as mlp
from interp.analysis import paper_protocol as pp
from interp.analysis import probe_stats as ps
from interp.corpus.corpora import load_corpus
from interp.report import figures
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from interp.run.store import Run
from soundnet.model import CONV_LAYERS, load_soundnet


def _comparison_pairs(table: pd.DataFrame, leader: str) -> list[tuple[str, str]]:
    """Leader vs every other pretrained layer; each layer vs its baselines; leader vs log-mel."""
    have = set(table["probe"] + ":" + table["layer"])
    lead = f"pretrained:{leader}"
    pre = [layer for layer in table.loc[table["probe"] == "pretrained", "layer"]]
    pairs = [(lead, f"pretrained:{layer}") for layer in pre if layer != leader]
    for layer in pre:
        pairs += [
            (f"pretrained:{layer}", f"{b}:{layer}") for b in ("random init", "shuffled") if f"{b}:{layer}" in have
        ]
    if f"log-mel:{bl.LOGMEL_LAYER}" in have:
        pairs.append((lead, f"log-mel:{bl.LOGMEL_LAYER}"))
    return pairs


def _default(args: argparse.Namespace, run: Run, rep: Report) -> str:
    layers = args.layer or None
    baselines = () if args.no_baselines else bl.BASELINES
    probes, preds = lp.layer_probes(
        run,
        layers=layers,
        stat=args.stat,
        C=args.C,
        baselines=baselines,
        model=load_soundnet(),
        return_predictions=True,
    )
    if (probes["metric"] == "mAP").all():
        return _multilabel(probes, preds, run, rep, baselines)
    best = ps.best_layer(preds, probe="pretrained")
    comparisons = ps.compare_pairs(preds, _comparison_pairs(probes, best["leader"]))
    chance = lp.probe_chance(probes)
    rep.number("best layer", ps.describe_best(best))
    rep.number("chance (best constant guess under the same folds)", f"{chance:.1%}")
    for r in probes.itertuples():
        name = r.layer if r.probe == "pretrained" else (r.probe if r.layer == r.probe else f"{r.probe}: {r.layer}")
        rep.number(
            name, f"{r.accuracy:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]", f"{r.n_correct}/{r.n_clips} clips, C {r.C}"
        )
    pre = probes[probes["probe"] == "pretrained"].iloc[0]
    rep.note(
        f"{pre['classifier']} on the {pre['features']} unit activations of each clip; cross-validation: "
        f"{pre['cv']}; intervals: {pre['interval']} (groups: the corpus's `group` column); chance: the most "
        "frequent category of each training fold scored on its test fold. A best layer is named only when the "
        f"paired test of the leader against the runner-up gives p < {best['alpha']:g}."
    )
    if baselines:
        rep.note(
            "Baselines, probed the same way on the same clips: log-mel statistics (mean and std of 64 log-mel "
            "bands), a randomly initialised SoundNet (PyTorch default init, seed 0) and the pretrained net with "
            "each layer's weights shuffled (seed 0). See `comparisons` for paired tests against them."
        )
    rep.table("probes", probes, "Probe accuracy per layer and baseline with its 95% interval.")
    rep.table("predictions", preds, "Every clip's cross-validated prediction per probe and layer.")
    rep.table(
        "comparisons", comparisons, "Paired tests: leader vs other layers, layers vs baselines, leader vs log-mel."
    )
    run.write_table("probes", probes)
    rep.figure(
        "probe_accuracy",
        figures.probe_accuracy_figure(
            probes,
            chance=chance,
            title=f"Linear probe accuracy per layer ({pre['n_classes']} categories, {pre['n_clips']} clips; "
            "bars: 95% CI; dashed: chance)",
        ),
        "Cross-validated accuracy of a linear probe on each layer (pretrained and baselines), with 95% "
        "intervals and chance level.",
        width=800,
        height=420,
    )
    rep.figure(
        "recall_per_category",
        sf.recall_heatmap(preds[preds["probe"] == "pretrained"][["layer", "clip_id", "label", "predicted"]]),
        "For each category and layer, the fraction of the category's clips the probe classifies right.",
    )
    return (
        "How much each layer of SoundNet knows about the corpus's categories, read out by a linear classifier on "
        "its units, against baselines without SoundNet's training."
    )


def _multilabel(probes: pd.DataFrame, preds: pd.DataFrame, run: Run, rep: Report, baselines) -> str:
    """The default protocol's report for a multi-label corpus: one-vs-rest probes scored by mAP."""
    best = mlp.best_layer_map(preds, probe="pretrained")
    comparisons = mlp.compare_map_pairs(preds, _comparison_pairs(probes, best["leader"]))
    chance = lp.probe_chance(probes)
    rep.number("best layer (mAP)", ps.describe_best(best))
    rep.number("chance mAP (mean prevalence of the probed labels)", f"{chance:.1%}")
    for r in probes.itertuples():
        name = r.layer if r.probe == "pretrained" else (r.probe if r.layer == r.probe else f"{r.probe}: {r.layer}")
        rep.number(
            f"{name} mAP",
            f"{r.accuracy:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]",
            f"{r.n_classes} labels, {r.n_clips} clips, C {r.C}",
        )
    pre = probes[probes["probe"] == "pretrained"].iloc[0]
    rep.note(
        f"Multi-label corpus: {pre['classifier']} on the {pre['features']} unit activations of each clip, one "
        f"classifier per label (a clip is positive for each of its labels); cross-validation: {pre['cv']} "
        "(scikit-learn has no stratified group k-fold for multi-label targets); metric: mean average precision "
        "over the labels with a positive among the test clips; intervals: "
        f"{pre['interval']}; chance: the mAP of a constant score, the labels' mean prevalence. A best layer is "
        f"named only when the paired group bootstrap of the leader against the runner-up gives p < {best['alpha']:g}."
    )
    if baselines:
        rep.note("Baselines (log-mel statistics, random init, shuffled weights) are probed the same way.")
    rep.table(
        "probes", probes, "Probe mAP per layer and baseline (column `accuracy`, metric mAP) with its 95% interval."
    )
    rep.table("predictions", preds, "Every clip's cross-validated score per probe, layer and label.")
    rep.table("ap_per_category", mlp.per_label_ap(preds), "Average precision per probe, layer and label.")
    rep.table("comparisons", comparisons, "Paired mAP tests: leader vs other layers, layers vs baselines, vs log-mel.")
    run.write_table("probes", probes)
    rep.figure(
        "probe_accuracy",
        figures.probe_accuracy_figure(
            probes,
            chance=chance,
            title=f"Linear probe mAP per layer ({pre['n_classes']} labels, {pre['n_clips']} clips; "
            "bars: 95% CI; dashed: chance)",
        ),
        "Cross-validated mean average precision of one-vs-rest linear probes on each layer, with 95% intervals "
        "and chance level (mean prevalence).",
        width=800,
        height=420,
    )
    return (
        "How much each layer of SoundNet knows about the corpus's labels (multi-label), read out by one-vs-rest "
        "linear classifiers on its units and scored by mean average precision."
    )


def _paper(args: argparse.Namespace, run: Run, rep: Report) -> str:
    layers = args.layer or [pp.PAPER_LAYER]
    table, preds = pp.paper_protocol(
        run, load_soundnet(), layers=layers, reference=not args.quick, device=args.device, return_predictions=True
    )
    for r in table.itertuples():
        rep.number(
            f"{r.layer} ({r.paper_layer}) accuracy, paper protocol",
            f"{r.accuracy:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]",
            f"{r.n_correct}/{r.n_clips} clips, {r.cv}",
        )
        if pd.notna(r.paper_accuracy):
            rep.number(f"paper ({r.dataset}, 8-layer SoundNet, {r.paper_layer})", f"{r.paper_accuracy:.1%}")
    rep.number("chance (best constant guess under the same folds)", f"{table['chance'].iloc[0]:.1%}")
    r0 = table.iloc[0]
    rep.note(
        f"Steps of eval_esc50.lua: (1) input x 2^-22 of int32 audio = {r0['input_scale']:g} x [-1, 1] audio (twice "
        f"the training scale); (2) looped circularly to 11 s and cut to {r0['loop_s']:g} s; (3) the layer's output "
        f"(Torch module {r0['lua_module']} for {r0['layer']}); (4) stride-1 windows of {r0['window_frames']} frames, "
        f"{r0['n_windows']} per clip, {r0['feature_dim']} dimensions, flattened; (5) only entries > 0 kept "
        f"(liblinear's sparse input); (6) {r0['classifier']}; (7) folds: {r0['cv']}. Intervals: {r0['interval']}."
    )
    if table["paper_accuracy"].isna().all():
        rep.note("No paper number is shown: this is not the whole ESC-50 or ESC-10 (or --quick).")
    rep.table(
        "paper_table",
        table,
        "The paper's protocol per layer (accuracy as a fraction; paper_accuracy where it applies).",
    )
    rep.table("predictions", preds, "Every clip's prediction per layer (argmax of mean window decision values).")
    run.write_table("probes_paper", table)
    rep.figure(
        "probe_accuracy",
        figures.probe_accuracy_figure(
            table[["layer", "accuracy", "ci_low", "ci_high"]],
            chance=float(table["chance"].iloc[0]),
            title="Paper protocol: linear SVM on windows of each layer (bars: 95% CI; dashed: chance)",
        ),
        "Accuracy of SoundNet's own evaluation protocol, with 95% intervals.",
        width=600,
        height=380,
    )
    return (
        "SoundNet's original ESC-50 evaluation protocol (eval_esc50.lua: windows of a layer, liblinear) on this corpus."
    )


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("layer_probes", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument(
        "--protocol",
        choices=("default", "paper"),
        default="default",
        help="default: every layer, nested-CV logistic regression, baselines; paper: eval_esc50.lua exactly",
    )
    ap.add_argument("--stat", choices=("mean", "max"), default="mean", help="per-clip features (default protocol)")
    ap.add_argument(
        "--layer",
        nargs="+",
        choices=pp.PAPER_LAYERS,
        help="layers to probe (default: every conv layer; paper protocol: conv5 = pool5)",
    )
    ap.add_argument("--C", type=float, default=None, help="fix the probe's C (default: nested cross-validation)")
    ap.add_argument("--no-baselines", action="store_true", help="default protocol: skip the baseline probes")
    args = ap.parse_args(argv)
    if args.protocol == "default" and args.layer and "conv8" in args.layer:
        ap.error("--layer conv8 is for --protocol paper (the default protocol probes conv layers)")

    # 1. the corpus, recorded through every conv layer (--quick: 8 clips per category)
    corpus = quick_subset(load_corpus(args.corpus), per_label=8) if args.quick and args.run is None else None
    run = obtain_run(args, layers=CONV_LAYERS if args.protocol == "default" else ("conv5",), corpus=corpus)
    rep = Report("layer_probes", args.out, title="Linear probes per layer")
    # 2. the probes (and their paired tests), or the paper's protocol
    intro = _default(args, run, rep) if args.protocol == "default" else _paper(args, run, rep)
    rep.finish(argv=args.argv, intro=intro, run=run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
