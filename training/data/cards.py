"""Reading the card records back for the audit: a user's cards from the drained partitions
(training.data.drain.CARDS, a row per page) and the stream not drained yet, a card at a time,
each with what its checks say.

A card passes when every check is recorded and holds (recsvc.contract.records.CardShown
.failed_checks); a record missing a check (a null field) is named as such: the audit cannot
answer for that card.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from recsvc.contract.records import CARD_PARTS, CardShown
from training.data.drain import CARD_PAGE_TYPES, CARD_SCHEMA, card_row

# The fields that are checks: a card whose record lacks one is not accounted for.
CHECKS = (
    "risk_level",
    "risk_allowed_up_to",
    "holdable_once",
    "held",
    "daily_cap",
    "cap_count",
    "disclosure_required",
    "disclosure_shown",
    "category",
    "category_count",
    "category_cap",
    "model_version",
)
STREAM_CHUNK = 10_000
CARD_FIELD_NAMES = tuple(f.name for f in fields(CardShown))


def cards_in_partitions(folder: Path, user_id: str, since: datetime | None) -> list[dict[str, Any]]:
    """The user's drained cards under `folder` (day partitions), oldest first."""
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("day=*/*.parquet")) if folder.is_dir() else []:
        if since is not None and path.parent.name[4:] < since.date().isoformat():
            continue  # a whole day before `since`
        table = pq.read_table(path, filters=[("user_id", "=", user_id)])
        for page in table.to_pylist():
            rows += each_card({name: page.get(name) for name in CARD_SCHEMA.names})
    return _since(rows, since)


def cards_in_stream(
    entries: Iterable[dict[str, str]], user_id: str, since: datetime | None
) -> list[dict[str, Any]]:
    """The user's cards among stream entries (field -> value), a row per card."""
    rows = []
    for entry in entries:
        if entry.get("user_id") == user_id:
            rows += each_card(card_row(entry))
    return _since(rows, since)


def each_card(page: dict[str, Any]) -> list[dict[str, Any]]:
    """A page's row (CARD_SCHEMA) as one row per card: the page's fields and the card's."""
    shared = {name: page[name] for name in CARD_PAGE_TYPES}
    cards = []
    for i in range(len(page["rank"] or [])):
        card = dict(shared)
        for name in CARD_PARTS:
            values = page[name] or []
            card[name] = values[i] if i < len(values) else None
        card["card_id"] = f"{page['request_id']}:{card['rank']}"
        cards.append(card)
    return cards


def _since(rows: list[dict[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
    kept = [r for r in rows if since is None or (r["ts"] is not None and r["ts"] >= since)]
    return sorted(kept, key=lambda r: (r["ts"] is None, r["ts"] or since, r["card_id"] or ""))


def problems(row: dict[str, Any]) -> list[str]:
    """What is wrong with one card's record: checks missing from it, or checks it fails."""
    missing = [name for name in CHECKS if row.get(name) is None]
    if missing:
        return [f"no record of {name}" for name in missing]
    values: dict[str, Any] = {name: row.get(name) for name in CARD_FIELD_NAMES}
    values["ts_ms"] = 0
    return CardShown(**values).failed_checks()


def audited(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each card with `problems` (empty: every check recorded and passed)."""
    return [{**row, "problems": problems(row)} for row in rows]
