"""The event log of a world's old (pre-recsvc) app: feed impressions, views, clicks on the
product cards attached under videos, and purchases.

Every draw is vectorised over events; the behavioural formulas come from `Truth`, at each
event's instant, so the data and the oracle cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from sandbox.world.catalog import Catalog
from sandbox.world.sampling import categorical, draw_rows, flat_cdf, redraw_unavailable
from sandbox.world.truth import Truth
from sandbox.world.users import Population
from sandbox.world.vocabulary import DAY_MS, KINDS

IMPRESSION_SHARE = 0.575  # impressions per event: sets how many impressions make `events`


@dataclass(frozen=True)
class EventArrays:
    user: np.ndarray  # int32 row
    item: np.ndarray  # int32: a video row, or n_videos + a product row
    action: np.ndarray  # int8 index into ACTIONS
    ts: np.ndarray  # int64 ms
    watch_ratio: np.ndarray  # float32, NaN unless a view
    request: np.ndarray  # int64 request number, -1 when none
    amount: np.ndarray  # float64, NaN unless a purchase


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
    p_view = truth.view_probability(user, video, ts)
    seen = np.flatnonzero(rng.random(len(user)) < p_view)
    v_user, v_video, v_request = user[seen], video[seen], request[seen]
    v_ts = ts[seen] + 1000 + rng.exponential(4000, len(seen)).astype(np.int64)
    # longer and less relevant videos are watched less of the way through
    duration = catalog.video_duration[v_video]
    mean = np.clip(0.1 + 0.8 * p_view[seen] - 0.08 * np.log(duration / 90), 0.05, 0.95)
    ratio = rng.beta(4 * mean, 4 * (1 - mean)).astype(np.float32)

    product = _draw_attaches(truth, v_video, v_ts, rng)
    p_click = truth.click_probability(v_user, v_video, product, v_ts)
    hit = np.flatnonzero(rng.random(len(seen)) < p_click)
    c_user, c_product, c_request = v_user[hit], product[hit], v_request[hit]
    watched = (ratio[hit] * duration[hit] * 1000).astype(np.int64)
    c_ts = v_ts[hit] + watched + rng.exponential(3000, len(hit)).astype(np.int64)

    p_buy = truth.purchase_probability(c_user, c_product, c_ts)
    bought = np.flatnonzero(rng.random(len(hit)) < p_buy)
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
    """The old feed: by popularity or by the user's topics at that instant (blind to a video's
    age); unavailable videos are redrawn."""
    n_videos = len(truth.video_ids)
    popular = flat_cdf(truth.popularity()[None, :])
    by_topic = flat_cdf(truth.topic_feed())
    early = np.cumsum(truth.user_topics, axis=1)
    late, tau = np.cumsum(truth.user_topics_late, axis=1), truth.progress(ts)

    def draw(pending: np.ndarray) -> np.ndarray:
        topic = categorical(early, user[pending], rng, late, tau[pending])
        return np.where(rng.random(len(pending)) < truth.behaviour.popular_share,
                        draw_rows(popular, np.zeros(len(pending), np.int64), n_videos, rng),
                        draw_rows(by_topic, topic, n_videos, rng))  # fmt: skip

    def available(pending: np.ndarray, video: np.ndarray) -> np.ndarray:
        at = ts[pending]
        return (truth.video_from_ms[video] <= at) & (at < truth.video_until_ms[video])

    return redraw_unavailable(len(user), draw, available, "video", "impressions")


def _draw_attaches(
    truth: Truth, video: np.ndarray, ts: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The old attach rule: a topic-matched product or a random one; retired ones redrawn."""
    n_products = len(truth.product_ids)
    matched = flat_cdf(truth.attach_match())

    def draw(pending: np.ndarray) -> np.ndarray:
        return np.where(rng.random(len(pending)) < truth.behaviour.attach_match,
                        draw_rows(matched, video[pending], n_products, rng),
                        rng.integers(0, n_products, len(pending)))  # fmt: skip

    def available(pending: np.ndarray, product: np.ndarray) -> np.ndarray:
        return ts[pending] < truth.product_until_ms[product]

    return redraw_unavailable(len(video), draw, available, "product", "attaches")


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
