"""Operating model versions: rollback, the publish lock, and the list of versions.

`recsvc rollback` points the service back at the previous version at once; replicas reload
it while requests keep flowing, and none fails. Two publishes (or a publish and a rollback)
cannot run at once: the second is refused with a message naming the lock.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from recsvc.contract.keys import Keys
from recsvc.registry.locks import LockHeld
from recsvc.registry.publish import publish_lock
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, SECOND_VERSION, eventually, publish_model
from tests.http.load import FeedLoop
from tests.http.polls import wait_for_polls

RECSVC = str(Path(sys.executable).with_name("recsvc"))


def recsvc(redis_url: str, models_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECSVC_REDIS_URL": redis_url, "RECSVC_MODELS_DIR": str(models_dir)}
    return subprocess.run([RECSVC, *args], env=env, capture_output=True, text=True, check=False)


def test_rollback_under_load_moves_every_request_back_without_a_failure(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    second = planted.write_planted_model(models_dir, SECOND_VERSION, user_scale=2.0)
    publish_model(redis_url, second)
    with FeedLoop(str(service.base_url)) as load:
        assert eventually(lambda: load.latest() == {SECOND_VERSION}), load.latest()
        result = recsvc(redis_url, models_dir, "rollback")
        assert result.returncode == 0, result.stderr
        assert f"to {PLANTED_VERSION}" in result.stdout
        assert eventually(lambda: load.latest() == {PLANTED_VERSION}), load.latest()
        wait_for_polls(service.get, redis_url, 2)  # the load kept on through whole polls
    outcomes = [outcome for log in load.outcomes for outcome in log]
    failed = [outcome for outcome in outcomes if outcome[0] != 200]
    assert outcomes and failed == [], f"{len(failed)} of {len(outcomes)} failed: {failed[:3]}"
    client = redis.Redis.from_url(redis_url)
    assert client.ttl(Keys().vector(1, "u-save")) == -1  # the restored vectors stay
    assert 0 < client.ttl(Keys().vector(2, "u-save")) <= 3600  # the abandoned ones expire
    body = service.get("/v1/feed", params={"user_id": "u-save", "n": 1}).json()
    assert body["source"] == "cf" and body["model_version"] == PLANTED_VERSION


def test_rollback_without_an_earlier_version_in_redis_is_a_clear_error(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    result = recsvc(redis_url, models_dir, "rollback")
    assert result.returncode == 1
    assert "republish" in result.stderr and "Traceback" not in result.stderr
    result = recsvc(redis_url, models_dir, "rollback", "--to", "20200101T000000000000Z-none")
    assert result.returncode == 1 and "20200101T000000000000Z-none" in result.stderr


def test_a_publish_while_another_holds_the_lock_is_refused(
    redis_url: str, models_dir: Path
) -> None:
    async def hold_and_publish() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            async with publish_lock(client, Keys(), "a nightly run"):
                result = await asyncio.to_thread(
                    recsvc, redis_url, models_dir, "publish", str(models_dir / PLANTED_VERSION)
                )
                assert result.returncode == 1
                assert "publish-lock" in result.stderr and "a nightly run" in result.stderr
                with pytest.raises(LockHeld):
                    async with publish_lock(client, Keys(), "another"):
                        pass
        finally:
            await client.aclose()

    asyncio.run(hold_and_publish())
    assert redis.Redis.from_url(redis_url).get(Keys().model_current) is None  # nothing moved
    publish_model(redis_url, models_dir / PLANTED_VERSION)  # the lock was released


def test_models_lists_versions_in_redis_and_on_disk_with_the_live_one(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    planted.write_planted_model(models_dir, SECOND_VERSION)  # on disk, never published
    result = recsvc(redis_url, models_dir, "models", "--json")
    assert result.returncode == 0, result.stderr
    listed = {entry["version"]: entry for entry in json.loads(result.stdout.splitlines()[-1])}
    assert listed[PLANTED_VERSION]["state"] == "current"
    assert listed[PLANTED_VERSION]["generation"] == 1
    assert listed[SECOND_VERSION]["state"] == "on disk"
    assert f"* {PLANTED_VERSION}" in result.stdout
