"""Sharded streams on a real three-master Redis Cluster (issue 19).

- Events of many users spread over every master (counted per master), where one stream put
  them all on one.
- Several `recsvc drain --follow` processes share the shards; one is SIGKILLed with a chunk
  durable on disk and not acknowledged; the others take its shards over, and every accepted
  event is in the partitions exactly once.
- The shard count changes while events flow, through two replicas of which one learns of the
  change late: nothing accepted is lost, nothing is written twice.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from recsvc.contract.pause_points import PAUSE_ENV
from recsvc.contract.records import Event
from recsvc.store.client import async_client
from recsvc.store.state import FeatureStore
from sandbox.embedded_redis import EmbeddedCluster
from tests.builders import cli_environment
from tests.cluster.builders import KEYS, masters
from training.data.drain import drain
from training.data.events import load_events

RECSVC = str(Path(sys.executable).with_name("recsvc"))
NOW = datetime.now(UTC).replace(microsecond=0)


def views(count: int, start: int = 0, users: int = 600) -> list[Event]:
    return [
        Event.model_validate(
            {
                "event_id": f"e{i:06d}",
                "ts": (NOW - timedelta(seconds=(count - i) % 7200)).isoformat(),
                "user_id": f"user-{i % users}",
                "item_id": f"v{i % 11}",
                "item_type": "video",
                "action": "view",
                "watch_ratio": 0.5,
            }
        )
        for i in range(start, start + count)
    ]


class Replica:
    """A FeatureStore on its own event loop thread, as one service replica holds it."""

    def __init__(self, url: str) -> None:
        import asyncio

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.client = self.call_sync(lambda: _client(url))
        self.store = FeatureStore(self.client, KEYS)

    def call_sync(self, make: Any) -> Any:
        import asyncio

        async def work() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(work(), self.loop).result(60)

    def poll(self) -> None:
        self.call_sync(self.store.poll)

    def ingest(self, batch: list[Event]) -> Any:
        return self.call_sync(lambda: self.store.ingest(batch, 10**7, 86400, 50))

    def close(self) -> None:
        self.call_sync(self.client.aclose)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


async def _client(url: str) -> Any:
    return async_client(url, cluster=True)


@pytest.fixture
def replica(cluster_url: str) -> Iterator[Replica]:
    one = Replica(cluster_url)
    yield one
    one.close()


def per_master(cluster: EmbeddedCluster) -> list[int]:
    """The event stream entries each master holds (every stream of the event shards)."""
    counts = []
    with masters(cluster) as clients:
        for client in clients:
            names = client.scan_iter(match=f"{KEYS.prefix}:events*", _type="STREAM")
            counts.append(sum(client.xlen(name) for name in names))
    return counts


def partition_ids(folder: Path) -> list[str]:
    table, _ = load_events(folder, max_bad_share=0.0)
    return table.column("event_id").to_pylist()


def test_events_of_many_users_spread_over_every_master(
    redis_cluster: EmbeddedCluster, replica: Replica
) -> None:
    replica.ingest(views(600))
    assert sorted(per_master(redis_cluster)).count(0) == 2  # one stream: all on one master

    replica.call_sync(lambda: replica.store.set_stream_shards(6, delay=0))
    replica.ingest(views(6000, start=600))
    counts = per_master(redis_cluster)
    assert sum(counts) == 6600
    assert min(counts) > 0.2 * 6000, counts  # every master takes its share of the new events


def test_followers_share_the_shards_and_a_killed_one_loses_and_repeats_nothing(
    redis_cluster: EmbeddedCluster, cluster_url: str, replica: Replica, tmp_path: Path
) -> None:
    replica.call_sync(lambda: replica.store.set_stream_shards(6, delay=0))
    accepted = views(6000)
    replica.ingest(accepted)
    env = {**cli_environment(cluster_url, tmp_path / "models"), "RECSVC_REDIS_CLUSTER": "true"}
    folders = ["--out", str(tmp_path / "events"), "--exposures", str(tmp_path / "exposures")]
    folders += ["--cards", str(tmp_path / "cards")]

    def follower(name: str, pause: bool = False) -> subprocess.Popen[str]:
        command = [RECSVC, "drain", "--follow", "--consumer", name, "--interval", "0.2", "--json"]
        command += folders
        extra = {PAUSE_ENV: "drain:before-ack"} if pause else {}
        return subprocess.Popen(
            command, env={**env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    doomed = follower("doomed", pause=True)
    assert doomed.stderr is not None
    seen = [doomed.stderr.readline()]
    while seen[-1] and "paused at" not in seen[-1]:
        seen.append(doomed.stderr.readline())
    assert "not yet acknowledged" in seen[-1], seen  # a chunk's files durable, not acknowledged
    survivors = [follower("f1"), follower("f2")]
    doomed.send_signal(signal.SIGKILL)
    doomed.communicate()
    more = views(3000, start=6000)  # the service kept accepting meanwhile
    replica.ingest(more)
    client = redis.RedisCluster.from_url(cluster_url)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            left = sum(client.xlen(s) for s in KEYS.streams("events", 6))
            if left == 0:
                break
            time.sleep(0.3)
        assert left == 0, f"{left} events never drained"
    finally:
        client.close()
        for process in survivors:
            process.send_signal(signal.SIGTERM)
        outputs = [process.communicate(timeout=30) for process in survivors]
    assert all(p.returncode == 0 for p in survivors), outputs
    ids = partition_ids(tmp_path / "events")
    assert len(ids) == len(set(ids)) == 9000
    assert set(ids) == {e.event_id for e in accepted + more}
    written = sum(_summary(out)["events"]["written"] for out, _ in outputs)
    recovered = sum(_summary(out)["events"]["already_written"] for out, _ in outputs)
    assert recovered > 0, "the killed follower's chunk was not found on disk"
    assert written + recovered >= 9000


def _summary(stdout: str) -> dict[str, Any]:
    import json

    return dict(json.loads(stdout.strip().splitlines()[-1]))


def test_changing_the_shard_count_while_events_flow_loses_nothing(
    cluster_url: str, replica: Replica, tmp_path: Path
) -> None:
    other = Replica(cluster_url)  # a second replica: it learns of each change by its poll
    client = redis.RedisCluster.from_url(cluster_url)
    try:
        batches = [views(200, start=200 * i) for i in range(30)]
        for i, batch in enumerate(batches):
            if i in (10, 20):  # the change takes effect 1.5 s later; both replicas poll first
                shards = i // 10 * 2 + 2
                replica.call_sync(lambda n=shards: replica.store.set_stream_shards(n, delay=1.5))
                other.poll()
            if i in (13, 23):
                time.sleep(1.6)  # the switch
            (replica if i % 2 else other).ingest(batch)
            if i % 5 == 4 or i in (14, 24):  # a client's retry, through the other replica
                again = (other if i % 2 else replica).ingest(batches[i - 1])
                assert again.accepted == 0, f"batch {i - 1} accepted twice"
        for old in (batches[5], batches[15], batches[25]):  # accepted with 1, 4 and 6 shards
            for one in (replica, other):
                assert one.ingest(old).accepted == 0
        in_streams = sum(client.xlen(s) for n in (1, 4, 6) for s in KEYS.streams("events", n))
        assert in_streams == 6000  # not a single event appended twice
        assert sum(client.xlen(s) for s in KEYS.streams("events", 4)) > 0
        drained = drain(client, tmp_path / "events")
    finally:
        client.close()
        other.close()
    assert drained.skipped_shards == []
    ids = partition_ids(tmp_path / "events")
    assert len(ids) == len(set(ids)) == 6000


def test_a_replica_whose_poll_comes_after_the_switch_still_finds_the_new_layouts_markers(
    cluster_url: str, replica: Replica
) -> None:
    """Replicas switch by their own clocks: one slightly behind (here: it has polled the
    change but its switch has not come) looks for an event in the upcoming layout too."""
    behind = Replica(cluster_url)
    try:
        replica.call_sync(lambda: replica.store.set_stream_shards(4, delay=0))
        behind.poll()
        first = views(300)
        assert replica.ingest(first).accepted == 300
        # the replica behind still appends to one shard until its clock reaches the switch
        layouts = behind.store.layouts
        behind.store.layouts = type(layouts)(
            (*layouts.history[:-1], type(layouts.history[-1])(4, time.time() + 20))
        )
        assert behind.store.layouts.in_effect() == 1
        assert behind.ingest(first).accepted == 0
    finally:
        behind.close()
