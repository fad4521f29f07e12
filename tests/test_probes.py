"""Linear probes: chance, nested cross-validation, group-bootstrap intervals, paired tests, the
"best layer" rule (check 2: on pure noise it names none in at least 95 % of simulated runs) and
the baselines (log-mel statistics, a randomly initialised SoundNet, shuffled weights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from interp.analysis import baselines as bl
from interp.analysis import linear_probes as lp
from interp.analysis import probe_stats as ps
from soundnet.errors import ParameterError


# --------------------------------------------------------------------------------------------
# chance: one definition
# --------------------------------------------------------------------------------------------
def test_chance_is_one_over_k_on_balanced_folds():
    y = np.repeat(["a", "b", "c", "d"], 10)
    splits, _ = lp.probe_folds(y, n_splits=5)
    assert lp.chance_level(y, splits) == pytest.approx(0.25)


def test_chance_is_the_training_majority_scored_on_the_test_folds():
    y = np.array(["a"] * 6 + ["b"] * 3 + ["c"] * 3)
    folds = np.array([1, 1, 1, 2, 2, 2, 1, 1, 2, 2, 1, 2])
    splits, cv = lp.probe_folds(y, folds)
    assert cv == "corpus folds (2)"
    # fold 1 tests clips {0,1,2,6,7,10} (a a a b b c) with training majority a (3 of 6): 3 right;
    # fold 2 tests {3,4,5,8,9,11} (a a a c c b), trained on a a a b b c: majority a: 3 right
    assert lp.chance_level(y, splits) == pytest.approx(6 / 12)
    # ties average over the tied labels (a random tie-break's expectation)
    y2 = np.array(["a", "b", "a", "b"])
    assert lp.chance_level(y2, [(np.array([0, 1]), np.array([2, 3]))]) == pytest.approx(0.5)
    assert lp.chance_level(y) == pytest.approx(0.5)  # without folds: the majority rate


def test_probe_chance_reads_the_table():
    t = pd.DataFrame({"layer": ["conv1", "conv2"], "accuracy": [0.5, 0.6], "chance": [0.155, 0.155]})
    assert lp.probe_chance(t) == pytest.approx(0.155)
    assert np.isnan(lp.probe_chance(t.drop(columns="chance")))


# --------------------------------------------------------------------------------------------
# nested cross-validation
# --------------------------------------------------------------------------------------------
def test_nested_cv_chooses_C_inside_each_training_fold_and_predicts_every_clip_once():
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b", "c"], 20)
    x = rng.normal(size=(60, 8))
    x[:, 0] += 3 * (y == "a")
    x[:, 1] += 3 * (y == "b")
    splits, _ = lp.probe_folds(y, n_splits=5)
    pred, chosen = lp.nested_cross_validate(x, y, splits, C_grid=(0.01, 1.0, 100.0))
    assert (pred != "").all() and len(chosen) == 5
    assert set(chosen) <= {0.01, 1.0, 100.0}
    assert (pred == y).mean() > 0.8
    with pytest.raises(ParameterError, match="C_grid"):
        lp.nested_cross_validate(x, y, splits, C_grid=(0.0, 1.0))


def test_inner_folds_keep_groups_whole():
    y = np.repeat(["a", "b"], 12)
    g = np.repeat(np.arange(8), 3).astype(str)
    for tr, va in lp._inner_splits(y, g, 3, 0):
        assert not set(g[tr]) & set(g[va])


def test_probe_arrays_scores_every_feature_set_on_the_same_clips():
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b", "c"], 12)
    x1 = rng.normal(size=(36, 4))
    x2 = rng.normal(size=(36, 6))
    x2[5, 0] = np.nan  # this clip leaves every feature set
    table, preds = lp.probe_arrays({("pretrained", "conv1"): x1, ("log-mel", "log-mel"): x2}, y, C=1.0)
    assert list(table.columns) == list(lp.PROBE_COLUMNS)
    assert (table["n_clips"] == 35).all() and table["chance"].nunique() == 1
    assert list(preds.columns) == list(lp.PREDICTION_COLUMNS)
    assert 5 not in set(preds["clip_id"])
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()


# --------------------------------------------------------------------------------------------
# intervals and paired tests
# --------------------------------------------------------------------------------------------
def test_group_bootstrap_resamples_whole_groups():
    # 20 groups of 5 clips, each group all right or all wrong: the clip-level bootstrap would
    # treat 100 clips as independent and give an interval about sqrt(5) times too narrow
    correct = np.repeat(np.arange(20) % 2 == 0, 5)
    groups = np.repeat(np.arange(20), 5)
    lo_g, hi_g = ps.group_bootstrap_accuracy(correct, groups=groups, seed=0)
    lo_c, hi_c = ps.group_bootstrap_accuracy(correct, seed=0)
    assert lo_g <= 0.5 <= hi_g and lo_c <= 0.5 <= hi_c
    assert (hi_g - lo_g) > 1.8 * (hi_c - lo_c)
    # strata: every bootstrap sample keeps each fold's share (fold 0 all right, fold 1 all wrong)
    lo, hi = ps.group_bootstrap_accuracy(np.r_[np.ones(10, bool), np.zeros(30, bool)], strata=np.r_[[0] * 10, [1] * 30])
    assert lo == hi == pytest.approx(0.25)


def test_mcnemar_known_value():
    a = np.r_[np.ones(10, bool), np.ones(20, bool), np.zeros(5, bool)]
    b = np.r_[np.zeros(10, bool), np.ones(20, bool), np.zeros(5, bool)]
    r = ps.mcnemar_test(a, b)
    assert (r["a_only"], r["b_only"]) == (10, 0)
    assert r["p"] == pytest.approx(2 * 0.5**10)
    assert ps.mcnemar_test(a, a)["p"] == 1.0


def test_paired_comparison_uses_mcnemar_without_clusters_and_the_bootstrap_with_them():
    rng = np.random.default_rng(2)
    a, b = rng.random(80) < 0.7, rng.random(80) < 0.4
    r = ps.paired_comparison(a, b)
    assert r["test"] == "McNemar (exact)" and r["ci_low"] <= r["diff"] <= r["ci_high"]
    r2 = ps.paired_comparison(a, b, groups=np.repeat(np.arange(40), 2))
    assert r2["test"] == "paired group bootstrap" and r2["n_groups"] == 40
    assert r2["diff"] == pytest.approx(r["diff"])


def _preds(correct: dict[str, np.ndarray], groups=None) -> pd.DataFrame:
    n = len(next(iter(correct.values())))
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "probe": "pretrained",
                    "layer": k,
                    "clip_id": np.arange(n),
                    "correct": v,
                    "fold": np.arange(n) % 5,
                    "group": np.arange(n) if groups is None else groups,
                }
            )
            for k, v in correct.items()
        ],
        ignore_index=True,
    )


def test_best_layer_is_named_when_clearly_better():
    rng = np.random.default_rng(3)
    correct = {f"conv{i}": rng.random(150) < 0.4 for i in range(1, 6)}
    correct["conv4"] = rng.random(150) < 0.9
    best = ps.best_layer(_preds(correct))
    assert best["best"] == "conv4" and best["p"] < 1e-6
    assert "conv4" in ps.describe_best(best)


def test_best_layer_says_none_when_the_top_two_tie():
    c = np.r_[np.ones(60, bool), np.zeros(40, bool)]
    best = ps.best_layer(_preds({"conv3": c, "conv4": c.copy(), "conv5": np.zeros(100, bool)}))
    assert best["best"] == ps.NO_BEST and best["leader"] == "conv3" and best["runner_up"] == "conv4"
    assert ps.NO_BEST in ps.describe_best(best)


@pytest.mark.parametrize("clustered", [False, True])
def test_check2_noise_correctness_names_no_best_layer_in_95_percent_of_runs(clustered):
    """Check 2, the test itself: 7 layers that are equally good (independent correctness at 40 %)."""
    rng = np.random.default_rng(17)
    n_runs, n, none = 400, 120, 0
    groups = np.repeat(np.arange(40), 3) if clustered else None
    for _ in range(n_runs):
        if clustered:  # a group's clips share a difficulty
            p = np.repeat(rng.beta(2, 3, size=40), 3)
            correct = {f"conv{i}": rng.random(n) < p for i in range(1, 8)}
        else:
            correct = {f"conv{i}": rng.random(n) < 0.4 for i in range(1, 8)}
        none += ps.best_layer(_preds(correct, groups), n_boot=500)["best"] == ps.NO_BEST
    assert none / n_runs >= 0.95


@pytest.mark.slow
def test_check2_pure_noise_features_name_no_best_layer_in_95_percent_of_runs():
    """Check 2 through the whole probe (folds, fits, bootstrap): features are pure noise."""
    rng = np.random.default_rng(2)
    n_runs, none = 100, 0
    y = np.repeat(["a", "b", "c", "d"], 15)
    groups = np.repeat(np.arange(30), 2)
    for _ in range(n_runs):
        feats = {("pretrained", f"conv{i}"): rng.normal(size=(60, 16)) for i in range(1, 8)}
        _, preds = lp.probe_arrays(feats, y, groups=groups, C=1.0, n_boot=500)
        none += ps.best_layer(preds, n_boot=500)["best"] == ps.NO_BEST
    print(f"check 2: none significantly better in {none}/{n_runs} pure-noise runs")
    assert none / n_runs >= 0.95


@pytest.mark.slow
def test_nested_probe_on_noise_has_chance_accuracy_and_names_no_best_layer():
    rng = np.random.default_rng(5)
    y = np.repeat(["a", "b", "c"], 20)
    feats = {("pretrained", f"conv{i}"): rng.normal(size=(60, 32)) for i in range(1, 4)}
    table, preds = lp.probe_arrays(feats, y)
    assert (table["ci_low"] < 1 / 3).all()
    assert ps.best_layer(preds)["best"] == ps.NO_BEST


# --------------------------------------------------------------------------------------------
# baselines
# --------------------------------------------------------------------------------------------
def test_shuffled_soundnet_keeps_each_layers_weights_and_destroys_their_order(model):
    sh = bl.shuffled_soundnet(model, seed=0)
    for name in ("conv1", "conv5"):
        w0, w1 = getattr(model, name)[0].weight, getattr(sh, name)[0].weight
        assert torch.equal(torch.sort(w0.flatten()).values, torch.sort(w1.flatten()).values)
        assert not torch.equal(w0, w1)
        bn0, bn1 = getattr(model, name)[1], getattr(sh, name)[1]
        # scale and running variance moved together across channels
        pairs0 = sorted(zip(bn0.weight.tolist(), bn0.running_var.tolist()))
        pairs1 = sorted(zip(bn1.weight.tolist(), bn1.running_var.tolist()))
        assert pairs0 == pairs1
    assert not sh.training
    assert torch.equal(model.conv1[0].weight, model.conv1[0].weight.clone())  # original untouched


def test_random_soundnet_is_seeded_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = bl.random_soundnet(seed=4)
    after = torch.rand(1)
    assert torch.equal(before, after)
    b = bl.random_soundnet(seed=4)
    assert torch.equal(a.conv3[0].weight, b.conv3[0].weight)
    assert not torch.equal(a.conv3[0].weight, bl.random_soundnet(seed=5).conv3[0].weight)


def test_logmel_features_of_real_clips():
    from interp.corpus.corpora import clip_waves, load_corpus

    corpus = load_corpus("demo")
    clips = corpus.groupby("label").head(1)
    x = bl.logmel_features(clip_waves(clips))
    assert x.shape == (len(clips), 128) and np.isfinite(x).all()
    assert (x[:, :64] <= 0).all() and (x[:, 64:] >= 0).all()  # dB re peak; std
    sp = clips["label"].to_numpy() == "speech"
    # the demo's speech is 8 kHz audio: nothing in the top mel bands (above 4 kHz) compared with the rest
    assert x[sp, 50:64].mean() < x[~sp, 50:64].mean() - 10


# --------------------------------------------------------------------------------------------
# multi-label probes (issue 19): one-vs-rest, mAP
# --------------------------------------------------------------------------------------------
def test_weighted_average_precision_matches_sklearn_and_a_constant_scores_the_prevalence():
    from sklearn.metrics import average_precision_score

    from interp.analysis import multilabel_probes as mlp

    rng = np.random.default_rng(0)
    y = rng.random(60) < 0.3
    s = np.round(rng.random(60), 1)  # ties: one threshold each, as in scikit-learn
    w = rng.integers(0, 3, size=(5, 60)).astype(float)
    want = [average_precision_score(y, s, sample_weight=wi) for wi in w]
    assert mlp.weighted_average_precision(y, s, w) == pytest.approx(want)
    assert mlp.weighted_average_precision(y, np.zeros(60))[0] == pytest.approx(y.mean())
    assert np.isnan(mlp.weighted_average_precision(np.zeros(4, bool), np.arange(4.0))[0])


def _multilabel_data(n=80, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n) < 0.4, rng.random(n) < 0.4  # independent: about 16 % of clips have both
    sets = [tuple(k for k, on in (("A", ai), ("B", bi), ("all", True)) if on) for ai, bi in zip(a, b)]
    good = rng.normal(size=(n, 6))
    good[:, 0] += 4 * a  # one dimension carries A, another B
    good[:, 1] += 4 * b
    return sets, a, b, good, rng.normal(size=(n, 6))


def test_multilabel_probe_map_is_near_one_with_the_label_dimensions_and_near_chance_on_noise():
    from interp.analysis import multilabel_probes as mlp

    sets, a, b, good, noise = _multilabel_data()
    assert (a & b).sum() >= 5
    groups = np.repeat(np.arange(40), 2)
    feats = {("pretrained", "conv1"): good, ("pretrained", "conv2"): noise}
    table, preds = mlp.probe_arrays_multilabel(feats, sets, groups=groups, C_grid=(0.01, 1.0, 100.0), n_boot=300)
    assert list(table.columns) == list(lp.PROBE_COLUMNS) and (table["metric"] == "mAP").all()
    assert list(preds.columns) == list(mlp.MULTILABEL_PREDICTION_COLUMNS)
    assert set(preds["category"]) == {"A", "B"}  # "all" has no negative: not probed
    assert (table["n_classes"] == 2).all() and (table["n_clips"] == 80).all()
    assert table["cv"].iloc[0] == "group 5-fold (not stratified: multi-label)"
    t = table.set_index("layer")
    chance = (a.mean() + b.mean()) / 2  # the mAP of a constant score: the mean prevalence
    assert t["chance"].tolist() == pytest.approx([chance, chance]) and lp.probe_chance(table) == pytest.approx(chance)
    assert t.loc["conv1", "accuracy"] > 0.9 and t.loc["conv1", "ci_low"] > 0.8
    assert abs(t.loc["conv2", "accuracy"] - chance) < 0.15 and t.loc["conv2", "ci_low"] < chance + 0.05
    assert ((t["ci_low"] <= t["accuracy"]) & (t["accuracy"] <= t["ci_high"])).all()
    best = mlp.best_layer_map(preds, n_boot=300)
    assert best["best"] == "conv1" and best["p"] < 0.05 and "conv1" in ps.describe_best(best)
    ap = mlp.per_label_ap(preds).set_index(["layer", "category"])
    assert (ap.loc["conv1", "ap"] > 0.85).all()
    # a fixed C; groups kept whole
    fixed, _ = mlp.probe_arrays_multilabel({("pretrained", "conv1"): good}, sets, groups=groups, C=1.0, n_boot=100)
    assert fixed["C"].iloc[0] == "1,1,1,1,1" and fixed["accuracy"].iloc[0] > 0.9
    splits, _ = mlp.multilabel_folds(80, groups=groups)
    assert all(not set(groups[tr]) & set(groups[te]) for tr, te in splits)


def test_single_label_tables_say_accuracy():
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b"], 10)
    table, _ = lp.probe_arrays({("pretrained", "conv1"): rng.normal(size=(20, 3))}, y, C=1.0, n_boot=100)
    assert table["metric"].tolist() == ["accuracy"]


def test_layer_probes_on_an_audioset_layout_run(tmp_path):
    """The AudioSet-layout corpus of tests/test_multilabel.py, recorded, probed by mAP."""
    from interp.analysis import multilabel_probes as mlp
    from interp.corpus.corpora import demo_dir
    from interp.recording.pipeline import record_corpus
    from interp.run.store import open_run
    from tests.test_multilabel import _audioset

    man = pd.read_csv(demo_dir() / "manifest.csv")
    man = man[man["seconds"] >= 1.5]
    picked = pd.concat([man[man["label"] == k].head(4) for k in ("ambient", "animal", "tabla")]).reset_index(drop=True)
    root = tmp_path / "AudioSet"
    root.mkdir()
    _audioset(root, picked)
    record_corpus(root, tmp_path / "run", progress=False)  # every layer: the study asks for them
    run = open_run(tmp_path / "run")
    assert mlp.run_label_sets(run) is not None
    table, preds = lp.layer_probes(
        run, layers=["conv2", "conv4"], C_grid=(0.1, 10.0), n_boot=200, return_predictions=True
    )
    print(table[["layer", "accuracy", "ci_low", "ci_high", "chance", "n_classes", "n_clips", "C", "cv"]].to_string())
    assert table["layer"].tolist() == ["conv2", "conv4"] and (table["metric"] == "mAP").all()
    assert (table["n_clips"] == 14).all() and (table["n_classes"] == 5).all()  # "Male speech" has one group
    assert table["accuracy"].between(0, 1).all() and table["chance"].between(0, 1).all()
    assert set(preds["category"]) == {"Ambient music", "Animal", "Music", "Speech", "Tabla"}
    # the study: the same table (mAP), per-label AP, paired mAP tests; written into the run
    from interp.studies import layer_probes as study

    out = tmp_path / "report"
    assert study.main(["--run", str(run.path), "--out", str(out), "--no-baselines", "--layer", "conv2", "conv4"]) == 0
    stored = run.read_table("probes")
    assert stored["metric"].tolist() == ["mAP", "mAP"] and stored["layer"].tolist() == ["conv2", "conv4"]
    summary = (out / "summary.md").read_text()
    assert "best layer (mAP)" in summary and "chance mAP" in summary


def test_check2_for_map_equal_layers_name_no_best_layer_in_95_percent_of_runs():
    """Check 2 for the mAP rule: 7 layers with independent random scores (80 clips in 40 groups)."""
    from interp.analysis import multilabel_probes as mlp

    rng = np.random.default_rng(1)
    n, n_labels, runs, none = 80, 3, 100, 0
    groups = np.repeat(np.arange(n // 2), 2)
    cats = np.tile(["a", "b", "c"], n)
    for r in range(runs):
        y = (rng.random((n, n_labels)) < 0.3).ravel()
        preds = pd.concat(
            pd.DataFrame(
                {
                    "probe": "pretrained",
                    "layer": f"conv{k}",
                    "clip_id": np.repeat(np.arange(n), n_labels),
                    "category": cats,
                    "score": rng.random(n * n_labels),
                    "positive": y,
                    "fold": np.repeat(groups % 5, n_labels),
                    "group": np.repeat(groups, n_labels),
                }
            )
            for k in range(1, 8)
        )
        none += mlp.best_layer_map(preds, n_boot=500, seed=r)["best"] == ps.NO_BEST
    assert none / runs >= 0.95
