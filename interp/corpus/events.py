"""Strong-label sound-event tables: which sound happens when, in which file.

:func:`read_events` reads time-stamped annotations (DCASE/DESED/URBAN-SED tables, Audacity-style
label files, JAMS) into one table; :func:`events_corpus` turns it into a corpus manifest for the
recorder and :func:`events_for_clips` aligns the events to a corpus table's clips (excerpts
included), for temporal dissection: scoring each unit against the events as they happen.

Columns of an event table
-------------------------
``path`` (str)
    Absolute, resolved path of the audio file the event is in.
``onset_s``, ``offset_s`` (float, seconds from the start of the file)
    ``0 <= onset_s < offset_s``.
``label`` (str)
    The event's class, never empty.
``source`` (str)
    The annotation file the row comes from.
``row`` (int)
    Where in ``source``: the 1-based line of a text table (its header is line 1), the 1-based
    position of the event among the events of a JAMS file.

Annotation formats
------------------
Delimited table (``.tsv``, ``.csv``, ``.txt``)
    DCASE/DESED convention: a header ``filename onset offset event_label`` (``path`` or ``file``
    for the file, ``onset_s``/``offset_s``, ``label`` also accepted, case ignored), or no header
    and four columns in that order. File names are relative to ``audio_root`` or else to the
    annotation's folder. A row with a file name and nothing else (DESED's way of listing a clip
    without events) adds the file to :attr:`EventTable.files` without an event. ``.tsv`` and
    ``.txt`` are split on tabs (a ``.txt`` without tabs on white space), ``.csv`` on commas.
Per-file label list (three columns ``onset offset label``, e.g. URBAN-SED's ``.txt``, Audacity)
    The audio is the annotation's namesake with an audio extension (``x.txt`` -> ``x.wav``,
    ``.flac``, ...) in ``audio_root`` or else in the annotation's folder.
JAMS (``.jams``)
    Read with :mod:`json` (no ``jams`` dependency): every annotation whose namespace is one of
    :data:`JAMS_NAMESPACES`, observations ``{time, duration, value}`` (a list, or JAMS's older
    dict of lists); a Scaper ``value`` is a dict whose ``label`` is taken and whose
    ``role: background`` events are left out. The audio is found as for a per-file label list.
Folder
    Every ``.tsv``, ``.csv``, ``.txt`` and ``.jams`` under it (recursive, hidden entries skipped,
    sorted). Files that are not event tables (no onset/offset columns, e.g. a ``manifest.csv`` or
    a README) are skipped; a ``.txt`` beside a ``.jams`` of the same name (URBAN-SED ships both)
    is skipped in favour of the ``.jams``. With ``audio_root``, a per-file annotation in a
    subfolder ``sub/x.txt`` looks for its audio in ``audio_root/sub/`` first, then in
    ``audio_root`` (URBAN-SED's ``annotations/train`` <-> ``audio/train``).

Validation
----------
A row with a time that is not a number, NaN or negative, ``offset_s <= onset_s``, an empty label,
an audio file that does not exist, or an onset at or beyond the end of the file (duration from
the file header, :func:`soundfile.info`, when it can be read) is a *problem*: it is left out and
reported with its file and row; every valid row is kept. An offset past the end of the file is
clipped to the file's duration (annotations often overrun by a few milliseconds).
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import soundfile as sf

from interp.corpus.corpora import AUDIO_EXTENSIONS
from soundnet.errors import ParameterError

__all__ = [
    "EVENT_COLUMNS",
    "ANNOTATION_EXTENSIONS",
    "JAMS_NAMESPACES",
    "EventProblem",
    "EventTable",
    "EventTableError",
    "EventTableWarning",
    "empty_events",
    "read_events",
    "events_corpus",
    "events_for_clips",
]

#: The columns of an event table, in order.
EVENT_COLUMNS = ("path", "onset_s", "offset_s", "label", "source", "row")

#: Extensions (lower case) read as annotations when :func:`read_events` is given a folder.
ANNOTATION_EXTENSIONS = (".tsv", ".csv", ".txt", ".jams")

#: JAMS annotation namespaces read as events.
JAMS_NAMESPACES = ("scaper", "sound_event", "tag_open")

#: Header names (lower case) of each canonical column in a delimited table.
_HEADER_NAMES = {
    "path": ("filename", "path", "file"),
    "onset_s": ("onset", "onset_s"),
    "offset_s": ("offset", "offset_s"),
    "label": ("event_label", "label"),
}

#: How many problems a warning or an error message lists before "... and N more".
_MAX_LISTED = 20


class EventTableError(ParameterError):
    """An annotation file has malformed rows and ``strict=True`` was asked for.

    Attributes
    ----------
    problems : tuple of EventProblem
        Every bad row, with its file and row number.
    """

    def __init__(self, message: str, problems: Sequence[EventProblem] = ()) -> None:
        super().__init__(message)
        self.problems = tuple(problems)


class EventTableWarning(UserWarning):
    """Annotation rows were left out (the message lists them with file and row)."""


@dataclass(frozen=True)
class EventProblem:
    """One annotation row that was left out.

    Attributes
    ----------
    source : str
        The annotation file.
    row : int
        The 1-based line (text tables) or event position (JAMS); 0 for the file as a whole.
    reason : str
        What is wrong, e.g. ``"offset_s 1.2 is not after onset_s 3.4"``.
    """

    source: str
    row: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}, row {self.row}" if self.row > 0 else self.source
        return f"{where}: {self.reason}"


@dataclass(frozen=True, eq=False)
class EventTable:
    """What :func:`read_events` returns: the valid events, the problems, the annotated files.

    Attributes
    ----------
    events : pandas.DataFrame
        Columns :data:`EVENT_COLUMNS` (see the module docstring), one row per valid event, in the
        order read (files sorted when a folder was read).
    problems : tuple of EventProblem
        Every row that was left out, with its file, row and reason.
    files : tuple of str
        Every audio file the annotations cover (resolved paths, in the order first met),
        including files annotated as having no events.
    """

    events: pd.DataFrame
    problems: tuple[EventProblem, ...] = ()
    files: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when no row was left out."""
        return not self.problems

    def __len__(self) -> int:
        return len(self.events)

    def describe(self) -> str:
        """One line, e.g. ``"42 events, 3 labels, 10 files; 2 rows left out"``."""
        ev = self.events
        text = (
            f"{len(ev)} event{'s' if len(ev) != 1 else ''}, {ev['label'].nunique()} "
            f"label{'s' if ev['label'].nunique() != 1 else ''}, {len(self.files)} "
            f"file{'s' if len(self.files) != 1 else ''}"
        )
        if self.problems:
            text += f"; {len(self.problems)} row{'s' if len(self.problems) != 1 else ''} left out"
        return text


