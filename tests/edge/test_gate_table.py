"""The gate's decisions as in-process tables (recsvc.edge.gate, auth, limits), beside the HTTP
tests of tests/http/test_gate.py and tests/http/test_security.py.

The gate is pure ASGI: each row drives it with a minimal scope, `receive` and `send` (no
server, no socket) in front of a downstream app that answers 200, and reads the status, the
headers and `recsvc_refused_requests_total{reason}` / `recsvc_request_seconds` from the
gate's own metrics registry.

Specification:

- Paths: /v1/feed and /v1/events need an app key; every other /v1 path (unknown ones too, and
  /v1 itself) an admin key; everything else (probes, metrics, docs) is open. The path is
  judged without the ASGI `root_path` a proxy or a parent app adds.
- A key is sent as `Authorization: Bearer <key>` (the scheme in any case). No key: 401
  `unauthenticated` with `WWW-Authenticate: Bearer`; an unknown key: 401 too; a key of the
  wrong kind (app key on an admin route, admin key on an app route): 403 `forbidden`. A
  level without configured keys is open only with `RECSVC_ALLOW_UNAUTHENTICATED=true`.
- Rate limit (when on): one token bucket per client, its key (by digest) or, where no key is
  needed, its address; past the burst: 429 `rate_limited` with Retry-After ≥ 1. Probes are
  never limited.
- Every 401/403 takes a token from the address's failure bucket (an IPv6 address counts by
  its /64); once empty, such a request is a 429 `auth_rate_limited` with Retry-After ≥ 1.
  Valid keys from that address are still served and refill nothing.
- A declared body over RECSVC_MAX_BODY_BYTES: 413 `body_too_large`.
- The latency metric labels a method outside GET HEAD POST PUT PATCH DELETE OPTIONS `other`.
- A sane X-Request-ID (1 to 64 of `A-Za-z0-9._:-`) is echoed; any other is replaced.

The buckets refill at 0.001 tokens a second, so nothing refills within a test: no clock.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from starlette.types import Message, Receive, Scope, Send

from recsvc.edge.auth import Access, KeyRing, access_for, bearer_token
from recsvc.edge.gate import Gate
from recsvc.service.metrics import Metrics
from recsvc.service.settings import Settings, SettingsError, load_settings

APP = "table-app-key-0123456789"
ADMIN = "table-admin-key-0123456789"
UNKNOWN = "table-guess-key-0123456789"
FEED, EVENTS, EXPERIMENTS = "/v1/feed", "/v1/events", "/v1/admin/experiments"
SLOW = 0.001  # tokens per second: no refill within a test


@dataclass(frozen=True)
class Call:
    """One request as the gate sees it."""

    path: str
    key: str | None = None
    client: str = "192.0.2.1"
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    root_path: str = ""

    def scope(self) -> Scope:
        headers = [(k.lower().encode(), v.encode()) for k, v in self.headers]
        if self.key is not None:
            headers.append((b"authorization", f"Bearer {self.key}".encode()))
        return {
            "type": "http",
            "method": self.method,
            "path": self.root_path + self.path,
            "root_path": self.root_path,
            "headers": headers,
            "client": (self.client, 50000),
        }


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    detail: str | None = None


async def downstream(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the gate: reads the body, answers 200."""
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def gate(**settings: Any) -> Gate:
    values: dict[str, Any] = {
        "app_api_keys": APP,
        "admin_api_keys": ADMIN,
        "auth_failures_per_second": SLOW,
        "auth_failures_burst": 1000,
        "rate_limit_per_second": 0,
    }
    config = load_settings(**(values | settings))
    return Gate(downstream, config, KeyRing.from_settings(config), Metrics())


def call(through: Gate, request: Call) -> Answer:
    messages: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    asyncio.run(through(request.scope(), receive, send))
    start, body = messages[0], messages[-1]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    detail = orjson.loads(body["body"]).get("detail") if start["status"] != 200 else None
    return Answer(start["status"], headers, detail)


def refused(through: Gate, reason: str) -> float:
    value = through.metrics.registry.get_sample_value(
        "recsvc_refused_requests_total", {"reason": reason}
    )
    return value or 0.0


