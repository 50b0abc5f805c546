"""The nightly job killed for real, at every stage, and two runs at once.

The service's own ingestion fills the event stream with a synthetic world's events, day by
day. A real `recsvc nightly` is SIGKILLed:

- during the drain (a chunk's files durable, not yet acknowledged),
- during training (before the final fit),
- during the publish (the first 2,000 of ~4,500 user vectors written, the pointer not moved),

with the service accepting more events in between. Throughout, a watcher reads the live
pointer every few milliseconds and counts the vectors of each generation it sees live. Then
a rerun completes. What must hold:

- the Parquet partitions hold every accepted event exactly once;
- the stream ends empty;
- the pointer never named a generation with fewer vectors than its users, and stayed on the
  old model after each kill;
- the locks of the killed runs did not block the rerun.

Two runs started together: one publishes, the other refuses with a clear message.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.pause_points import PAUSE_ENV
from recsvc.contract.records import Event
from recsvc.store.control import parse_pointer
from recsvc.store.gateway import connect
from recsvc.store.state import FeatureStore
from sandbox.world.generate import WorldSpec, generate_world, write_world
from tests.builders import cli_environment
from training.data.events import load_events
from training.nightly.run import nightly_lock

RECSVC = str(Path(sys.executable).with_name("recsvc"))
KEYS = Keys()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4,500 users (more than one publish chunk of 2,000), 8 days of events."""
    out = tmp_path_factory.mktemp("crash") / "world"
    spec = WorldSpec(users=4500, videos=120, products=12, events=30_000, days=8, seed=5)
    write_world(generate_world(spec), out)
    return out


def world_events_by_day(world: Path) -> list[list[Event]]:
    """The world's events as the app backend would post them, grouped by UTC day."""
    table = pq.read_table(world / "events")
    days: dict[str, list[Event]] = {}
    for row in table.to_pylist():
        fields = {k: v for k, v in row.items() if k in Event.model_fields and v is not None}
        days.setdefault(row["ts"].date().isoformat(), []).append(Event(**fields))
    return [days[day] for day in sorted(days)]


def ingest(url: str, events: list[Event]) -> None:
    """Through the service's own ingestion path (the same Lua script as POST /v1/events)."""

    async def work() -> None:
        client = connect(url, 2000)
        try:
            store = FeatureStore(client, KEYS)
            for i in range(0, len(events), 1000):
                await store.ingest(events[i : i + 1000], 10**7, 7 * 86400, 50)
        finally:
            await client.aclose()

    asyncio.run(work())


