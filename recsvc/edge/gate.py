"""The gate every HTTP request passes first (pure ASGI: it is on the feed's hot path).

It also times each request into `recsvc_request_seconds{route,method,status}`, by route
template (one layer fewer than a timing middleware of its own); a method outside the standard
ones is labelled `other`, so a client cannot mint label values.

In order: a request id (the client's `X-Request-ID` when it is a sane one, else a new one; set
for the logs and echoed in the response), the API key the route needs (recsvc.edge.auth), the
client's rate (recsvc.edge.limits), the body size. A request refused for its key (401, 403) takes
a token from its address's failure bucket, and is a 429 once that is empty: key guessing is
slow, while valid keys from the same address (a NAT) are never held back. A refusal is a 4xx
with a JSON `detail` that says what is wrong, counted in
`recsvc_refused_requests_total{reason}`. With `RECSVC_ACCESS_LOG=true`, one JSON line per
request: id, method, route, status, time and the caller's label (a key digest prefix, never
the key).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsvc.edge.auth import Access, Caller, KeyRing, access_for, bearer_token
from recsvc.edge.limits import RateLimiter, client_network
from recsvc.service import logs
from recsvc.service.metrics import Metrics
from recsvc.service.settings import Settings

log = logging.getLogger("recsvc.access")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Refusal(Exception):
    def __init__(
        self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers or {}


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class Gate:
    def __init__(self, app: ASGIApp, settings: Settings, keys: KeyRing, metrics: Metrics) -> None:
        self.app = app
        self.keys = keys
        self.metrics = metrics
        self.max_body = settings.max_body_bytes
        self.access_log = settings.access_log
        rate = settings.rate_limit_per_second
        self.limiter = RateLimiter(rate, settings.rate_limit_burst) if rate > 0 else None
        self.auth_failures = RateLimiter(
            settings.auth_failures_per_second, settings.auth_failures_burst
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        text = given.decode("latin-1") if given else ""
        request_id = text if REQUEST_ID_PATTERN.fullmatch(text) else logs.new_id()
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        status = [0]
        caller: Caller | None = None

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [
                    *message.get("headers", []), (b"x-request-id", request_id.encode())
                ]  # fmt: skip
            await send(message)

        try:
            caller = self._admit(scope)
            await self.app(scope, self._limited(receive), send_with_id)
        except Refusal as refusal:
            self.metrics.refused.labels(refusal.reason).inc()
            await _send_refusal(send_with_id, refusal)
        except Exception:  # the error boundary: logged with the request id, answered in JSON
            # (recsvc.service.logs writes the exception's type and frames, never its message)
            log.exception("unhandled error in %s %s", scope["method"], _template(scope))
            if status[0] == 0:
                await _send_refusal(send_with_id, Refusal(500, "error", "internal error"))
        finally:
            route_path = _template(scope)
            method = scope["method"]
            seconds = time.perf_counter() - started
            self.metrics.latency.labels(
                route_path, method if method in METHODS else "other", str(status[0])
            ).observe(seconds)
            if self.access_log:
                log.info(
                    "request",
                    extra={
                        "fields": {
                            "method": scope["method"],
                            "route": route_path,
                            "status": status[0],
                            "ms": round(seconds * 1000, 2),
                            "caller": caller.label if caller else None,
                        }
                    },
                )
            logs.request_id.reset(token)

    def _admit(self, scope: Scope) -> Caller | None:
        """The caller, once its key, rate and declared body size pass; else a Refusal."""
        needed = access_for(_route_path(scope))
        try:
            caller = self._authenticate(scope, needed)
        except Refusal:
            self._limit_failures(scope)
            raise
        if self.limiter is not None and needed is not Access.OPEN:  # probes are never limited
            client = caller.label if caller else _address(scope)
            wait = self.limiter.take(client)
            if wait > 0:
                raise Refusal(
                    429, "rate_limited",
                    f"rate limit: {self.limiter.per_second:g} requests/s per client "
                    f"(burst {self.limiter.burst}); retry after the Retry-After seconds",
                    {"Retry-After": str(max(1, round(wait + 0.5)))},
                )  # fmt: skip
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            raise _too_large(self.max_body)
        return caller

    def _authenticate(self, scope: Scope, needed: Access) -> Caller | None:
        if needed is Access.OPEN or not self.keys.needs_key(needed):
            return None
        key = bearer_token(_header(scope, b"authorization"))
        if key is None:
            raise Refusal(
                401, "unauthenticated",
                f"this route needs an {needed} API key: send 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )  # fmt: skip
        caller = self.keys.identify(key)
        if caller is None:
            raise Refusal(401, "unauthenticated", "unknown API key", {"WWW-Authenticate": "Bearer"})
        if caller.access is not needed:
            raise Refusal(
                403, "forbidden",
                f"this route needs an {needed} API key; the key given is an {caller.access} key",
            )  # fmt: skip
        return caller

    def _limit_failures(self, scope: Scope) -> None:
        """A 429 instead of a 401 or 403 once the address has used its failures' burst."""
        wait = self.auth_failures.take(_address(scope))
        if wait > 0:
            raise Refusal(
                429, "auth_rate_limited",
                "too many requests with a missing, unknown or wrong-kind API key from this "
                f"address ({self.auth_failures.per_second:g}/s, burst "
                f"{self.auth_failures.burst}); retry after the Retry-After seconds",
                {"Retry-After": str(max(1, round(wait + 0.5)))},
            ) from None  # fmt: skip

    def _limited(self, receive: Receive) -> Receive:
        """`receive`, counting the body: past the limit (a body sent without a length), 413."""
        received = 0
        limit = self.max_body

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self.metrics.refused.labels("body_too_large").inc()
                    raise HTTPException(413, _too_large(limit).detail)
            return message

        return receive_limited


def _route_path(scope: Scope) -> str:
    """The path the router matches: without the `root_path` a proxy prefix or a parent app
    mounting this one adds (authorising the raw path would let `/prefix/v1/...` pass as open)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _template(scope: Scope) -> str:
    """The route template the request matched (never the raw path: it may hold ids)."""
    route: Any = scope.get("route")
    return getattr(route, "path", "unmatched")


def _too_large(limit: int) -> Refusal:
    return Refusal(
        413, "body_too_large", f"request body over {limit} bytes (RECSVC_MAX_BODY_BYTES)"
    )


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client_network(client[0]) if client else "addr:unknown"


async def _send_refusal(send: Send, refusal: Refusal) -> None:
    body = orjson.dumps({"detail": refusal.detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in refusal.headers.items()),
    ]
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
