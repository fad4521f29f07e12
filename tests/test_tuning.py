"""Tuning and robustness: interpolated best frequency, responsiveness against baselines, matched
chirps, vector-strength null, top-N overlap references, and check 4 of issue 17 (slow)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from soundnet.model import CONV_LAYERS


def test_parabolic_best_frequency_finds_an_off_grid_peak():
    from interp.analysis.tuning import best_frequencies

    freqs = np.geomspace(100, 6400, 25)  # quarter-octave steps
    true = 1000.0
    resp = 5.0 - (np.log2(freqs) - math.log2(true)) ** 2  # a parabola on log2 f, peak between tones
    b = best_frequencies(pd.DataFrame({"layer": "x", "unit": 0, "freq_hz": freqs, "level_db": -20.0, "response": resp}))
    row = b.iloc[0]
    assert row["best_freq_hz"] == pytest.approx(true, rel=1e-9)
    assert row["best_freq_grid_hz"] != pytest.approx(true, rel=1e-3) and bool(row["bf_interpolated"])


def test_responsiveness_is_tested_against_silence_and_noise_spread():
    from interp.analysis.tuning import best_frequencies, responsive_threshold_z

    freqs = np.geomspace(100, 1000, 10)
    curves = pd.DataFrame(
        {
            "layer": "x",
            "unit": np.repeat([0, 1], 10),
            "freq_hz": np.tile(freqs, 2),
            "level_db": -20.0,
            "response": np.r_[np.full(10, 1.0), 1.0 + np.linspace(0, 0.05, 10)],
        }
    )
    z = responsive_threshold_z(10)
    assert z == pytest.approx(3.09, abs=0.01)  # Bonferroni 1 % over 10 tones
    base = pd.DataFrame(
        {
            "layer": "x",
            "unit": [0, 1],
            "level_db": -20.0,
            "silence_response": [1.0, 1.0],
            "noise_response": [1.0, 1.0],
            "noise_sd": [0.01, 0.02],
        }
    )
    b = best_frequencies(curves, baselines=base).set_index("unit")
    # unit 0 never moves from its silence response; unit 1 rises by 0.05 = 2.5 sd < z sd: not responsive
    assert not b.loc[0, "responsive"] and not b.loc[1, "responsive"]
    base.loc[1, "noise_sd"] = 0.01  # 0.05 = 5 sd > z sd
    b = best_frequencies(curves, baselines=base).set_index("unit")
    assert b.loc[1, "responsive"] and b.loc[1, "above_noise"]


def test_resolution_limits_state_conv1s_kernel():
    from interp.analysis.probe_responses import resolution_limits

    lim = resolution_limits().set_index("layer")
    assert lim.loc["conv1", "limit_hz"] == pytest.approx(22050 / 64) and lim.loc["conv1", "basis"] == "kernel"
    assert (np.diff(lim["limit_hz"].to_numpy()) < 0).all()  # deeper layers see longer windows


def test_probe_sets_seeds_controls_and_matched_chirps():
    from interp.corpus.stimuli import frequency_probes, synthesize, temporal_probes

    t = temporal_probes(rates_hz=(4.0,), n_seeds=3, duration_s=8.0, sweep_s=2.0, onsets_s=(1.0, 3.0))
    am = t[(t["kind"] == "am_noise") & (t["depth"] == 1)]
    unmod = t[(t["kind"] == "am_noise") & (t["depth"] == 0)]
    assert len(am) == 3 and len(unmod) == 3 and am["name"].is_unique
    x0, x1 = synthesize(am.iloc[0]), synthesize(am.iloc[1])
    assert not np.array_equal(x0, x1)
    env = np.abs(synthesize(unmod.iloc[0]))
    assert env[: len(env) // 2].mean() == pytest.approx(env[len(env) // 2 :].mean(), rel=0.05)  # unmodulated
    for onset in (1.0, 3.0):
        up = synthesize(t[(t["direction"] == "up") & (t["onset_s"] == onset)].iloc[0])
        down = synthesize(t[(t["direction"] == "down") & (t["onset_s"] == onset)].iloc[0])
        i0, m = int(onset * 22050), int(2.0 * 22050)
        np.testing.assert_array_equal(up[i0 : i0 + m][::-1], down[i0 : i0 + m])  # same place, reversed
        assert not up[:i0].any() and not down[i0 + m :].any()
    f = frequency_probes(n_freqs=3, levels_db=(-40.0, -20.0), n_seeds=2)
    assert (f["kind"] == "silence").sum() == 1 and ((f["kind"] == "am_noise") & (f["depth"] == 0)).sum() == 4


def test_direction_preference_is_paired_across_positions():
    from interp.analysis.tuning import direction_preference

    rng = np.random.default_rng(0)
    rows = []
    for unit, effect in ((0, 1.0), (1, 0.0)):
        for onset in range(6):
            base = 5 + rng.normal(0, 1.0)  # position effect shared by the pair
            rows += [
                ("x", unit, "chirp", "up", onset, base + effect + rng.normal(0, 0.05)),
                ("x", unit, "chirp", "down", onset, base + rng.normal(0, 0.05)),
            ]
    curves = pd.DataFrame(rows, columns=["layer", "unit", "kind", "direction", "onset_s", "response"])
    d = direction_preference(curves, threshold=0.05).set_index("unit")
    assert d.loc[0, "prefers"] == "up" and d.loc[0, "q_value"] < 1e-3
    assert d.loc[1, "prefers"] == "none" and d.loc[0, "n_positions"] == 6


def test_top_overlap_chance_and_resampling_baseline():
    from interp.analysis.robustness import resample_overlap, top_overlap_chance

    assert top_overlap_chance(16, 10) == pytest.approx(0.625)
    assert top_overlap_chance(1024, 10) == pytest.approx(0.0098, abs=1e-4)
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b"], 30)
    clean = rng.normal(size=(60, 200))
    clean[:, :10] += 3.0 * (y == "a")[:, None]  # 10 strongly selective units for each category
    clean[:, 10:20] += 3.0 * (y == "b")[:, None]
    assert resample_overlap(clean, y, top_n=10, n_resamples=5) > 0.8
    noise = rng.normal(size=(60, 200))
    assert resample_overlap(noise, y, top_n=10, n_resamples=5) < 0.5


def test_vector_strength_follows_am_against_unmodulated_noise(model):
    from interp.analysis.probe_responses import probe_responses, rate_following
    from interp.corpus.stimuli import temporal_probes

    t = temporal_probes(rates_hz=(8.0,), n_seeds=3, duration_s=3.0, sweep_s=1.0, onsets_s=(1.0,))
    t = t[t["kind"] == "am_noise"].reset_index(drop=True)
    resp = probe_responses(model, t, layers=("conv1", "conv2", "conv7"), traces=np.ones(len(t), bool))
    f = rate_following(resp)
    c1 = f[(f["layer"] == "conv1") & (f["kind"] == "am_noise")]
    assert (c1["vector_strength"] > c1["vs_null"]).mean() > 0.8 and c1["follows"].mean() > 0.5
    assert f.loc[f["layer"] == "conv7", "vector_strength"].isna().all()  # 0.67 Hz frames cannot carry 8 Hz


@pytest.mark.slow
def test_check4_conv7_valid_frames_responsiveness_and_tonotopy_panels(tmp_path):
    """Check 4 of issue 17 on the default (quick) probes."""
    from interp.studies import frequency_tuning

    out = tmp_path / "ft"
    assert frequency_tuning.main(["--quick", "--out", str(out)]) == 0
    per = pd.read_parquet(out / "responsive_per_layer.parquet").set_index("layer")
    assert list(per.index) == list(CONV_LAYERS)
    assert (per["min_valid_frames"] >= 1).all() and per.loc["conv7", "min_valid_frames"] >= 3
    summary = (out / "summary.md").read_text()
    c7 = per.loc["conv7"]
    print(f"conv7: {int(c7['n_responsive'])} of {int(c7['n_units'])} responsive at -20 dBFS")
    assert c7["fraction_responsive"] >= 0.5 or "Fewer than half of conv7's units respond" in summary
    html = (out / "tonotopy.html").read_text()
    for layer in CONV_LAYERS:
        assert f"{layer}: " in html and "units responsive" in html
    best = pd.read_parquet(out / "best_frequencies.parquet")
    assert "below_resolution" in best.columns and best["best_freq_hz"].notna().all()
    levels = pd.read_parquet(out / "level_curves.parquet")
    assert levels.groupby(["layer", "unit"]).size().min() == best["level_db"].nunique()  # every level
