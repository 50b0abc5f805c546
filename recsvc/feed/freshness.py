"""Freshness: a video's age, from its catalogue `published_at`, as a bias on its score.

A video of age t hours (now minus published_at) gains weight · σ_u · 2^(−t / h) in user u's
scores, h the half-life of its topic (the shortest among its topics that have one; else the
default), σ_u the spread of the user's scores over the videos: the units of the trending
prior (training.models.trending), so a weight of 1 lifts a video published this instant by
one standard deviation of the user's own scores, half that after one half-life. A video
without a readable `published_at` gains nothing; one stamped in the future counts as new.
Users without a vector (ranked by popularity) are unaffected, as with the trending prior.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

# The default half-life: explainers and evergreen content age over weeks.
DEFAULT_HALF_LIFE_HOURS = 24.0 * 14


@dataclass(frozen=True)
class Freshness:
    weight: float = 0.0  # 0: off
    default_half_life_hours: float = DEFAULT_HALF_LIFE_HOURS
    # (topic, half-life in hours), e.g. (("market-news", 6.0),)
    half_lives: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        hours = [self.default_half_life_hours, *(h for _, h in self.half_lives)]
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"the freshness weight must be a number >= 0, not {self.weight}")
        if not all(math.isfinite(h) and h > 0 for h in hours):
            raise ValueError(f"every freshness half-life must be a number of hours > 0: {hours}")

    def half_life(self, topics: tuple[str, ...]) -> float:
        """The half-life of a video of these topics."""
        own = dict(self.half_lives)
        found = [own[t] for t in topics if t in own]
        return min(found) if found else self.default_half_life_hours


def parse_half_lives(text: str) -> tuple[tuple[str, float], ...]:
    """`topic=hours,topic=hours` (spaces allowed) as pairs; ValueError naming the bad part."""
    pairs: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        topic, sep, hours = part.partition("=")
        try:
            value = float(hours)
        except ValueError:
            value = math.nan
        if not sep or not topic.strip() or not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"{part!r}: each freshness half-life is topic=hours, hours a number > 0"
            )
        pairs.append((topic.strip(), value))
    return tuple(pairs)


def published_seconds(published_at: str | None) -> float:
    """`published_at` as epoch seconds (no zone: UTC); NaN when absent or unreadable."""
    if not published_at:
        return math.nan
    try:
        published = datetime.fromisoformat(published_at)
    except ValueError:
        return math.nan
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return published.timestamp()


HalfLifeCache = dict[tuple[float, tuple[tuple[str, float], ...]], np.ndarray]


def topic_decay(
    freshness: Freshness,
    topics: tuple[tuple[str, ...], ...],
    published: np.ndarray,
    now: float,
    cache: HalfLifeCache,
) -> np.ndarray:
    """`decay` of videos of these topics; each video's half-life computed once per setting
    and kept in `cache` (the caller's, one per catalogue revision)."""
    key = (freshness.default_half_life_hours, freshness.half_lives)
    half_lives = cache.get(key)
    if half_lives is None:
        half_lives = np.array([freshness.half_life(t) for t in topics])
        cache[key] = half_lives
    return decay(published, half_lives, now)


def decay(published: np.ndarray, half_life_hours: np.ndarray, now: float) -> np.ndarray:
    """2^(−age / half-life) per video [V] (float32), 0 where the publication time is unknown."""
    # In place, step by step as 2^(−max(now − published, 0) / 3600 / h): once per batch of
    # feeds, over every video.
    exponent = np.subtract(now, published)
    np.maximum(exponent, 0.0, out=exponent)
    exponent /= 3600.0
    np.negative(exponent, out=exponent)
    exponent /= half_life_hours
    values = np.exp2(exponent, out=exponent)
    np.fmax(values, 0.0, out=values)  # NaN (no publication time) -> 0; the others are in [0, 1]
    return np.asarray(values, dtype=np.float32)
