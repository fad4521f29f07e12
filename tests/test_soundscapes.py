"""Soundscape synthesis from the demo corpus's drum one-shots: sample-exact, reproducible, robust."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from scipy.signal import correlate

from interp.corpus.corpora import demo_dir, load_corpus
from interp.corpus.events import EVENT_COLUMNS, read_events
from interp.corpus.soundscapes import SoundscapeWarning, synthesize_soundscapes, trim_event
from soundnet.audio import read_audio
from soundnet.errors import AudioError, ParameterError

SR = 22050
DRUMS = ["kick_drum", "snare_drum", "cymbal"]
SETTINGS: dict[str, Any] = {"n": 4, "duration_s": 4.0, "labels": DRUMS, "events_per_scape": (3, 6), "seed": 7}


@pytest.fixture(scope="module")
def drums() -> pd.DataFrame:
    corpus = load_corpus("demo")
    return corpus[corpus["label"].isin(DRUMS)].reset_index(drop=True)


@pytest.fixture(scope="module")
def scapes(drums, tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("scapes")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = synthesize_soundscapes(drums, out, **SETTINGS)
    return out, events


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_layout_and_table(scapes):
    out, events = scapes
    assert sorted(_files(out)) == [f"audio/scape_{i:05d}.wav" for i in range(4)] + [
        "events.tsv",
        "manifest.csv",
        "soundscapes.json",
    ]
    assert list(events.columns[: len(EVENT_COLUMNS)]) == list(EVENT_COLUMNS)
    assert set(events["label"]) <= set(DRUMS) and events["scape"].nunique() == 4
    assert events.groupby("scape").size().between(3, 6).all()
    assert (events["onset_s"] >= 0).all() and (events["offset_s"] <= 4.0).all()
    assert (events["offset_s"] - events["onset_s"] <= 2.0 + 1e-6).all()  # max_event_s
    assert not events["truncated"].any()
    for i in range(4):
        info = sf.info(str(out / "audio" / f"scape_{i:05d}.wav"))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, 4 * SR, "PCM_24")
    settings = json.loads((out / "soundscapes.json").read_text())
    assert settings["seed"] == 7 and settings["labels"] == DRUMS and settings["skipped_clips"] == []


def _placed(rec: dict, cache: dict[str, np.ndarray]) -> np.ndarray:
    """The trimmed event of an event row, rebuilt from its source file."""
    if rec["source_file"] not in cache:
        cache[rec["source_file"]] = read_audio(rec["source_file"])
    event, start = trim_event(cache[rec["source_file"]], sample_rate_hz=SR, max_event_s=2.0)
    assert start == round(rec["source_onset_s"] * SR)
    onset, offset = round(rec["onset_s"] * SR), round(rec["offset_s"] * SR)
    assert offset - onset == len(event)
    return event


def _ncc(mix: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Normalized cross-correlation of ``event`` with every window of ``mix`` (lag = window start)."""
    dot = correlate(mix, event, mode="valid", method="fft")
    power = np.concatenate([[0.0], np.cumsum(mix**2)])
    energy = power[len(event) :] - power[: -len(event)]
    return dot / np.sqrt(np.maximum(energy, 1e-20) * np.sum(event**2))


def test_annotations_are_exact_to_the_sample(drums, tmp_path):
    """Check 4: the written mix correlates with each placed event at round(onset_s * sr) +/- 1."""
    events = synthesize_soundscapes(
        drums, tmp_path, n=4, duration_s=4.0, labels=DRUMS, events_per_scape=(2, 4), snr_db=(10, 20), overlap=False
    )
    cache: dict[str, np.ndarray] = {}
    for rec in events.to_dict("records"):
        mix, _ = sf.read(rec["path"], dtype="float64")
        ncc = _ncc(mix, _placed(rec, cache))
        assert abs(int(np.argmax(ncc)) - round(rec["onset_s"] * SR)) <= 1, (rec["label"], rec["onset_s"])


def test_overlapping_events_are_exact_to_the_sample(scapes):
    """Overlapping events at 0-20 dB: taking every other event out of the written mix (at its
    annotated sample, with its gain) leaves this one, peaking at its onset; taking all out leaves
    the background alone, which only holds if every onset and gain is exact."""
    _, events = scapes
    cache: dict[str, np.ndarray] = {}
    for path, scape in events.groupby("path"):
        mix, _ = sf.read(path, dtype="float64")
        recs = scape.to_dict("records")
        placed = []
        for rec in recs:
            one = np.zeros_like(mix)
            onset = round(rec["onset_s"] * SR)
            event = _placed(rec, cache)
            one[onset : onset + len(event)] = rec["gain"] * event
            placed.append(one)
        background = mix - np.sum(placed, axis=0)
        # the -30 dBFS pink noise, times the scape's anti-clipping factor (the same for each event);
        # one event one sample off moves this by 1e-4 or more
        bg_rms = 10 ** (-30 / 20)
        scale = [
            r["gain"] * np.sqrt(np.mean(_placed(r, cache) ** 2)) / (bg_rms * 10 ** (r["snr_db"] / 20)) for r in recs
        ]
        assert np.ptp(scale) < 1e-12 and scale[0] <= 1.0
        assert np.sqrt(np.mean(background**2)) / (bg_rms * scale[0]) == pytest.approx(1.0, abs=1e-5)
        for rec, one in zip(recs, placed):
            ncc = _ncc(background + one, _placed(rec, cache))
            assert abs(int(np.argmax(ncc)) - round(rec["onset_s"] * SR)) <= 1, (rec["label"], rec["onset_s"])


