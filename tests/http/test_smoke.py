"""The service answers a feed for a published user from the planted model."""

from __future__ import annotations

import httpx


def test_a_published_user_gets_their_topic_first(service: httpx.Client) -> None:
    response = service.get("/v1/feed", params={"user_id": "u-save", "n": 3})
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "cf"
    assert [item["video_id"] for item in body["items"]] == ["v10", "v11", "v12"]
