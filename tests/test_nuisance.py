"""Nuisance report: level and spectral shape measured right, nuisance-only categories flagged, the
within-strata control, and the demo corpus's known confounds found (speech band-limited at 4 kHz,
instruments longer)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soxr

from interp.analysis.nuisance import (
    clip_features,
    format_nuisance_warnings,
    nuisance_report,
    nuisance_strata,
    run_nuisance_report,
    stratified_auroc,
)

SR = 22050


def test_clip_features_of_known_signals():
    t = np.arange(2 * SR) / SR
    tone = np.sin(2 * np.pi * 1000 * t)
    f = clip_features(tone)
    assert f["rms_db"] == pytest.approx(-3.01, abs=0.05)
    assert f["centroid_hz"] == pytest.approx(1000, rel=0.02)
    assert f["rolloff95_hz"] == pytest.approx(1000, abs=30)
    rng = np.random.default_rng(0)
    full = 0.1 * rng.standard_normal(2 * SR)
    narrow = soxr.resample(0.1 * rng.standard_normal(2 * 8000), 8000, SR)  # an 8 kHz recording, resampled
    ff, fn = clip_features(full), clip_features(narrow)
    assert ff["cliff_db"] < 10 and fn["cliff_db"] > 40
    assert fn["bandwidth_hz"] < 4300 < ff["bandwidth_hz"]
    assert ff["centroid_hz"] == pytest.approx(SR / 4, rel=0.05)
    assert all(np.isnan(v) for v in clip_features(np.zeros(100)).values())


def test_report_flags_a_nuisance_only_category():
    rng = np.random.default_rng(1)
    labels = pd.Series(np.repeat(["long", "short", "other"], 30), index=[f"c{i}" for i in range(90)])
    nz = pd.DataFrame(
        {
            "duration_s": np.where(labels == "long", 4.0, 0.4) * rng.uniform(0.8, 1.2, 90),
            "rms_db": rng.normal(-20, 3, 90),
            "sample_rate_hz": 22050.0,
        },
        index=labels.index,
    )
    r = nuisance_report(nz, labels, n_boot=200).set_index(["category", "nuisance"])
    assert r.loc[("long", "duration_s"), "flagged"] and r.loc[("long", "duration_s"), "direction"] == "higher"
    assert r.loc[("long", "duration_s"), "auroc_lo"] > 0.9
    assert r.loc[("long", "duration_s"), "flagged_ci"] and not r.loc[("long", "rms_db"), "flagged_ci"]
    assert not r.loc[("long", "rms_db"), "flagged"]
    assert r.loc[("long", "sample_rate_hz"), "auroc"] == 0.5  # constant: no information
    lines = format_nuisance_warnings(r.reset_index())
    assert any(line.startswith("long: separated by duration_s") for line in lines)


def test_within_strata_auroc_removes_a_duration_follower():
    """A unit that only follows clip length looks selective for the long category; within
    duration strata it orders the category's clips at chance."""
    rng = np.random.default_rng(2)
    n = 400
    pos = rng.random(n) < 0.5
    duration = np.where(pos, rng.lognormal(1.0, 0.5, n), rng.lognormal(0.0, 0.5, n))
    unit = np.log(duration) + 0.05 * rng.standard_normal(n)
    raw = stratified_auroc(unit, pos, np.zeros(n, dtype=int))[0]
    strata = nuisance_strata(pd.DataFrame({"duration_s": duration}), ["duration_s"], n_bins=8)
    controlled = stratified_auroc(unit, pos, strata)[0]
    assert raw > 0.85
    assert abs(controlled - 0.5) < 0.15
    # a unit that really follows the category keeps its AUROC within strata
    real = pos + 0.5 * rng.standard_normal(n)
    assert stratified_auroc(real, pos, strata)[0] > 0.75


