"""The ``soundnet-interp`` command: thin over :mod:`soundnet` and :mod:`interp`.

Sub-commands
------------
record     record every unit over a corpus into a run directory
analyze    selectivity, unit labels and top clips for a run directory
rank       print the units most selective for a category
unit       print one unit's card
soundscapes  synthesize soundscapes with strong labels from a corpus of one-shots
dissect    temporal dissection: every unit against time-stamped events
strf       spectro-temporal receptive fields of every conv unit
visualize  what a unit wants to hear (audio optimised to drive it)
attribute  which time-frequency regions of a clip drive a unit
predict    object and place predictions for audio files
weights    fetch and verify the pretrained weights
dashboard  browse a run in the Dash app
study      run one of the studies (:mod:`interp.studies`)

Each sub-command imports what it needs when it runs: the command line starts in 1.2 s (torch is
the floor); importing the dashboard, Plotly and the analyses up front made it 2.0 s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from soundnet.errors import SoundNetError

__all__ = ["main", "build_parser"]


def _layers(text: str) -> tuple[str, ...]:
    from soundnet.model import LAYERS

    names = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [n for n in names if n not in LAYERS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown layer(s) {bad}; choose from {','.join(LAYERS)}")
    return names


def _cmd_record(args: argparse.Namespace) -> int:
    from interp.recording import RecordConfig, RecordSummary, record_corpus

    settings = dict(
        batch_size=args.batch_size,
        decoder=args.decoder,
        device=args.device,
        topk=args.topk,
        shard_size=args.shard_size,
        short=args.short,
        heads_short=args.heads_short,
        edge=args.edge,
        chunk_s=args.chunk_s,
        fast=not args.no_fast,
    )
    if args.workers is not None:
        settings["workers"] = args.workers
    if args.layers:
        settings["layers"] = args.layers
    corpus_options = {}
    if args.esc10:
        corpus_options["esc10"] = True
    if args.segment_s:
        corpus_options["segment_s"] = args.segment_s
    if args.label_separator:
        corpus_options["label_separator"] = args.label_separator
    common = dict(
        config=RecordConfig(**settings),
        weights=args.weights,
        overwrite=args.overwrite,
        progress=not args.quiet,
        corpus_options=corpus_options,
        max_shards=args.max_shards,
    )
    summary: RecordSummary
    if args.engine == "ray":
        from interp.recording.ray_engine import record_corpus_ray

        summary = record_corpus_ray(
            args.corpus,
            args.out,
            address=args.address,
            num_actors=args.num_actors,
            use_gpu=args.device.startswith("cuda"),
            **common,
        )
    else:
        summary = record_corpus(args.corpus, args.out, **common)
    print(summary)
    if args.strict and summary.n_failed:
        print(f"--strict: {summary.n_failed} clip(s) failed", file=sys.stderr)
        return 3
    return 0


def _cmd_analyze(args: argparse.Namespace) -> int:
    from interp.analysis.nuisance import format_nuisance_warnings
    from interp.analysis.selectivity import analyze
    from interp.analysis.unitlabels import selectivity_notes
    from interp.run.store import STAT_DESCRIPTIONS, open_run

    run = open_run(args.run)
    control = tuple(c for c in (args.control or "").split(",") if c)
    res = analyze(run, stat=args.stat, recompute=args.overwrite, control=control, memory_gb=args.memory_gb)
    layers = res["layers"]
    what = STAT_DESCRIPTIONS[args.stat]
    print(
        f"selectivity of {len(res['unit_labels'])} units x {res['selectivity']['category'].nunique()} "
        f"categories ({what}) -> {run.path}/selectivity.parquet"
    )
    print(
        "units labelled (unit-level test, BH across units; selective = best category beats the runner-up"
        + (f"; controlling for {', '.join(control)}" if control else "")
        + "):"
    )
    for row in layers.itertuples():
        poly = getattr(row, "n_polysemantic", 0)
        print(
            f"  {row.layer:8s} {row.n_selective:5d} / {row.n_units:<5d} selective ({row.fraction_selective:.0%}), "
            f"{poly} polysemantic"
        )
    for note in selectivity_notes(res["selectivity"]):
        print(f"note: {note}")
    warnings = format_nuisance_warnings(res["nuisance"])
    if warnings:
        print(
            f"warning: a nuisance alone separates {len(warnings)} categor{'y' if len(warnings) == 1 else 'ies'} "
            f"(AUROC >= 0.9; {run.path}/nuisance.parquet): read their units' selectivity with it"
        )
        for line in warnings:
            print(f"  {line}")
    return 0


def _cmd_rank(args: argparse.Namespace) -> int:
    from interp.analysis.selectivity import rank_units
    from interp.report.cards import format_rank_table
    from interp.run.store import open_run

    run = open_run(args.run)
    table = rank_units(run, args.category, metric=args.metric, layer=args.layer, top=args.top)
    print(format_rank_table(table))
    if args.category and not args.no_crossfit:
        from interp.analysis.crossfit import run_crossfit_ranking
        from interp.report.cards import format_crossfit_table

        stat = (run.read_table("selectivity").attrs.get("selectivity") or {}).get("stat", "vmean")
        print()
        print(
            "The 95% CI above is computed on the clips that chose these units (too narrow: selection).\n"
            "Selection-free: units chosen on one half of the groups, AUROC and group-bootstrap CI on the other:"
        )
        crossfit = run_crossfit_ranking(run, args.category, layer=args.layer, stat=stat, top=min(args.top, 10))
        print(format_crossfit_table(crossfit))
    return 0


def _unit_arg(text: str) -> tuple[str, int]:
    """``LAYER:INDEX`` as ``(layer, index)``."""
    layer, _, unit = text.partition(":")
    if not unit.isdigit():
        raise SystemExit(f"error: units are written LAYER:INDEX, e.g. conv7:123. Got {text!r}.")
    return layer, int(unit)


def _cmd_unit(args: argparse.Namespace) -> int:
    from interp.report.cards import unit_card
    from interp.run.store import open_run

    layer, unit = _unit_arg(args.unit)
    print(unit_card(open_run(args.run), layer, unit))
    return 0


def _cmd_visualize(args: argparse.Namespace) -> int:
    from interp.analysis.visualize import run_visualize, visualize_layer

    if ":" not in args.unit:  # a whole layer
        table = visualize_layer(args.run, args.unit, progress=True)
        print(table.to_string(index=False, max_rows=40))
        print(f"-> {args.run}/visualize_{args.unit}.parquet (and the cache in {args.run}/cache/visualize/)")
        return 0
    layer, unit = _unit_arg(args.unit)
    vis = run_visualize(args.run, layer, unit, out=args.out, refresh=args.refresh)
    print(vis.summary())
    return 0


def _cmd_attribute(args: argparse.Namespace) -> int:
    from interp.analysis.attribution import format_attribution, run_attribution, write_attribution
    from interp.run.store import open_run

    layer, unit = _unit_arg(args.unit)
    attr = run_attribution(
        open_run(args.run),
        layer,
        unit,
        args.clip_id,
        method=args.method,
        target=args.target,
        n_time=args.n_time,
        n_freq=args.n_freq,
    )
    print(format_attribution(attr))
    if args.out:
        for name, path in write_attribution(attr, args.out).items():
            print(f"  {name}: {path}")
    return 0


def _cmd_soundscapes(args: argparse.Namespace) -> int:
    from interp.corpus.soundscapes import synthesize_soundscapes

    events = synthesize_soundscapes(
        args.source,
        args.out,
        n=args.n,
        duration_s=args.duration_s,
        events_per_scape=tuple(args.events_per_scape),
        labels=args.labels.split(",") if args.labels else None,
        snr_db=tuple(args.snr_db),
        background=args.background,
        overlap=not args.no_overlap,
        seed=args.seed,
    )
    counts = ", ".join(f"{k} {v}" for k, v in events["label"].value_counts().sort_index().items())
    print(f"{args.n} soundscapes of {args.duration_s:g} s, {len(events)} events ({counts}) -> {args.out}")
    print(f"  record them: soundnet-interp record {args.out}/manifest.csv --out RUN")
    print(f"  dissect:     soundnet-interp dissect RUN --events {args.out}/events.tsv")
    return 0


def _cmd_dissect(args: argparse.Namespace) -> int:
    from interp.analysis.dissection import format_dissection, run_dissection

    options = {"quantile": args.quantile}
    if args.layers:
        options["layers"] = tuple(args.layers.split(","))
    res = run_dissection(args.source, args.events, out=args.out, audio_root=args.audio_root, **options)
    print(format_dissection(res))
    where = args.out or args.source
    print(f"-> {where}/dissection.parquet, dissection_units.parquet, dissection_profiles.parquet")
    return 0


def _cmd_strf(args: argparse.Namespace) -> int:
    from interp.analysis.strf import run_strf

    layers = args.layers.split(",") if args.layers else None
    res = run_strf(args.run, layers=layers, max_clips=args.max_clips)
    for layer, r in res.items():
        t = r.table
        print(
            f"  {layer:6s} {len(t):5d} units  held-out r: median {t['r_heldout'].median():.2f}, "
            f"{int((t['r_heldout'] > 0.5).sum())} above 0.5  (field {r.lag_s * len(r.filters[0]):.2f} s in "
            f"{len(r.filters[0])} bins)"
        )
    print(f"-> {args.run}/strf.parquet, strf_filters.parquet")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from soundnet.predict import main as predict_main

    return predict_main(list(args.paths) + ["-k", str(args.k)])


def _cmd_weights(args: argparse.Namespace) -> int:
    from soundnet.weights import main as weights_main

    weights_main()
    return 0


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboard.app import main as dash_main

    argv = [str(args.run), "--host", args.host, "--port", str(args.port)]
    argv += ["--probes", str(args.probes)] if args.probes else []
    return dash_main(argv + (["--debug"] if args.debug else []))


def _cmd_study(args: argparse.Namespace) -> int:
    from interp.studies import STUDIES, run_study

    if args.name not in STUDIES:
        raise SystemExit(f"error: no study {args.name!r}; available: {', '.join(STUDIES)}")
    try:
        return run_study(args.name, args.study_args)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``soundnet-interp``."""
    ap = argparse.ArgumentParser(prog="soundnet-interp", description="Unit-level interpretability of SoundNet.")
    sub = ap.add_subparsers(dest="command", required=True)

    r = sub.add_parser("record", help="record every unit over a corpus into a run directory")
    r.add_argument(
        "corpus", help="'demo', 'probes', or a path (ESC-50, UrbanSound8K, GTZAN, folder-per-class, CSV manifest)"
    )
    r.add_argument("--out", required=True, type=Path, help="run directory (resumed if interrupted)")
    r.add_argument("--layers", type=_layers, help="comma-separated layers (default: all)")
    r.add_argument("--batch-size", type=int, default=16)
    r.add_argument(
        "--workers",
        type=int,
        default=None,
        help="lanes: threads that each decode clips and run the model (default: the CPU cores, at most 8; 0 or 1: one)",
    )
    r.add_argument(
        "--decoder",
        choices=("thread", "process"),
        default="thread",
        help="decode in the lanes (default, fastest) or in worker processes, which turn a decoder "
        "crash on a malformed file into that clip's status (for untrusted files)",
    )
    r.add_argument("--device", default="cpu", help="cpu or cuda")
    r.add_argument("--topk", type=int, default=16, help="clips kept per unit")
    r.add_argument("--shard-size", type=int, default=128, help="clips per resumable shard")
    r.add_argument(
        "--short",
        choices=("pad", "tile", "none"),
        default="pad",
        help="how clips too short for conv7 are lengthened (default pad with silence)",
    )
    r.add_argument(
        "--heads-short",
        choices=("tile", "pad", "none"),
        default="tile",
        help="how clips under 9.5 s are lengthened for the heads only (default tile)",
    )
    r.add_argument(
        "--edge",
        choices=("drop", "keep"),
        default="drop",
        help="leave conv7's padded last frame (and head frames reading it) out of the statistics (default drop)",
    )
    r.add_argument("--segment-s", type=float, help="split files into segments of this many seconds")
    r.add_argument(
        "--label-separator",
        help="separator of a manifest's multi-label 'labels' column (default: the first of ; | , found)",
    )
    r.add_argument("--chunk-s", type=float, default=120.0, help="stream files longer than this in chunks")
    r.add_argument("--esc10", action="store_true", help="ESC-50: keep the ESC-10 subset")
    r.add_argument("--weights", help="a sound8.npy or sound8.pth (default: cache / download)")
    r.add_argument("--overwrite", action="store_true", help="replace a run made from other inputs")
    r.add_argument("--strict", action="store_true", help="exit non-zero when any clip failed")
    r.add_argument("--no-fast", action="store_true", help="use the plain PyTorch model")
    r.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local processes, or a Ray cluster (pip install soundnet-interp[distributed])",
    )
    r.add_argument("--address", help="Ray cluster address (auto, ray://host:10001); default: start a local Ray")
    r.add_argument("--num-actors", type=int, help="Ray: model actors (default: one per CPU or GPU)")
    r.add_argument("--max-shards", type=int, help=argparse.SUPPRESS)
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_cmd_record)

    a = sub.add_parser("analyze", help="selectivity, unit labels and top clips of a run")
    a.add_argument("run", type=Path)
    a.add_argument(
        "--stat",
        choices=("vmean", "max", "mean"),
        default="vmean",
        help="per-clip statistic: vmean (default; mean over valid frames, duration-invariant), max or mean over time",
    )
    a.add_argument(
        "--memory-gb",
        type=float,
        default=4.0,
        help="memory budget: the activation tables are read layer by layer and block by block within it (default 4)",
    )
    a.add_argument(
        "--control",
        help="nuisances to control the labels for, comma-separated: duration, level, centroid, rolloff, "
        "bandwidth, cliff, sample_rate (e.g. duration,bandwidth)",
    )
    a.add_argument("--overwrite", action="store_true", help="recompute existing tables")
    a.set_defaults(func=_cmd_analyze)

    k = sub.add_parser("rank", help="units most selective for a category")
    k.add_argument("run", type=Path)
    k.add_argument("--category", "-c", help="category (default: every category)")
    k.add_argument("--layer", "-l", help="restrict to a layer")
    k.add_argument("--metric", "-m", default="auroc", help="auroc, csi, dprime, mi, iou")
    k.add_argument("--top", type=int, default=20)
    k.add_argument(
        "--no-crossfit", action="store_true", help="skip the cross-fitted (selection-free) table after the ranking"
    )
    k.set_defaults(func=_cmd_rank)

    u = sub.add_parser("unit", help="one unit's card")
    u.add_argument("run", type=Path)
    u.add_argument("unit", help="LAYER:INDEX, e.g. conv7:123")
    u.set_defaults(func=_cmd_unit)

    s = sub.add_parser("soundscapes", help="synthesize soundscapes with strong labels from a corpus of one-shots")
    s.add_argument("source", help="a labelled corpus of one-shots (demo, a folder per class, a manifest, ESC-50)")
    s.add_argument("--out", required=True, type=Path)
    s.add_argument("--n", type=int, default=500, help="soundscapes (default 500)")
    s.add_argument("--duration-s", type=float, default=10.0)
    s.add_argument("--events-per-scape", type=int, nargs=2, default=(3, 8), metavar=("MIN", "MAX"))
    s.add_argument("--snr-db", type=float, nargs=2, default=(0.0, 20.0), metavar=("MIN", "MAX"))
    s.add_argument("--labels", help="comma-separated classes of the source to use (default: all)")
    s.add_argument("--background", default="noise", help="pink/white noise ('noise') or a class of the source")
    s.add_argument("--no-overlap", action="store_true", help="events never overlap")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_soundscapes)

    d = sub.add_parser("dissect", help="temporal dissection: every unit against time-stamped events")
    d.add_argument("source", help="a run directory (tables written into it) or a corpus (then --out)")
    d.add_argument("--events", required=True, type=Path, help="strong labels: DCASE-style TSV/CSV, JAMS or a folder")
    d.add_argument("--out", type=Path, help="folder of the tables (default: the run directory)")
    d.add_argument("--audio-root", type=Path, help="folder the annotation's file names are relative to")
    d.add_argument("--layers", help="comma-separated conv layers (default conv1..conv7)")
    d.add_argument("--quantile", type=float, default=0.95, help="each unit's threshold quantile (default 0.95)")
    d.set_defaults(func=_cmd_dissect)

    v = sub.add_parser("visualize", help="what a unit wants to hear: audio optimised to drive it")
    v.add_argument("run", type=Path)
    v.add_argument("unit", help="LAYER:INDEX (one unit), or LAYER (every unit of the layer, cached in the run)")
    v.add_argument("--out", type=Path, help="WAV of the best seed (one unit)")
    v.add_argument("--refresh", action="store_true", help="recompute even when cached")
    v.set_defaults(func=_cmd_visualize)

    at = sub.add_parser("attribute", help="which time-frequency regions of a clip drive a unit (Captum)")
    at.add_argument("run", type=Path)
    at.add_argument("unit", help="LAYER:INDEX, e.g. conv3:8")
    at.add_argument("clip_id")
    at.add_argument("--method", choices=["occlusion", "integrated_gradients"], default="occlusion")
    at.add_argument("--target", choices=["peak", "valid"], default="peak")
    at.add_argument("--n-time", type=int, default=32)
    at.add_argument("--n-freq", type=int, default=16)
    at.add_argument(
        "--out", type=Path, help="folder for attribution.csv, attribution.top.wav, attribution.complement.wav"
    )
    at.set_defaults(func=_cmd_attribute)

    t = sub.add_parser("strf", help="spectro-temporal receptive fields of every conv unit (ridge reverse correlation)")
    t.add_argument("run", type=Path)
    t.add_argument("--layers", help="comma-separated conv layers (default: every conv layer of the run)")
    t.add_argument("--max-clips", type=int, default=1000, help="clips used (a seeded sample; default 1000)")
    t.set_defaults(func=_cmd_strf)

    p = sub.add_parser("predict", help="object and place predictions for audio files")
    p.add_argument("paths", nargs="+")
    p.add_argument("-k", type=int, default=3)
    p.set_defaults(func=_cmd_predict)

    w = sub.add_parser("weights", help="fetch and verify the pretrained weights (into the cache folder)")
    w.set_defaults(func=_cmd_weights)

    d = sub.add_parser("dashboard", help="browse a run in the Dash app")
    d.add_argument("run", type=Path)
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8050)
    d.add_argument("--probes", type=Path, help="a run recorded on the 'probes' corpus, for tuning curves")
    d.add_argument("--debug", action="store_true")
    d.set_defaults(func=_cmd_dashboard)

    s = sub.add_parser("study", help="run a study from studies/ (same flags as the script)")
    s.add_argument("name")
    s.add_argument("study_args", nargs=argparse.REMAINDER)
    s.set_defaults(func=_cmd_study)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``soundnet-interp``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SoundNetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
