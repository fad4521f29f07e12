"""Streaming statistics that can be saved, restored and merged exactly (baukit style).

:class:`TopK` keeps, per unit, the ``k`` largest values seen with their clip positions and
payloads (e.g. the peak time). ``merge`` of two TopK built on disjoint shards equals the TopK of
the union, whatever the order, because ties are broken by a global sort key (the clip's corpus
order), never by arrival order.
"""

from __future__ import annotations

import numpy as np

from soundnet.errors import ParameterError

__all__ = ["TopK"]


class TopK:
    """Per-unit top-``k`` of values over a stream of rows.

    Parameters
    ----------
    n_units : int
    k : int
        How many entries to keep per unit.

    Attributes
    ----------
    values_ : np.ndarray, shape (n_units, k), float64
        Kept values, descending (ties: smaller key first); ``-inf`` where fewer than ``k``
        non-NaN values were seen.
    keys_ : np.ndarray, shape (n_units, k), int64
        Sort key (e.g. corpus order) of each kept value; ``-1`` for empty slots.
    payload_ : np.ndarray, shape (n_units, k), float64
        A value carried along (e.g. peak time in seconds).
    """

    def __init__(self, n_units: int, k: int) -> None:
        for name, value in (("n_units", n_units), ("k", k)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"The '{name}' parameter of TopK must be an int >= 1. Got {value!r} instead.")
        self.n_units = int(n_units)
        self.k = int(k)
        self.values_ = np.full((self.n_units, self.k), -np.inf)
        self.keys_ = np.full((self.n_units, self.k), -1, dtype=np.int64)
        self.payload_ = np.full((self.n_units, self.k), np.nan)

    def add(self, values: np.ndarray, keys: np.ndarray, payload: np.ndarray | None = None) -> TopK:
        """Add a batch of rows.

        Parameters
        ----------
        values : np.ndarray, shape (n_rows, n_units)
            NaN values are ignored.
        keys : np.ndarray, shape (n_rows,)
            Unique integer sort keys of the rows (smaller wins ties).
        payload : np.ndarray, shape (n_rows, n_units), optional
        """
        if not (isinstance(values, np.ndarray) and values.dtype == np.float32):
            values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_units:
            raise ParameterError(
                f"The 'values' parameter of TopK.add must have shape (n_rows, {self.n_units}). "
                f"Got {values.shape} instead."
            )
        n = values.shape[0]
        keys = np.asarray(keys)
        if keys.shape != (n,) or (n and (not np.issubdtype(keys.dtype, np.integer) or keys.min() < 0)):
            raise ParameterError(
                f"The 'keys' parameter of TopK.add must be {n} integers >= 0 (one per row). "
                f"Got shape {keys.shape}, dtype {keys.dtype} instead."
            )
        if payload is not None and np.shape(payload) != values.shape:
            raise ParameterError(
                f"The 'payload' parameter of TopK.add must have the shape of 'values' "
                f"{values.shape}. Got {np.shape(payload)} instead."
            )
        if n == 0:
            return self
        if values.dtype == np.float32 and n > self.k and keys.max() < 2**32:
            # each unit's k best rows of the batch (no other row can enter the top-k), in O(n);
            # the sort of the combination is then over 2k values per unit
            rows = self._best_rows(values, keys)
            vals = np.take_along_axis(values.T, rows, axis=1).astype(np.float64)
            pay = (
                np.full(rows.shape, np.nan)
                if payload is None
                else np.take_along_axis(np.asarray(payload).T, rows, axis=1).astype(np.float64)
            )
            self._combine(np.where(np.isnan(vals), -np.inf, vals), keys.astype(np.int64)[rows], pay)
            return self
        values = values.astype(np.float64, copy=False)
        keys = np.broadcast_to(keys.astype(np.int64)[:, None], values.shape).T
        pay = np.full(values.shape, np.nan) if payload is None else np.asarray(payload, dtype=np.float64)
        vals = np.where(np.isnan(values), -np.inf, values).T
        self._combine(vals, keys, pay.T)
        return self

    def _best_rows(self, values32: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """``(n_units, k)`` row indices of each unit's ``k`` best rows of float32 ``values32``
        ``(n_rows, n_units)`` (value descending, NaN last, ties: smaller key first), in no
        particular order.

        Each value and key become one int64, ordered as (value descending, key ascending): the
        float's bits mapped to an order-preserving int32, complemented, in the high half, the key
        (< 2**32) in the low half. An exact top-k is then one ``argpartition``.
        """
        v = np.where(np.isnan(values32), np.float32(-np.inf), values32 + np.float32(0.0))  # -0.0 -> 0.0
        bits = v.view(np.int32)
        ordered = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))  # int32 order = float order
        composite = (~ordered).astype(np.int64).T << 32 | keys.astype(np.int64)[None, :]
        return np.argpartition(composite, self.k - 1, axis=1)[:, : self.k]

    def _combine(self, vals: np.ndarray, keys: np.ndarray, pay: np.ndarray) -> None:
        v = np.concatenate([self.values_, vals], axis=1)
        kk = np.concatenate([self.keys_, keys], axis=1)
        p = np.concatenate([self.payload_, pay], axis=1)
        # empty slots (key -1) must lose every tie: give them the largest sort key
        tie = np.where(kk < 0, np.iinfo(np.int64).max, kk)
        order = np.lexsort((tie, -v), axis=1)[:, : self.k]
        self.values_ = np.take_along_axis(v, order, axis=1)
        self.keys_ = np.take_along_axis(kk, order, axis=1)
        self.payload_ = np.take_along_axis(p, order, axis=1)
        empty = self.values_ == -np.inf
        self.keys_[empty] = -1
        self.payload_[empty] = np.nan

    def merge(self, other: TopK) -> TopK:
        """Fold in another TopK of the same shape (built on other rows)."""
        if (other.n_units, other.k) != (self.n_units, self.k):
            raise ParameterError(
                f"The 'other' parameter of TopK.merge must have n_units={self.n_units}, "
                f"k={self.k}. Got n_units={other.n_units}, k={other.k} instead."
            )
        self._combine(other.values_, other.keys_, other.payload_)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays to save with ``np.savez`` (no pickle)."""
        return {"values": self.values_, "keys": self.keys_, "payload": self.payload_, "k": np.array(self.k)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> TopK:
        """Restore from :meth:`state_dict` (or the ``np.load`` of its ``.npz``)."""
        values = np.array(state["values"], dtype=np.float64)
        keys = np.array(state["keys"], dtype=np.int64)
        payload = np.array(state["payload"], dtype=np.float64)
        if values.ndim != 2 or keys.shape != values.shape or payload.shape != values.shape:
            raise ParameterError(
                f"The 'state' parameter of TopK.load_state_dict must hold values, keys and "
                f"payload of one 2-D shape. Got {values.shape}, {keys.shape}, "
                f"{payload.shape} instead."
            )
        self.values_, self.keys_, self.payload_ = values, keys, payload
        self.n_units, self.k = values.shape
        return self
