"""The HTTP server `recsvc serve` runs: uvicorn's httptools protocol with the limits it lacks.

uvicorn never times out a request whose headers or body stop arriving, and accepts
connections until the process runs out of descriptors (then every request fails). Here:

- headers: a connection that has not sent a request's headers within
  RECSVC_HEADER_TIMEOUT_SECONDS of opening, or of the previous response's end (then never
  less than RECSVC_KEEP_ALIVE_SECONDS, so an idle kept-alive connection is the keep-alive
  timeout's to close), is closed;
- body: a request whose body has not fully arrived within RECSVC_BODY_TIMEOUT_SECONDS of its
  headers is answered 408 and closed;
- connections: past RECSVC_MAX_CONNECTIONS open in this process (0: the descriptor limit,
  raised to its hard limit at start-up, less a reserve for Redis, files and logs), a new
  connection is closed at once.

Each closure is counted in `recsvc_connections_closed_total{reason}` and logged at most once
per reason a minute. The checks cost no timer per request: one timer per connection wakes at
the next possible deadline and compares it with the clock read at each phase change. A failed
start-up or shutdown is logged by type and frames, as every exception is (recsvc.service.logs), not
as the traceback text uvicorn would log.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import resource
import sys
from typing import ClassVar, cast

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.lifespan.on import LifespanOn, LifespanSendMessage
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from recsvc.service.metrics import Metrics
from recsvc.service.settings import Settings
from recsvc.store.client import CLUSTER_SERVICE_CONNECTIONS, SERVICE_CONNECTIONS

log = logging.getLogger("recsvc.edge.server")
LOG_INTERVAL_SECONDS = 60.0
CLUSTER_NODES = 3  # a Cluster has at least three masters; more: set RECSVC_MAX_CONNECTIONS
OTHER_DESCRIPTORS = 64  # model and catalogue files, logs, the listener, the event loop's own
MIN_CONNECTIONS = 64  # under a descriptor limit too low for the reserve: serve a few anyway
LIFESPAN_FAILURES = {
    "lifespan.startup.failed": "Exception in the application's start-up",
    "lifespan.shutdown.failed": "Exception in the application's shutdown",
}
SETTING = {
    "header_timeout": "RECSVC_HEADER_TIMEOUT_SECONDS",
    "body_timeout": "RECSVC_BODY_TIMEOUT_SECONDS",
    "over_limit": "RECSVC_MAX_CONNECTIONS",
}


class ConnectionGuard:
    """This process's connection limits, counts and the rate-limited log of closures."""

    def __init__(self, settings: Settings, metrics: Metrics, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self.header_timeout = settings.header_timeout_seconds
        self.idle_header_timeout = max(settings.header_timeout_seconds, settings.keep_alive_seconds)
        self.body_timeout = settings.body_timeout_seconds
        self._gauge = metrics.connections
        self._closed = {reason: metrics.connections_closed.labels(reason) for reason in SETTING}
        self._unlogged = dict.fromkeys(SETTING, 0)
        self._logged_at = dict.fromkeys(SETTING, -math.inf)
        detail = f"request body not received within {self.body_timeout:g}s"
        body = orjson.dumps({"detail": detail})
        self.timeout_response = (
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )

    def admit(self, now: float) -> bool:
        if self.open >= self.limit:
            self.closed("over_limit", now)
            return False
        self.open += 1
        self._gauge.inc()
        return True

    def release(self) -> None:
        self.open -= 1
        self._gauge.dec()

    def closed(self, reason: str, now: float) -> None:
        """Count a closure; log it at once, or with the others at the end of the interval."""
        self._closed[reason].inc()
        self._unlogged[reason] += 1
        if self._unlogged[reason] == 1:  # else a line is already due
            wait = self._logged_at[reason] + LOG_INTERVAL_SECONDS - now
            asyncio.get_running_loop().call_later(max(wait, 0), self._log, reason)

    def _log(self, reason: str) -> None:
        count = self._unlogged[reason]
        log.warning(
            "%d connection(s) closed by the server: %s (%s)", count, reason, SETTING[reason],
            extra={"fields": {"reason": reason, "connections": count, "open": self.open}},
        )  # fmt: skip
        self._unlogged[reason] = 0
        self._logged_at[reason] = asyncio.get_running_loop().time()


class GuardedProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header and body timeouts and the connection cap."""

    guard: ClassVar[ConnectionGuard]
    _admitted = False
    _timer: asyncio.TimerHandle | None = None
    _since = 0.0  # when the current phase (awaiting headers, or a body) began

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        now = self.loop.time()
        if not self.guard.admit(now):
            transport.close()
            return
        self._admitted = True
        super().connection_made(transport)
        self._since = now
        self._timer = self.loop.call_later(self.guard.header_timeout, self._check)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._admitted:
            return
        self.guard.release()
        if self._timer is not None:
            self._timer.cancel()
        super().connection_lost(exc)

    def _unsupported_upgrade_warning(self) -> None:
        """Silent: the request is served as plain HTTP (no WebSockets here), and two warnings
        per request would let any client flood the log."""

    def on_headers_complete(self) -> None:
        self._since = self.loop.time()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._since = self.loop.time()

    def _check(self) -> None:
        """Close the connection if the phase it is in has run out; else wake again when it
        could next run out."""
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        cycle, guard = self.cycle, self.guard
        reason = None
        deadline = now + guard.header_timeout  # a request being served: nothing to time
        if cycle is None or cycle.response_complete:
            if self.timeout_keep_alive_task is None:  # else idle: keep-alive's to close
                reason = "header_timeout"
                wait = guard.header_timeout if cycle is None else guard.idle_header_timeout
                deadline = self._since + wait
        elif cycle.more_body and not cycle.response_started:
            reason, deadline = "body_timeout", self._since + guard.body_timeout
        if reason is None or now < deadline:
            self._timer = self.loop.call_later(max(deadline - now, 0.001), self._check)
            return
        guard.closed(reason, now)
        if reason == "body_timeout" and cycle is not None:
            cycle.disconnected = True  # the app's receive() says so, its answer is dropped
            cycle.message_event.set()
            self.transport.write(guard.timeout_response)
        self.transport.close()


class Lifespan(LifespanOn):
    """uvicorn's lifespan, except that a failure is logged by the exception's type and frames:
    uvicorn logs the text Starlette sends, a formatted traceback with every message in it."""

    async def send(self, message: LifespanSendMessage) -> None:
        failure = LIFESPAN_FAILURES.get(message["type"])
        if failure is not None:
            # sent while Starlette handles the exception: it is the one being handled
            self.logger.error(failure, exc_info=sys.exc_info()[1])
            cast(dict[str, str], message)["message"] = ""  # uvicorn logs it when not empty
        await super().send(message)


def protocol_for(guard: ConnectionGuard) -> type[GuardedProtocol]:
    """The protocol class uvicorn instantiates per connection, bound to this process's guard."""
    return cast(type[GuardedProtocol], type("Protocol", (GuardedProtocol,), {"guard": guard}))


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (the default soft 1,024 is what a few
    hundred slow clients exhaust); return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("RLIMIT_NOFILE stays at %d: %s", soft, exc)
    return soft


def connection_limit(settings: Settings, descriptors: int) -> int:
    """RECSVC_MAX_CONNECTIONS, or (0) the descriptors less a reserve for Redis's pool (every
    node's, for a Cluster) and the files and sockets the process needs besides."""
    if settings.max_connections:
        return settings.max_connections
    if settings.redis_cluster:
        redis = CLUSTER_SERVICE_CONNECTIONS * CLUSTER_NODES
    else:
        redis = SERVICE_CONNECTIONS
    return max(descriptors - redis - OTHER_DESCRIPTORS, MIN_CONNECTIONS)


def build(app: FastAPI, settings: Settings, host: str, port: int, limit: int) -> uvicorn.Server:
    """The uvicorn server for `app` (from recsvc.edge.app.create_app: its Metrics count the
    connections). Logging is left as recsvc.service.logs configured it."""
    guard = ConnectionGuard(settings, app.state.metrics, limit)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(guard),
        ws="none",  # no WebSocket routes: an upgrade is not switched to another protocol
        lifespan="on",
        log_config=None,  # keep recsvc.service.logs' handlers: every line JSON from the first
        log_level="info",
        access_log=False,  # the service logs each request itself (RECSVC_ACCESS_LOG, JSON)
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]  # a float works
    )
    config.load()
    config.lifespan_class = Lifespan  # (load() sets uvicorn's own, from lifespan="on")
    log.info(
        "HTTP limits: %d open connections, headers within %gs, a body within %gs, "
        "keep-alive %gs",
        limit, guard.header_timeout, guard.body_timeout, settings.keep_alive_seconds,
    )  # fmt: skip
    return uvicorn.Server(config)


# A feed allocates a few hundred containers (its page's items and cards), nearly all freed
# with its response: at 700 the collector ran every few feeds, scanned each live page and
# took about 4% of the CPU under bench/serve.py's feed load; at 10,000 most of them are gone
# before it runs. It holds at most that many more objects in memory, a few MB.
# Set for the `recsvc serve` process only: an app embedded in another process (the tests run
# it in theirs) leaves that process's collector as it is.
YOUNG_COLLECTION_THRESHOLD = 10_000


def run(app: FastAPI, settings: Settings, host: str, port: int) -> None:
    """Serve `app` until SIGTERM or SIGINT (one process; scale with replicas)."""
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
    limit = connection_limit(settings, raise_descriptor_limit())
    server = build(app, settings, host, port, limit)
    server.run()
    if not server.started:  # as uvicorn.run: a start-up that failed is a failed command
        sys.exit(STARTUP_FAILURE)
