"""The one way to Redis for the service: a client, the key layout and a circuit breaker.

Every failure to reach Redis becomes RedisUnavailable. When Redis is down the store refuses
at once for `retry_seconds` (callers serve degraded or answer 503) instead of letting each
request wait out a timeout; the watcher's poll still probes and lifts the refusal when Redis
is back. Down means unreachable (a refused connection: at once) or slow (`breaker_failures`
timeouts within `breaker_window_seconds`): one slow call is not an outage, and must not
degrade every request of the replica.

The same code serves a single Redis and a Redis Cluster (recsvc.store.client): a batch's
scripts run once per hash slot on a Cluster, once in all on a single Redis.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis as SingleRedis
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from recsvc.contract.keys import Keys
from recsvc.contract.shards import Layouts
from recsvc.store.breaker import Breaker
from recsvc.store.client import (
    AsyncClient,
    is_cluster,
    service_client,
)

T = TypeVar("T")

log = logging.getLogger(__name__)


class RedisUnavailable(RuntimeError):
    """Redis could not be reached (or answered with an error) within the timeout."""


class BreakerOpen(RedisUnavailable):
    """Refused without calling Redis: it was found down a moment ago (see Breaker)."""


def utc_day(now: float | None = None) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def connect(url: str, timeout_ms: int, cluster: bool = False) -> AsyncClient:
    """An async client (of a Redis Cluster when `cluster`; the URL names any one node) with
    bounded timeouts and no retries: a slow Redis must not hold a request longer than the
    timeout."""
    return service_client(url, timeout_ms, cluster)


class Gateway:
    """The client, the key layout and the circuit breaker every aggregate's calls go through."""

    def __init__(
        self,
        client: AsyncClient,
        keys: Keys,
        retry_seconds: float = 1.0,
        on_error: Callable[[str, str], None] | None = None,
        *,
        breaker_failures: int = 3,
        breaker_window_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.keys = keys
        # The streams' shard layouts (recsvc.contract.shards), as last polled (ControlStore).
        self.layouts = Layouts()
        self._layouts_raw: bytes | None = None
        self.retry_seconds = retry_seconds
        self.on_error = on_error or (lambda operation, kind: None)
        self._breaker = Breaker(retry_seconds, breaker_failures, breaker_window_seconds)
        self._cluster = is_cluster(client)

    @property
    def available(self) -> bool:
        """Redis has not failed of late: the breaker is closed and no call timed out within
        its window. (The batcher gives a request whose deadline a busy CPU spent its own
        timeout only then.)"""
        return self._breaker.quiet

    async def _call(
        self, operation: str, work: Callable[[], Awaitable[T]], probe: bool = False
    ) -> T:
        if not probe and self._breaker.open:
            raise BreakerOpen(f"Redis unavailable (retrying in {self.retry_seconds}s)")
        try:
            result = await work()
        # Clients (and the open /readyz) get the kind of failure; the log gets Redis's own
        # words, which may name hosts and ports.
        except ResponseError as exc:  # Redis answered: an error, but Redis is up
            self.on_error(operation, "refused")
            log.error("Redis %s refused: %s", operation, exc)
            raise RedisUnavailable(f"Redis {operation} refused") from None
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            timeout = _timed_out(exc)
            kind = "timeout" if timeout else "unreachable"
            if self._breaker.failed(timeout):  # logged once per outage, not once per request
                log.warning(
                    "Redis %s failed (%s); degraded for %ss", operation, exc, self.retry_seconds
                )
            self.on_error(operation, kind)
            if not timeout and isinstance(self.client, SingleRedis):  # (a cluster client
                # does this per node) Idle pooled connections may lead to a server that is
                # gone: each would fail one call after Redis is back. Close them now.
                await self.client.connection_pool.disconnect(inuse_connections=False)
            raise RedisUnavailable(f"Redis {operation} failed: {kind}") from None
        # A success neither ends the window early nor clears the timeouts counted: in a
        # partial outage (writes stalled, reads answering, as under CLIENT PAUSE WRITE) the
        # poll's reads would otherwise reopen it at once, and each feed would wait a timeout
        # on a write again.
        return result

    async def ping(self) -> bool:
        return bool(await self._call("ping", self.client.ping, probe=True))


def _timed_out(exc: BaseException) -> bool:
    """A timeout (Redis slow) rather than a failure to reach it. No free connection in the
    pool within the timeout counts as one: every connection is waiting on Redis."""
    timeouts = (RedisTimeoutError, TimeoutError)
    return isinstance(exc, timeouts) or isinstance(exc.__cause__, timeouts)


def new_revision() -> str:
    """A catalogue revision token. Random rather than a counter: a Redis that lost its data
    and was reloaded must not repeat a revision a replica already holds."""
    return uuid.uuid4().hex


def int_or_none(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


def str_or_none(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw
