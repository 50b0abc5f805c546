"""The world's catalog: videos on one or two topics, each by a creator or a news desk, and
products whose risk and topics follow their category, each published and retired at known
instants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsvc.contract.domain import ProductCategory
from sandbox.world.sampling import draw_level
from sandbox.world.vocabulary import DAY_MS, KINDS, NEVER_MS, TOPIC_INDEX, TOPICS

# How demanding a topic's videos are: the user's sophistication must match it.
_TOPIC_LEVEL = np.array([0.5, 0.35, 0.3, 0.6, 0.7, 0.2, 0.35, 0.5, 0.8, 0.1, 0.65, 0.2])
_TITLES = ("{} explained in 60 seconds", "5 {} mistakes to avoid", "{}: what changes this year",
           "Your {} questions answered", "A beginner's guide to {}", "{} for the long run",
           "What nobody tells you about {}", "{} in one chart")  # fmt: skip
# Indices into KINDS, about their shares; the first six are one of each category, so every
# world of six products or more has them all.
_KIND_CYCLE = np.array([0, 1, 2, 3, 4, 5, 0, 2, 3, 1, 0, 2, 0, 3, 1, 0, 2, 4, 5, 0])
NEWS_DESKS = ("news-1", "news-2", "news-3")  # the creators of every news video
_VIDEOS_PER_CREATOR = 25
_HOME_TOPIC = 0.9  # share of a creator's videos whose primary topic is the creator's own


@dataclass(frozen=True)
class Catalog:
    video_topics: np.ndarray  # [V, T] float32
    video_level: np.ndarray
    video_quality: np.ndarray
    video_from_ms: np.ndarray
    video_until_ms: np.ndarray
    video_duration: np.ndarray  # [V] int32 seconds
    video_titles: list[str]
    video_news: np.ndarray  # [V] bool: news, whose appeal decays with age
    video_creator: np.ndarray  # [V] str: a creator id, or a news desk for news
    product_topics: np.ndarray  # [P, T] float32
    product_quality: np.ndarray
    product_risk: np.ndarray  # [P] int8
    product_kind: np.ndarray  # [P] index into KINDS
    product_until_ms: np.ndarray
    product_names: list[str]
    product_disclosures: list[str | None]


def sample_catalog(
    n_videos: int,
    n_products: int,
    start_ms: int,
    days: int,
    retired: float,
    fresh_share: float,
    news_share: float,
    rng: np.random.Generator,
    clock: np.random.Generator,
) -> Catalog:
    """Videos on 1–2 topics and products whose risk and topics follow their category.

    `fresh_share` of the videos are published during the window, uniformly over it; news are
    `news_share` of all videos, all of them among those. `clock` draws what the world's clock
    added (news, creators), so `rng` draws what it always did.
    """
    n_topics, end_ms = len(TOPICS), start_ms + days * DAY_MS
    # the first videos cover every topic, so no topic's feed is empty
    primary = np.concatenate([np.arange(n_topics), rng.integers(0, n_topics, n_videos)])
    primary = rng.permutation(primary[:n_videos])
    video_topics = _topic_weights(
        primary, (primary + rng.integers(1, n_topics, n_videos)) % n_topics, rng
    )
    level = np.clip(_TOPIC_LEVEL[primary] + rng.normal(0, 0.2, n_videos), 0, 1)
    published = start_ms - rng.integers(0, 365 * DAY_MS, n_videos)
    fresh = rng.random(n_videos) < fresh_share  # published during the window
    published[fresh] = start_ms + rng.integers(0, days * DAY_MS, fresh.sum())
    duration = np.clip(np.exp(rng.normal(np.log(90), 0.7, n_videos)), 15, 1200).astype(np.int32)
    template = rng.integers(0, len(_TITLES), n_videos)
    titles = [
        _TITLES[j].format(TOPICS[t]).capitalize() for t, j in zip(primary, template, strict=True)
    ]

    kind = rng.permutation(np.resize(_KIND_CYCLE, n_products))
    risk = draw_level([k.risk for k in KINDS], kind, rng)
    options = np.array([len(k.topics) for k in KINDS])[kind]
    table = np.array([np.resize([TOPIC_INDEX[t] for t in k.topics], 4) for k in KINDS])
    news = fresh & (clock.random(n_videos) * fresh_share < news_share)
    first = rng.integers(0, options)
    second = (first + rng.integers(1, options)) % options
    return Catalog(
        video_topics=video_topics,
        video_level=level.astype(np.float32),
        video_quality=rng.normal(0, 0.8, n_videos).astype(np.float32),
        video_from_ms=published,
        video_until_ms=_retire(n_videos, retired, ~fresh, start_ms, end_ms, rng),
        video_duration=duration,
        video_titles=titles,
        video_news=news,
        video_creator=_creators(primary, news, clock),
        product_topics=_topic_weights(table[kind, first], table[kind, second], rng),
        product_quality=rng.normal(0, 0.3, n_products).astype(np.float32),
        product_risk=risk,
        product_kind=kind,
        product_until_ms=_retire(
            n_products, retired, np.ones(n_products, bool), start_ms, end_ms, rng
        ),
        product_names=_product_names(kind),
        product_disclosures=_disclosures(kind, rng),
    )


def _product_names(kind: np.ndarray) -> list[str]:
    """Names from the category's list, numbered once the list runs out."""
    used, names = np.zeros(len(KINDS), dtype=int), []
    for k in kind:  # per product
        base = KINDS[k].names
        series = used[k] // len(base)
        names.append(base[used[k] % len(base)] + (f" {series + 1}" if series else ""))
        used[k] += 1
    return names


