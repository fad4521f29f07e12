"""Unit and clip charts: activation distributions, spectrograms, activation traces, head
predictions, promoted classes, tuning curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from interp.report.figures.style import (
    ACCENT,
    INK,
    MUTED,
    PALETTE,
    SPEC_SCALE,
    TRACE,
    category_codes,
    category_colors,
    check_1d,
    check_columns,
    hz_label,
    styled_figure,
)
from interp.run.store import STAT_DESCRIPTIONS
from soundnet.errors import ParameterError
from soundnet.options import HeadStat, check_option

__all__ = [
    "activation_histogram",
    "category_distributions",
    "clip_activation_figure",
    "spectrogram_figure",
    "head_predictions_figure",
    "promoted_classes_figure",
    "tuning_curve_figure",
]


# --------------------------------------------------------------------------------------------
# unit
# --------------------------------------------------------------------------------------------
def _stat_axis_title(stat: str) -> str:
    """Axis title of a per-clip statistic, in words (:data:`interp.run.store.STAT_DESCRIPTIONS`)."""
    if stat == "peak_s":
        return "time of the max (s)"
    return f"activation ({STAT_DESCRIPTIONS.get(stat, stat)})"


def activation_histogram(
    values: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[str],
    *,
    n_bins: int = 40,
    stat: HeadStat = "max",
    title: str | None = None,
    height: int = 300,
    colors: Mapping[str, str] | None = None,
) -> go.Figure:
    """Histogram of one unit's per-clip activation, stacked and coloured by category.

    Parameters
    ----------
    values : array, shape (n_clips,)
        The unit's activation statistic per clip (NaN values are left out).
    labels : array of str or pandas.Categorical, shape (n_clips,)
        Each clip's category (a Categorical is grouped by its codes: fast on a million clips).
    n_bins : int
    stat : {"max", "mean", "vmean", "peak_s", "prob"}
        The per-clip statistic the values are (for the axis title, in the words of
        :data:`interp.run.store.STAT_DESCRIPTIONS`).
    colors : mapping, optional
        Category colours (default :func:`category_colors` of ``labels``).
    """
    check_option("stat", stat, HeadStat, where="activation_histogram")
    v = check_1d("values", "activation_histogram", values).astype(float)
    cats, codes = category_codes("labels", "activation_histogram", labels, len(v))
    if n_bins < 1:
        raise ParameterError(f"The 'n_bins' parameter of activation_histogram must be >= 1. Got {n_bins} instead.")
    colors = dict(colors or category_colors(cats))
    keep = np.isfinite(v)
    finite = v[keep]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    # one pass over the clips: bin of each (np.histogram's bins, the last one closed) by category
    bins = np.minimum(np.searchsorted(edges, finite, side="right") - 1, n_bins - 1)
    counts = np.bincount(codes[keep] * n_bins + bins, minlength=len(cats) * n_bins).reshape(len(cats), n_bins)
    traces = []
    for i, cat in enumerate(cats):
        traces.append(
            go.Bar(
                x=centres,
                y=counts[i],
                width=np.diff(edges),
                name=cat,
                marker=dict(color=colors.get(cat, MUTED), line=dict(width=0)),
                hovertemplate=cat + ": %{y} clips at %{x:.3g}<extra></extra>",
            )
        )
    return styled_figure(
        traces,
        dict(
            barmode="stack",
            bargap=0,
            legend=dict(orientation="v", x=1.0, xanchor="left", y=1),
            xaxis=dict(title=dict(text=_stat_axis_title(stat))),
            yaxis=dict(title=dict(text="clips")),
        ),
        title=title,
        height=height,
    )


def category_distributions(
    values: np.ndarray | Sequence[float],
    labels: np.ndarray | Sequence[str],
    *,
    stat: HeadStat = "max",
    title: str | None = None,
    height: int | None = None,
    colors: Mapping[str, str] | None = None,
    max_points: int = 2000,
) -> go.Figure:
    """Per-category distribution of one unit's activation: box plus every clip, sorted by median
    (clips without a finite value are left out).

    A category of more than ``max_points`` clips gets its box (quartiles and 1.5 IQR whiskers)
    from all of them and its points from a random ``max_points`` (seeded; the hover says so), so
    that a figure on a million clips stays a few hundred kilobytes.

    Parameters
    ----------
    values : array, shape (n_clips,)
    labels : array of str or pandas.Categorical, shape (n_clips,)
        Each clip's category.
    stat : {"max", "mean", "vmean", "peak_s", "prob"}
        The per-clip statistic the values are (for the axis title, in the words of
        :data:`interp.run.store.STAT_DESCRIPTIONS`).
    colors : mapping, optional
    max_points : int
        Points drawn per category at most.
    """
    check_option("stat", stat, HeadStat, where="category_distributions")
    v = check_1d("values", "category_distributions", values).astype(float)
    names, codes = category_codes("labels", "category_distributions", labels, len(v))
    colors = dict(colors or category_colors(names))
    # each category's finite values, in clip order: one stable sort of the codes, not one
    # comparison of every label per category
    keep = np.isfinite(v)
    grouped = v[keep][np.argsort(codes[keep], kind="stable")]
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes[keep], minlength=len(names)))])
    by_cat = {c: grouped[bounds[i] : bounds[i + 1]] for i, c in enumerate(names)}
    cats = sorted(names, key=lambda c: (float(np.median(by_cat[c])) if len(by_cat[c]) else -np.inf, c))
    rng = np.random.default_rng(0)
    traces = []
    for cat in cats:
        finite = by_cat[cat]
        color = colors.get(cat, MUTED)
        box: dict[str, Any] = dict(
            name=cat, orientation="h", line=dict(width=1.2, color=color), fillcolor="rgba(0,0,0,0)"
        )
        box["showlegend"] = False
        x = finite
        if len(finite) > max_points:  # the box from every clip, the points from a sample
            q1, med, q3 = np.percentile(finite, [25, 50, 75])
            reach = finite[(finite >= q1 - 1.5 * (q3 - q1)) & (finite <= q3 + 1.5 * (q3 - q1))]
            traces.append(
                go.Box(
                    y=[cat],
                    q1=[q1],
                    median=[med],
                    q3=[q3],
                    lowerfence=[reach.min()],
                    upperfence=[reach.max()],
                    boxpoints=False,
                    hoverinfo="skip",
                    **box,
                )
            )
            x = rng.choice(finite, size=max_points, replace=False)
            box = box | dict(line=dict(width=0, color=color))
            note = f" (a random {max_points:,} of {len(finite):,} clips)"
        else:
            note = ""
        traces.append(
            go.Box(
                x=x,
                y=[cat] * len(x),
                boxpoints="all",
                jitter=0.5,
                pointpos=0,
                marker=dict(size=4, opacity=0.65, color=color),
                hoveron="points",
                hovertemplate=cat + ": %{x:.3g}" + note + "<extra></extra>",
                **box,
            )
        )
    h = height if height is not None else max(220, 60 + 24 * len(cats))
    return styled_figure(
        traces,
        dict(
            xaxis=dict(title=dict(text=_stat_axis_title(stat))),
            yaxis=dict(showgrid=False, categoryorder="array", categoryarray=cats),
        ),
        title=title,
        height=h,
    )


def _display_db(db: np.ndarray, times_s: np.ndarray, max_columns: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Block-average spectrogram columns down to ``max_columns`` and round dB to int8 (compact JSON)."""
    db = np.asarray(db, dtype=np.float32)
    t = np.asarray(times_s, dtype=np.float32)
    n = db.shape[1]
    if max_columns is not None and n > max_columns:
        step = int(np.ceil(n / max_columns))
        m = n // step * step
        db = db[:, :m].reshape(db.shape[0], -1, step).mean(axis=2)
        t = t[:m].reshape(-1, step).mean(axis=1)
    return np.clip(np.rint(db), -128, 0).astype(np.int8), t