def nightly_command(url: str, tmp_path: Path, pause_at: str | None = None) -> subprocess.Popen:
    env = cli_environment(url, tmp_path / "models")
    if pause_at:
        env[PAUSE_ENV] = pause_at
    # A generous tolerance: these runs are about crash safety, and must reach the publish.
    command = [
        RECSVC, "nightly", "--events", str(tmp_path / "events"),
        "--reports", str(tmp_path / "reports"), "--tune-trials", "2", "--tolerance", "0.3",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def run_to_the_end(url: str, tmp_path: Path) -> str:
    process = nightly_command(url, tmp_path)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, out + err
    return out


def kill_at(url: str, tmp_path: Path, point: str) -> None:
    """Start a run, wait until it pauses at `point`, SIGKILL it there."""
    process = nightly_command(url, tmp_path, point)
    assert process.stderr is not None and process.stdout is not None
    seen, deadline = [], time.monotonic() + 300
    with selectors.DefaultSelector() as selector:
        selector.register(process.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=1):
                continue
            line = process.stderr.readline()
            seen.append(line)
            if f"paused at {point}" in line or not line:
                break
    process.send_signal(signal.SIGKILL)
    out = process.stdout.read()
    process.wait()
    process.stdout.close()
    process.stderr.close()
    assert f"paused at {point}" in seen[-1], f"never reached {point}: {''.join(seen)}{out}"


class PointerWatcher(threading.Thread):
    """Reads the live pointer every few ms; for each generation seen live, how many of its
    users' vectors existed at that moment."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.stop = threading.Event()
        self.seen: list[tuple[int, int, int]] = []  # (generation, vectors found, users)

    def run(self) -> None:
        last = None
        while True:
            stopping = self.stop.is_set()  # one more read once stopped: the last pointer is seen
            raw = self.client.get(KEYS.model_current)
            if raw != last and (pointer := parse_pointer(raw)) is not None:
                vectors = sum(
                    1
                    for _ in self.client.scan_iter(
                        KEYS.vector_pattern(pointer.generation), count=5000
                    )
                )
                entry = json.loads(
                    self.client.hget(KEYS.model_generations, str(pointer.generation)) or "{}"
                )
                self.seen.append((pointer.generation, vectors, entry.get("users", -1)))
            last = raw
            if stopping:
                return
            self.stop.wait(0.005)


def live_pointer(url: str) -> bytes | None:
    return redis.Redis.from_url(url).get(KEYS.model_current)


def test_a_run_killed_at_any_stage_loses_nothing_and_never_shows_a_partial_model(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    days = world_events_by_day(world)
    ingest(redis_url, [e for day in days[:-2] for e in day])
    run_to_the_end(redis_url, tmp_path)
    first_live = live_pointer(redis_url)
    assert first_live is not None
    watcher = PointerWatcher(redis_url)
    watcher.start()
    try:
        ingest(redis_url, days[-2])
        kill_at(redis_url, tmp_path, "drain:before-ack")
        assert live_pointer(redis_url) == first_live

        kill_at(redis_url, tmp_path, "nightly:fit_all")
        assert live_pointer(redis_url) == first_live

        ingest(redis_url, days[-1])  # the service kept accepting meanwhile
        kill_at(redis_url, tmp_path, "publish:after-first-chunk")
        assert live_pointer(redis_url) == first_live
        client = redis.Redis.from_url(redis_url)
        registry = {
            int(g): json.loads(v) for g, v in client.hgetall(KEYS.model_generations).items()
        }
        partial = [g for g, entry in registry.items() if entry["state"] == "writing"]
        assert len(partial) == 1  # the killed publish's generation: written in part, never live
        written = sum(1 for _ in client.scan_iter(KEYS.vector_pattern(partial[0]), count=5000))
        assert 0 < written < registry[partial[0]]["users"]

        out = run_to_the_end(redis_url, tmp_path)  # the killed runs' locks do not block it
        assert "published as current" in out
        assert live_pointer(redis_url) != first_live
    finally:
        watcher.stop.set()
        watcher.join()

    generations = [generation for generation, _, _ in watcher.seen]
    assert len(set(generations)) == 2 and partial[0] not in generations
    for generation, vectors, users in watcher.seen:
        assert users > 0 and vectors == users, (generation, vectors, users)

    on_disk, _ = load_events(tmp_path / "events", max_bad_share=0.0)
    ids = on_disk.column("event_id").to_pylist()
    accepted = {e.event_id for day in days for e in day}
    assert len(ids) == len(set(ids)) and set(ids) == accepted  # every event, exactly once
    assert client.xlen(KEYS.events) == 0
    assert pc.max(on_disk.column("ts")).as_py().date().isoformat() == max(
        e.ts.date().isoformat() for e in days[-1]
    )
    assert client.get(nightly_lock(KEYS)) is None and client.get(KEYS.publish_lock) is None


def test_two_runs_at_once_one_publishes_and_the_other_refuses(
    redis_url: str, tmp_path: Path, world: Path
) -> None:
    ingest(redis_url, [e for day in world_events_by_day(world) for e in day])
    first = nightly_command(redis_url, tmp_path)
    client = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + 60
    while client.get(nightly_lock(KEYS)) is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the first run holds the lock: now start the second
    second = nightly_command(redis_url, tmp_path)
    second_out, second_err = second.communicate(timeout=300)
    first_out, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_out + first_err
    assert "published as current" in first_out
    assert second.returncode == 1, second_out + second_err
    assert "another nightly run is in progress" in second_err and "Traceback" not in second_err
    assert parse_pointer(client.get(KEYS.model_current)) is not None
    generations = client.hgetall(KEYS.model_generations)
    assert len(generations) == 1  # only one run wrote vectors
