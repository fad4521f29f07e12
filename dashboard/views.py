"""Figures and components shared by the pages and the export route.

Each ``*_figure`` function builds one named figure of a unit, a clip or the overview from a
:class:`dashboard.data.RunData` through :mod:`interp.report.figures`; :func:`unit_figure`,
:func:`clip_figure` and :func:`overview_figure` look them up by the names the export URLs use,
so a downloaded file is exactly the figure on the page.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import ids
from dashboard.data import RunData, describe_stat
from interp.analysis.linear_probes import probe_chance
from interp.report import figures as F
from interp.report.cards import clip_moment, format_unit_status, unit_status
from soundnet.geometry import frames_to_window, layer_geometry, time_to_frames
from soundnet.labels import head_labels, softmax
from soundnet.model import HEAD_LAYERS

__all__ = [
    "EXPORT_FORMATS",
    "CATEGORIES_TITLE",
    "layers_title",
    "TOP_K",
    "unit_figure",
    "clip_figure",
    "overview_figure",
    "unit_figure_names",
    "layer_figure_names",
    "layer_figure",
    "export_links",
    "label_chip",
    "label_chips",
    "status_chip",
    "short_clip_message",
    "has_trace",
    "valid_frames",
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
# time in a clip
# --------------------------------------------------------------------------------------------
def short_clip_message(data: RunData, clip_id: str, layer: str) -> str | None:
    """What a clip shorter than ``layer``'s receptive field shows of it.

    Every frame of such a clip reads padding (or, for the heads of a tiled clip, repeats of the
    clip). A clip without a valid frame in the layer gets this message instead of a trace; one
    with a valid frame (:func:`has_trace`) gets its trace and the message as a note.

    Returns
    -------
    str or None
        The message, or None when the clip is at least as long as the layer's receptive field
        (:attr:`soundnet.geometry.LayerGeometry.receptive_field_s`).
    """
    dur = float(data.clip(clip_id)["duration_s"])
    rf = layer_geometry(layer).receptive_field_s
    if not math.isfinite(dur) or dur >= rf:
        return None
    settings = data.run.meta.get("settings") or {}
    policy = settings.get("heads_short", "tile") if layer in HEAD_LAYERS else settings.get("short", "pad")
    fill = "repeats of the clip" if policy == "tile" else "padding"
    share = "mostly" if dur < rf / 2 else f"at least {100 * (1 - dur / rf):.0f} %"
    order = data.layers
    fits = [
        other
        for other in data.conv_layers
        if order.index(other) < order.index(layer) and layer_geometry(other).receptive_field_s <= dur
    ]
    hint = (
        f"see {fits[-1]} ({layer_geometry(fits[-1]).receptive_field_s:.2g} s receptive field) or an earlier layer"
        if fits
        else "see an earlier layer"
    )
    return (
        f"This {dur:.2f} s clip is shorter than {layer}'s {rf:.2g} s receptive field: "
        f"every {layer} frame reads {share} {fill}; {hint}."
    )


_NO_VALID = "No {layer} frame of this clip has its receptive field at least half inside the clip."
_PADDED = " (shorter than the receptive field: its frames read padding)"


def has_trace(data: RunData, clip_id: str, layer: str) -> bool:
    """Whether a clip's activation trace of ``layer`` is drawn.

    When ``clips.parquet`` counts the clip's valid frames (``valid_frames_<layer>``: frames whose
    receptive field lies at least half inside the clip), the trace is drawn when it has one:
    such a clip has a value of the mean over valid frames and can be a top clip by it, even when
    it is shorter than the receptive field (:func:`short_clip_message` then says how much padding
    its frames read). Without the count, only clips at least as long as the receptive field.
    """
    row = data.clip(clip_id)
    col = f"valid_frames_{layer}"
    if col in row.index:
        try:
            n = float(row[col])
        except (TypeError, ValueError):
            n = 0.0
        return math.isfinite(n) and n > 0
    return short_clip_message(data, clip_id, layer) is None


def valid_frames(data: RunData, clip_id: str, layer: str) -> int | None:
    """The clip's count of valid ``layer`` frames (receptive field at least half inside the clip)
    from ``clips.parquet``'s ``valid_frames_<layer>``; None without that column."""
    row = data.clip(clip_id)
    col = f"valid_frames_{layer}"
    if col not in row.index:
        return None
    try:
        n = float(row[col])
    except (TypeError, ValueError):
        return None
    return int(n) if math.isfinite(n) else None


