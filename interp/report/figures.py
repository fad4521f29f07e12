"""Plotly figures with one house style, and their export to HTML, PNG, SVG and PDF.

Every figure of the toolkit is a function here that takes data (arrays or tidy tables) and
returns a :class:`plotly.graph_objects.Figure` styled by :func:`apply_house_style`; the dashboard,
the studies and the CLI all draw through these functions, and :func:`export_figure` writes any of
them to files (static formats are rendered by kaleido driving a Chromium-family browser).

Conventions
-----------
- Categories always get the same colour in every figure: :func:`category_colors` assigns a
  colour-blind-friendly palette in sorted category order.
- Units are numbered from 0; times are in seconds from the clip start; frequencies in Hz.
- Spectrograms are mel power in dB relative to the clip's peak (0 dB = loudest bin).

Examples
--------
>>> fig = layer_selectivity_figure(summary)            # doctest: +SKIP
>>> export_figure(fig, "reports/selectivity", formats=("html", "png"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from soundnet.errors import ParameterError

__all__ = [
    "EXPORT_FORMATS",
    "FONT_FAMILY",
    "PALETTE",
    "house_template",
    "apply_house_style",
    "category_colors",
    "layer_selectivity_figure",
    "category_layer_heatmap",
    "probe_accuracy_figure",
    "activation_histogram",
    "category_distributions",
    "clip_activation_figure",
    "spectrogram_figure",
    "head_predictions_figure",
    "promoted_classes_figure",
    "tuning_curve_figure",
    "find_browser",
    "figure_bytes",
    "export_figure",
]

#: Formats :func:`export_figure` writes.
EXPORT_FORMATS = ("html", "png", "svg", "pdf")
#: The font stack of every figure.
FONT_FAMILY = "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, sans-serif"
#: Qualitative palette for categories (Tableau 10, then Plotly's Dark24 for more).
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
    "#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86",
    "#EB663B", "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE",
    "#862A16", "#A777F1", "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038",
)
_INK = "#1f2933"
_MUTED = "#6b7785"
_GRID = "#e7ebf0"
_ACCENT = "#2563eb"
_TRACE = "#38e8c6"
_SPEC_SCALE = "Magma"


# --------------------------------------------------------------------------------------------
# house style
# --------------------------------------------------------------------------------------------
def _template_layout() -> dict[str, Any]:
    """The house template's layout as a plain dict (cheap: no plotly validation)."""
    axis = dict(showgrid=True, gridcolor=_GRID, gridwidth=1, zeroline=False, showline=True,
                linecolor="#c5ccd5", linewidth=1, ticks="outside", tickcolor="#c5ccd5", ticklen=4,
                title=dict(font=dict(size=11, color=_MUTED)), tickfont=dict(size=10, color=_MUTED),
                automargin=True)
    return dict(
        font=dict(family=FONT_FAMILY, size=12, color=_INK),
        title=dict(x=0.0, xanchor="left", xref="paper", y=0.98, yanchor="top", font=dict(size=13, color=_INK)),
        paper_bgcolor="white", plot_bgcolor="white",
        colorway=list(PALETTE),
        xaxis=axis, yaxis=dict(axis),
        legend=dict(font=dict(size=10), bgcolor="rgba(255,255,255,0.8)", borderwidth=0,
                    itemclick="toggleothers", itemdoubleclick="toggle"),
        hoverlabel=dict(font=dict(family=FONT_FAMILY, size=11), bgcolor="white", bordercolor="#c5ccd5"),
        margin=dict(l=56, r=16, t=36, b=44),
        coloraxis=dict(colorbar=dict(thickness=10, outlinewidth=0, tickfont=dict(size=10))),
        bargap=0.08,
    )


def house_template() -> go.layout.Template:
    """The toolkit's plotly template (white, light grid, small type, left-aligned titles).

    Returns a fresh object each call; nothing is registered globally.
    """
    return go.layout.Template(layout=_template_layout())


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``extra`` wins; neither argument is modified."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _figure(data: Sequence[Any], layout: Mapping[str, Any], *, title: str | None = None,
            height: int | None = None, width: int | None = None) -> go.Figure:
    """Build a house-style figure in one pass.

    The traces are plotly objects (validated when built); the layout dict is written here and
    not re-validated (that would cost about 10 ms a figure, and a unit page draws a dozen;
    the tests re-validate every figure function's output instead).
    """
    lay: dict[str, Any] = {"template": {"layout": _template_layout()}}
    if title is not None:
        lay["title"] = {"text": title}
    if height is not None:
        lay["height"] = int(height)
    if width is not None:
        lay["width"] = int(width)
    return go.Figure(data=list(data), layout=_merge(lay, layout), _validate=False)


