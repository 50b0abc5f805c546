"""Load interaction events from Parquet, CSV or MovieLens files, validate them, report honestly.

Every row read is either returned or counted under a reason (see `events_validation`), and a
load whose share of bad rows exceeds the threshold fails. Formats and rules:
docs/event-format.md.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recsvc.domain import EVENT_COLUMNS, REQUIRED_EVENT_COLUMNS, Action, ItemType
from training.events_validation import (
    EVENT_SCHEMA,
    ID_COLUMNS,
    BadReason,
    BadRow,
    EventDataError,
    ValidationReport,
    as_float,
    as_timestamp,
    build_report,
    mark_duplicates,
    normalise,
    row_codes,
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
_MOVIELENS_COLUMNS = ["user_id", "item_id", "rating", "ts"]


class EventFormat(StrEnum):
    AUTO = "auto"
    PARQUET = "parquet"
    CSV = "csv"
    MOVIELENS = "movielens"


_SUFFIXES = {".parquet": EventFormat.PARQUET, ".csv": EventFormat.CSV}


@dataclass
class _FileEvents:
    """One file's rows in EVENT_SCHEMA, with what it takes to explain a bad one later."""

    path: Path
    table: pa.Table  # every row read, normalised
    codes: np.ndarray  # per-row verdict from events_validation.row_codes
    lines: Callable[[np.ndarray], np.ndarray]  # row indices -> line numbers for messages
    raw: dict[str, pa.ChunkedArray] = field(default_factory=dict)  # as read, where it differs


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
        parts = list(pool.map(lambda job: _read_file(*job), files))
    events = pa.concat_tables([part.table for part in parts])
    codes = np.concatenate([part.codes for part in parts])
    duplicates = mark_duplicates(events.column("event_id"), codes)
    locator = _Locator(parts, duplicates)
    report, first_bad = build_report([str(part.path) for part in parts], codes, locator.describe)
    return events, codes, report, first_bad


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


def _read_file(file: Path, fmt: EventFormat) -> _FileEvents:
    readers = {
        EventFormat.PARQUET: _read_parquet,
        EventFormat.CSV: _read_csv,
        EventFormat.MOVIELENS: _read_movielens,
    }
    return readers[fmt](file)


def _read_parquet(file: Path) -> _FileEvents:
    """A Parquet file; a row's "line" is its 1-based row number."""
    try:
        with pq.ParquetFile(file) as parquet:
            names = parquet.schema_arrow.names
            _require_columns(file, names)
            raw = parquet.read(columns=[name for name in EVENT_COLUMNS if name in names])
    except (pa.ArrowException, OSError) as exc:
        raise EventDataError(f"{file}: cannot read Parquet: {exc}") from exc
    table, codes = normalise(str(file), raw)
    return _FileEvents(file, table, codes, lambda rows: rows + 1, _kept_raw(raw))


def _read_csv(file: Path) -> _FileEvents:
    """A CSV file with a header row; lines are physical lines (the header is line 1)."""
    header = _csv_header(file)
    _require_columns(file, header)
    present = [name for name in EVENT_COLUMNS if name in header]
    convert = pcsv.ConvertOptions(
        column_types=dict.fromkeys(present, pa.string()),
        include_columns=present,
        strings_can_be_null=True,
        null_values=[""],  # not Arrow's default list, which would turn "NaN" or "NA" into null
    )
    # Without newlines_in_values a quoted value spanning lines breaks the parse whenever it
    # straddles one of Arrow's blocks, so a file that loads at 1k rows would fail at 1M.
    parse = pcsv.ParseOptions(newlines_in_values=True)
    raw = _parse_text(file, parse, convert, pcsv.ReadOptions())
    table, codes = normalise(str(file), raw)
    lines = _TextLines(file, raw.num_rows, header_lines=1)
    return _FileEvents(file, table, codes, lines, _kept_raw(raw))


