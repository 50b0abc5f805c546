"""Delimited text event files: parsing with Arrow, and the physical line of every record.

Arrow counts records, a person counts lines; the two differ by the header, empty lines and
quoted values that span lines, so every message about a text file goes through here.
"""

from __future__ import annotations

import csv
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from training.data.validation import EventDataError


def all_strings(names: list[str]) -> pcsv.ConvertOptions:
    """Read the columns `names` as strings, an empty field as null."""
    return pcsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        include_columns=names,
        strings_can_be_null=True,
        null_values=[""],  # not Arrow's default list, which would turn "NaN" or "NA" into null
    )


def csv_header(file: Path) -> list[str]:
    """Column names from the first non-empty line."""
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            header = next((row for row in csv.reader(handle) if row), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise EventDataError(f"{file}:1: cannot read the CSV header: {exc}") from exc
    if header is None:
        raise EventDataError(f"{file}: empty CSV file, expected a header row")
    return header


def parse_text(
    file: Path, parse: pcsv.ParseOptions, convert: pcsv.ConvertOptions, read: pcsv.ReadOptions
) -> pa.Table:
    """Read a delimited text file, or fail naming the file and, when Arrow says, the line."""
    for _ in range(2):
        try:
            return pcsv.read_csv(
                file, read_options=read, parse_options=parse, convert_options=convert
            )
        except (pa.ArrowException, OSError) as exc:
            error: Exception = exc
        # Only the single-threaded parser says which record ("Row #N") it stopped at.
        read.use_threads = False
    where = str(file)
    record = _record_number(str(error))
    if record is not None:
        lines = _nonempty_lines(file)
        if record <= len(lines):
            where = f"{file}:{lines[record - 1]}"
    raise EventDataError(f"{where}: cannot parse: {error}") from error


class TextLines:
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


def _record_number(message: str) -> int | None:
    """N from Arrow's "Row #N:", which counts non-empty lines from 1, a header included."""
    _, marker, rest = message.partition("Row #")
    digits = rest.split(":", 1)[0]
    return int(digits) if marker and digits.isdigit() else None


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
