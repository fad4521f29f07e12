"""Text cards: a ranking of units as a fixed-width table, and one unit's card.

What ``soundnet-interp rank`` and ``soundnet-interp unit`` print. The numbers come from
:mod:`interp.analysis` (selectivity, top clips, ablation); this module only formats them.

Examples
--------
>>> from interp.analysis.selectivity import rank_units
>>> print(format_rank_table(rank_units(run, "kick_drum")))      # doctest: +SKIP
>>> print(unit_card(run, "conv7", 123))                         # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis import ablation, selectivity, topclips
from interp.analysis.outputs import table_suffix, unit_output_correlations
from interp.run.store import STAT_DESCRIPTIONS, Run, open_run
from soundnet.errors import ParameterError
from soundnet.geometry import SAMPLE_RATE_HZ, layer_geometry
from soundnet.model import HEAD_LAYERS

__all__ = [
    "format_rank_table",
    "format_crossfit_table",
    "unit_card",
    "clip_moment",
    "format_moment",
    "unit_status",
    "format_unit_status",
    "short_unit_status",
]


def _fmt_p(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


def _finite(v: Any) -> float | None:
    """``v`` as a float, or None when it is missing or not finite."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------------------------
# moments in a clip
# --------------------------------------------------------------------------------------------
def clip_moment(peak_s: float, duration_s: float | None, layer: str) -> tuple[float, str]:
    """A frame's time in the clip's own time, and where its receptive field leaves the clip.

    A frame's time (``peak_s`` of the activation tables, :func:`soundnet.geometry.frames_to_time`)
    is the centre of its receptive field, which for deep layers can lie before the clip start
    (conv7's first frame is centred at -0.45 s) or after its end. For display it is clipped to
    ``[0, duration_s]``.

    Parameters
    ----------
    peak_s : float (in seconds)
        Receptive-field centre of the frame.
    duration_s : float (in seconds), optional
        The clip's duration (``clips.parquet`` ``duration_s``); None or NaN: no upper bound.
    layer : str

    Returns
    -------
    time_s : float (in seconds)
        ``peak_s`` clipped to ``[0, duration_s]`` (NaN stays NaN).
    note : str
        ``""`` when the frame's receptive field lies inside the clip, else a short phrase:
        ``"its receptive field starts before the clip"``, ``"... ends after the clip"`` or
        ``"... extends past both ends of the clip"``.
    """
    t = _finite(peak_s)
    if t is None:
        return float("nan"), ""
    dur = _finite(duration_s)
    g = layer_geometry(layer)
    half = (g.receptive_field_samples - 1) / 2 / SAMPLE_RATE_HZ
    eps = 0.5 / SAMPLE_RATE_HZ
    before = t - half < -eps
    after = dur is not None and t + half > dur + eps
    shown = max(0.0, t) if dur is None else min(max(0.0, t), max(dur, 0.0))
    if before and after:
        note = "its receptive field extends past both ends of the clip"
    elif before:
        note = "its receptive field starts before the clip"
    elif after:
        note = "its receptive field ends after the clip"
    else:
        note = ""
    return shown, note


def format_moment(peak_s: float, duration_s: float | None, layer: str) -> str:
    """A frame's time for display: ``"1.23 s"``, or ``"0.00 s (its receptive field starts before
    the clip)"`` (see :func:`clip_moment`); ``"-"`` for NaN."""
    t, note = clip_moment(peak_s, duration_s, layer)
    if not math.isfinite(t):
        return "-"
    return f"{t:.2f} s" + (f" ({note})" if note else "")


