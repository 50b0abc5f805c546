"""Model versions as operators see them: which are in Redis and on disk; rollback, promote, prune.

`rollback` moves the pointer back to an earlier generation whose vectors are still in Redis
(within the grace period of a later publish), under the publish lock: the target's vectors
lose their TTL first, then one transaction flips the pointer and records the states, then the
generation that was current gets the grace TTL. Replicas hot-reload the old version from
their models directory. The registry marks what a rollback leaves (`rolled_back`), so a
second rollback goes one step further back, never forward to the version the first left.

`promote` makes the challenger current in one transaction (the challenger pointer goes); the
generation that was current gets the grace TTL, so a rollback can still bring it back.

`prune_versions` removes version directories from disk beyond the newest K, never one that
either pointer names or whose vectors are still in Redis (the grace period).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError, read_manifest, version_dirs
from recsvc.registry.publish import entry_json, publish_lock, set_generation_ttl
from recsvc.store.client import AsyncClient, transaction
from recsvc.store.control import Pointer, parse_pointer


class RollbackError(RuntimeError):
    """No generation to roll back to; the message says why and what to do."""


# The mark of a generation a rollback left (or jumped over with --to); kept while the entry
# lives, dropped when the generation becomes current again.
ABANDONED = {"rolled_back": True}


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


async def registry(client: AsyncClient, keys: Keys) -> dict[int, dict[str, Any]]:
    raw = await client.hgetall(keys.model_generations)
    return {int(field): json.loads(value) for field, value in raw.items()}


async def list_versions(client: AsyncClient, keys: Keys, models_dir: Path) -> list[VersionInfo]:
    """Every generation in Redis and every version directory on disk, newest first."""
    entries = await registry(client, keys)
    current, challenger = await pointers(client, keys)
    on_disk = version_dirs(models_dir)
    infos = []
    for generation, entry in sorted(entries.items(), reverse=True):
        version = entry["version"]
        if current is not None and current.generation == generation:
            state = "current"
        elif challenger is not None and challenger.generation == generation:
            state = "challenger"
        else:
            state = "expiring" if entry["state"] in ("current", "challenger") else entry["state"]
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


async def pointers(client: AsyncClient, keys: Keys) -> tuple[Pointer | None, Pointer | None]:
    """The current and the challenger pointers (None where unset or unreadable)."""
    current, challenger = await client.mget(keys.model_current, keys.model_challenger)
    return parse_pointer(current), parse_pointer(challenger)


def _metrics(directory: Path) -> dict[str, Any]:
    try:
        return read_manifest(directory).metrics
    except ArtifactError:
        return {}


async def rollback(
    client: AsyncClient, keys: Keys, grace_seconds: int, to: str | None = None
) -> dict[str, Any]:
    """Make an earlier generation current again: `to`'s newest, or else the newest one that a
    rollback has not abandoned (see `_target`). The generation left, and every other one
    newer than the target, is marked `rolled_back`, so that rollbacks walk back through
    history and never forward again to a version they left."""
    async with publish_lock(client, keys, "rollback") as lease:
        pointer, challenger = await pointers(client, keys)
        if pointer is None:
            raise RollbackError("no current model to roll back from")
        if to is not None and challenger is not None and challenger.version == to:
            raise RollbackError(f"{to} is the challenger: make it current with `recsvc promote`")
        entries = await registry(client, keys)
        generation, entry = _target(entries, pointer, challenger, to)
        lease.check()  # before touching any TTL: a rollback without the lock does nothing
        if await set_generation_ttl(client, keys, generation, None) == 0:
            raise RollbackError(f"generation {generation} ({entry['version']}) has no vectors left")
        lease.check()
        pipe = await transaction(client)
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
        left = {**old, "state": "expiring", "expires_at": time.time() + grace_seconds}
        pipe.hset(keys.model_generations, str(pointer.generation), json.dumps(left | ABANDONED))
        for other in _jumped_over(entries, generation, pointer, challenger):
            pipe.hset(keys.model_generations, str(other), json.dumps(entries[other] | ABANDONED))
        await pipe.execute()
        await set_generation_ttl(client, keys, pointer.generation, grace_seconds)
        return {
            "from": {"version": pointer.version, "generation": pointer.generation},
            "to": {"version": entry["version"], "generation": generation},
        }


def _jumped_over(
    entries: dict[int, dict[str, Any]], target: int, pointer: Pointer, challenger: Pointer | None
) -> list[int]:
    """The generations besides the current one that a rollback to `target` abandons: the
    newer ones (a `--to` further back jumps over them), but the challenger and any a publish
    is still writing."""
    kept = {pointer.generation, challenger.generation if challenger else None}
    return [
        generation
        for generation, entry in entries.items()
        if generation > target
        and generation not in kept
        and entry["state"] != "writing"
        and not entry.get("rolled_back")
    ]


def _target(
    entries: dict[int, dict[str, Any]],
    pointer: Pointer,
    challenger: Pointer | None,
    to: str | None,
) -> tuple[int, dict[str, Any]]:
    """The generation a rollback goes to: the newest whose vectors are still in Redis (with 5 s
    to spare), that neither pointer names and no publish is writing; of version `to` when
    given, else of another version than the current one and not abandoned by a rollback.
    RollbackError says why there is none."""
    usable = {
        generation: entry
        for generation, entry in entries.items()
        if generation != pointer.generation
        and (challenger is None or generation != challenger.generation)
        and entry["state"] != "writing"
        and entry.get("expires_at", float("inf")) > time.time() + 5
    }
    if to is not None:
        candidates = [g for g, entry in usable.items() if entry["version"] == to]
    else:
        candidates = [
            g
            for g, entry in usable.items()
            if entry["version"] != pointer.version and not entry.get("rolled_back")
        ]
    if candidates:
        return max(candidates), usable[max(candidates)]
    if to is not None:
        raise RollbackError(
            f"no generation of version {to} has its vectors in Redis any more; republish it "
            "with `recsvc publish models/<version>`"
        )
    left = sorted({e["version"] for e in usable.values() if e.get("rolled_back")})
    reason = (
        f"the other versions still in Redis ({', '.join(left)}) were left by a rollback, and "
        "a rollback never goes forward to them (`recsvc rollback --to VERSION` does)"
        if left
        else "no generation of an earlier version has its vectors in Redis any more"
    )
    raise RollbackError(
        f"nothing to roll back to from {pointer.version}: {reason}; republish the version you "
        "want with `recsvc publish models/<version>`"
    )


async def promote(client: AsyncClient, keys: Keys, grace_seconds: int) -> dict[str, Any]:
    """Make the challenger current; the previous current generation gets the grace TTL."""
    async with publish_lock(client, keys, "promote") as lease:
        current, challenger = await pointers(client, keys)
        if challenger is None:
            raise RollbackError(
                "no challenger to promote; publish one with `recsvc publish --challenger` "
                "or `recsvc nightly --challenger`"
            )
        entries = await registry(client, keys)
        entry = entries.get(challenger.generation, {"version": challenger.version, "users": 0})
        lease.check()
        pipe = await transaction(client)
        pipe.set(
            keys.model_current,
            json.dumps({"version": challenger.version, "generation": challenger.generation}),
        )
        pipe.delete(keys.model_challenger)
        pipe.hset(
            keys.model_generations,
            str(challenger.generation),
            entry_json(challenger.version, entry.get("users", 0), "current"),
        )
        if current is not None:
            old = entries.get(current.generation, {"version": current.version, "users": 0})
            expiring = {**old, "state": "expiring", "expires_at": time.time() + grace_seconds}
            pipe.hset(keys.model_generations, str(current.generation), json.dumps(expiring))
        await pipe.execute()
        if current is not None:
            await set_generation_ttl(client, keys, current.generation, grace_seconds)
        return {
            "from": None
            if current is None
            else {"version": current.version, "generation": current.generation},
            "to": {"version": challenger.version, "generation": challenger.generation},
        }


async def prune_versions(client: AsyncClient, keys: Keys, models_dir: Path, keep: int) -> list[str]:
    """Remove version directories beyond the newest `keep`; the names removed.

    Kept whatever their age: the versions either pointer names, and every version whose
    vectors may still be in Redis (a generation not yet expired: replicas may still serve it,
    and a rollback may bring it back). Only directories holding a manifest are versions;
    anything else under `models_dir` is never touched. Holds the publish lock, so that no
    version is published or rolled back to while its directory is judged unused."""
    async with publish_lock(client, keys, "prune"):
        return await _prune(client, keys, models_dir, keep)


async def _prune(client: AsyncClient, keys: Keys, models_dir: Path, keep: int) -> list[str]:
    for leftover in models_dir.glob(".pruning-*") if models_dir.is_dir() else []:
        shutil.rmtree(leftover)  # a prune killed half-way
    versions = sorted(version_dirs(models_dir), reverse=True)
    now = time.time()
    in_use = {
        entry["version"]
        for entry in (await registry(client, keys)).values()
        if entry["state"] != "expiring" or entry.get("expires_at", float("inf")) > now
    }
    in_use |= {p.version for p in await pointers(client, keys) if p is not None}
    removed = []
    for version in versions[keep:]:
        if version not in in_use:
            # Renamed first, so that no reader ever sees a half-deleted version.
            trash = models_dir / f".pruning-{version}"
            os.replace(models_dir / version, trash)
            shutil.rmtree(trash)
            removed.append(version)
    return removed
