"""One id per feed request: the body's `request_id` is the request's X-Request-ID (given by
the client, or made by the service and echoed), so the id that events and exposures carry is
the one in the service's log lines."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.http.builders import APP_KEY


def test_the_feed_request_id_is_the_client_given_x_request_id(service: httpx.Client) -> None:
    response = service.get(
        "/v1/feed", params={"user_id": "u-save", "n": 3}, headers={"X-Request-ID": "app-feed-42"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "app-feed-42"
    assert response.json()["request_id"] == "app-feed-42"


def test_without_one_the_service_makes_one_id_for_header_and_body(service: httpx.Client) -> None:
    response = service.get("/v1/feed", params={"user_id": "u-save", "n": 3})
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_feeds_served_in_one_batch_keep_their_own_ids(service: httpx.Client) -> None:
    base = str(service.base_url)

    def one(i: int) -> tuple[str, str]:
        response = httpx.get(
            f"{base}/v1/feed",
            params={"user_id": f"u{i}", "n": 2},
            headers={"X-Request-ID": f"batch-{i}", "Authorization": f"Bearer {APP_KEY}"},
        )
        return f"batch-{i}", response.json()["request_id"]

    with ThreadPoolExecutor(16) as pool:
        pairs = list(pool.map(one, range(48)))
    assert all(sent == served for sent, served in pairs), pairs
