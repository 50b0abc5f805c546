"""The world's users: a segment, a risk tolerance, interests over the topics (at the window's
start and end), a lifecycle, an activity level and the products they held before the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sandbox.world.catalog import Catalog
from sandbox.world.sampling import categorical, draw_level
from sandbox.world.vocabulary import SEGMENTS, TOPIC_INDEX, TOPICS


@dataclass(frozen=True)
class Population:
    topics: np.ndarray  # [U, T] float32 interests at the window's start
    topics_late: np.ndarray  # [U, T] float32 interests at its end (`topics` without drift)
    level: np.ndarray
    risk: np.ndarray  # [U] int8
    segment: np.ndarray  # [U] int8 index into SEGMENTS
    lifecycle: np.ndarray  # [U] int8 index into LIFECYCLES
    first_day: np.ndarray  # [U] first active day of the window
    last_day: np.ndarray  # [U] active until this day (exclusive)
    activity: np.ndarray  # [U] events per active day, relative
    held_users: np.ndarray  # [H] int32, sorted with held_products by (user, product)
    held_products: np.ndarray


def sample_users(
    n_users: int,
    days: int,
    catalog: Catalog,
    drift: float,
    rng: np.random.Generator,
    clock: np.random.Generator,
) -> Population:
    """Users: a segment, a risk tolerance, 1–3 favourite topics, a lifecycle, an activity.

    By the window's end the interests have moved `drift` of the way to a second vector drawn
    like the first (from `clock`, so `rng` draws what it always did).
    """
    shares = np.array([s.share for s in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), n_users, p=shares / shares.sum()).astype(np.int8)
    risk = draw_level([s.risk for s in SEGMENTS], segment, rng)
    lifecycle = rng.choice(3, n_users, p=[0.08, 0.72, 0.2]).astype(np.int8)
    first_day = np.where(lifecycle == 0, days - rng.integers(1, min(3, days) + 1, n_users), 0)
    # dormant users stopped using the app somewhere in the first half of the window
    last_day = np.where(lifecycle == 2, rng.integers(1, max(days // 2, 1) + 1, n_users), days)
    # sophistication rises with risk tolerance, so what people watch hints at what suits them
    level = np.array([s.level for s in SEGMENTS])[segment] + 0.06 * (risk - 3)
    level += rng.normal(0, 0.1, n_users)
    activity = np.exp(rng.normal(0, 1.1, n_users))  # heavy-tailed: a few users do most
    activity *= np.array([s.activity for s in SEGMENTS])[segment] * np.where(lifecycle == 2, 0.5, 1)
    topics = _interests(segment, rng)
    held_users, held_products = _holdings(topics, risk, segment, lifecycle, catalog, rng)
    late = topics if drift == 0 else (1 - drift) * topics + drift * _interests(segment, clock)
    return Population(topics, late, np.clip(level, 0, 1).astype(np.float32), risk, segment,
                      lifecycle, first_day, last_day, activity, held_users,
                      held_products)  # fmt: skip


def _interests(segment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[U, T] interests: 1–3 topics drawn from the segment's prior carry 95% of the weight."""
    n, n_topics = len(segment), len(TOPICS)
    prior = np.full((len(SEGMENTS), n_topics), 0.04)
    for s, seg in enumerate(SEGMENTS):  # per segment, not per user
        prior[s, [TOPIC_INDEX[t] for t in seg.topics]] += 1 / np.arange(1, len(seg.topics) + 1)
    # Gumbel top-k: the first k of these keys are k topics drawn without replacement
    keys = np.log(prior[segment]) + rng.gumbel(size=(n, n_topics))
    chosen = np.argsort(-keys, axis=1)[:, :3]
    k = rng.choice([1, 2, 3], n, p=[0.35, 0.4, 0.25])
    weight = rng.gamma(3.0, size=(n, 3)) * (np.arange(3)[None, :] < k[:, None])
    interests = np.full((n, n_topics), 0.05 / n_topics, dtype=np.float32)
    interests[np.arange(n)[:, None], chosen] += 0.95 * weight / weight.sum(1, keepdims=True)
    return interests


def _holdings(
    topics: np.ndarray,
    risk: np.ndarray,
    segment: np.ndarray,
    lifecycle: np.ndarray,
    catalog: Catalog,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Products bought before the window: on a favourite topic, suitable 95% of the time."""
    n_products, n_topics = len(catalog.product_risk), len(TOPICS)
    mean = np.array([s.holdings for s in SEGMENTS])[segment] * np.where(lifecycle == 0, 0.3, 1)
    count = np.minimum(rng.poisson(mean), 6)
    users = np.repeat(np.arange(len(risk), dtype=np.int32), count)
    topic = categorical(np.cumsum(topics, axis=1), users, rng)
    tolerance = np.where(rng.random(len(users)) < 0.95, risk[users], 5)
    # candidates per (topic, tolerance): matching and suitable, else suitable, else any
    pools: list[np.ndarray] = []
    offsets, sizes = np.zeros(n_topics * 5, np.int64), np.zeros(n_topics * 5, np.int64)
    for slot in range(n_topics * 5):  # 60 small pools, not a loop over users
        suitable = catalog.product_risk <= slot % 5 + 1
        matching = suitable & (catalog.product_topics[:, slot // 5] > 0)
        pool = np.flatnonzero(matching if matching.any() else suitable)
        pool = pool if len(pool) else np.arange(n_products)
        offsets[slot], sizes[slot] = sum(map(len, pools)), len(pool)
        pools.append(pool)
    key = topic * 5 + tolerance - 1
    products = np.concatenate(pools)[offsets[key] + (rng.random(len(key)) * sizes[key]).astype(int)]
    codes = np.unique(users.astype(np.int64) * n_products + products)
    return (codes // n_products).astype(np.int32), (codes % n_products).astype(np.int32)