# --------------------------------------------------------------------------------------------
# unit label status
# --------------------------------------------------------------------------------------------
def unit_status(row: Mapping[str, Any]) -> dict[str, Any]:
    """A unit's label status from its row of the ``unit_labels`` table, old or new.

    Tables written by :func:`interp.analysis.selectivity.run_unit_labels` carry ``status`` (one
    of ``"selective"``, ``"polysemantic"``, ``"unlabelled"``), ``runner_up``,
    ``auroc_runner_up``, ``margin``, ``win_fraction``, ``p_unit``, ``q_unit`` and
    ``categories`` (the passing categories joined by ``";"``). Older tables have only
    ``selective`` and ``label``: their status is ``"selective"`` when ``selective`` else
    ``"unlabelled"``.

    Parameters
    ----------
    row : mapping
        The unit's row (``layer`` and ``unit`` not needed).

    Returns
    -------
    dict
        ``status``, ``label`` (the category of a selective unit, else ``""``), ``best``
        (best category), ``auroc``, ``q`` (pair-level), ``runner_up``, ``auroc_runner_up``,
        ``win_fraction``, ``q_unit`` (None where absent), ``categories`` (list of str) and
        ``unit_level`` (whether the table has the unit-level columns).
    """
    raw = row.get("status")
    unit_level = isinstance(raw, str) and raw in ("selective", "polysemantic", "unlabelled")
    if unit_level:
        status = str(raw)
    else:
        status = "selective" if bool(row.get("selective", False)) else "unlabelled"
    best = str(row.get("best_category", "") or "")
    label = str(row.get("label", "") or "")
    if label in ("", "none", "nan"):
        label = best if status == "selective" else ""
    if status != "selective":
        label = ""
    cats_raw = row.get("categories")
    cats = [c for c in str(cats_raw).split(";") if c] if isinstance(cats_raw, str) else []
    if status == "polysemantic" and not cats:
        cats = [c for c in (best, str(row.get("runner_up", "") or "")) if c]
    runner = row.get("runner_up")
    return {
        "status": status,
        "label": label,
        "best": best,
        "auroc": _finite(row.get("auroc")),
        "q": _finite(row.get("q")),
        "runner_up": str(runner) if isinstance(runner, str) and runner else None,
        "auroc_runner_up": _finite(row.get("auroc_runner_up")),
        "win_fraction": _finite(row.get("win_fraction")),
        "q_unit": _finite(row.get("q_unit")),
        "categories": cats,
        "unit_level": unit_level,
    }


def format_unit_status(row: Mapping[str, Any]) -> str:
    """One line saying a unit's label status (see :func:`unit_status`).

    Examples: ``"selective for speech (AUROC 0.91 vs 0.62 for music, wins 99 % of resamples,
    unit q = 0.002)"``, ``"polysemantic: speech; kick_drum"``, ``"unlabelled (best: speech,
    AUROC 0.61)"``. For an old table (no unit-level columns) a selective unit reads
    ``"selective for speech (AUROC 0.78, pair-level q = 9.0e-06)"``: its q is the pair's, BH
    over all units x categories.
    """
    s = unit_status(row)
    if s["status"] == "polysemantic":
        return "polysemantic: " + "; ".join(s["categories"])
    auroc = s["auroc"]
    if s["status"] == "unlabelled":
        if not s["best"]:
            return "unlabelled"
        return f"unlabelled (best: {s['best']}" + (f", AUROC {auroc:.2f})" if auroc is not None else ")")
    parts = []
    if auroc is not None:
        ru, aru = s["runner_up"], s["auroc_runner_up"]
        parts.append(f"AUROC {auroc:.2f}" + (f" vs {aru:.2f} for {ru}" if ru and aru is not None else ""))
    if s["win_fraction"] is not None:
        parts.append(f"wins {100 * s['win_fraction']:.0f} % of resamples")
    if s["q_unit"] is not None:
        parts.append(f"unit q = {_fmt_p(s['q_unit'])}")
    elif not s["unit_level"] and s["q"] is not None:
        parts.append(f"pair-level q = {_fmt_p(s['q'])}")
    return f"selective for {s['label']}" + (f" ({', '.join(parts)})" if parts else "")


def short_unit_status(row: Mapping[str, Any]) -> str:
    """The status in a few words, for tables: ``"speech"``, ``"polysemantic: speech; kick_drum"``
    or ``"unlabelled"``."""
    s = unit_status(row)
    if s["status"] == "selective":
        return s["label"]
    if s["status"] == "polysemantic":
        return "polysemantic: " + "; ".join(s["categories"])
    return "unlabelled"


