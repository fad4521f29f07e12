"""TopK: exact, order-independent merging of per-shard top-k (with ties, NaN and short shards)."""

from __future__ import annotations

import numpy as np
import pytest

from interp.run.runningstats import TopK
from soundnet.errors import ParameterError


def _brute_topk(values: np.ndarray, keys: np.ndarray, payload: np.ndarray, k: int):
    """Per unit, the k best (value desc, key asc) of the union, NaN ignored; -inf/-1/NaN padding."""
    n_units = values.shape[1]
    out_v = np.full((n_units, k), -np.inf)
    out_k = np.full((n_units, k), -1, dtype=np.int64)
    out_p = np.full((n_units, k), np.nan)
    for u in range(n_units):
        rows = [(values[i, u], keys[i], payload[i, u]) for i in range(len(keys)) if not np.isnan(values[i, u])]
        rows.sort(key=lambda r: (-r[0], r[1]))
        for r, (v, key, p) in enumerate(rows[:k]):
            out_v[u, r], out_k[u, r], out_p[u, r] = v, key, p
    return out_v, out_k, out_p


def _random_rows(rng: np.random.Generator, n_rows: int, n_units: int):
    # few distinct values -> many ties; some NaN (clips without a frame)
    values = rng.integers(0, 4, size=(n_rows, n_units)).astype(np.float64)
    values[rng.random(values.shape) < 0.15] = np.nan
    keys = rng.permutation(10 * n_rows)[:n_rows].astype(np.int64)  # unique, not sorted
    payload = rng.random((n_rows, n_units))
    return values, keys, payload


@pytest.mark.parametrize("seed", range(25))
def test_merge_of_shards_equals_topk_of_union(seed):
    rng = np.random.default_rng(seed)
    n_rows = int(rng.integers(0, 60))
    n_units = int(rng.integers(1, 6))
    k = int(rng.integers(1, 8))
    values, keys, payload = _random_rows(rng, n_rows, n_units)
    want = _brute_topk(values, keys, payload, k)

    # split into shards of random sizes (some empty), build each apart, merge in random order
    cuts = np.sort(rng.integers(0, n_rows + 1, size=int(rng.integers(0, 5))))
    parts = np.split(np.arange(n_rows), cuts)
    shards = []
    for idx in parts:
        t = TopK(n_units, k)
        # rows of a shard may arrive in several add() calls
        for sub in np.array_split(idx, max(1, len(idx) // 3)) if len(idx) else [idx]:
            t.add(values[sub], keys[sub], payload[sub])
        shards.append(t)
    merged = TopK(n_units, k)
    for j in rng.permutation(len(shards)):
        merged.merge(shards[j])

    one_pass = TopK(n_units, k).add(values, keys, payload)
    for got in (merged, one_pass):
        np.testing.assert_array_equal(got.values_, want[0])
        np.testing.assert_array_equal(got.keys_, want[1])
        np.testing.assert_array_equal(got.payload_, want[2])


@pytest.mark.parametrize("seed", range(25))
def test_float32_batches_take_the_preselection_and_agree(seed):
    """float32 batches longer than k go through TopK._best_rows (one argpartition of packed
    value/key integers): ties, NaN, -0.0, negative values and unsorted keys as the reference."""
    rng = np.random.default_rng(100 + seed)
    n_rows, n_units, k = int(rng.integers(2, 80)), int(rng.integers(1, 7)), int(rng.integers(1, 6))
    values = rng.choice(np.array([-2.5, -0.0, 0.0, 0.0, 1.0, 1.5, 3.0, np.inf, np.nan]), size=(n_rows, n_units)).astype(
        np.float32
    )
    values[:, 0] = rng.standard_normal(n_rows)  # and a unit of distinct values
    keys = rng.permutation(10 * n_rows)[:n_rows].astype(np.int64)
    payload = rng.random((n_rows, n_units)).astype(np.float32)
    want = _brute_topk(values.astype(np.float64), keys, payload.astype(np.float64), k)
    half = n_rows // 2
    for got in (
        TopK(n_units, k).add(values, keys, payload),
        TopK(n_units, k)
        .add(values[:half], keys[:half], payload[:half])
        .add(values[half:], keys[half:], payload[half:]),
    ):
        np.testing.assert_array_equal(got.values_, want[0])
        np.testing.assert_array_equal(got.keys_, want[1])
        np.testing.assert_array_equal(got.payload_, want[2])


def test_ties_are_broken_by_key_not_arrival():
    t = TopK(1, 2)
    t.add(np.array([[5.0]]), np.array([9]))
    t.add(np.array([[5.0], [5.0]]), np.array([4, 7]))
    assert t.keys_.tolist() == [[4, 7]]
    assert t.values_.tolist() == [[5.0, 5.0]]


def test_fewer_rows_than_k_leave_empty_slots():
    t = TopK(2, 3).add(np.array([[1.0, np.nan]]), np.array([0]), np.array([[0.5, 0.25]]))
    assert t.values_[0].tolist() == [1.0, -np.inf, -np.inf]
    assert t.keys_.tolist() == [[0, -1, -1], [-1, -1, -1]]
    assert t.payload_[0, 0] == 0.5 and np.isnan(t.payload_[0, 1:]).all() and np.isnan(t.payload_[1]).all()


def test_state_dict_round_trip_through_npz(tmp_path):
    rng = np.random.default_rng(0)
    values, keys, payload = _random_rows(rng, 40, 3)
    t = TopK(3, 5).add(values[:25], keys[:25], payload[:25])
    path = tmp_path / "topk.npz"
    np.savez(path, **t.state_dict())
    with np.load(path, allow_pickle=False) as z:
        restored = TopK(1, 1).load_state_dict(dict(z))
    assert (restored.n_units, restored.k) == (3, 5)
    for a, b in ((restored.values_, t.values_), (restored.keys_, t.keys_), (restored.payload_, t.payload_)):
        np.testing.assert_array_equal(a, b)
    # a restored statistic goes on exactly as the original
    restored.add(values[25:], keys[25:], payload[25:])
    want = _brute_topk(values, keys, payload, 5)
    np.testing.assert_array_equal(restored.values_, want[0])
    np.testing.assert_array_equal(restored.keys_, want[1])


def test_invalid_parameters_raise_parameter_error():
    with pytest.raises(ParameterError, match="'k' parameter of TopK"):
        TopK(3, 0)
    t = TopK(3, 2)
    with pytest.raises(ParameterError, match="'values' parameter"):
        t.add(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ParameterError, match="'keys' parameter"):
        t.add(np.zeros((2, 3)), np.array([0]))
    with pytest.raises(ParameterError, match="'payload' parameter"):
        t.add(np.zeros((2, 3)), np.array([0, 1]), np.zeros((2, 2)))
    with pytest.raises(ParameterError, match=r"'other' parameter of TopK\.merge"):
        t.merge(TopK(3, 3))
    with pytest.raises(ParameterError, match="'state' parameter"):
        t.load_state_dict({"values": np.zeros((2, 2)), "keys": np.zeros((2, 3)), "payload": np.zeros((2, 2))})
