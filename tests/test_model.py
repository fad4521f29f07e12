"""SoundNet8 against an independent numpy forward pass, the .npy/.pth routes, the heads' predictions.

Everything runs on the real weights (the verified ``sound8.npy``) and real recordings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from soundnet import SoundNet8, SoundNet8_pytorch, load_audio, load_soundnet
from soundnet.audio import INPUT_SCALE, read_audio, to_model_input
from soundnet.errors import ParameterError
from soundnet.labels import decode
from soundnet.model import CONV_LAYERS, HEAD_LAYERS, LAYER_SPECS, LAYERS
from soundnet.weights import npy_to_state_dict, read_npy

REL_TOL = 1e-4


@pytest.fixture(scope="module")
def params(npy_path) -> dict:
    return read_npy(npy_path)


# -- an independent forward pass in numpy (float64) --------------------------------------------


def np_conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray, *, stride: int, padding: int) -> np.ndarray:
    """``x`` (in, L); ``w`` in the TensorFlow layout (k, 1, in, out); returns (out, L')."""
    k = w.shape[0]
    xp = np.pad(x, ((0, 0), (padding, padding)))
    if xp.shape[1] < k:
        return np.zeros((w.shape[3], 0))
    windows = sliding_window_view(xp, k, axis=1)[:, ::stride, :]  # (in, L', k)
    return np.einsum("ctk,kco->ot", windows, w[:, 0], optimize=True) + b[:, None]


def np_maxpool(x: np.ndarray, k: int) -> np.ndarray:
    n = x.shape[1] // k
    return x[:, : n * k].reshape(x.shape[0], n, k).max(axis=2)


def np_forward(wave: np.ndarray, params: dict) -> dict[str, np.ndarray]:
    """Every layer's output for one waveform ``(n_samples,)`` already scaled x256."""
    out: dict[str, np.ndarray] = {}
    h = wave.astype(np.float64)[None, :]
    for spec in LAYER_SPECS:
        p = {k: v.astype(np.float64) for k, v in params[spec.name].items()}
        src = out["conv7"] if spec.name in HEAD_LAYERS else h
        y = np_conv1d(src, p["weights"], p["biases"], stride=spec.stride, padding=spec.padding)
        if spec.batchnorm:
            y = (y - p["mean"][:, None]) / np.sqrt(p["var"][:, None] + 1e-5) * p["gamma"][:, None] + p["beta"][:, None]
            y = np.maximum(y, 0.0)
        if spec.pool:
            y = np_maxpool(y, spec.pool)
        out[spec.name] = y
        if spec.name in CONV_LAYERS:
            h = y
    return out


@pytest.fixture(scope="module")
def reference_clips(minibank_dir, long_dir) -> dict[str, np.ndarray]:
    """Three short minibank clips of different categories and a 30 s orchestra clip."""
    manifest = pd.read_csv(minibank_dir / "manifest.csv")
    picks = {}
    for label in ("speech", "tabla", "ambient"):
        row = manifest[manifest.label == label].sort_values("seconds").iloc[-1]
        picks[f"{label}:{Path(row.path).name}"] = read_audio(minibank_dir / row.path)
    picks["long:hungarian_dance_5"] = read_audio(long_dir / "hungarian_dance_5.flac")
    return picks


def test_torch_model_matches_numpy_reference(model, params, reference_clips, artifacts_dir):
    worst = {name: 0.0 for name in LAYERS}
    frames_seen = {name: 0 for name in LAYERS}
    for clip, y in reference_clips.items():
        x = to_model_input(y)
        with torch.inference_mode():
            feats = model.extract_features(x)
        ref = np_forward(x[0, 0].numpy(), params)
        for name in LAYERS:
            got = feats[name][0].numpy()
            assert got.shape == ref[name].shape, (clip, name, got.shape, ref[name].shape)
            if got.shape[1] == 0:
                continue
            scale = np.abs(ref[name]).max()
            assert scale > 0, (clip, name)
            rel = float(np.abs(got - ref[name]).max() / scale)
            assert rel < REL_TOL, f"{clip} {name}: max relative error {rel:.2e}"
            worst[name] = max(worst[name], rel)
            frames_seen[name] += got.shape[1]
    # every layer, heads included, was compared on at least one frame
    assert all(frames_seen[name] > 0 for name in LAYERS), frames_seen
    (artifacts_dir / "numpy_reference_errors.json").write_text(json.dumps(worst, indent=1))
    print("max relative error per layer:", {k: f"{v:.1e}" for k, v in worst.items()})


def test_reference_detects_a_wrong_layout(params, reference_clips):
    """The check has teeth: transposing a kernel (a classic conversion bug) breaks agreement."""
    y = reference_clips["long:hungarian_dance_5"][:100_000]
    x = to_model_input(y)
    broken = {k: dict(v) for k, v in params.items()}
    broken["conv3"]["weights"] = broken["conv3"]["weights"][::-1].copy()
    good, bad = np_forward(x[0, 0].numpy(), params), np_forward(x[0, 0].numpy(), broken)
    rel = np.abs(good["conv3"] - bad["conv3"]).max() / np.abs(good["conv3"]).max()
    assert rel > 100 * REL_TOL


def _seed_state_dict(params: dict) -> dict[str, torch.Tensor]:
    """A state dict in the seed's layout: Conv2d weights (out, in, k, 1), BatchNorm2d keys."""
    return {k: v[..., None] if k.endswith(".0.weight") else v for k, v in npy_to_state_dict(params).items()}


def test_npy_and_seed_pth_routes_give_identical_outputs(tmp_path, npy_path, params, long_dir):
    pth = tmp_path / "seed sound8.pth"
    torch.save(_seed_state_dict(params), pth)
    from_npy, from_pth = load_soundnet(npy_path), load_soundnet(pth)
    assert not from_npy.training and not from_pth.training
    x = load_audio(long_dir / "humpback_whale.flac", duration_s=12.0)
    with torch.inference_mode():
        a, b = from_npy.extract_features(x), from_pth.extract_features(x)
    for name in LAYERS:
        assert a[name].shape[-1] > 0, name
        assert torch.equal(a[name], b[name]), name


def test_seed_usage_still_works(tmp_path, params, model, long_dir):
    """What a user of the seed wrote: SoundNet8_pytorch(), load_state_dict(torch.load(...)),
    4-D input (batch, 1, n, 1), extract_feat returning numpy arrays."""
    pth = tmp_path / "sound8.pth"
    torch.save(_seed_state_dict(params), pth)
    net = SoundNet8_pytorch()
    net.load_state_dict(torch.load(pth))
    net.eval()
    x = load_audio(long_dir / "hungarian_dance_5.flac", duration_s=10.0)
    with torch.inference_mode():
        obj4, plc4 = net(x.unsqueeze(-1))
        obj3, plc3 = model(x)
        feats = net.extract_feat(x.unsqueeze(-1))
    assert obj4.shape == (1, 1000, 1, 1) and plc4.shape == (1, 401, 1, 1)
    assert torch.equal(obj4[..., 0], obj3) and torch.equal(plc4[..., 0], plc3)
    assert [f.shape[1] for f in feats] == [16, 32, 64, 128, 256, 512, 1024, 1000, 401]
    assert all(isinstance(f, np.ndarray) and f.ndim == 4 and f.shape[-1] == 1 for f in feats)


def test_bad_inputs_raise_parameter_error(model):
    with pytest.raises(ParameterError, match="batch, 1, n_samples"):
        model(torch.zeros(1, 2, 30_000))
    with pytest.raises(ParameterError, match="batch, 1, n_samples"):
        model(torch.zeros(30_000))
    with pytest.raises(ParameterError, match="int64"):
        model(torch.zeros(1, 1, 30_000, dtype=torch.long))
    with pytest.raises(ParameterError, match="'layers'"):
        model.extract_features(torch.zeros(1, 1, 30_000), layers=["conv9"])


def test_devices_are_checked_before_anything_runs(tmp_path):
    from interp.recording import record_corpus
    from soundnet.model import load_soundnet

    with pytest.raises(ParameterError, match="torch device"):
        load_soundnet(device="gpu")
    if torch.cuda.is_available():  # a CUDA machine: the model really goes there
        assert next(load_soundnet(device="cuda").parameters()).is_cuda
        return
    with pytest.raises(ParameterError, match="sees no CUDA device"):
        load_soundnet(device="cuda")
    with pytest.raises(ParameterError, match="sees no CUDA device"):
        record_corpus("demo", tmp_path / "run", device="cuda", progress=False)
    assert not (tmp_path / "run").exists()  # refused before writing anything


def test_extract_features_subset_equals_full(model, long_dir):
    x = load_audio(long_dir / "vibe_ace.flac", duration_s=11.0)
    with torch.inference_mode():
        full = model.extract_features(x)
        some = model.extract_features(x, layers=["conv5", "conv8_2"])
        objects, places = model(x)
    assert list(some) == ["conv5", "conv8_2"]
    assert torch.equal(some["conv5"], full["conv5"]) and torch.equal(some["conv8_2"], full["conv8_2"])
    assert torch.equal(objects, full["conv8"]) and torch.equal(places, full["conv8_2"])
    assert objects.shape == (1, 1000, 1) and places.shape == (1, 401, 1)


def test_model_is_eval_and_frozen(model):
    assert isinstance(model, SoundNet8) and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    # BatchNorm uses its running statistics: a batch gives the same output as its items alone
    x = torch.randn(2, 1, 40_000, generator=torch.Generator().manual_seed(0)) * 30
    with torch.inference_mode():
        both = model.extract_features(x, layers=["conv4"])["conv4"]
        one = model.extract_features(x[:1], layers=["conv4"])["conv4"]
    torch.testing.assert_close(both[:1], one, rtol=1e-5, atol=1e-5)


# -- the heads on real recordings ---------------------------------------------------------------


def _top3(model, y: np.ndarray, *, scale: float) -> tuple[list[str], list[str]]:
    x = torch.from_numpy(y).reshape(1, 1, -1) * scale
    with torch.inference_mode():
        objects, places = model(x)
    return (
        [n for n, _ in decode(objects, head="objects", k=3)[0]],
        [n for n, _ in decode(places, head="places", k=3)[0]],
    )


def test_orchestra_is_a_stage_and_the_whale_an_aquarium(model, long_dir):
    orchestra = read_audio(long_dir / "hungarian_dance_5.flac")
    objects, places = _top3(model, orchestra, scale=INPUT_SCALE)
    assert "stage" in objects, objects
    assert {"/m/music_studio", "/s/stage/indoor"} & set(places), places
    _, whale_places = _top3(model, read_audio(long_dir / "humpback_whale.flac"), scale=INPUT_SCALE)
    assert "/a/aquarium" in whale_places, whale_places


def test_without_the_x256_scaling_the_orchestra_is_lost(model, long_dir):
    orchestra = read_audio(long_dir / "hungarian_dance_5.flac")
    objects, places = _top3(model, orchestra, scale=1.0)
    assert "stage" not in objects, objects
    assert not {"/m/music_studio", "/s/stage/indoor"} & set(places), places


def test_load_audio_applies_the_scaling(long_dir):
    path = long_dir / "hungarian_dance_5.flac"
    x = load_audio(path, duration_s=2.0)
    y = read_audio(path, duration_s=2.0)
    assert x.dtype == torch.float32 and x.shape == (1, 1, len(y))
    np.testing.assert_array_equal(x[0, 0].numpy(), y * np.float32(256))
    assert 1.0 < float(x.abs().max()) <= 256.0
