"""Malformed requests are answered 422, never 500, with a `detail` that says what is wrong.

For a validation error `detail` is a list of errors whose `loc` names where: for an event, the
event's index in the batch and its field. Identifiers are 1 to 64 characters: a letter or
digit, then letters, digits and `_ . : -`. Every case here is refused before anything is
stored, so the cases share one server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from sandbox.embedded_redis import EmbeddedRedis
from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    TestKeys,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)

Loc = tuple[str | int, ...]
TOO_LONG = "u" * 65


@pytest.fixture(scope="module")
def base_url(
    redis_server: EmbeddedRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One planted service for the module (the cases write nothing)."""
    if redis_server.process is None:
        redis_server.start()
    models_dir = tmp_path_factory.mktemp("models")
    planted.write_planted_model(models_dir, PLANTED_VERSION)
    publish_model(redis_server.url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_server.url)
    with serving(service_settings(redis_server.url, models_dir)) as client:
        yield str(client.base_url)


@pytest.fixture
def api(base_url: str) -> Iterator[httpx.Client]:
    """A fresh connection per case, so that one case's failure cannot leak into the next."""
    with httpx.Client(base_url=base_url, timeout=10, auth=TestKeys()) as client:
        yield client


def assert_422(response: httpx.Response, loc: Loc) -> None:
    assert response.status_code == 422, response.text
    locs = [tuple(error["loc"]) for error in response.json()["detail"]]
    assert loc in locs, locs


def event(**fields: Any) -> dict[str, Any]:
    valid = {
        "event_id": "e-1",
        "ts": datetime.now(UTC).isoformat(),
        "user_id": "u-1",
        "item_id": "v10",
        "item_type": "video",
        "action": "view",
        "watch_ratio": 0.5,
    }
    return valid | fields


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"user_id": TOO_LONG}, "user_id", id="user_id of 65 characters"),
        pytest.param({"user_id": "u{1}"}, "user_id", id="user_id with braces"),
        pytest.param({"user_id": "a b"}, "user_id", id="user_id with a space"),
        pytest.param({"user_id": "ü"}, "user_id", id="user_id not ASCII"),
        pytest.param({"user_id": ""}, "user_id", id="empty user_id"),
        pytest.param({"item_id": "-v10"}, "item_id", id="item_id starting with a dash"),
        pytest.param({"action": "like"}, "action", id="unknown action"),
        pytest.param({"item_type": "article"}, "item_type", id="unknown item_type"),
        pytest.param({"watch_ratio": 100.5}, "watch_ratio", id="watch_ratio above its ceiling"),
        pytest.param({"watch_ratio": -0.1}, "watch_ratio", id="watch_ratio below 0"),
        pytest.param({"amount": -1.0}, "amount", id="negative amount"),
        pytest.param({"action": "purchase"}, "action", id="purchase of a video"),
        pytest.param({"ts": "2100-01-01T00:00:00Z"}, "ts", id="ts far in the future"),
        pytest.param({"ts": "9999-12-31T23:59:59-01:00"}, "ts", id="ts at the end of time"),
        pytest.param({"ts": "yesterday"}, "ts", id="ts not a date"),
        pytest.param({"colour": "red"}, "colour", id="unknown field"),
    ],
)
def test_a_malformed_event_is_422_naming_its_index_and_field(
    api: httpx.Client, change: dict[str, Any], field: str
) -> None:
    batch = [event(event_id="e-0"), event(**change)]
    assert_422(api.post("/v1/events", json={"events": batch}), ("body", "events", 1, field))


def test_a_missing_required_field_is_422_naming_it(api: httpx.Client) -> None:
    incomplete = {k: v for k, v in event().items() if k != "item_id"}
    assert_422(
        api.post("/v1/events", json={"events": [incomplete]}), ("body", "events", 0, "item_id")
    )


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"events": []}, id="empty batch"),
        pytest.param({"events": [event(event_id=f"e-{i}") for i in range(1001)]}, id="1001 events"),
        pytest.param({}, id="no events key"),
        pytest.param({"events": "e-1"}, id="events not a list"),
    ],
)
def test_a_malformed_batch_is_422(api: httpx.Client, body: dict[str, Any]) -> None:
    assert_422(api.post("/v1/events", json=body), ("body", "events"))


def test_a_batch_of_1000_events_is_the_largest_accepted_size(api: httpx.Client) -> None:
    """The limit is exactly 1000 (checked with one bad event so that nothing is stored)."""
    batch = [event(event_id=f"e-{i}") for i in range(999)] + [event(action="like")]
    assert_422(api.post("/v1/events", json={"events": batch}), ("body", "events", 999, "action"))


