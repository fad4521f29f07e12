"""Clip-level correlations between the units and the heads' outputs (objects and places).

:func:`run_output_correlations` writes ``unit_outputs.parquet``: for each unit of the conv
layers, the object and place classes whose log-probability rises most with it across clips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from scipy import special

from interp.analysis import stats
from interp.run.store import Run, activation_file, open_run
from soundnet.errors import ParameterError
from soundnet.labels import head_labels
from soundnet.model import HEAD_LAYERS
from soundnet.options import ClipStat, HeadOutput, check_option

__all__ = [
    "output_correlations",
    "head_outputs",
    "run_output_correlations",
    "unit_output_correlations",
    "table_suffix",
    "DEFAULT_STAT",
]

#: The per-clip statistic of the default analysis: the mean over valid frames, which does not
#: grow with the clip's length (see :func:`soundnet.geometry.valid_frames`).
DEFAULT_STAT: ClipStat = "vmean"


def table_suffix(stat: str) -> str:
    """Suffix of the analysis tables of a statistic: none for :data:`DEFAULT_STAT`
    (``selectivity.parquet``), ``_max`` / ``_mean`` for the others."""
    return "" if stat == DEFAULT_STAT else f"_{stat}"


def output_correlations(
    acts: pd.DataFrame, probs: pd.DataFrame, *, names: list[str] | None = None, top: int = 5
) -> pd.DataFrame:
    """For each unit, the outputs whose probability rises most with it across clips.

    Parameters
    ----------
    acts : DataFrame (n_clips, n_units)
    probs : DataFrame (n_clips, n_outputs)
        Clip-level head probabilities (stat ``prob`` of conv8 / conv8_2), same index as acts
        (only the common clips are used).
    names : list of str, optional
        Output names (default: the column names).
    top : int
        Outputs kept per unit.

    Returns
    -------
    DataFrame ``unit, rank, class_index, class_name, r`` (Pearson r across clips, highest first).
    """
    common = acts.index.intersection(probs.index)
    a = acts.loc[common].to_numpy(dtype=np.float64)
    b = probs.loc[common].to_numpy(dtype=np.float64)
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    r = stats.column_correlations(a[ok], b[ok])
    names = list(map(str, probs.columns)) if names is None else list(names)
    return _top_outputs(r, np.asarray([int(u) for u in acts.columns]), names, top)


def _top_outputs(r: np.ndarray, units: np.ndarray, names: list[str], top: int) -> pd.DataFrame:
    """``unit, rank, class_index, class_name, r``: each unit's ``top`` highest correlations."""
    k = min(int(top), r.shape[1])
    idx = np.argsort(-r, axis=1, kind="stable")[:, :k]
    return pd.DataFrame(
        {
            "unit": np.repeat(units, k).astype(np.int64),
            "rank": np.tile(np.arange(k), len(units)).astype(np.int64),
            "class_index": idx.ravel().astype(np.int64),
            "class_name": [names[i] for i in idx.ravel()],
            "r": np.take_along_axis(r, idx, axis=1).ravel(),
        }
    )


def head_outputs(run: Run, head: str, *, output: HeadOutput = "logprob") -> pd.DataFrame:
    """A head's clip-level outputs from a run: probabilities or log-probabilities.

    Parameters
    ----------
    run : Run
    head : {"conv8", "conv8_2"}
    output : {"logprob", "prob"}
        ``prob``: the recorded ``prob`` stat (mean softmax over frames). ``logprob``: the
        log-softmax of the recorded ``mean`` logits, i.e. the exact clip log-probability for
        clips with one counted head frame and the log-softmax of the frame-averaged logits
        otherwise. Clip probabilities are small (the top class rarely passes 0.05) and span
        orders of magnitude, so correlations are better behaved on the log scale; hence
        ``logprob`` by default.

    Returns
    -------
    DataFrame (n_clips, n_classes), float64, indexed by clip id.
    """
    check_option("output", output, HeadOutput, where="head_outputs")
    if output == "prob":
        return run.activations(head, "prob").astype(np.float64)
    m = run.activations(head, "mean").astype(np.float64)
    x = m.to_numpy()
    lse = special.logsumexp(x, axis=1, keepdims=True)
    return pd.DataFrame(x - lse, index=m.index, columns=m.columns)


