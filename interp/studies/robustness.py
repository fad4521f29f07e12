"""Robustness: do unit rankings and probe accuracy survive level changes, noise, shifts and resampling?

Every clip of the corpus is perturbed (level -40 to -10 dB, white noise at 30 to 0 dB SNR, delays
of 1 to 100 ms, re-recording at 8, 16 and 44.1 kHz; see :mod:`interp.analysis.robustness`) and passed
through conv1..conv7 again. Per layer and condition: do the same clips drive each unit (Spearman
across clips), are the units ranked the same for each category (Spearman of AUROC across units,
top-10 overlap), and how accurate are probes trained on clean clips on the perturbed ones?

    python studies/robustness.py                              # built-in demo corpus
    python studies/robustness.py --run runs/minibank --out reports/robustness_minibank

Tables: ``robustness`` (family, strength, label, layer, response_spearman, auroc_spearman,
top_overlap, probe_accuracy, probe_ci_low, probe_ci_high, clean_probe_accuracy,
top_overlap_chance, top_overlap_resample): the top-N overlap beside its chance level (N / units)
and a resampling baseline (two bootstrap resamples of the clean clips).
"""

from __future__ import annotations

import numpy as np

from interp.analysis import linear_probes as lp
from interp.analysis import robustness as rb
from interp.corpus.corpora import load_corpus
from interp.recording import RecordConfig
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from interp.report.study_figures.robustness import overlap_baselines_figure
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("robustness", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument("--top-n", type=int, default=10, help="N of the top-N overlap (default 10)")
    args = ap.parse_args(argv)

    # 1. the corpus (--quick: 6 clips of each of 4 categories, one condition per family)
    corpus = (
        quick_subset(load_corpus(args.corpus), per_label=6, max_labels=4) if args.quick and args.run is None else None
    )
    run = obtain_run(args, layers=CONV_LAYERS, corpus=corpus)
    clips = run.ok_clips[run.ok_clips["label"].fillna("").astype(str) != ""]
    if args.quick and args.run is not None:
        clips = quick_subset(clips, per_label=6, max_labels=4)
    counts = clips["label"].value_counts()
    clips = clips[clips["label"].map(counts) >= 2]
    labels = clips["label"].astype(str).to_numpy()

    # 2. clean and perturbed summaries, exactly as the recorder computes them
    clean, perturbed = rb.summarize_conditions(
        load_soundnet(),
        clips,
        rb.default_perturbations(quick=args.quick),
        config=RecordConfig.from_meta(run.meta),
        progress=True,
    )

    # 3. rankings and probes, clean vs perturbed
    splits, cv = lp.probe_folds(
        labels, clips["fold"].to_numpy(), groups=clips["group"].to_numpy() if "group" in clips.columns else None
    )
    table = rb.compare_conditions(
        clean, perturbed, labels, splits, top_n=args.top_n, n_resamples=5 if args.quick else 20
    )

    # 4. report
    rep = Report("robustness", args.out, title="Robustness of unit rankings and probes")
    for fam in rb.FAMILIES:
        sub = table[table["family"] == fam]
        worst = sub.loc[sub["top_overlap"].idxmin()]
        rep.number(
            f"{fam}: lowest top-{args.top_n} overlap",
            f"{worst['top_overlap']:.2f}",
            f"{worst['layer']}, {worst['label']}",
        )
        mid = sub[sub["layer"] == "conv5"]
        rep.number(
            f"{fam}: conv5 probe accuracy, clean -> perturbed",
            f"{mid['clean_probe_accuracy'].iloc[0]:.1%} -> "
            + ", ".join(f"{a:.1%} ({lab})" for a, lab in zip(mid["probe_accuracy"], mid["label"])),
        )
    refs = table.groupby("layer", sort=False)[["top_overlap_chance", "top_overlap_resample"]].first()
    rep.number(
        f"top-{args.top_n} overlap references per layer (chance / two bootstrap resamples of the clean clips)",
        "; ".join(f"{lay} {r.top_overlap_chance:.2f} / {r.top_overlap_resample:.2f}" for lay, r in refs.iterrows()),
        "a perturbed overlap is read against these: near chance = the ranking is lost, near the resampling "
        "baseline = as stable as the data allow",
    )
    rep.note(
        f"Top-{args.top_n} overlap chance = {args.top_n} / n_units (the hypergeometric expectation for two "
        "unrelated top sets); resampling baseline = mean overlap between the top sets of two bootstrap "
        f"resamples of the clean clips (within each category, {5 if args.quick else 20} pairs)."
    )
    rep.note(
        f"{len(clips)} clips, {len(np.unique(labels))} categories; rankings use each unit's per-clip max, "
        f"probes the per-clip mean (logistic regression trained on clean clips, {cv}, tested on the "
        "perturbed held-out clips)."
    )
    rep.table("robustness", table, "Per condition and layer: response and ranking stability, probe accuracy.")
    rep.figure(
        "top_overlap",
        sf.robustness_figure(
            table,
            value="top_overlap",
            y_title=f"fraction of the clean top-{args.top_n} units kept",
            title=f"Are the most selective units still the most selective? (top-{args.top_n} overlap, mean over categories)",
        ),
        f"Fraction of each category's clean top-{args.top_n} units (by AUROC) that stay in its top-{args.top_n} "
        "after the perturbation, per layer.",
    )
    rep.figure(
        "top_overlap_baselines",
        overlap_baselines_figure(table, top_n=args.top_n),
        f"Per layer: the top-{args.top_n} overlap under each perturbation (points) against its chance level "
        "(grey bar) and the resampling baseline of the clean ranking (dark bar).",
    )
    rep.figure(
        "ranking_spearman",
        sf.robustness_figure(
            table,
            value="auroc_spearman",
            y_title="Spearman rho of unit AUROCs, clean vs perturbed",
            title="Are all units ranked the same? (Spearman rho of AUROC across units, mean over categories)",
            y_range=(-0.1, 1.02),
        ),
        "Rank correlation between the clean and perturbed selectivity (AUROC) of all units of a layer.",
    )
    rep.figure(
        "probe_accuracy",
        sf.robustness_figure(
            table,
            value="probe_accuracy",
            y_title="accuracy (probe trained on clean clips)",
            title="Probes trained on clean clips, tested on perturbed clips (dashed: chance)",
            baseline=lp.chance_level(labels),
            clean="clean_probe_accuracy",
        ),
        "Accuracy of each layer's clean-trained probe on perturbed clips.",
    )
    rep.finish(
        argv=args.argv,
        intro="How SoundNet's unit rankings and linear probes hold up when the same sounds arrive "
        "quieter, noisier, shifted in time or recorded at another sampling rate.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