def apply_house_style(
    fig: go.Figure, *, title: str | None = None, height: int | None = None, width: int | None = None
) -> go.Figure:
    """Apply :func:`house_template` (and optionally a title and size) to any ``fig`` in place.

    The figure functions of this module are already styled; use this for figures built elsewhere
    (e.g. in a study) so that they match.

    Parameters
    ----------
    fig : go.Figure
    title : str, optional
    height, width : int, optional
        In pixels.

    Returns
    -------
    go.Figure
        The same figure.
    """
    lay: dict[str, Any] = {"template": house_template()}
    if title is not None:
        lay["title_text"] = title
    if height is not None:
        lay["height"] = int(height)
    if width is not None:
        lay["width"] = int(width)
    fig.update_layout(**lay)
    return fig


def category_colors(categories: Sequence[str] | np.ndarray | pd.Series) -> dict[str, str]:
    """A colour for each category, stable across figures: palette order = sorted names.

    Parameters
    ----------
    categories : sequence of str
        Category names (repeats are fine).

    Returns
    -------
    dict of str to str
        ``{category: "#rrggbb"}``.
    """
    names = sorted({str(c) for c in categories})
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _check_1d(name: str, func: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ParameterError(f"The {name!r} parameter of {func} must be 1-D. Got shape {arr.shape} instead.")
    return arr


def _check_columns(name: str, func: str, df: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ParameterError(f"The {name!r} parameter of {func} must be a DataFrame. Got {type(df).__name__} instead.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ParameterError(
            f"The {name!r} parameter of {func} must have columns {list(columns)}. "
            f"Got {list(df.columns)} instead (missing {missing}).")


def _layer_order(layers: Sequence[str]) -> list[str]:
    """Layers in forward order (known SoundNet layers first, others after, as given)."""
    from soundnet.model import LAYERS

    known = [layer for layer in LAYERS if layer in set(layers)]
    return known + [layer for layer in dict.fromkeys(layers) if layer not in LAYERS]


# --------------------------------------------------------------------------------------------
# overview
# --------------------------------------------------------------------------------------------
def layer_selectivity_figure(summary: pd.DataFrame, *, title: str | None = "Selective units per layer",
                             height: int = 300) -> go.Figure:
    """Fraction of selective units per layer, as bars annotated with the counts.

    Parameters
    ----------
    summary : pd.DataFrame
        Columns ``layer``, ``n_units``, ``n_selective`` (one row per layer).
    title : str, optional
    height : int (in pixels)
    """
    _check_columns("summary", "layer_selectivity_figure", summary, ("layer", "n_units", "n_selective"))
    df = summary.set_index("layer").loc[_layer_order(list(summary["layer"]))].reset_index()
    frac = (df["n_selective"] / df["n_units"].where(df["n_units"] > 0)).to_numpy(dtype=float)
    top = max(0.05, float(np.nanmax(frac, initial=0.0))) * 1.18
    bar = go.Bar(
        x=list(df["layer"]), y=frac, marker_color=_ACCENT,
        text=[f"{int(s)}/{int(n)}" for s, n in zip(df["n_selective"], df["n_units"])],
        textposition="outside", textfont=dict(size=10, color=_MUTED), cliponaxis=False,
        hovertemplate="%{x}: %{y:.1%} selective (%{text})<extra></extra>")
    return _figure([bar], dict(yaxis=dict(title_text="fraction selective", tickformat=".0%", range=[0, top]),
                               xaxis=dict(showgrid=False)), title=title, height=height)


def category_layer_heatmap(counts: pd.DataFrame, *, title: str | None = "Selective units by category and layer",
                           height: int | None = None, normalize: bool = False) -> go.Figure:
    """Heatmap of selective-unit counts, categories (rows) by layers (columns).

    Parameters
    ----------
    counts : pd.DataFrame
        Index: category; columns: layer names; values: counts of units selective for the category.
    title : str, optional
    height : int (in pixels), optional
        Default grows with the number of categories.
    normalize : bool
        Colour each cell by its fraction of the layer's units (``counts.attrs["n_units"]`` maps
        layer to unit count); the text stays the count.
    """
    if not isinstance(counts, pd.DataFrame):
        raise ParameterError(f"The 'counts' parameter of category_layer_heatmap must be a DataFrame. "
                             f"Got {type(counts).__name__} instead.")
    layers = _layer_order([str(c) for c in counts.columns])
    df = counts[layers].sort_index(ascending=False)
    z = df.to_numpy(dtype=float)
    text = [[f"{int(v)}" if v > 0 else "" for v in row] for row in z]
    if normalize:
        n_units = counts.attrs.get("n_units", {})
        denom = np.array([float(n_units.get(layer, np.nan)) for layer in layers])
        z = z / denom[None, :]
    hm = go.Heatmap(
        z=z, x=layers, y=[str(i) for i in df.index], text=text, texttemplate="%{text}",
        textfont=dict(size=10), colorscale="Blues", xgap=2, ygap=2,
        colorbar=dict(title=dict(text="fraction" if normalize else "units", side="right"), thickness=10),
        hovertemplate="%{y} · %{x}: %{text} selective units<extra></extra>")
    h = height if height is not None else 90 + 26 * max(1, len(df))
    return _figure([hm], dict(xaxis=dict(side="top", showgrid=False, showline=False, ticks=""),
                              yaxis=dict(showgrid=False, showline=False, ticks=""),
                              margin=dict(t=64), title=dict(y=0.995)), title=title, height=h)


def probe_accuracy_figure(probes: pd.DataFrame, *, chance: float | None = None,
                          title: str | None = "Linear probe accuracy per layer", height: int = 300) -> go.Figure:
    """Probe accuracy per layer with its confidence interval.

    Parameters
    ----------
    probes : pd.DataFrame
        Columns ``layer``, ``accuracy``, ``ci_low``, ``ci_high`` (fractions in [0, 1]); an optional
        ``probe`` (or ``target``, ``task``) column draws one line per probe.
    chance : float, optional
        Chance level drawn as a dashed line.
    """
    _check_columns("probes", "probe_accuracy_figure", probes, ("layer", "accuracy", "ci_low", "ci_high"))
    group = next((c for c in ("probe", "target", "task") if c in probes.columns), None)
    groups = probes.groupby(group, sort=True) if group else [("accuracy", probes)]
    order = _layer_order([str(x) for x in probes["layer"]])
    traces = []
    for i, (name, df) in enumerate(groups):
        df = df.set_index("layer").reindex([layer for layer in order if layer in set(df["layer"])]).reset_index()
        color = PALETTE[i % len(PALETTE)]
        traces.append(go.Scatter(
            x=list(df["layer"]), y=df["accuracy"].to_numpy(dtype=float), mode="lines+markers", name=str(name),
            line=dict(color=color, width=2), marker=dict(size=7),
            error_y=dict(type="data", symmetric=False, array=(df["ci_high"] - df["accuracy"]).to_numpy(dtype=float),
                         arrayminus=(df["accuracy"] - df["ci_low"]).to_numpy(dtype=float), color=color,
                         thickness=1.2, width=4),
            hovertemplate="%{x}: %{y:.1%}<extra>" + str(name) + "</extra>"))
    lay: dict[str, Any] = dict(yaxis=dict(title_text="accuracy", tickformat=".0%", rangemode="tozero"),
                               xaxis=dict(categoryorder="array", categoryarray=order), showlegend=group is not None)
    if chance is not None:
        lay["shapes"] = [dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=float(chance), y1=float(chance),
                              line=dict(color=_MUTED, dash="dash", width=1))]
        lay["annotations"] = [dict(xref="paper", x=1, yref="y", y=float(chance), text="chance", showarrow=False,
                                   xanchor="right", yanchor="bottom", font=dict(size=10, color=_MUTED))]
    return _figure(traces, lay, title=title, height=height)


# --------------------------------------------------------------------------------------------
# unit
# --------------------------------------------------------------------------------------------
def activation_histogram(values: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[str], *,
                         n_bins: int = 40, stat: str = "max", title: str | None = None,
                         height: int = 300, colors: Mapping[str, str] | None = None) -> go.Figure:
    """Histogram of one unit's per-clip activation, stacked and coloured by category.

    Parameters
    ----------
    values : array, shape (n_clips,)
        The unit's activation statistic per clip (NaN values are left out).
    labels : array of str, shape (n_clips,)
        Each clip's category.
    n_bins : int
    stat : str
        Name of the statistic, for the axis title.
    colors : mapping, optional
        Category colours (default :func:`category_colors` of ``labels``).
    """
    v = _check_1d("values", "activation_histogram", values).astype(float)
    lab = _check_1d("labels", "activation_histogram", labels).astype(str)
    if len(v) != len(lab):
        raise ParameterError(f"The 'labels' parameter of activation_histogram must have one entry per value "
                             f"({len(v)}). Got {len(lab)} instead.")
    if n_bins < 1:
        raise ParameterError(f"The 'n_bins' parameter of activation_histogram must be >= 1. Got {n_bins} instead.")
    colors = dict(colors or category_colors(lab))
    finite = v[np.isfinite(v)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, n_bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    traces = []
    for cat in sorted(set(lab)):
        counts, _ = np.histogram(v[lab == cat], bins=edges)
        traces.append(go.Bar(x=centres, y=counts, width=np.diff(edges), name=cat,
                             marker=dict(color=colors.get(cat, _MUTED), line=dict(width=0)),
                             hovertemplate=cat + ": %{y} clips at %{x:.3g}<extra></extra>"))
    return _figure(traces, dict(barmode="stack", bargap=0,
                                legend=dict(orientation="v", x=1.0, xanchor="left", y=1),
                                xaxis=dict(title_text=f"activation ({stat} over time)"),
                                yaxis=dict(title_text="clips")), title=title, height=height)


def category_distributions(values: np.ndarray | Sequence[float], labels: np.ndarray | Sequence[str], *,
                           stat: str = "max", title: str | None = None, height: int | None = None,
                           colors: Mapping[str, str] | None = None) -> go.Figure:
    """Per-category distribution of one unit's activation: box plus every clip, sorted by median.

    Parameters
    ----------
    values : array, shape (n_clips,)
    labels : array of str, shape (n_clips,)
    stat : str
        Name of the statistic, for the axis title.
    colors : mapping, optional
    """
    v = _check_1d("values", "category_distributions", values).astype(float)
    lab = _check_1d("labels", "category_distributions", labels).astype(str)
    if len(v) != len(lab):
        raise ParameterError(f"The 'labels' parameter of category_distributions must have one entry per value "
                             f"({len(v)}). Got {len(lab)} instead.")
    colors = dict(colors or category_colors(lab))

    def median(c: str) -> float:
        x = v[(lab == c) & np.isfinite(v)]
        return float(np.median(x)) if len(x) else -np.inf

    cats = sorted(set(lab), key=lambda c: (median(c), c))
    traces = []
    for cat in cats:
        x = v[lab == cat]
        traces.append(go.Box(
            x=x, y=[cat] * len(x), name=cat, orientation="h", boxpoints="all", jitter=0.5, pointpos=0,
            marker=dict(size=4, opacity=0.65, color=colors.get(cat, _MUTED)),
            line=dict(width=1.2, color=colors.get(cat, _MUTED)), fillcolor="rgba(0,0,0,0)",
            hoveron="points", hovertemplate=cat + ": %{x:.3g}<extra></extra>", showlegend=False))
    h = height if height is not None else max(220, 60 + 24 * len(cats))
    return _figure(traces, dict(xaxis=dict(title_text=f"activation ({stat} over time)"),
                                yaxis=dict(showgrid=False, categoryorder="array", categoryarray=cats)),
                   title=title, height=h)


def _hz_label(f: float) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"


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


def _spectrogram_trace(db: np.ndarray, times_s: np.ndarray, freqs_hz: np.ndarray, *,
                       zmin: float, showscale: bool, max_columns: int | None = None) -> go.Heatmap:
    z, t = _display_db(db, times_s, max_columns)
    return go.Heatmap(
        z=z, x=t, y=np.arange(len(freqs_hz), dtype=np.int16),
        colorscale=_SPEC_SCALE, zmin=zmin, zmax=0.0, showscale=showscale, name="spectrogram",
        colorbar=dict(title=dict(text="dB", side="right"), thickness=8, x=1.0, xpad=44, len=0.9),
        hovertemplate="%{x:.2f} s · %{z} dB<extra></extra>")


def _mel_ticks(freqs_hz: np.ndarray) -> tuple[list[float], list[str]]:
    targets = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000) if freqs_hz[0] <= f <= freqs_hz[-1]]
    pos = np.interp(targets, freqs_hz, np.arange(len(freqs_hz)))
    return [float(p) for p in pos], [_hz_label(f) for f in targets]


