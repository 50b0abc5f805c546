"""Model versions as operators see them: which are in Redis and on disk, and rollback.

`rollback` moves the pointer back to an earlier generation whose vectors are still in Redis
(within the grace period of a later publish), under the publish lock: the target's vectors
lose their TTL first, then one transaction flips the pointer and records the states, then the
generation that was current gets the grace TTL. Replicas hot-reload the old version from
their models directory.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from recsvc.keys import Keys
from recsvc.manifest import ArtifactError, read_manifest
from recsvc.publish import entry_json, publish_lock, set_generation_ttl
from recsvc.store import parse_pointer


class RollbackError(RuntimeError):
    """No generation to roll back to; the message says why and what to do."""


@dataclass(frozen=True)
class VersionInfo:
    version: str
    generation: int | None  # None: on disk only
    state: str  # current, expiring, writing, on disk
    users: int | None
    on_disk: bool
    metrics: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def registry(client: aioredis.Redis, keys: Keys) -> dict[int, dict[str, Any]]:
    raw = await client.hgetall(keys.model_generations)
    return {int(field): json.loads(value) for field, value in raw.items()}


async def list_versions(client: aioredis.Redis, keys: Keys, models_dir: Path) -> list[VersionInfo]:
    """Every generation in Redis and every version directory on disk, newest first."""
    entries = await registry(client, keys)
    pointer = parse_pointer(await client.get(keys.model_current))
    on_disk = {p.name for p in models_dir.iterdir() if p.is_dir()} if models_dir.is_dir() else set()
    infos = []
    for generation, entry in sorted(entries.items(), reverse=True):
        version = entry["version"]
        live = pointer is not None and pointer.generation == generation
        state = "current" if live else entry["state"]
        infos.append(
            VersionInfo(
                version,
                generation,
                state,
                entry.get("users"),
                version in on_disk,
                _metrics(models_dir / version),
            )
        )
    in_redis = {info.version for info in infos}
    for version in sorted(on_disk - in_redis, reverse=True):
        metrics = _metrics(models_dir / version)
        infos.append(VersionInfo(version, None, "on disk", None, True, metrics))
    return infos


def _metrics(directory: Path) -> dict[str, Any]:
    try:
        return read_manifest(directory).metrics
    except ArtifactError:
        return {}


async def rollback(
    client: aioredis.Redis, keys: Keys, grace_seconds: int, to: str | None = None
) -> dict[str, Any]:
    """Make an earlier generation current again (the newest other one, or `to`'s newest)."""
    async with publish_lock(client, keys, "rollback"):
        pointer = parse_pointer(await client.get(keys.model_current))
        if pointer is None:
            raise RollbackError("no current model to roll back from")
        entries = await registry(client, keys)
        candidates = [
            (generation, entry)
            for generation, entry in sorted(entries.items(), reverse=True)
            if generation != pointer.generation
            and entry["state"] != "writing"
            and (to is None or entry["version"] == to)
            and (to is not None or entry["version"] != pointer.version)
            and entry.get("expires_at", float("inf")) > time.time() + 5
        ]
        if not candidates:
            wanted = f"version {to}" if to else "an earlier version"
            raise RollbackError(
                f"no generation of {wanted} has its vectors in Redis any more; republish it "
                "with `recsvc publish models/<version>`"
            )
        generation, entry = candidates[0]
        if await set_generation_ttl(client, keys, generation, None) == 0:
            raise RollbackError(f"generation {generation} ({entry['version']}) has no vectors left")
        pipe = client.pipeline(transaction=True)
        pipe.set(
            keys.model_current,
            json.dumps({"version": entry["version"], "generation": generation}),
        )
        pipe.hset(
            keys.model_generations,
            str(generation),
            entry_json(entry["version"], entry.get("users", 0), "current"),
        )
        old = entries.get(pointer.generation, {"version": pointer.version, "users": 0})
        expiring = {**old, "state": "expiring", "expires_at": time.time() + grace_seconds}
        pipe.hset(keys.model_generations, str(pointer.generation), json.dumps(expiring))
        await pipe.execute()
        await set_generation_ttl(client, keys, pointer.generation, grace_seconds)
        return {
            "from": {"version": pointer.version, "generation": pointer.generation},
            "to": {"version": entry["version"], "generation": generation},
        }
