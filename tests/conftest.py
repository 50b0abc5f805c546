"""Fixtures shared by every test directory: a private, real Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from sandbox.embedded_redis import EmbeddedRedis


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the static checks the session will run (tests/test_lint.py) in the background."""
    from tests import test_lint

    names = [
        item.callspec.params["name"]
        for item in session.items
        if item.nodeid.startswith("tests/test_lint.py::") and hasattr(item, "callspec")
    ]
    session.config.static_checks = {name: test_lint.start(name) for name in names}  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    for process in getattr(config, "static_checks", {}).values():  # checks never waited for
        process.kill()
        process.communicate()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    """One private redis-server for the session, on a free port (never 6379)."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    assert server.port != 6379
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The private Redis, emptied before each test (restarted if a test stopped it)."""
    if redis_server.process is None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url
