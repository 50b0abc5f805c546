"""Fixtures of the Redis Cluster tests: a private cluster of three masters (real redis-server
processes on loopback, never port 6379) for the session, emptied before each test; the planted
model. What the tests build on is in tests/cluster/builders.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.embedded_redis import EmbeddedCluster
from tests.http import planted
from tests.http.builders import PLANTED_VERSION


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
