"""The text helpers of interp.report.cards: moments in a clip's own time and unit label status."""

from __future__ import annotations

import math

import numpy as np
import pytest

from interp.report.cards import clip_moment, format_moment, format_unit_status, short_unit_status, unit_status
from soundnet.geometry import frames_to_time, layer_geometry


def test_moments_are_clipped_to_the_clip_and_say_where_the_field_leaves_it():
    first = float(frames_to_time(0, "conv7"))
    assert first < 0  # conv7's first frame is centred before the clip start
    t, note = clip_moment(first, 0.37, "conv7")
    assert t == 0.0 and note == "its receptive field extends past both ends of the clip"
    assert format_moment(first, 0.37, "conv7") == "0.00 s (its receptive field extends past both ends of the clip)"
    t, note = clip_moment(first, 30.0, "conv7")
    assert t == 0.0 and note == "its receptive field starts before the clip"
    assert clip_moment(29.9, 30.0, "conv7") == (29.9, "its receptive field ends after the clip")
    assert clip_moment(31.0, 30.0, "conv7")[0] == 30.0
    # a shallow layer's frame well inside the clip: no note, time unchanged
    assert clip_moment(1.5, 3.0, "conv3") == (1.5, "")
    assert format_moment(1.5, 3.0, "conv3") == "1.50 s"
    # unknown duration: only the lower bound
    assert clip_moment(-0.2, float("nan"), "conv5")[0] == 0.0 and clip_moment(100.0, None, "conv5")[0] == 100.0
    assert math.isnan(clip_moment(float("nan"), 3.0, "conv5")[0]) and format_moment(np.nan, 3.0, "conv5") == "-"
    # every frame time of every layer, in a clip of any length, is shown inside [0, duration]
    for layer in ("conv1", "conv4", "conv6", "conv7"):
        g = layer_geometry(layer)
        for dur in (0.1, 1.0, 5.0):
            times = frames_to_time(np.arange(int(dur / g.hop_s) + 2), layer)
            shown = [clip_moment(float(x), dur, layer)[0] for x in times]
            assert min(shown) >= 0.0 and max(shown) <= dur


NEW = {
    "label": "speech",
    "best_category": "speech",
    "auroc": 0.912,
    "q": 1e-5,
    "selective": True,
    "status": "selective",
    "runner_up": "music",
    "auroc_runner_up": 0.62,
    "margin": 0.292,
    "win_fraction": 0.99,
    "p_unit": 0.001,
    "q_unit": 0.0021,
    "categories": "speech",
}


def test_status_of_new_tables():
    assert format_unit_status(NEW) == (
        "selective for speech (AUROC 0.91 vs 0.62 for music, wins 99 % of resamples, unit q = 0.002)"
    )
    assert short_unit_status(NEW) == "speech" and unit_status(NEW)["unit_level"]
    poly = {**NEW, "status": "polysemantic", "label": "none", "categories": "speech;kick_drum"}
    assert format_unit_status(poly) == "polysemantic: speech; kick_drum" == short_unit_status(poly)
    assert unit_status(poly)["label"] == ""
    off = {**NEW, "status": "unlabelled", "label": "none", "selective": False, "auroc": 0.61, "categories": ""}
    assert format_unit_status(off) == "unlabelled (best: speech, AUROC 0.61)" and short_unit_status(off) == "unlabelled"
    # missing unit-level numbers (NaN) are left out, not printed as nan
    sparse = {**NEW, "win_fraction": np.nan, "q_unit": None, "runner_up": None}
    assert format_unit_status(sparse) == "selective for speech (AUROC 0.91)"


@pytest.mark.parametrize("selective", [True, False])
def test_status_of_old_tables_falls_back_to_selective_and_label(selective):
    old = {
        "label": "speech" if selective else "none",
        "best_category": "speech",
        "score": 0.78,
        "auroc": 0.783,
        "q": 9.0e-6,
        "n_selective_categories": 2 if selective else 0,
        "selective": selective,
    }
    s = unit_status(old)
    assert s["status"] == ("selective" if selective else "unlabelled") and not s["unit_level"]
    if selective:
        assert format_unit_status(old) == "selective for speech (AUROC 0.78, pair-level q = 9.0e-06)"
        assert short_unit_status(old) == "speech"
    else:
        assert format_unit_status(old) == "unlabelled (best: speech, AUROC 0.78)"
        assert short_unit_status(old) == "unlabelled"