def _spectrogram_trace(
    db: np.ndarray,
    times_s: np.ndarray,
    freqs_hz: np.ndarray,
    *,
    zmin: float,
    showscale: bool,
    max_columns: int | None = None,
) -> go.Heatmap:
    z, t = _display_db(db, times_s, max_columns)
    return go.Heatmap(
        z=z,
        x=t,
        y=np.arange(len(freqs_hz), dtype=np.int16),
        colorscale=SPEC_SCALE,
        zmin=zmin,
        zmax=0.0,
        showscale=showscale,
        name="spectrogram",
        colorbar=dict(title=dict(text="dB", side="right"), thickness=8, x=1.0, xpad=44, len=0.9),
        hovertemplate="%{x:.2f} s · %{z} dB<extra></extra>",
    )


def _mel_ticks(freqs_hz: np.ndarray) -> tuple[list[float], list[str]]:
    targets = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000) if freqs_hz[0] <= f <= freqs_hz[-1]]
    pos = np.interp(targets, freqs_hz, np.arange(len(freqs_hz)))
    return [float(p) for p in pos], [hz_label(f) for f in targets]


def spectrogram_figure(
    spec: Any, *, title: str | None = None, height: int = 260, zmin: float = -80.0, max_columns: int | None = 1200
) -> go.Figure:
    """A mel spectrogram (dB) of one clip.

    Parameters
    ----------
    spec : interp.run.traces.Spectrogram
        ``db`` (n_mels, n_frames) in dB re the clip peak, ``times_s`` (n_frames,), ``freqs_hz``
        (n_mels,) mel band centres.
    zmin : float (in dB)
        Floor of the colour scale.
    max_columns : int, optional
        Columns are block-averaged down to this many for display.
    """
    fr = np.asarray(spec.freqs_hz)
    hm = _spectrogram_trace(
        np.asarray(spec.db), np.asarray(spec.times_s), fr, zmin=zmin, showscale=True, max_columns=max_columns
    )
    tv, tt = _mel_ticks(fr) if len(fr) > 1 else ([], [])
    return styled_figure(
        [hm],
        dict(
            yaxis=dict(title=dict(text="Hz (mel)"), tickvals=tv, ticktext=tt, showgrid=False),
            xaxis=dict(title=dict(text="time (s)"), showgrid=False),
            margin=dict(r=70),
        ),
        title=title,
        height=height,
    )


