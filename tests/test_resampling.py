"""Group-aware resampling: exact weighted AUROC, group bootstrap, group permutations; and the
simulation that shows why groups matter (pseudo-replication narrows clip-level intervals)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from interp.analysis.resampling import (
    group_bootstrap_auroc,
    group_bootstrap_weights,
    group_codes,
    group_label_permutations,
    unit_auroc_intervals,
    weighted_auroc,
)
from interp.analysis.stats import bootstrap_auroc_ci
from soundnet.errors import ParameterError


def test_weighted_auroc_equals_sklearn_with_unit_and_integer_weights():
    rng = np.random.default_rng(0)
    x = np.round(rng.normal(size=(60, 5)), 1)  # ties
    pos = rng.random(60) < 0.4
    got = weighted_auroc(x, pos, np.ones((1, 60)))[0]
    want = [roc_auc_score(pos, x[:, j]) for j in range(5)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    w = rng.integers(0, 4, size=60).astype(float)
    w[np.flatnonzero(pos)[0]] = w[np.flatnonzero(~pos)[0]] = 1.0
    got = weighted_auroc(x, pos, w[None])[0]
    want = [roc_auc_score(pos, x[:, j], sample_weight=w) for j in range(5)]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_group_bootstrap_weights_draw_whole_groups_on_both_sides():
    groups = np.repeat(np.arange(10), 4)
    pos = groups < 4
    w = group_bootstrap_weights(pos, groups, n_boot=200, seed=1)
    assert w.shape == (200, 40)
    for g in range(10):  # clips of one group share their weight
        assert np.all(w[:, groups == g] == w[:, groups == g][:, :1])
    # 4 positive and 6 negative groups drawn each time: the class sizes stay those of the data
    np.testing.assert_array_equal(w[:, pos].sum(axis=1), 16)
    np.testing.assert_array_equal(w[:, ~pos].sum(axis=1), 24)
    # without groups it is the ordinary stratified bootstrap
    w1 = group_bootstrap_weights(pos, None, n_boot=50, seed=1)
    np.testing.assert_array_equal(w1[:, pos].sum(axis=1), pos.sum())


def test_group_label_permutations_keep_one_label_per_group():
    groups = np.repeat(np.arange(12), 3)
    labels = np.where(groups < 4, "a", np.where(groups < 8, "b", "c"))
    perms = group_label_permutations(labels, groups, n_permutations=30, seed=0)
    assert perms.shape == (30, 36)
    for p in perms:
        for g in range(12):
            assert len(set(p[groups == g])) == 1
        assert sorted(p) == sorted(labels)
    assert any((p != labels).any() for p in perms)


def _clustered(rng, *, n_sources: int, per_source: int, icc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two categories, ``n_sources`` sources each, ``per_source`` segments per source; no effect of
    the category; a source effect holding a fraction ``icc`` of the variance."""
    n_groups = 2 * n_sources
    groups = np.repeat(np.arange(n_groups), per_source)
    pos = groups < n_sources
    x = np.sqrt(icc) * rng.normal(size=n_groups)[groups] + np.sqrt(1 - icc) * rng.normal(size=len(groups))
    return x, pos, groups


def test_group_intervals_cover_the_null_where_clip_intervals_do_not():
    """6 sources x 8 segments per category, intra-class correlation 0.8, no real effect: the
    group bootstrap's 95 % interval covers 0.5 in about 90 % of data sets or more; the clip-level
    interval, which treats the 48 segments as independent, in far fewer."""
    rng = np.random.default_rng(7)
    n_sim, cover_group, cover_clip = 200, 0, 0
    for i in range(n_sim):
        x, pos, groups = _clustered(rng, n_sources=6, per_source=8, icc=0.8)
        g = group_bootstrap_auroc(x, pos, groups, n_boot=400, seed=i).iloc[0]
        cover_group += g["auroc_lo"] <= 0.5 <= g["auroc_hi"]
        lo, hi = bootstrap_auroc_ci(x[:, None], pos, n_boot=400, seed=i)[0]
        cover_clip += lo <= 0.5 <= hi
    assert cover_group / n_sim >= 0.85, cover_group
    assert cover_clip / n_sim <= 0.6, cover_clip
    assert g["n_groups_pos"] == 6 and g["n_groups_rest"] == 6


