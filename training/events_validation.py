"""Turning raw event columns into the event schema, and judging every row.

A row's fate is one byte in a `codes` array (0 = accepted, else `BadReason.code`), so checking
10M rows costs a few vectorised passes and no Python loop over rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsvc.domain import EVENT_COLUMNS, Action, ItemType

TS_TYPE = pa.timestamp("ms", tz="UTC")
EVENT_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("ts", TS_TYPE),
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("item_type", pa.string()),
        ("action", pa.string()),
        ("watch_ratio", pa.float32()),
        ("request_id", pa.string()),
        ("amount", pa.float64()),
    ]
)
assert tuple(EVENT_SCHEMA.names) == EVENT_COLUMNS
ID_COLUMNS: tuple[str, ...] = ("event_id", "user_id", "item_id")
MAX_EXAMPLES = 5

# Strings are parsed in bulk; these patterns keep what Arrow would reject out of the bulk
# cast, so that only a rare survivor (a 30th of February) needs the slow bisection.
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_FLOAT = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|(?i:nan|inf|infinity))$"
_DATE = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"([T ]([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d{1,9})?)?)?)"
_ISO_NAIVE = _DATE + _TIME + "?$"
_ISO_ZONED = _DATE + _TIME + r"(Z|[+-]\d{2}(:?\d{2})?)$"
# Strings are parsed at nanosecond precision (Java writes 9 fractional digits), which bounds
# them to the years 1677..2262; unix seconds get the same bounds so that the rule is one.
_MIN_SECONDS, _MAX_SECONDS = -9_223_372_036, 9_223_372_035
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_HASH_BATCH = 1 << 20  # rows gathered at once for ids of uneven length: bounds temporaries
_BITMAP_BITS = 24


class BadReason(StrEnum):
    """Why a row is dropped. Declared in precedence order: a row counts under its first fault."""

    MISSING_ID = "missing_id"
    BAD_TIMESTAMP = "bad_timestamp"
    BAD_RATING = "bad_rating"
    UNKNOWN_ACTION = "unknown_action"
    UNKNOWN_ITEM_TYPE = "unknown_item_type"
    WATCH_RATIO_OUT_OF_RANGE = "watch_ratio_out_of_range"
    BAD_AMOUNT = "bad_amount"
    DUPLICATE_EVENT_ID = "duplicate_event_id"

    @property
    def code(self) -> int:
        """The value this reason takes in a `codes` array."""
        return list(BadReason).index(self) + 1


class EventDataError(ValueError):
    """Event files that cannot be used; the message names the file, the line and the reason."""

    def __init__(self, message: str, report: ValidationReport | None = None) -> None:
        super().__init__(message)
        self.report = report  # set when the rows were read but too many of them were bad


@dataclass(frozen=True)
class BadRow:
    """One dropped row: why, where (file and line), and the offending field=value."""

    reason: str
    file: str
    line: int
    detail: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}: {self.detail}"


@dataclass
class ValidationReport:
    """What a load read, accepted and dropped. Every reason is listed, with 0 when unseen."""

    files: list[str]
    rows_read: int
    rows_accepted: int
    bad_counts: dict[str, int]
    examples: dict[str, list[BadRow]]  # the first MAX_EXAMPLES rows of each reason, in order

    @property
    def rows_bad(self) -> int:
        return sum(self.bad_counts.values())

    @property
    def bad_share(self) -> float:
        return self.rows_bad / self.rows_read if self.rows_read else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "files": list(self.files),
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_bad": self.rows_bad,
            "bad_share": self.bad_share,
            "bad_counts": dict(self.bad_counts),
            "examples": {r: [asdict(row) for row in rows] for r, rows in self.examples.items()},
        }

    def summary(self) -> str:
        """A few lines for a person: totals, then each reason seen with its first example."""
        lines = [
            f"events: {self.rows_read:,} rows read from {len(self.files)} file(s), "
            f"{self.rows_accepted:,} accepted, {self.rows_bad:,} bad ({percent(self.bad_share)})"
        ]
        for reason, count in self.bad_counts.items():
            if count:
                first = self.examples[reason][0]
                lines.append(
                    f"  {reason}: {count:,}, e.g. {first.file}:{first.line} {first.detail}"
                )
        return "\n".join(lines)


def percent(share: float) -> str:
    """A share as a short percentage that never shows a non-zero share as 0."""
    return f"{share * 100:.2g}%"


_UNPARSABLE_REASON = {
    "watch_ratio": BadReason.WATCH_RATIO_OUT_OF_RANGE,
    "amount": BadReason.BAD_AMOUNT,
}


def normalise(file: str, raw: pa.Table) -> tuple[pa.Table, np.ndarray]:
    """Cast a file's columns to EVENT_SCHEMA (absent optional ones as nulls); code its rows."""
    columns: dict[str, Any] = {}
    unparsable: dict[BadReason, np.ndarray] = {}
    for field in EVENT_SCHEMA:
        values = raw.column(field.name) if field.name in raw.column_names else None
        if values is None:
            columns[field.name] = pa.nulls(raw.num_rows, field.type)
        elif field.name == "ts":
            columns[field.name] = as_timestamp(file, values)
        elif field.type == pa.string():
            columns[field.name] = as_string(file, field.name, values)
        else:
            numbers, lost = as_float(file, field.name, values)
            columns[field.name] = pc.cast(numbers, field.type)
            unparsable[_UNPARSABLE_REASON[field.name]] = lost
    table = pa.table(columns, schema=EVENT_SCHEMA)
    return table, row_codes(table, unparsable)


