"""What the tests through a real service build on: the planted model published into a private
real Redis, its catalogue, the app served by uvicorn on loopback, keys, event bodies and a
polling wait. Fixtures that use them are in conftest.py."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
import uvicorn

from recsvc.admin.loaders import load_catalog
from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.keys import Keys
from recsvc.edge.app import create_app
from recsvc.edge.auth import Access, access_for
from recsvc.registry.publish import PublishReport, publish
from recsvc.service.settings import Settings, load_settings
from sandbox.embedded_redis import EmbeddedRedis, free_port
from tests.builders import ADMIN_KEY, APP_KEY, auth_header
from tests.http import planted

PLANTED_VERSION = "20260101T000000000000Z-planted"
SECOND_VERSION = "20260102T000000000000Z-second"  # a second planted model, where a test needs two


@contextmanager
def redis_stopped(server: EmbeddedRedis) -> Iterator[None]:
    """Stop the session's Redis; whatever happens, it runs again (empty) afterwards."""
    server.stop()
    try:
        yield
    finally:
        if server.process is None:
            server.start()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Whether `check` holds within `timeout` seconds (replicas poll every 0.2 s in tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def event_body(
    user_id: str, item_id: str, action: str, item_type: str = "video", **fields: Any
) -> dict[str, Any]:
    """One valid event for POST /v1/events, with a fresh id, time-stamped now."""
    return {
        "event_id": uuid.uuid4().hex,
        "ts": datetime.now(UTC).isoformat(),
        "user_id": user_id,
        "item_id": item_id,
        "item_type": item_type,
        "action": action,
        **fields,
    }


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def publish_model(
    url: str, directory: Path, grace_seconds: int = 3600, challenger: bool = False
) -> PublishReport:
    async def work() -> PublishReport:
        client = aioredis.Redis.from_url(url)
        try:
            return await publish(client, Keys(), directory, grace_seconds, challenger=challenger)
        finally:
            await client.aclose()

    return run(work())


def load_planted_catalog(url: str) -> None:
    async def work() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            await load_catalog(
                client,
                Keys(),
                [VideoRecord.model_validate(r) for r in planted.video_records()],
                [ProductRecord.model_validate(r) for r in planted.product_records()],
            )
        finally:
            await client.aclose()

    run(work())


class TestKeys(httpx.Auth):
    """Sends the key each route needs, as the app backend and an operator would."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if "authorization" not in request.headers:
            needed = access_for(request.url.path)
            if needed is not Access.OPEN:
                key = ADMIN_KEY if needed is Access.ADMIN else APP_KEY
                request.headers.update(auth_header(key))
        yield request


@contextmanager
def serving(settings: Settings, root_path: str = "") -> Iterator[httpx.Client]:
    """The real app under uvicorn on a free loopback port, in a thread; an HTTP client to it
    that sends the test API keys (the app key on the app's routes, the admin key on the
    others) unless a request carries its own Authorization header."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        root_path=root_path,  # as behind a proxy that strips a path prefix
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the service did not start")
        time.sleep(0.01)
    try:
        base_url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base_url, timeout=10, auth=TestKeys()) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(10)


def service_settings(url: str, models_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": url,
        "models_dir": models_dir,
        "poll_seconds": 0.2,
        "redis_timeout_ms": 200,
        "redis_retry_seconds": 0.2,
        "log_json": False,
        "app_api_keys": APP_KEY,
        "admin_api_keys": ADMIN_KEY,
    }
    values.update(overrides)
    return load_settings(**values)


def publish_challenger(url: str, directory: Path, grace_seconds: int = 3600) -> PublishReport:
    """Publish a model as the challenger (beside the current one, for an experiment)."""
    return publish_model(url, directory, grace_seconds, challenger=True)
