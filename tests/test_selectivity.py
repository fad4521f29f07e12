"""interp.analysis.selectivity and interp.analysis.topclips: planted units, references, and the real minibank run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from interp.analysis import selectivity as S
from interp.analysis import topclips as T
from interp.report import cards as C
from soundnet.errors import ParameterError


# ------------------------------------------------------------------------------------------
# a synthetic run table with planted units (no model needed)
# ------------------------------------------------------------------------------------------
def _planted(seed: int = 0):
    """ReLU-like activations of 60 units over 240 clips, 5 categories (one of 6 clips).

    Unit 17 fires for category "c"; unit 33 for the small category "e".
    """
    rng = np.random.default_rng(seed)
    n, m = 240, 60
    cats = np.array(["a"] * 60 + ["b"] * 60 + ["c"] * 60 + ["d"] * 54 + ["e"] * 6)
    rng.shuffle(cats)
    x = np.maximum(rng.normal(0.3, 1.0, size=(n, m)), 0.0)
    x[cats == "c", 17] += 2.5
    x[cats == "e", 33] += 3.0
    ids = [f"clip{i:03d}" for i in range(n)]
    return pd.DataFrame(x.astype(np.float32), index=ids, columns=range(m)), pd.Series(cats, index=ids)


@pytest.fixture(scope="module")
def planted():
    acts, labels = _planted()
    return acts, labels, S.compute_selectivity(acts, labels, layer="conv5", n_permutations=4000)


@pytest.mark.parametrize("metric", sorted(S.METRICS))
def test_planted_unit_ranks_first_under_every_metric(planted, metric):
    _, _, sel = planted
    assert S.rank_table(sel, "c", metric=metric, top=3)["unit"].iloc[0] == 17
    assert S.rank_table(sel, "e", metric=metric, top=3)["unit"].iloc[0] == 33


def test_selectivity_columns_match_references(planted):
    acts, labels, sel = planted
    assert list(sel.columns) == list(S.SELECTIVITY_COLUMNS)
    assert len(sel) == 60 * 5
    s = sel.set_index(["unit", "category"])
    x = acts.to_numpy(np.float64)
    for unit, cat in [(17, "c"), (4, "a"), (33, "e"), (50, "d")]:
        pos = (labels == cat).to_numpy()
        row = s.loc[(unit, cat)]
        assert row["auroc"] == pytest.approx(roc_auc_score(pos, x[:, unit]), abs=1e-12)
        ref = sps.mannwhitneyu(x[pos, unit], x[~pos, unit], alternative="greater", method="asymptotic")
        assert row["p_mwu"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert row["mean_pos"] == pytest.approx(x[pos, unit].mean(), rel=1e-6)
        assert row["std_rest"] == pytest.approx(x[~pos, unit].std(ddof=1), rel=1e-6)
        assert row["n_pos"] == pos.sum() and row["n_rest"] == (~pos).sum()
    # the small category gets a permutation p, which is the p used; the others use the MWU p
    small = sel[sel["category"] == "e"]
    assert small["p_perm"].notna().all() and np.allclose(small["p"], small["p_perm"])
    big = sel[sel["category"] != "e"]
    assert big["p_perm"].isna().all() and np.allclose(big["p"], big["p_mwu"])
    assert s.loc[(33, "e"), "p"] == pytest.approx(1 / 4001)
    # BH over the whole table
    np.testing.assert_allclose(sel["q"], sps.false_discovery_control(sel["p"]), rtol=1e-12)
    # CSI: (mu_c - mean of other class means) / (mu_c + ...)
    means = np.array([x[(labels == c).to_numpy(), 17].mean() for c in "abcde"])
    rest = np.delete(means, 2).mean()
    assert s.loc[(17, "c"), "csi"] == pytest.approx((means[2] - rest) / (means[2] + rest), rel=1e-6)
    assert s.loc[(17, "a"), "csi_unit"] == pytest.approx(s.loc[(17, "c"), "csi"])
    assert sel.attrs["selectivity"]["categories"] == list("abcde")


def test_layers_share_one_fdr_family_and_bad_rows_are_dropped():
    acts, labels = _planted(seed=1)
    a2 = acts.copy()
    a2.iloc[:5] = np.nan  # clips with no frame in this layer
    lab = labels.copy()
    lab.iloc[5:9] = ""  # unlabelled clips
    sel = S.compute_selectivity({"conv4": acts, "conv5": a2}, lab, n_permutations=500)
    assert set(sel["layer"]) == {"conv4", "conv5"}
    np.testing.assert_allclose(sel["q"], sps.false_discovery_control(sel["p"]), rtol=1e-12)
    n4 = sel[sel["layer"] == "conv4"].groupby("category")["n_pos"].first()
    n5 = sel[sel["layer"] == "conv5"].groupby("category")["n_pos"].first()
    assert n4.sum() == 240 - 4 and n5.sum() == 240 - 9
    with pytest.raises(ParameterError, match="'metric'"):
        S.rank_table(sel, "c", metric="accuracy")
    with pytest.raises(ParameterError, match="'category'"):
        S.rank_table(sel, "zebra")
    with pytest.raises(ParameterError):
        S.compute_selectivity(acts, labels, top_quantile=1.5)
    with pytest.raises(ParameterError, match="indexed by the clip ids"):
        S.compute_selectivity(acts, pd.Series(labels.to_numpy()))


def test_unit_labels_and_layer_summaries(planted):
    _, _, sel = planted
    lab = S.label_units(sel)
    assert len(lab) == 60
    r17 = lab.set_index("unit").loc[17]
    assert r17["label"] == "c" and r17["selective"] and r17["q"] < 0.05 and r17["auroc"] >= 0.75
    assert lab.set_index("unit").loc[33, "label"] == "e"
    assert (lab["label"] == "none").sum() >= 50  # nothing else is planted
    none = lab[lab["label"] == "none"]
    assert none["best_category"].isin(list("abcde")).all()
    strict = S.label_units(sel, q_max=1e-40)
    assert (strict["label"] == "none").all()
    summ = S.layer_summary(lab)
    row = summ.iloc[0]
    assert row["n_units"] == 60 and row["n_selective"] == lab["selective"].sum()
    assert row["fraction_selective"] == pytest.approx(lab["selective"].mean())
    counts = S.category_counts(lab).set_index("category")["n_units"]
    assert counts["c"] >= 1 and counts["e"] >= 1 and counts.sum() == lab["selective"].sum()


def test_quantile_bins_cover_every_decile():
    v = pd.Series(np.arange(100, dtype=float)[::-1], index=[f"k{i}" for i in range(100)])
    qb = T.quantile_bins(v, n_bins=10, per_bin=3)
    assert qb["bin"].tolist() == [b for b in range(10) for _ in range(3)]
    assert (qb.groupby("bin")["value"].min().diff().dropna() > 0).all()
    assert qb.loc[qb["bin"] == 0, "value"].tolist() == [0.0, 4.0, 9.0]
    assert qb.loc[qb["bin"] == 9, ["bin_lo", "bin_hi"]].iloc[0].tolist() == [90.0, 99.0]


# ------------------------------------------------------------------------------------------
# the real minibank run (recorded once per session through interp.recording.record_corpus)
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def minibank_run(minibank_dir, model, tmp_path_factory):
    from interp.recording import record_corpus
    from interp.run.store import open_run

    out = tmp_path_factory.getbasetemp() / "minibank_run"  # shared with test_ablation.py
    record_corpus(str(minibank_dir), out, model=model, progress=False)
    return open_run(out)


def _selective_units(sel: pd.DataFrame) -> int:
    return int(sel.loc[sel["q"] < 0.05, ["layer", "unit"]].drop_duplicates().shape[0])


@pytest.mark.slow
@pytest.mark.parametrize("stat", ["max", "mean"])
def test_shuffled_labels_find_almost_nothing(minibank_run, stat):
    run = minibank_run
    real = S.run_selectivity(run, stat=stat)
    acts = {layer: run.activations(layer, stat) for layer in run.layers}
    labels = run.labels
    shuffled = pd.Series(np.random.default_rng(0).permutation(labels.to_numpy()), index=labels.index)
    fake = S.compute_selectivity(acts, shuffled, stat=stat)
    n_real, n_fake = _selective_units(real), _selective_units(fake)
    assert n_real > 500
    assert n_fake <= 0.01 * n_real, (n_real, n_fake)


@pytest.mark.slow
@pytest.mark.parametrize(
    "stat,category,need", [("mean", "speech", 7), ("mean", "kick_drum", 5), ("max", "kick_drum", 5)]
)
def test_real_labels_find_category_units(minibank_run, stat, category, need):
    """A unit of conv5..conv7 selective for the category (q < 0.05, AUROC >= 0.75) with a pure top 10."""
    run = minibank_run
    sel = S.run_selectivity(run, stat=stat)
    cand = S.rank_table(sel, category, layer=["conv5", "conv6", "conv7"], top=None)
    cand = cand[(cand["q"] < 0.05) & (cand["auroc"] >= 0.75)]
    assert len(cand) >= 3
    best = max(T.top_label_counts(run, r.layer, r.unit, k=10, stat=stat).get(category, 0) for r in cand.itertuples())
    assert best >= need


@pytest.mark.slow
@pytest.mark.parametrize("category,need", [("speech", 7), ("kick_drum", 5)])
def test_labelled_units_have_pure_top_clips(minibank_run, category, need):
    """With the default, duration-invariant statistic (vmean) and the unit-level labels, some
    unit labelled selective for the category has at least ``need`` of its top 10 clips in it."""
    lab = S.run_unit_labels(minibank_run, write=False)["unit_labels"]
    assert S.SelectivityConfig().stat == "vmean"
    cand = lab[(lab["status"] == "selective") & (lab["label"] == category)]
    assert len(cand) >= 3
    purity = [
        T.top_label_counts(minibank_run, r.layer, r.unit, k=10, stat="vmean").get(category, 0)
        for r in cand.itertuples()
    ]
    assert max(purity) >= need, sorted(purity)[-5:]


@pytest.mark.slow
def test_run_tables_written_cached_and_ranked(minibank_run):
    run = minibank_run
    res = S.analyze(run)
    for name in ("selectivity", "unit_labels", "selectivity_layers", "selectivity_counts", "unit_outputs"):
        assert run.has_table(name), name
    sel = run.read_table("selectivity")
    assert len(sel) == sum(run.n_units(l) for l in run.layers) * 10
    assert sel.attrs["selectivity"]["stat"] == "vmean"
    mtime = (run.path / "selectivity.parquet").stat().st_mtime_ns
    again = S.run_selectivity(run)  # read back, not recomputed
    pd.testing.assert_frame_equal(again, sel)
    assert (run.path / "selectivity.parquet").stat().st_mtime_ns == mtime
    other = S.run_selectivity(run, top_quantile=0.2)  # other options: recomputed
    assert not np.allclose(other["mi_bits"], sel["mi_bits"])
    assert run.read_table("selectivity").attrs["selectivity"]["top_quantile"] == 0.2

    top = S.rank_units(run, "kick_drum", metric="auroc", layer="conv5", top=5, n_boot=500)
    assert len(top) == 5 and (top["layer"] == "conv5").all()
    assert top["auroc"].is_monotonic_decreasing
    assert ((top["auroc_lo"] <= top["auroc"]) & (top["auroc"] <= top["auroc_hi"])).all()
    assert (top["auroc_hi"] - top["auroc_lo"] > 0.02).all()
    text = C.format_rank_table(top)
    lines = text.splitlines()
    assert len(lines) == 2 + 5 and "AUROC" in lines[0] and "95% CI" in lines[0]
    assert f" {int(top['unit'].iloc[0])} " in lines[2]

    summ = res["layers"].set_index("layer")
    assert set(summ.index) == set(run.layers)
    assert ((summ["fraction_selective"] >= 0) & (summ["fraction_selective"] <= 1)).all()

    outs = run.read_table("unit_outputs")
    assert set(outs["head"]) == {"conv8", "conv8_2"}
    c5 = outs[(outs["layer"] == "conv5") & (outs["head"] == "conv8") & (outs["rank"] == 0)]
    unit = int(c5.sort_values("r", ascending=False)["unit"].iloc[0])  # a unit that varies
    one = outs[(outs["layer"] == "conv5") & (outs["unit"] == unit) & (outs["head"] == "conv8")]
    assert one["r"].is_monotonic_decreasing and len(one) == 5
    logp = S.head_outputs(run, "conv8")
    a = run.activations("conv5", "vmean")[unit].dropna()  # the analysis statistic; clips with a valid frame
    ref = np.corrcoef(a.to_numpy(np.float64), logp[int(one["class_index"].iloc[0])].reindex(a.index))[0, 1]
    assert one["r"].iloc[0] == pytest.approx(ref, abs=1e-9)


@pytest.mark.slow
def test_top_clips_and_unit_card(minibank_run, model):
    run = minibank_run
    tk = run.topk("conv6", 97)
    tc = T.top_clips(run, "conv6", 97, k=10)
    assert tc["clip_id"].tolist() == tk["clip_id"].head(10).tolist()
    assert tc["label"].notna().all() and (tc["value"].diff().dropna() <= 0).all()
    longer = T.top_clips(run, "conv6", 97, k=len(tk) + 4)  # beyond the recorded top-k
    assert len(longer) == len(tk) + 4
    assert longer["clip_id"].head(len(tk)).tolist() == tk["clip_id"].tolist()
    assert (longer["value"].diff().dropna() <= 1e-6).all()
    n = len(tk)  # rebuilt from the activation tables: same moments as the recorder's
    for col in ("value", "peak_s", "start_s", "end_s"):
        np.testing.assert_allclose(longer[col].head(n), tk[col], atol=1e-4, err_msg=col)
    assert (longer["start_s"] <= longer["end_s"]).all()
    by_mean = T.top_clips(run, "conv6", 97, k=5, stat="mean")
    m = run.activations("conv6", "mean")[97].sort_values(ascending=False, kind="stable")
    assert by_mean["clip_id"].tolist() == list(m.index[:5])
    qc = T.unit_quantile_clips(run, "conv6", 97, per_bin=2)
    assert sorted(qc["bin"].unique()) == list(range(10)) and qc["label"].notna().all()

    card = C.unit_card(run, "conv6", 97, model=model)
    for needle in ("conv6 unit 97", "label:", "AUROC", "top 10 clips", "objects", "places", "zeroing the unit"):
        assert needle in card, needle
    assert card.count("kick_drum") >= 2
    with pytest.raises(ParameterError):
        C.unit_card(run, "conv6", 512)