def _read_movielens(file: Path) -> _FileEvents:
    """A MovieLens u.data file: each rating becomes a view with watch ratio rating / 5."""
    raw = _parse_text(
        file,
        pcsv.ParseOptions(delimiter="\t", quote_char=False),
        pcsv.ConvertOptions(
            column_types=dict.fromkeys(_MOVIELENS_COLUMNS, pa.string()),
            strings_can_be_null=True,
            null_values=[""],
        ),
        pcsv.ReadOptions(column_names=_MOVIELENS_COLUMNS),
    )
    n = raw.num_rows
    lines = _TextLines(file, n, header_lines=0, delimiter="\t")
    rating, unparsable = as_float(str(file), "rating", raw.column("rating"))
    in_scale = pc.and_(pc.greater_equal(rating, 1), pc.less_equal(rating, 5))
    bad_rating = pc.fill_null(pc.invert(in_scale), True).to_numpy(zero_copy_only=False)
    line_numbers = pc.cast(pa.array(lines(np.arange(n))), pa.string())
    columns = {
        "event_id": pc.binary_join_element_wise("ml-", line_numbers, ""),
        "ts": as_timestamp(str(file), raw.column("ts")),
        "user_id": raw.column("user_id"),
        "item_id": raw.column("item_id"),
        "item_type": pa.repeat(ItemType.VIDEO.value, n),
        "action": pa.repeat(Action.VIEW.value, n),
        "watch_ratio": pc.cast(pc.divide(rating, 5.0), pa.float32()),
        "request_id": pa.nulls(n, pa.string()),
        "amount": pa.nulls(n, pa.float64()),
    }
    table = pa.table(columns, schema=EVENT_SCHEMA)
    codes = row_codes(table, {BadReason.BAD_RATING: bad_rating | unparsable})
    return _FileEvents(file, table, codes, lines, _kept_raw(raw, ("ts", "rating")))


def _kept_raw(
    raw: pa.Table, names: tuple[str, ...] = ("ts", "watch_ratio", "amount")
) -> dict[str, pa.ChunkedArray]:
    """The raw columns whose values normalising may hide (a bad one becomes null)."""
    return {name: raw.column(name) for name in names if name in raw.column_names}


def _require_columns(file: Path, names: list[str]) -> None:
    missing = [name for name in REQUIRED_EVENT_COLUMNS if name not in names]
    if missing:
        raise EventDataError(f"{file}: missing required column(s): {', '.join(missing)}")


def _csv_header(file: Path) -> list[str]:
    """Column names from the first non-empty line."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            header = next((row for row in csv.reader(handle) if row), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EventDataError(f"{file}:1: cannot read the CSV header: {exc}") from exc
    if header is None:
        raise EventDataError(f"{file}: empty CSV file, expected a header row")
    return header


def _parse_text(
    file: Path, parse: pcsv.ParseOptions, convert: pcsv.ConvertOptions, read: pcsv.ReadOptions
) -> pa.Table:
    """Read a delimited text file, or fail naming the file and, when Arrow says, the line."""
    try:
        return pcsv.read_csv(file, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError) as exc:
        error: Exception = exc
    # Only the single-threaded parser says which record ("Row #N") it stopped at.
    read.use_threads = False
    try:
        return pcsv.read_csv(file, read_options=read, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError) as exc:
        error = exc
    where = str(file)
    record = _record_number(str(error))
    if record is not None:
        lines = _nonempty_lines(file)
        if record <= len(lines):
            where = f"{file}:{lines[record - 1]}"
    raise EventDataError(f"{where}: cannot parse: {error}") from error


def _record_number(message: str) -> int | None:
    """N from Arrow's "Row #N:", which counts non-empty lines from 1, a header included."""
    _, marker, rest = message.partition("Row #")
    digits = rest.split(":", 1)[0]
    return int(digits) if marker and digits.isdigit() else None