def as_string(file: str, name: str, values: pa.ChunkedArray) -> pa.ChunkedArray:
    """A column as strings (integers, dictionaries and large strings are cast)."""
    kind = values.type.value_type if pa.types.is_dictionary(values.type) else values.type
    if not (_is_text(kind) or pa.types.is_integer(kind) or pa.types.is_null(kind)):
        raise EventDataError(f"{file}: column {name} has type {values.type}, expected string")
    try:
        return pc.cast(values, pa.string())
    except pa.ArrowException as exc:
        raise EventDataError(f"{file}: column {name} cannot be read as string: {exc}") from exc


def as_float(file: str, name: str, values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, np.ndarray]:
    """A column as float64, and a mask of the values present but not a number."""
    kind = values.type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind):
        return pc.cast(values, pa.float64(), safe=False), np.zeros(len(values), dtype=bool)
    if not _is_text(kind):
        raise EventDataError(f"{file}: column {name} has type {kind}, expected a number")
    parsed = _parse_strings(values, _FLOAT, pa.float64())
    return parsed, _to_numpy(pc.and_(pc.is_valid(values), pc.is_null(parsed)))


def as_timestamp(file: str, values: pa.ChunkedArray) -> pa.ChunkedArray:
    """ts as timestamp[ms, UTC]; null where it is missing or cannot be parsed."""
    kind = values.type
    if pa.types.is_timestamp(kind):
        # Finer units are truncated to ms; a zone-less timestamp is taken as UTC.
        try:
            return pc.cast(values, TS_TYPE, safe=kind.unit == "s")
        except pa.ArrowInvalid as exc:  # seconds beyond the ms range
            raise EventDataError(f"{file}: column ts cannot be read: {exc}") from exc
    if pa.types.is_date(kind) or pa.types.is_null(kind):
        return pc.cast(values, TS_TYPE)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return _from_seconds(pc.cast(values, pa.float64(), safe=False))
    if not _is_text(kind):
        raise EventDataError(f"{file}: column ts has type {kind}, expected a timestamp")
    # Per value: unix seconds, or ISO-8601 with a zone, or without one (meaning UTC).
    text = pc.cast(values, pa.string())
    zoned = _parse_strings(text, _ISO_ZONED, pa.timestamp("ns", tz="UTC"))
    naive = _parse_strings(text, _ISO_NAIVE, pa.timestamp("ns"))
    iso = pc.coalesce(zoned, pc.cast(naive, pa.timestamp("ns", tz="UTC")))
    seconds = _from_seconds(_parse_strings(text, _NUMBER, pa.float64()))
    return pc.coalesce(seconds, pc.cast(iso, TS_TYPE, safe=False))