def _downsample_max(times_s: np.ndarray, acts: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool a trace to at most ``max_points`` points (keeps peaks visible)."""
    n = len(acts)
    if n <= max_points:
        return times_s, acts
    step = int(np.ceil(n / max_points))
    m = n // step * step
    a = acts[:m].reshape(-1, step)
    t = times_s[:m].reshape(-1, step)
    idx = a.argmax(axis=1)
    rows = np.arange(len(a))
    return t[rows, idx], a[rows, idx]


def clip_activation_figure(
    spec: Any,
    times_s: np.ndarray,
    acts: np.ndarray,
    *,
    peak_s: float | None = None,
    window_s: tuple[float, float] | None = None,
    title: str | None = None,
    height: int = 210,
    zmin: float = -80.0,
    max_points: int = 800,
    max_columns: int | None = 300,
    act_range: tuple[float, float] | None = None,
    show_colorbar: bool = False,
    compact: bool = True,
) -> go.Figure:
    """A clip's mel spectrogram with one unit's activation over time on the same time axis.

    Parameters
    ----------
    spec : interp.run.traces.Spectrogram
        ``db`` (n_mels, n_frames), ``times_s`` (n_frames,), ``freqs_hz`` (n_mels,).
    times_s : array, shape (n_unit_frames,)
        Centre time of each of the unit's frames, seconds from the clip start.
    acts : array, shape (n_unit_frames,)
        The unit's activation per frame.
    peak_s : float (in seconds), optional
        Time of the maximum, marked with a diamond.
    window_s : (float, float) (in seconds), optional
        Receptive-field window of the peak frame, shaded.
    act_range : (float, float), optional
        Range of the activation axis (so several clips of one unit share a scale).
    max_points : int
        Traces longer than this are max-pooled for display.
    max_columns : int, optional
        Spectrogram columns are block-averaged down to this many for display.
    compact : bool
        Thumbnail layout (small margins, no axis titles).
    """
    t = check_1d("times_s", "clip_activation_figure", times_s).astype(np.float64)
    a = check_1d("acts", "clip_activation_figure", acts).astype(np.float64)
    if len(t) != len(a):
        raise ParameterError(
            f"The 'acts' parameter of clip_activation_figure must have one value per time "
            f"({len(t)}). Got {len(a)} instead."
        )
    db = np.asarray(spec.db)
    st = np.asarray(spec.times_s)
    fr = np.asarray(spec.freqs_hz)
    traces: list[Any] = [_spectrogram_trace(db, st, fr, zmin=zmin, showscale=show_colorbar, max_columns=max_columns)]
    td, ad = _downsample_max(t, a, max_points)
    traces.append(
        go.Scatter(
            x=td.astype(np.float32),
            y=ad.astype(np.float32),
            yaxis="y2",
            mode="lines",
            name="activation",
            line=dict(color=TRACE, width=1.8, shape="linear" if len(td) > 60 else "hv"),
            hovertemplate="%{x:.3f} s · act %{y:.3g}<extra></extra>",
            showlegend=False,
        )
    )
    shapes = []
    if window_s is not None:
        shapes.append(
            dict(
                type="rect",
                xref="x",
                yref="paper",
                x0=float(window_s[0]),
                x1=float(window_s[1]),
                y0=0,
                y1=1,
                fillcolor="white",
                opacity=0.16,
                layer="above",
                line=dict(color="white", width=1, dash="dot"),
            )
        )
    if peak_s is not None and len(t):
        j = int(np.argmin(np.abs(t - float(peak_s))))
        traces.append(
            go.Scatter(
                x=[float(t[j])],
                y=[float(a[j])],
                yaxis="y2",
                mode="markers",
                showlegend=False,
                name="peak",
                marker=dict(symbol="diamond", size=9, color="white", line=dict(color=INK, width=1)),
                hovertemplate="peak %{x:.3f} s · %{y:.3g}<extra></extra>",
            )
        )
    tv, tt = _mel_ticks(fr) if len(fr) > 1 else ([], [])
    x_end = float(max(st[-1] if len(st) else 0.0, t[-1] if len(t) else 0.0))
    x_start = float(min(st[0] if len(st) else 0.0, t[0] if len(t) else 0.0, 0.0 if st[0] < 1.0 else st[0]))
    if act_range is None:
        top = float(np.nanmax(a)) if len(a) else 1.0
        act_range = (0.0, top if top > 0 else 1.0)
    lo, hi = act_range
    pad = (hi - lo) * 0.06 or 1.0
    lay: dict[str, Any] = dict(
        xaxis=dict(
            range=[x_start, x_end],
            showgrid=False,
            title=dict(text=None if compact else "time (s)"),
            ticksuffix=" s" if compact else "",
        ),
        yaxis=dict(
            tickvals=tv,
            ticktext=tt,
            showgrid=False,
            title=dict(text=None if compact else "Hz (mel)"),
            range=[-0.5, len(fr) - 0.5],
        ),
        yaxis2=dict(
            overlaying="y",
            side="right",
            # plotly.js syncs an overlaying axis's ticks to the axis below (tickmode "sync") by
            # default: here the mel ticks, which would put the activation ticks at uneven values
            tickmode="auto",
            showgrid=False,
            range=[lo - pad, hi + pad],
            zeroline=False,
            title=dict(text=None if compact else "activation"),
            tickfont=dict(size=9, color="#119c82"),
            showline=False,
            nticks=4 if compact else 6,
            tickformat=".2~g",
        ),
        hovermode="closest",
        shapes=shapes,
    )
    if compact:
        lay["margin"] = dict(l=38, r=38, t=26 if title else 6, b=24)
        lay["title"] = dict(font=dict(size=11))
    elif show_colorbar:
        lay["margin"] = dict(r=110)
    return styled_figure(traces, lay, title=title, height=height)


def head_predictions_figure(
    times_s: np.ndarray,
    probs: np.ndarray,
    names: Sequence[str],
    *,
    k: int = 8,
    title: str | None = None,
    height: int | None = None,
) -> go.Figure:
    """Top-``k`` classes of a head over time, as a heatmap of probabilities.

    Parameters
    ----------
    times_s : array, shape (n_frames,)
        Frame centre times in seconds.
    probs : array, shape (n_classes, n_frames)
        Per-frame softmax probabilities.
    names : sequence of str, length n_classes
    k : int
        Classes shown: the ``k`` with the highest mean probability.
    """
    t = check_1d("times_s", "head_predictions_figure", times_s).astype(float)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(t) or p.shape[0] != len(names):
        raise ParameterError(
            f"The 'probs' parameter of head_predictions_figure must be (n_classes={len(names)}, "
            f"n_frames={len(t)}). Got {p.shape} instead."
        )
    if k < 1:
        raise ParameterError(f"The 'k' parameter of head_predictions_figure must be >= 1. Got {k} instead.")
    order = np.argsort(-p.mean(axis=1), kind="stable")[:k][::-1]
    labels = [str(names[i]) for i in order]
    z = p[order]
    h = height if height is not None else 70 + 22 * len(labels)
    if len(t) == 1:  # one frame: bars instead of a one-column heatmap
        bar = go.Bar(
            x=z[:, 0], y=labels, orientation="h", marker_color=ACCENT, hovertemplate="%{y}: %{x:.1%}<extra></extra>"
        )
        return styled_figure(
            [bar],
            dict(xaxis=dict(title=dict(text="probability"), tickformat=".0%"), yaxis=dict(showgrid=False)),
            title=title,
            height=h,
        )
    fmt = ".0%" if float(np.max(z, initial=0.0)) >= 0.1 else ".1%"
    hm = go.Heatmap(
        z=z,
        x=t,
        y=labels,
        colorscale="Blues",
        zmin=0,
        ygap=1,
        colorbar=dict(title=dict(text="p", side="right"), thickness=8, tickformat=fmt),
        hovertemplate="%{y} · %{x:.1f} s: %{z:.1%}<extra></extra>",
    )
    return styled_figure(
        [hm],
        dict(xaxis=dict(title=dict(text="time (s)"), showgrid=False), yaxis=dict(showgrid=False)),
        title=title,
        height=h,
    )


def promoted_classes_figure(
    names: Sequence[str],
    scores: Sequence[float],
    *,
    title: str | None = None,
    score_label: str = "correlation",
    height: int | None = None,
    color: str = ACCENT,
) -> go.Figure:
    """Horizontal bars of the classes a unit promotes most (highest score at the top).

    Parameters
    ----------
    names : sequence of str, length n
    scores : sequence of float, length n
    score_label : str
        Axis title (what the score is).
    """
    s = check_1d("scores", "promoted_classes_figure", scores).astype(float)
    if len(s) != len(names):
        raise ParameterError(
            f"The 'scores' parameter of promoted_classes_figure must have one value per name "
            f"({len(names)}). Got {len(s)} instead."
        )
    order = np.argsort(s, kind="stable")
    bar = go.Bar(
        x=s[order],
        y=[str(names[i]) for i in order],
        orientation="h",
        marker_color=color,
        hovertemplate="%{y}: %{x:.3f}<extra></extra>",
    )
    h = height if height is not None else 70 + 20 * len(s)
    return styled_figure(
        [bar],
        dict(
            xaxis=dict(title=dict(text=score_label), zeroline=True, zerolinecolor="#c5ccd5"), yaxis=dict(showgrid=False)
        ),
        title=title,
        height=h,
    )


def tuning_curve_figure(
    table: pd.DataFrame,
    *,
    x: str,
    y: str = "activation",
    group: str | None = None,
    err: str | None = None,
    log_x: bool = True,
    title: str | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    height: int = 280,
) -> go.Figure:
    """A tuning curve: a unit's response as a function of one stimulus parameter.

    Parameters
    ----------
    table : pd.DataFrame
        Tidy rows with the columns named by ``x``, ``y`` and optionally ``group`` and ``err``.
    x : str
        Stimulus parameter column (e.g. ``freq_hz``, ``rate_hz``).
    y : str
        Response column.
    group : str, optional
        One line per value of this column (e.g. ``level_db``).
    err : str, optional
        Symmetric error column (e.g. a standard error) drawn as a band.
    log_x : bool
        Log-scaled x axis.
    """
    cols = [x, y] + ([group] if group else []) + ([err] if err else [])
    check_columns("table", "tuning_curve_figure", table, cols)
    traces = []
    groups = table.groupby(group, sort=True) if group else [(None, table)]
    for i, (g, df) in enumerate(groups):
        df = df.sort_values(x)
        color = PALETTE[i % len(PALETTE)]
        if isinstance(g, (int, float, np.integer, np.floating)):
            name = f"{group} = {float(g):g}"
        else:
            name = str(g) if g is not None else y
        xs, ys = df[x].to_numpy(dtype=float), df[y].to_numpy(dtype=float)
        if err:
            e = df[err].to_numpy(dtype=float)
            traces.append(
                go.Scatter(
                    x=np.concatenate([xs, xs[::-1]]),
                    y=np.concatenate([ys + e, (ys - e)[::-1]]),
                    fill="toself",
                    fillcolor=color,
                    opacity=0.15,
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines+markers",
                name=name,
                line=dict(color=color, width=1.8),
                marker=dict(size=5),
                hovertemplate=f"{x} %{{x:.4g}}: %{{y:.3g}}<extra>{name}</extra>",
            )
        )
    return styled_figure(
        traces,
        dict(
            xaxis=dict(type="log" if log_x else "linear", title=dict(text=x_label or x)),
            yaxis=dict(title=dict(text=y_label or y)),
            showlegend=group is not None,
        ),
        title=title,
        height=height,
    )