def spectrogram_figure(spec: Any, *, title: str | None = None, height: int = 260,
                       zmin: float = -80.0, max_columns: int | None = 1200) -> go.Figure:
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
    hm = _spectrogram_trace(np.asarray(spec.db), np.asarray(spec.times_s), fr, zmin=zmin, showscale=True,
                            max_columns=max_columns)
    tv, tt = _mel_ticks(fr) if len(fr) > 1 else ([], [])
    return _figure([hm], dict(yaxis=dict(title_text="Hz (mel)", tickvals=tv, ticktext=tt, showgrid=False),
                              xaxis=dict(title_text="time (s)", showgrid=False), margin=dict(r=70)),
                   title=title, height=height)


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
    t = _check_1d("times_s", "clip_activation_figure", times_s).astype(np.float64)
    a = _check_1d("acts", "clip_activation_figure", acts).astype(np.float64)
    if len(t) != len(a):
        raise ParameterError(f"The 'acts' parameter of clip_activation_figure must have one value per time "
                             f"({len(t)}). Got {len(a)} instead.")
    db = np.asarray(spec.db)
    st = np.asarray(spec.times_s)
    fr = np.asarray(spec.freqs_hz)
    traces: list[Any] = [_spectrogram_trace(db, st, fr, zmin=zmin, showscale=show_colorbar, max_columns=max_columns)]
    td, ad = _downsample_max(t, a, max_points)
    traces.append(go.Scatter(
        x=td.astype(np.float32), y=ad.astype(np.float32), yaxis="y2", mode="lines", name="activation",
        line=dict(color=_TRACE, width=1.8, shape="linear" if len(td) > 60 else "hv"),
        hovertemplate="%{x:.3f} s · act %{y:.3g}<extra></extra>", showlegend=False))
    shapes = []
    if window_s is not None:
        shapes.append(dict(type="rect", xref="x", yref="paper", x0=float(window_s[0]), x1=float(window_s[1]),
                           y0=0, y1=1, fillcolor="white", opacity=0.16, layer="above",
                           line=dict(color="white", width=1, dash="dot")))
    if peak_s is not None and len(t):
        j = int(np.argmin(np.abs(t - float(peak_s))))
        traces.append(go.Scatter(
            x=[float(t[j])], y=[float(a[j])], yaxis="y2", mode="markers", showlegend=False, name="peak",
            marker=dict(symbol="diamond", size=9, color="white", line=dict(color=_INK, width=1)),
            hovertemplate="peak %{x:.3f} s · %{y:.3g}<extra></extra>"))
    tv, tt = _mel_ticks(fr) if len(fr) > 1 else ([], [])
    x_end = float(max(st[-1] if len(st) else 0.0, t[-1] if len(t) else 0.0))
    x_start = float(min(st[0] if len(st) else 0.0, t[0] if len(t) else 0.0, 0.0 if st[0] < 1.0 else st[0]))
    if act_range is None:
        top = float(np.nanmax(a)) if len(a) else 1.0
        act_range = (0.0, top if top > 0 else 1.0)
    lo, hi = act_range
    pad = (hi - lo) * 0.06 or 1.0
    lay: dict[str, Any] = dict(
        xaxis=dict(range=[x_start, x_end], showgrid=False, title_text=None if compact else "time (s)",
                   ticksuffix=" s" if compact else ""),
        yaxis=dict(tickvals=tv, ticktext=tt, showgrid=False, title_text=None if compact else "Hz (mel)",
                   range=[-0.5, len(fr) - 0.5]),
        yaxis2=dict(overlaying="y", side="right", showgrid=False, range=[lo - pad, hi + pad], zeroline=False,
                    title_text=None if compact else "activation", tickfont=dict(size=9, color="#119c82"),
                    showline=False, nticks=4 if compact else 6, tickformat=".2~g"),
        hovermode="closest", shapes=shapes,
    )
    if compact:
        lay["margin"] = dict(l=38, r=38, t=26 if title else 6, b=24)
        lay["title"] = dict(font=dict(size=11))
    elif show_colorbar:
        lay["margin"] = dict(r=110)
    return _figure(traces, lay, title=title, height=height)


