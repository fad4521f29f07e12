"""Unit portraits: the top units of each layer and category, three portraits of each side by side.

For every category and every layer, the ``--top`` units with the highest one-vs-rest AUROC
(:mod:`interp.analysis.selectivity`) are portrayed three ways, in one figure each:

1. *what it wants to hear*: a feature visualization (:mod:`interp.analysis.visualize`; gradient
   ascent on a resynthesised spectrogram, several seeds, the best one shown and its activation
   relative to the unit's best natural clip);
2. *what drives it in its top clip*: occlusion attribution (:mod:`interp.analysis.attribution`) of the
   unit's activation at its peak frame in the clip with its highest ``vmean``, over the clip's
   spectrogram, with the top-attributed region's and its complement's audio;
3. *its STRF* (:mod:`interp.analysis.strf`): the ridge-regression linear filter of the log-mel
   spectrogram in the receptive field, and how well it predicts held-out clips (``r_heldout``).

    python studies/unit_portraits.py                                  # demo corpus, conv3 conv5 conv7
    python studies/unit_portraits.py --quick --out /tmp/portraits      # 2 categories, conv3 conv5
    python studies/unit_portraits.py --run runs/demo --layers conv5 --top 2 --categories speech,tabla

Tables: ``portrait_units`` (category, rank, layer, unit, auroc, q, status, unit_label, relative_vmean,
...; one row per portrayed unit and category), ``strf_layers`` (layer, n_units, n_clips, r_median,
r_q90), ``attribution_maps`` (layer, unit, clip_id and :meth:`Attribution.to_frame`'s columns).
Audio (``audio/``): each unit's best seed (``<layer>_<unit>.visualization.wav``, the other seeds
beside it) and its top clip's top-attributed region and complement (``.top.wav``, ``.complement.wav``).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from interp.analysis import selectivity as sel
from interp.analysis import topclips
from interp.analysis.attribution import Attribution, run_attribution
from interp.analysis.strf import STRFConfig, run_strf
from interp.analysis.visualize import VisualizeConfig, run_visualize, visualization_spectrogram
from interp.corpus.corpora import load_corpus
from interp.report.figures.portrait_charts import STRF_NOTE
from interp.report.reporting import Report, obtain_run, quick_subset, study_parser
from interp.report.study_figures.portraits import unit_portrait_figure
from interp.run.store import atomic_write_bytes
from interp.run.traces import clip_spectrogram
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, layer_geometry
from soundnet.model import CONV_LAYERS, load_soundnet

QUICK_LAYERS = ("conv3", "conv5")
DEFAULT_LAYERS = ("conv3", "conv5", "conv7")

#: Columns of the ``portrait_units`` table.
PORTRAIT_COLUMNS = (
    "category", "rank", "layer", "unit", "auroc", "q", "status", "unit_label", "vis_vmean", "natural_vmean",
    "relative_vmean", "diversity", "n_seeds", "steps", "top_clip", "top_clip_label", "clip_vmean",
    "attr_activation", "attr_target_s", "attr_top_share", "attr_n_time", "r_heldout", "strf_alpha", "figure",
    "wav_visualization", "wav_top", "wav_complement",
)  # fmt: skip


def _csv(text: str | None, fallback: tuple[str, ...]) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else list(fallback)


def _n_time(layer: str, duration_s: float) -> int:
    """Time bins of the attribution grid: about 8 per receptive field, 16 to 128 over the clip."""
    rf_s = layer_geometry(layer).receptive_field_samples / SAMPLE_RATE_HZ
    return int(min(128, max(16, math.ceil(duration_s / (rf_s / 8)))))


def _write_float_wav(path: Path, y: np.ndarray) -> None:
    """Float WAV at 22050 Hz, not normalised (top and complement keep their level and add up to the clip)."""
    buf = io.BytesIO()
    soundfile.write(
        buf, np.clip(np.asarray(y, dtype=np.float32), -1.0, 1.0), SAMPLE_RATE_HZ, format="WAV", subtype="FLOAT"
    )
    atomic_write_bytes(path, buf.getvalue())


def _top_share(a: Attribution) -> float:
    """Share of the map's positive mass inside the top region (NaN without positive cells)."""
    pos = np.clip(a.map, 0.0, None)
    total = float(pos.sum())
    return float(pos[a.top_mask].sum() / total) if total > 0 else math.nan


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("unit_portraits", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument(
        "--layers", help=f"comma-separated conv layers (default {','.join(DEFAULT_LAYERS)}; --quick: conv3,conv5)"
    )
    ap.add_argument("--top", type=int, default=1, help="units per layer and category (default 1)")
    ap.add_argument("--categories", help="comma-separated categories (default all; --quick: the first 2)")
    ap.add_argument("--seeds", type=int, help="visualization seeds (default 3; --quick 2)")
    ap.add_argument("--steps", type=int, help="visualization steps (default 48; --quick 16)")
    ap.add_argument("--strf-clips", type=int, help="clips the STRFs are fitted on (default 300; --quick 40)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    layers = _csv(args.layers, QUICK_LAYERS if args.quick else DEFAULT_LAYERS)
    bad = [x for x in layers if x not in CONV_LAYERS or x == "conv1"]
    if bad or not layers or args.top < 1:
        raise ParameterError(
            f"The '--layers' flag of unit_portraits must name conv2..conv7 and '--top' be >= 1. Got {bad}, {args.top}."
        )
    n_seeds = args.seeds or (2 if args.quick else 3)
    steps = args.steps if args.steps is not None else (16 if args.quick else 48)
    strf_clips = args.strf_clips or (40 if args.quick else 300)

    # 1. the corpus through the layers (--quick: 6 clips of each of 4 categories)
    corpus = (
        quick_subset(load_corpus(args.corpus), per_label=6, max_labels=4) if args.quick and args.run is None else None
    )
    run = obtain_run(args, layers=layers, corpus=corpus)
    path = run.meta.get("weights_path")
    model = load_soundnet(path if path and Path(path).is_file() else None)

    # 2. selection: the top units by AUROC per category and layer, with their unit labels
    stats = sel.run_selectivity(run, layers=layers)
    labels = sel.run_unit_labels(run, layers=layers)["unit_labels"].set_index(["layer", "unit"])
    stat = stats.attrs["selectivity"]["stat"]
    cats_all = sorted(stats["category"].astype(str).unique())
    cats = _csv(args.categories, tuple(cats_all[:2] if args.quick else cats_all))
    if set(cats) - set(cats_all):
        raise ParameterError(
            f"The '--categories' flag of unit_portraits must name categories of the run ({', '.join(cats_all)}). "
            f"Got {sorted(set(cats) - set(cats_all))} instead."
        )
    chosen = []
    for cat in cats:
        for layer in layers:
            for r in sel.rank_table(stats, cat, metric="auroc", layer=layer, top=args.top).itertuples():
                chosen.append((cat, int(r.rank), layer, int(r.unit), float(r.auroc), float(r.q)))
    # a layer whose receptive field is longer than every clip has no valid frame, hence no AUROC
    skipped = [layer for layer in layers if not any(c[2] == layer for c in chosen)]
    layers = [layer for layer in layers if layer not in skipped]
    longest = float(run.ok_clips["duration_s"].max())
    if not layers:
        raise ParameterError(
            f"The run has no clip long enough for a valid frame of {', '.join(skipped)} (longest clip "
            f"{longest:.2f} s): no unit can be ranked. Choose shorter-field layers with --layers, or a corpus "
            "of longer clips."
        )

    # 3. STRFs of the layers (one fit per layer serves all its units)
    strfs = run_strf(run, model=model, layers=layers, max_clips=strf_clips, config=STRFConfig())
    n_strf_clips = min(strf_clips, len(run.ok_clips))

    # 4. per unit: visualization, attribution on its top clip, STRF; one figure, audio
    rep = Report("unit_portraits", args.out, title="Unit portraits: what the top units want to hear")
    audio = Path(args.out) / "audio"
    audio.mkdir(parents=True, exist_ok=True)
    vcfg = VisualizeConfig(n_seeds=n_seeds, steps=steps)
    done: dict[tuple[str, int], dict] = {}
    rows, maps = [], []
    for cat, rank, layer, unit, auroc, q in chosen:
        key = (layer, unit)
        if key not in done:
            stem = f"{layer}_{unit}"
            vis = run_visualize(run, layer, unit, model=model, config=vcfg, out=audio / f"{stem}.visualization.wav")
            clip = topclips.top_clips(run, layer, unit, k=1, stat="vmean").iloc[0]
            cid = str(clip["clip_id"])
            n_time = _n_time(layer, float(clip["duration_s"]))
            attr = run_attribution(run, layer, unit, cid, model=model, method="occlusion", target="peak", n_time=n_time)
            _write_float_wav(audio / f"{stem}.top.wav", attr.top_audio)
            _write_float_wav(audio / f"{stem}.complement.wav", attr.complement_audio)
            maps.append(attr.to_frame().assign(layer=layer, unit=unit, clip_id=cid))
            st = strfs[layer]
            srow = st.table.set_index("unit").loc[unit]
            b = vis.best_seed
            done[key] = dict(
                vis_vmean=float(vis.vmean[b]), natural_vmean=float(vis.natural_vmean),
                relative_vmean=float(vis.relative_vmean[b]), diversity=float(vis.diversity), n_seeds=n_seeds,
                steps=steps, top_clip=cid, top_clip_label=str(clip["label"]), clip_vmean=float(clip["value"]),
                attr_activation=float(attr.baseline_activation), attr_target_s=float(attr.frame_times_s[0]),
                attr_top_share=_top_share(attr), attr_n_time=n_time, r_heldout=float(srow["r_heldout"]),
                strf_alpha=float(srow["alpha"]), figure=f"portrait_{stem}",
                wav_visualization=f"audio/{stem}.visualization.wav", wav_top=f"audio/{stem}.top.wav",
                wav_complement=f"audio/{stem}.complement.wav",
                _vis=vis, _attr=attr, _cats=[],
            )  # fmt: skip
        d = done[key]
        d["_cats"].append((cat, auroc))
        status, label = (
            (str(labels.at[key, "status"]), str(labels.at[key, "label"])) if key in labels.index else ("", "")
        )
        rows.append(
            dict(
                category=cat, rank=rank, layer=layer, unit=unit, auroc=auroc, q=q, status=status, unit_label=label,
                **{k: v for k, v in d.items() if not k.startswith("_")},
            )
        )  # fmt: skip
    table = pd.DataFrame(rows, columns=list(PORTRAIT_COLUMNS))

    for (layer, unit), d in done.items():
        vis, attr, st = d["_vis"], d["_attr"], strfs[layer]
        cats_txt = ", ".join(f"'{c}' AUROC {a:.2f}" for c, a in d["_cats"])
        rel = d["relative_vmean"]
        title = (
            f"{layer}:{unit} · {cats_txt} · visualization {rel:.2f}x its best natural clip"
            f" · STRF held-out r {d['r_heldout']:.2f}"
        )
        fig = unit_portrait_figure(
            visualization_spectrogram(vis.best_waveform),
            clip_spectrogram(run, d["top_clip"]),
            attr.map,
            attr.time_edges_s,
            attr.freq_edges_hz,
            st.filters[unit],
            st.lag_s,
            st.mel_hz,
            evaluated=attr.evaluated,
            top_mask=attr.top_mask,
            target_s=attr.frame_times_s[0],
            panel_titles=(
                f"what it wants to hear (best of {len(vis.vmean)} seeds, diversity {d['diversity']:.2f})",
                f"what drives it in '{d['top_clip_label']}' ({d['top_clip']})",
                f"its STRF (held-out r {d['r_heldout']:.2f})",
            ),
            title=title,
        )
        rep.figure(
            d["figure"],
            fig,
            f"{layer}:{unit} ({cats_txt}): left, the mel spectrogram of its feature visualization's best seed "
            f"(activation {rel:.2f}x its best natural clip); middle, occlusion attribution of its peak frame "
            f"(dotted line: the centre of its receptive field) in its top clip '{d['top_clip']}' "
            f"({d['top_clip_label']}), red over the clip's spectrogram, top region outlined; right, its STRF "
            "(red: energy there raises the unit, blue: lowers it).",
        )

    # 5. report
    strf_layers = pd.DataFrame(
        [
            dict(
                layer=layer,
                n_units=len(st.table),
                n_clips=n_strf_clips,
                r_median=float(np.nanmedian(st.table["r_heldout"])),
                r_q90=float(np.nanquantile(st.table["r_heldout"], 0.9)),
            )
            for layer, st in strfs.items()
        ]
    )
    rep.number("units portrayed", len(done), f"{len(table)} (category, layer) selections, top {args.top}")
    for layer in layers:
        t = table[table["layer"] == layer].drop_duplicates(["layer", "unit"])
        if len(t):
            rep.number(
                f"{layer}: median relative activation / held-out r of the portrayed units",
                f"{t['relative_vmean'].median():.2f}x / {t['r_heldout'].median():.2f}",
                f"layer median r {strf_layers.set_index('layer').loc[layer, 'r_median']:.2f}",
            )
    rep.number("selected units labelled selective", int((table["status"] == "selective").sum()), f"of {len(table)}")
    for layer in skipped:
        rf_s = layer_geometry(layer).receptive_field_samples / SAMPLE_RATE_HZ
        rep.number(
            f"{layer}: not portrayed",
            f"no clip has a whole receptive field ({rf_s:.2f} s; longest clip {longest:.2f} s)",
        )
    rep.number("elapsed", f"{time.perf_counter() - t0:.0f} s")
    rep.note(
        "Selection: for each category and layer, the units with the highest one-vs-rest AUROC of their per-clip "
        f"'{stat}' (Mann-Whitney q with BH over all units and categories); 'status' is the unit's label from the "
        "sound_categories rules (selective / polysemantic / unlabelled) - a top unit need not be selective."
    )
    rep.note(
        f"What it wants to hear: {n_seeds} seeds x {steps} Adam steps of a resynthesised multi-resolution "
        "spectrogram maximising the unit's mean over its valid frames; relative_vmean = that activation / the "
        "unit's best natural clip's. Caveat: it is one of many maximisers (diversity = mean pairwise log-mel "
        "correlation of the seeds: near 1 the seeds agree, near 0 they found unrelated sounds), and may "
        "exaggerate features no natural sound combines. Listen to audio/<layer>_<unit>.visualization.wav."
    )
    rep.note(
        "What drives it: occlusion of mel x time cells of the top clip (by vmean), silencing one cell at a time "
        "and reading the unit at its peak frame (not its mean over the clip); only cells that reach that frame's "
        "receptive field are evaluated, about 8 time bins per field. attr_top_share = share of the positive mass "
        "in the top 10 % of cells; audio/<stem>.top.wav and .complement.wav (float, unnormalised) add up to the clip."
    )
    rep.note(
        f"STRF: ridge regression of the unit's valid frames on the log-mel spectrogram in its receptive field, on "
        f"{n_strf_clips} clips, 5 folds of whole clips; {STRF_NOTE}. A low r means the filter does not describe "
        "the unit, however structured it looks."
    )
    maps_df = pd.concat(maps, ignore_index=True)
    rep.table("portrait_units", table, "Each (category, layer) top unit with the numbers of its three portraits.")
    rep.table("strf_layers", strf_layers, "Held-out r of every STRF of each layer (the context of the units' r).")
    rep.table(
        "attribution_maps",
        maps_df[["layer", "unit", "clip_id"] + [c for c in maps_df.columns if c not in ("layer", "unit", "clip_id")]],
        "Every portrayed unit's attribution map on its top clip, one row per cell.",
    )
    rep.finish(
        argv=args.argv,
        intro="The most category-selective units of each layer, each seen three ways: the sound it wants to hear, "
        "what drives it in its top clip, and its spectro-temporal receptive field.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
