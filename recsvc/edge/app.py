"""Assemble the FastAPI app: settings, Redis, the model watcher, one router per resource."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from starlette.routing import Match

from recsvc import __version__
from recsvc.contract.keys import Keys
from recsvc.edge import console
from recsvc.edge.api_docs import document_security
from recsvc.edge.auth import KeyRing
from recsvc.edge.deps import Runtime
from recsvc.edge.gate import Gate
from recsvc.edge.offline_docs import install_offline_docs
from recsvc.edge.routes import (
    admin,
    audit,
    campaigns,
    catalog,
    events,
    experiments,
    explain,
    feed,
    health,
    users,
)
from recsvc.service import logs
from recsvc.service.batcher import FeedBatcher
from recsvc.service.metrics import Metrics
from recsvc.service.settings import Settings, SettingsError
from recsvc.service.snapshot import Serving
from recsvc.store import durability
from recsvc.store.durability import Durability
from recsvc.store.gateway import RedisUnavailable, connect
from recsvc.store.state import FeatureStore

log = logging.getLogger("recsvc.edge.app")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# Allocations between two collections of the youngest generation (Python's default: 700).


async def watch_redis(runtime: Runtime, interval: float, stop: asyncio.Event) -> None:
    """Keep the stream gauges current (how much waits in Redis for the nightly drain) and
    whether Redis is configured to keep what it holds (logged when that changes)."""
    store, metrics = runtime.store, runtime.metrics
    while not stop.is_set():
        model = runtime.serving.snapshot.model
        metrics.trending_live.set(1 if model is not None and model.trending_live else 0)
        metrics.trends_read.set(runtime.serving.trends.read_unix)
        rules = runtime.serving.snapshot.rules
        learned = sum(1 for n in rules.fresh.viewers if n) if rules is not None else 0
        metrics.fresh_videos.labels("collaborative").set(learned)
        metrics.fresh_videos.labels("metadata").set(len(rules.fresh) - learned if rules else 0)
        try:
            for stream, entries in (await store.stream_stats()).items():
                metrics.streams.labels(stream).set(entries)
        except RedisUnavailable:
            pass  # counted as a Redis error by the store; the gauges keep their last value
        found: Durability | None
        try:
            found = await durability.check(store.client)
        except ResponseError:
            found = durability.UNKNOWN
        except (RedisError, RedisClusterException, OSError):
            found = runtime.durability  # Redis down: nothing new is known
        if found is not None and found != runtime.durability:
            for problem in found.problems:
                log.warning("%s (see docs/deployment.md, Redis)", problem)
            for risk in durability.RISKS:
                metrics.redis_at_risk.labels(risk).set(1 if risk in found.risks else 0)
            runtime.durability = found
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 whose Allow names every method of the path: Starlette's names only those of the
    first route that matched it (a path with a GET and a PUT route would allow one)."""
    routes = request.app.router.routes
    allowed = [
        method for method in HTTP_METHODS
        if any(r.matches({**request.scope, "method": method})[0] is Match.FULL for r in routes)
    ]  # fmt: skip
    detail = getattr(exc, "detail", "Method Not Allowed")
    return JSONResponse({"detail": detail}, 405, headers={"Allow": ", ".join(allowed)})


async def invalid_request(request: Request, exc: Exception) -> Response:
    """422 naming each problem by `loc`, `msg` and `type`. The offending input is not echoed:
    it may be a profile's contents, or a number JSON cannot carry (1e999 reads as inf)."""
    problems = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in problems]
    return JSONResponse({"detail": detail}, 422)


def create_app(settings: Settings) -> FastAPI:
    if settings.redis_url is None:
        raise SettingsError("RECSVC_REDIS_URL: not set (the Redis the service reads and writes)")
    keys = KeyRing.from_settings(settings)  # no keys and no explicit "open": SettingsError
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure(settings.log_json)
        if open_levels := keys.open_levels():
            log.warning(
                "RECSVC_ALLOW_UNAUTHENTICATED: %s routes are served WITHOUT an API key",
                " and ".join(open_levels),
            )
        client = connect(
            settings.redis_url or "", settings.redis_timeout_ms, settings.redis_cluster
        )
        store = FeatureStore(
            client,
            Keys(settings.redis_prefix),
            settings.redis_retry_seconds,
            on_error=lambda operation, kind: metrics.redis_errors.labels(operation, kind).inc(),
            breaker_failures=settings.redis_breaker_failures,
            breaker_window_seconds=settings.redis_breaker_window_seconds,
        )
        serving = Serving(
            store,
            settings.models_dir,
            on_reload=metrics.model_loaded,
            fresh_min_viewers=settings.fresh_min_viewers,
        )
        await serving.start()
        batcher = FeedBatcher(serving, store, settings, metrics=metrics)
        runtime = Runtime(settings, store, serving, metrics, batcher, surfaces=settings.surface_map)
        app.state.runtime = runtime
        stop = asyncio.Event()
        watcher = asyncio.create_task(serving.watch(settings.poll_seconds, stop))
        gauges = asyncio.create_task(watch_redis(runtime, settings.poll_seconds, stop))
        gc.freeze()  # start-up objects (model, catalogue, app) leave the collector's scans
        try:
            yield
        finally:
            stop.set()
            await watcher
            await gauges
            await client.aclose()

    app = FastAPI(
        title="recsvc",
        version=__version__,
        summary="Video feeds with compliant product attach for financial apps.",
        lifespan=lifespan,
        docs_url=None,  # the pages below, with their assets served from here, not a CDN
        redoc_url=None,
    )
    install_offline_docs(app, title="recsvc")
    routers = (
        feed,
        events,
        explain,
        users,
        catalog,
        experiments,
        campaigns,
        admin,
        audit,
        health,
        console,
    )
    for module in routers:
        app.include_router(module.router)
    app.add_exception_handler(405, method_not_allowed)
    app.add_exception_handler(RequestValidationError, invalid_request)
    document_security(app, keys)
    app.add_middleware(Gate, settings=settings, keys=keys, metrics=metrics)
    app.state.metrics = metrics  # the HTTP server's connection counts (recsvc serve) land here
    return app
