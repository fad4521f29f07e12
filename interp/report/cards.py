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

import os
from typing import Any

import numpy as np
import pandas as pd

from interp.analysis import ablation, selectivity, topclips
from interp.run.store import Run, open_run
from soundnet.errors import ParameterError
from soundnet.labels import head_labels
from soundnet.model import HEAD_LAYERS

__all__ = ["format_rank_table", "format_crossfit_table", "unit_card"]


def _fmt_p(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


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
    lab = selectivity.label_units(sel[(sel["layer"] == layer) & (sel["unit"] == unit)])
    lines = [f"{layer} unit {unit}   ({stat} over time; run {run.path})"]
    if len(lab):
        r0 = lab.iloc[0]
        lines.append(
            f"label: {r0['label']}   (best category {r0['best_category']}, AUROC {r0['auroc']:.3f}, "
            f"q {_fmt_p(r0['q'])}; thresholds q < 0.05, AUROC >= 0.75)"
        )
    shown = rows.head(top_categories).reset_index(drop=True)
    shown.insert(0, "rank", np.arange(len(shown)))
    lines += ["", "selectivity (categories by AUROC):", format_rank_table(shown)]
    tc = topclips.top_clips(run, layer, unit, k=k, stat=stat)
    lines += ["", f"top {len(tc)} clips ({stat} over time):"]
    for r in tc.itertuples(index=False):
        lines.append(
            f"  {int(r.rank):2d}  {r.value:9.4g}  {r.label!s:<12s} peak {r.peak_s:6.2f} s "
            f"[{r.start_s:.2f}, {r.end_s:.2f}]  {os.path.basename(str(r.path))}"
        )
    if len(tc):
        purity = tc["label"].value_counts()
        lines.append("  labels: " + ", ".join(f"{c} {v}" for c, v in purity.items()))
    if layer not in HEAD_LAYERS and any(h in run.layers for h in HEAD_LAYERS):
        lines += ["", "outputs that rise with this unit (Pearson r with the log-probability, across clips):"]
        for head in [h for h in HEAD_LAYERS if h in run.layers]:
            t = selectivity.output_correlations(
                run.activations(layer, stat)[[unit]],
                selectivity.head_outputs(run, head),
                names=list(head_labels(head)),
                top=top_outputs,
            )
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
