"""Figures of the category, robustness, ablation and probe studies."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.report.figures import PALETTE, category_colors, hz_label
from interp.report.study_figures.common import MUTED, NONE, layer_list, styled
from interp.run.traces import Spectrogram
from soundnet.model import CONV_LAYERS

__all__ = ["unit_label_chart", "top_clips_figure", "robustness_figure", "ablation_figure", "recall_heatmap"]


# --------------------------------------------------------------------------------------------
# sound categories
# --------------------------------------------------------------------------------------------
def unit_label_chart(labels: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per layer, the fraction of units labelled with each category (stacked), unlabelled in grey.

    Parameters
    ----------
    labels : pandas.DataFrame
        :func:`interp.analysis.selectivity.label_units` (``layer, unit, label``; ``"none"`` = not selective).
    """
    layers = [layer for layer in pd.unique(labels["layer"])]
    cats = sorted(c for c in labels["label"].astype(str).unique() if c != "none")
    colors = category_colors(cats)
    fig = go.Figure()
    for cat in cats + ["none"]:
        frac, count = [], []
        for layer in layers:
            sub = labels[labels["layer"] == layer]
            n = int((sub["label"].astype(str) == cat).sum())
            frac.append(n / max(len(sub), 1))
            count.append(f"{n}/{len(sub)}")
        fig.add_trace(
            go.Bar(
                x=layers,
                y=frac,
                name=cat if cat != "none" else "not selective",
                marker_color=colors.get(cat, NONE),
                customdata=count,
                hovertemplate="%{x}: %{customdata} units<extra>" + cat + "</extra>",
            )
        )
    fig.update_layout(barmode="stack", legend=dict(title=dict(text="unit label"), traceorder="normal"))
    fig.update_yaxes(title=dict(text="fraction of the layer's units"), tickformat=".0%", range=[0, 1])
    title = title or "Unit labels per layer: each unit's most selective category (grey: no category passes)"
    return styled(fig, title, height=420, width=900, top=56)


def top_clips_figure(
    spectrograms: Sequence[Sequence[Spectrogram | None]],
    row_titles: Sequence[str],
    cell_titles: Sequence[Sequence[str]],
    *,
    title: str,
    zmin: float = -80.0,
    windows_s: Sequence[Sequence[tuple[float, float] | None]] | None = None,
) -> go.Figure:
    """A grid of mel spectrograms: one row per unit, its top clips side by side.

    Parameters
    ----------
    spectrograms : rows of :class:`interp.run.traces.Spectrogram`
        ``spectrograms[i][j]``: unit ``i``'s ``j``-th top clip (rows may be shorter; ``None`` skips).
    row_titles : sequence of str
        One per row (the unit), shown on the y axis of its first panel.
    cell_titles : rows of str
        One per panel (the clip's label and the unit's peak time).
    title : str
    windows_s : rows of (start_s, end_s), optional
        The receptive-field window of the unit's peak frame in each clip, outlined in white.
    """
    n_rows = len(spectrograms)
    n_cols = max((len(r) for r in spectrograms), default=1) or 1
    titles = [cell_titles[i][j] if j < len(cell_titles[i]) else "" for i in range(n_rows) for j in range(n_cols)]
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=titles,
        horizontal_spacing=0.03,
        vertical_spacing=0.12 if n_rows > 1 else 0.2,
    )
    for i, row in enumerate(spectrograms):
        for j, spec in enumerate(row):
            if spec is None:
                continue
            freqs = np.asarray(spec.freqs_hz)
            fig.add_trace(
                go.Heatmap(
                    z=np.asarray(spec.db),
                    x=np.asarray(spec.times_s),
                    y=np.arange(len(freqs)),
                    coloraxis="coloraxis",
                    hovertemplate="%{x:.2f} s: %{z:.0f} dB<extra></extra>",
                ),
                row=i + 1,
                col=j + 1,
            )
            targets = [f for f in (100, 500, 2000, 8000) if freqs[0] <= f <= freqs[-1]]
            fig.update_yaxes(
                row=i + 1,
                col=j + 1,
                tickvals=list(np.interp(targets, freqs, np.arange(len(freqs)))),
                ticktext=[hz_label(f) for f in targets],
                showgrid=False,
                showticklabels=j == 0,
                title=dict(text=(row_titles[i] + "<br>mel freq. (Hz)") if j == 0 else None),
            )
            fig.update_xaxes(
                row=i + 1,
                col=j + 1,
                showgrid=False,
                ticksuffix=" s",
                title=dict(text="time" if i == n_rows - 1 else None),
            )
            win = windows_s[i][j] if windows_s is not None and j < len(windows_s[i]) else None
            if win is not None:
                fig.add_vrect(
                    x0=float(win[0]),
                    x1=float(win[1]),
                    row=i + 1,
                    col=j + 1,
                    fillcolor="white",
                    opacity=0.12,
                    line=dict(color="white", width=1.5, dash="dot"),
                    layer="above",
                )
    fig.update_layout(
        coloraxis=dict(
            colorscale="Magma",
            cmin=zmin,
            cmax=0,
            colorbar=dict(title=dict(text="dB re clip peak", side="right"), thickness=10),
        )
    )
    fig.update_annotations(font_size=10)
    return styled(fig, title, height=200 * n_rows + 90, width=1200)


