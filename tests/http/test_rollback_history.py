"""Rollback walks back through history: each `recsvc rollback` goes one step further back,
never forward to a version a rollback left; with nothing left to go back to it refuses,
saying why. Real publishes of three versions into a real Redis, rollbacks through the CLI
and the function it calls."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from recsvc.contract.keys import Keys
from recsvc.registry.versions import RollbackError, rollback
from tests.builders import cli_environment
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, SECOND_VERSION, publish_model

RECSVC = str(Path(sys.executable).with_name("recsvc"))
THIRD_VERSION = "20260103T000000000000Z-third"
FIRST = PLANTED_VERSION


def recsvc(redis_url: str, models_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECSVC, *args],
        env=cli_environment(redis_url, models_dir),
        capture_output=True,
        text=True,
        check=False,
    )


def current(redis_url: str) -> dict[str, Any]:
    raw = redis.Redis.from_url(redis_url).get(Keys().model_current)
    assert raw is not None
    return dict(json.loads(raw))


def roll_back(redis_url: str, to: str | None = None) -> dict[str, Any]:
    async def work() -> dict[str, Any]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await rollback(client, Keys(), 3600, to)
        finally:
            await client.aclose()

    return asyncio.run(work())


def publish(redis_url: str, models_dir: Path, *versions: str) -> None:
    for version in versions:
        if not (models_dir / version).exists():
            planted.write_planted_model(models_dir, version)
        publish_model(redis_url, models_dir / version)


def test_two_rollbacks_walk_back_two_versions_and_a_third_refuses_saying_why(
    redis_url: str, models_dir: Path
) -> None:
    publish(redis_url, models_dir, FIRST, SECOND_VERSION, THIRD_VERSION)
    assert current(redis_url) == {"version": THIRD_VERSION, "generation": 3}

    first = recsvc(redis_url, models_dir, "rollback")
    assert first.returncode == 0, first.stderr
    assert f"from {THIRD_VERSION} to {SECOND_VERSION}" in first.stdout
    second = recsvc(redis_url, models_dir, "rollback")
    assert second.returncode == 0, second.stderr
    assert f"from {SECOND_VERSION} to {FIRST}" in second.stdout
    assert current(redis_url) == {"version": FIRST, "generation": 1}

    third = recsvc(redis_url, models_dir, "rollback")
    assert third.returncode == 1 and "Traceback" not in third.stderr
    assert len(third.stderr.strip().splitlines()) == 1, third.stderr
    assert f"nothing to roll back to from {FIRST}" in third.stderr
    assert SECOND_VERSION in third.stderr and THIRD_VERSION in third.stderr  # left, not gone
    assert "--to" in third.stderr and "republish" in third.stderr
    assert current(redis_url) == {"version": FIRST, "generation": 1}  # nothing moved


def test_after_a_rollback_and_a_new_publish_a_rollback_skips_the_version_left(
    redis_url: str, models_dir: Path
) -> None:
    publish(redis_url, models_dir, FIRST, SECOND_VERSION)
    assert roll_back(redis_url)["to"]["version"] == FIRST  # the second one was bad
    publish(redis_url, models_dir, THIRD_VERSION)
    moved = roll_back(redis_url)
    assert moved["from"]["version"] == THIRD_VERSION and moved["to"]["version"] == FIRST


def test_a_rollback_to_an_older_version_abandons_the_ones_it_jumps_over(
    redis_url: str, models_dir: Path
) -> None:
    publish(redis_url, models_dir, FIRST, SECOND_VERSION, THIRD_VERSION)
    assert roll_back(redis_url, to=FIRST)["to"] == {"version": FIRST, "generation": 1}
    with pytest.raises(RollbackError, match="nothing to roll back to"):
        roll_back(redis_url)
    # Asked for by name, a version left is still there to go back to (and it leaves FIRST).
    assert roll_back(redis_url, to=SECOND_VERSION)["to"]["version"] == SECOND_VERSION
    with pytest.raises(RollbackError, match="were left by a rollback"):
        roll_back(redis_url)
    assert roll_back(redis_url, to=FIRST)["to"]["version"] == FIRST


def test_a_rollback_after_a_promote_goes_back_to_the_model_the_promote_replaced(
    redis_url: str, models_dir: Path
) -> None:
    """The challenger published before the current one: history is not generation order."""
    publish(redis_url, models_dir, FIRST)
    planted.write_planted_model(models_dir, SECOND_VERSION)
    publish_model(redis_url, models_dir / SECOND_VERSION, challenger=True)  # generation 2
    publish(redis_url, models_dir, THIRD_VERSION)  # generation 3, current
    assert recsvc(redis_url, models_dir, "promote").returncode == 0
    assert current(redis_url)["version"] == SECOND_VERSION
    assert roll_back(redis_url)["to"]["version"] == THIRD_VERSION
    assert roll_back(redis_url)["to"]["version"] == FIRST  # never forward to SECOND again
