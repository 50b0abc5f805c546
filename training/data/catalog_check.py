"""The nightly gate's catalogue check: every live video and product is known to the new model,
or explicitly new.

A model that does not know a live item can never recommend it (a video) or attach it (a
product). For an item that appeared only days ago that is expected: nobody has interacted
with it yet, and the service's popularity and rules cover it. For an older live item it means
events went missing (a lost partition, a broken drain) or a catalogue that disagrees with
the event log, and a model trained on such data must not go live unnoticed. "Explicitly new"
is a record whose `published_at` lies within `new_days` of the window's last event (or
after it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from recsvc.contract.catalog import Catalog, ProductRecord, VideoRecord
from recsvc.contract.domain import ItemStatus

SHOWN = 5  # ids named in a reason


@dataclass(frozen=True)
class CatalogCheck:
    live_videos: int
    live_products: int
    new_items: list[str] = field(default_factory=list)  # live, unknown, explicitly new
    unknown_videos: list[str] = field(default_factory=list)  # live, unknown, not new
    unknown_products: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def reasons(self) -> list[str]:
        """Why the gate must refuse, one line per item type; empty when the check passes."""
        found = []
        for kind, ids in (("videos", self.unknown_videos), ("products", self.unknown_products)):
            if ids:
                named = ", ".join(ids[:SHOWN]) + (", ..." if len(ids) > SHOWN else "")
                found.append(
                    f"{len(ids)} live {kind} unknown to the new model and not new ({named}): "
                    "events missing from the window, or a catalogue to fix (retire them, or "
                    "set published_at on new ones)"
                )
        return found


def check_catalog(
    catalog: Catalog,
    video_ids: np.ndarray,
    product_ids: np.ndarray,
    window_end: datetime,
    new_days: float = 7.0,
) -> CatalogCheck:
    """Compare the catalogue's live items with the new model's item ids."""
    if window_end.tzinfo is None:
        window_end = window_end.replace(tzinfo=UTC)
    cutoff = window_end - timedelta(days=new_days)
    # Video and product ids live in separate namespaces: each type is judged on its own.
    videos = _unknown(_live(catalog.videos), video_ids)
    products = _unknown(_live(catalog.products), product_ids)
    new_videos = {i for i, r in videos.items() if _is_new(r.published_at, cutoff)}
    new_products = {i for i, r in products.items() if _is_new(r.published_at, cutoff)}
    return CatalogCheck(
        live_videos=len(_live(catalog.videos)),
        live_products=len(_live(catalog.products)),
        new_items=sorted(new_videos | new_products),
        unknown_videos=sorted(set(videos) - new_videos),
        unknown_products=sorted(set(products) - new_products),
    )


def _live(
    records: Mapping[str, VideoRecord] | Mapping[str, ProductRecord],
) -> dict[str, VideoRecord | ProductRecord]:
    return {i: r for i, r in records.items() if r.status is ItemStatus.LIVE}


def _unknown(
    live: dict[str, VideoRecord | ProductRecord], known: np.ndarray
) -> dict[str, VideoRecord | ProductRecord]:
    known_ids = set(np.asarray(known, dtype=str).tolist())
    return {i: r for i, r in live.items() if i not in known_ids}


def _is_new(published_at: str | None, cutoff: datetime) -> bool:
    if not published_at:
        return False
    try:
        published = datetime.fromisoformat(published_at)
    except ValueError:
        return False  # unreadable: not explicitly new
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return published >= cutoff