# --------------------------------------------------------------------------------------------
# robustness and ablation
# --------------------------------------------------------------------------------------------
_FAMILY_TITLES = {
    "level": "level change (dB)",
    "noise": "added white noise (SNR, dB)",
    "shift": "time shift (ms)",
    "resample": "source rate (Hz), resampled to 22050 Hz",
}


_ORIGINAL = {
    "level": "0 (original)",
    "noise": "none (original)",
    "shift": "0 (original)",
    "resample": "22050 (original)",
}


def robustness_figure(
    table: pd.DataFrame,
    *,
    value: str,
    y_title: str,
    title: str,
    baseline: float | None = None,
    y_range: tuple[float, float] | None = (0.0, 1.02),
    clean: float | str | None = 1.0,
) -> go.Figure:
    """One panel per perturbation family: ``value`` against the perturbation strength, one line per layer.

    Parameters
    ----------
    table : pandas.DataFrame
        ``family, strength, layer`` and the ``value`` column (see :mod:`interp.analysis.robustness`).
    value : str
        Column drawn.
    baseline : float, optional
        A dashed reference line (e.g. chance accuracy).
    clean : float or str, optional
        The value of the unperturbed clips, drawn as the "original" point of every line: a
        constant (1.0 for similarities) or the name of a per-layer column
        (``clean_probe_accuracy``); None leaves it out.
    """
    fams = [f for f in ("level", "noise", "shift", "resample") if f in set(table["family"])]
    fig = make_subplots(
        rows=1,
        cols=len(fams),
        subplot_titles=[_FAMILY_TITLES[f] for f in fams],
        horizontal_spacing=0.05,
        shared_yaxes=True,
    )
    layers = layer_list(table)
    for j, fam in enumerate(fams):
        sub = table[table["family"] == fam]
        strengths = sorted(sub["strength"].unique(), reverse=fam in ("noise", "resample"))
        for i, layer in enumerate(layers):
            lay = sub[sub["layer"] == layer]
            g = lay.groupby("strength")[value].mean().reindex(strengths)
            xs, ys = [f"{v:g}" for v in strengths], list(g.to_numpy())
            if clean is not None and len(lay):
                c = float(clean) if not isinstance(clean, str) else float(lay[clean].iloc[0])
                if fam == "level":
                    xs, ys = xs + [_ORIGINAL[fam]], ys + [c]
                else:
                    xs, ys = [_ORIGINAL[fam]] + xs, [c] + ys
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines+markers",
                    name=layer,
                    legendgroup=layer,
                    showlegend=j == 0,
                    line=dict(color=PALETTE[i % len(PALETTE)], width=2),
                    marker=dict(size=6),
                    hovertemplate=f"{layer}: %{{x}} -> %{{y:.3f}}<extra></extra>",
                ),
                row=1,
                col=j + 1,
            )
        fig.update_xaxes(row=1, col=j + 1, type="category", title=dict(text=None), tickfont=dict(size=9))
        if baseline is not None:
            fig.add_hline(y=baseline, row=1, col=j + 1, line=dict(color=MUTED, dash="dash", width=1))
    fig.update_yaxes(row=1, col=1, title=dict(text=y_title))
    if y_range is not None:
        fig.update_yaxes(range=list(y_range))
    fig.update_annotations(font_size=11)
    return styled(fig, title, height=420, width=320 * len(fams) + 160)


