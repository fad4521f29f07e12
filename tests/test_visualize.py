"""Feature visualization by optimization (interp.analysis.visualize), on the real weights.

Check 1 (issue 18): a conv3, a conv5 and a conv7 unit's visualization reaches at least the
activation of the unit's best natural clip of the demo run (both as ``vmean``, the mean over
valid frames), and is a valid WAV with no sample beyond full scale. Check 2: a conv1 unit's
visualization has its spectral peak within a third of an octave of its filter's peak frequency
(FFT of the 64 taps). The optimisations here are short (few steps, two seeds); the speed line
is measured in ``benchmarks/bench_visualize.py``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from interp.analysis import visualize as V
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ

#: Short optimisations for the tests (the defaults are in VisualizeConfig).
FAST = V.VisualizeConfig(n_seeds=2, steps=20, lr=0.12)


@pytest.fixture(scope="module")
def demo_run(minibank_dir, model, tmp_path_factory):
    """The demo corpus recorded once per session (the folder test_selectivity's minibank_run uses:
    a complete run with the same key is returned at once)."""
    from interp.recording import record_corpus
    from interp.run.store import open_run

    out = tmp_path_factory.getbasetemp() / "minibank_run"
    record_corpus(str(minibank_dir), out, model=model, progress=False)
    return open_run(out)


def _strong_unit(run, layer: str) -> int:
    """A unit driven hard by some natural clip: the one whose best clip ranks at the 90th
    percentile of the layer's units (by ``vmean``)."""
    best = run.activations(layer, "vmean").max().dropna().sort_values()
    return int(best.index[int(0.9 * (len(best) - 1))])


# --------------------------------------------------------------------------------------------
# building blocks (fast)
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["conv1", "conv3", "conv5", "conv7"])
def test_unit_net_equals_model(model, layer):
    x = torch.randn(2, 1, 95_000, generator=torch.Generator().manual_seed(0)) * 0.3 * 256
    ref = model.extract_features(x, layers=(layer,))[layer][:, 7]
    got = V.unit_objective_net(model, layer, 7)(x)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-4 * float(ref.abs().max()) + 1e-5)


def test_gradient_reaches_the_input(model):
    x = (torch.randn(1, 1, 22050) * 256).requires_grad_(True)
    V.unit_objective_net(model, "conv5", 3)(x, pre_relu=True).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_default_duration_has_valid_frames():
    from soundnet.geometry import valid_frames

    for layer in ("conv1", "conv3", "conv5", "conv6", "conv7"):
        d = V.default_duration_s(layer)
        assert valid_frames(int(round(d * SAMPLE_RATE_HZ)), layer).any()
    assert V.default_duration_s("conv7") > 4.1  # its receptive field


@pytest.mark.parametrize(
    "change, match",
    [
        (dict(n_seeds=0), "'n_seeds'"),
        (dict(gain_min=1.5), "'gain_min'"),
        (dict(hop_samples=4096), "'hop_samples'"),
        (dict(duration_s=0.2), "too short|n_fft"),
    ],
)
def test_bad_settings_raise(model, change, match):
    with pytest.raises(ParameterError, match=match):
        V.visualize_unit(model, "conv7", 0, config=dataclasses.replace(FAST, **change))


def test_bad_unit_and_layer_raise(model):
    with pytest.raises(ParameterError, match=r"'unit'.*Got 64"):
        V.visualize_unit(model, "conv3", 64)
    with pytest.raises(ParameterError, match="'layer'"):
        V.visualize_unit(model, "conv8", 0)


def test_write_wav_is_peak_normalised(tmp_path):
    y = np.sin(np.linspace(0, 200, 5000)) * 3.0
    path = V.write_wav(tmp_path / "x.wav", y)
    back, sr = sf.read(path)
    assert sr == SAMPLE_RATE_HZ and len(back) == 5000
    assert 0.99 < np.abs(back).max() <= 1.0


