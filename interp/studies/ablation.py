"""Ablation: do a category's most selective units carry it, more than matched random units do?

For each category A and each fold (groups kept whole), the N units of one layer (default conv5)
with the highest AUROC for A on the fold's *training* clips are mean-ablated (set to their mean
over the frames the network sees; ``--ablation zero`` sets them to 0), and the damage is read out
on the fold's *held-out* clips (cross-fitting: no clip both chooses units and measures their
effect; see :mod:`interp.analysis.causal`). Two readouts, each a multinomial logistic regression
fitted on the training clips' unablated outputs: ``heads`` (the object and place heads'
log-probabilities; clips tiled to the 9.5 s the heads need) and ``probe`` (a later layer's mean,
default conv7). ``drop`` = unablated - ablated log-probability of the clip's category (nats).

Control: ``--n-random`` (default 500) sets of N units matched on activation strength (drawn within
the same strength-quantile bins on A's training clips); empirical p = (1 + #draws with drop >= the
top units' drop) / (draws + 1), BH across categories; 95 % intervals from a bootstrap over groups.
Also: a category x category specificity table and a dose-response curve (1, 2, 4, ... top units).

    python studies/ablation.py                                  # built-in demo corpus
    python studies/ablation.py --run runs/minibank --layer conv4 --n-units 8

Cost: thousands of ablations; only the layers above the ablated one are run again, many
ablations per batch (:class:`interp.analysis.ablation_runner.AblationRunner`). On 2 CPU cores the
demo takes about 1 s per 30 clip-ablations from conv5 with both readouts (``--layer conv7``, whose
heads are spliced linearly, is about 100 times cheaper).

Tables: ``ablation`` (category, measure, condition, drop, drop_sd, base, n_draws, units, ci_low,
ci_high, p, q), ``ablation_draws`` (category, measure, condition, draw, units, score, drop),
``ablation_effects``, ``specificity``, ``dose_response``, ``ablation_units``; see
:mod:`interp.analysis.causal`.
"""

from __future__ import annotations

from interp.analysis.causal import Measure, ablation_summary, causal_effects
from interp.corpus.corpora import load_corpus
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from interp.report.study_figures.ablation import dose_response_figure, effects_figure, specificity_figure
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("ablation", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument(
        "--layer", default="conv5", choices=CONV_LAYERS, help="layer whose units are ablated (default conv5)"
    )
    ap.add_argument("--probe-layer", default="conv7", choices=CONV_LAYERS, help="layer the probe reads (default conv7)")
    ap.add_argument("--n-units", type=int, default=16, help="top units ablated per category (default 16)")
    ap.add_argument("--n-random", type=int, default=500, help="matched random draws (default 500)")
    ap.add_argument(
        "--ablation", default="mean", choices=("mean", "zero"), help="mean- or zero-ablation (default mean)"
    )
    ap.add_argument(
        "--stat", default="vmean", choices=("vmean", "max", "mean"), help="per-clip statistic (default vmean)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    measures: tuple[Measure, ...] = ("heads", "probe") if args.probe_layer != args.layer else ("heads",)
    if CONV_LAYERS.index(args.probe_layer) < CONV_LAYERS.index(args.layer):
        ap.error("--probe-layer must be --layer or a later layer")
    n_units = min(args.n_units, 4) if args.quick else args.n_units
    n_random = min(args.n_random, 50) if args.quick else args.n_random
    doses = [1, 2, 4] if args.quick else None

    # 1. the corpus (--quick: 6 clips of each of 3 categories)
    corpus = (
        quick_subset(load_corpus(args.corpus), per_label=6, max_labels=3) if args.quick and args.run is None else None
    )
    run = obtain_run(args, layers=CONV_LAYERS, corpus=corpus)

    # 2. cross-fitted ablations: top units vs matched random units, specificity, dose-response
    t = causal_effects(
        run,
        load_soundnet(),
        layer=args.layer,
        probe_layer=args.probe_layer,
        measures=measures,
        n_units=n_units,
        n_random=n_random,
        ablation=args.ablation,
        doses=doses,
        n_dose_random=5 if args.quick else 20,
        stat=args.stat,
        seed=args.seed,
        progress=True,
    )
    eff, cfg = t["effects"], t["effects"].attrs["causal"]

    # 3. report
    rep = Report("ablation", args.out, title="Causal effects of category-selective units")
    for m in measures:
        e = eff[eff["measure"] == m]
        rep.number(
            f"{m}: categories whose top-{n_units} units beat {n_random} matched random sets (q < 0.05)",
            f"{int((e['q'] < 0.05).sum())}/{len(e)}",
            f"mean drop {e['drop'].mean():.3f} vs {e['random_drop'].mean():.3f} nats; smallest possible p "
            f"{1 / (n_random + 1):.4f}",
        )
        s = t["specificity"][t["specificity"]["measure"] == m]
        on = s[s["ablated"] == s["measured"]]["drop"].mean()
        off = s[s["ablated"] != s["measured"]]["drop"].mean()
        rep.number(f"{m}: mean drop on the ablated category vs on the others", f"{on:.3f} vs {off:.3f} nats")
    rep.note(
        f"Ablated layer {args.layer}, {args.ablation}-ablation, {n_units} units per set, chosen by AUROC of "
        f"{args.stat} on each fold's training clips ({cfg['folds']}); effects read out on the held-out clips. "
        f"Random sets matched on activation strength ({cfg['n_bins']} quantile bins of the units' mean on the "
        "category's training clips; strength_top and strength_random in ablation_effects say how close). "
        "p: (1 + #draws >= top) / (draws + 1); q: Benjamini-Hochberg across categories; intervals: 95 % "
        "percentile bootstrap over groups of the category's clips (too narrow with fewer than about 5 groups)."
    )
    rep.table(
        "ablation", ablation_summary(t), "Per category and readout: the top units' drop and matched random units'."
    )
    rep.table("ablation_draws", t["draws"], "Every ablation of the control: each fold's units, score and drop.")
    rep.table("ablation_effects", eff, "Per category and readout: drop, interval, excess over random, p, q, matching.")
    rep.table("specificity", t["specificity"], "A's top units ablated: drop of every category B on B's clips.")
    rep.table("dose_response", t["dose"], "Drop against the number of top units ablated, with matched random sets.")
    rep.table("ablation_units", t["units"], "The units chosen in each fold (AUROC and strength on training clips).")
    rep.figure(
        "ablation",
        effects_figure(eff, t["draws"]),
        "Per category: the drop of its log-probability when its top units are ablated (diamond, 95 % group "
        "bootstrap interval) and when matched random sets are (grey box over draws); * q < 0.05.",
    )
    rep.figure(
        "specificity",
        specificity_figure(t["specificity"], measure=measures[0]),
        "Rows: the category whose top units are ablated; columns: the category whose clips are measured. A "
        "specific effect is a dark diagonal.",
    )
    rep.figure(
        "dose_response",
        dose_response_figure(t["dose"], measure=measures[0]),
        "Drop against the number of top units ablated (red) and matched random units (grey: mean and 5-95 %).",
    )
    rep.finish(
        argv=args.argv,
        intro="A causal check of the selectivity rankings: ablate a category's most selective units, chosen on "
        "training folds, and see on held-out clips whether the network loses that category more than with "
        "matched random units, and more than other categories.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