def head_predictions_figure(times_s: np.ndarray, probs: np.ndarray, names: Sequence[str], *, k: int = 8,
                            title: str | None = None, height: int | None = None) -> go.Figure:
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
    t = _check_1d("times_s", "head_predictions_figure", times_s).astype(float)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(t) or p.shape[0] != len(names):
        raise ParameterError(f"The 'probs' parameter of head_predictions_figure must be (n_classes={len(names)}, "
                             f"n_frames={len(t)}). Got {p.shape} instead.")
    if k < 1:
        raise ParameterError(f"The 'k' parameter of head_predictions_figure must be >= 1. Got {k} instead.")
    order = np.argsort(-p.mean(axis=1), kind="stable")[:k][::-1]
    labels = [str(names[i]) for i in order]
    z = p[order]
    h = height if height is not None else 70 + 22 * len(labels)
    if len(t) == 1:  # one frame: bars instead of a one-column heatmap
        bar = go.Bar(x=z[:, 0], y=labels, orientation="h", marker_color=_ACCENT,
                     hovertemplate="%{y}: %{x:.1%}<extra></extra>")
        return _figure([bar], dict(xaxis=dict(title_text="probability", tickformat=".0%"),
                                   yaxis=dict(showgrid=False)), title=title, height=h)
    fmt = ".0%" if float(np.max(z, initial=0.0)) >= 0.1 else ".1%"
    hm = go.Heatmap(z=z, x=t, y=labels, colorscale="Blues", zmin=0, ygap=1,
                    colorbar=dict(title=dict(text="p", side="right"), thickness=8, tickformat=fmt),
                    hovertemplate="%{y} · %{x:.1f} s: %{z:.1%}<extra></extra>")
    return _figure([hm], dict(xaxis=dict(title_text="time (s)", showgrid=False), yaxis=dict(showgrid=False)),
                   title=title, height=h)


