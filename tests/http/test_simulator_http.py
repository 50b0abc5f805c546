"""The A/B simulator as a client: it honours Retry-After on 429 and 503 (and so gets through
a rate limit it would otherwise fail), counts every failure by what and why, and says how
far it is while it runs. A real service on loopback with a real Redis."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.simulate import SimulationReport, simulate
from sandbox.world.generate import WorldSpec, generate_world, write_world
from tests.builders import ADMIN_KEY, APP_KEY
from tests.http.builders import (
    PLANTED_VERSION,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)

USERS = 40


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("simulator") / "world"
    spec = WorldSpec(users=USERS, videos=20, products=5, events=2_000, days=2, seed=2)
    write_world(generate_world(spec), directory)
    return directory


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECSVC_API_KEY", APP_KEY)
    monkeypatch.setenv("RECSVC_ADMIN_KEY", ADMIN_KEY)


def test_a_rate_limited_simulation_waits_as_told_and_loses_no_feed(
    world: Path, redis_url: str, models_dir: Path
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    heard: list[int] = []
    # 25 requests a second for one client, 5 at once: 40 feeds and their events take ~3 s
    limited = service_settings(
        redis_url, models_dir, rate_limit_per_second=25.0, rate_limit_burst=5
    )
    with serving(limited) as client:
        report = simulate(str(client.base_url), world, users_per_day=USERS, concurrency=4,
                          progress=lambda r: heard.append(r.feeds + r.failed_feeds),
                          progress_seconds=0.5)  # fmt: skip
    assert report.retries > 0  # it was told to wait, and did
    assert report.feeds == USERS and report.failed_feeds == 0 and report.failures == {}
    assert report.expected_feeds == USERS
    assert heard and heard == sorted(heard) and heard[-1] <= USERS  # progress, as it went


def test_failures_are_counted_by_what_and_why(world: Path, tmp_path: Path) -> None:
    report: SimulationReport = simulate("http://127.0.0.1:9", world, users_per_day=5)
    assert report.feeds == 0 and report.failed_feeds == 5
    assert report.failures == {"feed: unreachable": 5}
