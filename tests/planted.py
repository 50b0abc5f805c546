"""Builders of data with a known answer: event tables and planted block structures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from recsvc.domain import EVENT_COLUMNS

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def event_table(rows: list[dict]) -> pa.Table:
    """A normalised event table from dicts; missing fields get defaults, ids are numbered."""
    columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS}
    for number, row in enumerate(rows):
        full = {
            "event_id": f"e{number}",
            "ts": T0 + timedelta(hours=number),
            "item_type": "video",
            "action": "view",
            "watch_ratio": None,
            "request_id": None,
            "amount": None,
            **row,
        }
        for name in EVENT_COLUMNS:
            columns[name].append(full[name])
    schema = pa.schema(
        [
            ("event_id", pa.string()),
            ("ts", pa.timestamp("ms", tz="UTC")),
            ("user_id", pa.string()),
            ("item_id", pa.string()),
            ("item_type", pa.string()),
            ("action", pa.string()),
            ("watch_ratio", pa.float32()),
            ("request_id", pa.string()),
            ("amount", pa.float64()),
        ]
    )
    return pa.table(columns, schema=schema)


def block_events(
    groups: int = 3,
    users_per_group: int = 40,
    videos_per_group: int = 12,
    products_per_group: int = 2,
    view_share: float = 0.6,
    days: int = 6,
    seed: int = 0,
) -> pa.Table:
    """Users in groups that view their own group's videos and buy their group's products.

    A model must find the blocks: the best unseen items of a user are in the user's group.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        videos = [f"v{g}-{i:02d}" for i in range(videos_per_group)]
        products = [f"p{g}-{i}" for i in range(products_per_group)]
        for u in range(users_per_group):
            user = f"u{g}-{u:03d}"
            for video in rng.choice(videos, int(view_share * len(videos)), replace=False):
                rows.append(
                    {"user_id": user, "item_id": str(video), "watch_ratio": rng.uniform(0.5, 1)}
                )
            product = str(rng.choice(products))
            rows.append(
                {"user_id": user, "item_id": product, "item_type": "product", "action": "purchase",
                 "amount": 100.0}
            )
    order = rng.permutation(len(rows))
    span = timedelta(days=days).total_seconds()
    for rank, position in enumerate(order):
        rows[position]["ts"] = T0 + timedelta(seconds=span * rank / len(rows))
        rows[position]["event_id"] = f"e{rank}"
    return event_table(rows)