def row_codes(events: pa.Table, unparsable: dict[BadReason, np.ndarray]) -> np.ndarray:
    """Code of every row (0 = good) from the per-row checks; duplicates come later, globally.

    `unparsable` holds, per reason, the rows whose raw value could not even be parsed: they are
    null in `events`, where null would otherwise pass as "absent".
    """
    faults = {
        BadReason.MISSING_ID: _any([_missing(events.column(name)) for name in ID_COLUMNS]),
        BadReason.BAD_TIMESTAMP: pc.is_null(events.column("ts")),
        BadReason.UNKNOWN_ACTION: _not_in(events.column("action"), Action),
        BadReason.UNKNOWN_ITEM_TYPE: _not_in(events.column("item_type"), ItemType),
        BadReason.WATCH_RATIO_OUT_OF_RANGE: _outside_unit_interval(events.column("watch_ratio")),
        BadReason.BAD_AMOUNT: _negative_or_not_finite(events.column("amount")),
    }
    codes = np.zeros(events.num_rows, dtype=np.uint8)
    # Lowest precedence first, so that a row's first fault is the one that stays.
    for reason in reversed(BadReason):
        if reason in faults:
            codes[_to_numpy(faults[reason])] = reason.code
        if reason in unparsable:
            codes[unparsable[reason]] = reason.code
    return codes


def mark_duplicates(event_id: pa.ChunkedArray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code every repeat of an event_id among the good rows as a duplicate; the first stays.

    Returns the repeated rows (ascending) and, for each, the row of the copy kept. Hashing in
    numpy and sorting 64-bit hashes takes a fraction of a second where hashing the strings in
    Arrow takes seconds; only the rows whose hash repeats are then compared exactly.
    """
    none = np.zeros(0, dtype=np.int64)
    good = np.flatnonzero(codes == 0)
    hashes = string_hashes(event_id)
    if len(good) < len(codes):
        hashes = hashes[good]
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(repeated) == 0:
        return none, none
    # A bitmap on the top bits (the well-mixed ones of a multiplicative hash) rules out most
    # rows before the binary search on the rest.
    shift = np.uint64(64 - _BITMAP_BITS)
    bitmap = np.zeros(1 << _BITMAP_BITS, dtype=bool)
    bitmap[(repeated >> shift).astype(np.intp)] = True
    maybe = np.flatnonzero(bitmap[(hashes >> shift).astype(np.intp)])
    slot = np.minimum(np.searchsorted(repeated, hashes[maybe]), len(repeated) - 1)
    candidates = good[maybe[repeated[slot] == hashes[maybe]]]
    later, kept = repeats(event_id, candidates)
    codes[later] = BadReason.DUPLICATE_EVENT_ID.code
    return later, kept


def repeats(values: pa.ChunkedArray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Those of `rows` (ascending) whose value appeared at an earlier one, and that earlier row."""
    taken = pc.take(values, pa.array(rows, pa.int64())).combine_chunks()
    index = pc.dictionary_encode(taken).indices.to_numpy()
    # Dictionary indices are handed out in order of first appearance, so a row holds a first
    # occurrence exactly when its index exceeds every index before it, and the k-th first
    # occurrence is where index k first appears.
    first = np.ones(len(index), dtype=bool)
    first[1:] = index[1:] > np.maximum.accumulate(index)[:-1]
    return rows[~first], rows[first][index[~first]]


def string_hashes(values: pa.ChunkedArray) -> np.ndarray:
    """A 64-bit FNV-style hash of every string (any value for a null), read off Arrow buffers."""
    parts = [_chunk_hashes(chunk) for chunk in values.chunks]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint64)


def build_report(
    files: list[str], codes: np.ndarray, describe: Callable[[int, BadReason], BadRow]
) -> tuple[ValidationReport, BadRow | None]:
    """The report, and the first bad row of all; `describe` explains a row by its position."""
    counts = np.bincount(codes, minlength=len(BadReason) + 1)
    bad = np.flatnonzero(codes)
    bad_codes = codes[bad]
    examples = {
        reason.value: [
            describe(int(row), reason) for row in bad[bad_codes == reason.code][:MAX_EXAMPLES]
        ]
        for reason in BadReason
    }
    report = ValidationReport(
        files=files,
        rows_read=len(codes),
        rows_accepted=int(counts[0]),
        bad_counts={reason.value: int(counts[reason.code]) for reason in BadReason},
        examples=examples,
    )
    first_bad = examples[list(BadReason)[bad_codes[0] - 1]][0] if len(bad) else None
    return report, first_bad


def too_many_bad(report: ValidationReport, first_bad: BadRow, max_bad_share: float) -> str:
    """The message for a load whose share of bad rows exceeds the threshold."""
    by_reason = ", ".join(f"{r}={n:,}" for r, n in report.bad_counts.items() if n)
    return (
        f"{report.rows_bad:,} of {report.rows_read:,} events are bad "
        f"({percent(report.bad_share)}), more than max_bad_share {percent(max_bad_share)}; "
        f"first bad row {first_bad}; bad by reason: {by_reason}"
    )


