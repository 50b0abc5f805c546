"""The challenger model: published next to the current one, live only once promoted.

`recsvc publish DIR --challenger` writes the version's vectors and moves the challenger
pointer; the service keeps serving the current model, and `recsvc models` marks the
challenger `c`. `recsvc promote` makes it current at once (replicas hot-reload it, no
request fails); the model it replaced keeps its vectors for the grace period, so that
`recsvc rollback` can bring it back. Promoting with no challenger is a one-line error.
Each pointer's generation outlives a publish to the other pointer, and `rollback` never
picks the challenger.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from recsvc.contract.keys import Keys
from recsvc.registry.versions import RollbackError, rollback
from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    SECOND_VERSION,
    eventually,
    publish_challenger,
    publish_model,
)

RECSVC = str(Path(sys.executable).with_name("recsvc"))
KEYS = Keys()
THIRD_VERSION = "20260103T000000000000Z-third"


def cli_env(redis_url: str, models_dir: Path, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "RECSVC_REDIS_URL": redis_url,
        "RECSVC_MODELS_DIR": str(models_dir),
        **env,
    }


def recsvc(
    redis_url: str, models_dir: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECSVC, *args],
        env=cli_env(redis_url, models_dir, **env),
        capture_output=True,
        text=True,
        check=False,
    )


def start_recsvc(redis_url: str, models_dir: Path, *args: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [RECSVC, *args],
        env=cli_env(redis_url, models_dir, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def roll_back(redis_url: str, to: str | None = None) -> dict[str, Any]:
    async def work() -> dict[str, Any]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await rollback(client, KEYS, 3600, to)
        finally:
            await client.aclose()

    return asyncio.run(work())


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as connection:
        yield connection


def pointer(client: redis.Redis, key: str) -> dict | None:
    raw = client.get(key)
    return None if raw is None else json.loads(raw)


def served_version(service: httpx.Client) -> str:
    response = service.get("/v1/feed", params={"user_id": "u-save", "n": 1})
    assert response.status_code == 200, response.text
    return response.json()["model_version"]


def versions_served_while(
    service: httpx.Client, process: subprocess.Popen, at_least: float = 0.0
) -> list[str]:
    """The model version of a feed every 20 ms (each one a 200) until `process` has ended
    and `at_least` seconds have passed."""
    seen = []
    deadline = time.monotonic() + at_least
    while process.poll() is None or time.monotonic() < deadline:
        seen.append(served_version(service))
        time.sleep(0.02)
    return seen


def ttls(client: redis.Redis, generation: int) -> set[int]:
    """The TTLs of one generation's vectors (-1: none); an empty set when they are gone."""
    return {client.ttl(key) for key in client.scan_iter(match=KEYS.vector_pattern(generation))}


def test_a_challenger_is_published_while_the_service_keeps_serving_the_current_model(
    service: httpx.Client, redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)

    result = recsvc(redis_url, models_dir, "publish", str(second), "--challenger")

    assert result.returncode == 0, result.stderr
    assert f"published {SECOND_VERSION} as the challenger model, generation 2" in result.stdout
    assert pointer(client, KEYS.model_challenger) == {"version": SECOND_VERSION, "generation": 2}
    assert pointer(client, KEYS.model_current) == {"version": PLANTED_VERSION, "generation": 1}
    assert ttls(client, 2) == {-1} and ttls(client, 1) == {-1}
    # The replica polls every 0.2 s: a second of feeds spans five polls.
    listing = start_recsvc(redis_url, models_dir, "models", "--json")
    seen = versions_served_while(service, listing, at_least=1.0)
    stdout, stderr = listing.communicate()
    assert set(seen) == {PLANTED_VERSION}, seen
    assert pointer(client, KEYS.model_current) == {"version": PLANTED_VERSION, "generation": 1}

    assert listing.returncode == 0, stderr
    assert f"c {SECOND_VERSION}" in stdout and f"* {PLANTED_VERSION}" in stdout
    states = {e["version"]: e["state"] for e in json.loads(stdout.splitlines()[-1])}
    assert states == {SECOND_VERSION: "challenger", PLANTED_VERSION: "current"}


def test_promote_moves_the_service_to_the_challenger_and_rollback_brings_the_old_model_back(
    service: httpx.Client, redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)
    publish_challenger(redis_url, second)
    promoting = start_recsvc(redis_url, models_dir, "promote", RECSVC_VERSION_GRACE_SECONDS="120")
    seen = versions_served_while(service, promoting)
    stdout, stderr = promoting.communicate()

    assert promoting.returncode == 0, stderr
    assert f"promoted the challenger {SECOND_VERSION} to current (was {PLANTED_VERSION})" in stdout
    assert eventually(lambda: served_version(service) == SECOND_VERSION)
    # Every feed succeeded, and once the new model answered the old one never did again.
    assert seen[0] == PLANTED_VERSION and set(seen) <= {PLANTED_VERSION, SECOND_VERSION}
    switch = seen.index(SECOND_VERSION) if SECOND_VERSION in seen else len(seen)
    assert set(seen[switch:]) <= {SECOND_VERSION}, seen
    assert pointer(client, KEYS.model_current) == {"version": SECOND_VERSION, "generation": 2}
    assert client.get(KEYS.model_challenger) is None
    assert ttls(client, 2) == {-1}
    old = ttls(client, 1)
    assert len(old) > 0 and all(0 < ttl <= 120 for ttl in old), old  # rollback can use them

    result = recsvc(redis_url, models_dir, "rollback")

    assert result.returncode == 0, result.stderr
    assert f"from {SECOND_VERSION} to {PLANTED_VERSION}" in result.stdout
    assert eventually(lambda: served_version(service) == PLANTED_VERSION)
    assert ttls(client, 1) == {-1}
    abandoned = ttls(client, 2)
    assert len(abandoned) > 0 and all(0 < ttl <= 3600 for ttl in abandoned), abandoned


