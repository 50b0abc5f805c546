"""Normalising event values: raw columns of any accepted type cast to EVENT_SCHEMA.

Strings are parsed in bulk; a value that cannot be parsed becomes null, and the caller is told
which rows those are, so that a bad value is not mistaken for an absent one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsvc.contract.domain import EVENT_COLUMNS
from training.data.validation import BadReason, EventDataError, row_codes, to_numpy

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

# These patterns keep what Arrow would reject out of the bulk cast, so that only a rare
# survivor (a 30th of February) needs the slow bisection.
_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
_FLOAT = r"^[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|(?i:nan|inf|infinity))$"
_DATE = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])"
_TIME = r"([T ]([01]\d|2[0-3])(:[0-5]\d(:[0-5]\d(\.\d{1,9})?)?)?)"
_ISO_NAIVE = _DATE + _TIME + "?$"
_ISO_ZONED = _DATE + _TIME + r"(Z|[+-]\d{2}(:?\d{2})?)$"
# Strings are parsed at nanosecond precision (Java writes 9 fractional digits), which bounds
# them to the years 1677..2262; unix seconds get the same bounds so that the rule is one.
_MIN_SECONDS, _MAX_SECONDS = -9_223_372_036, 9_223_372_035

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
    return parsed, to_numpy(pc.and_(pc.is_valid(values), pc.is_null(parsed)))


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
