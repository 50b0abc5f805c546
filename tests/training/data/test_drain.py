"""Draining the event stream into Parquet: every event exactly once, whatever dies when.

Events enter the stream through the service's own ingestion (recsvc.store.state), and come out as
day partitions that the training loader reads. A drain killed (SIGKILL, for real) after its
files are durable but before it acknowledged them loses nothing, and the rerun writes
nothing twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.pause_points import PAUSE_ENV
from recsvc.contract.records import Event, Exposure
from recsvc.store.gateway import connect
from recsvc.store.state import FeatureStore
from training.data.drain import EXPOSURES, GROUP, drain
from training.data.events import load_events

RECSVC = str(Path(sys.executable).with_name("recsvc"))
START = datetime(2026, 11, 20, 22, tzinfo=UTC)


def events(count: int, start: int = 0) -> list[Event]:
    """Views spread over three UTC days (one every 90 s from 22:00 on the 20th)."""
    return [
        Event(
            event_id=f"e{i:05d}",
            ts=START + timedelta(seconds=90 * i),
            user_id=f"u{i % 13}",
            item_id=f"v{i % 17}",
            item_type="video",
            action="view",
            watch_ratio=0.5,
        )
        for i in range(start, start + count)
    ]


def ingest(url: str, batch: list[Event]) -> None:
    async def work() -> None:
        client = connect(url, 2000)
        try:
            store = FeatureStore(client, Keys())
            for i in range(0, len(batch), 1000):
                await store.ingest(batch[i : i + 1000], 10**6, 86400, 50)
        finally:
            await client.aclose()

    asyncio.run(work())


def event_ids_on_disk(out: Path) -> list[str]:
    table, _ = load_events(out, max_bad_share=0.0)
    return table.column("event_id").to_pylist()


def test_a_drain_writes_every_event_once_into_day_partitions(
    redis_url: str, tmp_path: Path
) -> None:
    ingest(redis_url, events(2500))
    client = redis.Redis.from_url(redis_url)
    report = drain(client, tmp_path / "events", chunk=1000)
    assert (report.read, report.written, report.already_written) == (2500, 2500, 0)
    ids = event_ids_on_disk(tmp_path / "events")
    assert sorted(ids) == [f"e{i:05d}" for i in range(2500)]
    days = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert days == ["day=2026-11-20", "day=2026-11-21", "day=2026-11-22", "day=2026-11-23"]
    assert client.xlen(Keys().events) == 0  # drained events leave the stream
    assert client.xpending(Keys().events, GROUP)["pending"] == 0
    again = drain(client, tmp_path / "events")
    assert (again.read, again.written) == (0, 0)


def test_a_drain_killed_before_its_acknowledgement_loses_and_repeats_nothing(
    redis_url: str, tmp_path: Path
) -> None:
    ingest(redis_url, events(2500))
    out = tmp_path / "events"
    env = {**os.environ, "RECSVC_REDIS_URL": redis_url, PAUSE_ENV: "drain:before-ack"}
    process = subprocess.Popen(
        [RECSVC, "drain", "--out", str(out)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    line = process.stderr.readline()  # the files are durable; the ack has not happened
    assert "not yet acknowledged" in line, line
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(Keys().events) == 2500  # nothing acknowledged, nothing deleted
    ingest(redis_url, events(500, start=2500))  # the service kept accepting meanwhile

    result = subprocess.run(
        [RECSVC, "drain", "--out", str(out), "--json"],
        env={**os.environ, "RECSVC_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2,500 already written" in result.stdout
    ids = event_ids_on_disk(out)
    assert len(ids) == len(set(ids)) == 3000
    assert client.xlen(Keys().events) == 0


def test_exposures_drain_into_their_own_partitions_with_the_shown_lists_intact(
    redis_url: str, tmp_path: Path
) -> None:
    shown = [
        Exposure(f"r{i}", int(START.timestamp() * 1000) + i * 3_600_000, f"u{i % 3}",
                 "ranker:cf", "20261125T000000Z-m", ["v1", "v2", "v3"], ["p1", None, "p2"])
        for i in range(30)
    ]  # fmt: skip

    async def log() -> None:
        client = connect(redis_url, 2000)
        try:
            assert await FeatureStore(client, Keys()).log_exposures(shown, 10**6) == 0
        finally:
            await client.aclose()

    asyncio.run(log())
    client = redis.Redis.from_url(redis_url)
    report = drain(client, tmp_path / "exposures", stream=EXPOSURES)
    assert (report.read, report.written) == (30, 30)
    days = sorted(p.name for p in (tmp_path / "exposures").iterdir())
    assert days == ["day=2026-11-20", "day=2026-11-21", "day=2026-11-22"]  # 22:00 + 0..29 h
    table = pq.read_table(tmp_path / "exposures")
    rows = sorted(table.to_pylist(), key=lambda row: int(row["request_id"][1:]))
    assert [row["request_id"] for row in rows] == [f"r{i}" for i in range(30)]
    assert rows[0]["videos"] == ["v1", "v2", "v3"] and rows[0]["products"] == ["p1", None, "p2"]
    assert rows[29]["ts"] == START + timedelta(hours=29)
    assert client.xlen(Keys().exposures) == 0
    again = drain(client, tmp_path / "exposures", stream=EXPOSURES)
    assert again.read == 0


def test_where_an_event_happened_is_drained_beside_it_and_the_trainer_reads_it_as_before(
    redis_url: str, tmp_path: Path
) -> None:
    placed = [
        event.model_copy(update={"surface": surface, "position": position})
        for event, surface, position in zip(
            events(3), ["home", "product_page", None], [1, 7, None], strict=True
        )
    ]
    ingest(redis_url, placed)
    drain(redis.Redis.from_url(redis_url), tmp_path / "events")
    (partition,) = (tmp_path / "events").glob("day=*/*.parquet")
    table = pq.read_table(partition)
    rows = {row["event_id"]: (row["surface"], row["position"]) for row in table.to_pylist()}
    assert rows == {"e00000": ("home", 1), "e00001": ("product_page", 7), "e00002": (None, None)}
    loaded, _ = load_events(tmp_path / "events", max_bad_share=0.0)
    assert "surface" not in loaded.column_names and loaded.num_rows == 3