def promoted_classes_figure(names: Sequence[str], scores: Sequence[float], *, title: str | None = None,
                            score_label: str = "correlation", height: int | None = None,
                            color: str = _ACCENT) -> go.Figure:
    """Horizontal bars of the classes a unit promotes most (highest score at the top).

    Parameters
    ----------
    names : sequence of str, length n
    scores : sequence of float, length n
    score_label : str
        Axis title (what the score is).
    """
    s = _check_1d("scores", "promoted_classes_figure", scores).astype(float)
    if len(s) != len(names):
        raise ParameterError(f"The 'scores' parameter of promoted_classes_figure must have one value per name "
                             f"({len(names)}). Got {len(s)} instead.")
    order = np.argsort(s, kind="stable")
    bar = go.Bar(x=s[order], y=[str(names[i]) for i in order], orientation="h", marker_color=color,
                 hovertemplate="%{y}: %{x:.3f}<extra></extra>")
    h = height if height is not None else 70 + 20 * len(s)
    return _figure([bar], dict(xaxis=dict(title_text=score_label, zeroline=True, zerolinecolor="#c5ccd5"),
                               yaxis=dict(showgrid=False)), title=title, height=h)


def tuning_curve_figure(table: pd.DataFrame, *, x: str, y: str = "activation", group: str | None = None,
                        err: str | None = None, log_x: bool = True, title: str | None = None,
                        x_label: str | None = None, y_label: str | None = None, height: int = 280) -> go.Figure:
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
    _check_columns("table", "tuning_curve_figure", table, cols)
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
            traces.append(go.Scatter(x=np.concatenate([xs, xs[::-1]]), y=np.concatenate([ys + e, (ys - e)[::-1]]),
                                     fill="toself", fillcolor=color, opacity=0.15, line=dict(width=0),
                                     hoverinfo="skip", showlegend=False))
        traces.append(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, line=dict(color=color, width=1.8),
                                 marker=dict(size=5), hovertemplate=f"{x} %{{x:.4g}}: %{{y:.3g}}<extra>{name}</extra>"))
    return _figure(traces, dict(xaxis=dict(type="log" if log_x else "linear", title_text=x_label or x),
                                yaxis=dict(title_text=y_label or y), showlegend=group is not None),
                   title=title, height=height)


