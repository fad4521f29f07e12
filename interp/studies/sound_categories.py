"""Sound categories: which units of which layers are selective for which categories of a corpus.

Every unit's per-clip peak activation is tested against every category (one-vs-rest AUROC,
Mann-Whitney p with Benjamini-Hochberg q over all units and categories; see
:mod:`interp.analysis.selectivity`). A unit is *selective* for a category when q < 0.05 and AUROC >= 0.75,
and is labelled with its most selective category. Reported: the fraction of selective units per
layer, a category x layer map, the per-layer mix of unit labels and, for each category, its top
units with the clips that drive them hardest (spectrograms; the unit's peak window outlined).

    python studies/sound_categories.py                          # built-in demo corpus
    python studies/sound_categories.py --corpus path/to/ESC-50 --out reports/esc50_categories
    python studies/sound_categories.py --run runs/minibank

Tables: ``selectivity`` (:data:`interp.analysis.selectivity.SELECTIVITY_COLUMNS`), ``unit_labels`` (layer,
unit, label, best_category, score, auroc, q, n_selective_categories, selective),
``selective_per_layer`` (layer, n_units, n_selective, fraction_selective),
``category_layer_counts`` (layer, category, n_units), ``top_units`` (category, rank, layer, unit,
auroc, q, top_clips).
"""

from __future__ import annotations

import pandas as pd

from interp.analysis import selectivity as sel
from interp.analysis import topclips
from interp.corpus.corpora import load_corpus
from interp.report import figures
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from interp.run.store import STAT_DESCRIPTIONS
from interp.run.traces import clip_spectrogram
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("sound_categories", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument("--top-units", type=int, default=3, help="units shown per category (default 3)")
    ap.add_argument("--top-clips", type=int, default=4, help="clips shown per unit (default 4)")
    args = ap.parse_args(argv)

    # 1. the corpus through every conv layer (--quick: 6 clips of each of 4 categories)
    corpus = (
        quick_subset(load_corpus(args.corpus), per_label=6, max_labels=4) if args.quick and args.run is None else None
    )
    run = obtain_run(args, layers=CONV_LAYERS, corpus=corpus)
    layers = [layer for layer in run.layers if layer in CONV_LAYERS]

    # 2. selectivity of every unit for every category, unit labels, summaries
    stats = sel.run_selectivity(run, layers=layers)
    lab = sel.run_unit_labels(run, layers=layers)
    labels, per_layer, counts = lab["unit_labels"], lab["layers"], lab["counts"]
    cats = sorted(stats["category"].unique())
    stat = stats.attrs["selectivity"]["stat"]
    top = []
    for cat in cats:
        ranked = sel.rank_table(stats, cat, metric="auroc", top=args.top_units)
        for r in ranked.itertuples():
            clips = topclips.top_clips(run, r.layer, int(r.unit), k=args.top_clips, stat=stat)
            top.append(
                {
                    "category": cat,
                    "rank": int(r.rank),
                    "layer": r.layer,
                    "unit": int(r.unit),
                    "auroc": float(r.auroc),
                    "q": float(r.q),
                    "top_clips": list(clips["clip_id"]),
                }
            )
    top = pd.DataFrame(top)

    # 3. report
    rep = Report("sound_categories", args.out, title="Category selectivity of SoundNet units")
    for r in per_layer.itertuples():
        rep.number(f"{r.layer}: selective units", f"{r.n_selective}/{r.n_units} ({r.fraction_selective:.0%})")
    best_layer = per_layer.loc[per_layer["fraction_selective"].idxmax(), "layer"]
    rep.number("layer with the largest fraction of selective units", best_layer)
    rep.note(
        f"Per-clip statistic: {STAT_DESCRIPTIONS.get(stat, stat)} (duration-invariant; clips without a valid frame "
        "in a layer are left out of it). Selective: the unit-level test passes (smallest pair-level q-value's "
        "Bonferroni over categories, BH across units, q < 0.05), the best category has AUROC >= 0.75 and q < 0.05, "
        "and beats each next category in at least 95 % of group-bootstrap resamples; polysemantic: it passes but "
        "other categories cannot be told apart. See docs/statistics.md."
    )
    rep.table("selectivity", stats, "Every (layer, unit, category): AUROC, CSI, d', MI, Mann-Whitney p and q.")
    rep.table("unit_labels", labels, "Each unit's status (selective / polysemantic / unlabelled) and label.")
    rep.table("selective_per_layer", per_layer, "Units labelled selective (and polysemantic) per layer.")
    rep.table("category_layer_counts", counts, "Units labelled with each category, per layer.")
    rep.table("top_units", top, "Each category's most selective units (by AUROC) and their top clips (clip ids).")

    rep.figure(
        "selective_per_layer",
        figures.layer_selectivity_figure(
            per_layer, title="Fraction of units labelled selective, per layer (bars: selective/all)"
        ),
        "Fraction of each layer's units labelled selective for one category (unit-level test, BH across units).",
        width=800,
        height=380,
    )
    piv = counts.pivot_table(index="category", columns="layer", values="n_units", aggfunc="sum").fillna(0)
    rep.figure(
        "category_layer_heatmap",
        figures.category_layer_heatmap(piv, title="Units labelled with each category (each unit counted once)"),
        "Number of units of each layer labelled selective for each category (each unit once, under its label).",
        width=800,
    )
    rep.figure(
        "unit_labels_per_layer",
        sf.unit_label_chart(labels),
        "Per layer, the share of units labelled with each category (grey: not selective).",
    )
    shown = cats[:2] if args.quick else cats
    for cat in shown:
        rows = top[top["category"] == cat]
        specs, cells, wins, row_titles = [], [], [], []
        for r in rows.itertuples():
            tk = topclips.top_clips(run, r.layer, int(r.unit), k=args.top_clips, stat=stat)
            specs.append([clip_spectrogram(run, c) for c in tk["clip_id"]])
            cells.append(
                [
                    f"{run.ok_clips.loc[c, 'label']} · peak {max(float(p), 0.0):.2f} s"
                    for c, p in zip(tk["clip_id"], tk["peak_s"])
                ]
            )
            wins.append(list(zip(tk["start_s"], tk["end_s"])))
            row_titles.append(f"{r.layer}:{r.unit} (AUROC {r.auroc:.2f})")
        name = "top_clips_" + "".join(ch if ch.isalnum() else "_" for ch in cat)
        rep.figure(
            name,
            sf.top_clips_figure(
                specs,
                row_titles,
                cells,
                windows_s=wins,
                title=f"'{cat}': its {len(rows)} most selective units (rows) and the clips that drive each hardest",
            ),
            f"Category '{cat}': its most selective units and their top clips (mel spectrograms, dB re clip peak); "
            "the dotted box is the receptive field of the unit's strongest frame.",
        )
    rep.finish(
        argv=args.argv,
        intro="Which units of SoundNet are selective for which categories of the corpus, layer by layer.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
