"""Temporal tuning: modulation rate and sweep direction through every layer of SoundNet.

Broadband noise amplitude-modulated at 1 to 200 Hz, click trains at the same rates, and
logarithmic chirps from 50 Hz to 10 kHz rising and falling are recorded through conv1..conv7.
For every unit: its response as a function of rate (best rate, modulation index), how strongly
its activation oscillates *at* the rate (vector strength; only where the layer's frame rate can
carry it), and whether it prefers rising or falling sweeps (direction selectivity index).

    python studies/temporal_tuning.py                      # -> reports/temporal_tuning/
    python studies/temporal_tuning.py --quick --out /tmp/tt

Tables: ``rate_curves`` (layer, unit, kind, freq_hz, level_db, rate_hz, direction, response,
response_norm), ``best_rates``, ``rate_following``, ``direction_preference`` (columns in
:mod:`interp.analysis.tuning`).
"""

from __future__ import annotations

from interp.analysis import tuning
from interp.report import study_figures as sf
from interp.report.reporting import Report, obtain_run, study_parser
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("temporal_tuning", __doc__.splitlines()[0], default_corpus="probes")
    ap.add_argument("--stat", choices=("max", "mean"), default="max", help="response = max (default) or mean over time")
    args = ap.parse_args(argv)

    # 1. AM noise, click trains and chirps, recorded through every conv layer
    options = dict(kinds=["am_noise", "click_train", "chirp"], duration_s=3.0, level_db=-20.0)
    if args.quick:
        options.update(rates_hz=(2.0, 8.0, 32.0, 128.0), duration_s=1.5)
    run = obtain_run(args, layers=CONV_LAYERS, corpus_options=options if args.corpus == "probes" else None)

    # 2. rate tuning, rate following, direction preference
    curves = tuning.stimulus_responses(run, kinds=("am_noise", "click_train"), stat=args.stat)
    rates = tuning.best_rates(curves)
    following = tuning.rate_following(load_soundnet(), run.ok_clips)
    chirps = tuning.stimulus_responses(run, kinds=("chirp",), stat=args.stat)
    direction = tuning.direction_preference(chirps)

    # 3. report
    rep = Report("temporal_tuning", args.out, title="Temporal tuning of SoundNet units")
    for layer in CONV_LAYERS:
        r = rates[(rates["layer"] == layer) & (rates["kind"] == "am_noise")]
        f = following[(following["layer"] == layer) & (following["kind"] == "am_noise")].dropna(
            subset=["vector_strength"]
        )
        d = direction[direction["layer"] == layer]
        med = f.groupby("rate_hz")["vector_strength"].median()
        locked = med[med >= 0.3]
        follow = (
            "no rate below its Nyquist rate"
            if f.empty
            else f"follows AM up to {locked.index.max():g} Hz (median vector strength >= 0.3)"
            if len(locked)
            else f"weak following (median vector strength <= {med.max():.2f})"
        )
        rep.number(
            f"{layer}",
            f"AM best rate median {r['best_rate_hz'].median():g} Hz; {follow}; "
            f"{(d['prefers'] == 'up').mean():.0%} prefer rising, {(d['prefers'] == 'down').mean():.0%} falling sweeps",
        )
    rep.note(
        f"Response = {args.stat} over time of each unit's activation; modulation index = (peak - floor) / "
        "(peak + floor) over rates; vector strength = |sum a(t) exp(-2 pi i r t)| / sum a(t) over the frames "
        "whose receptive field lies inside the clip, computed only where the layer's frame rate exceeds twice "
        "the rate r; DSI = (up - down) / (|up| + |down|), |DSI| < 0.1 counts as no preference."
    )
    rep.table("rate_curves", curves, "Every unit's response to every AM-noise and click-train rate.")
    rep.table("best_rates", rates, "Best rate and modulation index per unit and probe kind.")
    rep.table("rate_following", following, "Vector strength of each unit's activation at each modulation rate.")
    rep.table("direction_preference", direction, "Responses to rising and falling chirps and the direction index.")
    rep.figure(
        "rate_tuning",
        sf.rate_tuning_figure(curves),
        "Per layer (columns) and probe (rows), each unit's response across rates scaled to its range, units "
        "sorted by best rate.",
    )
    rep.figure(
        "rate_following",
        sf.following_figure(following),
        "How strongly each layer's activations oscillate at the modulation rate (1 = locked to one phase); "
        "deep layers have frame rates too low to carry any of these rates.",
    )
    rep.figure(
        "sweep_direction",
        sf.direction_figure(direction),
        "Fraction of each layer's units that respond more to rising (up) or falling (down) chirps.",
    )
    rep.finish(
        argv=args.argv,
        intro="AM noise, click trains and chirps through SoundNet: which units prefer which modulation "
        "rates, which follow them in time, and which prefer rising or falling sweeps.",
        run=run,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
