"""The corpora layer: every published layout rebuilt in miniature from real minibank clips."""

from __future__ import annotations

import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from interp.corpus.corpora import (
    clip_id_for,
    corpus_sha256,
    demo_dir,
    describe_corpus,
    load_corpus,
    read_clip,
)
from interp.corpus.stimuli import KINDS, is_virtual, probe_table, synthesize
from soundnet.audio import audio_info
from soundnet.errors import AudioError, ParameterError

SR = 22050
ID_RE = re.compile(r"^c[0-9a-f]{12}(-dup\d+)?$")
CORE = ["clip_id", "path", "label", "fold", "start_s", "end_s", "order", "status", "labels"]


@pytest.fixture(scope="module")
def clips(minibank_dir) -> list[Path]:
    """Six real minibank clips of 2 s or more, from different labels."""
    man = pd.read_csv(minibank_dir / "manifest.csv")
    man = man[man["seconds"] >= 2.0].groupby("label").head(1).head(6)
    assert len(man) == 6
    return [minibank_dir / p for p in man["path"]]


def _write(src: Path, dst: Path, *, fmt: str | None = None, subtype: str | None = "PCM_16") -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    y, sr = sf.read(src, dtype="float32")
    sf.write(dst, y, sr, format=fmt, subtype=subtype)
    return dst


def _check_table(df: pd.DataFrame) -> None:
    assert list(df.columns[: len(CORE)]) == CORE or list(df.columns[:10]) == CORE[:6] + ["segment"] + CORE[6:]
    # single-label layouts: labels == [label] ([] for no label)
    assert all(list(x) == ([lab] if lab else []) for lab, x in zip(df["label"], df["labels"]))
    assert df["clip_id"].is_unique
    assert all(ID_RE.match(c) for c in df["clip_id"])
    assert df["order"].tolist() == list(range(len(df)))
    assert df["fold"].dtype == np.int64
    assert all(is_virtual(p) or Path(p).is_absolute() for p in df["path"])


# ---------------------------------------------------------------------------------- layouts


def test_esc50_layout_folds_labels_and_esc10(tmp_path, clips):
    root = tmp_path / "ESC-50-master"
    meta = []
    for i, src in enumerate(clips[:4]):
        fold, target = 1 + i % 2, i
        name = f"{fold}-{100000 + i}-A-{target}.wav"
        _write(src, root / "audio" / name)
        meta.append(
            dict(
                filename=name, fold=fold, target=target, category=f"cat{i}", esc10=i < 2, src_file=100000 + i, take="A"
            )
        )
    (root / "meta").mkdir()
    pd.DataFrame(meta).to_csv(root / "meta" / "esc50.csv", index=False)

    df = load_corpus(root)
    _check_table(df)
    assert df.attrs["layout"] == "esc50"
    assert df["label"].tolist() == ["cat0", "cat1", "cat2", "cat3"]
    assert df["fold"].tolist() == [1, 2, 1, 2]
    assert df["path"].tolist() == [str((root / "audio" / m["filename"]).resolve()) for m in meta]
    assert (df["status"] == "ok").all()
    assert {"target", "esc10", "take", "src_file"} <= set(df.columns)
    assert df["esc10"].tolist() == [True, True, False, False]
    # the takes of one source recording are one group
    assert df["group"].tolist() == [f"esc50_src_{100000 + i}" for i in range(4)]

    sub = load_corpus(root, esc10=True)
    assert sub["label"].tolist() == ["cat0", "cat1"]
    assert sub["order"].tolist() == [0, 1]
    assert sub["clip_id"].tolist() == df["clip_id"].tolist()[:2]
    assert describe_corpus(df).startswith("4 clips, 4 labels, 2 folds")


