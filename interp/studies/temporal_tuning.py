"""Temporal tuning: modulation rate and sweep direction through every layer of SoundNet.

Broadband noise amplitude-modulated at 1 to 200 Hz (5 seeds per rate) with unmodulated noise
(5 seeds) as its control, click trains at the same rates, silence, and logarithmic chirps from
50 Hz to 10 kHz, 2 s long, rising and falling at the same 5 positions inside 8 s clips (the
falling chirp is the rising one played backwards), go through conv1..conv7; responses are read on
frames whose receptive field lies wholly inside the probe. For every unit: its response as a
function of rate (best rate, modulation index), how strongly its activation oscillates *at* the
rate (vector strength, tested against unmodulated noise; only where the layer's frame rate can
carry it), and whether it prefers rising or falling sweeps (direction selectivity index, paired
across matched positions).

    python studies/temporal_tuning.py                      # -> reports/temporal_tuning/
    python studies/temporal_tuning.py --quick --out /tmp/tt

Tables: ``rate_curves`` (layer, unit, kind, freq_hz, level_db, rate_hz, direction, response,
response_norm, ...), ``best_rates``, ``rate_following``, ``direction_preference`` (columns in
:mod:`interp.analysis.tuning` and :mod:`interp.analysis.probe_responses`).
"""

from __future__ import annotations

from interp.analysis import probe_responses as pr
from interp.analysis import tuning
from interp.corpus import stimuli
from interp.corpus.corpora import load_corpus
from interp.report import study_figures as sf
from interp.report.reporting import Report, study_parser
from interp.run.store import open_run
from soundnet import load_soundnet
from soundnet.model import CONV_LAYERS


def main(argv: list[str] | None = None) -> int:
    ap = study_parser("temporal_tuning", __doc__.splitlines()[0], default_corpus="probes")
    ap.add_argument(
        "--stat", choices=pr.RESPONSE_STATS, default="vmax", help="response = vmax (default) or vmean over valid frames"
    )
    args = ap.parse_args(argv)

    # 1. AM noise (seeds, unmodulated control), click trains and chirps at matched positions
    if args.run is not None:
        probes = open_run(args.run).ok_clips
    elif args.corpus != "probes":
        probes = load_corpus(args.corpus)
    elif args.quick:
        probes = stimuli.temporal_probes(rates_hz=(2.0, 8.0, 32.0, 128.0), n_seeds=4, onsets_s=(2.5, 3.0, 3.5))
    else:
        probes = stimuli.temporal_probes()
    periodic = probes["kind"].isin(["am_noise", "click_train"]).to_numpy()
    resp = pr.probe_responses(load_soundnet(), probes, layers=CONV_LAYERS, min_inside=1.0, traces=periodic)

    # 2. rate tuning, rate following, direction preference
    curves = pr.response_curves(resp, stat=args.stat, kinds=["am_noise", "click_train"])
    rates = tuning.best_rates(curves)
    following = tuning.rate_following(resp)
    chirps = pr.response_curves(resp, stat=args.stat, kinds=["chirp"])
    direction = tuning.direction_preference(chirps)
    n_seeds = int(following.loc[following["kind"] == "am_noise", "n_seeds"].max())
    n_pos = int(direction["n_positions"].max())

    # 3. report
    rep = Report("temporal_tuning", args.out, title="Temporal tuning of SoundNet units")
    for layer in CONV_LAYERS:
        r = rates[(rates["layer"] == layer) & (rates["kind"] == "am_noise")]
        f = following[(following["layer"] == layer) & (following["kind"] == "am_noise")].dropna(
            subset=["vector_strength"]
        )
        d = direction[direction["layer"] == layer]
        frac = f.groupby("rate_hz")["follows"].mean()
        locked = frac[frac >= 0.5]
        follow = (
            "no rate below its Nyquist rate"
            if f.empty
            else f"at least half its units follow AM up to {locked.index.max():g} Hz (q < 0.05 against unmodulated noise)"
            if len(locked)
            else f"at most {frac.max():.0%} of its units follow any rate (q < 0.05)"
        )
        rep.number(
            f"{layer}",
            f"AM best rate median {r['best_rate_hz'].median():g} Hz; {follow}; "
            f"{(d['prefers'] == 'up').mean():.0%} prefer rising, {(d['prefers'] == 'down').mean():.0%} falling sweeps",
            f"{len(d)} units",
        )
    rep.note(
        f"Response = {args.stat} over the valid frames of each probe (whole receptive field inside it), "
        f"averaged over {n_seeds} noise seeds per rate; modulation index = (peak - floor) / (peak + floor) over rates."
    )
    rep.note(
        "Vector strength = |sum a(t) exp(-2 pi i r t)| / sum a(t) over the valid frames, computed only where "
        f"the layer's frame rate exceeds twice the rate r; per unit and rate, {n_seeds} AM seeds against "
        "the vector strength at r of the unit's response to unmodulated noise (same level, every seed): "
        "one-sided Welch t-test, Benjamini-Hochberg over the layer's units at each rate; follows = q < 0.05. "
        "Click trains (one draw per rate) get a vector strength without a test."
    )
    rep.note(
        f"Direction: {n_pos} positions, each with a rising chirp and its time reverse at the same place (same "
        "distances from the edges, same magnitude spectrum); DSI = (up - down) / (|up| + |down|) of the mean "
        "responses; a preference needs |DSI| >= 0.1 and a paired t-test across positions with BH q < 0.05 "
        "over the layer's units."
    )
    rep.table("rate_curves", curves, "Every unit's response to every AM-noise (each seed) and click-train probe.")
    rep.table("best_rates", rates, "Best rate and modulation index per unit and probe kind.")
    rep.table("rate_following", following, "Vector strength at each rate against unmodulated noise, with the test.")
    rep.table("direction_preference", direction, "Rising vs falling chirps at matched positions: DSI and paired test.")
    rep.figure(
        "rate_tuning",
        sf.rate_tuning_figure(curves[curves["rate_hz"].notna()]),
        "Per layer (columns) and probe (rows), each unit's response across rates (mean over seeds) scaled to "
        "its range, units sorted by best rate.",
    )
    rep.figure(
        "rate_following",
        sf.following_figure(following),
        "How strongly each layer's activations oscillate at the modulation rate (1 = locked to one phase); "
        "dotted: the same measure on unmodulated noise (the null); deep layers have frame rates too low to "
        "carry any of these rates.",
    )
    rep.figure(
        "sweep_direction",
        sf.direction_figure(direction),
        "Fraction of each layer's units that prefer rising (up) or falling (down) chirps at matched positions "
        "(|DSI| >= 0.1 and q < 0.05).",
    )
    rep.finish(
        argv=args.argv,
        intro="AM noise, click trains and chirps through SoundNet: which units prefer which modulation "
        "rates, which follow them in time, and which prefer rising or falling sweeps.",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