def test_group_bootstrap_auroc_refuses_one_sided_data():
    with pytest.raises(ParameterError, match="'pos'"):
        group_bootstrap_auroc(np.zeros(5), np.ones(5, dtype=bool))


def test_nan_in_x_or_pos_is_refused_with_the_count():
    x = np.arange(6.0)
    pos = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    bad_x = x.copy()
    bad_x[[1, 4]] = np.nan
    with pytest.raises(ParameterError, match=r"The 'x' parameter of weighted_auroc must be finite\. Got 2 NaN"):
        weighted_auroc(bad_x, pos, np.ones((1, 6)))
    with pytest.raises(ParameterError, match=r"'x' parameter of group_bootstrap_auroc must be finite\. Got 2 NaN"):
        group_bootstrap_auroc(bad_x, pos)
    bad_pos = np.array([1.0, 1.0, np.nan, 0.0, 0.0, 0.0])  # np.asarray(nan, bool) would be True
    with pytest.raises(ParameterError, match=r"'pos' parameter of weighted_auroc must be finite\. Got 1 NaN"):
        weighted_auroc(x, bad_pos, np.ones((1, 6)))
    with pytest.raises(ParameterError, match=r"'pos' parameter of group_bootstrap_auroc .* Got 1 NaN"):
        group_bootstrap_auroc(x, bad_pos)


def test_missing_groups_are_singletons_not_one_nan_cluster():
    groups = ["a", None, "a", np.nan, "b", pd.NA, ""]
    codes = group_codes(groups, 7)
    assert codes[0] == codes[2] and codes[0] != codes[4]
    missing = codes[[1, 3, 5, 6]]
    assert len(set(missing)) == 4 and not set(missing) & {codes[0], codes[4]}
    assert sorted(set(codes)) == list(range(6))
    # a bootstrap with unknown sources counts them as independent clips
    x = np.arange(8.0)
    pos = np.arange(8) < 4
    r = group_bootstrap_auroc(x, pos, np.array([np.nan] * 8, dtype=object), n_boot=50).iloc[0]
    assert r["n_groups_pos"] == 4 and r["n_groups_rest"] == 4
    with pytest.raises(ParameterError, match="one group per clip"):
        group_codes(["a", "b"], 3)


def test_mixed_class_groups_keep_their_clip_labels_and_few_groups_give_nan_intervals():
    # 6 groups of 4 clips; groups 0-2 are 3 positive + 1 negative, groups 3-5 are 1 + 3
    groups = np.repeat(np.arange(6), 4)
    pos = np.tile([True, True, True, False], 6)
    pos[groups >= 3] = np.tile([True, False, False, False], 3)
    w = group_bootstrap_weights(pos, groups, n_boot=100, seed=0)
    for g in range(6):  # drawn as a unit...
        assert np.all(w[:, groups == g] == w[:, groups == g][:, :1])
    # ...in the stratum of its majority: 3 groups drawn on each side, every clip keeps its label
    np.testing.assert_array_equal(w.reshape(100, 6, 4)[:, :3, 0].sum(axis=1), 3)
    np.testing.assert_array_equal(w.reshape(100, 6, 4)[:, 3:, 0].sum(axis=1), 3)
    assert (w[:, pos].sum(axis=1) > 0).all() and (w[:, ~pos].sum(axis=1) > 0).all()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(24) + pos
    r = group_bootstrap_auroc(x, pos, groups, n_boot=200).iloc[0]
    assert np.isfinite(r["auroc_lo"]) and r["n_groups_pos"] == 3 and r["n_groups_rest"] == 3
    # every group mostly positive: no stratum of the rest, no interval (NaN, not degenerate)
    pos2 = np.tile([True, True, True, False], 6)
    r2 = group_bootstrap_auroc(x, pos2, groups, n_boot=200).iloc[0]
    assert r2["n_groups_rest"] == 0 and np.isfinite(r2["auroc"])
    assert np.isnan(r2["auroc_lo"]) and np.isnan(r2["auroc_hi"])
    # a single group on one side: NaN too
    pos3 = groups == 0
    r3 = group_bootstrap_auroc(x, pos3, groups, n_boot=200).iloc[0]
    assert r3["n_groups_pos"] == 1 and np.isnan(r3["auroc_lo"]) and np.isnan(r3["auroc_hi"])


