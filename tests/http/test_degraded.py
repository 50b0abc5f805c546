"""Serving through a Redis outage, and the metrics that show it.

With Redis gone a replica still answers feeds: global popularity, marked `degraded`, with no
product (holdings and daily caps cannot be checked). Writes are refused with 503 and a
Retry-After, so clients retry and nothing is lost. Readiness holds and says why (or fails,
with RECSVC_READY_WITHOUT_REDIS=false); liveness holds. When Redis is back the replica
recovers by itself, without a restart.

Each test stops the session's Redis and always starts it again before it ends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

from recsvc.contract.keys import Keys
from sandbox.embedded_redis import EmbeddedRedis
from tests.http.builders import (
    PLANTED_VERSION,
    eventually,
    load_planted_catalog,
    publish_model,
    redis_stopped,
    service_settings,
    serving,
)
from tests.http.polls import wait_for_polls

POPULAR_FIRST = ["v00", "v01", "v02"]  # planted global popularity
SAVING_FIRST = ["v10", "v11", "v12"]  # u-save's published vector


def feed(client: httpx.Client, user_id: str = "u-save") -> dict:
    response = client.get("/v1/feed", params={"user_id": user_id, "n": 3})
    assert response.status_code == 200, response.text
    return response.json()


def video_ids(body: dict) -> list[str]:
    return [item["video_id"] for item in body["items"]]


def products(body: dict) -> list[str]:
    return [item["product"]["product_id"] for item in body["items"] if item["product"]]


def restore_data(redis_url: str, models_dir: Path) -> None:
    """A restarted Redis is empty: publish the model and load the catalogue again."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)


EVENTS = {
    "events": [
        {
            "event_id": "e-outage-1",
            "ts": datetime.now(UTC).isoformat(),
            "user_id": "u-new",
            "item_id": "v20",
            "item_type": "video",
            "action": "view",
            "watch_ratio": 0.9,
        }
    ]
}


def test_without_redis_the_feed_is_global_popularity_without_products(
    service: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    healthy = feed(service)
    assert healthy["degraded"] is False and video_ids(healthy) == SAVING_FIRST
    assert products(healthy), "a healthy feed of u-save attaches a product"
    with redis_stopped(redis_server):
        body = feed(service)
        assert body["degraded"] is True
        assert body["source"] == "popularity"
        assert body["model_version"] == PLANTED_VERSION
        assert video_ids(body) == POPULAR_FIRST
        assert products(body) == []


def test_without_redis_writes_answer_503_with_retry_after_and_a_retry_is_accepted(
    service: httpx.Client, redis_server: EmbeddedRedis, redis_url: str
) -> None:
    with redis_stopped(redis_server):
        refused = service.post("/v1/events", json=EVENTS)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        profile = service.put("/v1/users/u-new/profile", json={"risk_tolerance": 3})
        assert profile.status_code == 503
        assert "Retry-After" in profile.headers

    def retried() -> bool:
        return service.post("/v1/events", json=EVENTS).status_code == 202

    assert eventually(retried)
    with redis.Redis.from_url(redis_url) as client:
        entries = client.xrange(Keys().events)
    assert [fields[b"event_id"] for _, fields in entries] == [b"e-outage-1"]
    again = service.post("/v1/events", json=EVENTS).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)  # retries are safe
    profile = service.put("/v1/users/u-new/profile", json={"risk_tolerance": 3})
    assert profile.status_code == 200


