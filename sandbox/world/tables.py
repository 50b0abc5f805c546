"""Arrow tables of a world: its catalog, users and events as written to disk.

Ids are written straight into Arrow string buffers and labels are decoded from dictionaries,
so no Python string is made per row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsvc.contract.domain import EVENT_COLUMNS
from sandbox.world.catalog import Catalog
from sandbox.world.events import EventArrays
from sandbox.world.truth import Truth
from sandbox.world.users import Population
from sandbox.world.vocabulary import ACTIONS, KINDS, LIFECYCLES, NEVER_MS, SEGMENTS, TOPICS

TS_TYPE = pa.timestamp("ms", tz="UTC")
# ASCII of 0000..9999: ids are written four digits per vectorised step
_FOUR_DIGITS = (np.arange(10_000)[:, None] // np.array([1000, 100, 10, 1]) % 10 + 48).astype(
    np.uint8
)


def id_strings(prefix: str, count: int) -> np.ndarray:
    """[count] ids zero-padded to the count's width, as a numpy str array."""
    chars = _id_bytes(prefix, np.arange(count), len(str(count)))
    return chars.view(f"S{chars.shape[1]}").ravel().astype(f"U{chars.shape[1]}")


def videos_table(catalog: Catalog, truth: Truth) -> pa.Table:
    """catalog/videos.jsonl: one row per video, in id order."""
    return pa.table({
        "video_id": pa.array(truth.video_ids),
        "title": pa.array(catalog.video_titles),
        "topics": _topic_lists(catalog.video_topics),
        "creator": pa.array(catalog.video_creator, pa.string()),
        "duration_s": pa.array(catalog.video_duration, pa.int32()),
        "published_at": pa.array(catalog.video_from_ms, TS_TYPE),
        "status": _status(catalog.video_until_ms),
    })  # fmt: skip


def products_table(catalog: Catalog, truth: Truth) -> pa.Table:
    """catalog/products.jsonl: one row per product, in id order."""
    return pa.table({
        "product_id": pa.array(truth.product_ids),
        "name": pa.array(catalog.product_names),
        "category": _labels(catalog.product_kind, [k.category.value for k in KINDS]),
        "risk_level": pa.array(catalog.product_risk, pa.int8()),
        "disclosure": pa.array(catalog.product_disclosures, pa.string()),
        "holdable_once": pa.array(truth.product_once),
        "topics": _topic_lists(catalog.product_topics),
        "status": _status(catalog.product_until_ms),
    })  # fmt: skip


def users_table(people: Population, truth: Truth) -> pa.Table:
    """users.csv: one row per user, holdings as '|'-joined product ids."""
    per_user = np.bincount(people.held_users, minlength=len(truth.user_ids))
    offsets = np.concatenate([[0], np.cumsum(per_user)]).astype(np.int32)
    held = pa.ListArray.from_arrays(
        pa.array(offsets), _labels(people.held_products, truth.product_ids)
    )
    return pa.table({
        "user_id": pa.array(truth.user_ids),
        "segment": _labels(people.segment, [s.name for s in SEGMENTS]),
        "risk_tolerance": pa.array(people.risk, pa.int8()),
        "lifecycle": _labels(people.lifecycle, list(LIFECYCLES)),
        "holdings": pc.binary_join(held, "|"),
    })  # fmt: skip


def events_table(events: EventArrays, truth: Truth) -> pa.Table:
    """Arrow columns of EVENT_COLUMNS, sorted by time, with ids numbered in that order."""
    order = np.argsort(events.ts, kind="stable")
    n, request = len(order), events.request[order]
    items = np.concatenate([truth.video_ids, truth.product_ids])
    ratio, amount = events.watch_ratio[order], events.amount[order]
    columns = {
        "event_id": _id_array("e", np.arange(n), max(10, len(str(n)))),
        "ts": pa.array(events.ts[order], TS_TYPE),
        "user_id": _id_array("u", events.user[order], len(str(len(truth.user_ids)))),
        "item_id": _labels(events.item[order], items),
        "item_type": _labels(
            (events.item[order] >= len(truth.video_ids)).astype(np.int32), ["video", "product"]
        ),
        "action": _labels(events.action[order], list(ACTIONS)),
        "watch_ratio": pa.array(ratio, pa.float32(), mask=np.isnan(ratio)),
        "request_id": _id_array(
            "r", np.maximum(request, 0), len(str(max(request.max(initial=0), 1))), request >= 0
        ),
        "amount": pa.array(amount, pa.float64(), mask=np.isnan(amount)),
    }
    assert tuple(columns) == EVENT_COLUMNS  # the shared contract's column order
    return pa.table(columns)


def _id_bytes(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """[n, len(prefix) + width] ASCII bytes of ids like u0001234, four digits at a time."""
    chars = np.empty((len(numbers), len(prefix) + width), dtype=np.uint8)
    chars[:, : len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)
    rest, end = numbers.astype(np.int64), chars.shape[1]
    while end > len(prefix):  # per group of four digits, not per row
        size = min(4, end - len(prefix))
        chars[:, end - size : end] = _FOUR_DIGITS[rest % 10_000, 4 - size :]
        rest //= 10_000
        end -= size
    return chars


def _id_array(
    prefix: str, numbers: np.ndarray, width: int, valid: np.ndarray | None = None
) -> pa.Array:
    """The same ids as an Arrow string array, straight from the bytes (no Python strings)."""
    chars = _id_bytes(prefix, numbers, width)
    size = chars.shape[1]
    large = len(numbers) * size >= 2**31
    offsets = np.arange(len(numbers) + 1, dtype=np.int64 if large else np.int32) * size
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    kind = pa.large_string() if large else pa.string()
    array = pa.Array.from_buffers(
        kind, len(numbers), [bitmap, pa.py_buffer(offsets), pa.py_buffer(chars)]
    )
    return array.cast(pa.string()) if large else array


def _labels(codes: np.ndarray, names: list[str] | np.ndarray) -> pa.Array:
    """Strings picked by integer codes, through a dictionary (decoded in C++)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(codes, pa.int32()), pa.array(names)
    ).dictionary_decode()


def _topic_lists(weights: np.ndarray) -> pa.Array:
    """List of topic names per row, the heavier topic first."""
    order = np.argsort(-weights, axis=1, kind="stable")
    count = (weights > 0).sum(1)
    keep = np.arange(weights.shape[1])[None, :] < count[:, None]
    offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), _labels(order[keep], list(TOPICS)))


def _status(until_ms: np.ndarray) -> pa.Array:
    return _labels((until_ms != NEVER_MS).astype(np.int32), ["live", "retired"])
