"""Live trending counts in Redis: the INGEST script counts each new view or click of a video
in its UTC hour (Keys.trend, the stream's slot) in the same step as its append, so a retried
batch never counts twice; an hour's counts expire TREND_KEEP_HOURS after it, so a week of
traffic keeps a bounded number of keys; a replica's LiveTrends reads the hours of its window
and keeps no others."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from recsvc.contract.keys import Keys
from recsvc.contract.records import Event
from recsvc.service.trends import TREND_REREAD_HOURS, LiveTrends, window_hours
from recsvc.store.gateway import connect
from recsvc.store.ingest import TREND_KEEP_HOURS
from recsvc.store.state import FeatureStore


def event(n: int, item: str, action: str = "view", hours_ago: float = 0.0, **extra: Any) -> Event:
    ts = datetime.now(UTC) - timedelta(hours=hours_ago)
    return Event.model_validate(
        {
            "event_id": f"e-{n}",
            "ts": ts.isoformat(),
            "user_id": f"u-{n % 7}",
            "item_id": item,
            "item_type": "product" if item.startswith("p") else "video",
            "action": action,
            **extra,
        }
    )


def ingest(redis_url: str, events: list[Event]) -> None:
    async def main() -> None:
        client = connect(redis_url, 1000)
        try:
            await FeatureStore(client, Keys()).ingest(events, 100_000, 3600, 10, videos=CATALOGUE)
        finally:
            await client.aclose()

    asyncio.run(main())


CATALOGUE = frozenset(f"v{i}" for i in range(10))  # the catalogue's video ids
WEIGHTS = {"impression": 0.0, "view": 1.0, "click": 4.0}


def counts(client: redis.Redis, hour: int) -> dict[str, int]:
    raw = client.hgetall(Keys().trend(hour))
    return {k.decode(): int(v) for k, v in raw.items()}  # type: ignore[union-attr]


def within_one_hour() -> None:
    """Wait out the last seconds of an hour, so that "now" is one hour throughout a test."""
    while time.time() % 3600 > 3590:
        time.sleep(1)


def test_views_and_clicks_of_videos_count_in_their_hour_once(redis_url: str) -> None:
    within_one_hour()
    batch = [
        event(1, "v1"),
        event(2, "v1", "click"),
        event(3, "v2", hours_ago=1),
        event(4, "v1", "impression"),  # weighs nothing: not a user of the video
        event(5, "p1", "purchase"),  # a product
        event(6, "v3", watch_ratio=0.0),  # watched for nothing
        event(7, "v4", hours_ago=TREND_KEEP_HOURS + 2),  # older than the counts are kept
        event(8, "v5", hours_ago=-2),  # stamped in the future: counts now
        event(9, "v6", watch_ratio=2.5),  # a replay is a view
        event(10, "made-up", "view"),  # not in the catalogue: never counted
    ]
    ingest(redis_url, batch)
    ingest(redis_url, batch)  # the client's retry: every event a duplicate
    client = redis.Redis.from_url(redis_url)
    now = int(time.time() // 3600)
    assert counts(client, now) == {"v1|view": 1, "v1|click": 1, "v5|view": 1, "v6|view": 1}
    assert counts(client, now - 1) == {"v2|view": 1}
    trend_keys = sorted(k.decode() for k in client.scan_iter(match="*:trend:*"))
    assert trend_keys == sorted([Keys().trend(now), Keys().trend(now - 1)])
    # in the event stream's slot, and gone TREND_KEEP_HOURS after the hour ends
    assert "{" + Keys().events + "}" in trend_keys[0]
    expires_in = (now + 1 + TREND_KEEP_HOURS) * 3600 - time.time()
    assert abs(client.ttl(Keys().trend(now)) - expires_in) <= 2
    client.close()


def reads_to_cover(hours: int) -> int:
    """Reads until a window is held: each reads the hour under way, the one before it and
    TREND_REREAD_HOURS older ones."""
    return math.ceil((len(window_hours(hours, time.time())) - 2) / TREND_REREAD_HOURS)


def test_a_week_of_traffic_keeps_a_bounded_number_of_hours(redis_url: str) -> None:
    within_one_hour()
    # one view in each of the 240 hours before this one: only the hours still kept get counts
    past = (time.time() % 3600) / 3600  # of this hour
    ingest(redis_url, [event(h, f"v{h % 5}", hours_ago=past + h + 0.5) for h in range(240)])
    client = redis.Redis.from_url(redis_url)
    trend_keys = list(client.scan_iter(match="*:trend:*"))
    assert len(trend_keys) == TREND_KEEP_HOURS  # the hours 1 to 168 ago; none of this hour
    assert all(0 < client.ttl(k) <= (TREND_KEEP_HOURS + 1) * 3600 for k in trend_keys)
    client.close()

    async def read(hours: float, since_hours_ago: int) -> tuple[LiveTrends, list[bool]]:
        client = connect(redis_url, 1000)
        store = FeatureStore(client, Keys())
        now_hour = int(time.time() // 3600)
        await client.set(Keys().trend_since, now_hour - since_hours_ago)
        trends, covered = LiveTrends(), []
        try:
            for _ in range(50):  # a week of hours, a few at a time
                trends._refreshed = float("-inf")  # due now, not in 5 s
                await trends.refresh(store, hours)
                covered.append(trends.covered(hours))
        finally:
            await client.aclose()
        return trends, covered

    trends, covered = asyncio.run(read(24, since_hours_ago=240))
    # the hour under way and the one before it, then the older ones a few at a time
    assert covered.index(True) == reads_to_cover(24) - 1
    now = time.time()
    assert sorted(trends._hours) == window_hours(24, now)  # its longest window only
    assert sum(trends.video_counts(24, WEIGHTS, now).values()) == 24  # the 24 hours before
    assert sum(trends.video_counts(3, WEIGHTS, now).values()) == 3
    assert trends.video_counts(24, {"view": 0.0}, now) == {}  # what the model counts only

    trends, covered = asyncio.run(read(168, since_hours_ago=240))
    assert covered.index(True) == reads_to_cover(168) - 1
    assert sum(trends.video_counts(168, WEIGHTS).values()) == 168

    # counts kept only since 10 hours ago cover no day-long window
    trends, covered = asyncio.run(read(24, since_hours_ago=10))
    assert not any(covered)


def test_the_window_is_the_hour_under_way_and_the_whole_hours_before() -> None:
    now = 1_000 * 3600 + 1_800.0  # half past hour 1000
    assert window_hours(3, now) == [997, 998, 999, 1000]
    assert window_hours(0.5, now) == [999, 1000]