def format_rank_table(df: pd.DataFrame) -> str:
    """A ranking (from :func:`rank_units` or :func:`rank_table`) as a fixed-width text table."""
    if df.empty:
        return "(no units)"
    cols = [
        ("rank", "rank", "{:d}"),
        ("layer", "layer", "{}"),
        ("unit", "unit", "{:d}"),
        ("category", "category", "{}"),
        ("auroc", "AUROC", "{:.3f}"),
    ]
    has_ci = "auroc_lo" in df.columns
    head = (
        [c[1] for c in cols]
        + (["95% CI"] if has_ci else [])
        + ["d'", "CSI", "MI bits", "IoU", "p", "q", "mean pos", "mean rest", "n"]
    )
    rows = []
    for r in df.itertuples(index=False):
        row = [f.format(getattr(r, c) if c not in ("rank", "unit") else int(getattr(r, c))) for c, _, f in cols]
        if has_ci:
            row.append(f"[{r.auroc_lo:.3f}, {r.auroc_hi:.3f}]" if np.isfinite(r.auroc_lo) else "-")
        row += [
            f"{r.dprime:.2f}",
            f"{r.csi:.3f}",
            f"{r.mi_bits:.3f}",
            f"{r.iou:.3f}",
            _fmt_p(r.p),
            _fmt_p(r.q),
            f"{r.mean_pos:.3g}",
            f"{r.mean_rest:.3g}",
            f"{int(r.n_pos)}/{int(r.n_rest)}",
        ]
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    left = {1, 3}

    def line(vals):
        return "  ".join(v.ljust(w) if i in left else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_crossfit_table(df: pd.DataFrame) -> str:
    """A cross-fitted ranking (:func:`interp.analysis.crossfit.run_crossfit_ranking`) as text."""
    if df.empty:
        return "(no units)"
    head = ["half", "rank", "layer", "unit", "AUROC chosen on", "AUROC held out", "95% CI", "n", "groups"]
    rows = [
        [
            f"{int(r.fold)}",
            f"{int(r.rank)}",
            str(r.layer),
            f"{int(r.unit)}",
            f"{r.auroc_select:.3f}",
            f"{r.auroc:.3f}",
            f"[{r.auroc_lo:.3f}, {r.auroc_hi:.3f}]",
            f"{int(r.n_pos)}/{int(r.n_rest)}",
            f"{int(r.n_groups_pos)}/{int(r.n_groups_rest)}",
        ]
        for r in df.itertuples(index=False)
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(vals: list[str]) -> str:
        return "  ".join(v.ljust(w) if i == 2 else v.rjust(w) for i, (v, w) in enumerate(zip(vals, widths)))

    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in rows])


def _stored_unit_label(run: Run, layer: str, unit: int, stat: str) -> tuple[dict[str, Any] | None, dict]:
    """The unit's row of the run's stored ``unit_labels`` table for ``stat`` and its thresholds,
    or ``(None, {})`` when the run has no such table or row."""
    name = "unit_labels" + table_suffix(stat)
    if not run.has_table(name):
        return None, {}
    t = run.read_table(name)
    hit = t[(t["layer"].astype(str) == layer) & (t["unit"].astype(int) == int(unit))]
    if hit.empty:
        return None, {}
    return hit.iloc[0].to_dict(), dict(t.attrs.get("unit_labels") or {})