class _StreamedCorrelation:
    """Pearson correlations between the columns of two tables seen in row batches, from shifted
    sums (the first batch's means are the shift, against cancellation): exact up to rounding,
    memory ``n_x x n_y`` plus one batch."""

    def __init__(self) -> None:
        self.n = 0
        self.shift_x: np.ndarray | None = None
        self.shift_y: np.ndarray | None = None
        self.sx = self.sy = self.sxx = self.syy = self.sxy = np.zeros(0)

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) == 0:
            return
        if self.shift_x is None or self.shift_y is None:
            self.shift_x, self.shift_y = x.mean(axis=0), y.mean(axis=0)
            self.sx, self.sy = np.zeros(x.shape[1]), np.zeros(y.shape[1])
            self.sxx, self.syy = np.zeros(x.shape[1]), np.zeros(y.shape[1])
            self.sxy = np.zeros((x.shape[1], y.shape[1]))
        xc, yc = x - self.shift_x, y - self.shift_y
        self.n += len(x)
        self.sx += xc.sum(axis=0)
        self.sy += yc.sum(axis=0)
        self.sxx += (xc * xc).sum(axis=0)
        self.syy += (yc * yc).sum(axis=0)
        self.sxy += xc.T @ yc

    def result(self) -> np.ndarray:
        n = max(self.n, 1)
        cov = self.sxy - np.outer(self.sx, self.sy) / n
        vx = self.sxx - self.sx**2 / n
        vy = self.syy - self.sy**2 / n
        with np.errstate(divide="ignore", invalid="ignore"):
            r = cov / np.sqrt(np.outer(vx, vy))
        return np.where(np.isfinite(r), np.clip(r, -1.0, 1.0), 0.0)


def _row_batches(run: Run, layer: str, stat: str, rows: int) -> Iterator[np.ndarray]:
    """A layer's activation table in batches of ``rows`` clips (corpus order), float64."""
    path = run.path / "activations" / activation_file(layer, stat)
    pf = pq.ParquetFile(path)
    cols = [c for c in pf.schema_arrow.names if c != "clip_id"]
    # whole row groups gathered up to ``rows``, read explicitly: ``iter_batches`` reads ahead,
    # which on a long table held several batches at once (6.1 GB instead of 4 at 200,000 clips)
    sizes = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
    group: list[int] = []
    held = 0
    for i, n in enumerate(sizes):
        group.append(i)
        held += n
        if held >= rows or i == len(sizes) - 1:
            t = pf.read_row_groups(group, columns=cols, use_threads=False)
            group, held = [], 0
            yield np.column_stack([c.to_numpy() for c in t.columns]).astype(np.float64)


def _head_batches(run: Run, head: str, output: HeadOutput, rows: int) -> Iterator[np.ndarray]:
    """:func:`head_outputs` in batches of ``rows`` clips."""
    for b in _row_batches(run, head, "prob" if output == "prob" else "mean", rows):
        yield b if output == "prob" else b - special.logsumexp(b, axis=1, keepdims=True)


def unit_output_correlations(
    run: Run | str | os.PathLike,
    layer: str,
    unit: int,
    head: str,
    *,
    stat: str = "prob",
    output: HeadOutput = "prob",
    top: int = 5,
    rows: int = 50_000,
) -> pd.DataFrame:
    """One unit's :func:`run_output_correlations` against one head, streamed: the unit's column
    and the head's table in batches of ``rows`` clips (memory: one batch). For a head unit, its
    own class is among the outputs (r = 1).

    Returns
    -------
    DataFrame ``rank, class_index, class_name, r``.
    """
    run = open_run(run)
    path = run.path / "activations" / activation_file(layer, stat)
    pf = pq.ParquetFile(path)
    acc = _StreamedCorrelation()
    xs = pf.iter_batches(batch_size=rows, columns=[str(int(unit))])
    for xb, y in zip(xs, _head_batches(run, head, output, rows)):
        x = xb.column(0).to_numpy(zero_copy_only=False).astype(np.float64)[:, None]
        ok = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        acc.add(x[ok], y[ok])
    t = _top_outputs(acc.result(), np.asarray([int(unit)]), list(head_labels(head)), top)
    return t.drop(columns="unit").reset_index(drop=True)


