"""What the tests of product cards build on: the planted model and catalogue served with given
settings, a feed, the cards and videos on it, and the profile, event and status writes that
set a situation up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.http.builders import (
    PLANTED_VERSION,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)


@contextmanager
def planted_service(redis_url: str, models_dir: Path, **overrides: Any) -> Iterator[httpx.Client]:
    """The planted model and catalogue, served with these settings."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    with serving(service_settings(redis_url, models_dir, **overrides)) as client:
        yield client


def feed(client: httpx.Client, user_id: str, n: int = 12) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"user_id": user_id, "n": n})
    assert response.status_code == 200, response.text
    return response.json()


def attached(body: dict[str, Any]) -> list[str]:
    return [item["product"]["product_id"] for item in body["items"] if item["product"]]


def videos(body: dict[str, Any]) -> list[str]:
    return [item["video_id"] for item in body["items"]]


def set_profile(client: httpx.Client, user_id: str, **profile: Any) -> None:
    response = client.put(f"/v1/users/{user_id}/profile", json=profile)
    assert response.status_code == 200, response.text


def post_events(client: httpx.Client, *events: dict[str, Any]) -> None:
    response = client.post("/v1/events", json={"events": list(events)})
    assert response.status_code == 202, response.text


def set_status(client: httpx.Client, kind: str, item_id: str, status: str) -> None:
    response = client.put(f"/v1/catalog/{kind}/{item_id}/status", json={"status": status})
    assert response.status_code == 200, response.text


def everyone_in_variant(client: httpx.Client, experiment: str, **params: Any) -> None:
    """An experiment whose one variant, with these parameters, takes every user (the other
    variant, weight 0, none)."""
    lines = [f"{name} = {str(value).lower()}" for name, value in params.items()]
    definition = "\n".join(
        [
            "[[experiment]]",
            f'name = "{experiment}"',
            "[[experiment.variant]]",
            'name = "everyone"',
            "weight = 1.0",
            *lines,
            "[[experiment.variant]]",
            'name = "no-one"',
            "weight = 0.0",
        ]
    )
    response = client.put("/v1/admin/experiments", content=definition.encode())
    assert response.status_code == 200, response.text