def _wrap(text: str, width: int = 90) -> str:
    """Plotly annotation text broken into lines of about ``width`` characters."""
    return "<br>".join(textwrap.wrap(text, width))


def _without_trace(fig: go.Figure, message: str | None) -> go.Figure:
    """Drop the (empty) activation trace and its axis; write ``message`` over the figure."""
    fig.data = tuple(t for t in fig.data if t.type != "scatter")
    fig.update_layout(yaxis2=dict(visible=False))
    if message:
        fig.add_annotation(
            text=_wrap(message),
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
            showarrow=False,
            align="center",
            bgcolor="rgba(255,255,255,0.85)",
            font=dict(size=12),
        )
    return fig


def _in_clip_time(fig: go.Figure, duration_s: float, peak: tuple[float, str] | None) -> go.Figure:
    """Keep a clip figure's time axis and peak marker inside ``[0, duration_s]``.

    Frames whose receptive field is centred before the clip start (or after its end) are not
    shown there; the peak marker moves to its time in the clip (``peak``: from
    :func:`interp.report.cards.clip_moment`) and its hover says where the field leaves the clip.
    """
    rng = fig.layout.xaxis.range
    if rng is not None:
        lo = max(0.0, float(rng[0]))
        hi = float(rng[1]) if not math.isfinite(duration_s) else min(float(rng[1]), duration_s)
        fig.update_xaxes(range=[lo, max(hi, lo)])
    if peak is not None:
        t, note = peak
        extra = f" ({note})" if note else ""
        fig.update_traces(
            selector=dict(name="peak"), x=[t], hovertemplate=f"peak {t:.3f} s{extra} · %{{y:.3g}}<extra></extra>"
        )
    return fig


# --------------------------------------------------------------------------------------------
# unit figures
# --------------------------------------------------------------------------------------------
def histogram_figure(data: RunData, layer: str, unit: int, *, title: str | None = None) -> go.Figure:
    """Histogram of the unit's per-clip activation, stacked by category."""
    v = data.unit_values(layer, unit)
    return F.activation_histogram(
        v["value"].to_numpy(), v["label"].array, stat=data.stat, colors=data.colors, title=title, height=300
    )


