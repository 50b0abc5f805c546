"""The real service (uvicorn on loopback) against a real Redis Cluster: feeds of a model
published into the cluster, batches spanning slots, attach caps and profiles, events ingested
exactly once, also when a node fails half-way through a batch, each user's purchases bounded
as on a single Redis, and a catalogue PUT that keeps the stored status atomically."""

from __future__ import annotations

import math
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
from redis.crc import key_slot

from recsvc.store.client import sync_client
from sandbox.embedded_redis import EmbeddedCluster
from tests.cluster.builders import (
    KEYS,
    keyslot,
    load_catalog_to_cluster,
    masters,
    node_of,
    publish_to_cluster,
)
from tests.http.builders import PLANTED_VERSION, TestKeys, service_settings, serving
from training.data.drain import drain

TOPIC_FIRST = {"u-ins": "v00", "u-save": "v10", "u-inv": "v20", "u-credit": "v30"}


def feed(client: httpx.Client, user_id: str, n: int = 3) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"user_id": user_id, "n": n})
    assert response.status_code == 200, response.text
    return response.json()


def attached(body: dict[str, Any]) -> list[str]:
    return [item["product"]["product_id"] for item in body["items"] if item.get("product")]


def event(user_id: str, item_id: str = "v10", action: str = "view", **fields: Any) -> dict:
    return {
        "event_id": uuid.uuid4().hex,
        "ts": datetime.now(UTC).isoformat(),
        "user_id": user_id,
        "item_id": item_id,
        "item_type": "video",
        "action": action,
        **fields,
    }


def post(client: httpx.Client, events: list[dict]) -> httpx.Response:
    return client.post("/v1/events", json={"events": events})


def test_feeds_of_a_model_published_into_the_cluster(
    redis_cluster: EmbeddedCluster, cluster_url: str, models_dir: Path
) -> None:
    report = publish_to_cluster(cluster_url, models_dir / PLANTED_VERSION)
    # (bytes_per_user is the growth of used_memory summed over the primaries: over 4 users it
    # is below Redis's own noise and can come out negative, so only its presence is checked)
    assert report.users == 4 and math.isfinite(report.bytes_per_user)
    for user in TOPIC_FIRST:  # each vector on the master of its slot
        key = KEYS.vector(report.generation, user)
        with node_of(redis_cluster, key) as node:
            assert node.exists(key)
    load_catalog_to_cluster(cluster_url)
    settings = service_settings(
        cluster_url, models_dir, redis_cluster=True, daily_cap_per_product=1
    )
    with serving(settings) as client:
        # A profile, and the daily attach cap (1), in the user's slot.
        put = client.put("/v1/users/u-save/profile", json={"risk_tolerance": 1})
        assert put.status_code == 200, put.text
        body = feed(client, "u-save")
        assert body["source"] == "cf" and not body.get("degraded")
        assert [item["video_id"] for item in body["items"]] == ["v10", "v11", "v12"]
        assert "p-dep" in attached(body)
        assert "p-dep" not in attached(feed(client, "u-save"))
        assert client.get("/v1/users/u-save/profile").json()["risk_tolerance"] == 1

        # Concurrent requests share batches that span slots (and nodes): no user mixed up.
        users = [*TOPIC_FIRST, "u-cold-1", "u-cold-2"] * 10
        base = str(client.base_url)

        def first_video(user_id: str) -> tuple[str, str, bool]:
            with httpx.Client(base_url=base, timeout=10, auth=TestKeys()) as own:
                got = feed(own, user_id, n=1)
                return got["user_id"], got["items"][0]["video_id"], bool(got.get("degraded"))

        with ThreadPoolExecutor(max_workers=12) as pool:
            answers = list(pool.map(first_video, users))
        assert [user for user, _, _ in answers] == users
        assert not any(degraded for _, _, degraded in answers)
        assert all(video == TOPIC_FIRST[u] for u, video, _ in answers if u in TOPIC_FIRST)

    # Everything the service wrote about one user sits in that user's one slot.
    with masters(redis_cluster) as nodes:
        found = [key.decode() for node in nodes for key in node.scan_iter(match="*{u:u-save}*")]
    assert len(found) >= 3, found  # vector, profile, caps
    assert len({keyslot(redis_cluster, key) for key in found}) == 1, found


