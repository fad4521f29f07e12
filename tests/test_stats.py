"""interp.analysis.stats against its references: sklearn AUROC, scipy Mann-Whitney, scipy BH, rankdata."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from interp.analysis import stats
from soundnet.errors import ParameterError


def _data(kind: str, seed: int = 0, n: int = 120, m: int = 7, c: int = 4):
    rng = np.random.default_rng(seed)
    if kind == "random":
        x = rng.normal(size=(n, m))
    elif kind == "tied":  # few distinct values, a dead (constant) unit, a mostly-zero unit
        x = rng.integers(0, 4, size=(n, m)).astype(float)
        x[:, 1] = 0.0
        x[:, 2] = np.where(rng.random(n) < 0.85, 0.0, rng.random(n))
    else:
        raise AssertionError(kind)
    labels = rng.integers(0, c, size=n)
    x[labels == 1, 0] += 1.0  # some signal, so p-values span a range
    onehot, _cats = stats.onehot_labels(labels)
    return x, onehot


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_rank_columns_equals_scipy_rankdata(kind):
    x, _ = _data(kind)
    ranks, tie = stats.rank_columns(x)
    np.testing.assert_allclose(ranks, sps.rankdata(x, axis=0), rtol=0, atol=1e-12)
    for j in range(x.shape[1]):
        _, t = np.unique(x[:, j], return_counts=True)
        assert tie[j] == pytest.approx(float((t.astype(float) ** 3 - t).sum()))


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_auroc_equals_sklearn(kind):
    x, onehot = _data(kind)
    auc = stats.auroc(x, onehot)
    for j in range(x.shape[1]):
        for c in range(onehot.shape[1]):
            assert auc[j, c] == pytest.approx(roc_auc_score(onehot[:, c], x[:, j]), abs=1e-12)


@pytest.mark.parametrize("alternative", ["greater", "two-sided", "less"])
@pytest.mark.parametrize("kind", ["random", "tied"])
def test_mannwhitney_equals_scipy_asymptotic(kind, alternative):
    x, onehot = _data(kind, seed=3)
    res = stats.mannwhitney(x, onehot, alternative=alternative)
    for j in range(x.shape[1]):
        for c in range(onehot.shape[1]):
            pos = onehot[:, c]
            ref = sps.mannwhitneyu(
                x[pos, j], x[~pos, j], alternative=alternative, method="asymptotic", use_continuity=True
            )
            assert res["u"][j, c] == pytest.approx(ref.statistic, abs=1e-9)
            assert res["p"][j, c] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)
    if kind == "tied":
        assert np.all(res["p"][1] == 1.0)  # dead unit: p = 1, like scipy
    if alternative == "less":
        assert res["p"][0, 1] > 0.99  # the planted unit fires *more*
    else:
        assert res["p"][0, 1] < 1e-3  # the planted difference is found


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_bh_equals_scipy_false_discovery_control(kind):
    x, onehot = _data(kind, seed=5, m=30)
    p = stats.mannwhitney(x, onehot)["p"]
    q = stats.bh_qvalues(p)
    np.testing.assert_allclose(q.ravel(), sps.false_discovery_control(p.ravel(), method="bh"), rtol=1e-12)
    assert q.shape == p.shape and np.all(q >= p - 1e-15)
    # tied p-values (many exact 1.0 and repeated values) and NaNs left out of the family
    pt = np.array([0.01, 0.01, 0.2, 1.0, 1.0, np.nan, 0.03, 0.2])
    qt = stats.bh_qvalues(pt)
    ok = ~np.isnan(pt)
    np.testing.assert_allclose(qt[ok], sps.false_discovery_control(pt[ok]), rtol=1e-12)
    assert np.isnan(qt[5])
    with pytest.raises(ParameterError):
        stats.bh_qvalues([0.5, 1.5])


def test_class_moments_dprime_csi():
    x, onehot = _data("random", seed=7)
    mom = stats.class_moments(x, onehot)
    for c in range(onehot.shape[1]):
        pos = onehot[:, c]
        np.testing.assert_allclose(mom["mean_pos"][:, c], x[pos].mean(0), rtol=1e-10)
        np.testing.assert_allclose(mom["std_pos"][:, c], x[pos].std(0, ddof=1), rtol=1e-10)
        np.testing.assert_allclose(mom["mean_rest"][:, c], x[~pos].mean(0), rtol=1e-10)
        np.testing.assert_allclose(mom["std_rest"][:, c], x[~pos].std(0, ddof=1), rtol=1e-10)
    d = stats.dprime(mom["mean_pos"], mom["std_pos"], mom["mean_rest"], mom["std_rest"])
    j, c = 0, 1
    pos = onehot[:, c]
    ref = (x[pos, j].mean() - x[~pos, j].mean()) / np.sqrt((x[pos, j].var(ddof=1) + x[~pos, j].var(ddof=1)) / 2)
    assert d[j, c] == pytest.approx(ref)
    assert stats.dprime(1.0, 0.0, 1.0, 0.0) == 0.0 and stats.dprime(2.0, 0.0, 1.0, 0.0) == np.inf

    means = np.array([[4.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    csi, unit = stats.class_selectivity_index(means)
    assert csi[0, 0] == pytest.approx((4 - 1) / (4 + 1))
    assert unit.tolist() == pytest.approx([0.6, 0.0, 0.0])
    assert csi[0, 1] == pytest.approx((1 - 2) / (1 + 2))  # rest = mean of (4, 1, 1)


def test_threshold_mi_iou():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(200, 5))
    x[:, 3] = np.round(x[:, 3])  # ties
    thr = stats.top_quantile_threshold(x, top_quantile=0.1)
    np.testing.assert_allclose(thr, np.quantile(x, 0.9, axis=0), rtol=1e-12)
    labels = rng.integers(0, 3, size=200)
    onehot, _ = stats.onehot_labels(labels)
    active = x > thr
    mi, iou = stats.binary_mi_iou(active, onehot)
    from sklearn.metrics import mutual_info_score

    for j in range(5):
        for c in range(3):
            ref = mutual_info_score(active[:, j], onehot[:, c]) / np.log(2)
            assert mi[j, c] == pytest.approx(ref, abs=1e-12)
            inter = (active[:, j] & onehot[:, c]).sum()
            assert iou[j, c] == pytest.approx(inter / (active[:, j] | onehot[:, c]).sum())
    # a unit that is active exactly on one category carries all of its entropy
    perfect = onehot[:, [1]]
    mi1, iou1 = stats.binary_mi_iou(perfect, onehot)
    p1 = onehot[:, 1].mean()
    assert mi1[0, 1] == pytest.approx(-(p1 * np.log2(p1) + (1 - p1) * np.log2(1 - p1)))
    assert iou1[0, 1] == 1.0


def test_permutation_p_matches_exact_mannwhitney():
    rng = np.random.default_rng(2)
    n, k = 40, 5
    x = rng.normal(size=(n, 3))
    pos = np.zeros(n, bool)
    pos[:k] = True
    x[pos, 0] += 1.2
    x[pos, 2] -= 0.5
    ranks, _ = stats.rank_columns(x)
    B = 20_000
    p = stats.permutation_pvalues(ranks, pos, n_permutations=B, seed=1)
    for j in range(3):
        exact = sps.mannwhitneyu(x[pos, j], x[~pos, j], alternative="greater", method="exact").pvalue
        se = np.sqrt(exact * (1 - exact) / B) + 1 / B
        assert abs(p[j] - exact) < 5 * se, (j, p[j], exact)
    p2 = stats.permutation_pvalues(ranks, pos, n_permutations=B, seed=1, alternative="two-sided")
    exact2 = sps.mannwhitneyu(x[pos, 0], x[~pos, 0], alternative="two-sided", method="exact").pvalue
    assert abs(p2[0] - exact2) < 5 * np.sqrt(exact2 / B) + 2 / B
    assert p.min() >= 1 / (B + 1)


def test_permutation_p_with_ties_is_valid():
    """Under the null with heavy ties, permutation p-values are (super-)uniform."""
    rng = np.random.default_rng(4)
    n, m, k = 60, 400, 6
    x = rng.integers(0, 3, size=(n, m)).astype(float)
    pos = np.zeros(n, bool)
    pos[:k] = True
    ranks, _ = stats.rank_columns(x)
    p = stats.permutation_pvalues(ranks, pos, n_permutations=2000, seed=0)
    assert 0.02 <= (p < 0.1).mean() <= 0.16
    assert (p <= 0.05).mean() <= 0.08


def test_bootstrap_ci_covers_and_narrows():
    rng = np.random.default_rng(9)
    n = 300
    pos = rng.random(n) < 0.2
    x = rng.normal(size=(n, 3))
    x[pos, 0] += 1.0
    x[:, 2] = np.round(x[:, 2])  # ties
    ci = stats.bootstrap_auroc_ci(x, pos, n_boot=1000, seed=0)
    auc = np.array([roc_auc_score(pos, x[:, j]) for j in range(3)])
    assert np.all(ci[:, 0] < auc) and np.all(auc < ci[:, 1])
    assert ci[0, 0] > 0.6 and ci[1, 0] < 0.5 < ci[1, 1]
    # the weighted-cumsum AUROC of one resample equals sklearn on the explicitly resampled data
    rng2 = np.random.default_rng(0)
    ci_small = stats.bootstrap_auroc_ci(x[:, [2]], pos, n_boot=1, confidence=0.5, seed=rng2)
    rng3 = np.random.default_rng(0)
    n1, n0 = pos.sum(), (~pos).sum()
    w1 = rng3.multinomial(n1, np.full(n1, 1 / n1), size=1)[0]
    w0 = rng3.multinomial(n0, np.full(n0, 1 / n0), size=1)[0]
    xs = np.concatenate([np.repeat(x[pos, 2], w1), np.repeat(x[~pos, 2], w0)])
    ys = np.concatenate([np.ones(n1), np.zeros(n0)])
    assert ci_small[0, 0] == pytest.approx(roc_auc_score(ys, xs), abs=1e-12)


def test_column_correlations_and_errors():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    b[:, 1] = 0.0
    r = stats.column_correlations(a, b)
    assert r[1, 0] == pytest.approx(np.corrcoef(a[:, 1], b[:, 0])[0, 1])
    assert np.all(r[:, 1] == 0.0)
    with pytest.raises(ParameterError, match="finite"):
        stats.rank_columns(np.array([[0.0], [np.nan]]))
    with pytest.raises(ParameterError, match="'alternative'"):
        stats.mannwhitney_z(np.zeros((1, 1)), [1], [1], [0], alternative="bigger")
