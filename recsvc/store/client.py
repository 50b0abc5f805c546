"""Redis clients, for a single Redis or a Redis Cluster, made in one place; and the one thing
the two differ in for this service: which keys may go in one script (one hash slot).

`RECSVC_REDIS_CLUSTER=true` selects the Cluster client (redis-py's RedisCluster, which
discovers every node from the one the URL names). A single Redis is a cluster of one slot
group: a batch of users is one script call, one round trip. On a Cluster the batch is split
per hash slot (a script's declared keys must share one) and the calls are sent as one
pipeline: one round trip per node, the nodes concurrently, the replies in the calls' order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

import redis
import redis.asyncio as aioredis
import redis.cluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

AsyncClient: TypeAlias = aioredis.Redis | AsyncRedisCluster
SyncClient: TypeAlias = redis.Redis | redis.cluster.RedisCluster
# A Cluster client also raises RedisClusterException (no node reachable, a slot not covered),
# which is not a RedisError.
REDIS_ERRORS = (RedisError, RedisClusterException)
SERVICE_CONNECTIONS = 64  # per node: the service's pool (a single Redis waits for a free one)
CLUSTER_SERVICE_CONNECTIONS = 256  # per node: a Cluster client fails at once when none is free


def async_client(url: str, cluster: bool = False, timeout: float = 30.0) -> AsyncClient:
    """A client for commands and jobs (redis-py's default retries)."""
    if cluster:
        return AsyncRedisCluster.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return aioredis.Redis.from_url(url, socket_timeout=timeout)


def sync_client(url: str, cluster: bool = False, timeout: float = 30.0) -> SyncClient:
    """A synchronous client for commands and jobs (the drain, the nightly run's lock)."""
    if cluster:
        return redis.cluster.RedisCluster.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    return redis.Redis.from_url(url, socket_timeout=timeout)


def service_client(url: str, timeout_ms: int, cluster: bool = False) -> AsyncClient:
    """The service's client: bounded timeouts and no retries, so that a slow Redis never holds
    a request longer than the timeout."""
    seconds = timeout_ms / 1000
    if cluster:
        return AsyncRedisCluster.from_url(
            url,
            socket_timeout=seconds,
            socket_connect_timeout=seconds,
            retry=Retry(NoBackoff(), 0),
            max_connections=CLUSTER_SERVICE_CONNECTIONS,
        )
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        socket_timeout=seconds,
        socket_connect_timeout=seconds,
        retry=Retry(NoBackoff(), 0),
        max_connections=SERVICE_CONNECTIONS,
        timeout=seconds,  # wait this long for a free connection, then fail like Redis
    )
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: aclose() closes it


async def transaction(client: AsyncClient) -> Pipeline | ClusterPipeline:
    """A MULTI/EXEC pipeline (on a Cluster, every key queued must be in one slot).

    A Cluster client is made ready (it discovers the nodes) first, in the running event loop:
    its transaction pipeline queues each command through a private event loop in a thread,
    which would otherwise open the client's connections there, to die with that loop."""
    if isinstance(client, AsyncRedisCluster):
        await client.initialize()
    return client.pipeline(transaction=True)


def is_cluster(client: AsyncClient | SyncClient) -> bool:
    return isinstance(client, AsyncRedisCluster | redis.cluster.RedisCluster)


def slot_groups(client: AsyncClient | SyncClient, keys: Sequence[str]) -> list[list[int]]:
    """The positions of `keys` grouped by hash slot (groups in order of first appearance);
    on a single Redis, one group of them all."""
    if not keys:
        return []
    if not is_cluster(client):
        return [list(range(len(keys)))]
    groups: dict[int, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(position)
    return list(groups.values())


async def run_per_slot(
    client: AsyncClient, script: AsyncScript, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    """Run `script` once per (keys, args), each call's keys in one slot; the replies in order.

    One call is sent as is. Several go in one pipeline; those a node refuses because it has
    not seen the script yet (NOSCRIPT) are sent again once it is loaded on every primary, and
    only those: the others have already run."""
    if len(calls) == 1:
        keys, args = calls[0]
        return [await script(keys=keys, args=args)]
    replies = await _pipelined(client, script, calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await client.script_load(script.script)
        again = await _pipelined(client, script, [calls[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


async def _pipelined(
    client: AsyncClient, script: AsyncScript, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        # Not pipe.evalsha(), which a Cluster pipeline blocks: the client routes an EVALSHA
        # by its declared keys, which share one slot here.
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    return list(await pipe.execute(raise_on_error=False))


async def used_memory(client: AsyncClient) -> int:
    """Redis's `used_memory`, summed over every primary of a Cluster."""
    if isinstance(client, AsyncRedisCluster):
        info: Any = await client.info("memory", target_nodes=AsyncRedisCluster.PRIMARIES)
        return sum(int(node["used_memory"]) for node in info.values())
    return int((await client.info("memory"))["used_memory"])
