"""The connection cap `recsvc serve` derives from the descriptor limit, and the log of the
connections it closes."""

from __future__ import annotations

import asyncio
import logging
import resource

import pytest

from recsvc.edge import server
from recsvc.edge.server import MIN_CONNECTIONS, connection_limit, raise_descriptor_limit
from recsvc.service.metrics import Metrics
from recsvc.service.settings import load_settings


def test_the_cap_leaves_descriptors_for_redis_files_and_logs() -> None:
    single = load_settings(redis_url="redis://127.0.0.1:1/0")
    cluster = load_settings(redis_url="redis://127.0.0.1:1/0", redis_cluster=True)
    assert connection_limit(single, 1024) == 1024 - 64 - 64  # Redis's pool, files and logs
    assert connection_limit(cluster, 1024) == 1024 - 3 * 256 - 64  # three masters' pools
    assert connection_limit(cluster, 512) == MIN_CONNECTIONS  # too few descriptors: a few
    assert connection_limit(single, 1_048_576) == 1_048_576 - 128


def test_a_configured_cap_is_used_as_it_is() -> None:
    settings = load_settings(redis_url="redis://127.0.0.1:1/0", max_connections=300)
    assert connection_limit(settings, 1024) == 300


def test_the_soft_descriptor_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        raised = raise_descriptor_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == raised
        assert raised == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Counts(logging.Handler):
    """The `connections` figure of each line logged."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: list[int] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts.append(record.fields["connections"])  # type: ignore[attr-defined]


def test_closures_are_logged_at_once_then_once_an_interval_with_their_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "LOG_INTERVAL_SECONDS", 0.2)
    metrics = Metrics()
    guard = server.ConnectionGuard(load_settings(redis_url="redis://127.0.0.1:1/0"), metrics, 1)
    lines = Counts()

    async def close_some() -> list[list[int]]:
        loop = asyncio.get_running_loop()
        guard.closed("header_timeout", loop.time())
        await asyncio.sleep(0.05)
        seen = [list(lines.counts)]  # at once
        for _ in range(4):
            guard.closed("header_timeout", loop.time())
        await asyncio.sleep(0.05)
        seen.append(list(lines.counts))  # nothing more within the interval
        await asyncio.sleep(0.3)
        return [*seen, list(lines.counts)]  # at its end, the four since

    logging.getLogger("recsvc.edge.server").addHandler(lines)
    try:
        assert asyncio.run(close_some()) == [[1], [1], [1, 4]]
    finally:
        logging.getLogger("recsvc.edge.server").removeHandler(lines)
    closed = {"reason": "header_timeout"}
    assert metrics.registry.get_sample_value("recsvc_connections_closed_total", closed) == 5
