"""How much waits in Redis for the nightly drain is visible in /metrics: the event, exposure
and card streams' lengths, and the events the drain's consumer group has not taken yet."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import redis

from recsvc.contract.keys import Keys
from tests.http.builders import event_body, eventually
from training.data.drain import drain


def gauge(client: httpx.Client, stream: str) -> float | None:
    text = client.get("/metrics").text
    found = re.search(rf'recsvc_stream_entries{{stream="{stream}"}} ([0-9.e+]+)', text)
    return float(found.group(1)) if found else None


def test_the_stream_gauges_follow_ingestion_and_the_drain(
    service: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    events = [event_body("u-inv", "v00", "view") for _ in range(25)]
    assert service.post("/v1/events", json={"events": events}).status_code == 202
    assert eventually(lambda: gauge(service, "events") == 25)
    assert gauge(service, "events_not_drained") == 25  # no drain has run yet

    drain(redis.Redis.from_url(redis_url), tmp_path / "events")
    assert eventually(lambda: gauge(service, "events") == 0)
    assert gauge(service, "events_not_drained") == 0
    assert redis.Redis.from_url(redis_url).xlen(Keys().events) == 0


def test_the_card_stream_gauge_counts_the_pages_with_cards(service: httpx.Client) -> None:
    assert eventually(lambda: gauge(service, "cards") == 0)
    body = service.get("/v1/feed", params={"user_id": "u-inv", "n": 12}).json()
    assert any(item["product"] for item in body["items"])  # the planted investor gets cards
    assert eventually(lambda: gauge(service, "cards") == 1)  # one record per page with cards
