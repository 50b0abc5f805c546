"""The rules of a regulated seller, as ranking biases and a page-level choice.

Per model and catalogue revision, `ItemRules` aligns the catalogue with the model's item
order once. Per request, `product_bias` blocks (−inf) every product this user must not see:

- no record, retired, or missing a disclosure its category requires;
- risk level above the user's tolerance (unknown tolerance: the lowest level only, or none);
- held already, when it can be held once;
- attached `daily_cap` times to this user today.

`video_bias` blocks retired and already-seen videos. `choose_attachments` then keeps at most
`max_per_page` products on a page, each product once, the best-scoring first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any

import numpy as np

from recsvc.contract.catalog import Catalog, ProductRecord, VideoRecord
from recsvc.contract.domain import RISK_LEVELS, ProductCategory
from recsvc.feed.fresh import FreshVideos
from recsvc.feed.freshness import Freshness, HalfLifeCache, published_seconds, topic_decay

BLOCKED = np.float32(-np.inf)
LOWEST_RISK = 1


class UnknownRiskPolicy(StrEnum):
    """What to attach for a user whose risk tolerance is unknown."""

    LOWEST = "lowest"  # products of the lowest risk level only
    NONE = "none"  # no product at all


@dataclass(frozen=True)
class ItemRules:
    """A catalogue revision aligned with one model's video and product order."""

    video_block: np.ndarray  # [V] 0 or -inf (retired)
    product_block: np.ndarray  # [P] 0 or -inf (no record, retired, disclosure missing)
    product_risk: np.ndarray  # [P] risk level, 0 where there is no record
    holdable_once: np.ndarray  # [P] bool
    products: tuple[ProductRecord | None, ...]
    cards: tuple[dict[str, Any] | None, ...]  # the response's product card, score aside
    video_position: Mapping[str, int]
    product_position: Mapping[str, int]
    # [V] each video's topics in the catalogue (none for a video without a record)
    video_topics: tuple[tuple[str, ...], ...]
    # [V] each video's published_at in epoch seconds (NaN: unknown)
    video_published: np.ndarray
    # Per risk tolerance t (index 1 to 5): product_block, with every product of a risk level
    # above t blocked too (one copy per request instead of a compare and a mask).
    by_tolerance: tuple[np.ndarray, ...]
    # the videos published since the model was trained (recsvc.feed.fresh), ranked beside it
    fresh: FreshVideos = field(default_factory=FreshVideos)
    # a ranked index's video id and topics: the model's videos, then the fresh ones
    video_names: tuple[str, ...] = ()
    ranked_topics: tuple[tuple[str, ...], ...] = ()
    # per freshness setting (its half-lives), each video's half-life [V]: computed once
    _half_lives: HalfLifeCache = field(default_factory=dict, compare=False, repr=False)
    # per set of product categories a surface allows, the products outside it [P]
    _outside: dict[frozenset[ProductCategory], np.ndarray] = field(
        default_factory=dict, compare=False, repr=False
    )
    # per topic, the model's videos of it (built on first use; shared with the copies
    # with_fresh makes, whose model videos are the same)
    _by_topic: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def compile(
        cls, video_ids: Sequence[str], product_ids: Sequence[str], catalog: Catalog
    ) -> ItemRules:
        retired = catalog.retired_videos()
        video_block = np.where([v in retired for v in video_ids], BLOCKED, np.float32(0))
        products = tuple(catalog.products.get(p) for p in product_ids)
        attachable = np.array([r is not None and r.attachable for r in products], dtype=bool)
        product_block = np.where(attachable, np.float32(0), BLOCKED).astype(np.float32)
        product_risk = np.array([r.risk_level if r else 0 for r in products], dtype=np.int16)
        by_tolerance = tuple(
            np.where(product_risk > t, BLOCKED, product_block).astype(np.float32)
            for t in range(max(RISK_LEVELS) + 1)
        )
        video_topics = tuple(_topics(catalog.videos.get(v)) for v in video_ids)
        return cls(
            video_block=video_block.astype(np.float32),
            product_block=product_block,
            product_risk=product_risk,
            holdable_once=np.array([bool(r and r.holdable_once) for r in products], dtype=bool),
            products=products,
            cards=tuple(_card(r) if r else None for r in products),
            video_position={v: i for i, v in enumerate(video_ids)},
            video_topics=video_topics,
            video_published=np.array(
                [published_seconds(_published(catalog.videos.get(v))) for v in video_ids],
                dtype=np.float64,
            ),
            product_position={p: i for i, p in enumerate(product_ids)},
            by_tolerance=by_tolerance,
            video_names=tuple(video_ids),
            ranked_topics=video_topics,
        )

    def with_fresh(self, fresh: FreshVideos) -> ItemRules:
        """These rules with this table of fresh videos (their indices follow the model's)."""
        known = self.video_names[: len(self.video_block)]
        return replace(
            self,
            fresh=fresh,
            video_names=(*known, *fresh.ids),
            ranked_topics=(*self.video_topics, *fresh.topics),
        )

    @cached_property
    def product_categories(self) -> tuple[str, ...]:
        """[P] each product's category ("" for a product without a record)."""
        return tuple(r.category.value if r is not None else "" for r in self.products)

    def outside(self, categories: frozenset[ProductCategory]) -> np.ndarray:
        """[P] True for each product not of `categories` (a product without a record too)."""
        mask = self._outside.get(categories)
        if mask is None:
            mask = np.array(
                [r is None or r.category not in categories for r in self.products], dtype=bool
            )
            self._outside[categories] = mask
        return mask

    def videos_of(self, topics: Iterable[str]) -> set[int]:
        """The positions of the model's videos with any of these topics."""
        if not self._by_topic and any(self.video_topics):
            index: dict[str, list[int]] = {}
            for position, its_topics in enumerate(self.video_topics):
                for topic in its_topics:
                    index.setdefault(topic, []).append(position)
            self._by_topic.update({topic: tuple(p) for topic, p in index.items()})
        found: set[int] = set()
        for topic in topics:
            found.update(self._by_topic.get(topic, ()))
        return found

    def freshness_decay(self, freshness: Freshness, now: float) -> np.ndarray:
        """Each video's 2^(−age / its half-life) at `now` [V] (recsvc.feed.freshness)."""
        return topic_decay(
            freshness, self.video_topics, self.video_published, now, self._half_lives
        )

    def video_bias(self, seen: Iterable[str], out: np.ndarray | None = None) -> np.ndarray:
        """[V] biases: retired and seen videos blocked (written into `out` when given)."""
        bias = self.video_block.copy() if out is None else out
        if out is not None:
            out[:] = self.video_block
        positions = [self.video_position[v] for v in seen if v in self.video_position]
        if positions:
            bias[positions] = BLOCKED
        return bias

    def product_bias(
        self,
        risk_tolerance: int | None,
        holdings: Iterable[str],
        capped: Iterable[str] | None,
        unknown_risk: UnknownRiskPolicy,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """[P] biases blocking every product this user may not be offered now (written into
        `out` when given).

        `capped` are the products at today's cap; None means the counters are unknown
        (Redis unreachable): then nothing may be attached, since a cap could not be honoured.
        """
        bias = np.empty_like(self.product_block) if out is None else out
        if capped is None or (risk_tolerance is None and unknown_risk is UnknownRiskPolicy.NONE):
            bias[:] = BLOCKED
            return bias
        bias[:] = self.by_tolerance[LOWEST_RISK if risk_tolerance is None else risk_tolerance]
        for product_id in holdings:
            j = self.product_position.get(product_id)
            if j is not None and self.holdable_once[j]:
                bias[j] = BLOCKED
        for product_id in capped:
            j = self.product_position.get(product_id)
            if j is not None:
                bias[j] = BLOCKED
        return bias


def _card(record: ProductRecord) -> dict[str, Any]:
    return {
        "product_id": record.product_id,
        "name": record.name,
        "category": record.category.value,
        "risk_level": record.risk_level,
        "disclosure": record.disclosure,
    }


def choose_attachments(
    product_index: Sequence[int],
    product_score: Sequence[float],
    max_per_page: int,
    categories: Sequence[str] | None = None,
    left: Mapping[str, int] | None = None,
) -> list[int | None]:
    """Which product (by model index) goes under each ranked video, or None.

    The best-scoring pairs first (ties: the higher-ranked video); a product appears once per
    page; blocked (−inf) scores never; with `left` (category -> cards the user may still be
    shown today, `categories` naming each product's), no more cards of a category than it
    has left (the counting script checks the same again, atomically).
    """
    chosen: list[int | None] = [None] * len(product_index)
    if max_per_page < 1:
        return chosen
    used: set[int] = set()
    remaining = dict(left) if left and categories is not None else None
    # Best first; a stable sort, so reversed it keeps equal scores in rank order
    for j in sorted(range(len(product_score)), key=product_score.__getitem__, reverse=True):
        if len(used) >= max_per_page or product_score[j] == -math.inf:
            break
        product = product_index[j]
        if product in used:
            continue
        if remaining is not None:
            assert categories is not None
            category = categories[product]
            if category in remaining:
                if remaining[category] <= 0:
                    continue
                remaining[category] -= 1
        chosen[j] = product
        used.add(product)
    return chosen


def _topics(record: VideoRecord | None) -> tuple[str, ...]:
    return tuple(dict.fromkeys(record.topics)) if record is not None else ()


def _published(record: VideoRecord | None) -> str | None:
    return record.published_at if record is not None else None