# --------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------
_BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser(browser_path: str | os.PathLike | None = None) -> str | None:
    """The Chromium-family executable kaleido should drive.

    Order: ``browser_path``; the ``BROWSER_PATH`` environment variable (kaleido's and
    choreographer's own override); the first of ``chromium``, ``chromium-browser``,
    ``google-chrome``, ``chrome`` on ``PATH``. ``None`` lets kaleido search (and fail with its
    own message).
    """
    if browser_path is not None:
        p = Path(browser_path)
        if not p.is_file():
            raise ParameterError(f"The 'browser_path' parameter of find_browser must be an executable file. "
                                 f"Got {str(browser_path)!r} instead.")
        return str(p)
    env = os.environ.get("BROWSER_PATH")
    if env and Path(env).is_file():
        return env
    for name in _BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _render_static(fig: go.Figure, formats: Sequence[str], *, width: int | None, height: int | None,
                   scale: float, browser_path: str | None, timeout_s: float) -> dict[str, bytes]:
    """Render ``fig`` once per static format in a single kaleido browser session."""
    import kaleido

    spec = fig.to_dict()
    w = width or fig.layout.width or 900
    h = height or fig.layout.height or 500
    kopts: dict[str, Any] = {"mathjax": False, "timeout": timeout_s}
    if browser_path:
        kopts["path"] = browser_path

    async def run() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        async with kaleido.Kaleido(**kopts) as k:
            for fmt in formats:
                out[fmt] = await k.calc_fig(spec, opts={"format": fmt, "width": w, "height": h, "scale": scale})
        return out

    # run in a private thread so that a caller with a running event loop (Jupyter, async servers)
    # is not disturbed
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(run())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    th = threading.Thread(target=target, name="figure-export", daemon=True)
    th.start()
    th.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _check_formats(formats: Sequence[str], func: str) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    fmts = tuple(str(f).lower() for f in formats)
    bad = [f for f in fmts if f not in EXPORT_FORMATS]
    if bad or not fmts:
        raise ParameterError(f"The 'formats' parameter of {func} must be a non-empty subset of {EXPORT_FORMATS}. "
                             f"Got {tuple(formats)!r} instead.")
    return tuple(dict.fromkeys(fmts))


