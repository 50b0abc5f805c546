"""Sampling a synthetic world: its catalog, its users and the events of its old app.

Every draw is vectorised over users, items or events; the behavioural formulas come from
`training.world.Truth`, so the data and the oracle cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np

from recsvc.domain import Action, Lifecycle
from recsvc.domain import ProductCategory as Cat

if TYPE_CHECKING:
    from training.world import Truth

DAY_MS = 86_400_000
NEVER_MS = np.iinfo(np.int64).max
CHUNK = 1 << 20  # rows per chunk when gathering [rows, topics] matrices
MAX_REDRAWS = 200  # an unavailable item is redrawn; each round leaves ~5% of the previous one
IMPRESSION_SHARE = 0.575  # impressions per event: sets how many impressions make `events`
TOPICS = ("retirement", "insurance", "health", "funds", "stocks", "deposits", "credit",
          "mortgage", "markets", "literacy", "tax", "budgeting")  # fmt: skip
_TOPIC = {name: i for i, name in enumerate(TOPICS)}
# How demanding a topic's videos are: the user's sophistication must match it.
_TOPIC_LEVEL = np.array([0.5, 0.35, 0.3, 0.6, 0.7, 0.2, 0.35, 0.5, 0.8, 0.1, 0.65, 0.2])
_TITLES = ("{} explained in 60 seconds", "5 {} mistakes to avoid", "{}: what changes this year",
           "Your {} questions answered", "A beginner's guide to {}", "{} for the long run",
           "What nobody tells you about {}", "{} in one chart")  # fmt: skip


@dataclass(frozen=True)
class Segment:
    name: str
    share: float
    risk: tuple[float, ...]  # P(risk tolerance = 1..5)
    topics: tuple[str, ...]  # favoured topics, most favoured first
    level: float  # mean sophistication in [0, 1]
    activity: float  # multiplies the user's activity
    holdings: float  # mean number of products held before the window


SEGMENTS = (
    Segment("seasoned_hnw", 0.08, (0.02, 0.08, 0.2, 0.35, 0.35),
            ("stocks", "markets", "funds", "tax", "retirement"), 0.85, 1.4, 2.5),
    Segment("emerging_affluent", 0.17, (0.05, 0.15, 0.35, 0.3, 0.15),
            ("funds", "stocks", "mortgage", "tax", "markets"), 0.65, 1.2, 1.5),
    Segment("middle_class", 0.35, (0.15, 0.35, 0.3, 0.15, 0.05),
            ("mortgage", "deposits", "insurance", "budgeting", "credit"), 0.45, 1.0, 1.2),
    Segment("older_first_time", 0.15, (0.35, 0.35, 0.2, 0.07, 0.03),
            ("retirement", "health", "insurance", "deposits", "tax"), 0.3, 0.8, 1.0),
    Segment("beginner", 0.25, (0.3, 0.35, 0.2, 0.1, 0.05),
            ("literacy", "budgeting", "credit", "deposits", "stocks"), 0.1, 0.9, 0.3),
)  # fmt: skip
LIFECYCLES = tuple(c.value for c in Lifecycle)  # codes 0..2: new, active, dormant


@dataclass(frozen=True)
class Kind:
    category: Cat
    risk: tuple[float, ...]  # P(risk level = 1..5)
    topics: tuple[str, ...]
    once: bool  # holdable once
    amount: float  # median purchase amount
    names: tuple[str, ...]
    disclosure: str  # empty for credit, whose text carries its own rate


KINDS = (
    Kind(Cat.FUND, (0, 0, 0.3, 0.4, 0.3), ("funds", "stocks", "markets"), False, 1500,
         ("Global Equity Fund", "Tech Leaders Fund", "Emerging Markets Fund", "World Index Fund"),
         "Capital at risk. The value of investments can fall as well as rise."),
    Kind(Cat.DEPOSIT, (0.8, 0.2, 0, 0, 0), ("deposits", "budgeting"), False, 5000,
         ("Easy Saver", "Fixed Term Deposit", "Bonus Saver", "Notice Account"),
         "Deposits are protected up to 100,000 EUR per depositor."),
    Kind(Cat.INSURANCE, (0.5, 0.5, 0, 0, 0), ("insurance", "health"), True, 480,
         ("Health Shield", "Life Cover", "Home Protect", "Critical Illness Cover"),
         "Terms, exclusions and limits apply; read the policy document."),
    Kind(Cat.CREDIT, (0, 0.4, 0.6, 0, 0), ("credit", "mortgage", "budgeting"), True, 9000,
         ("Personal Loan", "Home Loan", "Credit Card", "Car Loan"), ""),
    Kind(Cat.WEALTH, (0, 0, 0.4, 0.6, 0), ("stocks", "markets", "tax", "funds"), False, 25000,
         ("Managed Portfolio", "Private Mandate", "Wealth Plan"),
         "Capital at risk. Fees apply; read the key information document."),
    Kind(Cat.PENSION, (0, 0.5, 0.5, 0, 0), ("retirement", "tax"), True, 2400,
         ("Pension Plan", "Retirement Saver", "Lifetime Annuity"),
         "Tax treatment depends on individual circumstances."),
)  # fmt: skip
# Indices into KINDS, about their shares; the first six are one of each category, so every
# world of six products or more has them all.
_KIND_CYCLE = np.array([0, 1, 2, 3, 4, 5, 0, 2, 3, 1, 0, 2, 0, 3, 1, 0, 2, 4, 5, 0])


@dataclass(frozen=True)
class Catalog:
    video_topics: np.ndarray  # [V, T] float32
    video_level: np.ndarray
    video_quality: np.ndarray
    video_from_ms: np.ndarray
    video_until_ms: np.ndarray
    video_duration: np.ndarray  # [V] int32 seconds
    video_titles: list[str]
    product_topics: np.ndarray  # [P, T] float32
    product_quality: np.ndarray
    product_risk: np.ndarray  # [P] int8
    product_kind: np.ndarray  # [P] index into KINDS
    product_until_ms: np.ndarray
    product_names: list[str]
    product_disclosures: list[str | None]


@dataclass(frozen=True)
class Population:
    topics: np.ndarray  # [U, T] float32 interests
    level: np.ndarray
    risk: np.ndarray  # [U] int8
    segment: np.ndarray  # [U] int8 index into SEGMENTS
    lifecycle: np.ndarray  # [U] int8 index into LIFECYCLES
    first_day: np.ndarray  # [U] first active day of the window
    last_day: np.ndarray  # [U] active until this day (exclusive)
    activity: np.ndarray  # [U] events per active day, relative
    held_users: np.ndarray  # [H] int32, sorted with held_products by (user, product)
    held_products: np.ndarray


@dataclass(frozen=True)
class EventArrays:
    user: np.ndarray  # int32 row
    item: np.ndarray  # int32: a video row, or n_videos + a product row
    action: np.ndarray  # int8 index into ACTIONS
    ts: np.ndarray  # int64 ms
    watch_ratio: np.ndarray  # float32, NaN unless a view
    request: np.ndarray  # int64 request number, -1 when none
    amount: np.ndarray  # float64, NaN unless a purchase


ACTIONS = tuple(a.value for a in Action)  # codes 0..3: impression, view, click, purchase


def sample_catalog(
    n_videos: int,
    n_products: int,
    start_ms: int,
    days: int,
    retired: float,
    rng: np.random.Generator,
) -> Catalog:
    """Videos on 1–2 topics and products whose risk and topics follow their category."""
    n_topics, end_ms = len(TOPICS), start_ms + days * DAY_MS
    # the first videos cover every topic, so no topic's feed is empty
    primary = np.concatenate([np.arange(n_topics), rng.integers(0, n_topics, n_videos)])
    primary = rng.permutation(primary[:n_videos])
    video_topics = _topic_weights(
        primary, (primary + rng.integers(1, n_topics, n_videos)) % n_topics, rng
    )
    level = np.clip(_TOPIC_LEVEL[primary] + rng.normal(0, 0.2, n_videos), 0, 1)
    published = start_ms - rng.integers(0, 365 * DAY_MS, n_videos)
    fresh = rng.random(n_videos) < 0.05  # published during the window
    published[fresh] = start_ms + rng.integers(0, days * DAY_MS, fresh.sum())
    duration = np.clip(np.exp(rng.normal(np.log(90), 0.7, n_videos)), 15, 1200).astype(np.int32)
    template = rng.integers(0, len(_TITLES), n_videos)
    titles = [
        _TITLES[j].format(TOPICS[t]).capitalize() for t, j in zip(primary, template, strict=True)
    ]

    kind = rng.permutation(np.resize(_KIND_CYCLE, n_products))
    risk_cdf = np.cumsum([k.risk for k in KINDS], axis=1)
    risk = (rng.random(n_products)[:, None] > risk_cdf[kind]).sum(1).astype(np.int8) + 1
    options = np.array([len(k.topics) for k in KINDS])[kind]
    table = np.array([np.resize([_TOPIC[t] for t in k.topics], 4) for k in KINDS])
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
        if KINDS[k].category is Cat.CREDIT:
            texts.append(f"Annual rate {rate:.1f}% APR. Representative example: borrowing "
                         f"10,000 over 36 months costs {pay:,.2f} a month.")  # fmt: skip
        else:
            texts.append(None if gone else KINDS[k].disclosure)
    return texts


def sample_users(n_users: int, days: int, catalog: Catalog, rng: np.random.Generator) -> Population:
    """Users: a segment, a risk tolerance, 1–3 favourite topics, a lifecycle, an activity."""
    shares = np.array([s.share for s in SEGMENTS])
    segment = rng.choice(len(SEGMENTS), n_users, p=shares / shares.sum()).astype(np.int8)
    risk_cdf = np.cumsum([s.risk for s in SEGMENTS], axis=1)
    risk = (rng.random(n_users)[:, None] > risk_cdf[segment]).sum(1).astype(np.int8) + 1
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
    return Population(topics, np.clip(level, 0, 1).astype(np.float32), risk, segment, lifecycle,
                      first_day, last_day, activity, held_users, held_products)  # fmt: skip


def _interests(segment: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[U, T] interests: 1–3 topics drawn from the segment's prior carry 90% of the weight."""
    n, n_topics = len(segment), len(TOPICS)
    prior = np.full((len(SEGMENTS), n_topics), 0.04)
    for s, seg in enumerate(SEGMENTS):  # per segment, not per user
        prior[s, [_TOPIC[t] for t in seg.topics]] += 1 / np.arange(1, len(seg.topics) + 1)
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
    topic = _categorical(np.cumsum(topics, axis=1), users, rng)
    tolerance = np.where(rng.random(len(users)) < 0.95, risk[users], 5)
    # candidates per (topic, tolerance): matching and suitable, else suitable, else any
    pools, offsets, sizes = [], np.zeros(n_topics * 5, np.int64), np.zeros(n_topics * 5, np.int64)
    for key in range(n_topics * 5):  # 60 small pools, not a loop over users
        suitable = catalog.product_risk <= key % 5 + 1
        matching = suitable & (catalog.product_topics[:, key // 5] > 0)
        pool = np.flatnonzero(matching if matching.any() else suitable)
        pool = pool if len(pool) else np.arange(n_products)
        offsets[key], sizes[key] = sum(map(len, pools)), len(pool)
        pools.append(pool)
    key = topic * 5 + tolerance - 1
    products = np.concatenate(pools)[offsets[key] + (rng.random(len(key)) * sizes[key]).astype(int)]
    codes = np.unique(users.astype(np.int64) * n_products + products)
    return (codes // n_products).astype(np.int32), (codes % n_products).astype(np.int32)


def _categorical(cdf: np.ndarray, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per entry of `rows` from the categorical whose CDF is `cdf[row]`."""
    out = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), CHUNK):  # chunks bound the [chunk, K] gather
        part = slice(start, start + CHUNK)
        draw = rng.random(len(rows[part]))
        rows_cdf = cdf[rows[part]]
        out[part] = (rows_cdf < draw[:, None] * rows_cdf[:, -1:]).sum(1)
    return np.minimum(out, cdf.shape[1] - 1)


def _flat_cdf(weights: np.ndarray) -> np.ndarray:
    """Row CDFs of [R, K] weights laid end to end, row r spanning (r, r + 1]."""
    cdf = np.cumsum(weights, axis=1, dtype=np.float64)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    return (cdf + np.arange(len(weights))[:, None]).ravel()


def _draw_rows(
    flat: np.ndarray, rows: np.ndarray, width: int, rng: np.random.Generator
) -> np.ndarray:
    """One column per entry of `rows`, drawn from that row of a `_flat_cdf`."""
    found = np.searchsorted(flat, rows + rng.random(len(rows)), side="right")
    return np.clip(found - rows * width, 0, width - 1)


def simulate_events(
    truth: Truth,
    people: Population,
    catalog: Catalog,
    n_events: int,
    start_ms: int,
    rng: np.random.Generator,
) -> EventArrays:
    """The old app's log: feed impressions, views, clicks on attached cards, purchases."""
    end_ms = truth.end_ms
    user, request, ts = _impressions(people, round(n_events * IMPRESSION_SHARE), start_ms, rng)
    video = _draw_videos(truth, user, ts, rng)
    p_view = truth.view_probability(user, video)
    seen = np.flatnonzero(rng.random(len(user)) < p_view)
    v_user, v_video, v_request = user[seen], video[seen], request[seen]
    v_ts = ts[seen] + 1000 + rng.exponential(4000, len(seen)).astype(np.int64)
    # longer and less relevant videos are watched less of the way through
    duration = catalog.video_duration[v_video]
    mean = np.clip(0.1 + 0.8 * p_view[seen] - 0.08 * np.log(duration / 90), 0.05, 0.95)
    ratio = rng.beta(4 * mean, 4 * (1 - mean)).astype(np.float32)

    product = _draw_attaches(truth, v_video, v_ts, rng)
    hit = np.flatnonzero(rng.random(len(seen)) < truth.click_probability(v_user, v_video, product))
    c_user, c_product, c_request = v_user[hit], product[hit], v_request[hit]
    watched = (ratio[hit] * duration[hit] * 1000).astype(np.int64)
    c_ts = v_ts[hit] + watched + rng.exponential(3000, len(hit)).astype(np.int64)

    bought = np.flatnonzero(rng.random(len(hit)) < truth.purchase_probability(c_user, c_product))
    later = rng.random(len(bought)) < 0.3  # completed in a later session: no request id
    delay = np.where(later, rng.integers(3_600_000, 3 * DAY_MS, len(bought)),
                     30_000 + rng.exponential(120_000, len(bought)).astype(np.int64))  # fmt: skip
    b_user, b_product = c_user[bought], c_product[bought]
    b_ts = c_ts[bought] + delay
    median = np.array([k.amount for k in KINDS])[catalog.product_kind[b_product]]
    amount = np.round(median * np.exp(rng.normal(0, 0.6, len(bought))), 2)
    keep = _first_purchases(truth, b_user, b_product, b_ts)
    b_request = np.where(later, -1, c_request[bought])

    n_videos = len(truth.video_ids)
    # what would happen after the window's end is not in its log
    return _concat(end_ms, [
        _part(0, user, video, ts, request),
        _part(1, v_user, v_video, v_ts, v_request, watch_ratio=ratio),
        _part(2, c_user, n_videos + c_product, c_ts, c_request),
        _part(3, b_user[keep], n_videos + b_product[keep], b_ts[keep], b_request[keep],
              amount=amount[keep]),
    ])  # fmt: skip


def _impressions(
    people: Population, n: int, start_ms: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Impression users, request numbers (in time order) and times, pages of 3–6 videos."""
    n_users = len(people.activity)
    weight = people.activity * (people.last_day - people.first_day)
    counts = rng.multinomial(n, weight / weight.sum())
    user = np.repeat(np.arange(n_users, dtype=np.int32), counts)
    page = rng.integers(3, 7, n_users)
    local = np.arange(n) - np.repeat(np.cumsum(counts) - counts, counts)
    pages = -(-counts // page)
    request = np.repeat(np.cumsum(pages) - pages, counts) + local // page[user]
    owner = np.repeat(np.arange(n_users), pages)
    span = people.last_day[owner] - people.first_day[owner]
    day = people.first_day[owner] + (rng.random(len(owner)) * span).astype(np.int64)
    # people open the app in the morning, at lunch and mostly in the evening
    peak = rng.choice(3, len(owner), p=[0.3, 0.25, 0.45])
    hour = (
        np.array([8.0, 12.5, 20.5])[peak]
        + rng.normal(0, 1, len(owner)) * np.array([1.5, 1.0, 2.0])[peak]
    )
    moment = start_ms + day * DAY_MS + ((hour % 24) * 3_600_000).astype(np.int64)
    order = np.argsort(moment, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    ts = moment[request] + (local % page[user]) * 700 + rng.integers(0, 300, n)
    return user, rank[request], ts


def _draw_videos(
    truth: Truth, user: np.ndarray, ts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The old feed: by popularity or by the user's topics; unavailable videos are redrawn."""
    n_videos = len(truth.video_ids)
    popular = _flat_cdf(truth.popularity()[None, :])
    by_topic = _flat_cdf(truth.topic_feed())
    interests = np.cumsum(truth.user_topics, axis=1)
    out, pending = np.empty(len(user), dtype=np.int32), np.arange(len(user))
    for _ in range(MAX_REDRAWS):  # rounds over the still-unavailable draws
        topic = _categorical(interests, user[pending], rng)
        video = np.where(rng.random(len(pending)) < truth.behaviour.popular_share,
                         _draw_rows(popular, np.zeros(len(pending), np.int64), n_videos, rng),
                         _draw_rows(by_topic, topic, n_videos, rng))  # fmt: skip
        at = ts[pending]
        ok = (truth.video_from_ms[video] <= at) & (at < truth.video_until_ms[video])
        out[pending[ok]] = video[ok]
        pending = pending[~ok]
        if not len(pending):
            return out
    raise RuntimeError(f"no available video for {len(pending)} impressions")


def _draw_attaches(
    truth: Truth, video: np.ndarray, ts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The old attach rule: a topic-matched product or a random one; retired ones redrawn."""
    n_products = len(truth.product_ids)
    matched = _flat_cdf(truth.attach_match())
    out, pending = np.empty(len(video), dtype=np.int32), np.arange(len(video))
    for _ in range(MAX_REDRAWS):
        product = np.where(rng.random(len(pending)) < truth.behaviour.attach_match,
                           _draw_rows(matched, video[pending], n_products, rng),
                           rng.integers(0, n_products, len(pending)))  # fmt: skip
        ok = ts[pending] < truth.product_until_ms[product]
        out[pending[ok]] = product[ok]
        pending = pending[~ok]
        if not len(pending):
            return out
    raise RuntimeError(f"no available product for {len(pending)} attaches")


def _first_purchases(
    truth: Truth, user: np.ndarray, product: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """Mask of purchases to keep: a holdable-once product is bought once per user."""
    code = user.astype(np.int64) * len(truth.product_ids) + product
    order = np.lexsort((ts, code))
    first = np.ones(len(code), dtype=bool)
    first[order[1:]] = code[order[1:]] != code[order[:-1]]
    return first | ~truth.product_once[product]


def _part(
    action: int,
    user: np.ndarray,
    item: np.ndarray,
    ts: np.ndarray,
    request: np.ndarray,
    watch_ratio: np.ndarray | None = None,
    amount: np.ndarray | None = None,
) -> EventArrays:
    """Events of one action; the columns it has no value for are NaN."""
    n = len(user)
    return EventArrays(
        user=user.astype(np.int32),
        item=item.astype(np.int32),
        action=np.full(n, action, dtype=np.int8),
        ts=ts.astype(np.int64),
        watch_ratio=np.full(n, np.nan, np.float32) if watch_ratio is None else watch_ratio,
        request=request.astype(np.int64),
        amount=np.full(n, np.nan) if amount is None else amount,
    )


def _concat(end_ms: int, parts: list[EventArrays]) -> EventArrays:
    """Stack the parts column by column, keeping the events before `end_ms`."""
    inside = np.concatenate([p.ts for p in parts]) < end_ms
    columns = (np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(EventArrays))
    return EventArrays(*(column[inside] for column in columns))