def empty_events() -> pd.DataFrame:
    """An event table with no rows and the canonical columns and dtypes."""
    return pd.DataFrame(
        {
            "path": pd.Series([], dtype=object),
            "onset_s": pd.Series([], dtype="float64"),
            "offset_s": pd.Series([], dtype="float64"),
            "label": pd.Series([], dtype=object),
            "source": pd.Series([], dtype=object),
            "row": pd.Series([], dtype="int64"),
        }
    )


# --------------------------------------------------------------------------------------------
# reading


class _NotEvents(Exception):
    """The file is not an event table (skipped in a folder, an error for a single file)."""


class _Reader:
    """Accumulates events, problems and files over the annotation files of one call."""

    def __init__(self, *, audio_root: Path | None, check_audio: bool) -> None:
        self.audio_root = audio_root
        self.check_audio = check_audio
        self.records: list[tuple[str, float, float, str, str, int]] = []
        self.problems: list[EventProblem] = []
        self.files: dict[str, None] = {}
        self._resolved: dict[tuple[str, str], str] = {}
        self._exists: dict[str, bool] = {}
        self._duration: dict[str, float | None] = {}

    # audio files ----------------------------------------------------------------------------

    def resolve(self, name: str, base: Path) -> str:
        key = (name, str(base))
        if key not in self._resolved:
            p = Path(os.path.expanduser(name))
            self._resolved[key] = str((p if p.is_absolute() else base / p).resolve())
        return self._resolved[key]

    def exists(self, path: str) -> bool:
        if path not in self._exists:
            self._exists[path] = os.path.isfile(path)
        return self._exists[path]

    def duration_s(self, path: str) -> float | None:
        """The file's duration from its header, None when it cannot be read cheaply."""
        if path not in self._duration:
            try:
                self._duration[path] = float(sf.info(path).duration)
            except Exception:  # not readable by libsndfile: the recorder says why later
                self._duration[path] = None
        return self._duration[path]

    def sibling_audio(self, annotation: Path, subfolder: Path | None) -> tuple[str | None, str]:
        """The audio file named like ``annotation``; (None, what was tried) when there is none."""
        if self.audio_root is None:
            folders = [annotation.parent]
        elif subfolder is not None and subfolder != Path("."):
            folders = [self.audio_root / subfolder, self.audio_root]
        else:
            folders = [self.audio_root]
        for folder in folders:
            for ext in AUDIO_EXTENSIONS:
                for cand in (folder / (annotation.stem + ext), folder / (annotation.stem + ext.upper())):
                    if cand.is_file():
                        return str(cand.resolve()), ""
        if not self.check_audio:
            return str((folders[0] / (annotation.stem + ".wav")).resolve()), ""
        tried = " or ".join(str(f / (annotation.stem + ".*")) for f in folders)
        return None, f"no audio file for this annotation: {tried} does not exist"

    # rows -----------------------------------------------------------------------------------

    def add(
        self, path: str | None, onset: Any, offset: Any, label: Any, source: str, row: int, file_problem: str = ""
    ) -> None:
        """Validate one event and keep it, or record why it was left out."""
        reasons = [file_problem] if file_problem else []
        on = _number(onset, "onset_s", reasons)
        off = _number(offset, "offset_s", reasons)
        if on is not None and off is not None and off <= on:
            reasons.append(f"offset_s {off:g} is not after onset_s {on:g}")
        text = "" if label is None or (isinstance(label, float) and math.isnan(label)) else str(label).strip()
        if not text:
            reasons.append("the label is empty")
        if path is not None and self.check_audio and not file_problem:
            if not self.exists(path):
                reasons.append(f"unknown audio file {path!r} (no such file)")
            elif on is not None:
                total = self.duration_s(path)
                if total is not None and on >= total:
                    reasons.append(f"onset_s {on:g} is at or beyond the end of the audio file ({total:g} s)")
                elif total is not None and off is not None and off > total:
                    off = total
        if reasons or path is None or on is None or off is None:
            self.problems.append(EventProblem(source, row, "; ".join(reasons)))
            return
        self.records.append((path, on, off, text, source, row))
        self.files.setdefault(path, None)

    def add_file(self, path: str | None, source: str, row: int, file_problem: str = "") -> None:
        """A file annotated as having no events."""
        if path is None or file_problem:
            self.problems.append(EventProblem(source, row, file_problem or "no audio file"))
        elif self.check_audio and not self.exists(path):
            self.problems.append(EventProblem(source, row, f"unknown audio file {path!r} (no such file)"))
        else:
            self.files.setdefault(path, None)

    # formats --------------------------------------------------------------------------------

    def read_file(self, annotation: Path, subfolder: Path | None) -> None:
        if annotation.suffix.lower() == ".jams":
            self.read_jams(annotation, subfolder)
        else:
            self.read_delimited(annotation, subfolder)

    def read_delimited(self, annotation: Path, subfolder: Path | None) -> None:
        source = str(annotation)
        text = _read_text(annotation)
        lines = text.splitlines()
        ext = annotation.suffix.lower()
        content = [(i + 1, line) for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")]
        if not content:  # an empty per-file list: the namesake audio has no events
            if ext == ".txt":
                path, why = self.sibling_audio(annotation, subfolder)
                self.add_file(path, source, 0, why)
                return
            raise _NotEvents("it is empty")
        if ext == ".csv":
            delimiter: str | None = ","
        elif ext == ".tsv" or "\t" in content[0][1]:
            delimiter = "\t"
        else:
            delimiter = None  # white space

        def split(line: str, n_max: int = 0) -> list[str]:
            if delimiter is None:
                return [f.strip() for f in (line.split(None, n_max - 1) if n_max else line.split())]
            return [f.strip() for f in next(csv.reader([line], delimiter=delimiter))]

        first = [f.lower() for f in split(content[0][1])]
        known = {name for names in _HEADER_NAMES.values() for name in names}
        if any(f in known for f in first):
            columns = {}
            for canon, names in _HEADER_NAMES.items():
                hit = next((first.index(n) for n in names if n in first), None)
                if hit is not None:
                    columns[canon] = hit
            missing = [c for c in ("onset_s", "offset_s", "label") if c not in columns]
            if missing:
                raise _NotEvents(f"its header {first} has no {missing} column (names accepted: {_HEADER_NAMES})")
            body = content[1:]
        else:
            head = split(content[0][1])
            if len(head) >= 3 and _is_float(head[0]) and _is_float(head[1]):
                columns = {"onset_s": 0, "offset_s": 1, "label": 2}  # onset offset label
            elif len(head) >= 4 and _is_float(head[1]) and _is_float(head[2]):
                columns = {"path": 0, "onset_s": 1, "offset_s": 2, "label": 3}  # filename onset offset label
            else:
                raise _NotEvents(
                    "it has no header and its first line is neither 'onset offset label' nor "
                    "'filename onset offset label'"
                )
            body = content
        audio: str | None
        if "path" in columns:
            base = self.audio_root if self.audio_root is not None else annotation.parent
            sibling: str | None = None
            sibling_why = ""
        else:
            base = annotation.parent
            sibling, sibling_why = self.sibling_audio(annotation, subfolder)
        width = max(columns.values()) + 1
        for lineno, line in body:
            fields = split(line, width if delimiter is None else 0)
            fields += [""] * (width - len(fields))
            if "path" in columns:
                name = fields[columns["path"]]
                if not name:
                    self.problems.append(EventProblem(source, lineno, "the file name is empty"))
                    continue
                audio = self.resolve(name, base)
                if not any(fields[columns[c]] for c in ("onset_s", "offset_s", "label")):
                    self.add_file(audio, source, lineno)  # DESED: a clip without events
                    continue
                why = ""
            else:
                audio, why = sibling, sibling_why
            self.add(
                audio,
                fields[columns["onset_s"]],
                fields[columns["offset_s"]],
                fields[columns["label"]],
                source,
                lineno,
                why,
            )

    def read_jams(self, annotation: Path, subfolder: Path | None) -> None:
        source = str(annotation)
        try:
            doc = json.loads(_read_text(annotation))
        except json.JSONDecodeError as exc:
            raise _Unreadable(f"not valid JSON ({exc})") from exc
        annotations = doc.get("annotations") if isinstance(doc, dict) else None
        if not isinstance(annotations, list):
            raise _NotEvents("it has no 'annotations' list")
        namespaces = [a.get("namespace") for a in annotations if isinstance(a, dict)]
        chosen = [a for a in annotations if isinstance(a, dict) and a.get("namespace") in JAMS_NAMESPACES]
        if not chosen:
            raise _NotEvents(f"none of its annotation namespaces {namespaces} is one of {list(JAMS_NAMESPACES)}")
        path, why = self.sibling_audio(annotation, subfolder)
        k = 0
        for ann in chosen:
            scaper = ann.get("namespace") == "scaper"
            for obs in _observations(ann.get("data")):
                value = obs.get("value")
                if scaper and isinstance(value, dict):
                    if str(value.get("role", "")).lower() == "background":
                        continue
                    value = value.get("label")
                k += 1
                reasons = [why] if why else []
                on = _number(obs.get("time"), "time", reasons)
                dur = _number(obs.get("duration"), "duration", reasons)
                if reasons or on is None or dur is None:
                    self.problems.append(EventProblem(source, k, "; ".join(reasons)))
                    continue
                self.add(path, on, on + dur, value, source, k)
        if k == 0:
            self.add_file(path, source, 0, why)


class _Unreadable(Exception):
    """The file cannot be read at all (a problem with row 0)."""


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unreadable(f"cannot be read as UTF-8 text ({type(exc).__name__}: {exc})") from exc


def _observations(data: Any) -> list[dict[str, Any]]:
    """JAMS observations as dicts: a list of dicts, or the older dict of parallel lists."""
    if isinstance(data, list):
        return [d for d in data if isinstance(d, dict)]
    if isinstance(data, dict) and isinstance(data.get("time"), list):
        keys = [k for k in ("time", "duration", "value", "confidence") if isinstance(data.get(k), list)]
        return [dict(zip(keys, vals)) for vals in zip(*(data[k] for k in keys))]
    return []


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _number(value: Any, name: str, reasons: list[str]) -> float | None:
    """``value`` as a finite, non-negative float; None (and a reason appended) otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        reasons.append(f"{name} is missing")
        return None
    if isinstance(value, bool):
        reasons.append(f"{name} {value!r} is not a number")
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        reasons.append(f"{name} {value!r} is not a number")
        return None
    if math.isnan(v) or math.isinf(v):
        reasons.append(f"{name} is {v}")
        return None
    if v < 0:
        reasons.append(f"{name} {v:g} is negative")
        return None
    return v


def _annotation_files(folder: Path) -> list[Path]:
    """Annotation files under ``folder`` (recursive, hidden skipped, sorted), a ``.txt`` with a
    ``.jams`` namesake left out."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = [f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in ANNOTATION_EXTENSIONS]
        jams_stems = {Path(f).stem for f in names if Path(f).suffix.lower() == ".jams"}
        found += [
            Path(dirpath) / f for f in names if not (Path(f).suffix.lower() == ".txt" and Path(f).stem in jams_stems)
        ]
    return sorted(found)


def _listing(problems: Sequence[EventProblem]) -> str:
    lines = [f"  {p}" for p in problems[:_MAX_LISTED]]
    if len(problems) > _MAX_LISTED:
        lines.append(f"  ... and {len(problems) - _MAX_LISTED} more")
    return "\n".join(lines)


def read_events(
    path: str | os.PathLike,
    *,
    audio_root: str | os.PathLike | None = None,
    strict: bool = False,
    check_audio: bool = True,
) -> EventTable:
    """Read strong-label event annotations (a file or a folder of them) into one table.

    Parameters
    ----------
    path : str or path
        A ``.tsv``/``.csv``/``.txt`` table, a ``.jams`` file, or a folder of them (see the module
        docstring for the formats).
    audio_root : str or path, optional
        Where the audio files are: file names in tables are relative to it, per-file annotations
        look for their namesake audio in it. Default: the annotation file's folder.
    strict : bool
        When True, any malformed row raises :class:`EventTableError`, which names every file and
        row; when False (default) the valid rows are returned and an :class:`EventTableWarning`
        lists the rows left out (also in :attr:`EventTable.problems`).
    check_audio : bool
        When True (default) an event whose audio file does not exist is a problem, and onsets are
        checked against the file's duration (header only). False trusts the paths as written.

    Returns
    -------
    EventTable
        ``events`` (columns :data:`EVENT_COLUMNS`, times in seconds from the start of the file),
        ``problems`` (the rows left out) and ``files`` (every audio file covered).

    Raises
    ------
    ParameterError
        ``path`` does not exist, is not an annotation file, or a folder holds none.
    EventTableError
        ``strict=True`` and some rows are malformed (the message names file and row of each).

    Examples
    --------
    >>> table = read_events("metadata/validation.tsv", audio_root="audio/validation")
    >>> table.events.head()  # path, onset_s, offset_s, label, source, row
    """
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(
            f"The 'path' parameter of read_events must be a str or a path. Got {type(path).__name__} instead."
        )
    root = Path(os.path.expanduser(os.fspath(path)))
    if not root.exists():
        raise ParameterError(
            f"The 'path' parameter of read_events must be an existing file or folder. Got {str(root)!r} instead."
        )
    audio: Path | None = None
    if audio_root is not None:
        audio = Path(os.path.expanduser(os.fspath(audio_root))).resolve()
        if not audio.is_dir():
            raise ParameterError(
                f"The 'audio_root' parameter of read_events must be an existing folder. Got {str(audio)!r} instead."
            )
    root = root.resolve()
    reader = _Reader(audio_root=audio, check_audio=check_audio)
    if root.is_dir():
        files = _annotation_files(root)
        n_read = 0
        for f in files:
            try:
                reader.read_file(f, f.parent.relative_to(root))
                n_read += 1
            except _NotEvents:
                continue
            except _Unreadable as exc:
                reader.problems.append(EventProblem(str(f), 0, str(exc)))
        if n_read == 0 and not reader.problems:
            raise ParameterError(
                f"The 'path' parameter of read_events must be an annotation file or a folder holding "
                f"event tables ({', '.join(ANNOTATION_EXTENSIONS)}). Got {str(root)!r} instead (none found)."
            )
    else:
        if root.suffix.lower() not in ANNOTATION_EXTENSIONS:
            raise ParameterError(
                f"The 'path' parameter of read_events must be a {', '.join(ANNOTATION_EXTENSIONS)} file or a "
                f"folder. Got {str(root)!r} instead."
            )
        try:
            reader.read_file(root, None)
        except _NotEvents as exc:
            raise ParameterError(
                f"The 'path' parameter of read_events must be an event table. Got {str(root)!r} instead ({exc})."
            ) from None
        except _Unreadable as exc:
            raise ParameterError(f"The annotation file {str(root)!r} {exc}.") from None

    recs = reader.records
    events = empty_events()
    if recs:
        events = pd.DataFrame(
            {
                "path": [r[0] for r in recs],
                "onset_s": np.array([r[1] for r in recs], dtype="float64"),
                "offset_s": np.array([r[2] for r in recs], dtype="float64"),
                "label": [r[3] for r in recs],
                "source": [r[4] for r in recs],
                "row": np.array([r[5] for r in recs], dtype="int64"),
            }
        )
    events.attrs["annotations"] = str(root)
    problems = tuple(reader.problems)
    if problems:
        head = (
            f"{len(problems)} annotation row{'s' if len(problems) != 1 else ''} of {str(root)!r} "
            f"{'are' if len(problems) != 1 else 'is'} malformed"
        )
        if strict:
            raise EventTableError(f"{head}:\n{_listing(problems)}", problems)
        warnings.warn(
            f"{head} and left out ({len(events)} valid events kept):\n{_listing(problems)}",
            EventTableWarning,
            stacklevel=2,
        )
    return EventTable(events=events, problems=problems, files=tuple(reader.files))


# --------------------------------------------------------------------------------------------
# using an event table


def _events_frame(events: EventTable | pd.DataFrame, func: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The events DataFrame and the files (those of the table, else those with events)."""
    if isinstance(events, EventTable):
        return events.events, events.files
    if isinstance(events, pd.DataFrame):
        missing = [c for c in ("path", "onset_s", "offset_s", "label") if c not in events.columns]
        if missing:
            raise ParameterError(
                f"The 'events' parameter of {func} must have the columns path, onset_s, offset_s, label. "
                f"Got {list(events.columns)} instead (missing {missing})."
            )
        return events, tuple(dict.fromkeys(str(p) for p in events["path"]))
    raise ParameterError(
        f"The 'events' parameter of {func} must be an EventTable or a DataFrame. Got {type(events).__name__} instead."
    )


def _most_common(labels: Iterable[str], seconds: Iterable[float]) -> str:
    """The label with most events; ties go to the longest total duration, then alphabetical order."""
    count: Counter[str] = Counter()
    total: dict[str, float] = {}
    for lab, sec in zip(labels, seconds):
        count[lab] += 1
        total[lab] = total.get(lab, 0.0) + sec
    if not count:
        return ""
    return min(count, key=lambda lab: (-count[lab], -total[lab], lab))


def events_corpus(
    events: EventTable | pd.DataFrame, *, label: Literal["most_common", "none"] = "most_common"
) -> pd.DataFrame:
    """One row per annotated audio file, as a manifest that :func:`~interp.corpus.corpora.load_corpus` reads.

    Parameters
    ----------
    events : EventTable or pandas.DataFrame
        From :func:`read_events` (its ``files`` include files without events) or an event table.
    label : {"most_common", "none"}
        Each file's ``label``: its most common event label (ties: longest total duration, then
        alphabetical; ``""`` for a file without events), or ``""`` for every file.

    Returns
    -------
    pandas.DataFrame
        Columns ``path`` (absolute), ``label``, ``n_events`` (int), ``labels`` (the file's distinct
        event labels, sorted, joined with ``;``), ``event_s`` (float, seconds: the summed event
        durations), in the order the files were first met. Write it with
        ``df.to_csv("manifest.csv", index=False)`` and give that to ``load_corpus`` / ``record``.
    """
    ev, files = _events_frame(events, "events_corpus")
    if label not in ("most_common", "none"):
        raise ParameterError(
            f"The 'label' parameter of events_corpus must be 'most_common' or 'none'. Got {label!r} instead."
        )
    groups = {str(p): g for p, g in ev.groupby("path", sort=False)} if len(ev) else {}
    rows = []
    for path in dict.fromkeys([*files, *groups]):
        g = groups.get(path)
        labs = [] if g is None else g["label"].astype(str).tolist()
        secs = [] if g is None else (g["offset_s"] - g["onset_s"]).astype(float).tolist()
        rows.append(
            {
                "path": path,
                "label": _most_common(labs, secs) if label == "most_common" else "",
                "n_events": len(labs),
                "labels": ";".join(sorted(set(labs))),
                "event_s": round(float(sum(secs)), 6),
            }
        )
    out = pd.DataFrame(rows, columns=["path", "label", "n_events", "labels", "event_s"])
    out["n_events"] = out["n_events"].astype("int64")
    out["event_s"] = out["event_s"].astype("float64")
    return out


def events_for_clips(events: EventTable | pd.DataFrame, clips: pd.DataFrame) -> pd.DataFrame:
    """The events inside each clip of a corpus table, in the clip's own time.

    Parameters
    ----------
    events : EventTable or pandas.DataFrame
        Event table (times in seconds from the start of each file).
    clips : pandas.DataFrame
        A corpus or clip table with ``clip_id`` and ``path`` and optionally the excerpt
        ``start_s``/``end_s`` (seconds; NaN ``end_s`` = to the end of the file), e.g. from
        :func:`~interp.corpus.corpora.load_corpus` or a run's ``clips.parquet``. Paths are
        matched after resolving them.

    Returns
    -------
    pandas.DataFrame
        One row per (clip, event) that overlap: ``clip_id``, ``path``, ``onset_s``, ``offset_s``
        (seconds from the clip's start, clipped to the excerpt ``[0, end_s - start_s]``),
        ``label``, ``file_onset_s``, ``file_offset_s`` (the event in the file's time),
        ``truncated`` (bool: the excerpt cuts the event), ``source``, ``row``; in the clips'
        order, each clip's events by onset. Clips without events have no row.
    """
    ev, _ = _events_frame(events, "events_for_clips")
    if not isinstance(clips, pd.DataFrame) or not {"clip_id", "path"} <= set(clips.columns):
        got = list(clips.columns) if isinstance(clips, pd.DataFrame) else type(clips).__name__
        raise ParameterError(
            f"The 'clips' parameter of events_for_clips must be a DataFrame with clip_id and path columns "
            f"(and optionally start_s, end_s). Got {got} instead."
        )
    by_path: dict[str, pd.DataFrame] = {}
    for p, g in ev.groupby("path", sort=False):
        key = str(Path(str(p)).resolve()) if "://" not in str(p) else str(p)
        by_path[key] = g.sort_values(["onset_s", "offset_s"], kind="stable")
    resolved: dict[str, str] = {}
    pieces = []
    n = len(clips)
    starts = clips["start_s"] if "start_s" in clips.columns else pd.Series([0.0] * n, index=clips.index)
    ends = clips["end_s"] if "end_s" in clips.columns else pd.Series([math.nan] * n, index=clips.index)
    for cid, p, s, e in zip(clips["clip_id"], clips["path"], starts, ends):
        p = str(p)
        if p not in resolved:
            resolved[p] = p if "://" in p else str(Path(p).resolve())
        g = by_path.get(resolved[p])
        if g is None:
            continue
        start = 0.0 if s is None or pd.isna(s) else float(s)
        end = math.inf if e is None or pd.isna(e) else float(e)
        on = g["onset_s"].to_numpy(float)
        off = g["offset_s"].to_numpy(float)
        keep = (on < end) & (off > start)
        if not keep.any():
            continue
        sub = g[keep]
        c_on = np.maximum(on[keep], start) - start
        c_off = np.minimum(off[keep], end) - start
        pieces.append(
            pd.DataFrame(
                {
                    "clip_id": str(cid),
                    "path": sub["path"].to_numpy(),
                    "onset_s": c_on,
                    "offset_s": c_off,
                    "label": sub["label"].to_numpy(),
                    "file_onset_s": on[keep],
                    "file_offset_s": off[keep],
                    "truncated": (on[keep] < start) | (off[keep] > end),
                    "source": sub["source"].to_numpy() if "source" in sub.columns else "",
                    "row": sub["row"].to_numpy() if "row" in sub.columns else -1,
                }
            )
        )
    columns = ["clip_id", "path", "onset_s", "offset_s", "label", "file_onset_s", "file_offset_s", "truncated"]
    columns += ["source", "row"]
    if not pieces:
        return pd.DataFrame({c: pd.Series([], dtype=ev[c].dtype if c in ev.columns else object) for c in columns})
    out = pd.concat(pieces, ignore_index=True)[columns]
    out["truncated"] = out["truncated"].astype(bool)
    return out