def figure_bytes(
    fig: go.Figure,
    formats: Sequence[str] = EXPORT_FORMATS,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
    browser_path: str | os.PathLike | None = None,
    timeout_s: float = 90.0,
) -> dict[str, bytes]:
    """Render a figure in memory, one ``bytes`` per format.

    Parameters
    ----------
    fig : go.Figure
    formats : sequence of {"html", "png", "svg", "pdf"}
    width, height : int (in pixels), optional
        Default: the figure's own size, else 900 x 500.
    scale : float
        Pixel density of PNG output.
    browser_path : str or path, optional
        Chromium-family executable (see :func:`find_browser`).
    timeout_s : float (in seconds)
        Per-image rendering timeout.

    Returns
    -------
    dict of str to bytes
        ``{format: content}``; HTML is self-contained (plotly.js inlined, works offline).
    """
    fmts = _check_formats(formats, "figure_bytes")
    out: dict[str, bytes] = {}
    if "html" in fmts:
        out["html"] = fig.to_html(include_plotlyjs=True, full_html=True,
                                  config={"displaylogo": False}).encode("utf-8")
    static = [f for f in fmts if f != "html"]
    if static:
        out.update(_render_static(fig, static, width=width, height=height, scale=scale,
                                  browser_path=find_browser(browser_path), timeout_s=timeout_s))
    return {f: out[f] for f in fmts}


def export_figure(
    fig: go.Figure,
    path_stem: str | os.PathLike,
    formats: Sequence[str] = EXPORT_FORMATS,
    *,
    width: int | None = None,
    height: int | None = None,
    scale: float = 2.0,
    browser_path: str | os.PathLike | None = None,
) -> dict[str, Path]:
    """Write ``fig`` to ``<path_stem>.<format>`` for each format, atomically.

    Parameters
    ----------
    fig : go.Figure
    path_stem : str or path
        Output path without extension (its folder is created).
    formats : sequence of {"html", "png", "svg", "pdf"}
    width, height : int (in pixels), optional
    scale : float
        Pixel density of PNG output.
    browser_path : str or path, optional
        Chromium-family executable for the static formats (see :func:`find_browser`).

    Returns
    -------
    dict of str to Path
        ``{format: written file}``.
    """
    fmts = _check_formats(formats, "export_figure")
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    blobs = figure_bytes(fig, fmts, width=width, height=height, scale=scale, browser_path=browser_path)
    written: dict[str, Path] = {}
    for fmt, blob in blobs.items():
        target = stem.with_name(f"{stem.name}.{fmt}")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        written[fmt] = target
    return written
