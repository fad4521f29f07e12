"""Multi-label corpora (issue 19, check 3's corpus): AudioSet- and FSD50K-layout corpora rebuilt
from the demo's real clips, manifests with label lists, and a recorded run that keeps the lists."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from interp.corpus.corpora import corpus_sha256, demo_dir, describe_corpus, load_corpus, read_clip
from interp.corpus.multilabel import split_labels
from soundnet.errors import ParameterError

# the class label index: a fake mid per demo label, plus two parents and a name with a comma
CLASSES = {
    "/m/0dgw9r": "Speech",
    "/m/05zppz": "Male speech, man speaking",
    "/m/068hy": "Animal",
    "/m/04rlf": "Music",
    "/m/0dwtp": "Tabla",
    "/m/026t6": "Drum kit",
    "/m/0bm02": "Cymbal",
    "/m/093_4n": "Ambient music",
}


@pytest.fixture(scope="module")
def demo_clips() -> pd.DataFrame:
    """Twelve demo clips of at least 1.5 s: four ambient, four animal, four tabla."""
    man = pd.read_csv(demo_dir() / "manifest.csv")
    man = man[man["seconds"] >= 1.5]
    picked = pd.concat([man[man["label"] == lab].head(4) for lab in ("ambient", "animal", "tabla")])
    assert len(picked) == 12
    return picked.reset_index(drop=True)


def _wav(src: Path, dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    y, sr = sf.read(src, dtype="float32")
    sf.write(dst, y, sr, subtype="PCM_16")
    return dst


def _ytid(i: int) -> str:
    return f"--PJHxphW{i:02d}"  # 11 characters, like every YouTube id


def _audioset(root: Path, demo_clips: pd.DataFrame) -> dict:
    """An AudioSet folder: 12 good segments (one ``Y<YTID>``, two excerpt files, one in a
    subfolder), 4 malformed ones, a second segments file; returns what the rows should read as."""
    audio = root / "audio"
    kinds = {"ambient": ["/m/093_4n"], "animal": ["/m/068hy"], "tabla": ["/m/0dwtp", "/m/04rlf"]}
    lines = [
        "# Segments csv created Sun Mar  5 10:54:31 2017",
        "# num_ytids=16, num_segs=16, num_unique_labels=8, num_positive_labels=24",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    expect = []
    for i, rec in demo_clips.iterrows():
        i = int(i)
        ytid = _ytid(i)
        mids = list(kinds[rec["label"]])
        if i == 1:
            mids = ["/m/0dgw9r", "/m/05zppz", "/m/068hy"]  # three labels, one name with a comma
        start, end = (0.5, 1.5) if i == 2 else (0.0, 1.0)
        name, whole = f"{ytid}.wav", True
        if i == 3:
            name = f"Y{ytid}.wav"
        elif i == 4:
            start, end, name, whole = 30.0, 40.0, f"{ytid}_30.000.wav", False
        elif i == 5:
            start, end, name, whole = 12.0, 22.0, f"{ytid}_12_22.wav", False
        sub = "balanced_train/" if i >= 8 else ""
        _wav(demo_dir() / rec["path"], audio / sub / name)
        lines.append(f'{ytid}, {start:.3f}, {end:.3f}, "{",".join(mids)}"')
        expect.append(
            dict(
                ytid=ytid,
                path=str((audio / sub / name).resolve()),
                labels=[CLASSES[m] for m in mids],
                start_s=start if whole else 0.0,
                end_s=end if whole else math.nan,
                source_start_s=start,
            )
        )
    _wav(demo_dir() / demo_clips["path"].iloc[0], audio / f"{_ytid(90)}.wav")
    _wav(demo_dir() / demo_clips["path"].iloc[1], audio / f"{_ytid(91)}.wav")
    _wav(demo_dir() / demo_clips["path"].iloc[2], audio / f"{_ytid(93)}.wav")
    bad = [
        (f'{_ytid(90)}, 0.000, 1.000, "/m/0dgw9r,/m/zzzzz"', "invalid", "unknown label id ['/m/zzzzz']"),
        (f'{_ytid(92)}, 0.000, 1.000, "/m/068hy"', "missing", f"no audio file for YTID '{_ytid(92)}'"),
        (f'{_ytid(91)}, abc, 1.000, "/m/068hy"', "invalid", "start_seconds 'abc' is not a number"),
        (f'{_ytid(93)}, 2.000, 1.000, "/m/068hy"', "invalid", "end_seconds 1.000 is not after start_seconds 2.000"),
    ]
    # the malformed rows between the good ones (rows 3..6 of the table), a blank line after them
    lines = lines[:6] + [b[0] for b in bad] + [""] + lines[6:]
    for e in expect:
        e["line"] = 1 + next(k for k, text in enumerate(lines) if text.startswith(e["ytid"] + ","))
    (root / "balanced_train_segments.csv").write_text("\n".join(lines) + "\n")
    (root / "eval_segments.csv").write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        f'{_ytid(0)}, 0.250, 1.250, "/m/0dgw9r"\n'
        f"{_ytid(6)}, 0.500, 1.500, /m/068hy,/m/04rlf\n"  # unquoted ids spread over fields
    )
    index = pd.DataFrame({"index": range(len(CLASSES)), "mid": list(CLASSES), "display_name": list(CLASSES.values())})
    index.to_csv(root / "class_labels_indices.csv", index=False)
    bad_lines = [1 + lines.index(b[0]) for b in bad]
    assert bad_lines == [7, 8, 9, 10]
    return {"good": expect, "bad": bad, "bad_lines": bad_lines}


@pytest.fixture(scope="module")
def audioset_root(tmp_path_factory, demo_clips) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("audioset") / "AudioSet"
    root.mkdir()
    return root, _audioset(root, demo_clips)


def test_audioset_layout_labels_groups_and_excerpts(audioset_root):
    root, exp = audioset_root
    df = load_corpus(root)
    assert df.attrs["layout"] == "audioset"
    assert list(df.columns[:9]) == ["clip_id", "path", "label", "fold", "start_s", "end_s", "order", "status", "labels"]
    assert len(df) == 12 + 4 + 2
    bal = df[df["split"] == "balanced_train"].reset_index(drop=True)
    good = bal[bal["status"] == "ok"].reset_index(drop=True)
    assert len(good) == 12  # the valid rows are all kept, in the file's order
    assert good["ytid"].tolist() == [e["ytid"] for e in exp["good"]]
    assert good["path"].tolist() == [e["path"] for e in exp["good"]]
    assert [list(x) for x in good["labels"]] == [e["labels"] for e in exp["good"]]
    assert good["labels"].iloc[1] == ["Speech", "Male speech, man speaking", "Animal"]
    assert good["labels"].iloc[8] == ["Tabla", "Music"]
    assert good["label"].tolist() == [e["labels"][0] for e in exp["good"]]  # the first, in the CSV's order
    assert good["group"].tolist() == good["ytid"].tolist()
    assert good["mids"].iloc[8] == ["/m/0dwtp", "/m/04rlf"]
    # whole videos are read at the CSV's excerpt; excerpt files from their start
    assert good["start_s"].tolist() == [e["start_s"] for e in exp["good"]]
    assert np.allclose(good["end_s"], [e["end_s"] for e in exp["good"]], equal_nan=True)
    assert good["source_start_s"].tolist() == [e["source_start_s"] for e in exp["good"]]
    assert math.isnan(good["end_s"].iloc[4]) and good["start_s"].iloc[4] == 0.0
    assert Path(good["path"].iloc[3]).name == f"Y{_ytid(3)}.wav"
    y = read_clip(good.iloc[2])  # [0.5, 1.5) s of the file
    ref, sr = sf.read(good["path"].iloc[2], dtype="float32")
    assert len(y) == 22050 and sr == 22050 and np.max(np.abs(y - ref[11025 : 11025 + 22050])) < 1e-6
    # each malformed row: kept, its status names the file and line, never decoded
    bad = bal.iloc[3:7]
    for (_, kind, what), line, status in zip(exp["bad"], exp["bad_lines"], bad["status"]):
        if kind == "invalid":
            assert status.startswith(f"invalid: balanced_train_segments.csv line {line}: ") and what in status
        else:
            assert status.startswith(f"missing: {what} (balanced_train_segments.csv line {line};")
    assert bad["labels"].iloc[0] == ["Speech"] and bad["mids"].iloc[0] == ["/m/0dgw9r", "/m/zzzzz"]
    assert bad["ytid"].tolist() == [_ytid(90), _ytid(92), _ytid(91), _ytid(93)]
    # a second segments file: its own split, an unquoted label list
    ev = df[df["split"] == "eval"]
    assert ev["status"].tolist() == ["ok", "ok"] and ev["labels"].iloc[1] == ["Animal", "Music"]
    assert ev["start_s"].iloc[0] == 0.25 and ev["group"].iloc[0] == good["group"].iloc[0]
    text = describe_corpus(df)
    assert text.startswith("18 clips, 6 labels (multi-label,") and "3 invalid" in text and "1 missing" in text
    # one segments CSV is a corpus of its own
    one = load_corpus(root / "balanced_train_segments.csv")
    assert one.attrs["layout"] == "audioset" and one["clip_id"].tolist() == bal["clip_id"].tolist()
    # stable ids and hash; labels enter the hash
    again = load_corpus(root)
    assert again["clip_id"].tolist() == df["clip_id"].tolist() and corpus_sha256(again) == corpus_sha256(df)
    changed = df.copy()
    changed.at[0, "labels"] = ["Speech"]
    assert corpus_sha256(changed) != corpus_sha256(df)


def test_audioset_needs_its_class_index(tmp_path, audioset_root):
    root, _ = audioset_root
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "eval_segments.csv").write_text((root / "eval_segments.csv").read_text())
    with pytest.raises(ParameterError, match=r"class_labels_indices\.csv"):
        load_corpus(lone / "eval_segments.csv")
    (lone / "class_labels_indices.csv").write_text("index,mid,display_name\n0,/m/0dgw9r,\n")
    with pytest.raises(ParameterError, match="line 2"):
        load_corpus(lone / "eval_segments.csv")
    with pytest.raises(ParameterError, match="label_separator"):
        load_corpus(root, label_separator="|")


# ---------------------------------------------------------------------------------- FSD50K


@pytest.fixture(scope="module")
def fsd_root(tmp_path_factory, demo_clips) -> Path:
    root = tmp_path_factory.mktemp("fsd") / "FSD50K"
    gt = root / "FSD50K.ground_truth"
    gt.mkdir(parents=True)
    names = {"ambient": "Speech,Human_voice", "animal": "Animal", "tabla": "Tabla,Drum,Music"}
    rows = []
    for i, rec in demo_clips.iterrows():
        fname = str(1000 + int(i))
        _wav(demo_dir() / rec["path"], root / "FSD50K.dev_audio" / f"{fname}.wav")
        rows.append(dict(fname=fname, labels=names[rec["label"]], split="train" if int(i) % 3 else "val"))
    rows.insert(2, dict(fname="2000", labels="Speech,Whistling_kazoo", split="train"))  # unknown label
    rows.insert(5, dict(fname="2001", labels="Animal", split="train"))  # no audio file
    rows.insert(7, dict(fname="", labels="Animal", split="train"))  # no fname
    rows.append(dict(fname="1003", labels="", split="val"))  # unlabelled
    pd.DataFrame(rows).to_csv(gt / "dev.csv", index=False)
    _wav(demo_dir() / demo_clips["path"].iloc[0], root / "FSD50K.eval_audio" / "37199.wav")
    pd.DataFrame({"fname": ["37199"], "labels": ["Speech"], "mids": ["/m/09x0r"]}).to_csv(gt / "eval.csv", index=False)
    vocab = ["Speech", "Human_voice", "Animal", "Tabla", "Drum", "Music"]
    (gt / "vocabulary.csv").write_text("".join(f"{i},{v},/m/x{i}\n" for i, v in enumerate(vocab)))
    meta = root / "FSD50K.metadata"
    meta.mkdir()
    info = {str(1000 + i): {"uploader": f"user{i // 2}", "license": "CC0"} for i in range(12)}
    (meta / "dev_clips_info_FSD50K.json").write_text(json.dumps(info))
    return root


def test_fsd50k_layout(fsd_root):
    df = load_corpus(fsd_root)
    assert df.attrs["layout"] == "fsd50k"
    assert len(df) == 12 + 4 + 1
    dev = df[df["split"] != "eval"]
    ok = dev[dev["status"] == "ok"]
    assert len(ok) == 12 and ok["fname"].tolist()[:3] == ["1000", "1001", "1002"]
    assert ok["path"].iloc[0] == str((fsd_root / "FSD50K.dev_audio" / "1000.wav").resolve())
    speech = ok[ok["fname"] == "1000"].iloc[0]
    assert list(speech["labels"]) == ["Speech", "Human_voice"] and speech["label"] == "Speech"
    assert list(ok[ok["fname"] == "1008"]["labels"].iloc[0]) == ["Tabla", "Drum", "Music"]
    # grouped by uploader (FSD50K's clip metadata), the split kept
    assert ok["uploader"].iloc[:4].tolist() == ["user0", "user0", "user1", "user1"]
    assert ok["group"].iloc[:4].tolist() == ["user0", "user0", "user1", "user1"]
    assert ok["split"].iloc[:4].tolist() == ["val", "train", "train", "val"]
    # the unlabelled clip: [] and "" (a duplicate of fname 1003's file)
    last = dev.iloc[-1]
    assert list(last["labels"]) == [] and last["label"] == "" and last["status"].startswith("duplicate")
    st = dev["status"].tolist()
    assert (
        st[2]
        == "invalid: FSD50K.ground_truth/dev.csv line 4: unknown label ['Whistling_kazoo'] (not in vocabulary.csv)"
    )
    assert st[5] == "missing: no such file" and dev["path"].iloc[5].endswith("FSD50K.dev_audio/2001.wav")
    assert st[7] == "invalid: FSD50K.ground_truth/dev.csv line 9: no fname"
    ev = df[df["split"] == "eval"].iloc[0]
    assert ev["path"].endswith("FSD50K.eval_audio/37199.wav") and list(ev["mids"]) == ["/m/09x0r"]
    assert ev["group"] == "37199" and ev["status"] == "ok"  # no uploader known: the fname
    # one ground-truth CSV is a corpus too (audio in the sibling FSD50K.<stem>_audio/)
    one = load_corpus(fsd_root / "FSD50K.ground_truth" / "dev.csv")
    assert one.attrs["layout"] == "fsd50k" and one["clip_id"].tolist() == dev["clip_id"].tolist()


def test_fsd50k_audio_folder_beside_the_csv(tmp_path, demo_clips):
    _wav(demo_dir() / demo_clips["path"].iloc[0], tmp_path / "audio" / "7.wav")
    pd.DataFrame({"fname": [7], "labels": ["Dog,Animal"], "source": ["rec1"]}).to_csv(tmp_path / "gt.csv", index=False)
    df = load_corpus(tmp_path / "gt.csv")
    assert df["status"].tolist() == ["ok"] and list(df["labels"].iloc[0]) == ["Dog", "Animal"]
    assert df["group"].tolist() == ["rec1"] and df["split"].tolist() == ["gt"]


# ---------------------------------------------------------------------------------- manifests


@pytest.mark.parametrize(
    ("field", "sep", "expect"),
    [
        ("dog;bark", None, ["dog", "bark"]),
        ("dog|bark|dog", None, ["dog", "bark"]),
        ("dog, bark", None, ["dog", "bark"]),
        ("dog,bark", ";", ["dog,bark"]),
        ("dog / bark", "/", ["dog", "bark"]),
    ],
)
def test_manifest_label_lists(tmp_path, demo_clips, field, sep, expect):
    a = _wav(demo_dir() / demo_clips["path"].iloc[0], tmp_path / "a.wav")
    b = _wav(demo_dir() / demo_clips["path"].iloc[1], tmp_path / "b.wav")
    pd.DataFrame({"path": [a.name, b.name, "c.wav"], "labels": [field, "", "cat"]}).to_csv(
        tmp_path / "m.csv", index=False
    )
    df = load_corpus(tmp_path / "m.csv", label_separator=sep)
    assert [list(x) for x in df["labels"]] == [expect, [], ["cat"]]
    assert df["label"].tolist() == [expect[0], "", "cat"]  # no label column: the first
    assert df["status"].tolist() == ["ok", "ok", "missing: no such file"]


def test_manifest_label_column_stays_first(tmp_path, demo_clips):
    a = _wav(demo_dir() / demo_clips["path"].iloc[0], tmp_path / "a.wav")
    pd.DataFrame(
        {"path": [a.name] * 2, "label": ["bark", "cat"], "labels": ["dog;bark", ""], "end_s": [1.0, 1.5]}
    ).to_csv(tmp_path / "manifest.csv", index=False)
    df = load_corpus(tmp_path)
    assert [list(x) for x in df["labels"]] == [["bark", "dog"], ["cat"]] and df["label"].tolist() == ["bark", "cat"]
    seg = load_corpus(tmp_path, segment_s=0.5)
    assert [list(x) for x in seg["labels"]] == [["bark", "dog"]] * 2 + [["cat"]] * 3
    assert seg["labels"].iloc[0] is not seg["labels"].iloc[1]
    for bad in ("", '"', 3):
        with pytest.raises(ParameterError, match="label_separator"):
            load_corpus(tmp_path, label_separator=bad)


def test_split_labels():
    assert split_labels(["a;b", None, float("nan"), ["x", "y"], " a ; ;b "]) == [
        ["a", "b"],
        [],
        [],
        ["x", "y"],
        ["a", "b"],
    ]
    assert split_labels(["a b"]) == [["a b"]]
    with pytest.raises(ParameterError, match="separator"):
        split_labels(["a"], "")


def test_single_label_hash_is_unchanged():
    """The labels column does not change the hash of a single-label corpus (run caches stay valid)."""
    df = load_corpus("demo")
    assert [list(x) for x in df["labels"]] == [[lab] for lab in df["label"]]
    assert corpus_sha256(df) == corpus_sha256(df.drop(columns="labels"))


# ---------------------------------------------------------------------------------- recording


def test_record_keeps_the_label_lists(tmp_path, audioset_root):
    from interp.cli import main as cli_main

    root, _ = audioset_root
    run = tmp_path / "run"
    assert cli_main(["record", str(root), "--out", str(run), "--quiet"]) == 0
    corpus = load_corpus(root)
    clips = pd.read_parquet(run / "clips.parquet")
    assert clips["clip_id"].tolist() == corpus["clip_id"].tolist()
    for got, want in zip(clips["labels"], corpus["labels"]):
        assert isinstance(got, (list, np.ndarray)) and list(got) == list(want)
    assert list(clips.set_index("ytid").loc[_ytid(1), "labels"]) == ["Speech", "Male speech, man speaking", "Animal"]
    assert (clips["status"] == "ok").sum() == 14
    bad = clips[clips["status"] != "ok"]
    assert len(bad) == 4 and all("balanced_train_segments.csv line" in s for s in bad["status"])
    assert clips["label"].tolist() == corpus["label"].tolist()


# ------------------------------------------------------------------- record and analyse
def test_an_audioset_corpus_records_and_analyses(audioset_root, tmp_path):
    """Issue 19, check 3: the AudioSet-layout corpus records (bad rows as statuses) and
    analyses one-vs-rest per label, a clip with two labels counting as positive for both."""
    from interp.analysis.selectivity import analyze
    from interp.cli import main as cli_main
    from interp.run.store import open_run

    root, _ = audioset_root
    assert cli_main(["record", str(root), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    run = open_run(tmp_path / "run")
    ok = run.ok_clips
    assert len(ok) == 14 and (run.clips["status"] != "ok").sum() == 4
    res = analyze(run, nuisance=False)
    sel = res["selectivity"]
    assert sel.attrs["run"]["label_column"] == "labels"
    counts: dict[str, int] = {}
    for labels in ok["labels"]:
        for name in set(labels):
            counts[name] = counts.get(name, 0) + 1
    first = sel[(sel["layer"] == "conv3") & (sel["unit"] == 0)].set_index("category")
    for name, n in counts.items():  # every label of a clip counts for it
        assert first.loc[name, "n_pos"] + first.loc[name, "n_excluded"] == n, name
    assert sum(counts.values()) > len(ok)  # some clip has two labels or more
    assert set(res["unit_labels"]["status"]) <= {"selective", "polysemantic", "unlabelled"}
    # the dashboard shows every label of a clip: a chip each, on its page and on the unit page's cards
    from dashboard.app import create_app

    app = create_app(run.path)
    client = app.server.test_client()
    two = next(cid for cid, labels in ok["labels"].items() if len(set(labels)) >= 2)
    from tests.test_dashboard import _route

    page = _route(client, f"/clip/{two}")
    assert page.status_code == 200
    chips: list[str] = []

    def walk(t) -> None:
        if isinstance(t, dict):
            props = t.get("props", {})
            if isinstance(props, dict) and props.get("className") == "chip":
                chips.append(str(props.get("children")))
            for v in t.values():
                walk(v)
        elif isinstance(t, list):
            for v in t:
                walk(v)

    walk(page.get_json())
    for name in set(ok.loc[two, "labels"]):
        assert name in chips, (name, chips)