def test_interval_always_contains_the_estimate_and_may_be_zero_width_at_the_boundary():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 50))
    pos = np.arange(40) < 10
    # a narrow (10 %) percentile interval excludes the estimate for some units unless widened
    r = group_bootstrap_auroc(x, pos, n_boot=200, confidence=0.1)
    assert ((r["auroc_lo"] <= r["auroc"]) & (r["auroc"] <= r["auroc_hi"])).all()
    r = group_bootstrap_auroc(x, pos, n_boot=200)
    assert ((r["auroc_lo"] <= r["auroc"]) & (r["auroc"] <= r["auroc_hi"])).all()
    # perfect separation: every resample is separated too, the interval is [1, 1] (reported as it is)
    sep = group_bootstrap_auroc(np.arange(40.0), np.arange(40) >= 30, n_boot=200).iloc[0]
    assert sep["auroc"] == sep["auroc_lo"] == sep["auroc_hi"] == 1.0


def test_unit_auroc_intervals_leave_unlabelled_clips_out_of_the_rest():
    rng = np.random.default_rng(5)
    idx = [f"c{i}" for i in range(60)]
    labels = pd.Series(np.repeat(["a", "b"], 30), index=idx)
    acts = pd.Series(rng.standard_normal(60) + (labels == "a").to_numpy(), index=idx)
    want = unit_auroc_intervals(acts, labels, ["a", "b"], n_boot=200)
    # 30 unlabelled clips with huge activations: counted as "rest" they would change every interval
    extra = [f"u{i}" for i in range(30)]
    acts2 = pd.concat([acts, pd.Series(10.0 + rng.standard_normal(30), index=extra)])
    labels2 = pd.concat([labels, pd.Series([np.nan] * 15 + [""] * 15, index=extra, dtype=object)])
    got = unit_auroc_intervals(acts2, labels2, ["a", "b"], n_boot=200)
    pd.testing.assert_frame_equal(got, want)


def test_group_label_permutations_refuse_groups_with_several_labels():
    groups = np.repeat(np.arange(4), 2)
    labels = np.array(["a", "a", "a", "b", "b", "b", "c", "c"])
    with pytest.raises(ParameterError, match=r"1 group\(s\) with several labels"):
        group_label_permutations(labels, groups, n_permutations=3)
    # with every clip its own group any labels are fine
    assert group_label_permutations(labels, None, n_permutations=3).shape == (3, 8)


def test_probe_folds_keep_groups_whole():
    from interp.analysis.linear_probes import probe_folds

    y = np.repeat(["a", "b", "c"], 12)
    groups = np.repeat([f"s{i}" for i in range(9)], 4)  # 3 sources of 4 clips per category
    splits, cv = probe_folds(y, np.full(36, -1), groups=groups, n_splits=5)
    assert cv == "stratified group 3-fold" and len(splits) == 3
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])  # no source on both sides
        assert set(y[test]) == {"a", "b", "c"}
    assert sorted(np.concatenate([te for _, te in splits]).tolist()) == list(range(36))
    _, cv = probe_folds(y, np.full(36, -1), n_splits=5)  # without groups: clip-level folds
    assert cv == "stratified 5-fold"


