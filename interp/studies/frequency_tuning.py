"""Frequency tuning: pure-tone sweeps through every layer of SoundNet.

48 log-spaced tones from 50 Hz to 10 kHz at three levels (-40, -20, -6 dBFS peak) are recorded
through conv1..conv7. For every unit: its tuning curve, best frequency (BF), Q at half maximum and
how both change with level. conv1's filters see the waveform directly, so their frequency
responses can also be computed from the weights: the BFs measured with tones should follow the
filters' peaks (Spearman rho is reported).

    python studies/frequency_tuning.py                     # -> reports/frequency_tuning/
    python studies/frequency_tuning.py --quick --out /tmp/ft
    python studies/frequency_tuning.py --run runs/probes   # reuse a recorded probe run

Tables: ``tuning_curves`` (layer, unit, kind, freq_hz, level_db, rate_hz, direction, response,
response_norm), ``best_frequencies``, ``level_dependence``, ``conv1_kernels`` (see
:mod:`interp.analysis.tuning` for every column).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from interp.analysis import tuning
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, study_parser
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("frequency_tuning", __doc__.splitlines()[0], default_corpus="probes")
    ap.add_argument("--stat", choices=("max", "mean"), default="max", help="response = max (default) or mean over time")
    args = ap.parse_args(argv)

    # 1. the tones, recorded through every conv layer
    options = dict(kinds=["tone"], n_freqs=48, levels_db=(-40.0, -20.0, -6.0), duration_s=1.0)
    if args.quick:
        options.update(n_freqs=24, levels_db=(-40.0, -20.0), duration_s=0.5)
    run = obtain_run(args, layers=CONV_LAYERS, corpus_options=options if args.corpus == "probes" else None)
    f_min, f_max = 50.0, 10_000.0

    # 2. tuning curves, best frequencies, Q, level dependence
    curves = tuning.tone_curves(run, stat=args.stat)
    best = tuning.best_frequencies(curves)
    levels = sorted(best["level_db"].unique())
    ref = levels[len(levels) // 2]  # -20 dBFS in the full sweep
    level = tuning.level_dependence(best) if len(levels) > 1 else None

    # 3. conv1: tones vs the filters' own frequency responses
    model = load_soundnet()
    tones_hz = np.sort(curves["freq_hz"].unique())
    kernels = tuning.kernel_peaks(model, f_min_hz=f_min, f_max_hz=f_max, grid_hz=tones_hz)
    b1 = best[(best["layer"] == "conv1") & np.isclose(best["level_db"], ref)]
    agree = kernels.merge(b1[["unit", "best_freq_hz", "q_half"]], on="unit")
    rho = float(spearmanr(agree["kernel_peak_grid_hz"], agree["best_freq_hz"]).statistic)
    rho_fine = float(spearmanr(agree["kernel_peak_hz"], agree["best_freq_hz"]).statistic)
    freqs, gain = tuning.kernel_frequency_responses(model)

    # 4. report
    rep = Report("frequency_tuning", args.out, title="Frequency tuning of SoundNet units")
    rep.number(
        "conv1: Spearman rho, tone BF vs filter peak among the tone frequencies",
        rho,
        f"{len(agree)} units, tones at {ref:g} dBFS",
    )
    rep.number(
        "conv1: Spearman rho, tone BF vs filter peak on a fine grid",
        rho_fine,
        f"{22050 / 8192:.1f} Hz resolution; a peak between two tones cannot be found by the sweep",
    )
    rep.number("conv1: best frequencies span", tuning.octave_span(b1["best_freq_hz"]), "octaves")
    for layer in CONV_LAYERS:
        bl = best[(best["layer"] == layer) & np.isclose(best["level_db"], ref) & best["responsive"]]
        closed = bl[~bl["open_low"] & ~bl["open_high"]]
        rep.number(
            f"{layer}: median BF / median Q",
            f"{bl['best_freq_hz'].median():.0f} Hz / {closed['q_half'].median():.2f}",
            f"{len(bl)} responsive units, Q over {len(closed)} closed curves",
        )
    if level is not None:
        for layer in ("conv1", "conv4", "conv7"):
            lv = level[level["layer"] == layer]
            rep.number(
                f"{layer}: median gain per 10 dB of level",
                lv["gain_db_per_10db"].median(),
                "dB; 10 = proportional to amplitude",
            )
    rep.note(
        f"Response = {args.stat} over time of each unit's activation for the tone; BF = tone frequency with "
        "the largest response; Q = BF / bandwidth where the response is above half way between its floor "
        "and its peak (log-frequency interpolation); open curves (half maximum not reached inside "
        f"{f_min:g}-{f_max:g} Hz) give bandwidth lower bounds and are left out of the median Q."
    )

    rep.table("tuning_curves", curves, "Every unit's response to every tone (the tuning curves).")
    rep.table("best_frequencies", best, "Best frequency, half-maximum band, Q per unit and level.")
    if level is not None:
        rep.table("level_dependence", level, "How BF and peak response change from the lowest to the highest level.")
    rep.table("conv1_kernels", agree, "conv1: peak of each filter's frequency response vs the tone BF.")

    examples = [("conv1", int(u)) for u in agree.sort_values("best_freq_hz")["unit"].to_numpy()[[1, 7, 14]]]
    for layer in ("conv3", "conv5", "conv7"):  # a strongly driven unit with a closed, sharp curve
        bl = best[(best["layer"] == layer) & np.isclose(best["level_db"], ref) & best["responsive"]]
        closed = bl[~bl["open_low"] & ~bl["open_high"]]
        strong = closed[closed["peak_response"] >= closed["peak_response"].quantile(0.75)]
        if len(strong):
            examples.append((layer, int(strong.sort_values("q_half", ascending=False)["unit"].iloc[0])))
    rep.figure(
        "tonotopy",
        sf.tonotopy_figure(curves, level_db=ref),
        f"Per layer, each unit's tuning curve at {ref:g} dBFS as one row (scaled to the unit's range), "
        "units sorted by best frequency: a diagonal band is a tonotopic map.",
    )
    rep.figure(
        "example_curves",
        sf.example_curves_figure(curves, best, examples),
        "Tuning curves of three conv1 units (low, middle, high BF) and, for conv3, conv5 and conv7, the "
        "sharpest of the strongly driven units (top quarter of peak responses), one line per tone level.",
    )
    rep.figure(
        "best_frequency_histograms",
        sf.best_frequency_histograms(best, level_db=ref),
        "How many units of each layer have their best frequency in each third-octave band.",
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
    if level is not None:
        rep.figure(
            "level_dependence",
            sf.level_figure(best),
            "Peak tone response at each level relative to the highest level, median over each layer's units.",
        )
    rep.finish(
        argv=args.argv,
        intro="Pure tones swept through SoundNet: per-unit frequency tuning, bandwidth and level "
        "dependence, and a check of conv1 against its filters' frequency responses.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
