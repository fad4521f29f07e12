"""The plumbing every study shares: flags, getting a run, and writing a report folder.

A study (``studies/<name>.py``) is: parse the common flags (:func:`study_parser`), get a run
directory (:func:`obtain_run`: record the corpus, or reuse ``--run``), compute tables with
:mod:`interp`, and hand them to a :class:`Report`, which writes

``<out>/<table>.parquet`` and ``<out>/<table>.csv``
    every table, both formats, same columns;
``<out>/<figure>.html|.png|.svg|.pdf``
    every figure (:func:`interp.report.figures.export_figure`);
``<out>/summary.md``
    the key numbers, then what each table holds (its columns) and each figure shows.

Common flags
------------
``--corpus``  a built-in corpus name (``demo``, ``probes``) or a path, exactly as ``record`` takes
``--out``     the report folder (default ``reports/<study>``)
``--run``     reuse this recorded run directory instead of recording the corpus
``--quick``   reduced inputs (a few clips per category, fewer probes), for tests and a first look

Examples
--------
>>> args = study_parser("layer_probes", "Linear probes per layer", default_corpus="demo").parse_args([])
>>> report = Report("layer_probes", args.out, title="Linear probes per layer")   # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interp.recording import RecordConfig, record_corpus
from interp.report.figures import EXPORT_FORMATS, ExportFormat, export_figure
from interp.run.store import Run, atomic_write_bytes, open_run, write_parquet
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, layer_geometry

__all__ = [
    "study_parser",
    "quick_subset",
    "obtain_run",
    "Report",
]


class _StudyParser(argparse.ArgumentParser):
    """Records the command line it parsed as ``args.argv`` (for the report's "Command" line)."""

    def __init__(self, *a, script: str, **kw) -> None:
        super().__init__(*a, **kw)
        self._script = script

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        ns.argv = [self._script] + list(sys.argv[1:] if args is None else args)
        return ns


def study_parser(name: str, description: str, *, default_corpus: str = "demo") -> argparse.ArgumentParser:
    """An argument parser with the flags every study takes.

    Parameters
    ----------
    name : str
        The study's name (``reports/<name>`` is the default output folder).
    description : str
        One line for ``--help``.
    default_corpus : str
        ``--corpus`` default.

    Returns
    -------
    argparse.ArgumentParser
        With ``--corpus``, ``--out``, ``--run``, ``--quick``, ``--workers``, ``--device``; a study
        adds its own flags to it.
    """
    ap = _StudyParser(prog=f"studies/{name}.py", description=description, script=f"studies/{name}.py")
    ap.add_argument(
        "--corpus",
        default=default_corpus,
        help=f"built-in corpus ('demo', 'probes') or a path, as `record` accepts (default {default_corpus!r})",
    )
    ap.add_argument("--out", type=Path, default=Path("reports") / name, help=f"report folder (default reports/{name})")
    ap.add_argument("--run", type=Path, help="reuse this recorded run directory instead of recording the corpus")
    ap.add_argument("--quick", action="store_true", help="reduced inputs (for tests and a first look)")
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="recording lanes, threads that each decode and run the model (default 0: one lane)",
    )
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    return ap


def quick_subset(corpus: pd.DataFrame, *, per_label: int, max_labels: int | None = None) -> pd.DataFrame:
    """The first ``per_label`` ok rows of each label (and at most ``max_labels`` labels), in corpus order.

    Parameters
    ----------
    corpus : pandas.DataFrame
        A corpus table (:func:`interp.corpus.corpora.load_corpus`) or a run's clip table.
    per_label : int
    max_labels : int, optional
        Keep the labels with the most rows (ties: alphabetical).
    """
    if per_label < 1:
        raise ParameterError(f"The 'per_label' parameter of quick_subset must be >= 1. Got {per_label} instead.")
    ok = corpus[corpus["status"] == "ok"] if "status" in corpus.columns else corpus
    labels = ok["label"].astype(str)
    if max_labels is not None:
        counts = labels.value_counts()
        keep = sorted(counts.index, key=lambda c: (-counts[c], c))[:max_labels]
        ok, labels = ok[labels.isin(keep)], labels[labels.isin(keep)]
    rank = ok.groupby(labels, sort=False).cumcount()
    out = ok[rank.to_numpy() < per_label].copy()
    out.attrs.update(corpus.attrs)
    return out


