"""Strong-label event tables: DCASE/DESED tables, URBAN-SED label lists, JAMS, validation, alignment."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from interp.corpus.corpora import load_corpus
from interp.corpus.events import (
    EVENT_COLUMNS,
    EventTable,
    EventTableError,
    EventTableWarning,
    events_corpus,
    events_for_clips,
    read_events,
)
from soundnet.errors import ParameterError

SR = 22050


def _wav(path: Path, seconds: float = 2.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), SR, subtype="PCM_16")
    return path


def _read_quiet(*args, **kwargs) -> EventTable:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_events(*args, **kwargs)


@pytest.fixture
def audio(tmp_path) -> Path:
    """``audio/a.wav`` and ``audio/b.wav``, 2 s each."""
    _wav(tmp_path / "audio" / "a.wav")
    _wav(tmp_path / "audio" / "b.wav")
    return tmp_path / "audio"


# --------------------------------------------------------------------------------------------
# delimited tables


def test_dcase_tsv(tmp_path, audio):
    tsv = tmp_path / "meta.tsv"
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t0.0\t0.5\tdog\na.wav\t0.25\t1.5\tspeech\n\nb.wav\t1.0\t2.5\tcar\n"
    )
    table = _read_quiet(tsv, audio_root=audio)
    ev = table.events
    assert list(ev.columns) == list(EVENT_COLUMNS)
    assert ev["path"].tolist() == [str((audio / "a.wav").resolve())] * 2 + [str((audio / "b.wav").resolve())]
    assert ev["onset_s"].tolist() == [0.0, 0.25, 1.0]
    assert ev["offset_s"].tolist() == [0.5, 1.5, 2.0]  # b.wav is 2 s long: the overrun is clipped
    assert ev["label"].tolist() == ["dog", "speech", "car"]
    assert ev["row"].tolist() == [2, 3, 5]  # lines of the file, header = 1
    assert set(ev["source"]) == {str(tsv.resolve())}
    assert ev["onset_s"].dtype == np.float64 and ev["row"].dtype == np.int64
    assert table.ok and len(table) == 3
    assert table.files == (str((audio / "a.wav").resolve()), str((audio / "b.wav").resolve()))
    assert table.describe() == "3 events, 3 labels, 2 files"


def test_malformed_rows_are_reported_not_lost(tmp_path, audio):
    tsv = tmp_path / "meta.tsv"
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t0.0\t0.5\tdog\n"  # 2 ok
        "a.wav\t1.0\t0.5\tdog\n"  # 3 offset before onset
        "missing.wav\t0.0\t0.5\tdog\n"  # 4 unknown file
        "b.wav\t-0.5\t0.5\tcar\n"  # 5 negative time
        "b.wav\tnan\t0.5\tcar\n"  # 6 NaN
        "b.wav\t0.1\t0.5\t\n"  # 7 empty label
        "b.wav\t3.0\t3.5\tcar\n"  # 8 onset beyond the 2 s file
        "b.wav\tsoon\t0.5\tcar\n"  # 9 not a number
        "b.wav\t0.5\t0.5\tcar\n"  # 10 zero length
        "b.wav\t1.0\t1.5\tcar\n"  # 11 ok
    )
    with pytest.warns(EventTableWarning) as caught:
        table = read_events(tsv, audio_root=audio)
    assert table.events["row"].tolist() == [2, 11]  # the valid rows are kept
    assert [p.row for p in table.problems] == [3, 4, 5, 6, 7, 8, 9, 10]
    reasons = {p.row: p.reason for p in table.problems}
    assert "not after onset_s" in reasons[3]
    assert "unknown audio file" in reasons[4] and "missing.wav" in reasons[4]
    assert "negative" in reasons[5]
    assert "nan" in reasons[6]
    assert "label is empty" in reasons[7]
    assert "beyond the end" in reasons[8]
    assert "not a number" in reasons[9]
    assert "not after" in reasons[10]
    message = str(caught[0].message)
    assert "8 annotation rows" in message and "2 valid events kept" in message
    for row in (3, 4, 5, 6, 7, 8, 9, 10):
        assert f"meta.tsv, row {row}:" in message
    assert all(str(p).startswith(str(tsv.resolve())) for p in table.problems)
    assert not table.ok and "8 rows left out" in table.describe()

    with pytest.raises(EventTableError, match=r"meta\.tsv, row 3: offset_s 0\.5 is not after onset_s 1") as err:
        read_events(tsv, audio_root=audio, strict=True)
    assert [p.row for p in err.value.problems] == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "row 4: unknown audio file" in str(err.value) and "row 5: onset_s -0.5 is negative" in str(err.value)
    assert isinstance(err.value, ParameterError)


def test_check_audio_false_trusts_paths(tmp_path, audio):
    tsv = tmp_path / "meta.tsv"
    tsv.write_text("filename\tonset\toffset\tevent_label\nmissing.wav\t0\t9\tdog\nb.wav\t5\t6\tcar\n")
    ev = _read_quiet(tsv, audio_root=audio, check_audio=False).events
    assert ev["path"].tolist() == [str((audio / "missing.wav").resolve()), str((audio / "b.wav").resolve())]
    assert ev["offset_s"].tolist() == [9.0, 6.0]


def test_csv_aliases_and_relative_to_annotation(tmp_path, audio):
    csv = audio / "labels.csv"
    csv.write_text('Path,Onset_s,Offset_s,Label,confidence\na.wav,0.1,0.2,"dog, barking",1\n')
    ev = _read_quiet(csv).events  # file names relative to the annotation's folder
    assert ev.iloc[0].to_dict() | {"source": ""} == {
        "path": str((audio / "a.wav").resolve()),
        "onset_s": 0.1,
        "offset_s": 0.2,
        "label": "dog, barking",
        "source": "",
        "row": 2,
    }


def test_headerless_four_columns_and_desed_empty_clips(tmp_path, audio):
    tsv = tmp_path / "strong.tsv"
    tsv.write_text("a.wav\t0.5\t1.0\tdog\nb.wav\t\t\t\n")
    table = _read_quiet(tsv, audio_root=audio)
    assert table.events["label"].tolist() == ["dog"] and table.events["row"].tolist() == [1]
    assert table.files == (str((audio / "a.wav").resolve()), str((audio / "b.wav").resolve()))
    corpus = events_corpus(table)
    assert corpus["label"].tolist() == ["dog", ""] and corpus["n_events"].tolist() == [1, 0]
    tsv.write_text("a.wav\t-0.5\t1.0\tdog\nb.wav\t0.5\t1.0\tcat\n")  # a bad first row is still a row
    with pytest.warns(EventTableWarning, match="row 1: onset_s -0.5 is negative"):
        assert read_events(tsv, audio_root=audio).events["row"].tolist() == [2]


def test_urbansed_label_list(tmp_path):
    wav = _wav(tmp_path / "soundscape_0.wav", 3.0)
    txt = tmp_path / "soundscape_0.txt"
    txt.write_text("0.5\t1.25\tdog_bark\n2.0\t1.0\tsiren\n")
    with pytest.warns(EventTableWarning, match=r"soundscape_0\.txt, row 2: offset_s 1 is not after"):
        table = read_events(txt)
    assert table.events[["onset_s", "offset_s", "label", "row"]].values.tolist() == [[0.5, 1.25, "dog_bark", 1]]
    assert table.events["path"].tolist() == [str(wav.resolve())]
    # Audacity style: spaces and labels with spaces
    txt.write_text("0.5 1.25 dog bark\n")
    assert _read_quiet(txt).events["label"].tolist() == ["dog bark"]
    # an empty list: the audio has no events
    txt.write_text("")
    empty = _read_quiet(txt)
    assert len(empty) == 0 and empty.files == (str(wav.resolve()),)
    # no namesake audio: every row is reported
    orphan = tmp_path / "orphan.txt"
    orphan.write_text("0.5\t1.0\tdog\n1.5\t2.0\tcat\n")
    with pytest.raises(EventTableError, match=r"orphan\.txt, row 1: no audio file for this annotation") as err:
        read_events(orphan, strict=True)
    assert [p.row for p in err.value.problems] == [1, 2]


# --------------------------------------------------------------------------------------------
# JAMS


def _jams(path: Path, annotations: list[dict]) -> Path:
    path.write_text(json.dumps({"file_metadata": {"duration": 3.0}, "annotations": annotations, "sandbox": {}}))
    return path


def test_jams_scaper_and_sound_event(tmp_path):
    wav = _wav(tmp_path / "scape.wav", 3.0)
    scaper = {
        "namespace": "scaper",
        "data": [
            {"time": 0.0, "duration": 3.0, "value": {"label": "noise", "role": "background"}, "confidence": 1.0},
            {"time": 0.5, "duration": 0.75, "value": {"label": "dog_bark", "role": "foreground"}, "confidence": 1.0},
            {"time": -1.0, "duration": 0.5, "value": {"label": "siren", "role": "foreground"}, "confidence": 1.0},
            {"time": 2.0, "duration": 0.5, "value": {"label": "siren", "role": "foreground"}, "confidence": 1.0},
        ],
    }
    ignored = {"namespace": "beat", "data": [{"time": 0.1, "duration": 0.0, "value": 1}]}
    old_style = {"namespace": "sound_event", "data": {"time": [1.0], "duration": [0.5], "value": ["car"]}}
    jams = _jams(tmp_path / "scape.jams", [scaper, ignored, old_style])
    with pytest.warns(EventTableWarning, match=r"scape\.jams, row 2: time -1 is negative"):
        table = read_events(jams)
    ev = table.events
    assert ev[["onset_s", "offset_s", "label", "row"]].values.tolist() == [
        [0.5, 1.25, "dog_bark", 1],
        [2.0, 2.5, "siren", 3],
        [1.0, 1.5, "car", 4],
    ]
    assert set(ev["path"]) == {str(wav.resolve())} and set(ev["source"]) == {str(jams.resolve())}
    with pytest.raises(EventTableError, match="row 2"):
        read_events(jams, strict=True)

    _jams(tmp_path / "tags.jams", [{"namespace": "tag_open", "data": [{"time": 0, "duration": 1, "value": "x"}]}])
    _wav(tmp_path / "tags.flac", 1.0)
    assert _read_quiet(tmp_path / "tags.jams").events["label"].tolist() == ["x"]

    _jams(tmp_path / "beats.jams", [ignored])
    with pytest.raises(ParameterError, match="namespaces"):
        read_events(tmp_path / "beats.jams")
    (tmp_path / "broken.jams").write_text("{not json")
    with pytest.raises(ParameterError, match="not valid JSON"):
        read_events(tmp_path / "broken.jams")


# --------------------------------------------------------------------------------------------
# folders


def test_folder_urbansed_layout(tmp_path):
    """URBAN-SED: annotations/<split>/x.{txt,jams} beside audio/<split>/x.wav; other files skipped."""
    for split in ("train", "test"):
        _wav(tmp_path / "audio" / split / f"{split}0.wav", 3.0)
        ann = tmp_path / "annotations" / split
        ann.mkdir(parents=True)
        (ann / f"{split}0.txt").write_text("0.5\t1.0\twrong_if_read\n")
        _jams(
            ann / f"{split}0.jams", [{"namespace": "sound_event", "data": [{"time": 1, "duration": 1, "value": split}]}]
        )
    (tmp_path / "annotations" / "README.txt").write_text("URBAN-SED annotations, see the paper.\n")
    (tmp_path / "annotations" / "manifest.csv").write_text("path,label\nx.wav,dog\n")
    table = _read_quiet(tmp_path / "annotations", audio_root=tmp_path / "audio")
    assert table.events["label"].tolist() == ["test", "train"]
    assert table.events["path"].tolist() == [
        str((tmp_path / "audio" / s / f"{s}0.wav").resolve()) for s in ("test", "train")
    ]
    with pytest.raises(ParameterError, match="none found"):
        read_events(tmp_path / "audio")


def test_folder_keeps_going_past_a_broken_file(tmp_path, audio):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.tsv").write_text("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tdog\n")
    (tmp_path / "ann" / "z.jams").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.warns(EventTableWarning, match=r"z\.jams: cannot be read"):
        table = read_events(tmp_path / "ann", audio_root=audio)
    assert table.events["label"].tolist() == ["dog"] and table.problems[0].row == 0


def test_bad_arguments(tmp_path, audio):
    with pytest.raises(ParameterError, match="The 'path' parameter of read_events must be an existing"):
        read_events(tmp_path / "nope.tsv")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ParameterError, match=r"must be a \.tsv, \.csv"):
        read_events(tmp_path / "x.json")
    (tmp_path / "weak.tsv").write_text("filename\tevent_labels\na.wav\tdog,cat\n")
    with pytest.raises(ParameterError, match="must be an event table"):
        read_events(tmp_path / "weak.tsv")
    with pytest.raises(ParameterError, match="audio_root"):
        read_events(tmp_path / "weak.tsv", audio_root=tmp_path / "nowhere")
    with pytest.raises(ParameterError, match="must be a str or a path"):
        read_events(3)


# --------------------------------------------------------------------------------------------
# corpus and clips


def test_events_corpus_is_a_manifest(tmp_path, audio):
    _wav(audio / "c.wav", 1.0)
    tsv = tmp_path / "meta.tsv"
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t0\t0.5\tdog\na.wav\t0.5\t0.7\tcat\na.wav\t1\t1.2\tcat\n"
        "b.wav\t0\t0.5\tdog\nb.wav\t0.5\t1.5\tcat\n"  # a tie: cat lasts longer
        "c.wav\t\t\t\n"
    )
    table = _read_quiet(tsv, audio_root=audio)
    corpus = events_corpus(table)
    assert list(corpus.columns) == ["path", "label", "n_events", "labels", "event_s"]
    assert corpus["label"].tolist() == ["cat", "cat", ""]
    assert corpus["n_events"].tolist() == [3, 2, 0]
    assert corpus["labels"].tolist() == ["cat;dog", "cat;dog", ""]
    assert corpus["event_s"].round(6).tolist() == [0.9, 1.5, 0.0]
    assert events_corpus(table, label="none")["label"].tolist() == ["", "", ""]
    assert events_corpus(table.events)["path"].tolist() == corpus["path"].tolist()[:2]  # no file list
    corpus.to_csv(tmp_path / "manifest.csv", index=False)
    clips = load_corpus(tmp_path / "manifest.csv")
    assert clips["status"].tolist() == ["ok"] * 3 and clips["path"].tolist() == corpus["path"].tolist()
    with pytest.raises(ParameterError, match="'label' parameter of events_corpus"):
        events_corpus(table, label="first")
    with pytest.raises(ParameterError, match="must have the columns"):
        events_corpus(pd.DataFrame({"path": []}))


def test_events_for_clips_excerpts(tmp_path, audio):
    tsv = tmp_path / "meta.tsv"
    tsv.write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t0.2\t0.6\tdog\na.wav\t0.9\t1.4\tcat\nb.wav\t1.5\t1.9\tcar\n"
    )
    table = _read_quiet(tsv, audio_root=audio)
    events_corpus(table).to_csv(tmp_path / "manifest.csv", index=False)
    clips = load_corpus(tmp_path / "manifest.csv", segment_s=1.0)  # a.wav 0-1, 1-2; b.wav 0-1, 1-2
    got = events_for_clips(table, clips)
    ids = clips["clip_id"].tolist()
    assert got["clip_id"].tolist() == [ids[0], ids[0], ids[1], ids[3]]
    assert np.allclose(got["onset_s"], [0.2, 0.9, 0.0, 0.5])
    assert np.allclose(got["offset_s"], [0.6, 1.0, 0.4, 0.9])
    assert got["truncated"].tolist() == [False, True, True, False]
    assert got["label"].tolist() == ["dog", "cat", "cat", "car"]
    assert np.allclose(got["file_onset_s"], [0.2, 0.9, 0.9, 1.5])
    assert got["row"].tolist() == [2, 3, 3, 4]
    # whole files, paths spelled differently, clips without start_s/end_s
    plain = pd.DataFrame({"clip_id": ["x", "y"], "path": [str(audio / ".." / "audio" / "b.wav"), "probes://tone"]})
    whole = events_for_clips(table.events, plain)
    assert whole["clip_id"].tolist() == ["x"] and whole["onset_s"].tolist() == [1.5]
    assert math.isclose(whole["offset_s"].iloc[0], 1.9)
    none = events_for_clips(table, plain.iloc[1:])
    assert len(none) == 0 and "onset_s" in none.columns
    with pytest.raises(ParameterError, match="clip_id and path"):
        events_for_clips(table, pd.DataFrame({"path": []}))