def counts(received: int, accepted: int, duplicates: int, not_applied: int = 0) -> dict:
    return {
        "received": received,
        "accepted": accepted,
        "duplicates": duplicates,
        "not_applied": not_applied,
    }


def test_events_are_accepted_once_and_drained_once(
    cluster_url: str, models_dir: Path, tmp_path: Path
) -> None:
    publish_to_cluster(cluster_url, models_dir / PLANTED_VERSION)
    load_catalog_to_cluster(cluster_url)
    events = [event(f"u-{i}") for i in range(30)]  # 30 users: many slots, every node
    events.append(event("u-3", "p-dep", "purchase", item_type="product", amount=100.0))
    settings = service_settings(cluster_url, models_dir, redis_cluster=True)
    with serving(settings) as client:
        first = post(client, events)
        assert first.status_code == 202, first.text
        assert first.json() == counts(31, 31, 0)
        again = post(client, events)  # a client's retry: nothing appended twice
        assert again.json() == counts(31, 0, 31)
        assert "p-dep" in client.get("/v1/users/u-3/profile").json()["holdings"]

    cluster = sync_client(cluster_url, cluster=True)
    try:
        assert all(cluster.llen(KEYS.recent(f"u-{i}")) == (2 if i == 3 else 1) for i in range(30))
        # the 30 views counted once in the live trending counts, in the stream's slot
        hour = int(time.time() // 3600)
        trend = [cluster.hgetall(KEYS.trend(h)) for h in (hour - 1, hour)]
        assert sum(int(counts.get(b"v10|view", 0)) for counts in trend) == 30
        assert key_slot(KEYS.trend(hour).encode()) == key_slot(KEYS.events.encode())
        report = drain(cluster, tmp_path / "events", KEYS)
        assert (report.read, report.written) == (31, 31)
        assert cluster.xlen(KEYS.events) == 0
        assert drain(cluster, tmp_path / "events", KEYS).read == 0
    finally:
        cluster.close()
    ids = [
        event_id
        for path in (tmp_path / "events").rglob("*.parquet")
        for event_id in pq.read_table(path, columns=["event_id"]).column(0).to_pylist()
    ]
    assert sorted(ids) == sorted(e["event_id"] for e in events)


def test_a_batch_that_fails_half_way_is_completed_by_the_retry(
    redis_cluster: EmbeddedCluster, cluster_url: str, models_dir: Path
) -> None:
    """The stream's node accepts the batch, the user's node is paused (writes) past the
    timeout: 503. The retry finds the event accepted and completes the user's state, once."""

    def port_of(user: str) -> int:
        with node_of(redis_cluster, KEYS.user(user)) as node:
            return int(node.connection_pool.connection_kwargs["port"])

    stream_slot = keyslot(redis_cluster, KEYS.events)
    with node_of(redis_cluster, KEYS.events) as stream_node:
        stream_port = stream_node.connection_pool.connection_kwargs["port"]
    user = next(u for u in (f"u-{i}" for i in range(100)) if port_of(u) != stream_port)
    assert keyslot(redis_cluster, KEYS.user(user)) != stream_slot
    publish_to_cluster(cluster_url, models_dir / PLANTED_VERSION)
    load_catalog_to_cluster(cluster_url)
    settings = service_settings(cluster_url, models_dir, redis_cluster=True)
    one = [event(user, "p-dep", "purchase", item_type="product", amount=10.0)]
    cluster = sync_client(cluster_url, cluster=True)
    try:
        with serving(settings) as client, node_of(redis_cluster, KEYS.user(user)) as user_node:
            user_node.execute_command("CLIENT PAUSE", 3000, "WRITE")
            try:
                failed = post(client, one)
            finally:
                user_node.execute_command("CLIENT UNPAUSE")
            assert failed.status_code == 503, failed.text
            assert cluster.xlen(KEYS.events) == 1  # the stream half is done...
            time.sleep(0.5)  # the store's refusal after a failure (0.2 s) is over
            retried = post(client, one)
            assert retried.status_code == 202, retried.text
            assert retried.json() == counts(1, 0, 1)
            assert "p-dep" in client.get(f"/v1/users/{user}/profile").json()["holdings"]
        assert cluster.xlen(KEYS.events) == 1
        assert cluster.llen(KEYS.recent(user)) == 1  # ...and the user's half, once
    finally:
        cluster.close()


def purchase(user_id: str, product_id: str) -> dict:
    return event(user_id, product_id, "purchase", item_type="product", amount=10.0)


def test_purchases_enter_state_only_of_catalogue_products_and_up_to_the_limit(
    cluster_url: str, models_dir: Path
) -> None:
    publish_to_cluster(cluster_url, models_dir / PLANTED_VERSION)
    load_catalog_to_cluster(cluster_url)
    settings = service_settings(
        cluster_url, models_dir, redis_cluster=True, max_purchased_per_user=2
    )
    users = [f"u-{i}" for i in range(12)]  # several slots
    bought = ["p-dep", "p-fund", "p-ins"]  # in the catalogue; the third is over the limit
    batch = [purchase(u, p) for u in users for p in [*bought, "p-made-up"]]
    with serving(settings) as client:
        first = post(client, batch)
        assert first.json() == counts(48, 48, 0, not_applied=24), first.text
        for user in users:
            profile = client.get(f"/v1/users/{user}/profile").json()
            assert profile["holdings"] == ["p-dep", "p-fund"], user
        assert post(client, batch).json() == counts(48, 0, 48)  # applied once, counted once
    cluster = sync_client(cluster_url, cluster=True)
    try:
        assert cluster.xlen(KEYS.events) == 48  # every purchase is in the stream
    finally:
        cluster.close()


def test_ids_that_join_to_one_string_are_two_events(cluster_url: str, models_dir: Path) -> None:
    publish_to_cluster(cluster_url, models_dir / PLANTED_VERSION)
    settings = service_settings(cluster_url, models_dir, redis_cluster=True)
    pairs = [("acct", "R:42"), ("acct:R", "42")]
    with serving(settings) as client:
        for user, event_id in pairs:
            answer = post(client, [{**event(user), "event_id": event_id}])
            assert answer.json() == counts(1, 1, 0), answer.text
    cluster = sync_client(cluster_url, cluster=True)
    try:
        assert cluster.xlen(KEYS.events) == 2
        assert all(cluster.exists(KEYS.event_accepted(u, e)) for u, e in pairs)
        assert all(cluster.llen(KEYS.recent(user)) == 1 for user, _ in pairs)
    finally:
        cluster.close()


def test_a_record_put_keeps_the_stored_status_on_a_cluster(
    cluster_url: str, models_dir: Path
) -> None:
    publish_to_cluster(cluster_url, models_dir / PLANTED_VERSION)
    load_catalog_to_cluster(cluster_url)
    settings = service_settings(cluster_url, models_dir, redis_cluster=True)
    record = {"product_id": "p-fund", "name": "Renamed", "category": "fund", "risk_level": 4}
    with serving(settings) as client:
        retired = client.put("/v1/catalog/products/p-fund/status", json={"status": "retired"})
        assert retired.status_code == 200, retired.text
        renamed = client.put("/v1/catalog/products/p-fund", json=record)
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["status"] == "retired"
        stored = client.get("/v1/catalog/products/p-fund").json()
        assert (stored["name"], stored["status"]) == ("Renamed", "retired")
