"""The streams split into shards by user (recsvc.contract.shards), on a real single Redis.

Each user's events, exposures and cards go to their shard; dedup, the trending counts and the
streams' sizes work across shards; a change of the shard count moves nothing already appended,
and a retry of an event accepted before the change is still a duplicate. (The Cluster's side,
a shard per master and the followers' drain, is tests/cluster/test_shards.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.records import Event, Exposure
from recsvc.contract.shards import shard_of
from recsvc.store.gateway import connect
from recsvc.store.ingest import StreamFull
from recsvc.store.state import FeatureStore
from training.data.drain import drain
from training.data.events import load_events

KEYS = Keys()
NOW = datetime.now(UTC).replace(microsecond=0)
T = TypeVar("T")


def views(count: int, start: int = 0, users: int = 100) -> list[Event]:
    return [
        Event.model_validate(
            {
                "event_id": f"e{i:05d}",
                "ts": (NOW - timedelta(seconds=count - i)).isoformat(),
                "user_id": f"u{i % users}",
                "item_id": f"v{i % 7}",
                "item_type": "video",
                "action": "view",
                "watch_ratio": 0.5,
            }
        )
        for i in range(start, start + count)
    ]


def with_store(url: str, work: Callable[[FeatureStore], Awaitable[T]]) -> T:
    async def main() -> T:
        client = connect(url, 2000)
        store = FeatureStore(client, KEYS)
        try:
            await store.poll()  # the layouts, as a replica reads them
            return await work(store)
        finally:
            await client.aclose()

    return asyncio.run(main())


def ingest(url: str, batch: list[Event], max_len: int = 10**6) -> Any:
    return with_store(url, lambda s: s.ingest(batch, max_len, 86400, 50, videos={"v1", "v2"}))


def reshard(url: str, shards: int) -> None:
    with_store(url, lambda s: s.set_stream_shards(shards, delay=0))


def users_in(client: redis.Redis, stream: str) -> set[str]:
    return {f[b"user_id"].decode() for _, f in client.xrange(stream)}


def test_each_users_events_go_to_their_shard_and_only_there(redis_url: str) -> None:
    reshard(redis_url, 4)
    done = ingest(redis_url, views(400))
    assert (done.accepted, done.duplicates) == (400, 0)
    client = redis.Redis.from_url(redis_url)
    shards = KEYS.streams("events", 4)
    assert sum(client.xlen(s) for s in shards) == 400
    assert client.xlen(KEYS.events) == 0  # the single-shard stream is not written any more
    for shard, stream in enumerate(shards):
        owners = users_in(client, stream)
        assert owners, f"shard {shard} took no user"
        assert {shard_of(u, 4) for u in owners} == {shard}
    again = ingest(redis_url, views(400))
    assert (again.accepted, again.duplicates) == (0, 400)
    stats = with_store(redis_url, lambda s: s.stream_stats())
    assert (stats["events"], stats["events_not_drained"]) == (400, 400)


def test_a_retry_after_a_change_of_shard_count_is_a_duplicate_and_the_drain_takes_both_layouts(
    redis_url: str, tmp_path: Path
) -> None:
    reshard(redis_url, 4)
    first = views(300)
    assert ingest(redis_url, first).accepted == 300
    reshard(redis_url, 3)
    retried = ingest(redis_url, first)  # a client's retry, after the change
    assert (retried.accepted, retried.duplicates) == (0, 300)
    assert ingest(redis_url, views(200, start=300)).accepted == 200
    client = redis.Redis.from_url(redis_url)
    assert sum(client.xlen(s) for s in KEYS.streams("events", 3)) == 200

    report = drain(client, tmp_path / "events")
    assert (report.read, report.written) == (500, 500)
    table, _ = load_events(tmp_path / "events", max_bad_share=0.0)
    ids = table.column("event_id").to_pylist()
    assert sorted(ids) == [f"e{i:05d}" for i in range(500)]
    assert sum(client.xlen(s) for n in (4, 3) for s in KEYS.streams("events", n)) == 0


def test_the_trending_counts_add_up_over_the_shards(redis_url: str) -> None:
    reshard(redis_url, 4)
    batch = [e for e in views(140) if e.item_id in ("v1", "v2")]
    assert ingest(redis_url, batch).accepted == len(batch) == 40
    hour = int(NOW.timestamp() // 3600)
    hours = [hour - 1, hour]
    _, counts = with_store(redis_url, lambda s: s.trend_counts(hours, hour))
    total = {k: counts[hour - 1].get(k, 0) + counts[hour].get(k, 0) for k in ("v1|view", "v2|view")}
    assert total == {"v1|view": 20, "v2|view": 20}
    client = redis.Redis.from_url(redis_url)
    tags = {KEYS.stream_tag(shard_of(e.user_id, 4), 4) for e in batch}
    assert len(tags) > 1  # the counts really were spread
    assert with_store(redis_url, lambda s: s.trend_hours_held(hours)) == {
        h for h in hours if any(client.exists(KEYS.trend(h, t)) for t in tags)
    }


def test_exposures_go_to_their_users_shard(redis_url: str) -> None:
    reshard(redis_url, 4)
    shown = [
        Exposure(
            request_id=f"r{i}",
            ts_ms=int(NOW.timestamp() * 1000),
            user_id=f"u{i}",
            experiments="exp:a",
            model_version="m1",
            videos=["v1"],
            products=[None],
        )
        for i in range(40)
    ]
    dropped = with_store(redis_url, lambda s: s.log_exposures(shown, 10**6))
    assert dropped == 0
    client = redis.Redis.from_url(redis_url)
    for shard, stream in enumerate(KEYS.streams("exposures", 4)):
        assert {shard_of(u, 4) for u in users_in(client, stream)} == {shard}
    assert sum(client.xlen(s) for s in KEYS.streams("exposures", 4)) == 40


def test_a_full_shard_refuses_the_whole_batch_on_a_single_redis(redis_url: str) -> None:
    reshard(redis_url, 2)
    busy = [e for e in views(2400, users=8) if shard_of(e.user_id, 2) == 0][:1100]
    assert len(busy) == 1100
    calm = [e for e in views(10, start=5000, users=8) if shard_of(e.user_id, 2) == 1]
    assert calm, "no event for the other shard"
    with pytest.raises(StreamFull, match="an event stream shard holds 1,000 events"):
        ingest(redis_url, calm + busy, max_len=1000)
    client = redis.Redis.from_url(redis_url)
    assert sum(client.xlen(s) for s in KEYS.streams("events", 2)) == 0  # not even the calm one
    assert all(client.llen(KEYS.recent(f"u{i}")) == 0 for i in range(8))
