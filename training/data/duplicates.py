"""Duplicate event ids: which good rows repeat an earlier one's id, and which row was kept.

Hashing in numpy and sorting 64-bit hashes takes a fraction of a second where hashing the
strings in Arrow takes seconds; only the rows whose hash repeats are then compared exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data.validation import BadReason

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_HASH_BATCH = 1 << 20  # rows gathered at once for ids of uneven length: bounds temporaries
_BITMAP_BITS = 24


def mark_duplicates(event_id: pa.ChunkedArray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code every repeat of an event_id among the good rows as a duplicate; the first stays.

    Returns the repeated rows (ascending) and, for each, the row of the copy kept.
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
