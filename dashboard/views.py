"""Figures and components shared by the pages and the export route.

Each ``*_figure`` function builds one named figure of a unit, a clip or the overview from a
:class:`dashboard.data.RunData` through :mod:`interp.report.figures`; :func:`unit_figure`,
:func:`clip_figure` and :func:`overview_figure` look them up by the names the export URLs use,
so a downloaded file is exactly the figure on the page.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ids
from dashboard.data import RunData
from interp.report import figures as F
from soundnet.geometry import frames_to_window, time_to_frames
from soundnet.labels import head_labels, softmax
from soundnet.model import HEAD_LAYERS

__all__ = [
    "EXPORT_FORMATS",
    "TOP_K",
    "unit_figure",
    "clip_figure",
    "overview_figure",
    "unit_figure_names",
    "export_links",
    "label_chip",
    "clip_card",
    "card",
    "fmt_num",
    "fmt_p",
]

EXPORT_FORMATS = F.EXPORT_FORMATS
#: Top clips shown on a unit page.
TOP_K = 12
_HEAD_TITLE = {"conv8": "objects (ImageNet)", "conv8_2": "places (Places2)"}


# --------------------------------------------------------------------------------------------
# formatting
# --------------------------------------------------------------------------------------------
def fmt_num(v: Any, digits: int = 3) -> str:
    """A number for display ('–' for NaN)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(x) else f"{x:.{digits}g}"


def fmt_p(v: Any) -> str:
    """A p- or q-value for display."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(x):
        return "–"
    return f"{x:.1e}" if x < 1e-3 else f"{x:.3f}"


# --------------------------------------------------------------------------------------------
# unit figures
# --------------------------------------------------------------------------------------------
def histogram_figure(data: RunData, layer: str, unit: int, *, title: str | None = None) -> go.Figure:
    """Histogram of the unit's per-clip activation, stacked by category."""
    v = data.unit_values(layer, unit)
    return F.activation_histogram(
        v["value"].to_numpy(), v["label"].to_numpy(), stat=data.stat, colors=data.colors, title=title, height=300
    )


def distributions_figure(data: RunData, layer: str, unit: int, *, title: str | None = None) -> go.Figure:
    """Per-category distributions of the unit's activation, sorted by median."""
    v = data.unit_values(layer, unit)
    return F.category_distributions(
        v["value"].to_numpy(), v["label"].to_numpy(), stat=data.stat, colors=data.colors, title=title
    )


def clip_trace_figure(
    data: RunData, layer: str, unit: int, rank: int, *, compact: bool = True, top: pd.DataFrame | None = None
) -> go.Figure | None:
    """The unit's ``rank``-th top clip: spectrogram + activation trace + peak window."""
    top = data.top_clips(layer, unit, k=TOP_K) if top is None else top
    if not 0 <= rank < len(top):
        return None
    row = top.iloc[rank]
    cid = str(row["clip_id"])
    win = data.view_window(cid, float(row["peak_s"]))
    spec = data.spectrogram(cid, window_s=win)
    times, acts = data.traces(cid, layer, window_s=win)
    hi = float(top["value"].max()) if len(top) else 1.0
    title = None if compact else f"{layer} unit {unit} · #{rank + 1} {row['name']} ({row['label']})"
    return F.clip_activation_figure(
        spec,
        times,
        acts[int(unit)],
        peak_s=float(row["peak_s"]),
        window_s=(float(row["start_s"]), float(row["end_s"])),
        act_range=(0.0, hi if hi > 0 else 1.0),
        compact=compact,
        title=title,
        height=170 if compact else 320,
        max_columns=260 if compact else 1200,
        show_colorbar=not compact,
    )


def promoted_figure(data: RunData, layer: str, unit: int, head: str) -> go.Figure | None:
    """The head classes that rise with the unit (Pearson r across clips)."""
    t = data.promoted(layer, unit, head)
    if t.empty:
        return None
    color = "#4e79a7" if head == "conv8" else "#59a14f"
    fig = F.promoted_classes_figure(
        list(t["class_name"]),
        t["r"].to_numpy(),
        score_label="r across clips",
        title=_HEAD_TITLE.get(head, head),
        color=color,
    )
    return fig