class _TextLines:
    """Physical line numbers of a text file's records, worked out only when first asked for."""

    def __init__(
        self, file: Path, records: int, *, header_lines: int, delimiter: str = ","
    ) -> None:
        self.file, self.records, self.delimiter = file, records, delimiter
        self.header_lines = header_lines

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return self._line_of_record[np.asarray(rows) + self.header_lines]

    @cached_property
    def _line_of_record(self) -> np.ndarray:
        lines = _nonempty_lines(self.file)
        if len(lines) == self.records + self.header_lines:
            return lines
        # A quoted value spans lines: let the csv module count (a Python loop, but rare).
        return _record_start_lines(self.file, self.delimiter)


def _nonempty_lines(file: Path) -> np.ndarray:
    """1-based numbers of the lines Arrow reads as records (it skips empty lines)."""
    if file.stat().st_size == 0:
        return np.zeros(0, dtype=np.int64)
    data = np.memmap(file, dtype=np.uint8, mode="r")
    block = 1 << 24  # scanned in blocks to keep the temporary masks small on big files
    newlines = np.concatenate(
        [np.flatnonzero(data[at : at + block] == 10) + at for at in range(0, len(data), block)]
    )
    starts = np.concatenate([[0], newlines + 1])
    lengths = np.append(newlines, len(data)) - starts
    empty = lengths == 0
    single = np.flatnonzero(lengths == 1)
    empty[single] = data[starts[single]] == 13  # a bare "\r" of a CRLF file
    return np.flatnonzero(~empty) + 1


def _record_start_lines(file: Path, delimiter: str) -> np.ndarray:
    """The line each record starts on, as Python's csv module reads the file."""
    starts, previous = [], 0
    with file.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        for record in reader:
            if record:
                starts.append(previous + 1)
            previous = reader.line_num
    return np.array(starts, dtype=np.int64)


class _Locator:
    """Explains a row by its position in the load: its file, line, field and value."""

    def __init__(self, parts: list[_FileEvents], duplicates: tuple[np.ndarray, np.ndarray]) -> None:
        self.parts = parts
        self.later, self.kept = duplicates  # repeated rows, ascending, and the row kept for each
        self.starts = np.cumsum([0] + [part.table.num_rows for part in parts])

    def describe(self, position: int, reason: BadReason) -> BadRow:
        part, row = self._split(position)
        detail = self._detail(part, row, reason)
        if reason is BadReason.DUPLICATE_EVENT_ID:
            kept, kept_row = self._split(int(self.kept[np.searchsorted(self.later, position)]))
            detail += f", first kept at {kept.path}:{self._line(kept, kept_row)}"
        return BadRow(reason.value, str(part.path), self._line(part, row), detail)

    def _split(self, position: int) -> tuple[_FileEvents, int]:
        index = int(np.searchsorted(self.starts, position, side="right")) - 1
        return self.parts[index], position - int(self.starts[index])

    def _line(self, part: _FileEvents, row: int) -> int:
        return int(part.lines(np.array([row]))[0])

    def _detail(self, part: _FileEvents, row: int, reason: BadReason) -> str:
        if reason is BadReason.MISSING_ID:
            name = next(name for name in ID_COLUMNS if not part.table.column(name)[row].as_py())
            return _field(name, part.table.column(name)[row])
        name = _FIELD_OF[reason]
        values = part.raw[name] if name in part.raw else part.table.column(name)
        return _field(name, values[row])


_FIELD_OF = {
    BadReason.DUPLICATE_EVENT_ID: "event_id",
    BadReason.BAD_TIMESTAMP: "ts",
    BadReason.BAD_RATING: "rating",
    BadReason.UNKNOWN_ACTION: "action",
    BadReason.UNKNOWN_ITEM_TYPE: "item_type",
    BadReason.WATCH_RATIO_OUT_OF_RANGE: "watch_ratio",
    BadReason.BAD_AMOUNT: "amount",
}


def _field(name: str, value: pa.Scalar) -> str:
    """name=value as a person reads it: strings quoted, null as null, long values cut short."""
    plain = value.as_py()
    shown = "null" if plain is None else repr(plain)
    return f"{name}={shown if len(shown) <= 80 else shown[:77] + '...'}"