def test_reproducible(scapes, drums, tmp_path):
    out, events = scapes
    again = synthesize_soundscapes(drums, tmp_path / "again", **SETTINGS)
    assert _files(tmp_path / "again") == _files(out)  # byte-identical
    cols = [c for c in events.columns if c not in ("path", "source")]
    pd.testing.assert_frame_equal(again[cols], events[cols])
    other = synthesize_soundscapes(drums, tmp_path / "other", **{**SETTINGS, "seed": 8})
    assert (tmp_path / "other" / "audio" / "scape_00000.wav").read_bytes() != (
        out / "audio" / "scape_00000.wav"
    ).read_bytes()
    assert not other[["onset_s", "label"]].equals(events[["onset_s", "label"]])


def test_written_annotations_read_back(scapes):
    out, events = scapes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = read_events(out / "events.tsv")
    pd.testing.assert_frame_equal(table.events, events[list(EVENT_COLUMNS)], check_like=False)
    assert table.files == tuple(str(out / "audio" / f"scape_{i:05d}.wav") for i in range(4))
    corpus = load_corpus(out / "manifest.csv")
    assert corpus["status"].tolist() == ["ok"] * 4
    assert corpus["path"].tolist() == list(table.files)
    assert corpus["n_events"].tolist() == events.groupby("scape").size().tolist()


def test_class_background_without_overlap_and_truncation(drums, tmp_path):
    with pytest.warns(SoundscapeWarning, match="1 drawn event.* did not fit without overlap"):
        events = synthesize_soundscapes(
            drums,
            tmp_path / "a",
            n=3,
            duration_s=2.5,
            labels=["kick_drum", "snare_drum"],
            background="cymbal",
            overlap=False,
            events_per_scape=4,
            snr_db=10.0,
            seed=1,
        )
    assert set(events["label"]) <= {"kick_drum", "snare_drum"} and (events["snr_db"] == 10.0).all()
    for _, g in events.groupby("scape"):
        g = g.sort_values("onset_s")
        assert (g["onset_s"].to_numpy()[1:] >= g["offset_s"].to_numpy()[:-1] - 1e-9).all()
    # an event longer than the scape starts at 0 and is cut at its end
    cut = synthesize_soundscapes(drums, tmp_path / "b", n=2, duration_s=0.2, labels=["cymbal"], events_per_scape=1)
    assert cut["truncated"].all() and (cut["onset_s"] == 0).all() and (cut["offset_s"] == 0.2).all()
    short = synthesize_soundscapes(drums, tmp_path / "c", n=2, max_event_s=0.1, labels=["cymbal"], duration_s=1.0)
    assert (short["offset_s"] - short["onset_s"] <= 0.1 + 1e-6).all()
    empty = synthesize_soundscapes(drums, tmp_path / "d", n=2, duration_s=1.0, events_per_scape=0)
    assert len(empty) == 0
    assert read_events(tmp_path / "d" / "events.tsv").files == tuple(
        str(tmp_path / "d" / "audio" / f"scape_{i:05d}.wav") for i in range(2)
    )


def test_corrupt_source_clip_is_skipped(tmp_path):
    root = tmp_path / "oneshots"
    (root / "kick_drum").mkdir(parents=True)
    (root / "broken").mkdir()
    for name in ("bd_808.flac", "bd_haus.flac"):
        shutil.copy(demo_dir() / "audio" / "kick_drum" / name, root / "kick_drum" / name)
    (root / "broken" / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEgarbage" * 10)
    with pytest.warns(SoundscapeWarning) as caught:
        events = synthesize_soundscapes(root, tmp_path / "out", n=3, duration_s=1.0, seed=3)
    messages = [str(w.message) for w in caught]
    assert any("bad.wav" in m and "Skipping the source clip" in m for m in messages)
    assert any("'broken'" in m and "left out" in m for m in messages)
    assert set(events["label"]) == {"kick_drum"}
    settings = json.loads((tmp_path / "out" / "soundscapes.json").read_text())
    assert [s["path"] for s in settings["skipped_clips"]] == [str((root / "broken" / "bad.wav").resolve())]


def test_trim_event():
    y = np.zeros(1000)
    y[100:300] = 0.5
    y[250] = 1.0
    y[400] = 0.005  # -46 dB: silence
    event, start = trim_event(y, sample_rate_hz=1000, max_event_s=None)
    assert start == 100 and len(event) == 200
    cut, _ = trim_event(y, sample_rate_hz=1000, max_event_s=0.05)
    assert len(cut) == 50 and cut[-1] == 0.0 and cut[0] == 0.5
    with pytest.raises(AudioError, match="silent"):
        trim_event(np.zeros(10))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": ["violin"]}, "'labels' parameter"),
        ({"background": "rain"}, "'background' parameter"),
        ({"labels": ["cymbal"], "background": "cymbal"}, "'labels' parameter"),
        ({"n": 0}, "'n' parameter"),
        ({"events_per_scape": (5, 2)}, "'events_per_scape' parameter"),
        ({"events_per_scape": 1.5}, "'events_per_scape' parameter"),
        ({"snr_db": (20, 0)}, "'snr_db' parameter"),
        ({"duration_s": -1}, "'duration_s' parameter"),
        ({"background_db": 6}, "'background_db' parameter"),
    ],
)
def test_bad_parameters(drums, tmp_path, kwargs, match):
    with pytest.raises(ParameterError, match=match):
        synthesize_soundscapes(drums, tmp_path, **kwargs)
    with pytest.raises(ParameterError, match="'source' parameter"):
        synthesize_soundscapes(pd.DataFrame({"x": [1]}), tmp_path)
