"""Selection-free intervals: units chosen on one half of the groups, measured on the other."""

from __future__ import annotations

import numpy as np
import pandas as pd

from interp.analysis.crossfit import crossfit_top_units, group_halves
from interp.analysis.resampling import group_bootstrap_auroc


def _null(rng: np.random.Generator, n_units: int = 3433, n_clips: int = 160) -> tuple[pd.DataFrame, pd.Series]:
    idx = [f"c{i}" for i in range(n_clips)]
    acts = pd.DataFrame(rng.standard_normal((n_clips, n_units)), index=idx)
    labels = pd.Series(np.where(np.arange(n_clips) < n_clips // 4, "cat", "rest"), index=idx)
    return acts, labels


def test_cross_fitted_intervals_of_the_top_units_cover_the_null():
    """3,433 units with no effect: the in-sample intervals of the 20 best all exclude 0.5 (the
    winner's curse); their cross-fitted intervals cover it at least 90 % of the time."""
    rng = np.random.default_rng(3)
    acts, labels = _null(rng)
    res = crossfit_top_units(acts, labels, "cat", top=20, n_boot=500)
    assert len(res) == 40 and set(res["fold"]) == {0, 1}
    covered = (res["auroc_lo"] <= 0.5) & (0.5 <= res["auroc_hi"])
    assert covered.mean() >= 0.9, covered.mean()
    assert (res["auroc_select"] > 0.68).all()  # chosen because they looked selective
    # the same units' intervals on the clips that chose them: selection-inflated
    pos = (labels == "cat").to_numpy()
    top = np.argsort(-res.loc[res["fold"] == 0, "auroc_select"].to_numpy())  # (already ranked)
    insample = group_bootstrap_auroc(
        acts.to_numpy()[:, res.loc[res["fold"] == 0, "unit"].to_numpy()[top]], pos, n_boot=500
    )
    assert (insample["auroc_lo"] > 0.5).mean() >= 0.5


def test_a_planted_unit_survives_cross_fitting_and_halves_keep_groups_whole():
    rng = np.random.default_rng(4)
    acts, labels = _null(rng, n_units=200)
    pos = (labels == "cat").to_numpy()
    acts[7] = acts[7] + 1.5 * pos
    groups = pd.Series([f"g{i // 4}" for i in range(len(labels))], index=labels.index)
    res = crossfit_top_units(acts, labels, "cat", groups=groups, top=5, n_boot=300)
    for fold in (0, 1):
        best = res[(res["fold"] == fold) & (res["rank"] == 0)].iloc[0]
        assert best["unit"] == 7 and best["auroc_lo"] > 0.6
    half = group_halves(pos, groups.to_numpy())
    assert (pd.Series(half).groupby(groups.to_numpy()).nunique() == 1).all()
    assert set(half) == {0, 1}


def test_rank_command_prints_the_cross_fitted_table(tmp_path, model, capsys):
    from interp.cli import main
    from interp.recording import record_corpus

    run = tmp_path / "run"
    record_corpus("demo", run, model=model, layers=("conv1", "conv2"), progress=False)
    assert main(["analyze", str(run)]) == 0
    capsys.readouterr()
    assert main(["rank", str(run), "-c", "kick_drum", "--top", "5"]) == 0
    out = capsys.readouterr().out
    assert "Selection-free" in out and "AUROC held out" in out
    table = out.split("Selection-free")[1].splitlines()[3:]
    halves = [line.split()[0] for line in table if line.strip()]
    assert halves.count("0") == 5 and halves.count("1") == 5  # 5 units chosen on each half
