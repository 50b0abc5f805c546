"""DELETE /v1/users/{id}: an operator erases a user. At once the user's own keys go (vectors,
profile, holdings, purchases, recent items, caps) and the erasure is recorded for the nightly
run, which removes the rest (tests/training/nightly/test_nightly_erasure.py). A real service
on loopback, a real Redis."""

from __future__ import annotations

from pathlib import Path

import httpx
import redis

from recsvc.contract.keys import Keys
from sandbox.embedded_redis import EmbeddedRedis
from tests.builders import APP_KEY, auth_header
from tests.http.builders import (
    PLANTED_VERSION,
    event_body,
    publish_model,
    redis_stopped,
)

USER = "u-ins"  # a user of the planted model: a vector of its own


def user_keys(redis_url: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return sorted(client.scan_iter(match=f"*{{u:{USER}}}*"))
    finally:
        client.close()


def test_an_erased_user_loses_vector_profile_and_state_at_once(
    service: httpx.Client, redis_url: str
) -> None:
    profile = {"risk_tolerance": 3, "segment": "mass", "lifecycle": "active", "holdings": ["p-dep"]}
    assert service.put(f"/v1/users/{USER}/profile", json=profile).status_code == 200
    events = [
        event_body(USER, "v00", "view", watch_ratio=1.0),
        event_body(USER, "p-ins", "purchase", item_type="product", amount=100.0),
    ]
    assert service.post("/v1/events", json={"events": events}).status_code == 202
    before = service.get("/v1/feed", params={"user_id": USER, "n": 5}).json()
    assert before["source"] == "cf"
    assert "v00" not in [i["video_id"] for i in before["items"]]  # seen
    owned = user_keys(redis_url)
    assert len(owned) >= 5, owned  # vector, profile, holdings, purchased, recent, caps

    erased = service.delete(f"/v1/users/{USER}")
    assert erased.status_code == 200, erased.text
    body = erased.json()
    assert body["user_id"] == USER and body["keys_deleted"] == len(owned)
    assert body["completed_by"] == "the next nightly run"
    assert user_keys(redis_url) == []
    assert service.delete(f"/v1/users/{USER}").json()["keys_deleted"] == 0  # idempotent
    client = redis.Redis.from_url(redis_url)
    assert client.hkeys(Keys().erasures) == [USER.encode()]  # for the nightly run
    client.close()

    # The next feed knows nothing of the user: no vector, no history, no holdings.
    after = service.get("/v1/feed", params={"user_id": USER, "n": 5}).json()
    assert after["source"] != "cf"
    got = service.get(f"/v1/users/{USER}/profile").json()
    assert got["holdings"] == [] and got["segment"] is None


def test_only_an_operator_may_erase_and_a_bad_id_is_named(service: httpx.Client) -> None:
    refused = service.delete(f"/v1/users/{USER}", headers=auth_header(APP_KEY))
    assert refused.status_code == 403
    assert service.get("/v1/feed", params={"user_id": USER}).json()["source"] == "cf"
    bad = service.delete("/v1/users/bad%20id")
    assert bad.status_code == 422 and "user_id" in bad.text


def test_without_redis_an_erasure_is_refused_with_retry_after(
    service: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    with redis_stopped(redis_server):
        response = service.delete(f"/v1/users/{USER}")
    assert response.status_code == 503 and "Retry-After" in response.headers


def test_a_publish_after_the_erasure_does_not_give_the_user_a_vector_again(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    assert service.delete(f"/v1/users/{USER}").status_code == 200
    report = publish_model(redis_url, models_dir / PLANTED_VERSION)  # e.g. a nightly run's
    assert report.generation == 2
    assert user_keys(redis_url) == []  # no vector of generation 2 either
    assert service.get(f"/v1/users/{USER}").json()["has_vector"] is False
    assert service.get("/v1/feed", params={"user_id": "u-save"}).json()["source"] == "cf"
