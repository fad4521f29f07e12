"""Multi-label corpora: AudioSet- and FSD50K-style metadata, and label lists in manifests.

:func:`interp.corpus.corpora.load_corpus` recognises these layouts and calls the readers here;
each reader returns the rows of a corpus table before ids and order are given (``path, label,
labels, fold, start_s, end_s, status, group`` and the source's own columns). ``labels`` is the
clip's list of label names in the source's order, ``label`` the first of them (``""`` for a clip
without labels). A malformed row is kept with a ``status`` that names the file and the line
(``"invalid: <file> line <n>: <what>"``), an absent audio file with ``"missing: ..."``; ``status``
``""`` means "not judged here" (the corpus table then checks that the file exists). Valid rows
are never dropped for a bad neighbour.

AudioSet
--------
A folder holding ``class_labels_indices.csv`` (``index,mid,display_name``; also looked for in
``metadata/``) and one or more segments CSVs (``balanced_train_segments.csv``, ``eval_segments.csv``,
... : any ``.csv`` whose header, commented with ``#`` as AudioSet's are or not, is ``YTID,
start_seconds, end_seconds, positive_labels``), or the path of one segments CSV (the index is then
looked for beside it and in its parent). ``positive_labels`` holds quoted, comma-separated ids
(``"/m/09x0r,/m/05zppz"``) that the index maps to display names (``labels``); the ids are kept in
``mids``. Audio is looked for, recursively, in ``audio/`` beside the CSV (or in the corpus folder,
or beside the CSV when there is no ``audio/``), by file name (any of
:data:`~interp.corpus.corpora.AUDIO_EXTENSIONS`):

- ``<YTID>.<ext>`` or ``Y<YTID>.<ext>``: the whole video; the excerpt ``[start_seconds,
  end_seconds)`` is read from it (``start_s``/``end_s``).
- ``<YTID>_<start>[_<end>].<ext>`` (``<start>`` in seconds equal to ``start_seconds``, any
  formatting: ``30``, ``30.000``, ``000030``): the file is the excerpt already; ``start_s`` 0 and
  ``end_s`` NaN.

A file named like a whole video that already is the 10-s excerpt (some downloads name excerpts
``Y<YTID>.wav``) should be renamed ``<YTID>_<start>.wav``. Extra columns: ``ytid``, ``split`` (the
segments file's name without ``_segments``), ``source_start_s``, ``source_end_s`` (the excerpt in
the video, as the CSV gives it), ``mids``; ``group`` = the YTID; ``fold`` -1.

FSD50K
------
A folder holding ``FSD50K.ground_truth/`` (``dev.csv``, ``eval.csv``), or the path of one
ground-truth CSV: ``fname,labels[,mids,split]``, ``labels`` comma-separated names
(``"Electric_guitar,Guitar,Music"``). The audio of ``<stem>.csv`` is ``<fname>.wav`` in the
first folder that exists of ``FSD50K.<stem>_audio/`` beside the CSV or beside its folder,
``audio/`` beside the CSV or beside its folder; else beside the CSV. When a ``vocabulary.csv``
(``index,label,mid``, with or without a header) lies beside the CSV, a label outside it makes the
row invalid. Clip metadata in ``FSD50K.metadata/<stem>_clips_info_FSD50K.json`` (or beside the
CSV) adds ``uploader`` and ``license``. Extra columns: ``fname``, ``split`` (the CSV's ``split``
column, else its name), ``mids`` (list) when given, and the CSV's other columns; ``group`` = the
``uploader`` (or a ``source`` column) when there is one, else the ``fname``.

Manifests
---------
A manifest's ``labels`` column (see :func:`split_labels`) holds several labels in one field:
``"dog;bark"``, ``"dog|bark"``, or ``"dog,bark"`` quoted in the CSV.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from soundnet.errors import ParameterError

__all__ = [
    "AUDIOSET_COLUMNS",
    "LABEL_SEPARATORS",
    "audioset_segment_files",
    "fsd50k_ground_truth_files",
    "is_audioset_csv",
    "is_fsd50k_csv",
    "read_audioset",
    "read_fsd50k",
    "split_labels",
]

#: The columns of an AudioSet segments CSV, in order.
AUDIOSET_COLUMNS = ("YTID", "start_seconds", "end_seconds", "positive_labels")

#: The separators :func:`split_labels` tries, in this order, when none is given.
LABEL_SEPARATORS = (";", "|", ",")

_AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".au", ".aiff", ".aif", ".m4a", ".opus")
_NUMBER = re.compile(r"^\d+(?:\.\d*)?$")


# --------------------------------------------------------------------------------------------
# label lists


def split_labels(values: Iterable[Any], separator: str | None = None) -> list[list[str]]:
    """Split label fields into lists of label names.

    Parameters
    ----------
    values : iterable
        One field per clip: a string (``"dog;bark"``), a list of strings, or empty/NaN/None.
    separator : str, optional
        What separates labels in a field. None (the default): the first of ``;``, ``|``, ``,``
        (:data:`LABEL_SEPARATORS`) that occurs in any field, the same for every field; a field
        with none of them is one label.

    Returns
    -------
    list of list of str
        Per field, its labels in the field's order, stripped of surrounding spaces; empty pieces
        and repeats dropped; ``[]`` for an empty field.
    """
    if separator is not None and (not isinstance(separator, str) or not separator or separator.strip('"\n\r') == ""):
        raise ParameterError(
            f"The 'separator' parameter of split_labels must be a non-empty string other than a quote or a "
            f"line break (e.g. ';', '|', ','). Got {separator!r} instead."
        )
    fields: list[Any] = list(values)
    if separator is None:
        texts = [f for f in fields if isinstance(f, str)]
        separator = next((s for s in LABEL_SEPARATORS if any(s in t for t in texts)), ";")
    out = []
    for f in fields:
        if f is None or (isinstance(f, float) and math.isnan(f)):
            pieces: list[str] = []
        elif isinstance(f, str):
            pieces = f.split(separator)
        elif isinstance(f, Iterable):
            pieces = [str(x) for x in f]
        else:
            pieces = [str(f)]
        out.append(list(dict.fromkeys(p.strip() for p in pieces if p.strip())))
    return out


# --------------------------------------------------------------------------------------------
# shared helpers


def _rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when inside it (for statuses), else in full."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _audio_index(folder: Path) -> dict[str, Path]:
    """Audio files under ``folder`` (recursive, hidden entries skipped) by stem; the first in
    sorted order wins when a stem has several extensions."""
    found: dict[str, Path] = {}
    if not folder.is_dir():
        return found
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if not f.startswith(".") and p.suffix.lower() in _AUDIO_EXTENSIONS:
                found.setdefault(p.stem, p)
    return found


def _header_fields(path: Path, max_lines: int = 8) -> list[list[str]]:
    """The first lines of a CSV, each split into stripped fields (``#`` and spaces removed)."""
    out = []
    try:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            for _, line in zip(range(max_lines), f):
                text = line.strip().lstrip("#").strip()
                if text:
                    out.append([c.strip().strip('"').strip() for c in next(csv.reader([text]))])
    except OSError:
        return []
    return out


def _read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    try:
        return pd.read_csv(path, **kwargs)
    except Exception as exc:
        raise ParameterError(
            f"The corpus file {str(path)!r} cannot be read as CSV: {type(exc).__name__}: {exc}"
        ) from exc


def _number(text: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


# --------------------------------------------------------------------------------------------
# AudioSet


def is_audioset_csv(path: Path) -> bool:
    """Whether ``path`` is an AudioSet segments CSV (its header names :data:`AUDIOSET_COLUMNS`)."""
    return path.suffix.lower() == ".csv" and any(
        tuple(h[:4]) == AUDIOSET_COLUMNS for h in _header_fields(path) if len(h) >= 4
    )


def _class_index_file(where: Iterable[Path]) -> Path | None:
    for folder in where:
        for cand in (folder / "class_labels_indices.csv", folder / "metadata" / "class_labels_indices.csv"):
            if cand.is_file():
                return cand
    return None


def audioset_segment_files(root: Path) -> list[Path]:
    """The segments CSVs of an AudioSet folder (in it and in ``metadata/``), sorted; empty when
    the folder has no ``class_labels_indices.csv`` or no segments CSV."""
    if _class_index_file([root]) is None:
        return []
    out = []
    for folder in (root, root / "metadata"):
        if folder.is_dir():
            out += sorted(p for p in folder.glob("*.csv") if p.is_file() and is_audioset_csv(p))
    return out


def _class_names(index_csv: Path) -> dict[str, str]:
    """``mid -> display_name`` from ``class_labels_indices.csv``."""
    df = _read_table(index_csv, dtype=str, keep_default_na=False)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in ("mid", "display_name") if c not in df.columns]
    if missing:
        raise ParameterError(
            f"The class label index {str(index_csv)!r} must have the columns index,mid,display_name. "
            f"Missing {missing}; got {list(df.columns)} instead."
        )
    names: dict[str, str] = {}
    for i, (mid, name) in enumerate(zip(df["mid"].str.strip(), df["display_name"].str.strip())):
        if not mid or not name:
            raise ParameterError(
                f"The class label index {str(index_csv)!r} must give a mid and a display_name on every row. "
                f"Got mid={mid!r}, display_name={name!r} on line {i + 2} instead."
            )
        names[mid] = name
    return names


class _ExcerptFinder:
    """Finds the audio file of an AudioSet segment by the file naming conventions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_stem = _audio_index(folder)
        self.excerpts: dict[tuple[str, int], Path] = {}
        for stem, p in self.by_stem.items():
            for i, ch in enumerate(stem):  # every split '<id>_<start>[_<end>]' of the stem
                if ch != "_" or i == 0:
                    continue
                rest = stem[i + 1 :].split("_")
                if 1 <= len(rest) <= 2 and all(_NUMBER.match(r) for r in rest):
                    self.excerpts.setdefault((stem[:i], round(float(rest[0]) * 1000)), p)

    def find(self, ytid: str, start: float | None) -> tuple[Path | None, bool]:
        """``(file, is_excerpt)``; ``(None, False)`` when there is none."""
        for stem in (ytid, "Y" + ytid):
            if stem in self.by_stem:
                return self.by_stem[stem], False
        if start is not None:
            p = self.excerpts.get((ytid, round(start * 1000)))
            if p is not None:
                return p, True
        return None, False


def _audioset_audio_dir(csv_path: Path, root: Path) -> Path:
    for cand in (csv_path.parent / "audio", root / "audio"):
        if cand.is_dir():
            return cand
    return root if csv_path.parent == root or csv_path.parent.parent == root else csv_path.parent


def read_audioset(spec: Path) -> pd.DataFrame:
    """Read an AudioSet-style corpus (see the module docstring for the layout).

    Parameters
    ----------
    spec : path
        An AudioSet folder or one segments CSV (absolute, resolved).

    Returns
    -------
    pandas.DataFrame
        One row per segment, in the files' order (files sorted by name): ``path, label, labels,
        fold, start_s, end_s, status, group, ytid, split, source_start_s, source_end_s, mids``.

    Raises
    ------
    ParameterError
        No segments CSV, no or malformed ``class_labels_indices.csv``.
    """
    if spec.is_file():
        files, root = [spec], spec.parent
        index_csv = _class_index_file([spec.parent, spec.parent.parent])
    else:
        files, root = audioset_segment_files(spec), spec
        index_csv = _class_index_file([spec])
    if not files or index_csv is None:
        raise ParameterError(
            f"The AudioSet corpus {str(spec)!r} must have a segments CSV (YTID, start_seconds, end_seconds, "
            f"positive_labels) and a class_labels_indices.csv beside it. Got "
            f"{'no segments CSV' if not files else 'no class_labels_indices.csv'} instead."
        )
    names = _class_names(index_csv)
    rows: list[dict[str, Any]] = []
    finders: dict[Path, _ExcerptFinder] = {}
    for csv_path in files:
        audio_dir = _audioset_audio_dir(csv_path, root)
        if audio_dir not in finders:
            finders[audio_dir] = _ExcerptFinder(audio_dir)
        finder = finders[audio_dir]
        split = csv_path.stem.removesuffix("_segments")
        where = _rel(csv_path, root if spec.is_dir() else spec.parent)
        with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.reader(f, skipinitialspace=True)
            for fields in reader:
                line = reader.line_num
                if not fields or not "".join(fields).strip() or fields[0].lstrip().startswith("#"):
                    continue
                if [c.strip() for c in fields[:4]] == list(AUDIOSET_COLUMNS):
                    continue  # an uncommented header
                rows.append(_audioset_row(fields, line, where, split, names, finder, index_csv.name))
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else _AUDIOSET_ROW_COLUMNS)


_AUDIOSET_ROW_COLUMNS = [
    "path",
    "label",
    "labels",
    "fold",
    "start_s",
    "end_s",
    "status",
    "group",
    "ytid",
    "split",
    "source_start_s",
    "source_end_s",
    "mids",
]


def _audioset_row(
    fields: list[str],
    line: int,
    where: str,
    split: str,
    names: dict[str, str],
    finder: _ExcerptFinder,
    index_name: str,
) -> dict[str, Any]:
    """One corpus row from the fields of one segments-CSV line (problems go to ``status``)."""
    problems: list[str] = []
    fields = [c.strip() for c in fields]
    if len(fields) < 4:
        problems.append(f"expected 4 fields (YTID, start_seconds, end_seconds, positive_labels), got {len(fields)}")
        fields = fields + [""] * (4 - len(fields))
    ytid = fields[0]
    label_field = ",".join(fields[3:])  # an unquoted list of ids spreads over several fields
    start, end = _number(fields[1]), _number(fields[2])
    if start is None or start < 0:
        problems.append(f"start_seconds {fields[1]!r} is not a number >= 0")
    if end is None:
        problems.append(f"end_seconds {fields[2]!r} is not a number")
    elif start is not None and end <= start:
        problems.append(f"end_seconds {fields[2]} is not after start_seconds {fields[1]}")
    mids = [m.strip() for m in label_field.split(",") if m.strip()]
    unknown = [m for m in mids if m not in names]
    if unknown:
        problems.append(f"unknown label id{'s' if len(unknown) > 1 else ''} {unknown} (not in {index_name})")
    labels = list(dict.fromkeys(names[m] for m in mids if m in names))  # the ids stay in mids
    path, is_excerpt = finder.find(ytid, start) if ytid else (None, False)
    status = ""
    if not ytid:
        problems.insert(0, "no YTID")
    if problems:
        status = f"invalid: {where} line {line}: " + "; ".join(problems)
    elif path is None:
        status = (
            f"missing: no audio file for YTID {ytid!r} ({where} line {line}; looked in {str(finder.folder)!r} for "
            f"{ytid}.<ext>, Y{ytid}.<ext>, {ytid}_{fields[1]}[_<end>].<ext>)"
        )
    if path is None:  # a path that names the row: the table needs one
        path = finder.folder / (ytid or f"{where} line {line}")
    whole = not is_excerpt and not problems
    return {
        "path": str(path),
        "label": labels[0] if labels else "",
        "labels": labels,
        "fold": -1,
        "start_s": start if whole else 0.0,
        "end_s": end if whole else math.nan,
        "status": status,
        "group": ytid or str(path),
        "ytid": ytid,
        "split": split,
        "source_start_s": start if start is not None else math.nan,
        "source_end_s": end if end is not None else math.nan,
        "mids": mids,
    }


# --------------------------------------------------------------------------------------------
# FSD50K


def is_fsd50k_csv(path: Path) -> bool:
    """Whether ``path`` is an FSD50K-style ground-truth CSV (header with ``fname`` and ``labels``,
    no ``path``)."""
    if path.suffix.lower() != ".csv":
        return False
    head = _header_fields(path, max_lines=1)
    return bool(head) and {"fname", "labels"} <= set(head[0]) and "path" not in head[0]


def fsd50k_ground_truth_files(root: Path) -> list[Path]:
    """The ground-truth CSVs of an FSD50K folder (``FSD50K.ground_truth/*.csv`` with ``fname`` and
    ``labels``; ``dev.csv`` before ``eval.csv``)."""
    folder = root / "FSD50K.ground_truth"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.csv") if p.is_file() and is_fsd50k_csv(p))


def _fsd50k_audio_dir(csv_path: Path) -> Path:
    here, up = csv_path.parent, csv_path.parent.parent
    for cand in (
        here / f"FSD50K.{csv_path.stem}_audio",
        up / f"FSD50K.{csv_path.stem}_audio",
        here / "audio",
        up / "audio",
    ):
        if cand.is_dir():
            return cand
    return here


def _vocabulary(csv_path: Path) -> set[str] | None:
    vocab = csv_path.parent / "vocabulary.csv"
    if not vocab.is_file() or vocab == csv_path:
        return None
    df = _read_table(vocab, header=None, dtype=str, keep_default_na=False)
    if df.shape[1] < 2:
        raise ParameterError(
            f"The FSD50K vocabulary {str(vocab)!r} must have the columns index,label[,mid]. "
            f"Got {df.shape[1]} column(s) instead."
        )
    names = {str(x).strip() for x in df.iloc[:, 1]}
    return names - {"label"}


def _clip_info(csv_path: Path) -> dict[str, dict[str, Any]]:
    """FSD50K's per-clip metadata (uploader, license), keyed by fname; empty when absent."""
    name = f"{csv_path.stem}_clips_info_FSD50K.json"
    for cand in (csv_path.parent.parent / "FSD50K.metadata" / name, csv_path.parent / name):
        if cand.is_file():
            try:
                data = json.loads(cand.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ParameterError(
                    f"The FSD50K clip metadata {str(cand)!r} must be a JSON object. Got {type(exc).__name__}: {exc} "
                    f"instead."
                ) from exc
            if not isinstance(data, dict):
                raise ParameterError(
                    f"The FSD50K clip metadata {str(cand)!r} must be a JSON object keyed by fname. "
                    f"Got a {type(data).__name__} instead."
                )
            return {str(k): v for k, v in data.items() if isinstance(v, dict)}
    return {}


def read_fsd50k(spec: Path) -> pd.DataFrame:
    """Read an FSD50K-style corpus (see the module docstring for the layout).

    Parameters
    ----------
    spec : path
        An FSD50K folder or one ground-truth CSV (absolute, resolved).

    Returns
    -------
    pandas.DataFrame
        One row per clip, in the files' order: ``path, label, labels, fold, start_s, end_s,
        status, group, fname, split`` and the CSV's other columns (``mids`` as lists).

    Raises
    ------
    ParameterError
        No ground-truth CSV; an unreadable CSV, vocabulary or clip metadata.
    """
    files = [spec] if spec.is_file() else fsd50k_ground_truth_files(spec)
    if not files:
        raise ParameterError(
            f"The FSD50K corpus {str(spec)!r} must have a ground-truth CSV with fname,labels columns "
            f"(FSD50K.ground_truth/dev.csv, eval.csv). Got none instead."
        )
    base = spec if spec.is_dir() else spec.parent
    parts = [_fsd50k_rows(csv_path, _rel(csv_path, base)) for csv_path in files]
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def _fsd50k_rows(csv_path: Path, where: str) -> pd.DataFrame:
    df = _read_table(csv_path, dtype=str, keep_default_na=False)
    df.columns = [str(c).strip() for c in df.columns]
    reserved = {"path", "label", "fold", "start_s", "end_s", "status", "group", "order", "clip_id", "segment"}
    clash = sorted(set(df.columns) & reserved)
    if clash:
        raise ParameterError(
            f"The FSD50K ground truth {str(csv_path)!r} must not have the columns {clash}: load_corpus makes them."
        )
    audio_dir = _fsd50k_audio_dir(csv_path)
    vocab = _vocabulary(csv_path)
    info = _clip_info(csv_path)
    labels = split_labels(df["labels"], ",")
    mids = split_labels(df["mids"], ",") if "mids" in df.columns else None
    problems: list[list[str]] = [[] for _ in range(len(df))]
    paths = []
    for i, fname in enumerate(df["fname"].str.strip()):
        if not fname:
            problems[i].append("no fname")
        if vocab is not None:
            unknown = [lab for lab in labels[i] if lab not in vocab]
            if unknown:
                problems[i].append(f"unknown label{'s' if len(unknown) > 1 else ''} {unknown} (not in vocabulary.csv)")
        if mids is not None and len(mids[i]) != len(labels[i]):
            problems[i].append(f"{len(labels[i])} labels but {len(mids[i])} mids")
        name = fname if Path(fname).suffix.lower() in _AUDIO_EXTENSIONS else f"{fname}.wav"
        paths.append(str(audio_dir / name) if fname else f"{csv_path}:line{i + 2}")
    out = pd.DataFrame(
        {
            "path": paths,
            "label": [lab[0] if lab else "" for lab in labels],
            "labels": labels,
            "fold": -1,
            "start_s": 0.0,
            "end_s": math.nan,
            "status": [f"invalid: {where} line {i + 2}: " + "; ".join(p) if p else "" for i, p in enumerate(problems)],
        }
    )
    out["fname"] = df["fname"].str.strip().to_numpy()
    out["split"] = df["split"].str.strip().to_numpy() if "split" in df.columns else csv_path.stem
    if mids is not None:
        out["mids"] = mids
    for col in df.columns:
        if col not in ("fname", "labels", "mids", "split"):
            out[col] = df[col].to_numpy()
    if info:
        for key in ("uploader", "license"):
            if key not in out.columns:
                out[key] = [str(info.get(f, {}).get(key, "") or "") for f in out["fname"]]
    source = next((c for c in ("uploader", "source") if c in out.columns), None)
    if source is not None:  # clips of one uploader share recording setups (FSD50K splits by uploader)
        given = out[source].astype(str).str.strip()
        out["group"] = [g if g else f for g, f in zip(given, out["fname"])]
    else:
        out["group"] = out["fname"].to_numpy()
    out["group"] = [g if g else p for g, p in zip(out["group"], out["path"])]
    return out
