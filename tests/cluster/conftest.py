"""Fixtures of the Redis Cluster tests: a private cluster of three masters (real redis-server
processes on loopback, never port 6379) for the session, emptied before each test; the planted
model; and clients of the cluster as the service and the jobs make them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from recsvc.admin.loaders import load_catalog
from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.keys import Keys
from recsvc.registry.publish import PublishReport, publish
from recsvc.store.client import async_client
from sandbox.embedded_redis import EmbeddedCluster
from tests.http import planted
from tests.http.builders import PLANTED_VERSION

KEYS = Keys()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedCluster]:
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("cluster"))
    assert 6379 not in cluster.ports
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: EmbeddedCluster) -> str:
    """A node's URL; every master emptied first."""
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    planted.write_planted_model(directory, PLANTED_VERSION)
    return directory


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
