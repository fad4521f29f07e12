"""The house style: palette, fonts, layout template, category colours, label helpers.

Every figure of the toolkit goes through :func:`apply_house_style` (or :func:`styled_figure`),
so that the dashboard, the studies and the exports look alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from soundnet.errors import ParameterError
from soundnet.options import choices
from soundnet.specs import LAYERS

__all__ = [
    "ExportFormat",
    "EXPORT_FORMATS",
    "FONT_FAMILY",
    "PALETTE",
    "house_template",
    "apply_house_style",
    "category_colors",
    "hz_label",
]

#: A file format :func:`~interp.report.figures.export.export_figure` writes.
ExportFormat = Literal["html", "png", "svg", "pdf"]
#: Every export format, in the order files are written.
EXPORT_FORMATS: tuple[ExportFormat, ...] = choices(ExportFormat)
#: The font stack of every figure.
FONT_FAMILY = "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, sans-serif"
#: Qualitative palette for categories (Tableau 10, then Plotly's Dark24 for more).
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
    "#2E91E5",
    "#E15F99",
    "#1CA71C",
    "#FB0D0D",
    "#DA16FF",
    "#222A2A",
    "#B68100",
    "#750D86",
    "#EB663B",
    "#511CFB",
    "#00A08B",
    "#FB00D1",
    "#FC0080",
    "#B2828D",
    "#6C7C32",
    "#778AAE",
    "#862A16",
    "#A777F1",
    "#620042",
    "#1616A7",
    "#DA60CA",
    "#6C4516",
    "#0D2A63",
    "#AF0038",
)
INK = "#1f2933"
MUTED = "#6b7785"
GRID = "#e7ebf0"
ACCENT = "#2563eb"
TRACE = "#38e8c6"
SPEC_SCALE = "Magma"


# --------------------------------------------------------------------------------------------
# house style
# --------------------------------------------------------------------------------------------
def template_layout() -> dict[str, Any]:
    """The house template's layout as a plain dict (cheap: no plotly validation)."""
    axis = dict(
        showgrid=True,
        gridcolor=GRID,
        gridwidth=1,
        zeroline=False,
        showline=True,
        linecolor="#c5ccd5",
        linewidth=1,
        ticks="outside",
        tickcolor="#c5ccd5",
        ticklen=4,
        title=dict(font=dict(size=11, color=MUTED)),
        tickfont=dict(size=10, color=MUTED),
        automargin=True,
    )
    return dict(
        font=dict(family=FONT_FAMILY, size=12, color=INK),
        title=dict(x=0.0, xanchor="left", xref="paper", y=0.98, yanchor="top", font=dict(size=13, color=INK)),
        paper_bgcolor="white",
        plot_bgcolor="white",
        colorway=list(PALETTE),
        xaxis=axis,
        yaxis=dict(axis),
        legend=dict(
            font=dict(size=10),
            bgcolor="rgba(255,255,255,0.8)",
            borderwidth=0,
            itemclick="toggleothers",
            itemdoubleclick="toggle",
        ),
        hoverlabel=dict(font=dict(family=FONT_FAMILY, size=11), bgcolor="white", bordercolor="#c5ccd5"),
        margin=dict(l=56, r=16, t=36, b=44),
        coloraxis=dict(colorbar=dict(thickness=10, outlinewidth=0, tickfont=dict(size=10))),
        bargap=0.08,
    )


def house_template() -> go.layout.Template:
    """The toolkit's plotly template (white, light grid, small type, left-aligned titles).

    Returns a fresh object each call; nothing is registered globally.
    """
    return go.layout.Template(layout=template_layout())


def merge_layout(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: ``extra`` wins; neither argument is modified."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = merge_layout(dict(out[k]), v)
        else:
            out[k] = v
    return out


def styled_figure(
    data: Sequence[Any],
    layout: Mapping[str, Any],
    *,
    title: str | None = None,
    height: int | None = None,
    width: int | None = None,
) -> go.Figure:
    """Build a house-style figure in one pass.

    The traces are plotly objects (validated when built); the layout dict is written here and
    not re-validated (that would cost about 10 ms a figure, and a unit page draws a dozen;
    the tests re-validate every figure function's output instead).
    """
    lay: dict[str, Any] = {"template": {"layout": template_layout()}}
    if title is not None:
        lay["title"] = {"text": title}
    if height is not None:
        lay["height"] = int(height)
    if width is not None:
        lay["width"] = int(width)
    return go.Figure(data=list(data), layout=merge_layout(lay, layout), _validate=False)


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
        lay["title"] = dict(text=title)
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


def check_1d(name: str, func: str, x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ParameterError(f"The {name!r} parameter of {func} must be 1-D. Got shape {arr.shape} instead.")
    return arr


def category_codes(name: str, func: str, labels: Any, n: int) -> tuple[list[str], np.ndarray]:
    """Each entry's category as an integer code: ``(names, codes)`` with ``names[codes[i]]`` the
    ``i``-th label as a string, ``names`` sorted and only those present.

    A :class:`pandas.Categorical` (or a Series of that dtype) is used as it is, without comparing
    a million strings per category; anything else is taken 1-D and as strings (missing values
    become ``"nan"``, as ``astype(str)`` writes them).

    Raises
    ------
    ParameterError
        If ``labels`` is not 1-D or does not have ``n`` entries.
    """
    if isinstance(labels, pd.Series) and isinstance(labels.dtype, pd.CategoricalDtype):
        labels = labels.array
    if isinstance(labels, pd.Categorical):
        cat = labels
    else:
        cat = pd.Categorical(check_1d(name, func, labels).astype(str))
    if len(cat) != n:
        raise ParameterError(
            f"The {name!r} parameter of {func} must have one entry per value ({n}). Got {len(cat)} instead."
        )
    names = [str(c) for c in cat.categories]
    codes = np.asarray(cat.codes, dtype=np.int64)
    if (codes < 0).any():  # a missing label in a Categorical
        names.append("nan")
        codes = np.where(codes < 0, len(names) - 1, codes)
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    kept = sorted(present, key=lambda i: names[i])
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[kept] = np.arange(len(kept))
    return [names[i] for i in kept], remap[codes]


def check_columns(name: str, func: str, df: pd.DataFrame, columns: Sequence[str]) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ParameterError(f"The {name!r} parameter of {func} must be a DataFrame. Got {type(df).__name__} instead.")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ParameterError(
            f"The {name!r} parameter of {func} must have columns {list(columns)}. "
            f"Got {list(df.columns)} instead (missing {missing})."
        )


def layer_order(layers: Sequence[str]) -> list[str]:
    """Layers in forward order (known SoundNet layers first, others after, as given)."""
    known = [layer for layer in LAYERS if layer in set(layers)]
    return known + [layer for layer in dict.fromkeys(layers) if layer not in LAYERS]


def hz_label(f: float) -> str:
    return f"{f / 1000:g}k" if f >= 1000 else f"{f:g}"
