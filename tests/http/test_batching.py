"""Concurrent feed requests are served in batches, and each user still gets their own feed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.http.builders import TestKeys

TOPIC_FIRST = {"u-ins": "v00", "u-save": "v10", "u-inv": "v20", "u-credit": "v30"}


def batch_count(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "recsvc_feed_batch_size_count":
                return sample.value
    return 0.0


def test_concurrent_requests_share_batches_without_mixing_users(service: httpx.Client) -> None:
    users = list(TOPIC_FIRST) * 25  # 100 requests
    base = str(service.base_url)

    def first_video(user_id: str) -> tuple[str, str]:
        with httpx.Client(base_url=base, timeout=10, auth=TestKeys()) as client:
            response = client.get("/v1/feed", params={"user_id": user_id, "n": 1})
            assert response.status_code == 200
            body = response.json()
            return body["user_id"], body["items"][0]["video_id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(first_video, users))

    assert [user for user, _ in answers] == users
    assert all(video == TOPIC_FIRST[user] for user, video in answers)
    assert batch_count(service) < len(users)  # some requests were served together
