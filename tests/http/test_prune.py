"""Pruning model versions from disk.

`recsvc prune --keep K` removes the version directories (those holding a manifest.json)
beyond the newest K by name, and prints the ones it removed. However old, a version stays
when the current or the challenger pointer names it, or when one of its generations is
still in the Redis registry and not expired: being published, or within the grace period
(replicas may still serve it; a rollback may bring it back). A version whose vectors have
expired goes. Nothing else under the models directory is touched: not a directory without
a manifest, not a dot-directory, not a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from recsvc.contract.keys import Keys
from recsvc.contract.pause_points import PAUSE_ENV
from recsvc.registry.locks import LockHeld
from recsvc.registry.versions import prune_versions
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, publish_model

RECSVC = str(Path(sys.executable).with_name("recsvc"))
KEYS = Keys()
# Eight versions whose names sort in the order they were trained; the planted one is oldest.
VERSIONS = [PLANTED_VERSION] + [f"2026010{day}T000000000000Z-v{day}" for day in range(2, 9)]


def recsvc(
    redis_url: str, models_dir: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "RECSVC_REDIS_URL": redis_url,
        "RECSVC_MODELS_DIR": str(models_dir),
        **env,
    }
    return subprocess.run(
        [RECSVC, *args], env=environment, capture_output=True, text=True, check=False
    )


def write_versions(models_dir: Path) -> None:
    """Every version of VERSIONS on disk (the planted fixture already wrote the first)."""
    for version in VERSIONS[1:]:
        planted.write_planted_model(models_dir, version)


def on_disk(models_dir: Path) -> set[str]:
    return {path.name for path in models_dir.iterdir()}


def prune(redis_url: str, models_dir: Path, keep: int) -> list[str]:
    async def work() -> list[str]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            return await prune_versions(client, KEYS, models_dir, keep)
        finally:
            await client.aclose()

    return asyncio.run(work())


def registry(redis_url: str) -> dict[str, dict]:
    """The registry entries by version."""
    with redis.Redis.from_url(redis_url) as client:
        raw = client.hgetall(KEYS.model_generations)
    entries = [json.loads(value) for value in raw.values()]
    return {entry["version"]: entry for entry in entries}


def test_the_newest_versions_stay_and_the_older_ones_go(redis_url: str, models_dir: Path) -> None:
    write_versions(models_dir)

    removed = prune(redis_url, models_dir, keep=3)

    assert sorted(removed) == VERSIONS[:5]
    assert on_disk(models_dir) == set(VERSIONS[5:])  # nothing left over, no .pruning-* either


def test_keeping_more_versions_than_there_are_removes_nothing(
    redis_url: str, models_dir: Path
) -> None:
    write_versions(models_dir)
    assert prune(redis_url, models_dir, keep=len(VERSIONS)) == []
    assert on_disk(models_dir) == set(VERSIONS)


def test_versions_in_use_stay_however_old_and_expired_ones_go(
    redis_url: str, models_dir: Path
) -> None:
    write_versions(models_dir)
    forgotten, expired, unexpired, current, challenger, unused, *newest = VERSIONS
    publish_model(redis_url, models_dir / forgotten)
    publish_model(redis_url, models_dir / unexpired, grace_seconds=0)  # `forgotten` expires now
    publish_model(redis_url, models_dir / current)  # forgets `forgotten`; `unexpired`: 1 hour
    publish_model(redis_url, models_dir / expired, challenger=True)
    publish_model(redis_url, models_dir / challenger, grace_seconds=0, challenger=True)
    # The registry as the prune finds it: one expired entry, one not, one forgotten.
    entries, now = registry(redis_url), time.time()
    assert forgotten not in entries
    assert entries[expired]["state"] == "expiring" and entries[expired]["expires_at"] <= now
    assert entries[unexpired]["state"] == "expiring" and entries[unexpired]["expires_at"] > now

    removed = prune(redis_url, models_dir, keep=2)

    assert sorted(removed) == sorted([forgotten, expired, unused])
    assert on_disk(models_dir) == {unexpired, current, challenger, *newest}


def test_a_version_still_being_published_stays(redis_url: str, models_dir: Path) -> None:
    write_versions(models_dir)
    writing = VERSIONS[0]
    env = {**os.environ, "RECSVC_REDIS_URL": redis_url, PAUSE_ENV: "publish:after-first-chunk"}
    process = subprocess.Popen(
        [RECSVC, "publish", str(models_dir / writing)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()  # vectors written, the pointer not moved yet
        assert "paused at publish:after-first-chunk" in line, line
        assert registry(redis_url)[writing]["state"] == "writing"
        with pytest.raises(LockHeld, match="publish"):  # prune waits for the publish to end
            prune(redis_url, models_dir, keep=2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        if process.stderr is not None:
            process.stderr.close()

    # The publisher died half-way: its lock is taken over, and its version, still recorded
    # as being written (a publish may resume it within the hour), stays.
    removed = prune(redis_url, models_dir, keep=2)
    assert writing not in removed and (models_dir / writing / "manifest.json").is_file()
    assert sorted(removed) == VERSIONS[1:6]


def test_only_directories_holding_a_manifest_are_pruned(redis_url: str, models_dir: Path) -> None:
    write_versions(models_dir)
    hidden = models_dir / ".20250101T000000000000Z-hidden"  # a version, were it not hidden
    shutil.copytree(models_dir / VERSIONS[0], hidden)
    notes = models_dir / "00-notes"  # sorts before every version; no manifest
    notes.mkdir()
    (notes / "why.txt").write_text("keep me")
    (models_dir / "README.txt").write_text("models live here")

    removed = prune(redis_url, models_dir, keep=1)

    assert sorted(removed) == VERSIONS[:-1]
    assert on_disk(models_dir) == {VERSIONS[-1], hidden.name, "00-notes", "README.txt"}
    assert (hidden / "manifest.json").is_file()
    assert (notes / "why.txt").read_text() == "keep me"
    assert (models_dir / "README.txt").read_text() == "models live here"


def test_the_prune_command_removes_old_versions_and_prints_them(
    redis_url: str, models_dir: Path
) -> None:
    write_versions(models_dir)
    publish_model(redis_url, models_dir / VERSIONS[1])  # an old current version

    result = recsvc(redis_url, models_dir, "prune", "--keep", "2")

    assert result.returncode == 0, result.stderr
    gone = [VERSIONS[0], *VERSIONS[2:6]]
    assert f"removed {len(gone)} version(s) from {models_dir}" in result.stdout
    for version in gone:
        assert version in result.stdout
    for version in (VERSIONS[1], *VERSIONS[6:]):
        assert version not in result.stdout
    assert on_disk(models_dir) == {VERSIONS[1], *VERSIONS[6:]}


def test_the_prune_command_keeps_RECSVC_KEEP_VERSIONS_by_default(
    redis_url: str, models_dir: Path
) -> None:
    write_versions(models_dir)

    result = recsvc(redis_url, models_dir, "prune", RECSVC_KEEP_VERSIONS="6")

    assert result.returncode == 0, result.stderr
    assert "removed 2 version(s)" in result.stdout
    assert on_disk(models_dir) == set(VERSIONS[2:])
