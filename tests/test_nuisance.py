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
