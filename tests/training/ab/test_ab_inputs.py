"""Reading drained exposure files (training.ab.inputs.load_exposures): today's files, files
drained before a column existed, and files that are not exposure files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training.ab.inputs import ReportError, load_exposures
from training.data.drain import EXPOSURE_SCHEMA

ROW = {
    "request_id": "r1",
    "ts": datetime(2026, 12, 1, tzinfo=UTC),
    "user_id": "u1",
    "experiments": "explore:on",
    "model_version": "m1",
    "videos": ["v1", "v2", "v3"],
    "products": [None, "p1", None],
    "explored": [2],
    "surface": "product_page",
    "segment": "young",
    "lifecycle": "active",
}


def write(path: Path, columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([EXPOSURE_SCHEMA.field(name) for name in columns])
    pq.write_table(pa.Table.from_pylist([{c: ROW[c] for c in columns}], schema), path)


def test_a_file_drained_before_the_explored_and_surface_columns_reads_as_the_home_feed(
    tmp_path: Path,
) -> None:
    write(tmp_path / "day=2026-12-01" / "new.parquet", EXPOSURE_SCHEMA.names)
    added_later = ("explored", "surface", "segment", "lifecycle")
    old = [name for name in EXPOSURE_SCHEMA.names if name not in added_later]
    write(tmp_path / "day=2026-11-30" / "old.parquet", old)
    table = load_exposures(tmp_path)
    assert table.schema == EXPOSURE_SCHEMA
    assert sorted(table.column("explored").to_pylist()) == [[], [2]]
    assert sorted(table.column("surface").to_pylist()) == ["home", "product_page"]
    assert sorted(table.column("segment").to_pylist(), key=str) == [None, "young"]


def test_a_file_without_the_exposure_columns_is_named(tmp_path: Path) -> None:
    write(tmp_path / "day=2026-12-01" / "x.parquet", ["request_id", "ts", "explored"])
    with pytest.raises(ReportError, match=r"x.parquet: not an exposure file \(no user_id"):
        load_exposures(tmp_path)