def obtain_run(
    args: argparse.Namespace,
    *,
    layers: Sequence[str],
    corpus: pd.DataFrame | str | None = None,
    corpus_options: dict[str, Any] | None = None,
    **settings: Any,
) -> Run:
    """The run a study works on: ``--run`` when given, else the corpus recorded into ``<out>/run``.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`study_parser` (``run``, ``corpus``, ``out``, ``workers``, ``device``).
    layers : sequence of str
        Layers the study needs; a reused run must have them.
    corpus : DataFrame or str, optional
        What to record (default ``args.corpus``), e.g. a :func:`quick_subset` of it.
    corpus_options : dict, optional
        Passed to :func:`interp.corpus.corpora.load_corpus` (probe options for ``"probes"``).
    **settings
        :class:`interp.recording.RecordConfig` fields (``topk``, ``short``, ...).

    Returns
    -------
    Run

    Raises
    ------
    ParameterError
        A reused run lacks one of ``layers``.
    """
    if args.run is not None:
        run = open_run(args.run)
        missing = [layer for layer in layers if layer not in run.layers]
        if missing:
            raise ParameterError(
                f"The run {str(args.run)!r} lacks the layers {missing} this study needs; record "
                f"them with `soundnet-interp record ... --layers {','.join(layers)}`."
            )
        return run
    run_dir = Path(args.out) / "run"
    summary = record_corpus(
        args.corpus if corpus is None else corpus,
        run_dir,
        layers=tuple(layers),
        corpus_options=corpus_options,
        workers=args.workers,
        device=args.device,
        progress=sys.stderr.isatty(),
        overwrite=True,
        **settings,
    )
    print(f"recorded: {summary}", file=sys.stderr)
    return open_run(run_dir)


def _clip_note(run: Run) -> str:
    """One sentence on clip lengths against the receptive fields, and the run's short-clip policy."""
    dur = run.ok_clips["duration_s"].astype(float) if "duration_s" in run.ok_clips.columns else pd.Series(dtype=float)
    if dur.dropna().empty:
        return ""
    cfg = RecordConfig.from_meta(run.meta)
    short, n_min = cfg.short, cfg.min_samples
    text = (
        f"Clips last {dur.min():.2f} to {dur.max():.2f} s (median {dur.median():.2f} s); receptive fields span "
        f"{layer_geometry('conv5').receptive_field_s:.2f} s in conv5 and {layer_geometry('conv7').receptive_field_s:.1f} s "
        "in conv7"
    )
    if short != "none" and n_min:
        n_short = int((dur * SAMPLE_RATE_HZ < n_min).sum())
        verb = {"pad": "padded with silence", "tile": "tiled"}.get(short, short)
        text += f"; {n_short} clips shorter than {n_min / SAMPLE_RATE_HZ:.2f} s were {verb} to that length"
    return text + "."


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            return "n/a"
        return f"{float(v):.3g}" if abs(float(v)) < 1000 else f"{float(v):,.0f}"
    return str(v)


@dataclass
class _Item:
    name: str
    text: str
    extra: str = ""