ADMISSION = [
    pytest.param(Call("/healthz"), 200, None, id="probe open without a key"),
    pytest.param(Call("/metrics"), 200, None, id="metrics open without a key"),
    pytest.param(Call(FEED), 401, "unauthenticated", id="missing key"),
    pytest.param(Call(FEED, key=UNKNOWN), 401, "unauthenticated", id="bad key"),
    pytest.param(
        Call(FEED, headers=(("Authorization", f"Basic {APP}"),)),
        401,
        "unauthenticated",
        id="a key not sent as Bearer",
    ),
    pytest.param(
        Call(FEED, headers=(("Authorization", f"bearer {APP}"),)),
        200,
        None,
        id="the Bearer scheme in any case",
    ),
    pytest.param(Call(FEED, key=APP), 200, None, id="app key on the feed"),
    pytest.param(Call(EVENTS, key=APP, method="POST"), 200, None, id="app key on events"),
    pytest.param(Call(FEED, key=ADMIN), 403, "forbidden", id="admin key on an app route"),
    pytest.param(Call(EXPERIMENTS, key=APP), 403, "forbidden", id="app key on an admin route"),
    pytest.param(Call(EXPERIMENTS, key=ADMIN), 200, None, id="admin key on an admin route"),
    pytest.param(Call(EXPERIMENTS), 401, "unauthenticated", id="admin route without a key"),
    pytest.param(
        Call("/v1/no-such-route", key=APP), 403, "forbidden", id="unknown /v1 path is admin"
    ),
    pytest.param(
        Call(FEED, root_path="/proxy"),
        401,
        "unauthenticated",
        id="a proxy's root_path does not open a route",
    ),
    pytest.param(
        Call(FEED, key=APP, method="POST", headers=(("Content-Length", "1025"),)),
        413,
        "body_too_large",
        id="declared body over the limit",
    ),
    pytest.param(
        Call(FEED, key=APP, method="POST", headers=(("Content-Length", "1024"),)),
        200,
        None,
        id="declared body at the limit",
    ),
]


@pytest.mark.parametrize(("request_", "status", "reason"), ADMISSION)
def test_admission(request_: Call, status: int, reason: str | None) -> None:
    through = gate(max_body_bytes=1024)
    answer = call(through, request_)
    assert answer.status == status, answer
    assert "x-request-id" in answer.headers
    if reason is None:
        return
    assert refused(through, reason) == 1
    assert answer.detail
    assert ("www-authenticate" in answer.headers) == (status == 401)


SEQUENCES = [
    pytest.param(
        {"rate_limit_per_second": SLOW, "rate_limit_burst": 2},
        [Call(FEED, key=APP)] * 3,
        [200, 200, 429],
        id="rate limit reached",
    ),
    pytest.param(
        {"rate_limit_per_second": SLOW, "rate_limit_burst": 1},
        [Call("/healthz")] * 3,
        [200, 200, 200],
        id="probes are never rate limited",
    ),
    pytest.param(
        {"rate_limit_per_second": SLOW, "rate_limit_burst": 1},
        [Call(FEED, key=APP), Call(FEED, key=APP), Call(EXPERIMENTS, key=ADMIN)],
        [200, 429, 200],
        id="the rate limit is per key, not per address",
    ),
    pytest.param(
        {
            "rate_limit_per_second": SLOW,
            "rate_limit_burst": 1,
            "app_api_keys": "",
            "allow_unauthenticated": True,
        },
        [Call(FEED), Call(FEED), Call(FEED, client="192.0.2.2")],
        [200, 429, 200],
        id="without app keys the app routes are open, limited per address",
    ),
    pytest.param(
        {"auth_failures_burst": 2},
        [Call(FEED)] * 3,
        [401, 401, 429],
        id="failed-auth limit per address",
    ),
    pytest.param(
        {"auth_failures_burst": 2},
        [Call(FEED, key=ADMIN), Call(EXPERIMENTS, key=APP), Call(FEED, key=UNKNOWN)],
        [403, 403, 429],
        id="wrong-kind keys count as failed authentications",
    ),
    pytest.param(
        {"auth_failures_burst": 2},
        [Call(FEED), Call(FEED), *[Call(FEED, key=APP)] * 3, Call(EXPERIMENTS, key=ADMIN)]
        + [Call(FEED)],
        [401, 401, 200, 200, 200, 200, 429],
        id="valid keys from a limited address are served and refill nothing",
    ),
    pytest.param(
        {"auth_failures_burst": 2},
        [Call(FEED), Call(FEED), Call(FEED, client="192.0.2.2")],
        [401, 401, 401],
        id="another address has its own failure bucket",
    ),
    pytest.param(
        {"auth_failures_burst": 2},
        [Call(FEED, client=f"2001:db8:1:2::{i}") for i in (1, 2, 3)],
        [401, 401, 429],
        id="addresses of one IPv6 /64 share a failure bucket",
    ),
    pytest.param(
        {"auth_failures_burst": 1},
        [Call(FEED), Call("/healthz")],
        [401, 200],
        id="probes pass a limited address",
    ),
]


@pytest.mark.parametrize(("settings", "calls", "statuses"), SEQUENCES)
def test_limits(settings: dict[str, Any], calls: list[Call], statuses: list[int]) -> None:
    through = gate(**settings)
    answers = [call(through, request) for request in calls]
    assert [a.status for a in answers] == statuses
    for answer in answers:
        if answer.status == 429:
            assert int(answer.headers["retry-after"]) >= 1
    limited = refused(through, "rate_limited") + refused(through, "auth_rate_limited")
    assert limited == statuses.count(429)


