"""The paper's ESC-50 protocol (eval_esc50.lua), each step pinned; check 3 on a small corpus in
ESC-50's exact layout built from the demo's real recordings."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from interp.analysis import paper_protocol as pp
from soundnet.audio import INPUT_SCALE
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, n_frames

TEN_S = 10 * SAMPLE_RATE_HZ


# --------------------------------------------------------------------------------------------
# the steps
# --------------------------------------------------------------------------------------------
def test_step1_input_scale_is_2_to_the_minus_22_of_int32_audio():
    # Torch's audio.load gives +-2^31; x 2^-22 is +-512 for [-1, 1] audio, twice the training x256
    assert pp.PAPER_INPUT_SCALE == 2**31 * 2**-22 == 512.0 == 2 * INPUT_SCALE


def test_step2_circular_repeat_to_11_s_then_cut_to_10_s():
    y = np.arange(22050, dtype=np.float32)  # 1 s: ceil(11) = 11 copies, cut to 10 s
    out = pp.paper_loop(y)
    assert len(out) == TEN_S
    np.testing.assert_array_equal(out, np.tile(y, 10))
    y = np.arange(int(10.5 * 22050), dtype=np.float32)  # 10.5 s: two copies, the first 10 s kept
    np.testing.assert_array_equal(pp.paper_loop(y), y[:TEN_S])
    y = np.arange(3 * 22050 + 7, dtype=np.float32)  # 3 s + 7 samples: ceil(242550 / 66157) = 4 copies
    out = pp.paper_loop(y)
    np.testing.assert_array_equal(out, np.tile(y, 4)[:TEN_S])
    assert out[len(y)] == y[0]  # circular: the clip starts again right after its end
    with pytest.raises(ParameterError):
        pp.paper_loop(np.zeros(0))


def test_step3_layers_and_their_torch_modules(model):
    assert pp.LUA_MODULES["conv5"] == (18, "pool5") and pp.PAPER_LAYER == "conv5"
    x = torch.zeros(1, 1, TEN_S)
    assert tuple(pp.paper_layer_output(model, x, "conv5").shape) == (1, 256, 27)
    assert tuple(pp.paper_layer_output(model, x, "conv8").shape) == (1, 1401, 1)  # objects + places
    with pytest.raises(ParameterError):
        pp.paper_layer_output(model, x, "pool5")


def test_step4_window_of_ceil_T_over_10_frames_stride_1():
    assert n_frames(TEN_S, "conv5") == 27
    assert pp.window_frames(27) == 3 and 27 - 3 + 1 == 25  # 25 windows of 3 x 256 = 768 dims
    assert pp.window_frames(n_frames(TEN_S, "conv4")) == math.ceil(216 / 10) == 22
    assert pp.window_frames(1) == 1  # conv8: one frame, one window
    feat = np.arange(4 * 6).reshape(4, 6)  # 4 units, 6 frames
    w = pp.paper_windows(feat, 3)
    assert w.shape == (4, 12)
    for i in range(4):
        np.testing.assert_array_equal(w[i], feat[:, i : i + 3].reshape(-1))  # unit-major, as view(-1)


def test_step5_liblinear_keeps_only_positive_entries():
    np.testing.assert_array_equal(pp.liblinear_values(np.array([-1.0, 0.0, 2.5])), [0.0, 0.0, 2.5])


def test_step6_liblinear_s1_c001_b1():
    svm = pp.liblinear_svm()
    p = svm.get_params()
    assert (p["loss"], p["dual"], p["C"], p["fit_intercept"], p["intercept_scaling"]) == (
        "squared_hinge",
        True,
        0.01,
        True,
        1,
    )
    assert (p["penalty"], p["multi_class"], p["tol"], p["max_iter"]) == ("l2", "ovr", 0.1, 1000)


def test_step7_clip_class_is_argmax_of_mean_decision_values_not_a_vote():
    # clip 0: two windows mildly for class a, one window strongly for b; the mean picks b
    dec = np.array([[0.1, 0.0], [0.1, 0.0], [-1.0, 2.0], [1.0, -1.0]])
    got = pp.clip_decisions(dec, np.array([0, 0, 0, 1]), np.array(["a", "b"]))
    assert got.to_dict() == {0: "b", 1: "a"}
    # two classes: one column of decision values for classes[1]
    got = pp.clip_decisions(np.array([0.5, -2.0, 1.0]), np.array([0, 0, 1]), np.array(["a", "b"]))
    assert got.to_dict() == {0: "a", 1: "b"}


def test_paper_reference_only_for_the_whole_dataset():
    full = pd.DataFrame(
        {
            "label": np.repeat([f"c{i}" for i in range(50)], 40),
            "fold": np.tile(np.repeat([1, 2, 3, 4, 5], 8), 50),
            "esc10": np.repeat(np.arange(50) < 10, 40),
            "src_file": np.arange(2000),
            "take": "A",
        }
    )
    assert pp.paper_reference(full) == "ESC-50"
    assert pp.paper_reference(full[full["esc10"]]) == "ESC-10"
    assert pp.paper_reference(full.iloc[:1990]) is None  # a subset
    assert pp.paper_reference(full.drop(columns="take")) is None  # another corpus
    assert pp.PAPER_REFERENCE == {("ESC-50", "conv5"): 0.742, ("ESC-10", "conv5"): 0.922}


# --------------------------------------------------------------------------------------------
# check 3: the protocol on a small corpus in ESC-50's layout
# --------------------------------------------------------------------------------------------
CATEGORIES = ("tabla", "speech", "music_loop")


@pytest.fixture(scope="module")
def esc50_mini(tmp_path_factory) -> Path:
    """3 demo categories x 5 clips, one per fold, as ESC-50 ships them (44.1 kHz WAV, meta/esc50.csv)."""
    from interp.corpus.corpora import demo_dir

    root = tmp_path_factory.mktemp("ESC-50-mini")
    (root / "audio").mkdir()
    (root / "meta").mkdir()
    manifest = pd.read_csv(demo_dir() / "manifest.csv")
    rows = []
    for target, cat in enumerate(CATEGORIES):
        for k, rel in enumerate(manifest.loc[manifest["label"] == cat, "path"].iloc[:5]):
            y, sr = sf.read(demo_dir() / rel, dtype="float32", always_2d=True)
            y44 = soxr.resample(y[:, 0], sr, 44100)
            name = f"{k + 1}-{100 + 10 * target + k}-A-{target}.wav"
            sf.write(root / "audio" / name, y44, 44100, subtype="PCM_16")
            rows.append((name, k + 1, target, cat, False, 100 + 10 * target + k, "A"))
    cols = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    pd.DataFrame(rows, columns=cols).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


@pytest.fixture(scope="module")
def esc50_run(esc50_mini, model, tmp_path_factory):
    from interp.recording import record_corpus
    from interp.run.store import open_run

    out = tmp_path_factory.mktemp("esc50_run") / "run"
    record_corpus(str(esc50_mini), out, model=model, layers=("conv5",), workers=0, progress=False)
    return open_run(out)


def test_check3_paper_protocol_on_an_esc50_layout(esc50_run, model):
    from interp.corpus.corpora import clip_waves

    table, preds = pp.paper_protocol(esc50_run, model, return_predictions=True)
    r = table.iloc[0]
    print(table.T.to_string())
    assert list(table.columns) == list(pp.PAPER_COLUMNS)
    assert (r["layer"], r["paper_layer"], r["lua_module"]) == ("conv5", "pool5", 18)
    assert (r["window_frames"], r["n_windows"], r["feature_dim"]) == (3, 25, 768)
    assert r["input_scale"] == 512.0 and r["loop_s"] == 10.0 and r["C"] == 0.01
    assert r["cv"] == "corpus folds (5)" and r["n_clips"] == 15 and r["n_classes"] == 3
    assert np.isnan(r["paper_accuracy"]) and r["dataset"] == ""  # a subset: no paper number
    assert r["ci_low"] <= r["accuracy"] <= r["ci_high"]
    assert r["chance"] == pytest.approx(1 / 3)
    assert len(preds) == 15 and preds["clip_id"].is_unique

    # the same by hand for fold 1: loop, x512, pool5, 3-frame windows, liblinear on all windows of
    # folds 2-5, argmax of the mean decision values of each fold-1 clip
    clips = esc50_run.ok_clips
    waves = clip_waves(clips)
    x = np.stack([pp.paper_loop(w) for w in waves])[:, None, :] * np.float32(512)
    with torch.inference_mode():
        feat = model.extract_features(torch.from_numpy(x), layers=("conv5",))["conv5"].numpy()
    win = [np.maximum(pp.paper_windows(f, 3), 0) for f in feat]
    assert all(w.shape == (25, 768) for w in win)
    fold = clips["fold"].to_numpy()
    y = clips["label"].to_numpy()
    train = np.flatnonzero(fold != 1)
    svm = pp.liblinear_svm().fit(np.concatenate([win[i] for i in train]), np.repeat(y[train], 25))
    for i in np.flatnonzero(fold == 1):
        want = svm.classes_[svm.decision_function(win[i]).mean(axis=0).argmax()]
        got = preds.set_index("clip_id").loc[clips.index[i], "predicted"]
        assert got == want


@pytest.mark.slow
def test_layer_comparison_through_the_study(esc50_mini, esc50_run, tmp_path):
    from interp.studies import layer_probes

    out = tmp_path / "report"
    argv = ["--run", str(esc50_run.path), "--protocol", "paper", "--layer", "conv4", "conv5", "--out", str(out)]
    assert layer_probes.main(argv) == 0
    t = pd.read_parquet(out / "paper_table.parquet").set_index("layer")
    assert list(t.index) == ["conv4", "conv5"]
    assert (t.loc["conv4", "window_frames"], t.loc["conv4", "n_windows"], t.loc["conv4", "feature_dim"]) == (
        22,
        195,
        128 * 22,
    )
    assert t["paper_accuracy"].isna().all()
    summary = (out / "summary.md").read_text()
    assert "No paper number is shown" in summary and "2^-22" in summary