def test_a_body_that_is_not_json_is_422(api: httpx.Client) -> None:
    headers = {"content-type": "application/json"}
    response = api.post("/v1/events", content=b'{"events": [', headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][0] == "body"


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        pytest.param({"user_id": "u-1", "n": 0}, ("query", "n"), id="n=0"),
        pytest.param({"user_id": "u-1", "n": 101}, ("query", "n"), id="n=101"),
        pytest.param({"user_id": "u-1", "n": "x"}, ("query", "n"), id="n not a number"),
        pytest.param({"user_id": TOO_LONG}, ("query", "user_id"), id="user_id of 65 chars"),
        pytest.param({"user_id": "u{1}"}, ("query", "user_id"), id="user_id with braces"),
        pytest.param({"user_id": "a b"}, ("query", "user_id"), id="user_id with a space"),
        pytest.param({"user_id": "ü"}, ("query", "user_id"), id="user_id not ASCII"),
        pytest.param({}, ("query", "user_id"), id="no user_id"),
    ],
)
def test_a_malformed_feed_request_is_422(
    api: httpx.Client, params: dict[str, Any], loc: Loc
) -> None:
    assert_422(api.get("/v1/feed", params=params), loc)


def test_the_longest_user_id_is_accepted(api: httpx.Client) -> None:
    response = api.get("/v1/feed", params={"user_id": "u" * 64, "n": 1})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("user_id", "profile", "loc"),
    [
        pytest.param("u-1", {"risk_tolerance": 6}, ("body", "risk_tolerance"), id="tolerance 6"),
        pytest.param("u-1", {"risk_tolerance": 0}, ("body", "risk_tolerance"), id="tolerance 0"),
        pytest.param("u-1", {"lifecycle": "zombie"}, ("body", "lifecycle"), id="bad lifecycle"),
        pytest.param("u-1", {"holdings": ["a b"]}, ("body", "holdings", 0), id="bad holding"),
        pytest.param("u-1", {"vip": True}, ("body", "vip"), id="unknown field"),
        pytest.param(TOO_LONG, {}, ("path", "user_id"), id="user_id of 65 chars"),
    ],
)
def test_a_malformed_profile_is_422(
    api: httpx.Client, user_id: str, profile: dict[str, Any], loc: Loc
) -> None:
    assert_422(api.put(f"/v1/users/{user_id}/profile", json=profile), loc)


def test_a_product_record_with_missing_fields_is_422_naming_each(api: httpx.Client) -> None:
    response = api.put("/v1/catalog/products/p-new", json={"product_id": "p-new"})
    for field in ("name", "category", "risk_level"):
        assert_422(response, ("body", field))


def test_a_product_record_whose_id_differs_from_the_path_is_422(api: httpx.Client) -> None:
    record = {"product_id": "p-other", "name": "Fund", "category": "fund", "risk_level": 3}
    response = api.put("/v1/catalog/products/p-new", json=record)
    assert_422(response, ("body", "product_id"))
    message = response.json()["detail"][0]["msg"]
    assert "p-new" in message and "p-other" in message
    assert api.get("/v1/catalog/products/p-other").status_code == 404


@pytest.mark.parametrize(
    ("record", "loc"),
    [
        pytest.param({"risk_level": 6}, ("body", "risk_level"), id="risk level 6"),
        pytest.param({"category": "crypto"}, ("body", "category"), id="unknown category"),
        pytest.param({"name": ""}, ("body", "name"), id="empty name"),
    ],
)
def test_a_product_record_with_a_bad_value_is_422(
    api: httpx.Client, record: dict[str, Any], loc: Loc
) -> None:
    valid = {"product_id": "p-new", "name": "Fund", "category": "fund", "risk_level": 3}
    assert_422(api.put("/v1/catalog/products/p-new", json=valid | record), loc)


def test_a_status_other_than_live_or_retired_is_422(api: httpx.Client) -> None:
    response = api.put("/v1/catalog/products/p-dep/status", json={"status": "deleted"})
    assert_422(response, ("body", "status"))


def test_retiring_an_unknown_product_is_404_and_an_unknown_video_gets_a_record(
    api: httpx.Client,
) -> None:
    response = api.put("/v1/catalog/products/p-ghost/status", json={"status": "retired"})
    assert response.status_code == 404 and "p-ghost" in response.json()["detail"]
    response = api.put("/v1/catalog/videos/v-ghost/status", json={"status": "retired"})
    assert response.json() == {"video_id": "v-ghost", "status": "retired"}
    assert api.get("/v1/catalog/videos/v-ghost").json()["status"] == "retired"


def test_a_method_a_path_lacks_is_405_allowing_every_method_it_has(api: httpx.Client) -> None:
    response = api.delete("/v1/users/u-1/profile")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, PUT"


def test_a_timestamp_must_be_iso_text_not_unix_seconds(api: httpx.Client) -> None:
    response = api.post("/v1/events", json={"events": [event(ts=0)]})
    assert_422(response, ("body", "events", 0, "ts"))


@pytest.mark.parametrize("field", ["watch_ratio", "amount"])
def test_true_or_false_is_not_a_number(api: httpx.Client, field: str) -> None:
    wrong = event(action="purchase", item_type="product", item_id="p-1", **{field: False})
    assert_422(api.post("/v1/events", json={"events": [wrong]}), ("body", "events", 0, field))


def test_a_risk_tolerance_of_true_is_not_1(api: httpx.Client) -> None:
    response = api.put("/v1/users/u-1/profile", json={"risk_tolerance": True})
    assert_422(response, ("body", "risk_tolerance"))
