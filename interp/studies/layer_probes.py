"""Layer probes: how well a linear classifier on each layer's units recognises the corpus's categories.

For every conv layer, a linear probe (standardised per-clip mean activations, logistic regression)
is cross-validated on the corpus's own folds (stratified 5-fold when it has none); accuracy comes
with a 95 % Wilson interval. ``--protocol paper`` follows SoundNet's evaluation instead: pool5,
clips looped to 10 s, 1 s windows, linear SVM (C = 0.01), decision values averaged per clip; on
ESC-50 the paper reports 74.2 %.

    python studies/layer_probes.py                                   # demo corpus
    python studies/layer_probes.py --corpus path/to/ESC-50 --protocol paper
    python studies/layer_probes.py --run runs/minibank               # also writes runs/minibank/probes.parquet

Tables: ``probes`` (layer, accuracy, ci_low, ci_high, n_clips, n_correct, n_classes, chance, cv,
features, classifier; also written into the run directory as ``probes.parquet``, or
``probes_paper.parquet`` for the paper protocol), ``predictions`` (layer, clip_id, label,
predicted), ``paper_table`` (paper protocol: method, features, accuracy, ci_low, ci_high,
paper_accuracy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp.analysis import linear_probes as lp
from interp.corpus.corpora import load_corpus
from interp.report import figures
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from soundnet.model import CONV_LAYERS, load_soundnet


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("layer_probes", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument(
        "--protocol",
        choices=("default", "paper"),
        default="default",
        help="default: every layer, logistic regression; paper: pool5, 1 s windows, linear SVM",
    )
    ap.add_argument("--stat", choices=("mean", "max"), default="mean", help="per-clip features (default protocol)")
    args = ap.parse_args(argv)

    # 1. the corpus, recorded through every conv layer (--quick: 8 clips per category)
    corpus = quick_subset(load_corpus(args.corpus), per_label=8) if args.quick and args.run is None else None
    run = obtain_run(args, layers=CONV_LAYERS if args.protocol == "default" else ("conv5",), corpus=corpus)

    rep = Report("layer_probes", args.out, title="Linear probes per layer")
    if args.protocol == "default":
        # 2. one probe per layer, cross-validated
        probes, preds = lp.layer_probes(run, stat=args.stat, return_predictions=True)
        best = probes.loc[probes["accuracy"].idxmax()]
        rep.number(
            "best layer",
            f"{best['layer']}: {best['accuracy']:.1%} (95% CI {best['ci_low']:.1%} to {best['ci_high']:.1%})",
        )
        rep.number("chance (most frequent category)", f"{probes['chance'].iloc[0]:.1%}")
        for r in probes.itertuples():
            rep.number(
                r.layer, f"{r.accuracy:.1%} [{r.ci_low:.1%}, {r.ci_high:.1%}]", f"{r.n_correct}/{r.n_clips} clips"
            )
        rep.note(
            f"{probes['classifier'].iloc[0]} on the {probes['features'].iloc[0]} unit activations of each clip; "
            f"cross-validation: {probes['cv'].iloc[0]}; intervals: 95% Wilson score over clips."
        )
        rep.table("probes", probes, "Probe accuracy per layer with its 95% interval.")
        rep.table("predictions", preds, "Every clip's cross-validated prediction per layer.")
        run.write_table("probes", probes)
        rep.figure(
            "probe_accuracy",
            figures.probe_accuracy_figure(
                probes,
                chance=float(probes["chance"].iloc[0]),
                title=f"Linear probe accuracy per layer ({probes['n_classes'].iloc[0]} categories, "
                f"{probes['n_clips'].iloc[0]} clips; bars: 95% CI; dashed: chance)",
            ),
            "Cross-validated accuracy of a linear probe on each layer, with 95% intervals and chance level.",
            width=800,
            height=420,
        )
        rep.figure(
            "recall_per_category",
            sf.recall_heatmap(preds),
            "For each category and layer, the fraction of the category's clips the probe classifies right.",
        )
        intro = (
            "How much each layer of SoundNet knows about the corpus's categories, read out by a linear "
            "classifier on its units."
        )
    else:
        # 2'. the paper's protocol on pool5
        probes = lp.paper_protocol(run, load_soundnet())
        r = probes.iloc[0]
        esc50 = {"esc10", "src_file", "take"} <= set(run.clips.columns)
        table = pd.DataFrame(
            [
                {
                    "method": "SoundNet 8-layer (this toolkit)",
                    "features": "pool5",
                    "accuracy": r["accuracy"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "paper_accuracy": lp.PAPER_ESC50_POOL5 if esc50 else np.nan,
                }
            ]
        )
        rep.number(
            "pool5 accuracy (paper protocol)",
            f"{r['accuracy']:.1%} [{r['ci_low']:.1%}, {r['ci_high']:.1%}]",
            f"{r['n_correct']}/{r['n_clips']} clips, {r['cv']}",
        )
        if esc50:
            rep.number("paper (ESC-50, 8-layer SoundNet, pool5)", f"{lp.PAPER_ESC50_POOL5:.1%}")
        rep.note(f"{r['features']}; {r['classifier']}; cross-validation: {r['cv']}.")
        rep.table("probes", probes, "Accuracy of the paper's protocol (pool5) with its 95% interval.")
        rep.table("paper_table", table, "The result laid out like the paper's table (accuracy as a fraction).")
        run.write_table("probes_paper", probes)
        rep.figure(
            "probe_accuracy",
            figures.probe_accuracy_figure(
                probes,
                chance=float(probes["chance"].iloc[0]),
                title="Paper protocol: pool5 linear SVM accuracy (bar: 95% CI; dashed: chance)",
            ),
            "Accuracy of SoundNet's own evaluation protocol on pool5, with its 95% interval.",
            width=600,
            height=380,
        )
        intro = "SoundNet's original evaluation protocol (pool5 features, linear SVM) on this corpus."
    rep.finish(argv=args.argv, intro=intro, run=run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