def test_cliff_is_a_band_limit_not_the_fall_after_a_tonal_peak():
    """A strong tone over broadband noise has a steep fall just above the tone, but the noise
    comes back above it: not band-limited. Noise low-passed at 4 kHz stays down to Nyquist."""
    rng = np.random.default_rng(3)
    t = np.arange(2 * SR) / SR
    noise = 0.01 * rng.standard_normal(2 * SR)
    for f0 in (1000, 3000, 6000, 9000):
        tone = clip_features(0.5 * np.sin(2 * np.pi * f0 * t) + noise)
        assert tone["cliff_db"] < 10, (f0, tone["cliff_db"])
    spec = np.fft.rfft(0.1 * rng.standard_normal(2 * SR))
    spec[np.fft.rfftfreq(2 * SR, 1.0 / SR) > 4000] = 0.0
    lowpassed = clip_features(np.fft.irfft(spec, 2 * SR) + 1e-6 * rng.standard_normal(2 * SR))
    assert lowpassed["cliff_db"] > 40
    # the same tone *inside* a band-limited recording is still band-limited
    both = clip_features(np.fft.irfft(spec, 2 * SR) + 0.5 * np.sin(2 * np.pi * 1000 * t))
    assert both["cliff_db"] > 40


def test_flagged_ci_needs_the_whole_interval_past_the_threshold():
    """AUROC 0.92 from 10 + 10 clips: flagged on the point estimate, not by its interval."""
    idx = [f"c{i}" for i in range(20)]
    labels = pd.Series(["a"] * 10 + ["b"] * 10, index=idx)
    x = np.r_[np.arange(10) + 6.0, np.arange(10.0)]  # 6 pairs reversed, 4 tied: AUROC 0.92 / 0.08
    r = nuisance_report(pd.DataFrame({"duration_s": x}, index=idx), labels, n_boot=300).set_index("category")
    assert r.loc["a", "auroc"] == pytest.approx(0.92) and r.loc["b", "auroc"] == pytest.approx(0.08)
    for cat in ("a", "b"):
        row = r.loc[cat]
        assert row["flagged"] and not row["flagged_ci"]
        assert row["auroc_lo"] <= row["auroc"] <= row["auroc_hi"]
    assert r["flagged_ci"].dtype == bool


def test_strata_survive_ties_and_keep_missing_values_apart():
    # 80 % of clips share one value: quantile ranks put both values in one of 3 bins
    two = pd.DataFrame({"sample_rate_hz": [22050.0] * 16 + [8000.0] * 4})
    assert len(set(nuisance_strata(two, ["sample_rate_hz"], n_bins=3))) == 2
    # many distinct values, 70 % of them tied: still more than one bin (qcut with dropped
    # duplicate edges would make one)
    tied = pd.DataFrame({"duration_s": [5.0] * 14 + [1.0, 1.5, 2.0, 2.5, 3.0, 3.5]})
    assert len(set(nuisance_strata(tied, ["duration_s"], n_bins=2))) == 2
    # NaN: a stratum of its own, not merged into the top bin
    x = np.r_[np.arange(9.0), [np.nan] * 3]
    s = nuisance_strata(pd.DataFrame({"rolloff95_hz": x}), ["rolloff95_hz"], n_bins=3)
    assert len(set(s[9:])) == 1 and s[9] not in set(s[:9])
    assert len(set(s[:9])) == 3 and len(s) == 12
    # a band-limited category within sample-rate strata: compared only with its own rate
    pos = np.r_[np.ones(4, bool), np.zeros(16, bool)]
    rate = pd.DataFrame({"sample_rate_hz": np.r_[[8000.0] * 4, [8000.0] * 4, [22050.0] * 12]})
    strata = nuisance_strata(rate, ["sample_rate_hz"], n_bins=3)
    assert stratified_auroc(rate["sample_rate_hz"].to_numpy(), pos, strata)[0] == 0.5


@pytest.mark.slow
def test_demo_corpus_confounds_are_flagged(tmp_path, model):
    from interp.recording import record_corpus

    run_dir = tmp_path / "demo"
    record_corpus("demo", run_dir, model=model, layers=("conv1",), progress=False)
    report = run_nuisance_report(run_dir, n_boot=300)
    flagged = report[report["flagged"]]
    speech = flagged[flagged["category"] == "speech"]
    assert "cliff_db" in set(speech["nuisance"])  # 24 of 27 speech clips are 8 kHz recordings
    assert ("instrument", "duration_s") in set(zip(flagged["category"], flagged["nuisance"]))
    assert (run_dir / "nuisance.parquet").is_file() and (run_dir / "clip_nuisances.parquet").is_file()
