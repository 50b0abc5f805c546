"""Reading one event file of each format into EVENT_SCHEMA, and explaining any of its rows.

A reader keeps what it takes to name a bad row later (its line, its value as read), so that
messages cost nothing until a row turns out to be bad.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recsvc.contract.domain import EVENT_COLUMNS, REQUIRED_EVENT_COLUMNS, Action, ItemType
from training.data.parsing import EVENT_SCHEMA, as_float, as_timestamp, normalise
from training.data.text import TextLines, all_strings, csv_header, parse_text
from training.data.validation import (
    ID_COLUMNS,
    BadReason,
    BadRow,
    EventDataError,
    bad_ratings,
    row_codes,
)

_MOVIELENS_COLUMNS = ["user_id", "item_id", "rating", "ts"]


@dataclass
class FileEvents:
    """One file's rows in EVENT_SCHEMA, with what it takes to explain a bad one later."""

    path: Path
    table: pa.Table  # every row read, normalised
    codes: np.ndarray  # per-row verdict from events_validation.row_codes
    lines: Callable[[np.ndarray], np.ndarray]  # row indices -> line numbers for messages
    raw: dict[str, pa.ChunkedArray] = field(default_factory=dict)  # as read, where it differs


def read_parquet(file: Path) -> FileEvents:
    """A Parquet file; a row's "line" is its 1-based row number."""
    try:
        with pq.ParquetFile(file) as parquet:
            names = parquet.schema_arrow.names
            _require_columns(file, names)
            raw = parquet.read(columns=[name for name in EVENT_COLUMNS if name in names])
    except (pa.ArrowException, OSError) as exc:
        raise EventDataError(f"{file}: cannot read Parquet: {exc}") from exc
    table, codes = normalise(str(file), raw)
    return FileEvents(file, table, codes, lambda rows: rows + 1, _kept_raw(raw))


def read_csv(file: Path) -> FileEvents:
    """A CSV file with a header row; lines are physical lines (the header is line 1)."""
    header = csv_header(file)
    _require_columns(file, header)
    # Without newlines_in_values a quoted value spanning lines breaks the parse whenever it
    # straddles one of Arrow's blocks, so a file that loads at 1k rows would fail at 1M.
    parse = pcsv.ParseOptions(newlines_in_values=True)
    convert = all_strings([name for name in EVENT_COLUMNS if name in header])
    raw = parse_text(file, parse, convert, pcsv.ReadOptions())
    table, codes = normalise(str(file), raw)
    lines = TextLines(file, raw.num_rows, header_lines=1)
    return FileEvents(file, table, codes, lines, _kept_raw(raw))


def read_movielens(file: Path) -> FileEvents:
    """A MovieLens u.data file: each rating becomes a view with watch ratio rating / 5."""
    raw = parse_text(
        file,
        pcsv.ParseOptions(delimiter="\t", quote_char=False),
        all_strings(_MOVIELENS_COLUMNS),
        pcsv.ReadOptions(column_names=_MOVIELENS_COLUMNS),
    )
    n = raw.num_rows
    lines = TextLines(file, n, header_lines=0, delimiter="\t")
    rating, unparsable = as_float(str(file), "rating", raw.column("rating"))
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
    codes = row_codes(table, {BadReason.BAD_RATING: bad_ratings(rating) | unparsable})
    return FileEvents(file, table, codes, lines, _kept_raw(raw, ("ts", "rating")))


def _kept_raw(
    raw: pa.Table, names: tuple[str, ...] = ("ts", "watch_ratio", "amount")
) -> dict[str, pa.ChunkedArray]:
    """The raw columns whose values normalising may hide (a bad one becomes null)."""
    return {name: raw.column(name) for name in names if name in raw.column_names}


def _require_columns(file: Path, names: list[str]) -> None:
    missing = [name for name in REQUIRED_EVENT_COLUMNS if name not in names]
    if missing:
        raise EventDataError(f"{file}: missing required column(s): {', '.join(missing)}")


class Locator:
    """Explains a row by its position in a load: its file, line, field and value."""

    def __init__(self, parts: list[FileEvents], duplicates: tuple[np.ndarray, np.ndarray]) -> None:
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

    def _split(self, position: int) -> tuple[FileEvents, int]:
        index = int(np.searchsorted(self.starts, position, side="right")) - 1
        return self.parts[index], position - int(self.starts[index])

    def _line(self, part: FileEvents, row: int) -> int:
        return int(part.lines(np.array([row]))[0])

    def _detail(self, part: FileEvents, row: int, reason: BadReason) -> str:
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