def unit_card(
    run: Run | str | os.PathLike,
    layer: str,
    unit: int,
    *,
    k: int = 10,
    top_categories: int = 5,
    top_outputs: int = 5,
    causal: bool = True,
    model=None,
    **options: Any,
) -> str:
    """A text card for one unit: its label, metrics per category, top clips, outputs it promotes.

    The label line is the unit's status (:func:`format_unit_status`) from the run's stored
    ``unit_labels`` table (``soundnet-interp analyze``), or from
    :func:`interp.analysis.selectivity.label_units` when the run has none. Peak times are in the
    clip's own time (:func:`format_moment`).

    Parameters
    ----------
    run : Run or path
    layer : str
    unit : int
    k : int
        Top clips listed.
    top_categories, top_outputs : int
        Categories (by AUROC) and head classes listed.
    causal : bool
        Also zero the unit (:func:`interp.analysis.ablation.ablate`) on its top clips and list the head
        classes whose clip-level probability drops most (loads SoundNet when ``model`` is None).
    model : SoundNet8, optional
    **options
        Passed to :func:`interp.analysis.selectivity.run_selectivity` (``stat="mean"``, ...).

    Returns
    -------
    str
    """
    run = open_run(run)
    n = run.n_units(layer)
    if not 0 <= int(unit) < n:
        raise ParameterError(
            f"The 'unit' parameter of unit_card must be in [0, {n - 1}] for {layer}. Got {unit!r} instead."
        )
    unit = int(unit)
    sel = selectivity.run_selectivity(run, **options)
    stat = sel.attrs["selectivity"]["stat"]
    rows = sel[(sel["layer"] == layer) & (sel["unit"] == unit)].sort_values("auroc", ascending=False)
    lines = [f"{layer} unit {unit}   ({STAT_DESCRIPTIONS.get(stat, stat)} per clip; run {run.path})"]
    lab, meta = _stored_unit_label(run, layer, unit, stat)
    if lab is None:
        fresh = selectivity.label_units(sel[(sel["layer"] == layer) & (sel["unit"] == unit)])
        lab = fresh.iloc[0].to_dict() if len(fresh) else None
        meta = fresh.attrs.get("unit_labels") or {}
    if lab is not None:
        q_max, auroc_min = float(meta.get("q_max", 0.05)), float(meta.get("auroc_min", 0.75))
        test = "unit-level test, BH across units; " if unit_status(lab)["unit_level"] else ""
        lines.append(f"label: {format_unit_status(lab)}   ({test}thresholds q < {q_max:g}, AUROC >= {auroc_min:g})")
    shown = rows.head(top_categories).reset_index(drop=True)
    shown.insert(0, "rank", np.arange(len(shown)))
    lines += ["", "selectivity (categories by AUROC):", format_rank_table(shown)]
    tc = topclips.top_clips(run, layer, unit, k=k, stat=stat)
    lines += ["", f"top {len(tc)} clips ({STAT_DESCRIPTIONS.get(stat, stat)}):"]
    for r in tc.itertuples(index=False):
        t, note = clip_moment(r.peak_s, r.duration_s, layer)
        lines.append(
            f"  {int(r.rank):2d}  {r.value:9.4g}  {r.label!s:<12s} peak {t:6.2f} s "
            f"[{r.start_s:.2f}, {r.end_s:.2f}]  {os.path.basename(str(r.path))}" + (f"  ({note})" if note else "")
        )
    if len(tc):
        purity = tc["label"].value_counts()
        lines.append("  labels: " + ", ".join(f"{c} {v}" for c, v in purity.items()))
    if layer not in HEAD_LAYERS and any(h in run.layers for h in HEAD_LAYERS):
        lines += ["", "outputs that rise with this unit (Pearson r with the log-probability, across clips):"]
        for head in [h for h in HEAD_LAYERS if h in run.layers]:
            # streamed in batches of clips: a head's table is a million clips x 1,000 classes
            t = unit_output_correlations(run, layer, unit, head, stat=stat, output="logprob", top=top_outputs)
            kind = "objects" if head == "conv8" else "places"
            lines.append(f"  {kind:7s}: " + ", ".join(f"{r.class_name} ({r.r:+.2f})" for r in t.itertuples()))
        if causal:
            eff = ablation.unit_output_effects(
                run, layer, unit, model=model, clips=tc["clip_id"].tolist(), top=top_outputs
            )
            lines += ["", f"zeroing the unit on its top {len(tc)} clips (mean change in log-probability):"]
            for head in eff["head"].unique():
                t = eff[eff["head"] == head]
                kind = "objects" if head == "conv8" else "places"
                lines.append(
                    f"  {kind:7s}: " + ", ".join(f"{r.class_name} ({r.delta_logp:+.3g})" for r in t.itertuples())
                )
    return "\n".join(lines)