def run_output_correlations(
    run: Run | str | os.PathLike,
    *,
    stat: ClipStat = DEFAULT_STAT,
    layers: list[str] | None = None,
    top: int = 5,
    output: HeadOutput = "logprob",
    write: bool = True,
    memory_gb: float = 4.0,
) -> pd.DataFrame:
    """Per unit of the conv layers, the object and place classes that rise with it across clips.

    Correlation (Pearson, across the run's clips that have a value in the layer) between the
    unit's ``stat`` and each head's clip-level output (see :func:`head_outputs`:
    log-probability by default, or the ``prob`` stat of conv8 and conv8_2). The tables are read
    once, together, in batches of clips sized to ``memory_gb`` (sums of products accumulated,
    exact up to rounding), so memory does not grow with the corpus. Written as ``unit_outputs.parquet``
    (``unit_outputs_max`` for ``stat="max"``, see :func:`table_suffix`).

    Returns
    -------
    DataFrame ``layer, unit, head, rank, class_index, class_name, r``.
    """
    run = open_run(run)
    check_option("output", output, HeadOutput, where="run_output_correlations")
    heads = [h for h in HEAD_LAYERS if h in run.layers]
    if not heads:
        raise ParameterError(
            f"Run {str(run.path)!r} has no head layer recorded; output correlations need conv8 or conv8_2."
        )
    layers = [l for l in run.layers if l not in HEAD_LAYERS] if layers is None else list(layers)
    # one pass over the clips: every layer's and head's table read once (each head was read
    # again for every layer, and every layer for every head: 66 GB instead of 19 at a million
    # clips), the heads' log-softmax computed once per batch
    width = sum(run.n_units(layer) for layer in layers) + sum(run.n_units(head) for head in heads)
    # the batches as float64, their centred copies, the Arrow tables and columns, logsumexp's
    # temporaries: about 16 copies (measured: 10 gave 5.0 GB at 200,000 clips for 4 GB)
    rows = int(max(256, min(200_000, memory_gb * 1e9 / (width * 8 * 16))))
    acc = {(layer, head): _StreamedCorrelation() for head in heads for layer in layers}
    streams = [_row_batches(run, layer, stat, rows) for layer in layers]
    streams += [_head_batches(run, head, output, rows) for head in heads]
    for batch in zip(*streams, strict=True):
        xs, ys = batch[: len(layers)], batch[len(layers) :]
        ok_y = [np.isfinite(y).all(axis=1) for y in ys]
        for layer, x in zip(layers, xs, strict=True):
            ok_x = np.isfinite(x).all(axis=1)
            for head, y, oy in zip(heads, ys, ok_y, strict=True):
                ok = ok_x & oy
                acc[(layer, head)].add(x[ok], y[ok])
    parts = []
    for head in heads:
        names = list(head_labels(head))
        for layer in layers:
            t = _top_outputs(acc[(layer, head)].result(), np.arange(run.n_units(layer)), names, top)
            t.insert(0, "layer", layer)
            t.insert(2, "head", head)
            parts.append(t)
    out = pd.concat(parts, ignore_index=True).sort_values(
        ["layer", "unit", "head", "rank"],
        kind="stable",
        key=lambda s: s.map({l: i for i, l in enumerate(run.layers)}) if s.name == "layer" else s,
    )
    out = out.reset_index(drop=True)
    if write:
        run.write_table("unit_outputs" + table_suffix(stat), out)
    return out