def test_urbansound8k_layout_keeps_source_positions_apart(tmp_path, clips):
    root = tmp_path / "UrbanSound8K"
    meta = []
    for i, src in enumerate(clips[:4]):
        fold = 1 + i // 2
        name = f"{1000 + i}-{i}-0-0.wav"
        _write(src, root / "audio" / f"fold{fold}" / name)
        meta.append(
            dict(
                slice_file_name=name,
                fsID=1000 + i,
                start=12.5 + i,
                end=14.5 + i,
                salience=1 + i % 2,
                fold=fold,
                classID=i % 2,
                **{"class": ["dog_bark", "siren"][i % 2]},
            )
        )
    (root / "metadata").mkdir()
    pd.DataFrame(meta).to_csv(root / "metadata" / "UrbanSound8K.csv", index=False)

    df = load_corpus(root)
    _check_table(df)
    assert df.attrs["layout"] == "urbansound8k"
    assert df["label"].tolist() == ["dog_bark", "siren", "dog_bark", "siren"]
    assert df["fold"].tolist() == [1, 1, 2, 2]
    assert df["path"].iloc[2] == str((root / "audio" / "fold2" / meta[2]["slice_file_name"]).resolve())
    # the slice is read from its own start; the recording positions are kept as extra columns
    assert (df["start_s"] == 0.0).all() and df["end_s"].isna().all()
    assert df["source_start_s"].tolist() == [12.5, 13.5, 14.5, 15.5]
    assert df["source_end_s"].tolist() == [14.5, 15.5, 16.5, 17.5]
    assert {"classID", "fsID", "salience"} <= set(df.columns)
    assert df["group"].tolist() == [f"freesound_{m['fsID']}" for m in meta]
    y = read_clip(df.iloc[0])
    assert len(y) == audio_info(df["path"].iloc[0]).n_frames  # the whole slice, not 12.5 s in


@pytest.mark.parametrize("folder", ["genres", "genres_original"])
def test_gtzan_layout_wav_and_au(tmp_path, clips, folder):
    root = tmp_path / "gtzan"
    _write(clips[0], root / folder / "blues" / "blues.00000.wav")
    _write(clips[1], root / folder / "blues" / "blues.00001.au", fmt="AU")
    _write(clips[2], root / folder / "jazz" / "jazz.00000.au", fmt="AU")
    (root / folder / "jazz" / "notes.txt").write_text("not audio")
    assert audio_info(root / folder / "jazz" / "jazz.00000.au").format == "AU"

    df = load_corpus(root)
    _check_table(df)
    assert df.attrs["layout"] == "gtzan"
    assert df["label"].tolist() == ["blues", "blues", "jazz"]
    assert [Path(p).name for p in df["path"]] == ["blues.00000.wav", "blues.00001.au", "jazz.00000.au"]
    assert (df["fold"] == -1).all()
    y = read_clip(df.iloc[2])
    ref, _ = sf.read(clips[2], dtype="float32")
    assert len(y) == len(ref) and np.max(np.abs(y - ref)) < 1e-3


def test_folder_per_class_layout(tmp_path, clips):
    root = tmp_path / "mine"
    _write(clips[0], root / "dog" / "a.wav")
    (root / "dog" / "nested").mkdir()
    shutil.copy(clips[1], root / "dog" / "nested" / "b.flac")
    _write(clips[2], root / "cat" / "c.ogg", fmt="OGG", subtype="VORBIS")
    (root / "cat" / ".hidden.wav").write_bytes(b"")
    (root / "README.txt").write_text("two classes")
    (root / "empty_class").mkdir()

    df = load_corpus(root)
    _check_table(df)
    assert df.attrs["layout"] == "folders"
    assert list(zip(df["label"], [Path(p).name for p in df["path"]])) == [
        ("cat", "c.ogg"),
        ("dog", "a.wav"),
        ("dog", "b.flac"),
    ]
    assert (df["fold"] == -1).all() and (df["status"] == "ok").all()


