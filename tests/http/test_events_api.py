"""POST /v1/events: a batch of what users did, appended to the Redis stream `recsvc:events`.

The answer is 202 with `received`, `accepted` (newly appended) and `duplicates` (event_ids
already accepted, not appended again, so a client may retry safely). A purchase adds the
product to the user's holdings. A batch is accepted as a whole or not at all: one malformed
event makes it a 422 and nothing of it is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.http.builders import service_settings, serving

STREAM = "recsvc:events"


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def event(event_id: str, user_id: str = "u-1", **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "ts": datetime.now(UTC).isoformat(),
        "user_id": user_id,
        "item_id": "v10",
        "item_type": "video",
        "action": "view",
        "watch_ratio": 0.5,
        **fields,
    }


def purchase(event_id: str, user_id: str, product_id: str) -> dict[str, Any]:
    fields = {"item_type": "product", "action": "purchase", "watch_ratio": None}
    return event(event_id, user_id, item_id=product_id, amount=250.0, **fields)


def post(client: httpx.Client, *events: dict[str, Any]) -> httpx.Response:
    return client.post("/v1/events", json={"events": list(events)})


def counts(received: int, accepted: int, duplicates: int) -> dict[str, int]:
    return {"received": received, "accepted": accepted, "duplicates": duplicates, "not_applied": 0}


def holdings(client: httpx.Client, user_id: str) -> list[str]:
    response = client.get(f"/v1/users/{user_id}/profile")
    assert response.status_code == 200, response.text
    return response.json()["holdings"]


def test_a_new_batch_is_accepted_with_its_counts(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    response = post(service, event("e1"), event("e2"), event("e3", user_id="u-2"))
    assert response.status_code == 202
    assert response.json() == counts(3, 3, 0)
    assert redis_client.xlen(STREAM) == 3


def test_the_stream_holds_each_event_as_sent(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    assert post(service, event("e1", ts="2026-01-02T03:04:05")).status_code == 202
    [(_, fields)] = redis_client.xrange(STREAM)
    stored = {k.decode(): v.decode() for k, v in fields.items()}
    assert stored["event_id"] == "e1" and stored["user_id"] == "u-1"
    assert (stored["item_id"], stored["item_type"], stored["action"]) == ("v10", "video", "view")
    assert float(stored["watch_ratio"]) == 0.5
    assert stored["ts"] == "2026-01-02T03:04:05+00:00"  # a ts without a zone is UTC


@pytest.mark.parametrize("ratio", [1.7, 5.0, 100.0])
def test_a_replay_watch_ratio_is_accepted_and_stored_as_given(
    service: httpx.Client, redis_client: redis.Redis, ratio: float
) -> None:
    """Above 1 is a replay, valid up to the ceiling (100); the feed caps it in fold-in."""
    assert post(service, event("e1", watch_ratio=ratio)).json() == counts(1, 1, 0)
    [(_, fields)] = redis_client.xrange(STREAM)
    assert float(fields[b"watch_ratio"]) == ratio


def test_reposting_the_same_event_ids_counts_duplicates_and_appends_nothing(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    batch = [event("e1"), event("e2"), event("e3")]
    assert post(service, *batch).json() == counts(3, 3, 0)
    response = post(service, *batch)
    assert response.status_code == 202
    assert response.json() == counts(3, 0, 3)
    assert redis_client.xlen(STREAM) == 3


def test_a_retry_with_new_and_old_events_appends_only_the_new(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    assert post(service, event("e1"), event("e2")).json() == counts(2, 2, 0)
    assert post(service, event("e2"), event("e3"), event("e1")).json() == counts(3, 1, 2)
    assert redis_client.xlen(STREAM) == 3


def test_an_event_id_twice_in_one_batch_is_appended_once(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    assert post(service, event("e1"), event("e1")).json() == counts(2, 1, 1)
    assert redis_client.xlen(STREAM) == 1


def test_a_purchase_adds_the_product_to_the_users_holdings(service: httpx.Client) -> None:
    assert holdings(service, "u-1") == []
    assert post(service, purchase("e1", "u-1", "p-fund")).status_code == 202
    assert holdings(service, "u-1") == ["p-fund"]
    assert holdings(service, "u-2") == []


def test_purchases_add_to_the_holdings_set_in_the_profile(service: httpx.Client) -> None:
    profile = {"risk_tolerance": 3, "segment": "young", "holdings": ["p-ins"]}
    assert service.put("/v1/users/u-1/profile", json=profile).status_code == 200
    assert post(service, purchase("e1", "u-1", "p-dep")).status_code == 202
    got = service.get("/v1/users/u-1/profile").json()
    assert got["holdings"] == ["p-dep", "p-ins"]
    assert (got["risk_tolerance"], got["segment"]) == (3, "young")


def test_views_clicks_and_impressions_hold_nothing(service: httpx.Client) -> None:
    product = {"item_id": "p-fund", "item_type": "product", "watch_ratio": None}
    events = [
        event(f"e{i}", action=a, **product) for i, a in enumerate(["impression", "view", "click"])
    ]
    assert post(service, *events).json() == counts(3, 3, 0)
    assert holdings(service, "u-1") == []


def test_an_event_carries_the_surface_and_position_it_happened_at(
    service: httpx.Client, redis_client: redis.Redis
) -> None:
    """So that outcomes can be analysed by placement (the drain keeps both in the partitions);
    an event without them, as before, stores them empty."""
    placed = event("e1", surface="product_page", position=3)
    assert post(service, placed, event("e2")).json() == counts(2, 2, 0)
    stored = [
        (fields[b"surface"].decode(), fields[b"position"].decode())
        for _, fields in redis_client.xrange(STREAM)
    ]
    assert stored == [("product_page", "3"), ("", "")]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        pytest.param({"watch_ratio": 100.5}, "watch_ratio", id="schema error"),
        pytest.param({"ts": "2100-01-01T00:00:00Z"}, "ts", id="ts in the future"),
        pytest.param({"surface": "Home Screen"}, "surface", id="not a surface name"),
        pytest.param({"position": 0}, "position", id="position 0"),
        pytest.param({"position": True}, "position", id="position true"),
    ],
)
def test_a_batch_with_one_bad_event_is_refused_whole(
    service: httpx.Client, redis_client: redis.Redis, bad: dict[str, Any], field: str
) -> None:
    good = [event("e1"), purchase("e2", "u-1", "p-pen")]
    response = post(service, *good, event("e3", **bad))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "events", 2, field]]
    assert redis_client.xlen(STREAM) == 0
    assert holdings(service, "u-1") == []
    assert post(service, *good).json() == counts(2, 2, 0)  # their ids were not consumed


def test_a_full_stream_refuses_the_batch_with_503_rather_than_trimming_events(
    redis_url: str, models_dir: Path, redis_client: redis.Redis
) -> None:
    """The stream is bounded by refusing, never by dropping what was accepted."""
    settings = service_settings(redis_url, models_dir, stream_max_len=1000)
    with serving(settings) as client:
        first = [event(f"e-{i}", f"u-{i % 7}") for i in range(990)]
        assert post(client, *first).json() == counts(990, 990, 0)
        overflow = [event(f"f-{i}") for i in range(11)]
        response = post(client, *overflow)
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert redis_client.xlen("recsvc:events") == 990
        assert post(client, *overflow[:10]).json() == counts(10, 10, 0)