def _creators(primary: np.ndarray, news: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[V] creator ids: news from a news desk; other videos from creators who mostly keep to
    their own topic (creator c's is topic c mod T), so a video's creator hints at its topic."""
    n, n_topics = len(primary), len(TOPICS)
    count = max(n_topics, n // _VIDEOS_PER_CREATOR)
    homes = -(-(count - primary) // n_topics)  # how many creators have the video's topic
    own = primary + n_topics * (rng.random(n) * homes).astype(np.int64)
    creator = np.where(rng.random(n) < _HOME_TOPIC, own, rng.integers(0, count, n))
    desk = count + rng.integers(0, len(NEWS_DESKS), n)
    width = max(2, len(str(count - 1)))
    names = np.array([f"c{c:0{width}d}" for c in range(count)] + list(NEWS_DESKS))
    return names[np.where(news, desk, creator)]


def _topic_weights(primary: np.ndarray, second: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[n, T] weights: 1 on the primary topic, or 0.65/0.35 when a second one is drawn."""
    n = len(primary)
    weights = np.zeros((n, len(TOPICS)), dtype=np.float32)
    two = rng.random(n) < 0.4
    weights[np.arange(n), primary] = np.where(two, 0.65, 1.0)
    weights[np.flatnonzero(two), second[two]] = 0.35
    return weights


def _retire(
    n: int, share: float, eligible: np.ndarray, start_ms: int, end_ms: int, rng: np.random.Generator
) -> np.ndarray:
    """Retirement instants: round(share * n) eligible items retire inside the window."""
    until = np.full(n, NEVER_MS, dtype=np.int64)
    chosen = rng.permutation(np.flatnonzero(eligible))[: round(share * n)]
    span = end_ms - start_ms
    until[chosen] = start_ms + (span * rng.uniform(0.15, 0.85, len(chosen))).astype(np.int64)
    return until


def _disclosures(kind: np.ndarray, rng: np.random.Generator) -> list[str | None]:
    """Credit always states its rate; about one in ten other products has no text."""
    apr = np.round(rng.uniform(6.9, 24.9, len(kind)), 1)
    monthly = 10_000 * (apr / 1200) / (1 - (1 + apr / 1200) ** -36)
    missing = rng.random(len(kind)) < 0.1
    texts: list[str | None] = []
    for k, rate, pay, gone in zip(kind, apr, monthly, missing, strict=True):  # per product
        if KINDS[k].category is ProductCategory.CREDIT:
            texts.append(f"Annual rate {rate:.1f}% APR. Representative example: borrowing "
                         f"10,000 over 36 months costs {pay:,.2f} a month.")  # fmt: skip
        else:
            texts.append(None if gone else KINDS[k].disclosure)
    return texts
