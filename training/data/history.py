"""What a user's history says their online state should be, for `recsvc state backfill`: their
latest events as recent entries (newest first, as many as the service keeps) and the products
they bought that the catalogue holds (as ingestion would have kept them)."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsvc.contract.domain import Action, ItemType
from recsvc.contract.user_state import recent_entry
from recsvc.store.backfill import UserHistory


@dataclass
class HistoryCounts:
    users: int = 0
    events: int = 0
    unknown_products: int = 0  # purchases of products the catalogue does not hold: left out


def user_histories(
    events: pa.Table, recent_limit: int, products: Container[str], counts: HistoryCounts
) -> Iterator[UserHistory]:
    """Each user's history, users in id order; `counts` filled on the way. Events of equal
    time keep their order in the table (the later row counts as the newer)."""
    if events.num_rows == 0:
        return
    rows = np.arange(events.num_rows)
    order = pc.sort_indices(
        pa.table({"user": events.column("user_id"), "ts": events.column("ts"), "row": rows}),
        sort_keys=[("user", "ascending"), ("ts", "descending"), ("row", "descending")],
    ).to_numpy()
    users = events.column("user_id").take(order).to_numpy(zero_copy_only=False)
    items = events.column("item_id").take(order).to_numpy(zero_copy_only=False)
    types = events.column("item_type").take(order).to_numpy(zero_copy_only=False)
    actions = events.column("action").take(order).to_numpy(zero_copy_only=False)
    ratios = events.column("watch_ratio").take(order).to_pylist()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    counts.events += len(users)
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        recent = [
            recent_entry(types[i], items[i], actions[i], ratios[i])
            for i in range(start, min(end, start + recent_limit))
        ]
        bought: dict[str, None] = {}
        for i in range(start, end):
            if actions[i] == Action.PURCHASE and types[i] == ItemType.PRODUCT:
                if items[i] in products:
                    bought[items[i]] = None
                else:
                    counts.unknown_products += 1
        counts.users += 1
        yield UserHistory(str(users[start]), recent, list(bought))
