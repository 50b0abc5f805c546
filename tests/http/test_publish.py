"""Publishing a model version to Redis.

`recsvc.registry.publish` writes one packed vector per user with a non-zero vector under a new model
generation (`recsvc:vec:<gen>:{u:<id>}`), and only then moves `recsvc:model:current` to
the new version and generation. The previous generation's vectors expire after the grace
period (at once with grace 0). A model directory that fails verification is refused and the
pointer stays where it was. The `recsvc publish` command reports the bytes per user.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis

from recsvc.contract import vectors
from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError
from recsvc.registry.publish import LiveChanged, PublishReport, publish
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, publish_model
from training.models.export import export_model

KEYS = Keys()
WIDE_VERSION = "20260103T000000000000Z-wide"
WIDE_USERS, WIDE_DIM = 2000, 64
RECSVC = Path(sys.executable).with_name("recsvc")


def write_wide_model(
    models_dir: Path,
    n_users: int = WIDE_USERS,
    version: str = WIDE_VERSION,
    second_id: str | None = None,
) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 64-dimension model of 2,000 users with random factors; every 10th user is zero."""
    rng = np.random.default_rng(7)
    users = rng.normal(size=(n_users, WIDE_DIM)).astype(np.float32)
    users[::10] = 0.0
    ids = np.array([f"u{i:05d}" for i in range(n_users)], dtype=object)
    if second_id is not None:
        ids[1] = second_id
    ids = ids.astype(str)
    videos = np.array([f"v{i:03d}" for i in range(20)])
    products = np.array([f"p{i:02d}" for i in range(5)])
    items = rng.normal(size=(len(videos) + len(products), WIDE_DIM)).astype(np.float32)
    arrays = {"user_factors.npy": users, "user_ids.npy": ids}
    info = {"params": {"regularization": 0.1, "alpha": 1.0, "confidence": "linear"}}
    directory = export_model(models_dir, items, videos, products, info, version, arrays)
    return directory, ids, users


def pointer(client: redis.Redis) -> dict | None:
    raw = client.get(KEYS.model_current)
    return None if raw is None else json.loads(raw)


def generation_keys(client: redis.Redis, generation: int) -> list[bytes]:
    return list(client.scan_iter(match=KEYS.vector_pattern(generation), count=1000))


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as connection:
        yield connection


def test_every_non_zero_user_gets_one_vector_that_decodes_within_quantisation_error(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    directory, ids, users = write_wide_model(tmp_path / "models")
    report = publish_model(redis_url, directory)

    nonzero = np.any(users != 0, axis=1)
    assert report.users == int(nonzero.sum()) == 1800
    assert len(generation_keys(client, report.generation)) == report.users
    for user_id, original, keep in zip(ids, users, nonzero, strict=True):
        packed = client.get(KEYS.vector(report.generation, str(user_id)))
        if not keep:
            assert packed is None, f"zero vector of {user_id} was written"
            continue
        assert packed is not None and len(packed) == vectors.SCALE_BYTES + WIDE_DIM
        decoded = vectors.decode(packed, WIDE_DIM)
        half_step = np.abs(original).max() / 127 / 2
        assert np.abs(decoded - original).max() <= half_step * 1.001 + 1e-7


def test_a_64_dimension_vector_costs_at_most_200_bytes_per_user(
    redis_url: str, tmp_path: Path
) -> None:
    directory, _, _ = write_wide_model(tmp_path / "models")
    report = publish_model(redis_url, directory)
    assert 68 <= report.bytes_per_user <= 200  # at least the packed value itself


def test_the_pointer_moves_only_after_every_vector_is_written(
    redis_url: str, client: redis.Redis, models_dir: Path, tmp_path: Path
) -> None:
    first = publish_model(redis_url, models_dir / PLANTED_VERSION)
    directory, _, _ = write_wide_model(tmp_path / "models")
    seen: list[tuple[dict | None, int]] = []

    async def work() -> PublishReport:
        connection = aioredis.Redis.from_url(redis_url)

        def progress(_: int) -> None:  # called after each chunk is in Redis
            seen.append((pointer(client), len(generation_keys(client, first.generation + 1))))

        try:
            return await publish(connection, KEYS, directory, 3600, progress)
        finally:
            await connection.aclose()

    report = asyncio.run(work())
    assert report.generation == first.generation + 1
    assert seen, "publish never reported progress"
    # While vectors were being written, readers still saw the first model.
    for current, _ in seen:
        assert current == {"version": PLANTED_VERSION, "generation": first.generation}
    assert seen[-1][1] == report.users  # ...even once every vector was there
    assert pointer(client) == {"version": WIDE_VERSION, "generation": report.generation}
    assert report.previous_version == PLANTED_VERSION


def test_a_publish_that_redis_refuses_part_way_fails_naming_why_and_cleans_up(
    redis_url: str, client: redis.Redis, models_dir: Path, tmp_path: Path
) -> None:
    first = publish_model(redis_url, models_dir / PLANTED_VERSION)
    directory, _, _ = write_wide_model(tmp_path / "models", 20_000, "20260104T000000000000Z-big")
    written: list[int] = []

    async def work() -> PublishReport:
        connection = aioredis.Redis.from_url(redis_url)
        try:
            return await publish(connection, KEYS, directory, 3600, written.append)
        finally:
            await connection.aclose()

    # Room for a few thousand more vectors, not 18,000: Redis refuses an MSET part-way (OOM).
    client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 1_000_000)
    client.config_set("maxmemory-policy", "noeviction")
    try:
        with pytest.raises(redis.ResponseError, match="maxmemory"):
            asyncio.run(work())
        assert sum(written[1:]) >= 2000  # chunks were in Redis before the refusal...
        assert generation_keys(client, first.generation + 1) == []  # ...and were deleted
        assert client.hget(KEYS.model_generations, str(first.generation + 1)) is None
        assert pointer(client) == {"version": PLANTED_VERSION, "generation": first.generation}
        assert client.get(KEYS.publish_lock) is None
    finally:
        client.config_set("maxmemory", 0)
    retried = publish_model(redis_url, directory)
    assert retried.users == 18_000 and pointer(client)["version"] == "20260104T000000000000Z-big"


