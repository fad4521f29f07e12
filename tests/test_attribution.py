"""Per-unit attribution (interp.analysis.attribution): the gated resynthesis, Captum's maps, the
sanity checks, and issue 18's check 3 on a kick followed by a cymbal (real weights, real clips)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analysis import attribution as A
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ
from soundnet.model import SoundNet8

SR = SAMPLE_RATE_HZ


@pytest.fixture(scope="module")
def random_model() -> SoundNet8:
    """A randomly initialised SoundNet8 (no weights needed): the plumbing does not depend on them."""
    torch.manual_seed(0)
    return SoundNet8().eval()


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(1.2 * SR)) / SR
    return (0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440 * t) * (t > 0.6)).astype(np.float32)


# -- plumbing (fast) ------------------------------------------------------------------------
def test_resynthesis_is_exact_and_the_crop_keeps_the_target(random_model, noise):
    for layer, frame in (("conv3", 40), ("conv4", 2), ("conv5", 1)):
        p = A._problem(
            "t", random_model, noise, layer, 3, target="peak", frame=frame, n_time=8, n_freq=8, n_fft=512,
            hop_length=128, clip_samples=None,
        )  # fmt: skip
        assert p.consistent, layer  # cropped forward == forward of the whole clip at the target frame
        full = p.synth_full(np.ones((8, 8)))
        np.testing.assert_allclose(full, noise, atol=1e-5)
        crop = p.synth_crop(p.ones())[0].numpy()
        np.testing.assert_allclose(crop, noise[p.a : p.b], atol=1e-5)
        g = torch.rand(1, 8, 8)  # the batched overlap-add equals torch.istft of the gated STFT
        np.testing.assert_allclose(
            p.synth_crop(g)[0].numpy(), p.synth_full(g[0].double().numpy())[p.a : p.b], atol=1e-5
        )


def test_local_occlusion_equals_the_whole_forward(random_model, noise):
    """Occlusion recomputes conv1-conv2 around the silenced column only: same activations."""
    for layer in ("conv3", "conv5", "conv7"):
        kw = dict(target="peak", frame=None, n_time=12, n_freq=4, n_fft=512, hop_length=128)
        p = A._problem("t", random_model, noise, layer, 2, clip_samples=None, **kw)
        g = p.ones(len(p.eval_cols))
        for i, c in enumerate(p.eval_cols):
            g[i, c, i % 4] = 0.0
        with torch.no_grad():
            np.testing.assert_allclose(p.activation_occluded(g).numpy(), p.activation(g).numpy(), rtol=1e-4, atol=1e-5)


def test_map_fields_and_listening_audio(random_model, noise):
    a = A.attribute_unit(
        random_model, noise, "conv4", 5, n_time=8, n_freq=6, n_fft=512, hop_length=128, top_fraction=0.2
    )
    assert a.map.shape == a.evaluated.shape == a.top_mask.shape == (8, 6)
    assert len(a.times_s) == 8 and len(a.freqs_hz) == 6 and a.freq_edges_hz[-1] == SR / 2
    assert np.all(np.diff(a.freq_edges_hz) > 0) and a.time_edges_s[-1] == pytest.approx(noise.size / SR)
    assert np.all(a.map[~a.evaluated] == 0) and a.evaluated.any()
    assert not (a.top_mask & ~a.evaluated).any() and np.all(a.map[a.top_mask] > 0)
    np.testing.assert_allclose(a.top_audio + a.complement_audio, noise, atol=1e-5)
    df = a.to_frame()
    assert len(df) == 48 and {"time_s", "freq_hz", "value", "evaluated", "top"} <= set(df.columns)
    assert "conv4:5" in A.format_attribution(a)


def test_integrated_gradients_complete(random_model, noise):
    """IG's cells add up to the unit's activation on the clip minus that on silence (all gates 0)."""
    kw = dict(target="peak", frame=None, n_time=6, n_freq=4, n_fft=512, hop_length=128)
    a = A.attribute_unit(random_model, noise, "conv3", 7, method="integrated_gradients", n_steps=64, **kw)
    p = A._problem("t", random_model, noise, "conv3", 7, clip_samples=None, **kw)
    with torch.no_grad():
        silent = float(p.activation(torch.zeros(1, 6, 4)).item())
    assert a.map.sum() == pytest.approx(a.baseline_activation - silent, rel=0.05, abs=1e-3)


def test_occlusion_is_the_drop_when_a_cell_is_silenced(random_model, noise):
    kw = dict(target="valid", frame=None, n_time=4, n_freq=3, n_fft=512, hop_length=128)
    a = A.attribute_unit(random_model, noise, "conv2", 1, **kw)
    p = A._problem("t", random_model, noise, "conv2", 1, clip_samples=None, **kw)
    g = torch.ones(1, 4, 3)
    g[0, 2, 1] = 0
    with torch.no_grad():
        dropped = float(p.activation(g).item())
    assert a.map[2, 1] == pytest.approx(a.baseline_activation - dropped, abs=1e-5)


def test_randomized_model_copies(random_model):
    m = A.randomized_model(random_model, ["conv2"], seed=1)
    assert not torch.equal(m.conv2[0].weight, random_model.conv2[0].weight)
    assert torch.equal(m.conv1[0].weight, random_model.conv1[0].weight)
    assert float(m.conv2[1].running_var.mean()) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"layer": "conv9"}, "'layer'"),
        ({"layer": "conv8"}, "'layer'"),
        ({"unit": 64}, "'unit'"),
        ({"unit": -1}, "'unit'"),
        ({"method": "lime"}, "'method'"),
        ({"target": "mean"}, "'target'"),
        ({"n_freq": 200}, "'n_freq'"),
        ({"hop_length": 1000}, "'hop_length'"),
        ({"top_fraction": 0.0}, "'top_fraction'"),
        ({"clip_samples": 10**9}, "'clip_samples'"),
    ],
)
def test_bad_parameters(random_model, noise, kwargs, match):
    args = {"layer": "conv3", "unit": 0, **kwargs}
    layer, unit = args.pop("layer"), args.pop("unit")
    with pytest.raises(ParameterError, match=match):
        A.attribute_unit(random_model, noise, layer, unit, n_time=4, **args)


def test_short_clip_refused(random_model):
    with pytest.raises(ParameterError, match="'wave'"):
        A.attribute_unit(random_model, np.zeros(1000, np.float32), "conv5", 0)
    with pytest.raises(ParameterError, match="no valid conv5 frame"):
        A.attribute_unit(random_model, np.zeros(5000, np.float32), "conv5", 0, target="valid")


# -- check 3: a kick, then a cymbal (real weights) -------------------------------------------
def _kick_unit(model) -> tuple[str, int]:
    """The conv3/conv4 unit whose per-clip max best separates the demo's kick drums from its
    cymbals (AUROC, ties broken by the ratio of the class means)."""
    from scipy.stats import rankdata

    from interp.corpus.corpora import load_corpus, read_clip

    df = load_corpus("demo")
    df = df[df["label"].isin(["kick_drum", "cymbal"])]
    feats: dict[str, list[np.ndarray]] = {"conv3": [], "conv4": []}
    for row in df.to_dict("records"):
        y = read_clip(row)
        y = np.concatenate([y, np.zeros(max(0, SR // 2 - y.size), np.float32)])
        with torch.no_grad():
            out = model.extract_features(torch.as_tensor(y * 256).reshape(1, 1, -1), layers=tuple(feats))
        for layer in feats:
            feats[layer].append(out[layer][0].amax(-1).numpy())
    pos = (df["label"] == "kick_drum").to_numpy()
    best = None
    for layer, rows in feats.items():
        x = np.array(rows)
        r = np.apply_along_axis(rankdata, 0, x)
        auc = (r[pos].sum(0) - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())
        ratio = x[pos].mean(0) / (x[~pos].mean(0) + 1e-3)
        for u in range(x.shape[1]):
            key = (round(float(auc[u]), 6), float(ratio[u]))
            if best is None or key > best[0]:
                best = (key, layer, u)
    assert best is not None and best[0][0] > 0.95
    return best[1], best[2]


@pytest.fixture(scope="module")
def kick_then_cymbal() -> tuple[np.ndarray, float]:
    from interp.corpus.corpora import demo_dir
    from soundnet.audio import read_audio

    audio = demo_dir() / "audio"
    kick = read_audio(audio / "kick_drum" / "bd_808.flac")
    cymbal = read_audio(audio / "cymbal" / "drum_cymbal_soft.flac")
    wave = np.concatenate([kick, np.zeros(int(0.1 * SR), np.float32), cymbal])
    return wave, kick.size / SR


@pytest.mark.slow
def test_check3_kick_unit_attribution_lies_on_the_kick(model, kick_then_cymbal):
    wave, kick_end_s = kick_then_cymbal
    layer, unit = _kick_unit(model)
    # the unit's mean over the clip's valid frames: where in the clip does it come from?
    a = A.attribute_unit(model, wave, layer, unit, target="valid", n_time=16, n_freq=8)
    assert a.baseline_activation > 0
    mass = a.time_mass(0.0, kick_end_s)
    assert mass > 0.5, (layer, unit, mass, A.format_attribution(a))
    # the unit at its peak: the peak is in the kick, and so is the map
    p = A.attribute_unit(model, wave, layer, unit, n_time=16, n_freq=8)
    assert p.frame_times_s[0] < kick_end_s and p.time_mass(0.0, kick_end_s) > 0.5
    # sanity (a): randomised weights (the unit's layer down to conv1) change the map
    rc = A.randomization_check(model, wave, a, cascade=False)
    assert len(rc) == 1 and rc["n_layers"].iloc[0] == int(layer[-1])
    assert bool(rc["changed"].iloc[0]) and not (rc["spearman"].iloc[0] >= 0.5), rc
    # sanity (b): silencing the top region lowers the unit more than silencing random regions
    r = A.removal_check(model, wave, p, n_random=16)
    assert r.passed and r.top_drop > 0 and r.p_value < 0.1, r
