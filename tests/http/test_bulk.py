"""Bulk writes for upstream systems (admin): POST /v1/catalog/bulk and POST
/v1/users/profiles/bulk. Every record is validated first, every problem named by its list,
index and field; then all are written, or none. A real service on loopback, a real Redis."""

from __future__ import annotations

from typing import Any

import httpx

from sandbox.embedded_redis import EmbeddedRedis
from tests.builders import APP_KEY, auth_header
from tests.http.builders import redis_stopped


def video(video_id: str, **fields: Any) -> dict[str, Any]:
    return {"video_id": video_id, "title": f"Video {video_id}", "topics": ["saving"], **fields}


def product(product_id: str, **fields: Any) -> dict[str, Any]:
    return {"product_id": product_id, "name": f"Product {product_id}", "category": "deposit",
            "risk_level": 1, **fields}  # fmt: skip


def locations(response: httpx.Response) -> list[list[Any]]:
    return [error["loc"] for error in response.json()["detail"]]


def test_a_bulk_catalogue_write_stores_every_record_and_keeps_a_retirement(
    service: httpx.Client,
) -> None:
    assert service.put("/v1/catalog/products/p-dep/status", json={"status": "retired"}).is_success
    body = {
        "videos": [video("v-b1"), video("v-b2", status="retired"), video("v-b3")],
        "products": [product("p-b1"), product("p-dep")],  # p-dep without status: stays retired
    }
    written = service.post("/v1/catalog/bulk", json=body)
    assert written.status_code == 200, written.text
    assert written.json() == {"videos": 3, "products": 2, "kept_retired": 1}
    assert service.get("/v1/catalog/videos/v-b1").json()["status"] == "live"
    assert service.get("/v1/catalog/videos/v-b2").json()["status"] == "retired"
    assert service.get("/v1/catalog/products/p-b1").json()["name"] == "Product p-b1"
    stored = service.get("/v1/catalog/products/p-dep").json()
    assert stored["name"] == "Product p-dep" and stored["status"] == "retired"


def test_one_bad_record_names_every_problem_and_writes_nothing(service: httpx.Client) -> None:
    body = {
        "videos": [video("v-ok"), video("bad id"), video("v-ok")],
        "products": [product("p-ok"), product("p-two", risk_level=9)],
    }
    refused = service.post("/v1/catalog/bulk", json=body)
    assert refused.status_code == 422
    assert ["body", "videos", 1, "video_id"] in locations(refused)
    assert ["body", "products", 1, "risk_level"] in locations(refused)
    assert service.get("/v1/catalog/videos/v-ok").status_code == 404
    assert service.get("/v1/catalog/products/p-ok").status_code == 404

    repeated = service.post("/v1/catalog/bulk", json={"videos": [video("v-ok"), video("v-ok")]})
    assert repeated.status_code == 422
    assert "videos[1].video_id: v-ok repeats videos[0]" in repeated.text
    assert service.get("/v1/catalog/videos/v-ok").status_code == 404
    assert service.post("/v1/catalog/bulk", json={}).status_code == 422  # no record


def test_bulk_profiles_replace_every_one_or_none(service: httpx.Client) -> None:
    good = [
        {"user_id": "u-b1", "risk_tolerance": 2, "segment": "mass", "holdings": ["p-dep"]},
        {"user_id": "u-b2", "risk_tolerance": 5, "lifecycle": "active"},
    ]
    written = service.post("/v1/users/profiles/bulk", json={"profiles": good})
    assert written.status_code == 200, written.text
    assert written.json() == {"profiles": 2}
    first = service.get("/v1/users/u-b1/profile").json()
    assert first["risk_tolerance"] == 2 and first["holdings"] == ["p-dep"]
    assert service.get("/v1/users/u-b2/profile").json()["lifecycle"] == "active"

    bad = [
        {"user_id": "u-b1", "risk_tolerance": 3},
        {"user_id": "u-b3", "risk_tolerance": 9},
        {"user_id": "u-b4", "colour": "blue"},
    ]
    refused = service.post("/v1/users/profiles/bulk", json={"profiles": bad})
    assert refused.status_code == 422
    assert ["body", "profiles", 1, "risk_tolerance"] in locations(refused)
    assert ["body", "profiles", 2, "colour"] in locations(refused)
    assert service.get("/v1/users/u-b1/profile").json()["risk_tolerance"] == 2  # unchanged


def test_bulk_writes_need_an_admin_key_and_redis(
    service: httpx.Client, redis_server: EmbeddedRedis
) -> None:
    app = auth_header(APP_KEY)
    body = {"videos": [video("v-x")]}
    assert service.post("/v1/catalog/bulk", json=body, headers=app).status_code == 403
    profiles = {"profiles": [{"user_id": "u-x"}]}
    assert service.post("/v1/users/profiles/bulk", json=profiles, headers=app).status_code == 403
    with redis_stopped(redis_server):
        down = service.post("/v1/catalog/bulk", json=body)
        assert down.status_code == 503 and "Retry-After" in down.headers
        down = service.post("/v1/users/profiles/bulk", json=profiles)
        assert down.status_code == 503 and "Retry-After" in down.headers