def test_a_publish_expecting_another_current_model_writes_nothing_live(
    redis_url: str, client: redis.Redis, models_dir: Path, tmp_path: Path
) -> None:
    first = publish_model(redis_url, models_dir / PLANTED_VERSION)
    directory, _, _ = write_wide_model(tmp_path / "models")

    async def work() -> PublishReport:
        connection = aioredis.Redis.from_url(redis_url)
        try:  # e.g. a nightly run that compared its model with a version since rolled back
            return await publish(
                connection, KEYS, directory, 3600, expected_current="20200101T000000Z-gone"
            )
        finally:
            await connection.aclose()

    with pytest.raises(LiveChanged, match="not 20200101T000000Z-gone"):
        asyncio.run(work())
    assert pointer(client) == {"version": PLANTED_VERSION, "generation": first.generation}
    assert generation_keys(client, first.generation + 1) == []


def test_a_second_publish_gives_the_previous_generation_the_grace_ttl(
    redis_url: str, client: redis.Redis, models_dir: Path
) -> None:
    first = publish_model(redis_url, models_dir / PLANTED_VERSION)
    second_dir = planted.write_planted_model(models_dir, "20260102T000000000000Z-second", 2.0)
    second = publish_model(redis_url, second_dir, grace_seconds=120)

    assert second.generation > first.generation
    assert second.expiring_generations == [first.generation]
    old = generation_keys(client, first.generation)
    assert len(old) == len(planted.USERS)
    for key in old:
        assert 0 < client.ttl(key) <= 120
    for key in generation_keys(client, second.generation):
        assert client.ttl(key) == -1  # the current generation never expires
    assert pointer(client) == {"version": second.version, "generation": second.generation}


def test_grace_zero_deletes_the_previous_generation_at_once(
    redis_url: str, client: redis.Redis, models_dir: Path
) -> None:
    first = publish_model(redis_url, models_dir / PLANTED_VERSION)
    second_dir = planted.write_planted_model(models_dir, "20260102T000000000000Z-second", 2.0)
    second = publish_model(redis_url, second_dir, grace_seconds=0)

    assert generation_keys(client, first.generation) == []
    assert len(generation_keys(client, second.generation)) == len(planted.USERS)


@pytest.mark.parametrize("tampered", ["model.onnx", "user_factors.npy"])
def test_a_tampered_model_directory_is_refused_and_the_pointer_stays(
    redis_url: str, client: redis.Redis, models_dir: Path, tampered: str
) -> None:
    first = publish_model(redis_url, models_dir / PLANTED_VERSION)
    bad = planted.write_planted_model(models_dir, "20260102T000000000000Z-bad", 2.0)
    with (bad / tampered).open("r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        last = handle.read(1)
        handle.seek(-1, os.SEEK_END)
        handle.write(bytes([last[0] ^ 0xFF]))

    with pytest.raises(ArtifactError, match=tampered):
        publish_model(redis_url, bad)
    assert pointer(client) == {"version": PLANTED_VERSION, "generation": first.generation}
    assert generation_keys(client, first.generation + 1) == []
    assert len(generation_keys(client, first.generation)) == len(planted.USERS)


def run_cli(*args: str, redis_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSVC_")}
    if redis_url is not None:
        env["RECSVC_REDIS_URL"] = redis_url
    return subprocess.run(
        [str(RECSVC), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("bad_id", ["u2\n", "has space", "-lead", "x" * 65])
def test_a_model_with_an_invalid_user_id_is_refused_naming_it(
    redis_url: str, client: redis.Redis, tmp_path: Path, bad_id: str
) -> None:
    directory, _, _ = write_wide_model(tmp_path / "models", second_id=bad_id)
    with pytest.raises(ArtifactError, match="is not a valid id") as refused:
        publish_model(redis_url, directory)
    assert repr(bad_id) in str(refused.value)
    assert pointer(client) is None and client.get(KEYS.publish_lock) is None


def test_the_publish_command_prints_the_bytes_per_user(
    redis_url: str, client: redis.Redis, tmp_path: Path
) -> None:
    directory, _, _ = write_wide_model(tmp_path / "models")
    done = run_cli("publish", str(directory), redis_url=redis_url)

    assert done.returncode == 0, done.stderr
    assert f"published {WIDE_VERSION}" in done.stdout
    line = next(x for x in done.stdout.splitlines() if "bytes per user" in x)
    figure = int(line.split(" bytes per user")[0].rsplit(" ", 1)[-1])
    assert 68 <= figure <= 200
    assert pointer(client) == {"version": WIDE_VERSION, "generation": 1}


def test_the_publish_command_without_redis_url_fails_in_one_line(
    models_dir: Path, redis_url: str, client: redis.Redis
) -> None:
    done = run_cli("publish", str(models_dir / PLANTED_VERSION), redis_url=None)

    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "RECSVC_REDIS_URL" in lines[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert pointer(client) is None