def distributions_figure(data: RunData, layer: str, unit: int, *, title: str | None = None) -> go.Figure:
    """Per-category distributions of the unit's activation, sorted by median."""
    v = data.unit_values(layer, unit)
    return F.category_distributions(
        v["value"].to_numpy(), v["label"].array, stat=data.stat, colors=data.colors, title=title
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
    dur = float(row["duration_s"])
    moment = clip_moment(float(row["peak_s"]), dur, layer)
    win = data.view_window(cid, moment[0])
    spec = data.spectrogram(cid, window_s=win)
    # the traces' common scale: the highest max over time of the clips shown (``value`` is the
    # ranking statistic, which for a mean lies below the trace's peak)
    tops = top["max"] if "max" in top.columns else top["value"]
    hi = float(np.nanmax(tops.to_numpy(dtype=np.float64))) if len(top) and np.isfinite(tops).any() else 1.0
    title = None if compact else f"{layer} unit {unit} · #{rank + 1} {row['name']} ({row['label']})"
    message = short_clip_message(data, cid, layer)
    if not has_trace(data, cid, layer):  # no valid frame: no trace over time, the spectrogram alone
        message = message or _NO_VALID.format(layer=layer)
        empty = np.zeros(0)
        fig = F.clip_activation_figure(
            spec,
            empty,
            empty,
            compact=compact,
            title=title,
            height=170 if compact else 320,
            max_columns=260 if compact else 1200,
            show_colorbar=not compact,
        )
        return _in_clip_time(_without_trace(fig, None if compact else message), dur, None)
    times, acts = data.traces(cid, layer, window_s=win)
    if title is not None and message:
        title += _PADDED
    fig = F.clip_activation_figure(
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
    return _in_clip_time(fig, dur, moment)


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
    stat = str(t["stat"].iloc[0]) if "stat" in t.columns and len(t) else data.stat
    y_label = f"activation ({describe_stat(stat)})"
    tones = t[t["kind"] == "tone"].dropna(subset=["freq_hz"])
    if len(tones):
        g = tones.groupby(["freq_hz", "level_db"], as_index=False)["response"].mean()
        out["tuning-frequency"] = F.tuning_curve_figure(
            g,
            x="freq_hz",
            y="response",
            group="level_db",
            x_label="tone frequency (Hz)",
            y_label=y_label,
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
            y_label=y_label,
            title="Modulation rate",
        )
    return out


#: Figure providers of other view modules, by the prefix of their figures' names: each has
#: ``unit_figure_names(data, layer, unit)``, ``unit_figure(data, layer, unit, name)`` and
#: ``overview_figure(data, titled=...)``. :mod:`dashboard.dissection_views` registers itself
#: when imported (the pages import it), so that this module never imports it back.
_PROVIDERS: dict[str, Any] = {}


def register_figures(prefix: str, provider: Any) -> None:
    """Add a figure provider (see :data:`_PROVIDERS`)."""
    _PROVIDERS[prefix] = provider


def unit_figure_names(data: RunData, layer: str, unit: int) -> list[str]:
    """Names of the figures a unit page can export."""
    names = ["histogram", "distributions"] + [f"clip-{r}" for r in range(len(data.top_clips(layer, unit, k=TOP_K)))]
    names += [n for n, h in (("objects", "conv8"), ("places", "conv8_2")) if h in data.layers]
    names += ["tuning-frequency", "tuning-rate"] if data.probes_run is not None else []
    for provider in _PROVIDERS.values():
        names += provider.unit_figure_names(data, layer, unit)
    return names


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
    for prefix, provider in _PROVIDERS.items():
        if name.startswith(prefix + "-"):
            return provider.unit_figure(data, layer, unit, name)
    return None


def layer_figure_names(data: RunData, layer: str) -> list[str]:
    """Names of a layer's figures (``/export/layer/<layer>/<name>.<fmt>``), from the providers
    that have layer figures (``layer_figure_names`` / ``layer_figure``)."""
    names: list[str] = []
    for provider in _PROVIDERS.values():
        if hasattr(provider, "layer_figure_names"):
            names += provider.layer_figure_names(data, layer)
    return names


def layer_figure(data: RunData, layer: str, name: str) -> go.Figure | None:
    """The layer's figure called ``name`` (see :func:`layer_figure_names`), or None."""
    for prefix, provider in _PROVIDERS.items():
        if name.startswith(prefix + "-") and hasattr(provider, "layer_figure"):
            return provider.layer_figure(data, layer, name)
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
    dur = float(data.clip(clip_id)["duration_s"])
    message = short_clip_message(data, clip_id, layer)
    if not has_trace(data, clip_id, layer):  # no valid frame: no trace over time, the spectrogram and why
        message = message or _NO_VALID.format(layer=layer)
        empty = np.zeros(0)
        fig = F.clip_activation_figure(
            spec,
            empty,
            empty,
            compact=False,
            height=320,
            max_columns=1200,
            show_colorbar=True,
            title=f"Mel spectrogram (no {layer} trace: the clip is shorter than its receptive field)",
        )
        return _in_clip_time(_without_trace(fig, message), dur, None)
    times, acts = data.traces(clip_id, layer, window_s=win)
    a = acts[int(unit)]
    j = int(np.argmax(a)) if len(a) else 0

    peak = float(times[j]) if len(times) else None
    window = None
    if peak is not None:
        s, e = frames_to_window(time_to_frames(peak, layer), layer, duration_s=dur)
        window = (float(s), float(e))
    fig = F.clip_activation_figure(
        spec,
        times,
        a,
        peak_s=peak,
        window_s=window,
        compact=False,
        height=320,
        max_columns=1200,
        show_colorbar=True,
        title=f"Mel spectrogram with {layer} unit {unit}" + (_PADDED if message else ""),
    )
    return _in_clip_time(fig, dur, None if peak is None else clip_moment(peak, dur, layer))


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


#: Title of the overview's category x layer heatmap: what each cell counts.
CATEGORIES_TITLE = "Units labelled with each category (each unit counted once, under its label)"


def layers_title(data: RunData) -> str:
    """Title of the overview's per-layer bars, saying which test labelled a unit selective."""
    if data.has_unit_status:
        return "Fraction of units labelled selective (unit-level test, BH across units)"
    th = data.label_thresholds
    return (
        f"Fraction of units labelled selective (a category with pair-level q < {th['q_max']:g}, "
        f"BH across unit × category pairs, and AUROC ≥ {th['auroc_min']:g})"
    )


def overview_figure(data: RunData, name: str, *, titled: bool = True) -> go.Figure | None:
    """The overview's figure called ``name`` (``layers``, ``categories``, ``dissection``, ``probes``).

    ``titled=False`` leaves the title to the page's card.
    """
    if name == "layers" and data.layer_summary is not None:
        s = data.layer_summary
        s = s[~s["layer"].isin(HEAD_LAYERS)]
        fig = F.layer_selectivity_figure(s, title=f"{data.name}: {layers_title(data)}" if titled else None)
        fig.update_yaxes(title=dict(text="fraction of units labelled selective"))
        fig.update_traces(hovertemplate="%{x}: %{y:.1%} of units labelled selective (%{text})<extra></extra>")
        return fig
    if name == "categories" and data.category_counts is not None:
        c = data.category_counts
        c = c[[col for col in c.columns if col not in HEAD_LAYERS]].copy()
        c.attrs["n_units"] = {layer: data.n_units(layer) for layer in c.columns}
        fig = F.category_layer_heatmap(c, title=f"{data.name}: {CATEGORIES_TITLE}" if titled else None)
        fig.update_traces(
            hovertemplate="%{x}: %{z:.0f} units labelled %{y} (each unit counted once, under its label)<extra></extra>",
            colorbar=dict(title=dict(text="units labelled")),
        )
        return fig
    if name in _PROVIDERS:  # each provider's overview figure is None when its tables are absent
        return _PROVIDERS[name].overview_figure(data, titled=titled)
    if name == "probes" and data.probes_accuracy is not None:
        # one definition of chance everywhere (interp.analysis.linear_probes.chance_level: each
        # training fold's most common category, scored on its test fold), from the table itself
        chance = probe_chance(data.probes_accuracy)
        return F.probe_accuracy_figure(
            data.probes_accuracy,
            chance=None if math.isnan(chance) else chance,
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


def label_chips(data: RunData, clip_id: str, *, links: bool = False, most: int = 4) -> list[Any]:
    """A chip per label of the clip (several in a multi-label run; "unlabelled" when it has
    none), at most ``most`` and a "+N" for the rest; ``links``: each to its category's search."""
    labels = data.clip_labels(clip_id) or [""]
    chips: list[Any] = [
        label_chip(x, data.colors.get(x), href=f"/search?category={x}" if links and x else None) for x in labels[:most]
    ]
    if len(labels) > most:
        chips.append(html.Span(f"+{len(labels) - most}", className="muted small", title=", ".join(labels[most:])))
    return chips


def status_chip(data: RunData, layer: str, unit: int) -> html.Span | None:
    """The unit's label status as a chip line (:func:`interp.report.cards.format_unit_status`):
    "selective for <speech> (AUROC ... vs ... for ..., wins ...)", "polysemantic: <speech> <kick_drum>"
    or "unlabelled (best: speech, AUROC ...)"; None when the run has no unit labels."""
    row = data.unit_label(layer, unit)
    if row is None:
        return None
    s = unit_status(row)
    text = format_unit_status(row)
    status = str(s["status"])
    children: list[Any]
    if status == "selective":
        lead = f"selective for {s['label']}"
        children = [
            html.Span("selective for", className="status-word"),
            label_chip(s["label"], data.colors.get(s["label"]), href=f"/search?category={s['label']}"),
            text[len(lead) :].strip(),
        ]
    elif status == "polysemantic":
        children = [html.Span("polysemantic:", className="status-word")] + [
            label_chip(c, data.colors.get(c), href=f"/search?category={c}") for c in s["categories"]
        ]
    else:
        children = [html.Span("unlabelled", className="status-word"), text[len("unlabelled") :].strip()]
    return html.Span(children, className=f"status status-{status}", title=text)


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
    data: RunData,
    layer: str,
    unit: int,
    rank: int,
    top: pd.DataFrame,
    graph_id: Any,
    audio_id: Any,
    *,
    figure: go.Figure | None = None,
    export_name: str | None = None,
    extra: Any = None,
) -> html.Div:
    """One top clip: header, spectrogram + trace, audio player, export links.

    ``figure`` (default :func:`clip_trace_figure` of the row) and ``export_name`` (default
    ``clip-<rank>``) let other clip lists (the dissection's) share the card; ``extra`` is shown
    under the figure.
    """
    row = top.iloc[rank]
    cid = str(row["clip_id"])
    stat = str(top.attrs.get("stat", data.stat))
    fig = clip_trace_figure(data, layer, unit, rank, top=top) if figure is None else figure
    t, note = clip_moment(float(row["peak_s"]), float(row["duration_s"]), layer)
    message = short_clip_message(data, cid, layer)
    if message is not None:
        below: Any = html.P(message, className="clip-card-note short-clip")
    elif note:
        below = html.P(f"peak at {t:.2f} s: {note}", className="clip-card-note")
    else:
        below = None
    frames = valid_frames(data, cid, layer) if stat == "vmean" else None
    counted = (
        None
        if frames is None
        else html.P(
            f"{frames} valid {layer} frame{'' if frames == 1 else 's'}",
            className="clip-card-frames" + (" few" if frames < 3 else ""),
            title=f"{describe_stat(stat)}: the mean over {frames} frame{'' if frames == 1 else 's'} of this "
            f"{float(row['duration_s']):.2f} s clip (a mean over few frames is noisier)",
        )
    )
    return html.Div(
        className="clip-card",
        children=[
            html.Div(
                className="clip-card-head",
                children=[
                    html.Span(f"#{rank + 1}", className="rank"),
                    *label_chips(data, cid, most=2),
                    dcc.Link(str(row["name"]), href=f"/clip/{cid}", className="clip-name", title=str(row["name"])),
                    html.Span(
                        [html.B(fmt_num(row["value"])), f" at {t:.2f} s" if stat == "max" else f" · peak {t:.2f} s"],
                        className="muted nowrap",
                        title=(
                            ""
                            if stat == "max"
                            else f"{describe_stat(stat)} {fmt_num(row['value'])}; "
                            + (f"max over time {fmt_num(row['max'])}, " if "max" in top.columns else "")
                        )
                        + f"peak at {t:.2f} s of the clip"
                        + (f" ({note})" if note else ""),
                    ),
                ],
            ),
            dcc.Graph(id=graph_id, figure=fig, config={"displayModeBar": False}, className="clip-graph"),
            extra,
            counted,
            below,
            html.Div(
                className="clip-card-foot",
                children=[
                    audio_player(cid, small=True, element_id=audio_id, window_s=data.view_window(cid, t)),
                    export_links("unit", [layer, str(unit)], export_name or f"clip-{rank}"),
                ],
            ),
        ],
    )
