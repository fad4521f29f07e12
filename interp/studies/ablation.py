"""Ablation: does zeroing a category's most selective units hurt that category more than random units?

For each category, the N units of one layer (default conv5) most selective for it (by AUROC) are
zeroed, and, as a control, N units drawn at random from the same layer (several draws). Two
readouts measure the damage, per category:

- **heads**: the category's score read out linearly from SoundNet's object and place heads (a
  logistic regression on their log-probabilities, fitted on the unablated clips; see
  :func:`interp.analysis.ablation.category_ablation_effect`), averaged over the category's clips; clips are
  tiled to the 9.5 s the heads need;
- **probe**: the recall of the category by a linear probe on a later layer (default conv7),
  trained on unablated clips and tested, fold by fold, on the held-out clips passed through the
  ablated model.

    python studies/ablation.py                                  # built-in demo corpus
    python studies/ablation.py --run runs/minibank --layer conv4 --n-units 8

Tables: ``ablation`` (category, measure, condition, drop, drop_sd, base, n_draws, units) and
``ablation_draws`` (category, measure, condition, draw, units, score, drop); see :mod:`interp.analysis.causal`.
"""

from __future__ import annotations

from interp.analysis.causal import category_ablation_table
from interp.corpus.corpora import load_corpus
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("ablation", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument(
        "--layer", default="conv5", choices=CONV_LAYERS, help="layer whose units are zeroed (default conv5)"
    )
    ap.add_argument("--probe-layer", default="conv7", choices=CONV_LAYERS, help="layer the probe reads (default conv7)")
    ap.add_argument("--n-units", type=int, default=16, help="units zeroed per condition (default 16)")
    ap.add_argument("--n-random", type=int, default=5, help="random draws of the control (default 5)")
    args = ap.parse_args(argv)
    if CONV_LAYERS.index(args.probe_layer) < CONV_LAYERS.index(args.layer):
        ap.error("--probe-layer must be --layer or a later layer")
    n_random = 2 if args.quick else args.n_random

    # 1. the corpus (--quick: 6 clips of each of 3 categories)
    corpus = (
        quick_subset(load_corpus(args.corpus), per_label=6, max_labels=3) if args.quick and args.run is None else None
    )
    run = obtain_run(args, layers=CONV_LAYERS, corpus=corpus)

    # 2. top-N vs random-N ablations of each category, read out by the heads and by a probe
    table, draws = category_ablation_table(
        run,
        load_soundnet(),
        layer=args.layer,
        probe_layer=args.probe_layer,
        n_units=args.n_units,
        n_random=n_random,
        progress=True,
    )

    # 3. report
    rep = Report("ablation", args.out, title="Ablation of category-selective units")
    for measure in ("heads", "probe"):
        piv = table[table["measure"] == measure].pivot(index="category", columns="condition", values="drop")
        wins = int((piv["top"] > piv["random"]).sum())
        rep.number(
            f"{measure}: categories hurt more by their top-{args.n_units} units than by random ones",
            f"{wins}/{len(piv)}",
            f"mean drop {piv['top'].mean():.3f} vs {piv['random'].mean():.3f}",
        )
    rep.note(
        f"Ablated layer {args.layer} ({args.n_units} units per condition, {n_random} random draws); heads readout: "
        "logistic regression on the object and place log-probabilities (log-odds of the category); probe: "
        f"logistic regression on {args.probe_layer} mean activations, cross-validated, trained on unablated clips."
    )
    rep.table("ablation", table, "Per category and readout: mean drop for the top units and for random units.")
    rep.table("ablation_draws", draws, "Every ablation: the units zeroed, the readout's score and its drop.")
    rep.figure(
        "ablation",
        sf.ablation_figure(
            table,
            n_units=args.n_units,
            title=f"Zeroing each category's top-{args.n_units} {args.layer} units vs {args.n_units} random "
            f"{args.layer} units",
        ),
        f"Per category, how much the heads' category score (left) and the {args.probe_layer} probe's recall "
        "(right) drop when its most selective units are zeroed (red) and when as many random units are "
        "(grey, mean ± sd over draws).",
    )
    rep.finish(
        argv=args.argv,
        intro="A causal check of the selectivity rankings: zero a category's most selective units and see "
        "whether the network loses that category more than when random units are zeroed.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
