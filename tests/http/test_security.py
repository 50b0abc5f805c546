"""API keys, request limits and the logs, through the real app on loopback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from recsvc.edge.app import create_app
from recsvc.edge.auth import KeyRing
from recsvc.service.settings import SettingsError
from tests.builders import ADMIN_KEY, APP_KEY, auth_header
from tests.http.builders import (
    PLANTED_VERSION,
    event_body,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)

APP_ROUTES = [("GET", "/v1/feed?user_id=u-1"), ("POST", "/v1/events")]
ADMIN_ROUTES = [
    ("GET", "/v1/users/u-1/profile"),
    ("PUT", "/v1/users/u-1/profile"),
    ("GET", "/v1/catalog/products/p-1"),
    ("PUT", "/v1/catalog/products/p-1/status"),
    ("GET", "/v1/admin/experiments"),
    ("PUT", "/v1/admin/experiments"),
]
OPEN_ROUTES = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"]


@contextmanager
def service_with(redis_url: str, models_dir: Path, **overrides: Any) -> Iterator[httpx.Client]:
    """The planted model served with these settings, and a client that sends no key itself."""
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    settings = service_settings(redis_url, models_dir, **overrides)
    with serving(settings) as keyed, httpx.Client(base_url=str(keyed.base_url)) as client:
        yield client


@pytest.fixture
def bare(redis_url: str, models_dir: Path) -> Iterator[httpx.Client]:
    with service_with(redis_url, models_dir) as client:
        yield client


def refused_count(client: httpx.Client, reason: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf'^recsvc_refused_requests_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


# -- keys -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path"), APP_ROUTES + ADMIN_ROUTES)
def test_every_api_route_without_a_key_is_401_saying_how_to_send_one(
    bare: httpx.Client, method: str, path: str
) -> None:
    response = bare.request(method, path)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), APP_ROUTES + ADMIN_ROUTES)
def test_an_unknown_key_is_401(bare: httpx.Client, method: str, path: str) -> None:
    response = bare.request(method, path, headers=auth_header("not-a-key-of-this-service"))
    assert response.status_code == 401
    assert response.json()["detail"] == "unknown API key"


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_the_app_key_does_not_open_an_operator_route(
    bare: httpx.Client, method: str, path: str
) -> None:
    response = bare.request(method, path, headers=auth_header(APP_KEY))
    assert response.status_code == 403
    assert "needs an admin API key" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path"), APP_ROUTES)
def test_the_admin_key_is_not_an_app_key(bare: httpx.Client, method: str, path: str) -> None:
    response = bare.request(method, path, headers=auth_header(ADMIN_KEY))
    assert response.status_code == 403


def test_the_right_keys_are_served_and_refusals_are_counted(bare: httpx.Client) -> None:
    feed = bare.get("/v1/feed", params={"user_id": "u-1"}, headers=auth_header(APP_KEY))
    assert feed.status_code == 200
    events = bare.post(
        "/v1/events",
        json={"events": [event_body("u-1", "v-1", "view")]},
        headers=auth_header(APP_KEY),
    )
    assert events.status_code == 202, events.text
    profile = bare.get("/v1/users/u-1/profile", headers=auth_header(ADMIN_KEY))
    assert profile.status_code == 200
    bare.get("/v1/feed", params={"user_id": "u-1"})
    bare.get("/v1/feed", params={"user_id": "u-1"}, headers=auth_header(ADMIN_KEY))
    assert refused_count(bare, "unauthenticated") == 1
    assert refused_count(bare, "forbidden") == 1


def test_a_lowercase_scheme_is_accepted_and_other_schemes_are_not(bare: httpx.Client) -> None:
    path = "/v1/feed?user_id=u-1"
    assert bare.get(path, headers={"Authorization": f"bearer {APP_KEY}"}).status_code == 200
    assert bare.get(path, headers={"Authorization": f"Basic {APP_KEY}"}).status_code == 401
    assert bare.get(path, headers={"Authorization": APP_KEY}).status_code == 401


@pytest.mark.parametrize("path", OPEN_ROUTES)
def test_probes_metrics_and_docs_need_no_key(bare: httpx.Client, path: str) -> None:
    assert bare.get(path).status_code == 200


def test_an_unknown_api_path_needs_a_key_before_it_is_found_missing(bare: httpx.Client) -> None:
    assert bare.get("/v1/secret").status_code == 401
    assert bare.get("/v1/secret", headers=auth_header(ADMIN_KEY)).status_code == 404


def test_the_schema_declares_the_key_each_operation_needs(bare: httpx.Client) -> None:
    schema = bare.get("/openapi.json").json()
    assert set(schema["components"]["securitySchemes"]) == {"appKey", "adminKey"}
    paths = schema["paths"]
    assert paths["/v1/feed"]["get"]["security"] == [{"appKey": []}]
    assert paths["/v1/events"]["post"]["security"] == [{"appKey": []}]
    assert paths["/v1/admin/experiments"]["put"]["security"] == [{"adminKey": []}]
    assert paths["/v1/users/{user_id}/profile"]["get"]["security"] == [{"adminKey": []}]
    assert "security" not in paths["/healthz"]["get"]
    assert {"401", "403", "413", "429"} <= set(paths["/v1/feed"]["get"]["responses"])


# -- no keys only when a setting says so ------------------------------------------------------
def test_the_service_refuses_to_start_without_keys_naming_the_variables(
    redis_url: str, models_dir: Path
) -> None:
    settings = service_settings(redis_url, models_dir, app_api_keys="", admin_api_keys="")
    with pytest.raises(SettingsError) as refused:
        create_app(settings)
    message = str(refused.value)
    assert "RECSVC_APP_API_KEYS and RECSVC_ADMIN_API_KEYS: not set" in message
    assert "RECSVC_ALLOW_UNAUTHENTICATED=true" in message


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"app_api_keys": "short"}, "RECSVC_APP_API_KEYS: key(s) #1 shorter than 16"),
        ({"admin_api_keys": f"{ADMIN_KEY},tiny"}, "RECSVC_ADMIN_API_KEYS: key(s) #2 shorter"),
        ({"admin_api_keys": APP_KEY}, "share a key"),
    ],
)
def test_weak_or_shared_keys_are_refused(
    redis_url: str, models_dir: Path, keys: dict[str, str], problem: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(problem)):
        create_app(service_settings(redis_url, models_dir, **keys))


def test_running_open_is_explicit_and_warned_about_at_start_up(
    redis_url: str, models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    overrides = {"app_api_keys": "", "admin_api_keys": "", "allow_unauthenticated": True}
    with service_with(redis_url, models_dir, **overrides) as client:
        assert client.get("/v1/feed", params={"user_id": "u-1"}).status_code == 200
        assert client.get("/v1/admin/experiments").status_code == 200
        schema = client.get("/openapi.json").json()
    assert "served WITHOUT an API key" in capfd.readouterr().err
    assert schema["paths"]["/v1/feed"]["get"]["security"] == [{"appKey": []}, {}]


def test_with_only_the_app_routes_open_the_operator_routes_still_need_the_admin_key(
    redis_url: str, models_dir: Path
) -> None:
    overrides = {"app_api_keys": "", "allow_unauthenticated": True}
    with service_with(redis_url, models_dir, **overrides) as client:
        assert client.get("/v1/feed", params={"user_id": "u-1"}).status_code == 200
        assert client.get("/v1/admin/experiments").status_code == 401


def test_keys_are_kept_as_digests_and_never_shown_in_the_settings(
    redis_url: str, models_dir: Path
) -> None:
    settings = service_settings(redis_url, models_dir)
    assert APP_KEY not in repr(settings) and ADMIN_KEY not in repr(settings)
    ring = KeyRing.from_settings(settings)
    assert APP_KEY.encode() not in repr(ring).encode()
    caller = ring.identify(APP_KEY)
    assert caller is not None and APP_KEY not in caller.label


# -- limits ---------------------------------------------------------------------------------
def test_a_body_declared_over_the_limit_is_413_before_it_is_read(
    redis_url: str, models_dir: Path
) -> None:
    with service_with(redis_url, models_dir, max_body_bytes=2048) as client:
        events = [event_body("u-1", f"v-{i}", "view") for i in range(40)]
        response = client.post("/v1/events", json={"events": events}, headers=auth_header())
        assert response.status_code == 413
        assert "RECSVC_MAX_BODY_BYTES" in response.json()["detail"]
        assert refused_count(client, "body_too_large") == 1
        small = client.post(
            "/v1/events", json={"events": events[:2]}, headers=auth_header()
        )  # under the limit: accepted
        assert small.status_code == 202


def test_a_streamed_body_without_a_length_is_cut_off_at_the_limit(
    redis_url: str, models_dir: Path
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": ['
        for i in range(100):
            yield json.dumps(event_body("u-1", f"v-{i}", "view")).encode() + b","
        yield b"{}]}"

    with service_with(redis_url, models_dir, max_body_bytes=2048) as client:
        response = client.post(
            "/v1/events",
            content=chunks(),
            headers={**auth_header(), "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert "content-length" not in response.request.headers  # it really was chunked


def test_a_client_over_its_rate_gets_429_with_retry_after_and_others_are_not_slowed(
    redis_url: str, models_dir: Path
) -> None:
    overrides = {"rate_limit_per_second": 0.5, "rate_limit_burst": 3}
    with service_with(redis_url, models_dir, **overrides) as client:
        statuses = [
            client.get("/v1/feed", params={"user_id": "u-1"}, headers=auth_header()).status_code
            for _ in range(5)
        ]
        assert statuses[:3] == [200, 200, 200]
        assert statuses[3:] == [429, 429]
        limited = client.get("/v1/feed", params={"user_id": "u-1"}, headers=auth_header())
        assert int(limited.headers["retry-after"]) >= 1
        assert "rate limit" in limited.json()["detail"]
        other = client.get("/v1/admin/experiments", headers=auth_header(ADMIN_KEY))
        assert other.status_code == 200  # another key, another bucket
        assert all(client.get("/healthz").status_code == 200 for _ in range(5))  # probes
        assert refused_count(client, "rate_limited") == 3


# -- logs -----------------------------------------------------------------------------------
def test_access_logs_are_json_lines_with_the_request_id_and_no_secrets_or_profiles(
    redis_url: str, models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    overrides = {"log_json": True, "access_log": True}
    with service_with(redis_url, models_dir, **overrides) as client:
        capfd.readouterr()
        profile = {"risk_tolerance": 4, "segment": "secret-segment", "holdings": ["p-held"]}
        put = client.put("/v1/users/u-7/profile", json=profile, headers=auth_header(ADMIN_KEY))
        assert put.status_code == 200
        chosen = client.get(
            "/v1/feed?user_id=u-7", headers={**auth_header(), "X-Request-ID": "app-req-42"}
        )
        bad_id = client.get("/v1/feed?user_id=u-7", headers={"X-Request-ID": "not ok/" + "x" * 80})
        refused = client.get("/v1/feed?user_id=u-7", headers=auth_header("wrong-key-0123456789"))
    logged = capfd.readouterr().err
    lines = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line["message"] == "request"]
    by_id = {line["request_id"]: line for line in requests}

    assert chosen.headers["x-request-id"] == "app-req-42"
    assert by_id["app-req-42"]["route"] == "/v1/feed"
    assert by_id["app-req-42"]["status"] == 200
    assert by_id["app-req-42"]["caller"].startswith("app:")
    assert re.fullmatch(r"[0-9a-f]{32}", bad_id.headers["x-request-id"])  # replaced: a new id
    assert by_id[refused.headers["x-request-id"]]["status"] == 401
    assert by_id[put.headers["x-request-id"]]["route"] == "/v1/users/{user_id}/profile"
    for secret in (APP_KEY, ADMIN_KEY, "wrong-key-0123456789", "secret-segment", "p-held"):
        assert secret not in logged


def test_behind_a_path_prefix_every_route_still_needs_its_key(
    redis_url: str, models_dir: Path
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    settings = service_settings(redis_url, models_dir)
    # (the proxy strips the prefix: requests arrive as /v1/..., routed under the root path)
    with (
        serving(settings, root_path="/recsvc") as keyed,
        httpx.Client(base_url=str(keyed.base_url)) as bare,
    ):
        assert bare.get("/v1/users/u-1/profile").status_code == 401
        assert bare.put("/v1/users/u-1/profile", json={"risk_tolerance": 5}).status_code == 401
        assert bare.get("/v1/feed", params={"user_id": "u-1"}).status_code == 401
        assert keyed.get("/v1/feed", params={"user_id": "u-1"}).status_code == 200


@pytest.mark.parametrize("number", ["1e999", "NaN", "Infinity", "-Infinity"])
def test_a_number_json_cannot_carry_is_a_422_that_does_not_echo_it(
    bare: httpx.Client, number: str
) -> None:
    event = event_body("u-1", "p-1", "purchase", item_type="product")
    text = json.dumps({"events": [event]}).replace(
        '"p-1", ', '"p-1", "amount": ' + number + ", ", 1
    )
    response = bare.post(
        "/v1/events",
        content=text,
        headers={**auth_header(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "events", 0, "amount"]
    assert "input" not in response.json()["detail"][0]


def test_a_refused_profile_is_not_echoed_or_logged(
    redis_url: str, models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with service_with(redis_url, models_dir, log_json=True, access_log=True) as client:
        capfd.readouterr()
        profile = '{"risk_tolerance": NaN, "segment": "private-banking", "holdings": ["p-arrears"]}'
        response = client.put(
            "/v1/users/u-7/profile",
            content=profile,
            headers={**auth_header(ADMIN_KEY), "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert "private-banking" not in response.text and "p-arrears" not in response.text
    logged = capfd.readouterr().err
    assert "private-banking" not in logged and "p-arrears" not in logged