def test_seed_diversity():
    rng = np.random.default_rng(0)
    tone = np.sin(2 * np.pi * 440 * np.arange(22050) / SAMPLE_RATE_HZ)
    assert V.seed_diversity([tone, tone]) == pytest.approx(1.0)
    noise = [rng.standard_normal(22050) * np.linspace(0, 1, 22050) ** k for k in (0, 4)]
    assert V.seed_diversity([tone, *noise]) < 0.9


# --------------------------------------------------------------------------------------------
# check 2: conv1 finds its filter's frequency
# --------------------------------------------------------------------------------------------
def test_conv1_visualization_peaks_at_filter_frequency(model):
    w = model.conv1[0].weight.detach().numpy()[:, 0, :]  # (16, 64) taps at 22050 Hz
    freqs = np.fft.rfftfreq(8192, 1 / SAMPLE_RATE_HZ)
    power = np.abs(np.fft.rfft(w, 8192, axis=1)) ** 2
    peak_hz = freqs[power.argmax(axis=1)]
    sharp = power.max(axis=1) / power.mean(axis=1)
    unit = int(np.argmax(np.where(peak_hz > 500, sharp, 0)))  # a band-pass filter, not a DC one
    vis = V.visualize_unit(model, "conv1", unit, config=dataclasses.replace(FAST, duration_s=0.5))
    y = vis.best_waveform
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y)), 1 << 16)) ** 2
    f = np.fft.rfftfreq(1 << 16, 1 / SAMPLE_RATE_HZ)
    got_hz = f[1:][spec[1:].argmax()]
    octaves = abs(np.log2(got_hz / peak_hz[unit]))
    assert octaves <= 1 / 3, f"conv1:{unit} filter peak {peak_hz[unit]:.0f} Hz, visualization peak {got_hz:.0f} Hz"


# --------------------------------------------------------------------------------------------
# check 1: beyond the best natural clip, as valid audio
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["conv3", "conv5", "conv7"])
def test_visualization_beats_best_natural_clip(demo_run, model, layer, tmp_path):
    unit = _strong_unit(demo_run, layer)
    nat_v, _, clip = V.natural_best(demo_run, layer, unit)
    assert nat_v > 0 and clip is not None
    out = tmp_path / f"{layer}_{unit}.wav"
    vis = V.run_visualize(demo_run, layer, unit, out=out, model=model, config=FAST)
    assert vis.natural_vmean == pytest.approx(nat_v)
    assert vis.vmean.max() >= nat_v, vis.summary()
    # the WAV as written is what was measured: read it back and measure again
    y, sr = sf.read(out, dtype="float32")
    assert sr == SAMPLE_RATE_HZ and y.ndim == 1 and len(y) == vis.waveforms.shape[1]
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99
    vmean, _ = V.unit_activation(model, y, layer, unit)
    assert vmean[0] >= nat_v, (vmean, nat_v)
    assert out.with_name(f"{out.stem}.seed{1 - vis.best_seed}.wav").is_file()
    assert 0 <= vis.diversity <= 1 or np.isnan(vis.diversity)


def test_cache_and_layer_table(demo_run, model):
    cfg = dataclasses.replace(FAST, steps=2, duration_s=0.5)
    df = V.visualize_layer(demo_run, "conv2", units=[0, 5], model=model, config=cfg)
    assert list(df.columns) == list(V.VISUALIZE_COLUMNS) and list(df["unit"]) == [0, 5]
    assert demo_run.has_table("visualize_conv2")
    assert (demo_run.path / df["wav"].iloc[1]).is_file()
    again = V.run_visualize(demo_run, "conv2", 5, model=model, config=cfg)  # from the cache
    assert again.elapsed_s == pytest.approx(float(df["elapsed_s"].iloc[1]))
    np.testing.assert_array_equal(again.vmean.max(), df["vmean"].iloc[1])
    other = V.run_visualize(demo_run, "conv2", 5, model=model, config=dataclasses.replace(cfg, seed=1))
    assert not np.array_equal(other.waveforms, again.waveforms)  # another key: recomputed
