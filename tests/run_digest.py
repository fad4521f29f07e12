"""A compact, tolerance-aware fingerprint of a run directory's tables.

``digest(run_dir)`` reads every Parquet table of a run (clips, activations, top-k and the
analysis tables) and returns a JSON-able dict: per table its shape and columns; per column of
strings or integers a sha256 of the values in row order (exact); per float column its count of
NaN, its sum, sum of squares and a fixed random projection (compared with a relative tolerance,
since float reductions may differ in the last bits between CPUs). ``compare`` lists every
difference between two digests.

Regenerate the checked-in digest of the demo run (only when a change *means* to change the
numbers, and say so in the commit)::

    python -m tests.run_digest runs/demo tests/data/demo_digest.json.gz
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

# columns whose value is a path: they differ between clones by design (a clip_id is a hash of the
# resolved path, so clip ids are replaced by the clip's position in the corpus table)
_VOLATILE = {"path"}
_FLOAT_RTOL = 1e-4


def _column_digest(values: np.ndarray) -> dict:
    if values.dtype.kind == "f":
        v = values.astype(np.float64)
        finite = np.isfinite(v)
        w = np.where(finite, v, 0.0)
        proj = np.random.default_rng(0).standard_normal(len(w))
        return {
            "kind": "float",
            "n_nan": int((~finite).sum()),
            "sum": float(w.sum()),
            "sumsq": float((w * w).sum()),
            "proj": float(w @ proj),
            "scale": float(np.abs(w).sum()),
        }
    text = "\x1f".join(map(str, values.tolist()))
    return {"kind": "exact", "sha256": hashlib.sha256(text.encode()).hexdigest()}


def table_digest(path: Path, order: dict[str, int]) -> dict:
    """Digest of one Parquet table (see the module docstring); ``order`` maps clip ids to positions."""
    table = pq.read_table(path)
    cols = {}
    for name in table.column_names:
        if name in _VOLATILE:
            continue
        col = table.column(name)
        if name == "clip_id":
            cols[name] = _column_digest(np.asarray([order[c] for c in col.to_pylist()]))
            continue
        if col.type.equals("string") or str(col.type).startswith("dictionary"):
            values = np.asarray(col.to_pylist(), dtype=object)
        else:
            values = col.to_numpy(zero_copy_only=False)
        cols[name] = _column_digest(values)
    return {"rows": table.num_rows, "columns": table.column_names, "digests": cols}


def digest(run_dir: str | Path) -> dict:
    """Digest of every Parquet table of a run directory (shards and caches excluded)."""
    run_dir = Path(run_dir)
    clips = pq.read_table(run_dir / "clips.parquet", columns=["clip_id", "order"]).to_pydict()
    order = dict(zip(clips["clip_id"], clips["order"]))
    out = {}
    for path in sorted(run_dir.glob("*.parquet")) + sorted((run_dir / "activations").glob("*.parquet")):
        out[str(path.relative_to(run_dir))] = table_digest(path, order)
    return out


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= _FLOAT_RTOL * max(scale, 1e-12) + 1e-9


def compare(
    expected: dict,
    actual: dict,
    *,
    new_tables: frozenset[str] = frozenset(),
    new_columns: dict[str, frozenset[str]] | None = None,
) -> list[str]:
    """Differences between two digests, as readable lines (empty when they agree).

    ``new_tables`` names tables, ``new_columns`` columns per table, that a later change added on
    purpose: they may be in ``actual`` without being in ``expected``. Every table and column of
    ``expected`` is still compared, in its order.
    """
    new_columns = new_columns or {}
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"{name}: missing")
            continue
        if name not in expected:
            if name not in new_tables:
                problems.append(f"{name}: unexpected table")
            continue
        e, a = expected[name], actual[name]
        added = [c for c in a["columns"] if c not in e["columns"]]
        kept = [c for c in a["columns"] if c in e["columns"]]
        if e["rows"] != a["rows"] or kept != e["columns"] or set(added) - new_columns.get(name, frozenset()):
            problems.append(
                f"{name}: shape {e['rows']} rows {len(e['columns'])} cols -> "
                f"{a['rows']} rows {len(a['columns'])} cols (added {added})"
            )
            continue
        for col, ed in e["digests"].items():
            ad = a["digests"].get(col)
            if ad is None or ad["kind"] != ed["kind"]:
                problems.append(f"{name}:{col}: kind changed")
            elif ed["kind"] == "exact":
                if ed["sha256"] != ad["sha256"]:
                    problems.append(f"{name}:{col}: values differ")
            else:
                scale = max(ed["scale"], ad["scale"])
                if ed["n_nan"] != ad["n_nan"] or not all(
                    _close(ed[k], ad[k], scale if k != "sumsq" else max(ed[k], ad[k])) for k in ("sum", "sumsq", "proj")
                ):
                    problems.append(f"{name}:{col}: float values differ beyond rtol {_FLOAT_RTOL}")
    return problems


def load(path: str | Path) -> dict:
    """Read a digest written by :func:`save` (gzipped JSON)."""
    with gzip.open(path, "rt") as f:
        return json.load(f)


def save(d: dict, path: str | Path) -> None:
    """Write a digest as gzipped JSON (``mtime=0``: the same digest gives the same bytes)."""
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write((json.dumps(d, sort_keys=True) + "\n").encode())


if __name__ == "__main__":
    run, out = sys.argv[1], sys.argv[2]
    save(digest(run), out)
    print(f"wrote {out}")