def test_csv_manifest_relative_ranges_missing_and_duplicates(tmp_path, clips):
    root = tmp_path / "proj"
    a = _write(clips[0], root / "clips" / "a.wav")
    b = _write(clips[1], root / "clips" / "b.wav")
    man = pd.DataFrame(
        {
            "path": ["clips/a.wav", "clips/b.wav", "clips/gone.wav", "clips/a.wav", str(a), "clips/b.wav"],
            "label": ["x", "y", "y", "x", "x", "y"],
            "fold": [0, 1, 1, 0, 0, None],
            "start_s": [0.0, 0.5, None, 0.0, 0.0, 0.5],
            "end_s": [None, 1.5, None, None, None, 1.25],
            "annotator": ["ann", "bob", "cy", "dee", "eve", "fay"],
        }
    )
    man.to_csv(root / "list.csv", index=False)

    df = load_corpus(root / "list.csv")
    assert df.attrs["layout"] == "manifest"
    _check_table(df)
    assert df["path"].tolist()[:3] == [str(a.resolve()), str(b.resolve()), str((root / "clips" / "gone.wav").resolve())]
    assert df["fold"].tolist() == [0, 1, 1, 0, 0, -1]
    assert df["start_s"].tolist() == [0.0, 0.5, 0.0, 0.0, 0.0, 0.5]
    assert math.isnan(df["end_s"].iloc[0]) and df["end_s"].iloc[1] == 1.5
    assert df["annotator"].tolist() == ["ann", "bob", "cy", "dee", "eve", "fay"]
    first = df["clip_id"].iloc[0]
    assert df["status"].tolist() == [
        "ok",
        "ok",
        "missing: no such file",
        f"duplicate: same file and range as {first}",
        f"duplicate: same file and range as {first}",
        "ok",
    ]
    assert df["clip_id"].tolist()[3:5] == [f"{first}-dup1", f"{first}-dup2"]
    assert first == clip_id_for(str(a.resolve()), 0.0, float("nan"))
    assert "2 duplicate" in describe_corpus(df) and "1 missing" in describe_corpus(df)

    # the excerpt [0.5, 1.5) s of b, at the file's own rate
    y = read_clip(df.iloc[1])
    ref, _ = sf.read(b, dtype="float32")
    assert len(y) == SR and np.max(np.abs(y - ref[int(0.5 * SR) : int(1.5 * SR)])) < 1e-6
    with pytest.raises(AudioError) as err:
        read_clip(df.iloc[2])
    assert err.value.reason == "missing"

    # a folder holding manifest.csv is read as that manifest
    man.iloc[:2].to_csv(root / "manifest.csv", index=False)
    assert load_corpus(root)["clip_id"].tolist() == df["clip_id"].tolist()[:2]


def test_clip_ids_are_stable_across_calls_and_cwd(tmp_path, clips, monkeypatch):
    root = tmp_path / "c"
    for i, src in enumerate(clips[:3]):
        _write(src, root / f"l{i}" / "x.wav")
    one = load_corpus(root)
    monkeypatch.chdir(tmp_path)
    two = load_corpus("c")
    monkeypatch.chdir(root / "l0")
    three = load_corpus("..")
    assert one["clip_id"].tolist() == two["clip_id"].tolist() == three["clip_id"].tolist()
    assert one["path"].tolist() == three["path"].tolist()
    assert corpus_sha256(one) == corpus_sha256(three)
    p0 = one["path"].iloc[0]
    expected = "c" + __import__("hashlib").sha1(f"{p0}|0.000000|nan".encode()).hexdigest()[:12]
    assert one["clip_id"].iloc[0] == expected


def test_unrecognised_and_missing_paths_raise(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "notes.txt").write_text("hello")
    with pytest.raises(ParameterError, match=r"ESC-50.*UrbanSound8K.*GTZAN.*CSV manifest.*folder-per-class"):
        load_corpus(tmp_path / "flat")
    with pytest.raises(ParameterError, match=r"not a \.csv"):
        load_corpus(tmp_path / "flat" / "notes.txt")
    with pytest.raises(ParameterError, match="no such file or folder"):
        load_corpus(tmp_path / "nowhere")
    with pytest.raises(ParameterError, match="'path', 'label'"):
        pd.DataFrame({"file": ["a.wav"]}).to_csv(tmp_path / "bad.csv", index=False)
        load_corpus(tmp_path / "bad.csv")
    with pytest.raises(ParameterError, match="only accepted by the 'probes'"):
        load_corpus("demo", n_freqs=3)
    with pytest.raises(ParameterError, match="esc10"):
        load_corpus("demo", esc10=True)
    with pytest.raises(ParameterError, match="segment_s"):
        load_corpus("demo", segment_s=0)


# ---------------------------------------------------------------------------------- demo


