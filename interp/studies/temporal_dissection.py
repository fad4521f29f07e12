"""Temporal dissection: which units of which layers fire at the events of which sound concepts.

Soundscapes are mixed from labelled one-shots (:func:`interp.corpus.soundscapes.synthesize_soundscapes`:
the demo's drums by default, at random times and 0 to 20 dB SNR over pink noise), so every event's
onset and offset is known to the sample. Each unit of every conv layer is thresholded at its 95 %
quantile over valid frames and its above-threshold frames are scored against each concept's event
frames (IoU), with two nulls (:mod:`interp.analysis.dissection`): *alignment* (``q_time``: the events
shifted circularly in time; does the unit fire at these events at all?) and *specificity*
(``q_label``: the labels permuted across events; does it fire at this concept's events more than at
other events?). A unit *has a concept* when both q < 0.05; it fires at *events only* when some concept
passes the alignment null and none the specificity null. Reported per layer: the fraction of units
with a concept (and with events only), the IoU distribution, and for the best units of each concept
their onset-aligned profile and onset latency (the time of the profile's peak).

    python studies/temporal_dissection.py                                # 500 scapes of 10 s, demo drums
    python studies/temporal_dissection.py --quick                        # 40 scapes of 6 s, conv1..conv5
    python studies/temporal_dissection.py --labels kick_drum,snare_drum,cymbal,tabla --n 1000
    python studies/temporal_dissection.py --run runs/scapes              # a run already dissected
    python studies/temporal_dissection.py --run runs/dcase --events dcase/events.tsv

Tables: ``dissection`` (:data:`interp.analysis.dissection.DISSECTION_COLUMNS`), ``dissection_units``
(layer, unit, status, concept, iou, q_time, q_label, n_concepts, latency_s), ``layer_summary``
(layer, n_units, n_concept, n_events_only, n_unlabelled, fraction_concept, fraction_events_only,
median_iou, max_iou), ``concept_summary`` (layer, concept, n_units, n_passing, n_aligned, best_unit,
best_iou, best_q_time, best_q_label, best_latency_s, max_iou), ``best_units`` (concept, rank, layer,
unit, iou, iou_null_time, iou_null_label, q_time, q_label, precision, recall, threshold, latency_s,
peak_activation, concept_frames, above_frames), ``best_profiles`` (concept, layer, unit, t_s, activation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis.dissection import DissectConfig, run_dissection
from interp.corpus.soundscapes import synthesize_soundscapes
from interp.report.reporting import Report, obtain_run, study_parser
from interp.report.study_figures import dissection as figs
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.geometry import layer_geometry
from soundnet.model import CONV_LAYERS

DEFAULT_LABELS = ("kick_drum", "snare_drum", "cymbal")
#: --quick: scapes, their length (s) and the layers (conv6 and conv7 see few valid frames in 6 s scapes).
QUICK_N, QUICK_DURATION_S = 40, 6.0
QUICK_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")


def _latencies(profiles: pd.DataFrame) -> pd.DataFrame:
    """Per (layer, unit, concept): ``latency_s`` (the bin centre of the profile's peak) and ``peak_activation``."""
    p = profiles.dropna(subset=["activation"])
    idx = p.groupby(["layer", "unit", "concept"], sort=False)["activation"].idxmax()
    peaks = p.loc[idx.to_numpy(), ["layer", "unit", "concept", "t_s", "activation"]]
    peaks["t_s"] = peaks["t_s"].round(6)  # bin centres, without the float noise of their arithmetic
    return peaks.rename(columns={"t_s": "latency_s", "activation": "peak_activation"}).reset_index(drop=True)


def _load_dissection(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The dissection tables a run directory holds (``soundnet-interp dissect`` or this study wrote them)."""
    meta_path = run.path / "dissection.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return (
        run.read_table("dissection"),
        run.read_table("dissection_units"),
        run.read_table("dissection_profiles"),
        meta,
    )


def _summaries(
    table: pd.DataFrame, units: pd.DataFrame, lat: pd.DataFrame, *, q_max: float, top: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``layer_summary``, ``concept_summary`` and ``best_units`` (see the module docstring)."""
    layers = [layer for layer in CONV_LAYERS if layer in set(units["layer"])]
    rows = []
    for layer in layers:
        g = units[units["layer"] == layer]
        n = len(g)
        n_c, n_e = int((g["status"] == "concept").sum()), int((g["status"] == "events").sum())
        rows.append(
            {
                "layer": layer,
                "n_units": n,
                "n_concept": n_c,
                "n_events_only": n_e,
                "n_unlabelled": n - n_c - n_e,
                "fraction_concept": n_c / max(n, 1),
                "fraction_events_only": n_e / max(n, 1),
                "median_iou": float(g["iou"].median()),
                "max_iou": float(g["iou"].max()),
            }
        )
    layer_summary = pd.DataFrame(rows)

    t = table.merge(lat, on=["layer", "unit", "concept"], how="left")
    t["passing"] = (t["q_time"] < q_max) & (t["q_label"] < q_max)
    crow, best = [], []
    for concept in sorted(t["concept"].astype(str).unique()):
        for layer in layers:
            g = t[(t["layer"] == layer) & (t["concept"] == concept)]
            ok = g[g["passing"]].sort_values("iou", ascending=False, kind="stable")
            b = ok.iloc[0] if len(ok) else None
            crow.append(
                {
                    "layer": layer,
                    "concept": concept,
                    "n_units": len(g),
                    "n_passing": len(ok),
                    "n_aligned": int((g["q_time"] < q_max).sum()),
                    "best_unit": int(b["unit"]) if b is not None else -1,
                    "best_iou": float(b["iou"]) if b is not None else np.nan,
                    "best_q_time": float(b["q_time"]) if b is not None else np.nan,
                    "best_q_label": float(b["q_label"]) if b is not None else np.nan,
                    "best_latency_s": float(b["latency_s"]) if b is not None else np.nan,
                    "max_iou": float(g["iou"].max()) if len(g) else np.nan,
                }
            )
            for rank, r in enumerate(ok.head(top).itertuples()):
                best.append(
                    {
                        "concept": concept,
                        "rank": rank,
                        "layer": layer,
                        "unit": int(r.unit),
                        "iou": float(r.iou),
                        "iou_null_time": float(r.iou_null_time),
                        "iou_null_label": float(r.iou_null_label),
                        "q_time": float(r.q_time),
                        "q_label": float(r.q_label),
                        "precision": float(r.precision),
                        "recall": float(r.recall),
                        "threshold": float(r.threshold),
                        "latency_s": float(r.latency_s),
                        "peak_activation": float(r.peak_activation),
                        "concept_frames": int(r.concept_frames),
                        "above_frames": int(r.above_frames),
                    }
                )
    cols = [
        "concept",
        "rank",
        "layer",
        "unit",
        "iou",
        "iou_null_time",
        "iou_null_label",
        "q_time",
        "q_label",
        "precision",
        "recall",
        "threshold",
        "latency_s",
        "peak_activation",
        "concept_frames",
        "above_frames",
    ]
    return layer_summary, pd.DataFrame(crow), pd.DataFrame(best, columns=cols)


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("temporal_dissection", __doc__.splitlines()[0], default_corpus="demo")
    ap.add_argument("--n", type=int, default=None, help="soundscapes (default 500; --quick 40)")
    ap.add_argument("--duration-s", type=float, default=None, help="length of each scape, s (default 10; --quick 6)")
    ap.add_argument(
        "--labels",
        default=",".join(DEFAULT_LABELS),
        help=f"comma-separated one-shot labels of --corpus to mix (default {','.join(DEFAULT_LABELS)})",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the scapes and of the nulls (default 0)")
    ap.add_argument("--layers", help="comma-separated conv layers to dissect (default all; --quick conv1..conv5)")
    ap.add_argument("--quantile", type=float, default=0.95, help="each unit's threshold quantile (default 0.95)")
    ap.add_argument("--top-units", type=int, default=3, help="best units per concept and layer (default 3)")
    ap.add_argument("--events", type=Path, help="with --run: dissect the run against these events if not yet done")
    args = ap.parse_args(argv)
    default_layers = QUICK_LAYERS if args.quick else CONV_LAYERS
    layers = tuple(s.strip() for s in args.layers.split(",") if s.strip()) if args.layers else tuple(default_layers)
    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    n = args.n if args.n is not None else (QUICK_N if args.quick else 500)
    duration_s = args.duration_s if args.duration_s is not None else (QUICK_DURATION_S if args.quick else 10.0)
    q_max = DissectConfig().q_max

    # 1. the scapes, recorded; then dissected (or a run that was dissected already)
    scape_note = ""
    if args.run is not None:
        run = open_run(args.run)
        if not run.has_table("dissection"):
            if args.events is None:
                raise ParameterError(
                    f"The run {str(args.run)!r} holds no dissection tables; dissect it first "
                    "(`soundnet-interp dissect RUN --events EVENTS`) or pass --events."
                )
            run_dissection(run.path, args.events, layers=layers, quantile=args.quantile, seed=args.seed)
    else:
        scapes = Path(args.out) / "soundscapes"
        events = synthesize_soundscapes(args.corpus, scapes, n=n, duration_s=duration_s, labels=labels, seed=args.seed)
        counts = events["label"].value_counts().sort_index()
        scape_note = (
            f"{n} soundscapes of {duration_s:g} s mixed from the one-shots of `{args.corpus}` "
            f"({', '.join(f'{k} {v}' for k, v in counts.items())} events, 3 to 8 per scape, 0 to 20 dB SNR over "
            f"pink noise, seed {args.seed}); audio, `events.tsv` and `manifest.csv` in `{scapes}`."
        )
        run = obtain_run(args, layers=layers, corpus=str(scapes / "manifest.csv"))
        run_dissection(run.path, scapes / "events.tsv", layers=layers, quantile=args.quantile, seed=args.seed)
        print(f"dissected: {run.path}", file=sys.stderr)
    table, units, profiles, meta = _load_dissection(run)
    settings = meta.get("settings", {})
    q_max = float(settings.get("q_max", q_max))
    quantile = float(settings.get("quantile", args.quantile))

    # 2. per layer and concept: counts, best units, onset latencies
    lat = _latencies(profiles)
    units = units.merge(lat[["layer", "unit", "concept", "latency_s"]], on=["layer", "unit", "concept"], how="left")
    layer_summary, concept_summary, best_units = _summaries(table, units, lat, q_max=q_max, top=args.top_units)
    top1 = best_units[best_units["rank"] == 0].sort_values("iou", ascending=False).groupby("concept").head(1)
    top1 = top1.sort_values("concept").reset_index(drop=True)
    keys = pd.MultiIndex.from_frame(best_units[["layer", "unit", "concept"]])
    shown = pd.MultiIndex.from_frame(profiles[["layer", "unit", "concept"]]).isin(keys)
    best_profiles = profiles.loc[shown, ["concept", "layer", "unit", "t_s", "activation"]].reset_index(drop=True)

    # 3. report
    rep = Report("temporal_dissection", args.out, title="Temporal dissection of SoundNet units")
    for r in layer_summary.itertuples():
        rep.number(
            f"{r.layer}: units with a concept / with events only / all",
            f"{r.n_concept} / {r.n_events_only} / {r.n_units}",
            f"{r.fraction_concept:.0%} with a concept",
        )
    concepts = sorted(table["concept"].astype(str).unique())
    for concept in concepts:
        b = top1[top1["concept"] == concept]
        if len(b):
            r = b.iloc[0]
            rep.number(
                f"{concept}: best unit",
                f"{r['layer']}:{int(r['unit'])}",
                f"IoU {r['iou']:.2f}, q_time {r['q_time']:.1g}, q_label {r['q_label']:.1g}, "
                f"onset latency {r['latency_s']:+.2f} s",
            )
        else:
            rep.number(f"{concept}: best unit", "none", "no unit passes both nulls")
    if scape_note:
        rep.note(scape_note)
    rep.note(
        f"Threshold: each unit's {quantile:g} quantile over its valid frames (frames whose whole receptive field lies "
        "inside the clip); a frame belongs to a concept when its centre lies inside one of the concept's events. "
        "IoU = frames both above threshold and in the concept / frames either above threshold or in it."
    )
    rep.note(
        "Two nulls, each with Benjamini-Hochberg q over all units x concepts. Alignment (q_time): each clip's event "
        "spans are shifted circularly by a random lag; a small q_time says the unit fires at these events at all, "
        "more than at random times of the same clips. Specificity (q_label): the labels are permuted across the "
        "events (within clips); a small q_label says it fires at this concept's events more than at other events. "
        f"A unit has a concept when both q < {q_max:g} (its concept: the passing one with the highest IoU); it is "
        f"counted under 'events' (fires at any event) when some concept has q_time < {q_max:g} but none passes "
        "both; otherwise it is unlabelled."
    )
    rep.note(
        "Onset latency: the time (bin centre, 50 ms bins, s from the event onsets) of the peak of the unit's "
        "onset-aligned mean activation (not thresholded), over all events of the concept from 1 s before to 2 s "
        "after. Frames are placed at the centre of their receptive field."
    )
    if args.run is None:
        long_rf = [layer for layer in layers if layer_geometry(layer).receptive_field_s > duration_s / 2]
        if long_rf:
            rep.note(
                f"Receptive fields of {', '.join(long_rf)} span more than half a {duration_s:g} s scape "
                f"({', '.join(f'{layer_geometry(x).receptive_field_s:.1f} s' for x in long_rf)}): few valid frames, "
                "and events a receptive field cannot tell apart; expect few or no units there."
            )
    rep.table("dissection", table, "Every (layer, unit, concept): IoU, the nulls' IoU, p and q, precision, recall.")
    rep.table(
        "dissection_units",
        units,
        "Each unit's status (concept / events / unlabelled), its best concept and the onset latency for it.",
    )
    rep.table("layer_summary", layer_summary, "Per layer: units with a concept, with events only, unlabelled.")
    rep.table(
        "concept_summary",
        concept_summary,
        "Per layer and concept: units passing both nulls (n_passing), the alignment null (n_aligned), the best "
        "passing unit (-1: none) with its IoU, q and onset latency, and the highest IoU of any unit.",
    )
    rep.table(
        "best_units",
        best_units,
        f"The best {args.top_units} units (by IoU) of each concept in each layer among those passing both nulls.",
    )
    rep.table("best_profiles", best_profiles, "Onset-aligned mean activation of the best units (t_s: s from onset).")

    rep.figure(
        "dissection_per_layer",
        figs.dissection_status_figure(units),
        "Per layer, the fraction of units with a concept (both nulls pass for some concept) and with events "
        "only (the alignment null passes, no specificity null does), stacked; each unit counted once.",
    )
    rep.figure(
        "iou_per_layer",
        figs.dissection_iou_figure(units),
        "Per layer, the IoU of each unit with its best concept: all units (grey box) and, highlighted, the units "
        "passing both nulls (box and points).",
    )
    if len(top1):
        rep.figure(
            "onset_profiles",
            figs.onset_profiles_figure(profiles, top1),
            "For each concept, the best unit passing both nulls (highest IoU over the layers): its mean activation "
            "from 1 s before to 2 s after the concept's onsets (dotted: its threshold; marker: its peak).",
        )
    rep.figure(
        "onset_latency",
        figs.onset_latency_figure(best_units),
        f"Onset latency (peak of the onset-aligned profile) of the best {args.top_units} units of each concept in "
        "each layer, among those passing both nulls (large: the layer's best unit).",
    )
    rep.finish(
        argv=args.argv,
        intro="Which units of SoundNet fire at the events of which sound concepts, layer by layer: NetDissect in "
        "time, on soundscapes whose events are known to the sample.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