METHODS = [
    pytest.param("GET", "GET", id="GET kept"),
    pytest.param("DELETE", "DELETE", id="DELETE kept"),
    pytest.param("OPTIONS", "OPTIONS", id="OPTIONS kept"),
    pytest.param("PURGE", "other", id="PURGE is other"),
    pytest.param("PROPFIND", "other", id="PROPFIND is other"),
    pytest.param("MKCALENDAR", "other", id="MKCALENDAR is other"),
    pytest.param("get", "other", id="a lower-case method is other"),
]


@pytest.mark.parametrize(("method", "label"), METHODS)
def test_method_labels(method: str, label: str) -> None:
    through = gate()
    assert call(through, Call("/healthz", method=method)).status == 200
    labels = {
        sample.labels["method"]
        for family in through.metrics.registry.collect()
        if family.name == "recsvc_request_seconds"
        for sample in family.samples
        if sample.name == "recsvc_request_seconds_count"
    }
    assert labels == {label}


REQUEST_IDS = [
    pytest.param("req-42:a.b_c", True, id="a sane X-Request-ID is echoed"),
    pytest.param("x" * 64, True, id="64 characters are echoed"),
    pytest.param("x" * 65, False, id="65 characters are replaced"),
    pytest.param("req 42", False, id="a space is replaced"),
    pytest.param("req\u00e9", False, id="a non-ASCII letter is replaced"),
]


@pytest.mark.parametrize(("given", "echoed"), REQUEST_IDS)
def test_request_ids(given: str, echoed: bool) -> None:
    headers = (("X-Request-ID", given),)
    answer = call(gate(), Call("/healthz", headers=headers))
    assert (answer.headers["x-request-id"] == given) == echoed
    assert answer.headers["x-request-id"]


PATHS = [
    pytest.param("/v1/feed", Access.APP, id="feed is app"),
    pytest.param("/v1/events", Access.APP, id="events is app"),
    pytest.param("/v1/feed/", Access.ADMIN, id="a feed path with a slash is admin"),
    pytest.param("/v1/admin/models", Access.ADMIN, id="admin route"),
    pytest.param("/v1/users/u-1/profile", Access.ADMIN, id="profiles are admin"),
    pytest.param("/v1", Access.ADMIN, id="the /v1 root is admin"),
    pytest.param("/healthz", Access.OPEN, id="liveness is open"),
    pytest.param("/readyz", Access.OPEN, id="readiness is open"),
    pytest.param("/v10/feed", Access.OPEN, id="another prefix is not /v1"),
]


@pytest.mark.parametrize(("path", "access"), PATHS)
def test_access_for(path: str, access: Access) -> None:
    assert access_for(path) is access


BEARERS = [
    pytest.param(b"Bearer abc", "abc", id="bearer"),
    pytest.param(b"BEARER abc", "abc", id="scheme in upper case"),
    pytest.param(b"Bearer   abc  ", "abc", id="spaces around the key"),
    pytest.param(b"Basic abc", None, id="another scheme"),
    pytest.param(b"Bearer ", None, id="no key"),
    pytest.param(b"Bearer", None, id="scheme alone"),
    pytest.param(b"", None, id="empty header"),
    pytest.param(None, None, id="no header"),
]


@pytest.mark.parametrize(("header", "key"), BEARERS)
def test_bearer_token(header: bytes | None, key: str | None) -> None:
    assert bearer_token(header) == key


KEY_SETTINGS = [
    pytest.param({"app_api_keys": APP, "admin_api_keys": APP}, "share a key", id="shared key"),
    pytest.param({"app_api_keys": "short", "admin_api_keys": ADMIN}, "#1", id="short key"),
    pytest.param({"app_api_keys": "", "admin_api_keys": ADMIN}, "APP_API_KEYS", id="no app keys"),
    pytest.param({"app_api_keys": APP, "admin_api_keys": ""}, "ADMIN_API_KEYS", id="no admin keys"),
]


@pytest.mark.parametrize(("values", "named"), KEY_SETTINGS)
def test_key_settings_refused(values: dict[str, Any], named: str) -> None:
    settings: Settings = load_settings(**values)
    with pytest.raises(SettingsError, match=named):
        KeyRing.from_settings(settings)


def test_key_ring_identifies_each_kind() -> None:
    ring = KeyRing.from_settings(
        load_settings(app_api_keys=f"{APP}, {UNKNOWN}", admin_api_keys=ADMIN)
    )
    caller = ring.identify(UNKNOWN)
    assert caller is not None and caller.access is Access.APP
    assert UNKNOWN not in caller.label
    admin = ring.identify(ADMIN)
    assert admin is not None and admin.access is Access.ADMIN
    assert ring.identify(APP + "x") is None