def tuning_figures(data: RunData, layer: str, unit: int) -> dict[str, go.Figure]:
    """Tuning curves from the attached probes run: ``{"tuning-frequency": ..., "tuning-rate": ...}``."""
    out: dict[str, go.Figure] = {}
    t = data.tuning(layer, unit)
    if t is None:
        return out
    tones = t[t["kind"] == "tone"].dropna(subset=["freq_hz"])
    if len(tones):
        g = tones.groupby(["freq_hz", "level_db"], as_index=False)["response"].mean()
        out["tuning-frequency"] = F.tuning_curve_figure(
            g,
            x="freq_hz",
            y="response",
            group="level_db",
            x_label="tone frequency (Hz)",
            y_label=f"activation ({data.stat})",
            title="Pure tones",
        )
    rates = t[t["kind"].isin(["am_noise", "click_train"])].dropna(subset=["rate_hz"])
    if len(rates):
        g = rates.groupby(["rate_hz", "kind"], as_index=False)["response"].mean()
        out["tuning-rate"] = F.tuning_curve_figure(
            g,
            x="rate_hz",
            y="response",
            group="kind",
            x_label="modulation / click rate (Hz)",
            y_label=f"activation ({data.stat})",
            title="Modulation rate",
        )
    return out


def unit_figure_names(data: RunData, layer: str, unit: int) -> list[str]:
    """Names of the figures a unit page can export."""
    names = ["histogram", "distributions"] + [f"clip-{r}" for r in range(len(data.top_clips(layer, unit, k=TOP_K)))]
    names += [n for n, h in (("objects", "conv8"), ("places", "conv8_2")) if h in data.layers]
    return names + (["tuning-frequency", "tuning-rate"] if data.probes_run is not None else [])


def unit_figure(data: RunData, layer: str, unit: int, name: str) -> go.Figure | None:
    """The unit's figure called ``name`` (see :func:`unit_figure_names`), or None."""
    if name == "histogram":
        return histogram_figure(data, layer, unit, title=f"{layer} unit {unit}: activation over the corpus")
    if name == "distributions":
        return distributions_figure(data, layer, unit, title=f"{layer} unit {unit}: activation per category")
    if name.startswith("clip-") and name[5:].isdigit():
        return clip_trace_figure(data, layer, unit, int(name[5:]), compact=False)
    if name in ("objects", "places"):
        return promoted_figure(data, layer, unit, "conv8" if name == "objects" else "conv8_2")
    if name.startswith("tuning-"):
        return tuning_figures(data, layer, unit).get(name)
    return None


# --------------------------------------------------------------------------------------------
# clip and overview figures
# --------------------------------------------------------------------------------------------
def clip_spectrogram_figure(
    data: RunData, clip_id: str, *, layer: str | None = None, unit: int | None = None
) -> go.Figure:
    """A clip's spectrogram, with one unit's activation overlaid when ``layer``/``unit`` are given."""
    win = data.view_window(clip_id)
    spec = data.spectrogram(clip_id, window_s=win)
    if layer is None or unit is None:
        return F.spectrogram_figure(spec, title="Mel spectrogram", height=300)
    times, acts = data.traces(clip_id, layer, window_s=win)
    a = acts[int(unit)]
    j = int(np.argmax(a)) if len(a) else 0

    peak = float(times[j]) if len(times) else None
    window = None
    if peak is not None:
        s, e = frames_to_window(time_to_frames(peak, layer), layer, duration_s=float(data.clip(clip_id)["duration_s"]))
        window = (float(s), float(e))
    return F.clip_activation_figure(
        spec,
        times,
        a,
        peak_s=peak,
        window_s=window,
        compact=False,
        height=320,
        max_columns=1200,
        show_colorbar=True,
        title=f"Mel spectrogram with {layer} unit {unit}",
    )


def head_figure(data: RunData, clip_id: str, head: str) -> go.Figure | None:
    """Top classes of a head over the clip's time (softmax per frame)."""

    if head not in data.layers:
        return None
    win = data.view_window(clip_id)
    times, logits = data.traces(clip_id, head, window_s=win)
    if logits.shape[1] == 0:
        return None
    p = softmax(logits[None], axis=1)[0]
    tiled = float(data.clip(clip_id)["duration_s"]) < 209_374 / 22_050
    title = _HEAD_TITLE.get(head, head) + (" (clip tiled to 9.5 s, one frame)" if tiled else " over time")
    return F.head_predictions_figure(times, p, list(head_labels(head)), k=8, title=title)


def clip_figure(data: RunData, clip_id: str, name: str) -> go.Figure | None:
    """The clip page's figure called ``name`` (``spectrogram``, ``objects``, ``places``)."""
    if name == "spectrogram":
        return clip_spectrogram_figure(data, clip_id)
    if name in ("objects", "places"):
        return head_figure(data, clip_id, "conv8" if name == "objects" else "conv8_2")
    return None


