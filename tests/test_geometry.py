"""soundnet.geometry against the real model: frame counts for many lengths, times and windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from soundnet import load_audio
from soundnet.errors import ParameterError
from soundnet.geometry import (
    SAMPLE_RATE_HZ,
    frame_counts,
    frames_to_time,
    frames_to_window,
    layer_geometry,
    min_samples,
    n_frames,
    time_to_frames,
)
from soundnet.model import CONV_LAYERS, LAYERS


def _lengths() -> list[int]:
    logspaced = np.unique(np.geomspace(222, 3_000_000, 50).astype(int)).tolist()
    edges = [0, 1, 13, 14, 221, 222, 4573, 4574, 209_373, 209_374, 1_476_864, 2_199_168, 3_000_000]
    edges += [min_samples(layer) + d for layer in LAYERS for d in (-1, 0, 1)]
    edges += [209_374 + k * 65_536 + d for k in (1, 5) for d in (-1, 0)]  # conv8 frame boundaries
    return sorted(set(logspaced) | set(edges))


def test_geometry_equals_real_shapes(model):
    lengths = _lengths()
    assert len(lengths) >= 50 and lengths[-1] == 3_000_000
    mismatches = []
    with torch.inference_mode():
        for n in lengths:
            feats = model.extract_features(torch.zeros(1, 1, n))
            real = {name: int(t.shape[-1]) for name, t in feats.items()}
            if real != frame_counts(n):
                mismatches.append((n, real, frame_counts(n)))
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize(
    ("n_samples", "layer", "expected"),
    [
        (1_476_864, "conv7", 46),
        (2_199_168, "conv7", 68),
        (209_374, "conv8", 1),
        (209_374, "conv8_2", 1),
        (209_373, "conv8", 0),
        (221, "conv2", 0),
        (222, "conv4", 1),
    ],
)
def test_documented_frame_counts(n_samples, layer, expected):
    assert n_frames(n_samples, layer) == expected


def test_short_input_gives_zero_head_frames(model, minibank_dir):
    with torch.inference_mode():
        objects, places = model(torch.zeros(1, 1, 209_373))
    assert objects.shape == (1, 1000, 0) and places.shape == (1, 401, 0)
    assert min_samples("conv8") == min_samples("conv8_2") == 209_374


def test_tiling_gives_the_heads_frames(model, minibank_dir):
    clip = minibank_dir / "audio" / "tabla" / "tabla_ghe2.flac"
    plain = load_audio(clip)
    minimal = load_audio(clip, short="tile", min_length="conv8")
    assert plain.shape[-1] < 209_374 and minimal.shape[-1] == 209_374
    n = plain.shape[-1]
    torch.testing.assert_close(minimal[..., n : 2 * n], plain, rtol=0, atol=0)
    with torch.inference_mode():
        objects, places = model(minimal)
        none_objects, _ = model(plain)
    assert objects.shape == (1, 1000, 1) and places.shape == (1, 401, 1)
    assert none_objects.shape == (1, 1000, 0)


def test_edge_head_frames_are_flagged_and_degenerate(model, minibank_dir):
    """conv7's padded last frame makes any head frame that reads it degenerate."""
    from soundnet.geometry import HEADS_TILE_SAMPLES, head_frame_ok
    from soundnet.labels import clip_probabilities

    assert head_frame_ok(209_374).tolist() == [False]  # 8 conv7 frames: the one frame reads the edge
    assert head_frame_ok(260_000).tolist() == [True]  # 9 conv7 frames: it does not
    assert head_frame_ok(HEADS_TILE_SAMPLES).all() and len(head_frame_ok(HEADS_TILE_SAMPLES)) == 4
    for n in (250_000, 661_500, 1_000_000):  # at most the last frame is flagged
        ok = head_frame_ok(n)
        assert ok[:-1].all()
    clips = sorted((minibank_dir / "audio").glob("*/*.flac"))[::30]
    degenerate, clean = [], []
    for path in clips:
        with torch.inference_mode():
            bad, _ = model(load_audio(path, short="tile", min_length="conv8"))
            x = load_audio(path, short="tile")
            good, _ = model(x)
        degenerate.append(clip_probabilities(bad)[0].max())
        clean.append(clip_probabilities(good, n_samples=x.shape[-1])[0].max())
    # the flagged frame is near-certain whatever the sound; clean frames are spread out
    assert min(degenerate) > 0.8 and max(clean) < 0.3


