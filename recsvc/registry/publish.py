"""Publish a model version's user vectors to Redis, then flip the pointer to it.

Every vector is written under a new generation's namespace first (one MSET per 2,000 users,
two on the wire at once; on a Redis Cluster, per 2,000 users one MSET per hash slot, every
node's at once); only then does one SET move `{model}:current` (or, for a challenger,
`{model}:challenger`), so a reader sees the old model or the new one, never half of one. The
generation the pointer left gets a TTL of the grace period (replicas still on the old model
keep reading its vectors until they reload), as do, after an hour, the leftovers of a publish
that died half-way. The other pointer's generation is left alone: publishing a new current
model keeps the challenger, and a new challenger keeps the current model. Memory used per user
is measured from Redis's own `used_memory` (summed over a Cluster's primaries). A lock in Redis
keeps publishes and rollbacks one at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import redis.asyncio as aioredis
from hiredis import pack_command
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import RedisClusterException, RedisError

from recsvc.contract import vectors
from recsvc.contract.domain import ID_PATTERN
from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError, load_array
from recsvc.contract.pause_points import pause_point
from recsvc.feed.model import ServingModel
from recsvc.feed.ranker import RankingModel
from recsvc.registry.locks import Lease, async_redis_lock
from recsvc.store.client import REDIS_ERRORS, AsyncClient, slot_groups, transaction, used_memory
from recsvc.store.control import parse_pointer

log = logging.getLogger("recsvc.registry.publish")

CHUNK = 2000
IN_FLIGHT = 2  # MSETs sent before the first reply is read: Redis works while we pack the next


@asynccontextmanager
async def publish_lock(client: AsyncClient, keys: Keys, holder: str) -> AsyncIterator[Lease]:
    """Hold the publish lock for the block; LockHeld when another live run holds it."""
    busy = "another publish or rollback is running; try again when it ends"
    async with async_redis_lock(client, keys.publish_lock, holder, busy) as lease:
        yield lease


ANY: Any = object()  # publish's expected_current when any current model may be replaced


class LiveChanged(RuntimeError):
    """The current model is not the one the publisher expected to replace."""


@dataclass(frozen=True)
class PublishReport:
    version: str
    generation: int
    role: str  # "current" or "challenger": the pointer that moved
    users: int
    seconds: float
    bytes_per_user: float  # growth of Redis used_memory per user written
    previous_version: str | None
    expiring_generations: list[int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_user_vectors(directory: Path) -> tuple[RankingModel, np.ndarray, np.ndarray]:
    """Verify the model directory, as a replica will load it (graph, arrays, trending prior,
    projection, attach weights), and read its user ids and factors."""
    model = ServingModel.load(directory, None).ranking
    if "user_factors.npy" not in model.manifest.files:
        raise ArtifactError(f"{directory}: no user_factors.npy to publish")
    factors = load_array(directory / "user_factors.npy")
    ids = load_array(directory / "user_ids.npy")
    if factors.shape != (len(ids), model.manifest.dimension):
        raise ArtifactError(
            f"{directory / 'user_factors.npy'}: shape {factors.shape}, expected "
            f"{(len(ids), model.manifest.dimension)} (one row per id in user_ids.npy)"
        )
    ids = ids.astype(str)
    if not all_valid_ids(ids):
        pattern = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))
        bad = next((u for u in ids.tolist() if not pattern.fullmatch(u)), "?")
        raise ArtifactError(f"{directory / 'user_ids.npy'}: user id {bad!r} is not a valid id")
    return model, ids, factors


def all_valid_ids(ids: np.ndarray) -> bool:
    """Every id matches ID_PATTERN: one regex pass over all of them joined by newlines (a
    million ids in tens of milliseconds; the pattern admits no newline)."""
    if len(ids) == 0:
        return True
    one = ID_PATTERN.removeprefix("^").removesuffix("$")
    joined = "\n".join(ids.tolist())
    if joined.count("\n") != len(ids) - 1:  # an id holding a newline would pass as two
        return False
    return re.fullmatch(f"(?:{one}\n)*{one}", joined) is not None


async def publish(
    client: AsyncClient,
    keys: Keys,
    directory: Path,
    grace_seconds: int,
    progress: Callable[[int], None] | None = None,
    challenger: bool = False,
    expected_current: Any = ANY,
) -> PublishReport:
    """Write the vectors of `directory`'s version under a new generation and make it current
    (or the challenger).

    Holds the publish lock throughout: a second publish at the same time is refused. With
    `expected_current` (a version, or None for no current model), a current model that is
    no longer that one is not replaced (LiveChanged): a job that compared its model with the
    live one must not replace another. A publish that fails deletes what it wrote."""
    role = "challenger" if challenger else "current"
    async with publish_lock(client, keys, f"publish {directory.name} as {role}") as lease:
        return await _publish(
            client, keys, directory, grace_seconds, progress, lease, role, expected_current
        )


async def _erased(client: AsyncClient, keys: Keys) -> set[str]:
    """The users whose erasure the nightly job has not finished (Keys.erasures)."""
    return {
        u.decode() if isinstance(u, bytes) else str(u) for u in await client.hkeys(keys.erasures)
    }  # type: ignore[misc]


async def _publish(
    client: AsyncClient,
    keys: Keys,
    directory: Path,
    grace_seconds: int,
    progress: Callable[[int], None] | None,
    lease: Lease,
    role: str,
    expected_current: Any,
) -> PublishReport:
    started = time.perf_counter()
    model, user_ids, factors = await asyncio.to_thread(read_user_vectors, directory)
    # A zero vector (a user with no positive interaction) ranks nothing: such users are cold
    # and get fold-in or popularity instead, so they are not written.
    nonzero = np.any(factors != 0, axis=1)
    user_ids, factors = user_ids[nonzero], factors[nonzero]
    if progress:
        progress(int((~nonzero).sum()))
    # Users erased since the model was trained (DELETE /v1/users/{id}) never get a vector back.
    erased = await _erased(client, keys)
    if erased:
        keep = ~np.isin(user_ids, np.array(sorted(erased), dtype=user_ids.dtype))
        user_ids, factors = user_ids[keep], factors[keep]
    version = model.manifest.version
    generation = int(await client.incr(keys.model_generation))
    await client.hset(
        keys.model_generations, str(generation), entry_json(version, len(user_ids), "writing")
    )
    pointer = keys.model_challenger if role == "challenger" else keys.model_current
    try:
        before = await used_memory(client)
        if isinstance(client, AsyncRedisCluster):
            await _write_vectors_per_node(client, keys, generation, user_ids, factors, progress)
        else:
            await _write_vectors(client, keys, generation, user_ids, factors, progress)
        grown = await used_memory(client) - before
        # ...nor one erased while they were being written (the DELETE listed this generation)
        late = await _erased(client, keys) - erased
        if late:
            await client.delete(*(keys.vector(generation, u) for u in sorted(late)))
        previous = parse_pointer(await client.get(pointer))
        if expected_current is not ANY and role == "current":
            now = previous.version if previous else None
            if now != expected_current:
                raise LiveChanged(
                    f"the current model is {now}, not {expected_current} as when this run "
                    "began (a rollback or promote meanwhile?): not published over it"
                )
        lease.check()  # never flip without the lock: another publish may have taken over
        pipe = await transaction(client)
        pipe.set(pointer, json.dumps({"version": version, "generation": generation}))
        entry = entry_json(version, len(user_ids), role)
        pipe.hset(keys.model_generations, str(generation), entry)
        await pipe.execute()
    except BaseException:
        await _abandon(client, keys, generation)
        raise
    try:  # the new model is live now: what is left is housekeeping, never a failure
        expiring = await retire_old(client, keys, grace_seconds)
    except REDIS_ERRORS as exc:
        log.warning("published %s; old generations not retired yet: %s", version, exc)
        expiring = []
    return PublishReport(
        version=version,
        generation=generation,
        role=role,
        users=len(user_ids),
        seconds=round(time.perf_counter() - started, 3),
        bytes_per_user=round(grown / max(1, len(user_ids)), 1),
        previous_version=previous.version if previous else None,
        expiring_generations=expiring,
    )


async def _abandon(client: AsyncClient, keys: Keys, generation: int) -> None:
    """Best effort, after a publish failed before its flip: delete the partial generation's
    vectors and its registry entry, so that they take no memory (a retry under maxmemory
    needs the room). What cannot be deleted now, a later publish retires after an hour."""
    try:
        await set_generation_ttl(client, keys, generation, 0)
        await client.hdel(keys.model_generations, str(generation))
    except (RedisError, RedisClusterException, OSError) as exc:
        log.warning("could not delete the partial generation %s: %s", generation, exc)


async def _write_vectors(
    client: aioredis.Redis,
    keys: Keys,
    generation: int,
    user_ids: np.ndarray,
    factors: np.ndarray,
    progress: Callable[[int], None] | None,
) -> None:
    """One MSET per chunk of users, IN_FLIGHT of them on the wire at once.

    The commands are packed by hiredis and sent on one connection of the pool, each reply
    read (and checked) in order. Against redis-py's own MSET, one awaited at a time, that is
    about 4 times the rate (bench/publish.py): redis-py's asyncio client packs commands in
    Python, and Redis idles while the next chunk is packed. A failure part-way leaves the
    connection with replies unread, so it is closed rather than reused."""
    connection = await client.connection_pool.get_connection()
    in_flight: deque[int] = deque()  # sizes of the chunks sent and not yet answered

    async def answered() -> None:
        reply = await connection.read_response()
        if reply not in (b"OK", "OK"):
            raise aioredis.ResponseError(f"MSET answered {reply!r}")
        size = in_flight.popleft()
        if progress:
            progress(size)  # only once the chunk is in Redis

    clean = False
    try:
        for start in range(0, len(user_ids), CHUNK):
            block = vectors.encode_many(factors[start : start + CHUNK])
            command: list[str | bytes] = ["MSET"]
            for user, value in zip(user_ids[start : start + CHUNK].tolist(), block, strict=True):
                command += (keys.vector(generation, user), value)
            packed = pack_command(tuple(command))  # type: ignore[arg-type]
            await connection.send_packed_command(packed, False)
            in_flight.append(len(block))
            if start == 0:
                await answered()
                pause_point(
                    "publish:after-first-chunk", f"generation {generation}, pointer not moved"
                )
            elif len(in_flight) >= IN_FLIGHT:
                await answered()
        while in_flight:
            await answered()
        clean = True
    finally:
        if not clean:
            await connection.disconnect()
        await client.connection_pool.release(connection)


async def _write_vectors_per_node(
    client: AsyncRedisCluster,
    keys: Keys,
    generation: int,
    user_ids: np.ndarray,
    factors: np.ndarray,
    progress: Callable[[int], None] | None,
) -> None:
    """A Cluster's publish: per chunk of users, one MSET per hash slot (an MSET's keys must
    share one), packed by hiredis and sent to each node on one of its connections, the nodes
    at once. A slot that moves meanwhile (resharding) fails the publish, which may be run
    again."""
    for start in range(0, len(user_ids), CHUNK):
        block = vectors.encode_many(factors[start : start + CHUNK])
        names = [keys.vector(generation, user) for user in user_ids[start : start + CHUNK].tolist()]
        per_node: dict[str, tuple[ClusterNode, list[bytes]]] = {}
        for group in slot_groups(client, names):
            command: list[str | bytes] = ["MSET"]
            for i in group:
                command += (names[i], block[i])
            node = client.get_node_from_key(names[group[0]])
            if node is None:
                raise RedisClusterException(f"no node serves the slot of {names[group[0]]}")
            entry = per_node.setdefault(node.name, (node, []))
            entry[1].append(pack_command(tuple(command)))  # type: ignore[arg-type]
        await asyncio.gather(*(_send_all(node, packed) for node, packed in per_node.values()))
        if progress:
            progress(len(block))
        if start == 0:
            pause_point("publish:after-first-chunk", f"generation {generation}, pointer not moved")


async def _send_all(node: ClusterNode, commands: list[bytes]) -> None:
    """Send MSETs to one node in one write, then read (and check) every reply."""
    connection = node.acquire_connection()
    clean = False
    try:
        await connection.send_packed_command(b"".join(commands), False)
        for _ in commands:
            reply = await connection.read_response()
            if reply not in (b"OK", "OK"):
                raise aioredis.ResponseError(f"MSET to {node.name} answered {reply!r}")
        clean = True
    finally:
        if not clean:
            await connection.disconnect()
        node.release(connection)


async def retire_old(client: AsyncClient, keys: Keys, grace_seconds: int) -> list[int]:
    """Give the vectors (and registry entry) of every generation that neither pointer names,
    and that no publish is still writing, the grace TTL; forget the ones already expired."""
    live = {
        pointer.generation
        for pointer in map(
            parse_pointer, await client.mget(keys.model_current, keys.model_challenger)
        )
        if pointer is not None
    }
    expiring = []
    for field, raw in (await client.hgetall(keys.model_generations)).items():
        generation, entry = int(field), json.loads(raw)
        if generation in live:
            continue
        if entry["state"] == "expiring":
            if entry.get("expires_at", 0) < time.time():  # its keys are gone: forget it
                await client.hdel(keys.model_generations, field)
            continue
        started = datetime.fromisoformat(entry["at"]).timestamp()
        if entry["state"] == "writing" and time.time() - started < max(grace_seconds, 3600):
            continue  # another publish still writing (or died recently): leave it be
        await set_generation_ttl(client, keys, generation, grace_seconds)
        entry.update(state="expiring", expires_at=time.time() + grace_seconds)
        await client.hset(keys.model_generations, field, json.dumps(entry))
        expiring.append(generation)
    return sorted(expiring)


async def set_generation_ttl(
    client: AsyncClient, keys: Keys, generation: int, seconds: int | None
) -> int:
    """Give one generation's vectors a TTL (0: delete them now; None: no TTL, for a rollback
    to keep them); the number of keys found."""
    found = 0
    async for batch in _scan_batches(client, keys.vector_pattern(generation)):
        pipe = client.pipeline(transaction=False)
        for key in batch:
            if seconds is None:
                pipe.persist(key)
            elif seconds > 0:
                pipe.expire(key, seconds)
            else:
                pipe.execute_command("UNLINK", key)  # a Cluster pipeline's unlink() differs
        await pipe.execute()
        found += len(batch)
    return found


async def _scan_batches(client: AsyncClient, pattern: str, size: int = 2000) -> Any:
    batch = []
    async for key in client.scan_iter(match=pattern, count=size):
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def entry_json(version: str, users: int, state: str) -> str:
    """A registry entry of model:generations."""
    return json.dumps(
        {
            "version": version,
            "users": users,
            "state": state,
            "at": datetime.now(UTC).isoformat(),
        }
    )
