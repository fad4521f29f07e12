"""The streamed overlap pass of temporal dissection against a plain reference.

:class:`interp.analysis.dissection_stream.LayerAccumulator` computes every count from prefix
sums at chosen frame positions (sparse for long layers, dense for short ones), for a batch of
clips at once. Here random activations and events go through it and through a frame-by-frame
loop written from the definitions (a frame belongs to an event when its centre lies inside it;
the alignment null shifts each clip's concept masks circularly by each of its lags), and
everything must agree: intersections, above-threshold counts, the null's three moments, each
event's hits and the onset profiles.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interp.analysis.dissection import DissectConfig
from interp.analysis.dissection_stream import LayerAccumulator, clip_events, clip_lags, frame_grid
from soundnet.geometry import SAMPLE_RATE_HZ


def _reference(acts, centre, first, events, thr, k, lags_per_clip, edges):
    """Frame-by-frame sums over clips: inter, above, null moments (k, u), hits, profiles."""
    u, t = acts.shape[1], len(centre)
    inter = np.zeros((k, u))
    mean, var, mu3, mean_all = np.zeros((k, u)), np.zeros((k, u)), np.zeros((k, u)), np.zeros((k, u))
    above_n = np.zeros(u)
    hits = []
    prof_sum = np.zeros((k, len(edges) - 1, u))
    prof_n = np.zeros((k, len(edges) - 1))
    for a_full, (on, off, lab), lags in zip(acts, events, lags_per_clip):
        a = a_full[:, first : first + t]
        above = a > thr[:, None]
        above_n += above.sum(axis=1)
        for e in range(len(on)):
            inside = (centre >= on[e]) & (centre < off[e])
            if inside.any():
                hits.append(above[:, inside].sum(axis=1))
            rel = centre - on[e]
            for b in range(len(edges) - 1):
                sel = (rel >= edges[b]) & (rel < edges[b + 1])
                prof_sum[lab[e], b] += a[:, sel].sum(axis=1)
                prof_n[lab[e], b] += sel.sum()
        for c in np.unique(lab):
            mask = np.zeros(t, dtype=bool)
            for e in np.flatnonzero(lab == c):
                mask |= (centre >= on[e]) & (centre < off[e])
            xc = np.stack([(above & np.roll(mask, lag)[None, :]).sum(axis=1) for lag in lags], axis=1)  # (u, lags)
            inter[c] += xc[:, 0]
            m = xc.mean(axis=1)
            mean[c] += m
            mean_all[c] += above.sum(axis=1) * mask.sum() / t  # a uniform lag over all t
            var[c] += ((xc - m[:, None]) ** 2).mean(axis=1)
            mu3[c] += ((xc - m[:, None]) ** 3).mean(axis=1)
    return inter, above_n, mean, var, mu3, mean_all, np.stack(hits), prof_sum, prof_n


@pytest.mark.parametrize(
    ("layer", "seconds", "null_lags"),
    [("conv1", 0.6, 16), ("conv3", 6.0, 128), ("conv5", 9.0, 20), ("conv7", 12.0, 128)],
)
def test_accumulator_matches_frame_by_frame_sums(layer, seconds, null_lags):
    rng = np.random.default_rng(7)
    n_samples = int(seconds * SAMPLE_RATE_HZ)
    first, stop, centre = frame_grid(layer, n_samples, 1.0)
    t = stop - first
    assert t > 3
    n_clips, u, k = 3, 5, 3
    acts = rng.standard_normal((n_clips, u, stop + 2)).astype(np.float32)
    thr = np.quantile(acts, 0.8, axis=(0, 2))
    rows = []
    span = centre[-1] - centre[0]
    for i in range(n_clips):
        for _ in range(4):  # overlapping events of the same concept included
            on = centre[0] + rng.uniform(-0.1, 0.9) * span
            rows.append(
                {
                    "clip_id": f"c{i}",
                    "onset_s": on,
                    "offset_s": on + rng.uniform(0.05, 0.5) * span,
                    "label": "abc"[rng.integers(k)],
                }
            )
    events = pd.DataFrame(rows)
    concepts = ["a", "b", "c"]
    per = clip_events(events, concepts)
    cfg = DissectConfig(null_lags=null_lags, profile_window_s=(-0.2 * span, 0.4 * span), profile_bin_s=0.1 * span)
    acc = LayerAccumulator(layer, thr, k, cfg)
    positions = [10, 11, 12]
    acc.add(acts, n_samples, [per[f"c{i}"] for i in range(n_clips)], [0] * n_clips, positions)
    lags = [clip_lags(t, null_lags, cfg.seed, pos) for pos in positions]
    assert all(lag[0] == 0 and len(set(lag)) == len(lag) == min(t, null_lags) for lag in lags)
    assert (t > null_lags) == (not np.array_equal(lags[0], lags[1]))  # random lags are each clip's own
    ev = [(per[f"c{i}"].on_s, per[f"c{i}"].off_s, per[f"c{i}"].concept) for i in range(n_clips)]
    inter, above_n, mean, var, mu3, mean_all, hits, prof_sum, prof_n = _reference(
        acts, centre, first, ev, thr.astype(np.float32), k, lags, acc.edges
    )
    np.testing.assert_array_equal(acc.above, above_n)
    np.testing.assert_array_equal(acc.inter, inter)
    np.testing.assert_allclose(acc.null_mean, mean, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(acc.null_mean_all, mean_all, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(acc.null_var, var, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(acc.null_mu3, mu3, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.concatenate(acc.hits), hits)
    np.testing.assert_array_equal(acc.prof_n, prof_n)
    np.testing.assert_allclose(acc.prof_sum, prof_sum, rtol=1e-4, atol=1e-3)
    # a batch without events counts its above-threshold frames only
    bare = LayerAccumulator(layer, thr, k, cfg)
    bare.add(acts, n_samples, [None] * n_clips, [-1] * n_clips, positions)
    np.testing.assert_array_equal(bare.above, above_n)
    assert not bare.hits and not bare.inter.any()
