"""What the feed knows of one user, as the store reads it from Redis in one round trip.

The recent events are kept as Redis holds them ("item_type|item_id|action|ratio", newest
first) and parsed only as far as a request needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from recsvc.contract.domain import ItemType

VIDEO_TAG = (ItemType.VIDEO.value + "|").encode()
NOTHING_SEEN: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RecentEvent:
    item_type: str
    item_id: str
    action: str
    watch_ratio: float | None


@dataclass(frozen=True)
class UserState:
    """Everything the feed needs about one user, read in one round trip."""

    vector: bytes | None = None
    risk_tolerance: int | None = None
    segment: str | None = None
    lifecycle: str | None = None
    holdings: frozenset[str] = frozenset()
    recent_raw: tuple[bytes, ...] = ()  # "item_type|item_id|action|ratio", newest first
    capped: frozenset[str] | None = None  # at today's cap; None: unknown (Redis down)
    # today's cards per product category (the caps per category, recsvc.feed.campaigns)
    category_counts: Mapping[str, int] = field(default_factory=dict)

    def seen_videos(self) -> frozenset[str]:
        """The videos of the recent events (parsed once per state: the feed asks for them
        for the model's videos, the fresh ones and exploration)."""
        return self._seen if self.recent_raw else NOTHING_SEEN

    @cached_property
    def _seen(self) -> frozenset[str]:
        # Parsed only as far as needed: this runs for every request.
        return frozenset(
            e.split(b"|", 2)[1].decode() for e in self.recent_raw if e.startswith(VIDEO_TAG)
        )

    @property
    def recent(self) -> list[RecentEvent]:
        """The recent events, parsed (fold-in needs them, for users without a vector)."""
        return [_recent(entry) for entry in self.recent_raw]


def recent_entry(item_type: str, item_id: str, action: str, watch_ratio: float | None) -> str:
    """One entry of a user's recent list, as the ingest script writes it (a ratio as its
    shortest exact text, as the API's float prints)."""
    ratio = "" if watch_ratio is None else repr(float(watch_ratio))
    return f"{item_type}|{item_id}|{action}|{ratio}"


def _recent(entry: bytes) -> RecentEvent:
    item_type, item_id, action, ratio = entry.decode().split("|")
    return RecentEvent(item_type, item_id, action, float(ratio) if ratio else None)
