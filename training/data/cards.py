"""Reading the card records back for the audit: a user's cards from the drained partitions
(training.data.drain.CARDS, a row per page) and the stream not drained yet, a card at a time,
each with what its checks say.

A card passes when every check is recorded and holds (recsvc.contract.records.CardShown
.failed_checks); a record missing a check (a null field) is named as such: the audit cannot
answer for that card.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from recsvc.contract.records import CARD_CHECKS, card_problems, each_card, page_card_values
from training.data.drain import CARD_SCHEMA

CHECKS = CARD_CHECKS  # the fields that are checks (recsvc.contract.records)
STREAM_CHUNK = 10_000


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
            rows += each_card(page_card_values(entry))
    return _since(rows, since)


def _since(rows: list[dict[str, Any]], since: datetime | None) -> list[dict[str, Any]]:
    kept = [r for r in rows if since is None or (r["ts"] is not None and r["ts"] >= since)]
    return sorted(kept, key=lambda r: (r["ts"] is None, r["ts"] or since, r["card_id"] or ""))


problems = card_problems  # what is wrong with one card's record


def audited(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each card with `problems` (empty: every check recorded and passed)."""
    return [{**row, "problems": problems(row)} for row in rows]
