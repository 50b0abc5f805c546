"""The first views of fresh videos in Redis (recsvc.store.fresh): bounded per video, expiring,
and a retried batch writes nothing twice. A real private Redis."""

from __future__ import annotations

import asyncio

import redis

from recsvc.contract.keys import Keys
from recsvc.store.fresh import FRESH_EVENTS_MAX, FRESH_KEEP_SECONDS
from recsvc.store.gateway import connect
from recsvc.store.state import FeatureStore


def record(url: str, views: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    async def work() -> dict[str, dict[str, str]]:
        client = connect(url, 1000)
        store = FeatureStore(client, Keys())
        try:
            await store.record_fresh_views(views)
            return await store.fresh_views(sorted(views))
        finally:
            await client.aclose()

    return asyncio.run(work())


def test_a_retry_writes_nothing_twice_and_each_video_expires(redis_url: str) -> None:
    views = {"v-new": {"u1|e1": "u1|view|0.5", "u2|e1": "u2|click|"}, "v-other": {}}
    record(redis_url, views)
    stored = record(redis_url, views)  # the client's retry of the same batch
    assert stored == {"v-new": views["v-new"], "v-other": {}}
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.ttl(Keys().fresh_viewers("v-new")) <= FRESH_KEEP_SECONDS
    assert not client.exists(Keys().fresh_viewers("v-other"))
    client.close()


def test_a_video_holds_at_most_its_first_events(redis_url: str) -> None:
    first = {f"u{i}|e": f"u{i}|view|1.0" for i in range(FRESH_EVENTS_MAX - 10)}
    record(redis_url, {"v-hit": first})
    more = {f"w{i}|e": f"w{i}|view|1.0" for i in range(100)}
    more["u0|e"] = "u0|view|0.25"  # an event already held is rewritten, not added
    stored = record(redis_url, {"v-hit": more})["v-hit"]
    assert len(stored) == FRESH_EVENTS_MAX
    assert stored["u0|e"] == "u0|view|0.25"
    assert sum(1 for field in stored if field.startswith("w")) == 10  # the room that was left