def test_without_redis_a_replica_that_can_serve_degraded_feeds_stays_ready_saying_why(
    service: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    """The default (RECSVC_READY_WITHOUT_REDIS=true): Redis is shared, so failing readiness
    would take every replica out of the load balancer at once, and clients would get no
    answer instead of the degraded feed."""
    assert service.get("/readyz").status_code == 200
    with redis_stopped(redis_server):
        ready = service.get("/readyz")
        assert ready.status_code == 200, ready.json()
        assert ready.json()["redis_available"] is False
        assert any("Redis" in warning for warning in ready.json()["warnings"]), ready.json()
        assert feed(service)["degraded"] is True
        assert service.get("/healthz").status_code == 200
    assert eventually(lambda: service.get("/readyz").json()["redis_available"] is True)


def test_without_redis_readiness_fails_naming_redis_when_so_configured(
    redis_server: EmbeddedRedis, redis_url: str, models_dir: Path
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    settings = service_settings(redis_url, models_dir, ready_without_redis=False)
    with serving(settings) as client:
        assert eventually(lambda: client.get("/readyz").status_code == 200)
        with redis_stopped(redis_server):
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["ready"] is False
            assert any("Redis" in problem for problem in ready.json()["problems"]), ready.json()
            assert client.get("/healthz").status_code == 200
        restore_data(redis_url, models_dir)
        assert eventually(lambda: client.get("/readyz").status_code == 200)


def samples(client: httpx.Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of /metrics by sample name: [(labels, value)]."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_metrics_show_latency_redis_errors_degraded_feeds_model_and_attachments(
    service: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    attached = len(products(feed(service))) + len(products(feed(service, "u-ins")))
    assert attached >= 1
    with redis_stopped(redis_server):
        assert feed(service)["degraded"] is True
        metrics = samples(service)

    feeds_timed = [
        value
        for labels, value in metrics["recsvc_request_seconds_count"]
        if labels["route"] == "/v1/feed" and labels["method"] == "GET"
    ]
    assert sum(feeds_timed) == 3
    assert any(
        labels["route"] == "/v1/feed" and value > 0
        for labels, value in metrics["recsvc_request_seconds_bucket"]
    )
    errors = {
        (labels["operation"], labels["kind"]): value
        for labels, value in metrics["recsvc_redis_errors_total"]
    }
    # One degraded feed, with its cause: its own call failed (redis_error), or the poll had
    # found Redis gone first and the breaker was open (breaker_open)
    degraded = {
        labels["cause"]: value for labels, value in metrics["recsvc_degraded_responses_total"]
    }
    assert sum(degraded.values()) == 1.0, degraded
    assert degraded["redis_error"] + degraded["breaker_open"] == 1.0, degraded
    # The failure that told the service, counted as a stopped Redis (unreachable): the feed's
    # own read when it found Redis gone, else the background read that opened the breaker.
    if degraded["redis_error"] == 1.0:
        assert errors.get(("user_state", "unreachable"), 0) >= 1, errors
    else:
        assert errors.get(("user_state", "unreachable"), 0) == 0, errors
        assert any(kind == "unreachable" and value >= 1 for (_, kind), value in errors.items())
    assert metrics["recsvc_model_info"] == [({"version": PLANTED_VERSION}, 1.0)]
    assert metrics["recsvc_attached_products_total"] == [({}, float(attached))]


def test_a_replica_started_without_redis_waits_for_a_catalogue_then_recovers(
    redis_server: EmbeddedRedis, redis_url: str, models_dir: Path
) -> None:
    """It loads the newest model on disk, but serves no feed before it has a catalogue: it
    could not tell retired videos apart (fail closed), so 503, then recovers by itself."""
    with redis_stopped(redis_server), serving(service_settings(redis_url, models_dir)) as client:
        response = client.get("/v1/feed", params={"user_id": "u-save", "n": 3})
        assert response.status_code == 503 and "catalogue" in response.json()["detail"]
        assert "retry-after" in response.headers
        ready = client.get("/readyz")
        assert ready.json()["model_version"] == PLANTED_VERSION
        assert ready.status_code == 503
        assert any("no catalogue" in problem for problem in ready.json()["problems"])
        redis_server.start()
        restore_data(redis_url, models_dir)

        def serves_cf() -> bool:
            response = client.get("/v1/feed", params={"user_id": "u-save", "n": 3})
            return response.status_code == 200 and response.json()["source"] == "cf"

        assert eventually(serves_cf)
        body = feed(client)
        assert body["degraded"] is False and video_ids(body) == SAVING_FIRST
        assert client.get("/readyz").status_code == 200


def retire_v10_then_lose_redis_data(
    service: httpx.Client, redis_server: EmbeddedRedis, redis_url: str, models_dir: Path
) -> None:
    """v10 retired and gone from feeds; then Redis restarts empty (the catalogue is lost) and
    only the model's vectors are published again."""
    response = service.put("/v1/catalog/videos/v10/status", json={"status": "retired"})
    assert response.status_code == 200
    assert eventually(lambda: "v10" not in video_ids(feed(service)))
    with redis_stopped(redis_server):
        redis_server.start()  # same port, empty
        publish_model(redis_url, models_dir / PLANTED_VERSION)


def test_a_partial_catalogue_after_data_loss_does_not_revive_retired_videos(
    service: httpx.Client, redis_server: EmbeddedRedis, redis_url: str, models_dir: Path
) -> None:
    retire_v10_then_lose_redis_data(service, redis_server, redis_url, models_dir)
    # Upstream writes one record: a new revision, whose catalogue lacks v10's record.
    record = {"video_id": "v20", "title": "investing #0"}
    put = service.put  # the first writes after the restart may still meet the breaker: 503
    assert eventually(lambda: put("/v1/catalog/videos/v20", json=record).status_code == 200)
    assert eventually(lambda: service.get("/readyz").json()["catalog_missing_in_redis"] is False)
    assert eventually(lambda: feed(service)["source"] == "cf", timeout=10)
    assert "v10" not in video_ids(feed(service))


def test_a_catalogue_lost_with_redis_data_is_kept_so_retired_items_stay_retired(
    service: httpx.Client, redis_server: EmbeddedRedis, redis_url: str, models_dir: Path
) -> None:
    retire_v10_then_lose_redis_data(service, redis_server, redis_url, models_dir)

    def recovered() -> bool:
        return feed(service)["source"] == "cf"

    assert eventually(recovered, timeout=10)
    assert eventually(lambda: service.get("/readyz").json()["catalog_missing_in_redis"] is True)
    wait_for_polls(service.get, redis_url, 2)  # more polls that find no catalogue in Redis
    assert video_ids(feed(service))[:2] == ["v11", "v12"]  # u-save's topic, v10 still retired
    assert service.get("/readyz").json()["catalog_missing_in_redis"] is True


def test_a_redis_that_stops_answering_is_counted_as_timeouts(
    service: httpx.Client, redis_url: str
) -> None:
    redis.Redis.from_url(redis_url).execute_command("CLIENT", "PAUSE", 1000, "ALL")
    assert feed(service)["degraded"] is True  # at the request's deadline
    # The call itself runs on to its own timeout (the store counts it there), a moment later

    def timeouts() -> dict[tuple[str, str], float]:
        return {
            (labels["operation"], labels["kind"]): value
            for labels, value in samples(service)["recsvc_redis_errors_total"]
        }

    assert eventually(lambda: timeouts().get(("user_state", "timeout"), 0) >= 1), timeouts()
