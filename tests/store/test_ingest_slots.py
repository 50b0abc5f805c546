"""Event batches take turns in Redis (recsvc.store.ingest.INGEST_SLOTS at a time), so a burst cannot
queue inside Redis ahead of every feed's read. A batch that cannot start within
INGEST_WAIT_SECONDS is refused as IngestBusy before anything is written (the route answers
503 with Retry-After; the client's retry is safe), and Redis is not counted as failing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.records import Event
from recsvc.store import ingest as store_module
from recsvc.store.gateway import connect
from recsvc.store.ingest import IngestBusy
from recsvc.store.state import FeatureStore


def view(event_id: str) -> Event:
    return Event.model_validate(
        {
            "event_id": event_id,
            "ts": datetime.now(UTC).isoformat(),
            "user_id": "u-1",
            "item_id": "v1",
            "item_type": "video",
            "action": "view",
        }
    )


def test_a_batch_without_a_free_slot_in_time_is_refused_busy_and_writes_nothing(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "INGEST_WAIT_SECONDS", 0.05)
    errors: list[str] = []

    async def main() -> None:
        client = connect(redis_url, 100)
        store = FeatureStore(client, Keys(), on_error=lambda _, kind: errors.append(kind))
        try:
            for _ in range(store_module.INGEST_SLOTS):  # every slot taken by other batches
                await store._ingest_slots.acquire()
            with pytest.raises(IngestBusy, match="busy writing other event batches"):
                await store.ingest([view("e-1")], 1000, 60, 10)
            store._ingest_slots.release()  # one batch done: the next one goes through
            done = await store.ingest([view("e-1")], 1000, 60, 10)
            assert (done.accepted, done.duplicates) == (1, 0)
            assert store.available
        finally:
            await client.aclose()

    asyncio.run(main())
    assert errors == []
    assert redis.Redis.from_url(redis_url).xlen(Keys().events) == 1
