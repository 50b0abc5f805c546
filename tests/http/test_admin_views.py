"""The operators' read-only views (the console's data): the models the pointers name, the
catalogue as a filtered, paged list, a user as the service holds them, and a definition
checked without being stored. Admin key only. A real service on loopback, a real Redis."""

from __future__ import annotations

import httpx
import redis

from recsvc.contract.keys import Keys
from tests.builders import APP_KEY, auth_header
from tests.http.builders import PLANTED_VERSION, event_body, eventually


def test_the_models_view_names_the_current_model_with_its_manifest(
    service: httpx.Client, redis_url: str
) -> None:
    body = service.get("/v1/admin/models").json()
    current = body["current"]
    assert current["version"] == PLANTED_VERSION and current["generation"] == 1
    assert current["videos"] == 12 and current["products"] == 6 and current["dimension"] > 0
    assert body["challenger"] is None
    assert body["serving"]["model_version"] == PLANTED_VERSION
    # a pointer to a version this replica's disk lacks is shown with the problem, not a 500
    pointer = '{"version": "20260301T000000000000Z-gone", "generation": 9}'
    redis.Redis.from_url(redis_url).set(Keys().model_challenger, pointer)
    challenger = service.get("/v1/admin/models").json()["challenger"]
    assert challenger["version"].endswith("-gone") and "missing" in challenger["problem"]


def test_the_catalogue_list_filters_and_pages(service: httpx.Client, redis_url: str) -> None:
    listed = service.get("/v1/admin/catalog/videos", params={"limit": 1000}).json()
    assert listed["total"] == 12 and [v["id"] for v in listed["items"]][:2] == ["v00", "v01"]
    page = service.get("/v1/admin/catalog/videos", params={"offset": 10, "limit": 5}).json()
    assert page["total"] == 12 and len(page["items"]) == 2
    assert service.put("/v1/catalog/videos/v01/status", json={"status": "retired"}).is_success

    def retired() -> list[str]:  # as the replica serves them: within a poll of the change
        found = service.get("/v1/admin/catalog/videos", params={"status": "retired"}).json()
        return [v["id"] for v in found["items"]]

    assert eventually(lambda: retired() == ["v01"], 5)
    found = service.get("/v1/admin/catalog/products", params={"contains": "health"}).json()
    assert [p["id"] for p in found["items"]] == ["p-ins"]
    client = redis.Redis.from_url(redis_url)
    client.hset(Keys().catalog_videos, "v-bad", "not json")
    client.set(Keys().catalog_revision, "by-hand")  # replicas reload on a new revision
    assert eventually(lambda: "v-bad" in retired(), 5)  # unreadable: served as retired
    assert service.get("/v1/admin/catalog/widgets").status_code == 422
    assert service.get("/v1/admin/catalog/videos", params={"limit": 5000}).status_code == 422


def test_a_user_is_shown_as_the_service_holds_them(service: httpx.Client) -> None:
    unknown = service.get("/v1/users/u-nobody").json()
    assert unknown["has_vector"] is False and unknown["recent"] == []
    assert unknown["profile"] == {
        "risk_tolerance": None,
        "segment": None,
        "lifecycle": None,
        "holdings": [],
    }
    events = [
        event_body("u-ins", "v00", "view", watch_ratio=0.25),
        event_body("u-ins", "p-ins", "purchase", item_type="product", amount=10.0),
    ]
    assert service.post("/v1/events", json={"events": events}).status_code == 202
    known = service.get("/v1/users/u-ins").json()
    assert known["has_vector"] is True and known["model_version"] == PLANTED_VERSION
    assert known["profile"]["holdings"] == ["p-ins"]  # bought in an event
    assert [(e["item_id"], e["action"]) for e in known["recent"]] == [
        ("p-ins", "purchase"),
        ("v00", "view"),
    ]


def test_a_definition_is_checked_without_being_stored(service: httpx.Client) -> None:
    good = '[[experiment]]\nname = "x"\n[[experiment.variant]]\nname = "a"\nweight = 0.5\n'
    good += '[[experiment.variant]]\nname = "b"\nweight = 0.5\nattach = false\n'
    checked = service.post("/v1/admin/experiments/validate", content=good)
    assert checked.status_code == 200 and checked.json() == {"valid": True, "experiments": ["x"]}
    assert not service.get("/v1/admin/experiments").json()["definition"]
    bad = service.post("/v1/admin/experiments/validate", content=good.replace("0.5", "0.7", 1))
    assert bad.status_code == 422 and "weights" in bad.text
    assert service.post("/v1/admin/experiments/validate", content=b"").status_code == 422


def test_the_views_need_an_admin_key(service: httpx.Client) -> None:
    app = auth_header(APP_KEY)
    for path in ("/v1/admin/models", "/v1/admin/catalog/videos", "/v1/users/u-ins"):
        assert service.get(path, headers=app).status_code == 403
    assert service.post("/v1/admin/experiments/validate", headers=app).status_code == 403
    console = service.get("/console", headers={"Authorization": ""})
    assert console.status_code == 200 and "recsvc console" in console.text  # no data in it
