"""`recsvc drain --follow` in process (training.data.follow.Follower), on a real Redis with the
streams in four shards: it keeps up with the service's ingestion; it stops between chunks when
asked, leaving the rest for the next drain; and it lets go of its shards while the nightly
job's erasure sweep runs, so no erased user's event reaches a file the sweep has passed.
(Several followers, one SIGKILLed: tests/cluster/test_shards.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.records import Event
from recsvc.store.gateway import connect
from recsvc.store.state import FeatureStore
from training.data.erasure import finish_erasures
from training.data.events import load_events
from training.data.follow import Follower

KEYS = Keys()
NOW = datetime.now(UTC).replace(microsecond=0)


def views(count: int, start: int = 0, users: tuple[str, ...] = ("alice", "bob", "carol")) -> list:
    return [
        Event.model_validate(
            {
                "event_id": f"e{i:06d}",
                "ts": (NOW - timedelta(seconds=count - i)).isoformat(),
                "user_id": users[i % len(users)],
                "item_id": f"v{i % 9}",
                "item_type": "video",
                "action": "view",
                "watch_ratio": 0.5,
            }
        )
        for i in range(start, start + count)
    ]


def with_store(url: str, work: Any) -> Any:
    async def main() -> Any:
        client = connect(url, 5000)
        store = FeatureStore(client, KEYS)
        try:
            await store.poll()
            return await work(store)
        finally:
            await client.aclose()

    return asyncio.run(main())


def ingest(url: str, batch: list[Event]) -> None:
    async def work(store: FeatureStore) -> None:
        for i in range(0, len(batch), 1000):
            await store.ingest(batch[i : i + 1000], 10**6, 86400, 50)

    with_store(url, work)


def folders(root: Path) -> dict[str, Path]:
    return {name: root / name for name in ("events", "exposures", "cards")}


def users_on_disk(root: Path) -> list[str]:
    table, _ = load_events(root / "events", max_bad_share=0.0)
    return table.column("user_id").to_pylist()


@pytest.fixture
def sharded(redis_url: str) -> str:
    with_store(redis_url, lambda store: store.set_stream_shards(4, delay=0))
    return redis_url


@pytest.fixture
def following(sharded: str, tmp_path: Path) -> Iterator[tuple[Follower, threading.Thread]]:
    client = redis.Redis.from_url(sharded)
    follower = Follower(client, KEYS, folders(tmp_path), "f1", interval=0.05, chunk=200)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    yield follower, thread
    stop.set()
    thread.join(10)
    client.close()


def left_in_streams(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return sum(client.xlen(s) for s in KEYS.streams("events", 4))


def wait_until(check: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_a_follower_keeps_the_streams_drained_as_events_arrive(
    sharded: str, tmp_path: Path, following: tuple[Follower, threading.Thread]
) -> None:
    follower, _ = following
    for part in range(3):
        ingest(sharded, views(900, start=900 * part))
        wait_until(lambda: left_in_streams(sharded) == 0)
    wait_until(lambda: follower.report.streams["events"].read == 2700)
    assert len(follower.report.owned) == 5  # alone: the four shards, and the one before them
    assert len(users_on_disk(tmp_path)) == 2700


def test_a_stopped_follower_stops_between_chunks_and_leaves_the_rest_pending_or_new(
    sharded: str, tmp_path: Path
) -> None:
    ingest(sharded, views(6000))
    client = redis.Redis.from_url(sharded)
    stop = threading.Event()
    follower = Follower(client, KEYS, folders(tmp_path), "f2", interval=0.05, chunk=100)
    asked = follower._keep_going

    def stop_once_a_chunk_is_done() -> bool:
        if left_in_streams(sharded) < 6000:
            stop.set()  # as SIGTERM does
        return asked()

    follower._keep_going = stop_once_a_chunk_is_done  # type: ignore[method-assign]
    follower.run(stop)
    assert follower.report.streams["events"].read == 100  # one chunk, then it stopped
    assert left_in_streams(sharded) == 5900
    assert len(users_on_disk(tmp_path)) == 100
    assert client.hget(KEYS.drain_followers, "f2") is None  # it said goodbye
    client.close()


def test_the_erasure_sweep_holds_every_shard_while_followers_drain(
    sharded: str, tmp_path: Path, following: tuple[Follower, threading.Thread]
) -> None:
    follower, _ = following
    ingest(sharded, views(1500))
    wait_until(lambda: left_in_streams(sharded) == 0)
    with_store(sharded, lambda store: store.erase_user("bob", datetime.now(UTC)))
    ingest(sharded, views(1500, start=1500))  # bob's client still sends a few
    client = redis.Redis.from_url(sharded)
    try:
        report = finish_erasures(client, KEYS, [tmp_path / "events", tmp_path / "exposures"])
        assert report.users == 1 and report.rows_removed > 0
        assert not client.exists(KEYS.drain_pause)
        wait_until(lambda: left_in_streams(sharded) == 0)  # the follower took its shards back
    finally:
        client.close()
    wait_until(lambda: follower.report.taken > 5)
    on_disk = users_on_disk(tmp_path)
    assert "bob" not in on_disk
    assert sorted(set(on_disk)) == ["alice", "carol"]
