"""Frequency tuning: pure-tone sweeps through every layer of SoundNet.

Tones of 8 s (conv7, whose receptive field is 4.1 s, gets 3 frames wholly inside each) at 48
log-spaced frequencies from 50 Hz to 10 kHz and 7 levels (-60 to 0 dBFS peak), with the
baselines they are tested against (silence; white noise at every level, 5 seeds), go through
conv1..conv7; every response is read on frames whose receptive field lies wholly inside the
probe. For every unit: its tuning curve, best frequency (parabolic interpolation on log
frequency), Q at half maximum, whether it responds above silence and above noise (a test with a
null, see :func:`interp.analysis.tuning.best_frequencies`), and its whole response-versus-level
curve. Each layer's frequency-resolution limit is stated (conv1's 64-tap filters: 345 Hz).
conv1's filters see the waveform directly, so their frequency responses can also be computed
from the weights: the BFs measured with tones should follow the filters' peaks (Spearman rho).

    python studies/frequency_tuning.py                     # -> reports/frequency_tuning/
    python studies/frequency_tuning.py --quick --out /tmp/ft
    python studies/frequency_tuning.py --run runs/probes   # the probes of a recorded probe run

Tables: ``tuning_curves`` (layer, unit, kind, freq_hz, level_db, rate_hz, direction, response,
response_norm, ...), ``best_frequencies``, ``baselines``, ``responsive_per_layer``,
``level_dependence``, ``level_curves``, ``resolution_limits``, ``conv1_kernels`` (see
:mod:`interp.analysis.tuning` and :mod:`interp.analysis.probe_responses` for every column).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from interp.analysis import probe_responses as pr
from interp.analysis import tuning
from interp.corpus import stimuli
from interp.corpus.corpora import load_corpus, long_dir
from interp.report import study_figures as sf
from interp.report.reporting import Report, study_parser
from interp.run.store import open_run
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def _real_sound_activity(model, silence: pr.ProbeResponses, *, seconds: float) -> pd.DataFrame:
    """Per layer, the fraction of units above their silence response (vmax over the valid frames)
    on the first ``seconds`` of each packaged long recording: how sparse a layer is on real sound."""
    corpus = load_corpus(str(long_dir()))
    corpus = corpus.assign(kind="recording", end_s=corpus["start_s"].astype(float) + seconds)
    r = pr.probe_responses(model, corpus)
    sil = int(np.flatnonzero(silence.params["kind"].to_numpy() == "silence")[0])
    rows = []
    for layer in CONV_LAYERS:
        d = r.stats[layer]["vmax"] - silence.stats[layer]["vmax"][sil][None, :]
        for i, label in enumerate(corpus["label"].astype(str)):
            rows.append((layer, label, float(np.mean(d[i] > 1e-6))))
        rows.append((layer, "any of them", float(np.mean((d > 1e-6).any(axis=0)))))
    return pd.DataFrame(rows, columns=["layer", "recording", "fraction_above_silence"])


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("frequency_tuning", __doc__.splitlines()[0], default_corpus="probes")
    ap.add_argument(
        "--stat", choices=pr.RESPONSE_STATS, default="vmax", help="response = vmax (default) or vmean over valid frames"
    )
    ap.add_argument("--seeds", type=int, default=None, help="noise seeds per level (default 5, --quick 3)")
    args = ap.parse_args(argv)

    # 1. the tones and their baselines (silence, white noise at every level), through every conv layer
    f_min, f_max = 50.0, 10_000.0
    if args.run is not None:
        probes = open_run(args.run).ok_clips
    elif args.corpus != "probes":
        probes = load_corpus(args.corpus)
    elif args.quick:
        probes = stimuli.frequency_probes(n_freqs=24, levels_db=(-40.0, -20.0, 0.0), n_seeds=args.seeds or 3)
    else:
        probes = stimuli.frequency_probes(n_seeds=args.seeds or 5)
    model = load_soundnet()
    resp = pr.probe_responses(model, probes, layers=CONV_LAYERS, min_inside=1.0)
    limits = pr.resolution_limits()

    # 2. tuning curves, baselines, best frequencies, Q, responsiveness, level dependence
    curves = pr.response_curves(resp, stat=args.stat, kinds=["tone"])
    base = pr.baselines(resp, stat=args.stat)
    best = tuning.best_frequencies(curves, baselines=base, resolution=limits)
    levels = sorted(best["level_db"].unique())
    ref = min(levels, key=lambda v: abs(v + 20.0))  # -20 dBFS
    level = tuning.level_dependence(best) if len(levels) > 1 else None
    lcurves = tuning.level_curves(curves, best, level_db=ref) if len(levels) > 1 else None
    tones = probes[probes["kind"] == "tone"]
    n_valid = pd.DataFrame(
        {
            "layer": list(CONV_LAYERS),
            "min_valid_frames": [
                int(resp.n_valid[lay][(resp.params["kind"] == "tone").to_numpy()].min()) for lay in CONV_LAYERS
            ],
        }
    )
    at_ref = best[np.isclose(best["level_db"], ref)]
    per_layer = (
        at_ref.groupby("layer", sort=False)
        .agg(
            n_units=("unit", "size"),
            n_responsive=("responsive", "sum"),
            n_above_noise=("above_noise", "sum"),
            n_below_resolution=("below_resolution", "sum"),
        )
        .reset_index()
    )
    any_level = best.groupby(["layer", "unit"], sort=False)["responsive"].any().groupby(level=0, sort=False).sum()
    per_layer["n_responsive_any_level"] = per_layer["layer"].map(any_level).astype(int)
    per_layer["fraction_responsive"] = per_layer["n_responsive"] / per_layer["n_units"]
    per_layer = per_layer.merge(n_valid, on="layer").merge(limits[["layer", "limit_hz"]], on="layer")
    real = _real_sound_activity(model, resp, seconds=float(tones["duration_s"].min()))

    # 3. conv1: tones vs the filters' own frequency responses
    tones_hz = np.sort(curves["freq_hz"].unique())
    kernels = tuning.kernel_peaks(model, f_min_hz=f_min, f_max_hz=f_max, grid_hz=tones_hz)
    b1 = at_ref[at_ref["layer"] == "conv1"]
    agree = kernels.merge(b1[["unit", "best_freq_hz", "q_half", "best_freq_grid_hz"]], on="unit")
    rho = float(spearmanr(agree["kernel_peak_grid_hz"], agree["best_freq_grid_hz"]).statistic)
    rho_fine = float(spearmanr(agree["kernel_peak_hz"], agree["best_freq_hz"]).statistic)
    err = np.abs(np.log2(agree["best_freq_hz"] / agree["kernel_peak_hz"]))
    freqs, gain = tuning.kernel_frequency_responses(model)

    # 4. report
    rep = Report("frequency_tuning", args.out, title="Frequency tuning of SoundNet units")
    rep.number(
        "conv1: Spearman rho, tone BF vs filter peak among the tone frequencies",
        rho,
        f"{len(agree)} units, tones at {ref:g} dBFS, grid best frequencies",
    )
    rep.number(
        "conv1: Spearman rho, interpolated tone BF vs filter peak on a fine grid",
        rho_fine,
        f"{22050 / 8192:.1f} Hz resolution; median |log2 ratio| {float(np.median(err)):.3f} octaves",
    )
    rep.number("conv1: best frequencies span", tuning.octave_span(b1["best_freq_hz"]), "octaves")
    for r in per_layer.itertuples():
        bl = at_ref[(at_ref["layer"] == r.layer) & at_ref["responsive"]]
        closed = bl[~bl["open_low"] & ~bl["open_high"]]
        rep.number(
            f"{r.layer}: responsive to tones at {ref:g} dBFS",
            f"{r.n_responsive} of {r.n_units} ({r.fraction_responsive:.0%}); {r.n_above_noise} above noise; "
            f"{r.n_responsive_any_level} at some level; median BF {bl['best_freq_hz'].median():.0f} Hz, "
            f"median Q {closed['q_half'].median():.2f}",
            f"at least {r.min_valid_frames} valid frames per tone; resolution limit {r.limit_hz:.3g} Hz",
        )
    if level is not None:
        for layer in CONV_LAYERS:
            lv = level[(level["layer"] == layer) & (level["n_responsive_levels"] > 0)]
            rep.number(
                f"{layer}: level dependence over {len(levels)} levels ({levels[0]:g} to {levels[-1]:g} dBFS)",
                f"median slope {lv['slope_db_per_10db'].median():.2f} dB per 10 dB; "
                f"{lv['monotonic'].mean():.0%} monotonic; median threshold {lv['threshold_db'].median():g} dBFS",
                f"{len(lv)} units responsive at some level; 10 dB per 10 dB = proportional to amplitude",
            )
    c7 = per_layer.set_index("layer").loc["conv7"]
    real7 = real[(real["layer"] == "conv7") & (real["recording"] != "any of them")]["fraction_above_silence"]
    real_any = float(real.set_index(["layer", "recording"]).loc[("conv7", "any of them"), "fraction_above_silence"])
    if c7["fraction_responsive"] < 0.5:
        rep.note(
            f"Fewer than half of conv7's units respond to tones ({int(c7['n_responsive'])} of {int(c7['n_units'])} "
            f"at {ref:g} dBFS, {int(c7['n_responsive_any_level'])} at some level), although every tone gives conv7 "
            f"{int(c7['min_valid_frames'])} frames wholly inside it: conv7 is sparse on any sound. On the first "
            f"{float(tones['duration_s'].min()):g} s of the packaged real recordings (orchestra, whale, speech, pop) "
            f"{real7.min():.1%} to {real7.max():.1%} of conv7's units rise above their silence response "
            f"({real_any:.1%} in any of them); after its ReLU most conv7 units are exactly 0 on frames "
            "that lie inside a sound. The dark rows of conv7 in the tonotopy figure are silent units, not "
            "a stimulus too short for the receptive field."
        )
    rep.note(
        f"Response = {args.stat} over the valid frames of each probe (the whole receptive field inside "
        "the probe); BF = parabolic interpolation on log2 frequency through the largest response and its "
        "two neighbours (the grid tone at the sweep's ends); Q = BF / bandwidth where the response is above "
        "half way between its floor and its peak (log-frequency interpolation); open curves (half maximum "
        f"not reached inside {f_min:g}-{f_max:g} Hz) give bandwidth lower bounds and are left out of the median Q."
    )
    z = tuning.responsive_threshold_z(len(tones_hz))
    rep.note(
        f"Responsive: the largest tone response at a level exceeds the unit's response to silence by more "
        f"than z = {z:.2f} standard deviations of its response across {int(base['n_seeds'].iloc[0])} seeds "
        "of white noise at that level (one-sided, 1 % Bonferroni-corrected over the tones; the seed-to-seed "
        "spread stands for the measurement noise of a response, floored at 1e-6). Above noise: the same "
        "test against the mean noise response."
    )
    rep.note(
        "Frequency-resolution limit = 22050 Hz / window: conv1's window is its 64-tap kernel (345 Hz: its "
        "filters cannot separate tones closer than that, and a conv1 BF below 345 Hz means low-pass, not a "
        "peak); deeper layers see their receptive field and can follow a tone's period in time "
        + ", ".join(f"{r.layer} {r.limit_hz:.3g} Hz" for r in limits.itertuples())
        + ". BFs below their layer's limit are flagged (below_resolution)."
    )

    rep.table("tuning_curves", curves, "Every unit's response to every tone (the tuning curves).")
    rep.table(
        "best_frequencies", best, "Best frequency, half-maximum band, Q and the responsiveness test per unit and level."
    )
    rep.table(
        "baselines", base, "Each unit's response to silence and to white noise (mean, spread over seeds) per level."
    )
    rep.table(
        "responsive_per_layer",
        per_layer,
        f"Per layer at {ref:g} dBFS: units responsive, above noise, below the resolution limit.",
    )
    rep.table("real_sound_activity", real, "Per layer, the fraction of units above silence on real recordings.")
    rep.table("resolution_limits", limits, "The finest frequency detail each layer can resolve (22050 Hz / window).")
    if level is not None and lcurves is not None:
        rep.table("level_dependence", level, "Per unit over every level: slope, threshold, best level, BF shift.")
        rep.table("level_curves", lcurves, f"Response versus level at each unit's best tone (fixed at {ref:g} dBFS).")
    rep.table("conv1_kernels", agree, "conv1: peak of each filter's frequency response vs the tone BF.")

    examples = [("conv1", int(u)) for u in agree.sort_values("best_freq_hz")["unit"].to_numpy()[[1, 7, 14]]]
    for layer in ("conv3", "conv5", "conv7"):  # a strongly driven unit with a closed, sharp curve
        bl = at_ref[(at_ref["layer"] == layer) & at_ref["responsive"]]
        closed = bl[~bl["open_low"] & ~bl["open_high"]]
        strong = closed[closed["peak_response"] >= closed["peak_response"].quantile(0.75)]
        if len(strong):
            examples.append((layer, int(strong.sort_values("q_half", ascending=False)["unit"].iloc[0])))
    rep.figure(
        "tonotopy",
        sf.tonotopy_figure(curves, level_db=ref, best=best),
        f"Per layer (every layer, conv1 to conv7), each responsive unit's tuning curve at {ref:g} dBFS as one "
        "row (scaled to the unit's range), units sorted by best frequency: a diagonal band is a tonotopic map. "
        "Panel titles count the responsive units; the dashed line is the layer's frequency-resolution limit "
        "where it falls inside the sweep.",
    )
    rep.figure(
        "example_curves",
        sf.example_curves_figure(curves, best, examples),
        "Tuning curves of three conv1 units (low, middle, high BF) and, for conv3, conv5 and conv7, the "
        "sharpest of the strongly driven responsive units (top quarter of peak responses), one line per level.",
    )
    rep.figure(
        "best_frequency_histograms",
        sf.best_frequency_histograms(best, level_db=ref),
        "How many responsive units of each layer have their best frequency in each third-octave band.",
    )
    rep.figure(
        "conv1_bf_vs_kernel",
        sf.kernel_agreement_figure(agree, rho=rho),
        "conv1: best frequency measured with tones vs the peak of the filter's frequency response computed "
        "from its weights (the strongest among the tone frequencies); points on the dashed line agree.",
    )
    rep.figure(
        "conv1_kernel_responses",
        sf.kernel_response_figure(freqs, gain),
        "Magnitude response of each conv1 filter (dB relative to its own peak), filters sorted by peak.",
    )
    if level is not None and lcurves is not None:
        rep.figure(
            "level_dependence",
            sf.level_figure(best, curves=lcurves),
            "Response versus level at every level of the sweep: each responsive unit's response at its best "
            "tone relative to its largest, median over the layer's units (bars: quartiles).",
        )
    rep.finish(
        argv=args.argv,
        intro="Pure tones swept through SoundNet: per-unit frequency tuning, bandwidth, responsiveness "
        "against silence and noise, and level dependence, with a check of conv1 against its filters.",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
