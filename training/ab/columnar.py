"""The array primitives of the attribution and the counting (pyarrow and numpy, no loop over
rows): items of list columns, distinct values and membership by one sort, positions in a value
set, and the "as of" lookup that window attribution is."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _flat_items(lists: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """The non-null items of a list column, with the row each comes from."""
    flat = pc.list_flatten(lists)
    row = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    valid = flat.is_valid()
    return row[valid.to_numpy(False)], flat.filter(valid)


def _latest_at_or_before(
    ref_key: np.ndarray, ref_ts: np.ndarray, key: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """For each (key, ts): the index of the reference row of the same key with the latest
    ref_ts <= ts, or -1. One sort of both sides, the references first at equal times."""
    n = len(ref_key)
    all_key = np.concatenate([ref_key, key])
    order = np.lexsort((np.arange(len(all_key)) >= n, np.concatenate([ref_ts, ts]), all_key))
    last_ref = np.maximum.accumulate(np.where(order < n, np.arange(len(order)), -1))
    queries = np.flatnonzero(order >= n)
    found = last_ref[queries]
    candidate = order[np.maximum(found, 0)]
    same = (found >= 0) & (all_key[candidate] == all_key[order[queries]])
    result = np.full(len(key), -1, dtype=np.int64)
    result[order[queries] - n] = np.where(same, candidate, -1)
    return result


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique by one sort: numpy's hashing unique is many times slower on large arrays."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def _is_in(values: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Which values are in `distinct` (sorted); the queries are searched in order, which
    keeps the search in cache."""
    if len(distinct) == 0:
        return np.zeros(len(values), dtype=bool)
    order = np.argsort(values)
    found = np.empty(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(distinct, values[order]), len(distinct) - 1)
    found[order] = distinct[at] == values[order]
    return found


def _positions(values: pa.ChunkedArray | pa.Array, value_set: pa.Array) -> np.ndarray:
    """Each value's position in value_set, -1 when absent; int64, for Arrow's int32 would
    overflow in the composite keys built from it."""
    return pc.fill_null(pc.index_in(values, value_set), -1).to_numpy().astype(np.int64)


def _ms(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(), dtype=np.int64)