def test_demo_corpus_is_the_packaged_minibank():
    df = load_corpus("demo")
    _check_table(df)
    assert len(df) == 174 and df["label"].nunique() == 10
    assert all(Path(p).is_file() for p in df["path"])
    assert all(Path(p).is_relative_to(demo_dir()) for p in df["path"])
    assert (df["status"] == "ok").all()
    assert {"source", "license", "credit"} <= set(df.columns) and df["license"].notna().all()
    assert (demo_dir() / "CREDITS.md").is_file()
    assert describe_corpus(df) == "174 clips, 10 labels, no folds (demo)"
    # the spoken digits come from 6 speakers (4 each) and 3 LibriSpeech readers: 9 groups, not 27
    speech = df[df["label"] == "speech"]
    assert speech["group"].nunique() == 9 and speech["group"].value_counts().max() == 4
    assert df[df["label"] == "tabla"]["group"].nunique() == (df["label"] == "tabla").sum()


# ---------------------------------------------------------------------------------- probes


def test_probe_corpus_defaults_and_subset():
    df = load_corpus("probes")
    _check_table(df)
    counts = df["label"].value_counts().to_dict()
    assert set(counts) == set(KINDS)
    assert counts["tone"] == 48 * 3 and counts["am_noise"] == 9 and counts["click_train"] == 9
    tones = df[df["kind"] == "tone"]
    assert tones["freq_hz"].min() == 50.0 and tones["freq_hz"].max() == 10_000.0
    assert sorted(tones["level_db"].unique()) == [-40.0, -20.0, -6.0]
    assert sorted(df.loc[df["kind"] == "am_noise", "rate_hz"]) == [1, 2, 4, 8, 16, 32, 64, 128, 200]
    assert sorted(df.loc[df["kind"] == "chirp", "direction"]) == ["down", "up"]
    assert all(p.startswith("probes://") for p in df["path"])

    sub = load_corpus("probes", kinds=["tone"], n_freqs=8, levels_db=(-20,), duration_s=2.0)
    assert len(sub) == 8 and (sub["label"] == "tone").all() and (sub["duration_s"] == 2.0).all()
    assert load_corpus("probes")["clip_id"].tolist() == df["clip_id"].tolist()
    with pytest.raises(ParameterError, match="kinds"):
        load_corpus("probes", kinds=["whistle"])
    with pytest.raises(ParameterError, match="accepts the options"):
        load_corpus("probes", n_freq=8)


def test_probes_are_deterministic_and_at_their_frequency_and_level():
    df = load_corpus("probes", n_freqs=6, levels_db=(-40, -6), duration_s=1.0)
    for _, row in df.iterrows():
        y1, y2 = read_clip(row), read_clip(row)
        assert y1.dtype == np.float32 and y1.shape == (SR,)
        assert np.array_equal(y1, y2)
        peak = float(np.max(np.abs(y1)))
        if row["kind"] == "silence":
            assert peak == 0.0
            continue
        assert peak == pytest.approx(10 ** (row["level_db"] / 20), rel=1e-5)
        if row["kind"] == "tone":
            spec = np.abs(np.fft.rfft(y1))
            f_peak = np.fft.rfftfreq(len(y1), 1 / SR)[np.argmax(spec)]
            assert abs(f_peak - row["freq_hz"]) <= 1.0
            rms_db = 20 * np.log10(np.sqrt(np.mean(y1.astype(np.float64) ** 2)))
            assert rms_db == pytest.approx(row["level_db"] - 3.01, abs=0.15)
        if row["kind"] == "noise_band":
            spec = np.abs(np.fft.rfft(y1)) ** 2
            f = np.fft.rfftfreq(len(y1), 1 / SR)
            inside = spec[(f >= row["f_lo_hz"]) & (f <= row["f_hi_hz"])].sum()
            assert inside / spec.sum() > 0.99
    noise = df[df["kind"] == "am_noise"].iloc[0]
    other = df[df["kind"] == "am_noise"].iloc[1]
    assert not np.array_equal(read_clip(noise)[:1000], read_clip(other)[:1000])
    # the row alone is enough: a plain dict renders the same samples
    assert np.array_equal(synthesize(dict(noise)), read_clip(noise))


