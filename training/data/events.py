"""Load interaction events from Parquet, CSV or MovieLens files, validate them, report honestly.

Every row read is either returned or counted under a reason (see `events_validation`), and a
load whose share of bad rows exceeds the threshold fails. Formats and rules:
docs/event-format.md.

The load is spread over modules: `events_readers` reads each format (`events_text` for the
delimited ones), `events_parsing` normalises values, `events_validation` judges rows and
reports, `events_duplicates` finds repeated event ids.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data.duplicates import mark_duplicates
from training.data.parsing import EVENT_SCHEMA
from training.data.readers import FileEvents, Locator, read_csv, read_movielens, read_parquet
from training.data.validation import (
    BadReason,
    BadRow,
    EventDataError,
    ValidationReport,
    build_report,
    too_many_bad,
)

__all__ = [
    "EVENT_SCHEMA",
    "BadReason",
    "BadRow",
    "EventDataError",
    "EventFormat",
    "ValidationReport",
    "load_events",
]

MOVIELENS_FILE = "u.data"
_MAX_SLICES = 1024  # beyond this many bad rows, copying the good ones beats a chunk per gap


class EventFormat(StrEnum):
    AUTO = "auto"
    PARQUET = "parquet"
    CSV = "csv"
    MOVIELENS = "movielens"


_SUFFIXES = {".parquet": EventFormat.PARQUET, ".csv": EventFormat.CSV}
_READERS: dict[EventFormat, Callable[[Path], FileEvents]] = {
    EventFormat.PARQUET: read_parquet,
    EventFormat.CSV: read_csv,
    EventFormat.MOVIELENS: read_movielens,
}


def load_events(
    path: Path, fmt: EventFormat = EventFormat.AUTO, *, max_bad_share: float = 0.01
) -> tuple[pa.Table, ValidationReport]:
    """Read every event file at `path`; return the good rows in EVENT_SCHEMA and the report.

    Raises EventDataError when a file cannot be read, or when the share of bad rows exceeds
    `max_bad_share` (the error then carries the report).
    """
    if not 0.0 <= max_bad_share <= 1.0:
        raise ValueError(f"max_bad_share must be in [0, 1], not {max_bad_share}")
    files = _event_files(Path(path), EventFormat(fmt))
    events, codes, report, first_bad = _read_and_judge(files)
    if first_bad is not None and report.bad_share > max_bad_share:
        raise EventDataError(too_many_bad(report, first_bad, max_bad_share), report)
    columns = events.columns
    del events  # `columns` is now the rows' only holder, and _keep_good frees them as it goes
    return _keep_good(columns, codes), report


def _read_and_judge(
    files: list[tuple[Path, EventFormat]],
) -> tuple[pa.Table, np.ndarray, ValidationReport, BadRow | None]:
    """All rows read, their codes, the report and the first bad row."""
    # Arrow releases the GIL: one file's checks overlap the next file's read.
    with ThreadPoolExecutor(max_workers=min(len(files), os.cpu_count() or 1, 4)) as pool:
        parts = list(pool.map(_read_file, files))
    events = pa.concat_tables([part.table for part in parts])
    codes = np.concatenate([part.codes for part in parts])
    duplicates = mark_duplicates(events.column("event_id"), codes)
    locator = Locator(parts, duplicates)
    report, first_bad = build_report([str(part.path) for part in parts], codes, locator.describe)
    return events, codes, report, first_bad


def _read_file(job: tuple[Path, EventFormat]) -> FileEvents:
    file, fmt = job
    return _READERS[fmt](file)


def _keep_good(columns: list[pa.ChunkedArray], codes: np.ndarray) -> pa.Table:
    """The rows coded 0, as a table; `columns` is consumed."""
    bad = np.flatnonzero(codes)
    if len(bad) > _MAX_SLICES:
        keep = pa.array(codes == 0)
        # Column by column, each original freed once its copy exists: the peak is one column
        # above the table, not a second table (and Table.filter is several times slower).
        for i in range(len(columns)):
            columns[i] = pc.filter(columns[i], keep)
        return pa.table(columns, schema=EVENT_SCHEMA)
    events = pa.table(columns, schema=EVENT_SCHEMA)
    if len(bad) == 0:
        return events
    # A few bad rows: slicing around them shares the buffers where a filter copies every row.
    starts, ends = np.concatenate([[0], bad + 1]), np.append(bad, len(codes))
    runs = zip(starts, ends, strict=True)
    pieces = [events.slice(start, end - start) for start, end in runs if end > start]
    return pa.concat_tables(pieces) if pieces else EVENT_SCHEMA.empty_table()


def _event_files(path: Path, fmt: EventFormat) -> list[tuple[Path, EventFormat]]:
    """The files to read, in sorted order, each with its format."""
    if not path.exists():
        raise EventDataError(f"{path}: no such file or directory")
    if path.is_file():
        return [(path, _format_of(path, fmt))]
    # Names starting with "." or "_" are markers and temporaries (_SUCCESS, .crc, _temporary/).
    files = sorted(
        file
        for file in path.rglob("*")
        if file.is_file() and not any(part[0] in "._" for part in file.relative_to(path).parts)
    )
    if not files:
        raise EventDataError(f"{path}: directory holds no event files")
    return [(file, _format_of(file, fmt)) for file in files]


def _format_of(file: Path, fmt: EventFormat) -> EventFormat:
    """The format asked for, or else the one the file name says."""
    if fmt is not EventFormat.AUTO:
        return fmt
    if file.name == MOVIELENS_FILE:
        return EventFormat.MOVIELENS
    if file.suffix.lower() not in _SUFFIXES:
        raise EventDataError(
            f"{file}: unknown event file format (expected *.parquet, *.csv or {MOVIELENS_FILE})"
        )
    return _SUFFIXES[file.suffix.lower()]
