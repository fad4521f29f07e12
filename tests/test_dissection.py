"""Temporal dissection (interp.analysis.dissection): a planted unit, the two nulls, the tables.

The clips are real files of noise written here, run through the real SoundNet; the annotated
"events" carry no sound, so the real units owe them nothing (a null for every unit), while a
planted unit, spliced into the model's output, follows one concept by construction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from interp.analysis.dissection import DISSECTION_COLUMNS, DissectConfig, dissect, dissection_labels
from interp.corpus.corpora import load_corpus
from soundnet.geometry import SAMPLE_RATE_HZ, frames_to_time, layer_geometry, min_samples, valid_frames

LAYER = "conv3"


class Planted(torch.nn.Module):
    """The real model, with unit 0 of conv3 replaced by the concept "x" events' overlap with each
    frame's receptive field (seconds): an event indicator convolved with the field."""

    def __init__(self, model, events_by_len: dict[int, list[tuple[float, float]]]) -> None:
        super().__init__()
        self.model = model
        self.events = events_by_len  # per clip (keyed by the clip's first samples' hash) its x events

    def extract_features(self, x: torch.Tensor, *, layers):
        feats = self.model.extract_features(x, layers=layers)
        if LAYER in feats:
            out = feats[LAYER].clone()
            g = layer_geometry(LAYER)
            t = out.shape[-1]
            start = (g.first_start_samples + np.arange(t) * g.hop_samples) / SAMPLE_RATE_HZ
            end = start + g.receptive_field_samples / SAMPLE_RATE_HZ
            for i in range(out.shape[0]):
                key = _key(x[i, 0].numpy())
                v = np.zeros(t)
                for on, off in self.events[key]:
                    v += np.clip(np.minimum(end, off) - np.maximum(start, on), 0, None)
                out[i, 0] = torch.from_numpy(v).float()
            feats[LAYER] = out
        return feats


def _key(x: np.ndarray) -> int:
    return int(np.round(np.abs(x[:2000]).sum() * 1e3))


@pytest.fixture(scope="module")
def noise_corpus(tmp_path_factory, model):
    """30 clips of 4 s of noise, each with 4 annotated events of 0.3 s, labels x / y."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("dissect")
    rows, ev, planted = [], [], {}
    for i in range(30):
        y = (0.05 * rng.standard_normal(4 * SAMPLE_RATE_HZ)).astype(np.float32)
        path = root / f"noise_{i:02d}.wav"
        sf.write(path, y, SAMPLE_RATE_HZ, subtype="FLOAT")
        rows.append({"path": str(path), "label": ""})
        onsets = np.sort(rng.choice(np.arange(0.2, 3.4, 0.4), size=4, replace=False))
        labels = rng.permutation(["x", "x", "y", "y"])
        for on, lab in zip(onsets, labels):
            ev.append({"path": str(path), "onset_s": float(on), "offset_s": float(on + 0.3), "label": str(lab)})
        planted[_key(y * 256.0)] = [(float(on), float(on + 0.3)) for on, lab in zip(onsets, labels) if lab == "x"]
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    corpus = load_corpus(root / "manifest.csv")
    ev_df = pd.DataFrame(ev)
    ev_df["path"] = [str(Path(p).resolve()) for p in ev_df["path"]]
    events = ev_df.merge(corpus[["path", "clip_id"]], on="path")
    assert len(events) == 120
    return corpus, events, Planted(model, planted)


@pytest.fixture(scope="module")
def result(noise_corpus):
    corpus, events, planted = noise_corpus
    return dissect(planted, corpus, events, layers=("conv2", LAYER, "conv5"), n_label_permutations=200)


def _analytic_iou(corpus, events, thr: float) -> float:
    """IoU of the planted unit computed from its definition, the frames' centres and the events."""
    g = layer_geometry(LAYER)
    inter = union = 0
    for cid in corpus["clip_id"]:
        n = 4 * SAMPLE_RATE_HZ
        ok = valid_frames(max(n, min_samples("conv7")), LAYER, clip_samples=n, min_inside=1.0)
        idx = np.flatnonzero(ok)
        centre = frames_to_time(idx, LAYER)
        start = (g.first_start_samples + idx * g.hop_samples) / SAMPLE_RATE_HZ
        end = start + g.receptive_field_samples / SAMPLE_RATE_HZ
        e = events[(events["clip_id"] == cid) & (events["label"] == "x")]
        v = np.zeros(len(idx))
        inside = np.zeros(len(idx), dtype=bool)
        for on, off in zip(e["onset_s"], e["offset_s"]):
            v += np.clip(np.minimum(end, off) - np.maximum(start, on), 0, None)
            inside |= (centre >= on) & (centre < off)
        a = v > thr
        inter += int((a & inside).sum())
        union += int((a | inside).sum())
    return inter / union


