"""Streaming statistics that can be saved, restored and merged exactly (baukit style).

:class:`TopK` keeps, per unit, the ``k`` largest values seen with their clip positions and
payloads (e.g. the peak time). ``merge`` of two TopK built on disjoint shards equals the TopK of
the union, whatever the order, because ties are broken by a global sort key (the clip's corpus
order), never by arrival order.
"""

from __future__ import annotations

import numpy as np

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
        Kept values, descending; ``-inf`` where fewer than ``k`` rows were seen.
    keys_ : np.ndarray, shape (n_units, k), int64
        Sort key (e.g. corpus order) of each kept value; ``-1`` for empty slots.
    payload_ : np.ndarray, shape (n_units, k), float64
        A value carried along (e.g. peak time in seconds).
    """

    def __init__(self, n_units: int, k: int) -> None:
        self.n_units = int(n_units)
        self.k = int(k)
        self.values_ = np.full((self.n_units, self.k), -np.inf)
        self.keys_ = np.full((self.n_units, self.k), -1, dtype=np.int64)
        self.payload_ = np.full((self.n_units, self.k), np.nan)

    def add(self, values: np.ndarray, keys: np.ndarray, payload: np.ndarray | None = None) -> "TopK":
        """Add a batch of rows.

        Parameters
        ----------
        values : np.ndarray, shape (n_rows, n_units)
            NaN values are ignored.
        keys : np.ndarray, shape (n_rows,)
            Unique integer sort keys of the rows (smaller wins ties).
        payload : np.ndarray, shape (n_rows, n_units), optional
        """
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != self.n_units:
            raise ValueError(f"values must be (n_rows, {self.n_units}). Got {values.shape} instead.")
        n = values.shape[0]
        if n == 0:
            return self
        keys = np.broadcast_to(np.asarray(keys, dtype=np.int64)[:, None], values.shape).T
        pay = np.full(values.shape, np.nan) if payload is None else np.asarray(payload, dtype=np.float64)
        vals = np.where(np.isnan(values), -np.inf, values).T
        self._combine(vals, keys, pay.T)
        return self

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
        empty = ~np.isfinite(self.values_)
        self.keys_[empty] = -1
        self.payload_[empty] = np.nan

    def merge(self, other: "TopK") -> "TopK":
        """Fold in another TopK of the same shape (built on other rows)."""
        if (other.n_units, other.k) != (self.n_units, self.k):
            raise ValueError("TopK shapes differ")
        self._combine(other.values_, other.keys_, other.payload_)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays to save with ``np.savez`` (no pickle)."""
        return {"values": self.values_, "keys": self.keys_, "payload": self.payload_,
                "k": np.array(self.k)}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> "TopK":
        """Restore from :meth:`state_dict`."""
        self.values_ = np.array(state["values"], dtype=np.float64)
        self.keys_ = np.array(state["keys"], dtype=np.int64)
        self.payload_ = np.array(state["payload"], dtype=np.float64)
        self.n_units, self.k = self.values_.shape
        return self