@dataclass
class Report:
    """A report folder: tables, figures and ``summary.md``.

    Parameters
    ----------
    name : str
        The study's name.
    out_dir : str or path
        The folder (created).
    title : str
        Heading of ``summary.md``.
    formats : sequence of {"html", "png", "svg", "pdf"}
        Figure formats (default HTML, PNG, SVG, PDF).

    Examples
    --------
    >>> rep = Report("demo", "reports/demo", title="Demo")         # doctest: +SKIP
    >>> rep.table("probes", df, "accuracy per layer")               # doctest: +SKIP
    >>> rep.number("best layer", "conv4")                           # doctest: +SKIP
    >>> rep.finish(intro="...", run=run)                            # doctest: +SKIP
    """

    name: str
    out_dir: Path
    title: str
    formats: tuple[ExportFormat, ...] = EXPORT_FORMATS
    tables: list[_Item] = field(default_factory=list)
    figures: list[_Item] = field(default_factory=list)
    numbers: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def table(self, name: str, df: pd.DataFrame, description: str) -> Path:
        """Write ``<name>.parquet`` and ``<name>.csv``; returns the Parquet path.

        Parameters
        ----------
        name : str
            File stem.
        df : pandas.DataFrame
        description : str
            One sentence for ``summary.md`` (the columns are listed after it).
        """
        if not isinstance(df, pd.DataFrame):
            raise ParameterError(
                f"The 'df' parameter of Report.table must be a DataFrame. Got {type(df).__name__} instead."
            )
        clean = df.copy()
        clean.attrs = {}
        for col in clean.columns:  # lists (e.g. unit sets) as text, so that CSV and Parquet agree
            if clean[col].dtype == object and clean[col].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
                clean[col] = clean[col].map(
                    lambda v: " ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else v
                )
        path = self.out_dir / f"{name}.parquet"
        write_parquet(path, clean)
        atomic_write_bytes(self.out_dir / f"{name}.csv", clean.to_csv(index=False).encode())
        self.tables.append(_Item(name, description, ", ".join(map(str, clean.columns))))
        return path

    def figure(self, name: str, fig, caption: str, *, width: int | None = None, height: int | None = None) -> dict:
        """Export ``fig`` as ``<name>.html/.png/.svg/.pdf``; ``caption`` goes to ``summary.md``."""
        written = export_figure(fig, self.out_dir / name, formats=self.formats, width=width, height=height)
        for p in written.values():
            os.chmod(p, 0o644)
        self.figures.append(_Item(name, caption))
        return written

    def number(self, label: str, value: Any, note: str = "") -> None:
        """A key number for the top of ``summary.md``."""
        self.numbers.append((label, _fmt(value) + (f" ({note})" if note else "")))

    def note(self, text: str) -> None:
        """A free sentence for the summary (method details, caveats)."""
        self.notes.append(text)

    def finish(self, *, intro: str, run: Run | None = None, argv: Sequence[str] | None = None) -> Path:
        """Write ``summary.md`` and return its path."""
        argv = list(sys.argv if argv is None else argv)
        lines = [f"# {self.title}", "", intro.strip(), ""]
        lines += ["Command: `" + " ".join(shlex.quote(a) for a in ["python"] + argv) + "`", ""]
        if run is not None:
            corpus = (run.meta.get("corpus") or {}).get("spec", "?")
            n_ok = int((run.clips["status"] == "ok").sum())
            lines += [
                f"Run: `{run.path}` (corpus `{corpus}`, {n_ok} clips ok, layers {', '.join(run.layers)}). "
                + _clip_note(run),
                "",
            ]
        if self.numbers:
            lines += ["## Key numbers", ""] + [f"- **{k}**: {v}" for k, v in self.numbers] + [""]
        if self.notes:
            lines += ["## Method notes", ""] + [f"- {n}" for n in self.notes] + [""]
        if self.figures:
            lines += ["## Figures", ""]
            for f in self.figures:
                lines += [f"- `{f.name}` (.html .png .svg .pdf): {f.text}", f"  ![{f.name}]({f.name}.png)"]
            lines.append("")
        if self.tables:
            lines += ["## Tables (Parquet and CSV)", ""]
            lines += [f"- `{t.name}`: {t.text} Columns: `{t.extra}`." for t in self.tables]
            lines.append("")
        path = self.out_dir / "summary.md"
        atomic_write_bytes(path, "\n".join(lines).encode())
        print(f"report: {path}", file=sys.stderr)
        return path