def test_probe_table_chirp_direction_and_click_rate():
    table = probe_table(kinds=["chirp", "click_train"], rates_hz=(10,), duration_s=2.0)
    up = synthesize(table[table["direction"] == "up"].iloc[0])
    down = synthesize(table[table["direction"] == "down"].iloc[0])
    zc = lambda y: np.count_nonzero(np.diff(np.signbit(y)))  # noqa: E731
    half = len(up) // 2
    assert zc(up[half:]) > 5 * zc(up[:half]) and zc(down[:half]) > 5 * zc(down[half:])
    clicks = synthesize(table[table["kind"] == "click_train"].iloc[0])
    assert np.count_nonzero(clicks) == 20


# ---------------------------------------------------------------------------------- segments


def test_segmenting_files_and_probes(tmp_path, clips):
    root = tmp_path / "seg"
    for i, src in enumerate(clips[:2]):
        _write(src, root / f"k{i}" / "x.wav")
    (root / "k1" / "broken.wav").write_bytes(b"RIFF....not really")
    whole = load_corpus(root)
    seg = load_corpus(root, segment_s=0.5)
    _check_table(seg)
    assert "segment" in seg.columns and seg.attrs["segment_s"] == 0.5
    for path in whole["path"]:
        rows = seg[seg["path"] == path]
        if path.endswith("broken.wav"):
            assert rows["segment"].tolist() == [-1] and math.isnan(rows["end_s"].iloc[0])
            continue
        n = int(audio_info(path).duration_s // 0.5)
        assert rows["segment"].tolist() == list(range(n))
        assert np.allclose(rows["start_s"], 0.5 * np.arange(n))
        assert np.allclose(rows["end_s"] - rows["start_s"], 0.5)
    # a segment decodes to exactly its range of the whole clip
    row = seg[seg["segment"] == 2].iloc[0]
    y = read_clip(row)
    full = read_clip(whole[whole["path"] == row["path"]].iloc[0])
    assert len(y) == SR // 2 and np.array_equal(y, full[SR : SR + SR // 2])
    assert load_corpus(root, segment_s=0.5)["clip_id"].tolist() == seg["clip_id"].tolist()
    # the segments of one file are one group (they share a recording)
    assert (seg.groupby("path")["group"].nunique() == 1).all() and seg["group"].nunique() == len(whole)

    # a clip shorter than one segment stays whole
    longer = load_corpus(root, segment_s=60.0)
    assert (longer["segment"].isin([0, -1])).all() and len(longer) == len(whole)

    probes = load_corpus("probes", kinds=["tone"], n_freqs=2, levels_db=(-20,), duration_s=2.0, segment_s=1.0)
    assert len(probes) == 4 and probes["segment"].tolist() == [0, 1, 0, 1]
    first = synthesize(probes.iloc[0])
    assert np.array_equal(read_clip(probes.iloc[1]), first[SR : 2 * SR])


def test_paths_resolve_as_pathlib_does(tmp_path, monkeypatch):
    """Corpus paths are resolved a folder at a time: the same strings as Path.resolve for
    symlinked folders and files, '..' after a symlink, missing files and relative paths."""
    from interp.corpus.corpora import _resolved_paths

    real = tmp_path / "real"
    real.mkdir()
    (real / "a.wav").write_bytes(b"x")
    (real / "b.wav").write_bytes(b"x")
    os.symlink(real, tmp_path / "linkdir")
    os.symlink(real / "a.wav", real / "c.wav")
    (tmp_path / "other").mkdir()
    os.symlink(real, tmp_path / "other" / "up")
    monkeypatch.chdir(tmp_path)
    cases = [
        str(real / "a.wav"),
        str(tmp_path / "linkdir" / "b.wav"),
        str(real / "c.wav"),
        str(tmp_path / "linkdir" / "c.wav"),
        str(tmp_path / "other" / "up" / ".." / "real" / "a.wav"),
        str(real / "missing.wav"),
        "linkdir/b.wav",
        "real/./a.wav",
        str(real) + "//b.wav",
    ]
    got = _resolved_paths(cases)
    assert got == [str(Path(p).resolve()) for p in cases]
    assert got[1] == got[6] == str(real / "b.wav") and got[3] == str(real / "a.wav")
