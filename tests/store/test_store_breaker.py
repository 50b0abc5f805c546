"""When the feature store stops calling Redis (its breaker), against a real Redis: at once
when Redis cannot be reached; only after `breaker_failures` timeouts within the window when
it is slow. One slow call (one user's big state) must not degrade every request of the
replica (issue 13, defect 1). `CLIENT PAUSE` makes the timeouts: it holds every command
without closing a connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis

from recsvc.contract.keys import Keys
from recsvc.contract.user_state import UserState
from recsvc.store.gateway import RedisUnavailable, connect, utc_day
from recsvc.store.state import FeatureStore
from sandbox.embedded_redis import free_port

pytestmark = pytest.mark.serial  # timed under load: scripts/test runs it alone

TIMEOUT_MS = 50
RETRY_SECONDS = 5.0  # longer than any test: a breaker that opened stays open


@contextmanager
def paused(redis_url: str, seconds: float) -> Iterator[None]:
    """Every command held for `seconds` (which the block must not outlast); then over."""
    with redis.Redis.from_url(redis_url, socket_timeout=seconds + 5) as client:
        started = time.monotonic()
        client.execute_command("CLIENT", "PAUSE", round(seconds * 1000), "ALL")
        yield
        assert time.monotonic() - started < seconds, "the pause ended too early for the test"
        client.ping()  # answered once the pause is over (Redis 7.0 pauses UNPAUSE too)


def with_store(url: str, test: Callable[[FeatureStore, list[str]], Awaitable[None]], **kw: Any):
    """Run `test(store, errors)` with a store of `url`; `errors` lists each failure's kind."""

    async def main() -> None:
        errors: list[str] = []
        client = connect(url, TIMEOUT_MS)
        store = FeatureStore(
            client, Keys(), RETRY_SECONDS, on_error=lambda _, kind: errors.append(kind), **kw
        )
        try:
            await test(store, errors)
        finally:
            await client.aclose()

    asyncio.run(main())


async def read(store: FeatureStore) -> list[UserState]:
    return await store.user_states(["u-1"], None, utc_day(), daily_cap=3)


async def fails(store: FeatureStore) -> str:
    """Why a read failed: "timeout" or "unreachable" (Redis was called), or "refused" (the
    store did not call it: "retrying in ...")."""
    with pytest.raises(RedisUnavailable) as raised:
        await read(store)
    return "refused" if "retrying" in str(raised.value) else str(raised.value)


def test_one_timeout_does_not_stop_the_store(redis_url: str) -> None:
    async def test(store: FeatureStore, errors: list[str]) -> None:
        with paused(redis_url, 0.3):
            assert "timeout" in await fails(store)
        assert await read(store) == [UserState(capped=frozenset())]  # called, and answered
        assert errors == ["timeout"]
        # Yet not trusted as a quiet Redis (the batcher waits no longer than a deadline).
        assert not store.available

    with_store(redis_url, test)


def test_timeouts_up_to_the_limit_within_the_window_stop_the_store(redis_url: str) -> None:
    async def test(store: FeatureStore, errors: list[str]) -> None:
        with paused(redis_url, 0.5):
            for _ in range(3):
                assert "timeout" in await fails(store)
        started = time.monotonic()
        assert await fails(store) == "refused"  # refused without calling Redis
        assert time.monotonic() - started < TIMEOUT_MS / 1000
        assert errors == ["timeout"] * 3
        # A success (the poll's probe, under CLIENT PAUSE WRITE say) does not reopen it early.
        assert await store.ping()
        assert await fails(store) == "refused"

    with_store(redis_url, test)


def test_timeouts_further_apart_than_the_window_do_not_stop_the_store(redis_url: str) -> None:
    async def test(store: FeatureStore, errors: list[str]) -> None:
        with paused(redis_url, 2.0):
            for _ in range(4):
                assert "timeout" in await fails(store)
                await asyncio.sleep(0.25)
        assert await read(store)
        assert errors == ["timeout"] * 4

    with_store(redis_url, test, breaker_failures=2, breaker_window_seconds=0.2)


def test_a_redis_that_refuses_connections_stops_the_store_at_once() -> None:
    async def test(store: FeatureStore, errors: list[str]) -> None:
        assert "unreachable" in await fails(store)
        assert await fails(store) == "refused"
        assert errors == ["unreachable"]

    with_store(f"redis://127.0.0.1:{free_port()}/0", test)  # nothing listens there
