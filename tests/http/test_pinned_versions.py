"""A variant pinned to a model version is served only with that version's user vectors.

A version exported (its directory on disk) but never published has no vectors in Redis: a
definition pinning it is refused, through the admin endpoint and `recsvc experiments load`,
naming the variant and the version and saying to publish it first. A pinned version whose
vectors are gone later (expired after the grace period, or a definition written past the
checks) is listed in /readyz's `missing_models`, and its variants get the current model
instead of being served without user vectors.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis

from recsvc.contract.keys import Keys
from tests.builders import champion_vs_challenger, cli_environment
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, SECOND_VERSION, eventually, publish_model

RECSVC = str(Path(sys.executable).with_name("recsvc"))


def pinning(version: str) -> str:
    """Everyone in experiment "champion", variant "challenger", pinned to `version`."""
    return champion_vs_challenger(1.0).replace('model = "challenger"', f'model = "{version}"')


def feed(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"user_id": "u-inv", "n": 3})
    assert response.status_code == 200, response.text
    return response.json()


def missing(client: httpx.Client) -> list[str]:
    return list(client.get("/readyz").json()["missing_models"])


def test_the_api_refuses_a_pin_to_a_version_never_published(
    service: httpx.Client, models_dir: Path
) -> None:
    planted.write_planted_model(models_dir, SECOND_VERSION)  # exported, never published
    refused = service.put("/v1/admin/experiments", content=pinning(SECOND_VERSION))
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert f"variant challenger: model version '{SECOND_VERSION}' has no user vectors" in detail
    assert "publish it first" in detail
    assert service.get("/v1/admin/experiments").json()["revision"] is None  # nothing stored


def test_the_cli_refuses_a_pin_to_a_version_never_published(
    redis_url: str, models_dir: Path, tmp_path: Path
) -> None:
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    planted.write_planted_model(models_dir, SECOND_VERSION)
    path = tmp_path / "pinned.toml"
    path.write_text(pinning(SECOND_VERSION))
    result = subprocess.run(
        [RECSVC, "experiments", "load", str(path)],
        env=cli_environment(redis_url, models_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr
    assert f"variant challenger: model version '{SECOND_VERSION}'" in result.stderr
    assert "publish it first" in result.stderr
    assert redis.Redis.from_url(redis_url).get(Keys().experiments_revision) is None

    path.write_text(pinning(PLANTED_VERSION))  # published: its vectors are in Redis
    result = subprocess.run(
        [RECSVC, "experiments", "load", str(path)],
        env=cli_environment(redis_url, models_dir),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_a_stored_pin_to_a_version_never_published_is_missing_and_served_the_current_model(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    """Written to Redis past the checks (another tool, an older version of the service)."""
    planted.write_planted_model(models_dir, SECOND_VERSION)
    client = redis.Redis.from_url(redis_url)
    client.set(Keys().experiments_definition, pinning(SECOND_VERSION))
    client.set(Keys().experiments_revision, "pinned-unpublished")
    assert eventually(lambda: feed(service)["variant"] == "champion:challenger")
    assert eventually(lambda: missing(service) == [SECOND_VERSION]), missing(service)
    body = feed(service)
    assert body["model_version"] == PLANTED_VERSION and body["source"] == "cf"
    assert SECOND_VERSION in service.get("/readyz").json()["last_error"]


def test_a_pinned_version_whose_vectors_expire_becomes_missing(
    service: httpx.Client, redis_url: str, models_dir: Path
) -> None:
    second = planted.write_planted_model(models_dir, SECOND_VERSION)
    publish_model(redis_url, second, grace_seconds=3)  # the planted version's vectors: 3 s
    stored = service.put("/v1/admin/experiments", content=pinning(PLANTED_VERSION))
    assert stored.status_code == 200, stored.text
    assert eventually(lambda: feed(service)["model_version"] == PLANTED_VERSION)
    assert feed(service)["source"] == "cf" and missing(service) == []
    time.sleep(3)
    assert eventually(lambda: missing(service) == [PLANTED_VERSION]), missing(service)
    body = feed(service)
    assert body["variant"] == "champion:challenger"
    assert body["model_version"] == SECOND_VERSION and body["source"] == "cf"

    assert service.put("/v1/admin/experiments", content="# none").status_code == 200
    assert eventually(lambda: missing(service) == [])  # no variant names it any more