def test_promote_without_a_challenger_is_a_clear_error(
    redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)

    result = recsvc(redis_url, models_dir, "promote")

    assert result.returncode == 1
    assert result.stderr.startswith("recsvc: no challenger to promote")
    assert "--challenger" in result.stderr  # says how to get one
    assert "Traceback" not in result.stdout + result.stderr
    assert pointer(client, KEYS.model_current) == {"version": PLANTED_VERSION, "generation": 1}
    assert ttls(client, 1) == {-1}


def test_publishing_a_new_current_model_keeps_the_challenger(
    redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    publish_challenger(redis_url, planted.write_planted_model(models_dir, SECOND_VERSION))

    third = publish_model(
        redis_url, planted.write_planted_model(models_dir, THIRD_VERSION), grace_seconds=120
    )

    assert third.role == "current" and third.generation == 3
    assert third.previous_version == PLANTED_VERSION
    assert third.expiring_generations == [1]
    assert pointer(client, KEYS.model_current) == {"version": THIRD_VERSION, "generation": 3}
    assert pointer(client, KEYS.model_challenger) == {"version": SECOND_VERSION, "generation": 2}
    assert ttls(client, 2) == {-1} and ttls(client, 3) == {-1}
    old = ttls(client, 1)
    assert len(old) > 0 and all(0 < ttl <= 120 for ttl in old), old


def test_publishing_a_new_challenger_retires_the_previous_one_but_not_the_current_model(
    redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    publish_challenger(redis_url, planted.write_planted_model(models_dir, SECOND_VERSION))

    third = publish_challenger(
        redis_url, planted.write_planted_model(models_dir, THIRD_VERSION), grace_seconds=120
    )

    assert third.role == "challenger" and third.generation == 3
    assert third.previous_version == SECOND_VERSION
    assert third.expiring_generations == [2]
    assert pointer(client, KEYS.model_current) == {"version": PLANTED_VERSION, "generation": 1}
    assert pointer(client, KEYS.model_challenger) == {"version": THIRD_VERSION, "generation": 3}
    assert ttls(client, 1) == {-1} and ttls(client, 3) == {-1}
    old = ttls(client, 2)
    assert len(old) > 0 and all(0 < ttl <= 120 for ttl in old), old
    states = {
        int(generation): json.loads(entry)["state"]
        for generation, entry in client.hgetall(KEYS.model_generations).items()
    }
    assert states == {1: "current", 2: "expiring", 3: "challenger"}


def test_rollback_goes_to_the_previous_current_model_never_to_the_challenger(
    service: httpx.Client, redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    publish_model(redis_url, planted.write_planted_model(models_dir, SECOND_VERSION))
    # The challenger is the newest generation besides the current one: still not picked.
    publish_challenger(redis_url, planted.write_planted_model(models_dir, THIRD_VERSION))
    assert eventually(lambda: served_version(service) == SECOND_VERSION)

    moved = roll_back(redis_url)

    assert moved["to"] == {"version": PLANTED_VERSION, "generation": 1}
    assert eventually(lambda: served_version(service) == PLANTED_VERSION)
    assert pointer(client, KEYS.model_challenger) == {"version": THIRD_VERSION, "generation": 3}
    assert ttls(client, 3) == {-1}  # the challenger's vectors stay


def test_rollback_with_only_a_challenger_besides_the_current_model_is_refused(
    redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    publish_challenger(redis_url, planted.write_planted_model(models_dir, SECOND_VERSION))

    with pytest.raises(RollbackError, match="no generation of an earlier version"):
        roll_back(redis_url)

    assert pointer(client, KEYS.model_current) == {"version": PLANTED_VERSION, "generation": 1}
    assert pointer(client, KEYS.model_challenger) == {"version": SECOND_VERSION, "generation": 2}
    assert ttls(client, 1) == {-1} and ttls(client, 2) == {-1}


def test_rolling_back_to_the_challenger_by_name_points_to_promote(
    redis_url: str, models_dir: Path, client: redis.Redis
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    publish_challenger(redis_url, planted.write_planted_model(models_dir, SECOND_VERSION))

    with pytest.raises(RollbackError, match="is the challenger: .*recsvc promote"):
        roll_back(redis_url, to=SECOND_VERSION)

    assert pointer(client, KEYS.model_current) == {"version": PLANTED_VERSION, "generation": 1}
