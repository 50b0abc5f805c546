"""One user's state in Redis stays bounded, whatever that user's events say: a purchase adds
its product to the user's holdings only when the product is in the catalogue, and only while
the user holds fewer than RECSVC_MAX_PURCHASED_PER_USER products from purchases. The other
purchases are accepted into the stream (the nightly job learns from them), counted in the
answer (`not_applied`) and in /metrics, never dropped silently. And a profile is answered
whatever its stored size (issue 13, defects 1 and 5)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from recsvc.contract.keys import Keys
from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)

KEYS = Keys()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def purchase(user_id: str, product_id: str) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "ts": datetime.now(UTC).isoformat(),
        "user_id": user_id,
        "item_id": product_id,
        "item_type": "product",
        "action": "purchase",
        "amount": 100.0,
    }


def post(client: httpx.Client, events: list[dict[str, Any]]) -> dict[str, int]:
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 202, response.text
    body: dict[str, int] = response.json()
    return body


def events_counted(client: httpx.Client, outcome: str) -> float:
    """recsvc_events_total{outcome=...} as /metrics shows it."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "recsvc_events_total" and sample.labels["outcome"] == outcome:
                return float(sample.value)
    return 0.0


def holdings(client: httpx.Client, user_id: str) -> list[str]:
    response = client.get(f"/v1/users/{user_id}/profile")
    assert response.status_code == 200, response.text
    held: list[str] = response.json()["holdings"]
    return held


def test_purchases_of_products_not_in_the_catalogue_are_streamed_counted_and_not_held(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    """The recipe of defect 1, scaled down: batches of purchases of made-up products."""
    answers = [
        post(service, [purchase("u-hostile", f"p-fake-{batch}-{i}") for i in range(1000)])
        for batch in range(3)
    ]
    assert redis_client.scard(KEYS.purchased("u-hostile")) == 0
    assert holdings(service, "u-hostile") == []
    assert redis_client.xlen(KEYS.events) == 3000  # the nightly job still learns from them
    expected = {"received": 1000, "accepted": 1000, "duplicates": 0, "not_applied": 1000}
    assert answers == [expected] * 3
    assert events_counted(service, "not_applied_unknown_product") == 3000
    # A product of the catalogue, in the same batch as a made-up one, is held.
    body = post(service, [purchase("u-hostile", "p-dep"), purchase("u-hostile", "p-nope")])
    assert (body["accepted"], body["not_applied"]) == (2, 1)
    assert holdings(service, "u-hostile") == ["p-dep"]


def test_a_users_purchases_are_held_up_to_the_limit_and_counted_past_it(
    redis_url: str, models_dir: Path, redis_client: redis.Redis
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    settings = service_settings(redis_url, models_dir, max_purchased_per_user=3)
    products = planted.PRODUCT_IDS  # six, all in the catalogue
    with serving(settings) as client:
        body = post(client, [purchase("u-1", product) for product in products])
        assert holdings(client, "u-1") == sorted(products[:3])  # in the batch's order
        assert redis_client.xlen(KEYS.events) == 6
        assert body == {"received": 6, "accepted": 6, "duplicates": 0, "not_applied": 3}
        assert events_counted(client, "not_applied_state_full") == 3
        # Buying again a product already held changes nothing and is not refused.
        assert post(client, [purchase("u-1", products[0])])["not_applied"] == 0
        assert post(client, [purchase("u-1", products[5])])["not_applied"] == 1
        assert holdings(client, "u-1") == sorted(products[:3])
        # Another user has a limit of their own.
        assert post(client, [purchase("u-2", products[5])])["not_applied"] == 0
    # Upstream's holdings are not counted against it (a profile PUT caps those).
    assert redis_client.scard(KEYS.purchased("u-1")) == 3


def test_a_profile_with_more_than_1000_holdings_is_answered(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    """1,000 holdings from upstream (the most a PUT takes) and purchases from events: GET
    answered 500 (the response was checked against the PUT's cap)."""
    upstream = [f"p-up-{i:04d}" for i in range(1000)]
    put = service.put("/v1/users/u-rich/profile", json={"risk_tolerance": 3, "holdings": upstream})
    assert put.status_code == 200, put.text
    post(service, [purchase("u-rich", "p-dep")])
    held = holdings(service, "u-rich")
    assert len(held) == 1001 and "p-dep" in held
    # A purchased set over today's limit, written before the limit existed, is answered too.
    redis_client.sadd(KEYS.purchased("u-old"), *(f"p-old-{i}" for i in range(2500)))
    assert len(holdings(service, "u-old")) == 2500