def _chunk_hashes(chunk: pa.Array) -> np.ndarray:
    """Hashes of one string chunk, hashing all strings of one length together."""
    n = len(chunk)
    offsets = np.frombuffer(chunk.buffers()[1], np.int32, count=n + 1, offset=chunk.offset * 4)
    data = chunk.buffers()[2]
    data = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    widths = np.unique(lengths)
    if len(widths) <= 1:  # the usual case, ids of one width: rows of bytes, back to back
        return _hash_rows(data, int(starts[0]) if n else 0, n, int(widths[0]) if n else 0)
    hashes = np.empty(n, dtype=np.uint64)
    for width in widths:
        rows = np.flatnonzero(lengths == width)
        for batch in np.array_split(rows, -(-len(rows) // _HASH_BATCH)):
            block = np.ascontiguousarray(data[starts[batch, None] + np.arange(width)])
            hashes[batch] = _hash_rows(block.reshape(-1), 0, len(batch), int(width))
    return hashes


def _hash_rows(data: np.ndarray, start: int, n: int, width: int) -> np.ndarray:
    """Hash n strings of `width` bytes laid back to back in `data` from `start`.

    FNV-1a over 8-byte words read through strided (unaligned) views, then over the tail bytes.
    """
    hashes = np.full(n, _FNV_OFFSET ^ np.uint64(width), dtype=np.uint64)
    at = 0
    while at < width:
        size = 8 if width - at >= 8 else 1
        dtype = "<u8" if size == 8 else np.uint8
        column = np.ndarray((n,), dtype=dtype, buffer=data, offset=start + at, strides=(width,))
        hashes ^= column
        hashes *= _FNV_PRIME
        at += size
    return hashes


def _parse_strings(values: pa.ChunkedArray, pattern: str, target: pa.DataType) -> pa.ChunkedArray:
    """Cast the strings that match `pattern` to `target`; null for the rest and for failures."""
    matching = pc.if_else(pc.match_substring_regex(values, pattern), values, None)
    return pa.chunked_array([_cast_or_null(chunk, target) for chunk in matching.chunks], target)


def _cast_or_null(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast, with null for each value that fails, found by bisecting the failing slices."""
    try:
        return pc.cast(values, target)
    except pa.ArrowInvalid:
        if len(values) == 1:
            return pa.nulls(1, target)
        half = len(values) // 2
        head, tail = values.slice(0, half), values.slice(half)
        return pa.concat_arrays([_cast_or_null(head, target), _cast_or_null(tail, target)])


def _from_seconds(seconds: pa.ChunkedArray) -> pa.ChunkedArray:
    """Unix seconds (float64) as timestamp[ms, UTC]; null when absent, NaN or out of range."""
    inside = pc.and_(pc.greater_equal(seconds, _MIN_SECONDS), pc.less_equal(seconds, _MAX_SECONDS))
    millis = pc.if_else(inside, pc.floor(pc.multiply(seconds, 1000.0)), None)
    return pc.cast(pc.cast(millis, pa.int64()), TS_TYPE)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def _missing(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a value is null or the empty string."""
    return pc.fill_null(pc.equal(pc.binary_length(values), 0), True)


def _not_in(values: pa.ChunkedArray, vocabulary: type[StrEnum]) -> pa.ChunkedArray:
    """True where a value is not one of the enum's values (null included)."""
    return pc.invert(pc.is_in(values, pa.array([member.value for member in vocabulary])))


def _outside_unit_interval(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a value is present and not in [0, 1] (NaN included); null is allowed."""
    inside = pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, 1))
    return pc.fill_null(pc.invert(inside), False)


def _negative_or_not_finite(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """True where a value is present and negative, NaN or infinite; null is allowed."""
    return pc.fill_null(pc.or_(pc.less(values, 0), pc.invert(pc.is_finite(values))), False)


def _any(masks: list[pa.ChunkedArray]) -> pa.ChunkedArray:
    result = masks[0]
    for mask in masks[1:]:
        result = pc.or_(result, mask)
    return result


def _to_numpy(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A null-free Arrow boolean array as a numpy bool array."""
    return np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool)