def test_hops_and_receptive_fields():
    hops = {name: layer_geometry(name).hop_samples for name in LAYERS}
    assert hops == {
        "conv1": 16,
        "conv2": 256,
        "conv3": 512,
        "conv4": 1024,
        "conv5": 8192,
        "conv6": 16384,
        "conv7": 32768,
        "conv8": 65536,
        "conv8_2": 65536,
    }
    g1 = layer_geometry("conv1")
    assert g1.receptive_field_samples == 64 + 7 * 2 and g1.first_start_samples == -32
    fields = [layer_geometry(name).receptive_field_samples for name in LAYERS]
    assert fields == sorted(fields)
    # the one conv8 frame of the shortest input that has one is centred on that input
    g8 = layer_geometry("conv8")
    assert g8.first_centre_samples == (min_samples("conv8") - 1) / 2 == 104_686.5
    assert g8.receptive_field_samples == 320_542
    assert layer_geometry("conv8").hop_s == pytest.approx(65536 / SAMPLE_RATE_HZ)


@pytest.mark.parametrize("layer", LAYERS)
def test_time_and_window_are_consistent(layer):
    g = layer_geometry(layer)
    frames = np.arange(20)
    t = frames_to_time(frames, layer)
    start, end = frames_to_window(frames, layer)
    np.testing.assert_allclose(np.diff(t), g.hop_samples / SAMPLE_RATE_HZ)
    np.testing.assert_allclose(end - start, g.receptive_field_samples / SAMPLE_RATE_HZ)
    # the time of a frame is the centre of its window (sample centres: window is [start, end))
    np.testing.assert_allclose(t, (start + end) / 2 - 0.5 / SAMPLE_RATE_HZ)
    np.testing.assert_array_equal(time_to_frames(t, layer), frames)
    cs, ce = frames_to_window(frames, layer, duration_s=10.0)
    assert cs.min() >= 0 and ce.max() <= 10.0 and np.all(cs <= ce)


def test_an_impulse_only_moves_frames_whose_window_holds_it(model):
    """Empirical receptive fields: perturb one sample; every frame that changes must have that
    sample inside its window, and the frame centred nearest to it is among the changed ones for
    the conv layers whose every unit sees it."""
    rng = np.random.default_rng(0)
    n = 230_000
    x = torch.from_numpy(rng.standard_normal(n).astype(np.float32) * 20).reshape(1, 1, n)
    for pos in (1_000, 100_003, 228_000):
        y = x.clone()
        y[..., pos] += 2000.0
        with torch.inference_mode():
            a, b = model.extract_features(x), model.extract_features(y)
        for name in LAYERS:
            changed = np.flatnonzero((a[name] != b[name]).any(dim=1)[0].numpy())
            assert changed.size, (pos, name)
            start, end = frames_to_window(changed, name, sr=1)
            assert np.all((start <= pos) & (pos < end)), (pos, name, changed)
    # nearest-centre frame responds for a deep layer (the impulse sits well inside its window)
    with torch.inference_mode():
        y = x.clone()
        y[..., 100_003] += 2000.0
        a, b = model.extract_features(x, layers=["conv5"]), model.extract_features(y, layers=["conv5"])
    changed = np.flatnonzero((a["conv5"] != b["conv5"]).any(dim=1)[0].numpy())
    assert int(time_to_frames(100_003 / SAMPLE_RATE_HZ, "conv5")) in changed


def test_bad_arguments():
    with pytest.raises(ParameterError, match="'layer'"):
        n_frames(1000, "pool5")
    with pytest.raises(ParameterError, match="'n_samples'"):
        n_frames(-1, "conv1")
    assert set(frame_counts(10**6)) == set(LAYERS) and len(CONV_LAYERS) == 7


def test_valid_frames_are_consecutive_and_mostly_inside_the_clip():
    from soundnet.geometry import inside_fraction, valid_frames, valid_range

    for layer in LAYERS:
        for n in range(1000, 600_000, 7919):
            for clip in (n, n // 2, n // 5):
                ok = valid_frames(n, layer, clip_samples=clip)
                idx = np.flatnonzero(ok)
                assert len(idx) == 0 or idx[-1] - idx[0] + 1 == len(idx), (layer, n, clip)
                assert (inside_fraction(n, layer, clip_samples=clip)[ok] >= 0.5 - 1e-12).all()
                lo, hi = valid_range(n, layer, clip_samples=clip)
                assert hi - lo == len(idx)
    # a 1 s clip has no valid conv7 frame (at most 24 % of its 4.1 s field inside), 21 of conv4's
    assert not valid_frames(22050, "conv7").any()
    assert inside_fraction(22050, "conv7").max() == pytest.approx(22050 / 91166)
    assert valid_frames(22050, "conv4").sum() == 21
    # conv7's first and last frames of a long clip read two padded inputs of four: not valid
    ok7 = valid_frames(10 * 22050, "conv7")
    assert not ok7[0] and not ok7[-1] and ok7[1:-1].all()
    # padding appended to a short clip does not make frames valid
    assert valid_frames(100_000, "conv4", clip_samples=5000).sum() < valid_frames(100_000, "conv4").sum()
