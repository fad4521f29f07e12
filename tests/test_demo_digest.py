"""The demo run's tables are the ones checked in.

``tests/data/demo_digest.json.gz`` was written from a run of ``soundnet-interp record demo`` and
``soundnet-interp analyze`` (see ``tests/run_digest.py``): first with the code as it was before
the move into sub-packages (issue 14), regenerated when issue 15 added the ``vmean`` statistic,
the valid-frame counts and the unit-level labels, and when the best-against-runner-up threshold
``win_min`` became 0.975 (a two-sided 5 % comparison, issue 19), and when that comparison put
both categories against the same negatives (the clips of neither, issue 19). Re-recording through the command line must give the same tables: the
same rows and columns, the same strings and integers exactly (clip ids compared as corpus
positions, since a clip id hashes the clone's absolute path), every float column's sum, sum of
squares and random projection within a relative 1e-4.

A change that *means* to change these numbers regenerates the digest and says so in its commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interp.cli import main as cli_main
from tests.run_digest import compare, digest, load

DIGEST = Path(__file__).parent / "data" / "demo_digest.json.gz"
# tables and columns written since the digest was made, beside the unchanged ones (none now);
# every table in the digest must still be identical
NEW_TABLES: frozenset[str] = frozenset()
NEW_COLUMNS: dict[str, frozenset[str]] = {}


@pytest.mark.slow
def test_demo_run_tables_equal_the_checked_in_digest(tmp_path):
    run = tmp_path / "demo"
    assert cli_main(["record", "demo", "--out", str(run), "--quiet"]) == 0
    assert cli_main(["analyze", str(run)]) == 0
    problems = compare(load(DIGEST), digest(run), new_tables=NEW_TABLES, new_columns=NEW_COLUMNS)
    assert not problems, "the demo run's tables changed:\n" + "\n".join(problems[:40])


def test_the_digest_sees_a_changed_number(tmp_path):
    """The comparison is not blind: one altered activation is reported."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    run = tmp_path / "run"
    (run / "activations").mkdir(parents=True)
    pq.write_table(pa.table({"clip_id": ["a", "b"], "order": [0, 1], "path": ["/x", "/y"]}), run / "clips.parquet")
    table = pa.table({"clip_id": ["a", "b"], "0": pa.array([1.0, 2.0], pa.float32())})
    pq.write_table(table, run / "activations" / "conv1.max.parquet")
    before = digest(run)
    pq.write_table(
        table.set_column(1, "0", pa.array([1.0, 2.5], pa.float32())), run / "activations" / "conv1.max.parquet"
    )
    assert compare(before, digest(run)) == ["activations/conv1.max.parquet:0: float values differ beyond rtol 0.0001"]
    assert compare(before, before) == []