def ablation_figure(table: pd.DataFrame, *, n_units: int | None = None, title: str | None = None) -> go.Figure:
    """Per category: drop of the heads' category score and of the probe's recall, top-N vs random-N units.

    Parameters
    ----------
    table : pandas.DataFrame
        ``category, measure ("heads" or "probe"), condition ("top" or "random"), drop, drop_sd``.
    n_units : int, optional
        N, for the legend.
    """
    measures = [m for m in ("heads", "probe") if m in set(table["measure"])]
    names = {
        "heads": "heads: drop of the category's readout score (log-odds)",
        "probe": "probe: drop of the category's recall",
    }
    fig = make_subplots(rows=1, cols=len(measures), subplot_titles=[names[m] for m in measures], horizontal_spacing=0.1)
    colors = {"top": PALETTE[2], "random": NONE}
    n = "N" if n_units is None else str(int(n_units))
    label = {"top": f"the category's {n} most selective units", "random": f"{n} random units (mean ± sd over draws)"}
    for j, m in enumerate(measures):
        sub = table[table["measure"] == m]
        cats = sorted(sub["category"].unique())
        for cond in ("top", "random"):
            g = sub[sub["condition"] == cond].set_index("category").reindex(cats)
            fig.add_trace(
                go.Bar(
                    x=cats,
                    y=g["drop"],
                    name=label[cond],
                    marker_color=colors[cond],
                    legendgroup=cond,
                    showlegend=j == 0,
                    error_y=dict(
                        type="data",
                        array=g["drop_sd"].fillna(0).to_numpy(),
                        color=MUTED,
                        thickness=1,
                        width=3,
                        visible=cond == "random",
                    ),
                    hovertemplate="%{x}: %{y:.3f}<extra>" + cond + "</extra>",
                ),
                row=1,
                col=j + 1,
            )
        fig.update_yaxes(
            row=1, col=j + 1, title=dict(text="drop (unablated - ablated)"), zeroline=True, zerolinecolor="#9aa5b1"
        )
        fig.update_xaxes(row=1, col=j + 1, tickangle=-30)
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.3, x=0))
    fig.update_annotations(font_size=11)
    title = title or "Ablation: zeroing a category's most selective units vs as many random units"
    return styled(fig, title, height=460, width=1100)


# --------------------------------------------------------------------------------------------
# probes
# --------------------------------------------------------------------------------------------
def recall_heatmap(predictions: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Per category (rows) and layer (columns): the fraction of the category's clips the probe gets right.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``layer, label, predicted`` (cross-validated, one row per clip and layer).
    """
    df = predictions.assign(correct=(predictions["label"] == predictions["predicted"]).astype(float))
    piv = df.pivot_table(index="label", columns="layer", values="correct", aggfunc="mean")
    layers = [layer for layer in CONV_LAYERS if layer in piv.columns]
    piv = piv[layers].sort_index(ascending=False)
    n = df[df["layer"] == layers[0]].groupby("label").size()
    ylabels = [f"{c} ({int(n.get(c, 0))} clips)" for c in piv.index]
    z = piv.to_numpy(dtype=np.float64)
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=layers,
            y=ylabels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            xgap=2,
            ygap=2,
            text=[[f"{v:.0%}" for v in row] for row in z],
            texttemplate="%{text}",
            textfont=dict(size=10),
            colorbar=dict(title=dict(text="recall", side="right"), thickness=10, tickformat=".0%"),
            hovertemplate="%{y} · %{x}: %{z:.0%} of clips right<extra></extra>",
        )
    )
    fig.update_xaxes(showgrid=False, side="top")
    fig.update_yaxes(showgrid=False)
    title = title or "Per-category recall of each layer's probe (fraction of the category's clips classified right)"
    return styled(fig, title, height=120 + 30 * len(piv), width=900, top=90)