def test_planted_unit_is_found_with_its_analytic_iou(result, noise_corpus):
    corpus, events, _ = noise_corpus
    t = result.table
    assert list(t.columns) == list(DISSECTION_COLUMNS)
    row = t[(t["layer"] == LAYER) & (t["unit"] == 0)].set_index("concept")
    x, y = row.loc["x"], row.loc["y"]
    assert x["iou"] == pytest.approx(_analytic_iou(corpus, events, x["threshold"]), abs=0.02)
    assert x["iou"] > 0.3 and x["q_time"] < 0.05 and x["q_label"] < 0.05
    assert y["q_time"] > 0.5 and y["q_label"] > 0.5  # a concept it does not follow
    lab = result.units.set_index(["layer", "unit"]).loc[(LAYER, 0)]
    assert lab["status"] == "concept" and lab["concept"] == "x"


def test_real_units_owe_nothing_to_silent_events(result):
    """The events carry no sound: the real units' p-values are about uniform (measured: 4.3 %
    and 2.3 % below 0.05, median 0.5 among the units that fire at all) and (almost) no unit
    passes either null."""
    real = result.table[~((result.table["layer"] == LAYER) & (result.table["unit"] == 0))]
    assert (real["q_time"] < 0.05).mean() <= 0.02
    assert (real["q_label"] < 0.05).mean() <= 0.02
    for col in ("p_time", "p_label"):
        p = real[col].dropna()
        assert (p < 0.05).mean() <= 0.08, col
        assert 0.35 <= p[p < 0.999].median() <= 0.65, col
    assert (result.units["status"] == "concept").sum() <= 3


def test_profiles_and_config(result):
    p = result.profiles
    one = p[(p["layer"] == LAYER) & (p["unit"] == 0) & (p["concept"] == "x")].sort_values("t_s")
    assert len(one) == 60 and one["t_s"].min() == pytest.approx(-0.975)
    peak = one.loc[one["activation"].idxmax(), "t_s"]
    assert 0.0 <= peak <= 0.3  # the planted unit peaks inside its 0.3 s events
    with pytest.raises(Exception, match="quantile"):
        DissectConfig(quantile=1.5)
    labs = dissection_labels(result.table)
    assert set(labs["status"]) <= {"concept", "events", "unlabelled"}


# ------------------------------------------------------------------------------------------
# check 2: soundscapes of the demo's drums, through the command line
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def drum_run(tmp_path_factory):
    from interp.cli import main as cli_main

    root = tmp_path_factory.mktemp("drums")
    scapes, run = root / "scapes", root / "run"
    labels = "kick_drum,snare_drum,cymbal"
    args = ["soundscapes", "demo", "--out", str(scapes), "--n", "60", "--duration-s", "6", "--labels", labels]
    assert cli_main(args) == 0
    assert cli_main(["record", str(scapes / "manifest.csv"), "--out", str(run), "--quiet"]) == 0
    assert (
        cli_main(["dissect", str(run), "--events", str(scapes / "events.tsv"), "--layers", "conv2,conv3,conv4,conv5"])
        == 0
    )
    return scapes, run


def test_a_kick_drum_unit_is_dissected_from_soundscapes(drum_run):
    _, run = drum_run
    t = pd.read_parquet(run / "dissection.parquet")
    kick = t[(t["concept"] == "kick_drum") & (t["q_time"] < 0.05) & (t["q_label"] < 0.05)]
    best = kick.sort_values("iou", ascending=False).iloc[0]
    assert best["iou"] >= 0.2 and best["layer"] in ("conv2", "conv3", "conv4", "conv5")
    assert best["iou"] > 2 * best["iou_null_time"] and best["iou"] > best["iou_null_label"]
    prof = pd.read_parquet(run / "dissection_profiles.parquet")
    one = prof[(prof["layer"] == best["layer"]) & (prof["unit"] == best["unit"]) & (prof["concept"] == "kick_drum")]
    assert abs(one.loc[one["activation"].idxmax(), "t_s"]) <= 0.25  # it fires at the onset
    units = pd.read_parquet(run / "dissection_units.parquet")
    assert (units["status"] == "concept").sum() >= 5
    assert (run / "dissection.json").is_file()


def test_permuted_labels_leave_no_kick_drum_unit(drum_run, model):
    """The annotation's labels permuted across events: units that fire on every hit may still
    pass the alignment null, none passes the specificity null for kick_drum."""
    from interp.corpus.events import events_for_clips, read_events
    from interp.run.store import open_run

    scapes, run = drum_run
    clips = open_run(run).ok_clips.reset_index(drop=True)
    ev = events_for_clips(read_events(scapes / "events.tsv"), clips)
    ev["label"] = np.random.default_rng(1).permutation(ev["label"].to_numpy())
    res = dissect(model, clips, ev, layers=("conv2", "conv3", "conv4", "conv5"))
    kick = res.table[res.table["concept"] == "kick_drum"]
    assert (kick["q_label"] >= 0.05).all(), kick["q_label"].min()
    assert (kick["q_time"] < 0.05).any()  # hits are still hits