def test_large_runs_get_the_clustered_normal_interval_close_to_the_bootstrap():
    """Above ``bootstrap_max_clips`` the AUROC interval is auroc +- z * clustered DeLong se:
    on clips nested in groups with a shared effect it lies within a fifth of the bootstrap
    interval's width of it, and it widens with the group effect as the bootstrap does."""
    from interp.analysis.resampling import group_bootstrap_auroc

    rng = np.random.default_rng(3)
    n = 3000
    groups = np.repeat(np.arange(n // 6), 6)
    pos = (rng.random(n // 6) < 0.3)[groups]
    widths = {}
    for shared_sd in (0.0, 1.0):
        x = rng.normal(0, 1, n) + rng.normal(0, shared_sd, n // 6)[groups] + 0.8 * pos
        boot = group_bootstrap_auroc(x, pos, groups, n_boot=2000).iloc[0]
        normal = group_bootstrap_auroc(x, pos, groups, bootstrap_max_clips=0).iloc[0]
        assert normal["auroc"] == boot["auroc"]
        w = boot["auroc_hi"] - boot["auroc_lo"]
        assert abs(normal["auroc_lo"] - boot["auroc_lo"]) < 0.2 * w
        assert abs(normal["auroc_hi"] - boot["auroc_hi"]) < 0.2 * w
        widths[shared_sd] = normal["auroc_hi"] - normal["auroc_lo"]
    assert widths[1.0] > 1.5 * widths[0.0]  # clips of one group are not independent


def test_ranked_values_give_the_auroc_and_influence_of_any_subset_of_one_sort():
    """``RankedValues`` (one sort per unit, then counts from cumulative sums) equals
    ``auroc_influence`` on the subset's clips to rounding, ties and all; clips outside the
    subset have no influence."""
    from interp.analysis.resampling import RankedValues, auroc_influence

    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=3000), 1)  # many ties
    ranked = RankedValues(x)
    for _ in range(5):
        pos = rng.random(3000) < rng.uniform(0.02, 0.5)
        keep = pos | (rng.random(3000) < 0.6)
        a, psi = ranked.auroc_influence(pos, keep)
        want_a, want_psi = auroc_influence(x[keep], pos[keep])
        assert a == pytest.approx(want_a[0], abs=1e-14)  # (the mean summed in another order)
        np.testing.assert_allclose(psi[keep], want_psi[:, 0], rtol=0, atol=1e-15)
        assert not psi[~keep].any()
        assert a == pytest.approx(roc_auc_score(pos[keep], x[keep]), abs=1e-12)
    a, psi = ranked.auroc_influence(np.zeros(3000, dtype=bool))
    assert np.isnan(a) and np.isnan(psi).all()
    with pytest.raises(ParameterError, match="'x' parameter of RankedValues must be finite"):
        RankedValues(np.array([1.0, np.nan]))


def test_unit_auroc_intervals_of_a_large_run_sort_once_and_equal_the_normal_interval():
    """Above ``bootstrap_max_clips`` every category's interval is the clustered normal one of
    ``group_bootstrap_auroc``, from one sort of the unit's values; categories with fewer than 2
    groups on a side, or absent, stay NaN."""
    rng = np.random.default_rng(4)
    n = 3000
    cats = np.array(["a", "b", "c", "rare"])
    lab = cats[rng.choice(4, size=n, p=[0.5, 0.3, 0.2 - 1 / n, 1 / n])]
    grp = rng.integers(0, 600, size=n).astype(str)
    x = np.round(rng.normal(size=n) + (lab == "b"), 1)
    ids = [f"c{i}" for i in range(n)]
    got = unit_auroc_intervals(
        pd.Series(x, index=ids),
        pd.Series(lab, index=ids),
        ["a", "b", "c", "rare", "none"],
        groups=pd.Series(grp, index=ids),
        bootstrap_max_clips=100,
    )
    assert got.attrs["method"] == "normal"  # what the dashboard's note then says
    got = got.set_index("category")
    for cat in ("a", "b", "c"):
        want = group_bootstrap_auroc(x, lab == cat, grp, bootstrap_max_clips=100).iloc[0]
        assert got.loc[cat, "auroc_lo"] == pytest.approx(want["auroc_lo"], abs=1e-12)
        assert got.loc[cat, "auroc_hi"] == pytest.approx(want["auroc_hi"], abs=1e-12)
        assert got.loc[cat, "auroc_lo"] < got.loc[cat, "auroc_hi"]
    assert got.loc[["rare", "none"]].isna().all().all()
    small = unit_auroc_intervals(pd.Series(x, index=ids), pd.Series(lab, index=ids), ["b"], n_boot=50)
    assert small.attrs["method"] == "bootstrap"
    with pytest.raises(ParameterError, match="'confidence' parameter of unit_auroc_intervals"):
        unit_auroc_intervals(pd.Series(x, index=ids), pd.Series(lab, index=ids), ["a"], confidence=1.5)
