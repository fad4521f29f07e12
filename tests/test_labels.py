"""Category lists and output decoding; the prediction command on the real long clips."""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import pytest
import torch

from soundnet import load_audio, vector_to_obj, vector_to_scenes
from soundnet.errors import ParameterError
from soundnet.labels import (
    clip_probabilities,
    decode,
    decode_frames,
    head_labels,
    object_labels,
    object_names,
    place_labels,
    softmax,
)
from soundnet.predict import main as predict_main
from soundnet.predict import predict_file

# sha256 of SoundNet's own category lists (the authors' categories_imagenet.txt and
# categories_places2.txt, as distributed with the original code)
_LIST_SHA256 = {
    "categories_imagenet.txt": "acf75ef0abe89694b19056e0796401068b459c457baa30335f240c7692857355",
    "categories_places2.txt": "db187ee1d1e0bed37fa30e760717833107e0a416b61e3d8fbb8f5534a9940900",
}


def test_category_lists():
    assert len(object_labels()) == len(object_names()) == 1000
    assert len(place_labels()) == 401
    assert object_labels()[0] == "n01440764 tench, Tinca tinca" and object_names()[0] == "tench"
    assert "stage" in object_names() and "/s/stage/indoor" in place_labels()
    assert len(set(place_labels())) == 401 and all(p.startswith("/") for p in place_labels())
    # the shipped copies are SoundNet's lists, byte for byte
    data = resources.files("soundnet") / "data"
    for name, sha in _LIST_SHA256.items():
        assert hashlib.sha256((data / name).read_bytes()).hexdigest() == sha, name
    shipped_objects = (data / "categories_imagenet.txt").read_text().split("\n")
    shipped_places = (data / "categories_places2.txt").read_text().split("\n")
    assert tuple(x.strip() for x in shipped_objects if x.strip()) == object_labels()
    assert tuple(x.strip() for x in shipped_places if x.strip()) == place_labels()
    assert head_labels("conv8") is object_names() and head_labels("places") is place_labels()
    with pytest.raises(ParameterError, match="'head'"):
        head_labels("scenes")


@pytest.fixture(scope="module")
def orchestra_logits(model, long_dir):
    x = load_audio(long_dir / "hungarian_dance_5.flac", duration_s=20.0)
    with torch.inference_mode():
        return model(x)


def test_clip_probability_is_the_mean_softmax_over_frames(orchestra_logits):
    objects, places = orchestra_logits
    assert objects.shape[-1] == 4  # 20 s -> 4 frames
    for logits in (objects, places):
        expected = torch.softmax(logits.double(), dim=1).mean(dim=2).numpy()
        probs = clip_probabilities(logits)
        assert probs.shape == (1, logits.shape[1])
        np.testing.assert_allclose(probs, expected, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
        # not the softmax of the mean logits (a different, wrong quantity)
        wrong = torch.softmax(logits.double().mean(dim=2), dim=1).numpy()
        assert np.abs(wrong - expected).max() > 1e-6


def test_decode_shapes_and_order(orchestra_logits):
    objects, places = orchestra_logits
    top = decode(objects, head="objects", k=5)
    assert len(top) == 1 and len(top[0]) == 5
    probs = [p for _, p in top[0]]
    assert probs == sorted(probs, reverse=True)
    best = int(np.argmax(clip_probabilities(objects)[0]))
    assert top[0][0][0] == object_names()[best]
    frames = decode_frames(places, head="places", k=2)
    assert len(frames) == 1 and len(frames[0]) == places.shape[-1]
    assert all(len(f) == 2 for f in frames[0])
    p = softmax(places)
    t, unit = 2, int(np.argmax(p[0, :, 2]))
    assert frames[0][t][0] == (place_labels()[unit], pytest.approx(float(p[0, unit, t])))
    assert vector_to_obj(objects, k=3) == decode(objects, head="objects", k=3)[0]
    assert vector_to_scenes(places, k=3) == decode(places, head="places", k=3)[0]


def test_batch_decoding_matches_items(model, long_dir):
    a = load_audio(long_dir / "humpback_whale.flac", duration_s=10.0)
    b = load_audio(long_dir / "vibe_ace.flac", duration_s=10.0)
    with torch.inference_mode():
        both, _ = model(torch.cat([a, b]))
        only_b, _ = model(b)
    batch = decode(both, head="objects", k=3)
    assert len(batch) == 2
    assert [n for n, _ in batch[1]] == [n for n, _ in decode(only_b, head="objects", k=3)[0]]


def test_zero_frames_cannot_be_decoded(model):
    with torch.inference_mode():
        objects, _ = model(torch.zeros(1, 1, 100_000))
    assert objects.shape[-1] == 0
    with pytest.raises(ParameterError, match="209,374"):
        decode(objects, head="objects")


def test_predict_command(model, long_dir, minibank_dir, capsys):
    objects, _places = predict_file(model, long_dir / "hungarian_dance_5.flac", k=3)
    assert "stage" in [n for n, _ in objects]
    # a short clip is tiled and still gets predictions; a bad file is reported, not fatal
    short_objects, _ = predict_file(model, minibank_dir / "audio" / "tabla" / "tabla_ghe5.flac")
    assert len(short_objects) == 3
    status = predict_main([str(long_dir / "humpback_whale.flac"), str(long_dir / "missing.flac")])
    out, err = capsys.readouterr()
    assert status == 1
    assert "humpback_whale.flac" in out and "/a/aquarium" in out
    assert "missing.flac: error:" in err and "missing" in err
