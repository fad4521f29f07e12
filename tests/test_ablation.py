"""interp.analysis.ablation: hooks that zero units and remove themselves; causal effect of selective units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interp.analysis import ablation as A
from interp.analysis import selectivity as S
from soundnet import load_audio
from soundnet.errors import ParameterError
from soundnet.model import LAYERS


@pytest.fixture(scope="module")
def clip_input(minibank_dir):
    path = sorted((minibank_dir / "audio" / "speech").glob("*.flac"))[0]
    return load_audio(path, short="tile")  # (1, 1, 209374): every layer has frames


def _hook_count(model) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.mark.parametrize("layer", ["conv1", "conv5", "conv6", "conv8"])
def test_ablate_zeroes_only_the_chosen_units(model, clip_input, layer):
    units = [0, 3, 7]
    with torch.inference_mode():
        before = model.extract_features(clip_input)
        n0 = _hook_count(model)
        with A.ablate(model, {layer: units}) as m:
            assert m is model and _hook_count(model) == n0 + 1
            during = model.extract_features(clip_input)
            objects, _places = model(clip_input)  # the plain forward path is hooked too
        after = model.extract_features(clip_input)
    assert _hook_count(model) == n0
    assert float(before[layer][:, units].abs().max()) > 0  # there was something to remove
    assert torch.all(during[layer][:, units] == 0)
    keep = [u for u in range(before[layer].shape[1]) if u not in units]
    assert torch.equal(during[layer][:, keep], before[layer][:, keep])
    i = LAYERS.index(layer)
    for earlier in LAYERS[:i]:
        assert torch.equal(during[earlier], before[earlier])
    if layer != "conv8":
        assert not torch.equal(during["conv8"], before["conv8"])  # the change propagates
        assert torch.equal(objects, during["conv8"])
    for name in LAYERS:
        assert torch.equal(after[name], before[name])  # and is gone after exit


def test_ablate_removes_hooks_on_error_and_validates(model, clip_input):
    n0 = _hook_count(model)
    with pytest.raises(RuntimeError, match="boom"):
        with A.ablate(model, {"conv7": [1], "conv2": [4]}):
            assert _hook_count(model) == n0 + 2
            raise RuntimeError("boom")
    assert _hook_count(model) == n0
    with pytest.raises(ParameterError, match="conv9"):
        with A.ablate(model, {"conv9": [0]}):
            pass
    with pytest.raises(ParameterError, match=r"\[0, 15\]"):
        with A.ablate(model, {"conv1": [16]}):
            pass
    with pytest.raises(ParameterError):
        with A.ablate(model, [("conv1", [0])]):
            pass
    assert _hook_count(model) == n0
    with A.ablate(model, {"conv3": []}):  # nothing to zero: no hook
        assert _hook_count(model) == n0


@pytest.fixture(scope="session")
def minibank_run(minibank_dir, model, tmp_path_factory):
    from interp.recording import record_corpus
    from interp.run.store import open_run

    out = tmp_path_factory.getbasetemp() / "minibank_run"  # shared with test_selectivity.py
    record_corpus(str(minibank_dir), out, model=model, progress=False)
    return open_run(out)


@pytest.fixture(scope="module")
def conv5_runner(minibank_run, model):
    _, waves = A.run_clip_waves(minibank_run)
    return A.HeadRunner(model, waves, layer="conv5")


@pytest.mark.slow
def test_head_runner_reproduces_the_recorded_probabilities(minibank_run, conv5_runner):
    base = conv5_runner.probabilities()
    for head in ("conv8", "conv8_2"):
        rec = minibank_run.activations(head, "prob").to_numpy(np.float64)
        np.testing.assert_allclose(base[head], rec, atol=1e-5)
    logp = conv5_runner.log_probabilities()
    # clean head frames only: no clip collapses onto one class (the padded edge frame did)
    assert np.isfinite(logp["conv8"]).all() and (np.exp(logp["conv8"]).max(axis=1) < 0.5).mean() > 0.9


@pytest.mark.slow
def test_unit_output_effects(minibank_run, model):
    run = minibank_run
    unit = int(run.activations("conv7", "mean").mean().idxmax())  # a unit active on most clips
    clips = run.topk("conv7", unit)["clip_id"].head(4).tolist()
    eff = A.unit_output_effects(run, "conv7", unit, model=model, clips=clips, top=4)
    assert list(eff.columns) == ["head", "rank", "class_index", "class_name", "delta_logp", "delta", "base"]
    assert len(eff) == 8 and set(eff["head"]) == {"conv8", "conv8_2"}
    for _, t in eff.groupby("head"):
        assert t["delta_logp"].is_monotonic_increasing and t["delta_logp"].iloc[0] < 0


@pytest.fixture(scope="module")
def conv7_runner(minibank_run, model):
    _, waves = A.run_clip_waves(minibank_run)
    return A.HeadRunner(model, waves, layer="conv7")


@pytest.mark.slow
@pytest.mark.parametrize(
    "layer,category", [("conv5", "speech"), ("conv5", "kick_drum"), ("conv7", "speech"), ("conv7", "kick_drum")]
)
def test_zeroing_top_units_hurts_the_category_more_than_random_units(
    minibank_run, conv5_runner, conv7_runner, layer, category
):
    """Check 4: a category's top-20 units (by AUROC) vs 20 random units of the layer, 10 draws.

    Score: a linear probe's log-odds for the category on the category's clips, reading the heads'
    clip-level log-probabilities (clean head frames only).
    """
    runner = conv5_runner if layer == "conv5" else conv7_runner
    # conv7's units are ranked on the max over time: with the default vmean, the short kick and
    # speech clips have no valid conv7 frame (they are left out of conv7's statistics)
    opts = {"stat": "max"} if layer == "conv7" else {}
    res = A.category_ablation_effect(minibank_run, category, layer, runner=runner, readout="heads", **opts)
    assert res.attrs["readout"] == "heads"
    top = res.loc[res["condition"] == "top", "drop"].iloc[0]
    rand = res.loc[res["condition"] == "random", "drop"]
    assert len(rand) == 10 and len(res.loc[res["condition"] == "top", "units"].iloc[0]) == 20
    sel = S.run_selectivity(minibank_run, **opts)
    expected = S.rank_table(sel, category, layer=layer, top=20)["unit"].tolist()
    assert res.loc[res["condition"] == "top", "units"].iloc[0] == expected
    assert top > 0
    assert top > rand.mean(), (top, rand.tolist())


# ------------------------------------------------------------------------------------------
# issue 17: cross-fitted effects against matched random units
# ------------------------------------------------------------------------------------------
def test_matched_random_units_match_strength_and_avoid_the_chosen():
    from interp.analysis import effects as fx

    strength = np.arange(100, dtype=float)  # unit i has strength i
    chosen = [99, 98, 50, 3]
    draws = fx.matched_random_units(strength, chosen, n_draws=500, n_bins=10, matching="bins", seed=0)
    assert draws.shape == (500, 4)
    assert not np.isin(draws, chosen).any() and all(len(set(r)) == 4 for r in draws)
    # each unit drawn from its own decile of the other 96 units
    assert draws[:, 0].min() >= 86 and draws[:, 2].min() >= 40 and draws[:, 2].max() <= 60 and draws[:, 3].max() <= 10
    assert fx.empirical_p(1.0, np.zeros(500)) == pytest.approx(1 / 501)
    assert fx.empirical_p(0.0, np.zeros(500)) == 1.0
    lo, hi = fx.group_bootstrap_mean(np.r_[np.zeros(10), np.ones(10)], np.repeat(np.arange(2), 10), n_boot=200)
    assert lo == 0.0 and hi == 1.0  # two groups: each resample is all 0, all 1 or half
    with pytest.raises(ParameterError, match="chosen"):
        fx.matched_random_units(strength, [1, 1], n_draws=2)
    # nearest-neighbour matching (the default): each draw among the units nearest in strength
    # (here 96 // 20 = 4 of them), tighter than a decile
    near = fx.matched_random_units(strength, chosen, n_draws=500, seed=0)
    assert not np.isin(near, chosen).any() and all(len(set(r)) == 4 for r in near)
    assert near[:, 0].min() >= 92 and 47 <= near[:, 2].min() and near[:, 2].max() <= 53 and near[:, 3].max() <= 7
    assert abs(np.median(strength[near[:, 0]]) - 99) < abs(np.median(strength[draws[:, 0]]) - 99)


@pytest.mark.slow
def test_ablation_runner_equals_the_hooked_model(minibank_run, model):
    from interp.analysis.ablation_runner import AblationRunner

    _, waves = A.run_clip_waves(minibank_run)
    waves = waves[::20]
    fill = A.unit_means(minibank_run, "conv5")
    runner = AblationRunner(model, waves, layer="conv5", features=["conv7", "heads"], fill=fill)
    head = A.HeadRunner(model, waves, layer="conv5")
    units = [int(u) for u in np.argsort(-fill)[:6]]
    got = runner.features([(np.arange(len(waves)), units)])[0]
    with A.ablate(model, {"conv5": units}, values={"conv5": fill}):
        ref = head._outputs([])
    np.testing.assert_allclose(got["conv7"], ref["conv7"], atol=1e-5)
    np.testing.assert_allclose(got["heads"], np.concatenate([ref["conv8"], ref["conv8_2"]], axis=1), atol=1e-4)


def _planted(model, unit: int, *, causal: bool):
    """A copy of SoundNet whose heads read conv7 ``unit`` only (causal: class 0's logit follows
    the unit, every other weight of the heads zeroed) or every conv7 unit but this one (its
    outgoing head weights zeroed: the unit stays exactly as selective, its ablation does nothing,
    while ablating other units changes the heads as in SoundNet)."""
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for head in ("conv8", "conv8_2"):
            w = getattr(m, head)[0].weight
            if causal:
                w.zero_()
            else:
                w[:, unit, :] = 0.0
        if causal:
            m.conv8[0].weight[0, unit, :] = 25.0  # a few nats over the unit's range on tiled clips
    return m


@pytest.mark.slow
def test_check1_planted_causal_unit_is_found_and_a_selective_bystander_is_not(minibank_run, model):
    """Check 1: a planted causal unit beats 500 matched draws (p < 0.01); a selective unit the
    heads do not read does not (p > 0.05). Units chosen and readouts fitted on training folds."""
    from interp.analysis import causal as C

    cat = "instrument"
    sel = S.run_selectivity(minibank_run, stat="max")
    unit = int(S.rank_table(sel, cat, layer="conv7", top=1)["unit"].iloc[0])
    opts = dict(
        layer="conv7", measures=("heads",), n_units=1, n_random=500, doses=[], stat="max", categories=[cat], seed=0
    )
    found = C.causal_effects(minibank_run, _planted(model, unit, causal=True), **opts)
    chosen = found["units"].query("rank == 0")["unit"].tolist()
    assert chosen.count(unit) >= len(chosen) - 1, chosen  # the selective unit is chosen in the folds
    e = found["effects"].iloc[0]
    assert e["n_draws"] == 500 and e["p"] < 0.01 and e["drop"] > 0 and e["ci_low"] > 0, e.to_dict()
    bystander = C.causal_effects(minibank_run, _planted(model, unit, causal=False), **opts)
    b = bystander["effects"].iloc[0]
    assert b["p"] > 0.05, b.to_dict()
    assert b["auroc_train"] == pytest.approx(e["auroc_train"])  # equally selective
