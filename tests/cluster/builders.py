"""What the Redis Cluster tests build on: the planted model published and its catalogue loaded
into a cluster, a plain client of each master, and which master holds a key. The fixtures
(the cluster itself) are in conftest.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis

from recsvc.admin.loaders import load_catalog
from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.keys import Keys
from recsvc.registry.publish import PublishReport, publish
from recsvc.store.client import async_client
from sandbox.embedded_redis import EmbeddedCluster
from tests.http import planted

KEYS = Keys()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def publish_to_cluster(url: str, directory: Path, challenger: bool = False) -> PublishReport:
    async def work() -> PublishReport:
        client = async_client(url, cluster=True)
        try:
            return await publish(client, KEYS, directory, 3600, challenger=challenger)
        finally:
            await client.aclose()

    return run(work())


def load_catalog_to_cluster(url: str) -> None:
    async def work() -> None:
        client = async_client(url, cluster=True)
        try:
            await load_catalog(
                client,
                KEYS,
                [VideoRecord.model_validate(r) for r in planted.video_records()],
                [ProductRecord.model_validate(r) for r in planted.product_records()],
            )
        finally:
            await client.aclose()

    run(work())


@contextmanager
def masters(cluster: EmbeddedCluster) -> Iterator[list[redis.Redis]]:
    """A plain client of each master (to look at what each one holds)."""
    clients = [redis.Redis(port=port) for port in cluster.ports]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def keyslot(cluster: EmbeddedCluster, key: str) -> int:
    with redis.Redis(port=cluster.ports[0]) as client:
        return int(client.execute_command("CLUSTER KEYSLOT", key))


def node_of(cluster: EmbeddedCluster, key: str) -> redis.Redis:
    """The master that holds `key`'s slot."""
    slot = keyslot(cluster, key)
    with redis.Redis(port=cluster.ports[0]) as client:
        for first, last, primary, *_ in client.execute_command("CLUSTER SLOTS"):
            if first <= slot <= last:
                return redis.Redis(port=int(primary[1]))
    raise AssertionError(f"no master serves slot {slot}")
