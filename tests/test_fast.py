"""FastSoundNet against the plain SoundNet8, on the real weights and real recordings.

Every layer of the fast path must equal the plain model's within 1e-4 of that layer's largest
magnitude, with the same shapes (0 frames included), for single clips of many lengths, batches,
a long file with the heads, both methods and chunkings that split clips mid-way.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from soundnet import kernels
from soundnet.audio import fit_length, read_audio, to_model_input
from soundnet.errors import ParameterError
from soundnet.fast import FastSoundNet, fast_model, flops_per_second_of_audio, forward_flops
from soundnet.geometry import frame_counts
from soundnet.model import CONV_LAYERS, HEAD_LAYERS, LAYERS

REL_TOL = 1e-4


@pytest.fixture(scope="module")
def fast(model) -> FastSoundNet:
    return FastSoundNet(model)


@pytest.fixture(scope="module")
def clips(minibank_dir) -> list[np.ndarray]:
    """Eight real minibank clips of different lengths (shortest, longest and between)."""
    manifest = pd.read_csv(minibank_dir / "manifest.csv").sort_values("seconds", kind="stable")
    rows = manifest.iloc[np.linspace(0, len(manifest) - 1, 8).round().astype(int)]
    waves = [read_audio(minibank_dir / path) for path in rows["path"]]
    assert len({len(w) for w in waves}) >= 6, "the test wants clips of different lengths"
    return waves


def assert_same(plain: dict[str, torch.Tensor], fast: dict[str, torch.Tensor], *, what: str) -> None:
    assert list(fast) == list(plain), what
    for name, ref in plain.items():
        got = fast[name]
        assert got.shape == ref.shape, f"{what}: {name} shape {tuple(got.shape)} != {tuple(ref.shape)}"
        assert got.dtype == torch.float32
        if ref.numel() == 0:
            continue
        scale = ref.abs().max().item()
        err = (got - ref).abs().max().item()
        assert err <= REL_TOL * scale, f"{what}: {name} max error {err:.3g} vs max |x| {scale:.3g}"


def features(net, x: torch.Tensor, layers=None) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        return net.extract_features(x, layers=layers)


def test_single_clips_all_layers(model, fast, clips):
    for wave in clips:
        x = to_model_input(wave)
        assert_same(features(model, x), features(fast, x), what=f"{len(wave)} samples")


def test_batch_of_clips_all_layers(model, clips):
    # Different clips tiled to a common 6 s, as the recorder batches them.
    n = 6 * 22050
    x = torch.cat([to_model_input(fit_length(w, min_samples=n, policy="tile")[:n]) for w in clips])
    assert x.shape == (8, 1, n)
    plain = features(model, x)
    # chunk_rows 96 splits clips into row chunks for conv1..conv4; 200 also packs 3 clips per
    # chunk in conv5; workers=2 shares the chunks between two threads
    for method, chunk_rows, workers in (
        ("gemm", None, 1),
        ("gemm", 96, 1),
        ("gemm", 200, 2),
        ("gemm", None, 2),
        ("conv", None, 1),
    ):
        got = features(FastSoundNet(model, method=method, chunk_rows=chunk_rows, workers=workers), x)
        assert_same(plain, got, what=f"{method} chunk_rows={chunk_rows} workers={workers}")
    # contiguous=False: the same values, as views of the time-major buffers (no copy)
    with torch.inference_mode():
        views = FastSoundNet(model).extract_features(x, contiguous=False)
    assert_same(plain, views, what="contiguous=False")
    assert not views["conv1"].is_contiguous() and views["conv1"].stride()[1] == 1
    # each clip's row is that clip's own result: nothing leaks between clips of a batch
    alone = features(FastSoundNet(model), x[3:4], layers=("conv1", "conv5", "conv7"))
    for name, value in alone.items():
        assert torch.allclose(value[0], plain[name][3], rtol=0, atol=REL_TOL * plain[name].abs().max().item())


def test_batch_of_unequal_lengths_equals_each_clip_alone(model, clips):
    # 8 real clips of different lengths (one under conv5's minimum), zero-padded to the longest,
    # plus one long enough for the heads; each item's first n_frames(len, layer) frames must be
    # its unbatched output, and the rest 0
    waves = list(clips) + [fit_length(clips[-1], min_samples=250_000, policy="tile")]
    lengths = [len(w) for w in waves]
    x = torch.zeros(len(waves), 1, max(lengths))
    for i, w in enumerate(waves):
        x[i, 0, : len(w)] = to_model_input(w)[0, 0]
    for method in ("gemm", "conv"):
        net = FastSoundNet(model, method=method)
        with torch.inference_mode():
            got = net.extract_features(x, lengths=lengths)
            views = net.extract_features(x, lengths=lengths, contiguous=False)
        for i, w in enumerate(waves):
            alone = features(model, to_model_input(w))
            for name in LAYERS:
                own = alone[name].shape[-1]
                assert own == frame_counts(len(w))[name]
                for res in (got, views):
                    ref = alone[name][0]
                    item = res[name][i]
                    if own:
                        err = (item[:, :own] - ref).abs().max().item()
                        assert err <= REL_TOL * max(ref.abs().max().item(), 1e-6), (method, i, name, err)
                    assert not item[:, own:].any(), (method, i, name)
        assert got["conv8"][-1].shape[-1] >= 1  # the heads really ran
    with pytest.raises(ParameterError, match="'lengths'"):
        FastSoundNet(model).extract_features(x, lengths=lengths[:-1])
    with pytest.raises(ParameterError, match="'lengths'"):
        FastSoundNet(model).extract_features(x, lengths=[x.shape[-1] + 1] * len(waves))


def test_long_file_with_heads(model, fast, long_dir):
    path = sorted(long_dir.glob("*.flac"))[0]
    x = to_model_input(read_audio(path))
    assert x.shape[-1] > 17 * 22050
    plain = features(model, x)
    got = features(fast, x)
    assert got["conv8"].shape[-1] >= 3  # the heads really ran
    assert_same(plain, got, what=path.name)
    # and the logits agree on the decision
    assert torch.equal(got["conv8"].argmax(1), plain["conv8"].argmax(1))
    assert torch.equal(got["conv8_2"].argmax(1), plain["conv8_2"].argmax(1))
    with torch.inference_mode():
        objects, places = fast(x)
    assert torch.equal(objects, got["conv8"]) and torch.equal(places, got["conv8_2"])


@pytest.mark.parametrize("n_samples", [1, 13, 14, 100, 221, 222, 1000, 4573, 4574, 9000, 209373, 209374])
def test_short_inputs_give_the_same_frames(model, fast, clips, n_samples):
    # lengths at and around each layer's minimum (soundnet.geometry.min_samples)
    wave = np.tile(clips[-1], 1 + n_samples // len(clips[-1]))[:n_samples]
    x = to_model_input(wave).repeat(2, 1, 1)
    plain = features(model, x)
    got = features(fast, x)
    assert {k: v.shape[-1] for k, v in got.items()} == frame_counts(n_samples)
    assert_same(plain, got, what=f"{n_samples} samples")
    assert_same(plain, features(FastSoundNet(model, method="conv"), x), what=f"conv {n_samples}")


def test_layer_subsets_order_and_seed_layout(model, fast, clips):
    x = to_model_input(clips[-1])
    for layers in (("conv7", "conv2"), ["conv3"], "conv1", ("conv8_2",)):
        got = features(fast, x, layers)
        expected = [layers] if isinstance(layers, str) else list(layers)
        assert list(got) == expected
        assert_same(features(model, x, layers), got, what=str(layers))
    seed = features(fast, x.unsqueeze(-1), ("conv4",))
    assert seed["conv4"].shape == features(model, x.unsqueeze(-1), ("conv4",))["conv4"].shape
    assert seed["conv4"].shape[-1] == 1


def test_parameter_errors(model, fast, clips):
    x = to_model_input(clips[0])
    with pytest.raises(ParameterError, match="'layers' parameter"):
        fast.extract_features(x, layers=("conv9",))
    with pytest.raises(ParameterError, match="'layers' parameter"):
        fast.extract_features(x, layers=())
    with pytest.raises(ParameterError):
        fast.extract_features(x[0])  # (1, n): no channel axis
    with pytest.raises(ParameterError, match="'method' parameter"):
        FastSoundNet(model, method="winograd")
    with pytest.raises(ParameterError, match="'chunk_rows' parameter"):
        FastSoundNet(model, chunk_rows=0)
    with pytest.raises(ParameterError, match="'workers' parameter"):
        FastSoundNet(model, workers=None)
    with pytest.raises(ParameterError, match="eval mode"):
        FastSoundNet(copy.deepcopy(model).train())
    with pytest.raises(ParameterError, match="SoundNet8"):
        FastSoundNet(torch.nn.Linear(2, 2))


def test_num_threads_is_restored(model, clips):
    before = torch.get_num_threads()
    net = fast_model(model, num_threads=1)
    assert isinstance(net, FastSoundNet) and net.method == "gemm"
    x = to_model_input(clips[-1])
    got = features(net, x, ("conv2",))
    assert torch.get_num_threads() == before
    assert_same(features(model, x, ("conv2",)), got, what="num_threads=1")


def test_weights_are_frozen_copies(model, clips):
    net = FastSoundNet(model)
    assert not any(b.requires_grad for b in net.buffers())
    x = to_model_input(clips[-1])
    before = features(net, x, ("conv1",))["conv1"]
    model_copy = copy.deepcopy(model)
    net2 = FastSoundNet(model_copy)
    with torch.no_grad():
        model_copy.conv1[0].weight.mul_(2.0)  # changing the source later does not reach the copy
    assert torch.equal(features(net2, x, ("conv1",))["conv1"], before)
    # the heads (no BatchNorm to fold) are copies too, in both methods
    x = to_model_input(fit_length(clips[-1], min_samples=11 * 22050, policy="tile"))
    for method in ("gemm", "conv"):
        source = copy.deepcopy(model)
        net3 = FastSoundNet(source, method=method)
        before = features(net3, x, ("conv8",))["conv8"]
        assert before.shape[-1] >= 1
        with torch.no_grad():
            source.conv8[0].weight.mul_(2.0)
            source.conv8[0].bias.add_(1.0)
        assert torch.equal(features(net3, x, ("conv8",))["conv8"], before), method


def test_flops_per_second_of_audio():
    # conv1: 2*64*1*16 per frame at 11025 frames/s; conv2: 2*32*16*32 at 22050/16/2 frames/s ...
    expected = {
        "conv1": 2 * 64 * 16 * 22050 / 2,
        "conv2": 2 * 32 * 16 * 32 * 22050 / 32,
        "conv3": 2 * 16 * 32 * 64 * 22050 / 512,
        "conv4": 2 * 8 * 64 * 128 * 22050 / 1024,
        "conv5": 2 * 4 * 128 * 256 * 22050 / 2048,
        "conv6": 2 * 4 * 256 * 512 * 22050 / 16384,
        "conv7": 2 * 4 * 512 * 1024 * 22050 / 32768,
        "conv8": 2 * 8 * 1024 * 1000 * 22050 / 65536,
        "conv8_2": 2 * 8 * 1024 * 401 * 22050 / 65536,
    }
    for name, value in expected.items():
        assert flops_per_second_of_audio((name,)) == pytest.approx(value)
    trunk = flops_per_second_of_audio()
    assert trunk == pytest.approx(sum(expected[n] for n in CONV_LAYERS))
    assert 57e6 < trunk < 59e6
    assert flops_per_second_of_audio(LAYERS) == pytest.approx(sum(expected.values()))
    assert flops_per_second_of_audio(("conv1",), sample_rate_hz=44100) == pytest.approx(2 * expected["conv1"])
    with pytest.raises(ParameterError, match="'layers' parameter"):
        flops_per_second_of_audio(("pool5",))


def test_forward_flops_counts_real_frames():
    n = 30 * 22050
    counts = frame_counts(n)
    # conv1 computes floor(n/2)+1 frames before its pool
    assert forward_flops(n, layers=("conv1",)) == 2 * 64 * 16 * (n // 2 + 1)
    # conv7 reads conv6's frames; the heads read conv7's
    assert forward_flops(n, layers=("conv7",)) == 2 * 4 * 512 * 1024 * counts["conv7"]
    assert forward_flops(n, layers=HEAD_LAYERS) == 2 * 8 * 1024 * 1401 * counts["conv8"]
    # long inputs approach the asymptotic rate
    assert forward_flops(n) / 30 == pytest.approx(flops_per_second_of_audio(), rel=0.02)
    assert forward_flops(100, layers=HEAD_LAYERS) == 0
    with pytest.raises(ParameterError, match="'n_samples' parameter"):
        forward_flops(-1)


@pytest.mark.parametrize("method", ["gemm", "conv"])
def test_built_for_some_layers(model, clips, method):
    """A copy built for some layers computes them as the full copy does, holds no weights of the
    blocks it does not need (no heads unless asked for) and refuses the other layers."""
    x = to_model_input(fit_length(clips[-1], min_samples=11 * 22050, policy="tile"))
    part = FastSoundNet(model, method=method, layers=("conv5", "conv3"))
    assert part.layers == ("conv1", "conv2", "conv3", "conv4", "conv5")
    assert not hasattr(part, "conv6_weight") and not hasattr(part, "conv8_weight")
    assert_same(features(model, x, ("conv3", "conv5")), features(part, x, ("conv3", "conv5")), what=method)
    assert list(features(part, x)) == list(part.layers)  # default: every layer it was built for
    with pytest.raises(ParameterError, match="built for"):
        part.extract_features(x, layers=("conv7",))
    with pytest.raises(ParameterError, match="built for"):
        part(x)  # the heads
    heads = FastSoundNet(model, method=method, layers="conv8_2")
    assert heads.layers == (*CONV_LAYERS, "conv8_2") and not hasattr(heads, "conv8_weight")
    assert_same(features(model, x, ("conv8_2",)), features(heads, x, ("conv8_2",)), what=f"{method} heads")
    with pytest.raises(ParameterError, match="'layers' parameter of FastSoundNet"):
        FastSoundNet(model, layers=("conv9",))


def test_compiled_block_loop_equals_python(model, clips, monkeypatch):
    """The block loop runs compiled by TorchScript (no GIL between its operations) on this torch;
    as plain Python (the fallback) it gives the same outputs, bit for bit."""
    assert isinstance(kernels.BLOCK_TASKS, torch.jit.ScriptFunction)
    waves = [fit_length(w, min_samples=4 * 22050, policy="tile")[: 4 * 22050] for w in clips[:4]]
    x = torch.stack([to_model_input(w)[0] for w in waves])
    net = FastSoundNet(model, chunk_rows=500)  # several chunks per clip, and clips per chunk
    compiled = features(net, x)
    monkeypatch.setattr(kernels, "BLOCK_TASKS", kernels.block_tasks)
    python = features(net, x)
    for name in compiled:
        assert torch.equal(compiled[name], python[name]), name
