"""The A/B simulator on a world's clock: each simulated hour publishes the world's new videos
through the catalogue API, and users respond by the truth at that hour (news fades)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from sandbox.simulate import Behaviour, Clock, published_after, published_ms, simulate
from sandbox.world.generate import DAY_MS, World, WorldSpec, generate_world, write_world
from tests.builders import cli_environment
from tests.http.builders import publish_model, service_settings, serving

RECSVC = str(Path(sys.executable).with_name("recsvc"))
HOUR_MS = 3_600_000
SPEC = WorldSpec(users=300, videos=80, products=12, events=15_000, days=3, seed=5,
                 fresh_share=0.5, news_share=0.4, news_half_life_hours=6.0)  # fmt: skip


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(SPEC)


@pytest.fixture(scope="module")
def world_dir(world: World, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("clocked") / "world"
    write_world(world, directory)
    return directory


def recsvc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECSVC, *args], env=env, capture_output=True, text=True)


def test_a_news_video_draws_fewer_views_as_it_ages(world: World) -> None:
    behaviour = Behaviour(world.truth)
    truth = behaviour.truth
    news = int(np.flatnonzero(truth.video_news)[0])
    video, user = str(truth.video_ids[news]), str(truth.user_ids[0])
    body = {"request_id": "r1", "items": [{"video_id": video}]}
    published = int(truth.video_from_ms[news])

    def views(at_ms: int) -> int:
        rng = np.random.default_rng(0)
        draws = (behaviour.respond(user, body, rng, datetime.now(UTC), at_ms) for _ in range(4000))
        return sum(len(events) for events in draws)

    fresh, aged = views(published), views(published + 3 * 6 * HOUR_MS)  # three half-lives
    assert fresh > 100
    assert aged < fresh / 4, (fresh, aged)


def test_each_hour_publishes_its_videos_through_the_catalogue_then_serves_its_users(
    world: World,
    world_dir: Path,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = cli_environment(redis_url, tmp_path / "models")
    for variable in ("RECSVC_API_KEY", "RECSVC_ADMIN_KEY"):  # what the simulator sends
        monkeypatch.setenv(variable, env[variable])
    trained = recsvc(env, "train", "--world", str(world_dir), "--out", str(tmp_path / "factors"),
                     "--models-dir", str(tmp_path / "models"), "--factors", "8",
                     "--iterations", "5")  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    [version] = [p for p in (tmp_path / "models").iterdir() if (p / "manifest.json").exists()]
    publish_model(redis_url, version)
    # The catalogue as it stood at the start of the world's last day.
    start_ms = world.truth.end_ms - DAY_MS
    catalog = world_dir / "catalog"
    rows = [json.loads(line) for line in (catalog / "videos.jsonl").read_text().splitlines()]
    (tmp_path / "videos.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows if published_ms(r) < start_ms)
    )
    loaded = recsvc(env, "catalog", "load", "--videos", str(tmp_path / "videos.jsonl"),
                    "--products", str(catalog / "products.jsonl"))  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr
    later = published_after(catalog / "videos.jsonl", start_ms)
    assert len(later) >= 5  # the world publishes during its last day

    with serving(service_settings(redis_url, tmp_path / "models")) as client:
        for record in later:
            assert client.get(f"/v1/catalog/videos/{record['video_id']}").status_code == 404
        began = time.monotonic()
        report = simulate(
            str(client.base_url), world_dir, users_per_day=120, seed=3, concurrency=4,
            clock=Clock(start_ms, hour_seconds=0.05),
        )  # fmt: skip
        took = time.monotonic() - began
        for record in later:
            got = client.get(f"/v1/catalog/videos/{record['video_id']}")
            assert got.status_code == 200, got.text
            assert got.json()["topics"] == record["topics"]

    assert report.videos_published == len(later) and report.failed_publishes == 0
    assert report.feeds == 120 and report.failed_feeds == 0 and report.failed_event_posts == 0
    assert report.views > 0 and report.events_posted >= report.views
    assert took >= 24 * 0.05  # the clock paces the hours


def test_the_cli_names_a_clock_start_it_cannot_read(world_dir: Path, tmp_path: Path) -> None:
    ran = recsvc(cli_environment("redis://127.0.0.1:1/0", tmp_path), "simulate", "--world",
                 str(world_dir), "--clock-start", "yesterday")  # fmt: skip
    assert ran.returncode == 2
    assert "--clock-start" in ran.stderr and "'yesterday'" in ran.stderr
    assert "last-day" in ran.stderr