def overview_figure(data: RunData, name: str, *, titled: bool = True) -> go.Figure | None:
    """The overview's figure called ``name`` (``layers``, ``categories``, ``probes``).

    ``titled=False`` leaves the title to the page's card.
    """
    if name == "layers" and data.layer_summary is not None:
        s = data.layer_summary
        s = s[~s["layer"].isin(HEAD_LAYERS)]
        return F.layer_selectivity_figure(s, title=f"{data.name}: selective units per layer" if titled else None)
    if name == "categories" and data.category_counts is not None:
        c = data.category_counts
        c = c[[col for col in c.columns if col not in HEAD_LAYERS]].copy()
        c.attrs["n_units"] = {layer: data.n_units(layer) for layer in c.columns}
        return F.category_layer_heatmap(c, title=f"{data.name}: units selective for each category" if titled else None)
    if name == "probes" and data.probes_accuracy is not None:
        chance = 1.0 / len(data.categories) if data.categories else None
        return F.probe_accuracy_figure(
            data.probes_accuracy,
            chance=chance,
            title=f"{data.name}: linear probe accuracy per layer" if titled else None,
        )
    return None


# --------------------------------------------------------------------------------------------
# components
# --------------------------------------------------------------------------------------------
def export_links(kind: str, parts: list[str], name: str) -> html.Span:
    """Download links of one figure in every export format (``/export/<kind>/<parts>/<name>.<fmt>``)."""
    base = "/export/" + "/".join([kind, *[str(p) for p in parts]])
    return html.Span(
        className="export",
        children=[html.Span("⤓", className="export-icon", title="download")]
        + [
            html.A(
                fmt.upper(),
                href=f"{base}/{name}.{fmt}",
                download="",
                className="export-link",
                title=f"download as {fmt.upper()}",
            )
            for fmt in EXPORT_FORMATS
        ],
    )


def label_chip(label: str, color: str | None, *, href: str | None = None) -> html.Span | dcc.Link:
    """A small coloured category chip."""
    style = {"--chip": color or "#9aa5b1"}
    text = label if label else "unlabelled"
    if href:
        return dcc.Link(text, href=href, className="chip", style=style)
    return html.Span(text, className="chip", style=style)


def card(
    title: str | None, children: Any, *, right: Any = None, class_name: str = "", id: str | None = None
) -> html.Div:
    """A titled panel."""
    head = (
        html.Div(className="card-head", children=[html.H3(title), html.Div(right, className="card-right")])
        if title
        else None
    )
    kw: dict[str, Any] = {"id": id} if id else {}
    return html.Div(className=f"card {class_name}".strip(), children=[head, children] if head else [children], **kw)


def audio_player(
    clip_id: str, *, small: bool = False, element_id: Any = None, window_s: tuple[float, float] | None = None
) -> html.Audio:
    """An audio element playing the clip (or a window of it) through ``/audio/<clip_id>.wav``."""
    kw = {"id": element_id} if element_id is not None else {}
    query = "" if window_s is None else f"?t0={window_s[0]:.3f}&t1={window_s[1]:.3f}"
    return html.Audio(
        src=f"/audio/{clip_id}.wav{query}",
        controls=True,
        preload="none",
        className="audio small" if small else "audio",
        **kw,
    )


def play_button(clip_id: str, *, key: str, title: str = "play") -> html.Button:
    """A small play button; the page's clientside callback plays the clip in its shared player."""
    return html.Button(
        "▶", id={"type": ids.PLAY_BUTTON, "clip": clip_id, "key": key}, className="play", title=title, n_clicks=0
    )


def clip_card(
    data: RunData, layer: str, unit: int, rank: int, top: pd.DataFrame, graph_id: Any, audio_id: Any
) -> html.Div:
    """One top clip: header, spectrogram + trace, audio player, export links."""
    row = top.iloc[rank]
    cid = str(row["clip_id"])
    fig = clip_trace_figure(data, layer, unit, rank, top=top)
    return html.Div(
        className="clip-card",
        children=[
            html.Div(
                className="clip-card-head",
                children=[
                    html.Span(f"#{rank + 1}", className="rank"),
                    label_chip(str(row["label"]), data.colors.get(str(row["label"]))),
                    dcc.Link(str(row["name"]), href=f"/clip/{cid}", className="clip-name", title=str(row["name"])),
                    html.Span(
                        [html.B(fmt_num(row["value"])), f" at {float(row['peak_s']):.2f} s"], className="muted nowrap"
                    ),
                ],
            ),
            dcc.Graph(id=graph_id, figure=fig, config={"displayModeBar": False}, className="clip-graph"),
            html.Div(
                className="clip-card-foot",
                children=[
                    audio_player(
                        cid, small=True, element_id=audio_id, window_s=data.view_window(cid, float(row["peak_s"]))
                    ),
                    export_links("unit", [layer, str(unit)], f"clip-{rank}"),
                ],
            ),
        ],
    )
