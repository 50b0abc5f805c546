"""Locks in Redis for the jobs that must run one at a time: publish and rollback, the nightly run.

A lock is a key set with NX and a short TTL. Its value is a token naming the holder: what it
is doing, the host, the pid, a random id and since when. While the holder's block runs, a
heartbeat renews the TTL every third of it. So a lock lives as long as its holder, and at
most `ttl` seconds after the holder dies (SIGKILL, a lost node), wherever it ran.

On the holder's own host nobody needs to wait even that long. A lock whose pid is no longer
alive there is stale, and the next run takes it over at once. The takeover is a
compare-and-set on the stale token, so two runs cannot both take the same lock over.

Release deletes the key only while it still holds our own token. When the heartbeat finds
the lock gone or taken, the lease is marked lost: work that must not happen without the lock
(a pointer flip) calls `Lease.check()` first.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

TTL_SECONDS = 60
_HELD_HERE: set[str] = set()  # ids of the tokens this process holds
# Sets the lock to a new token only if it still holds the stale one that was judged dead.
TAKE_OVER_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) and 1
end
return 0
"""
# Renews the TTL only while the lock holds our token.
EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# Deletes the lock only if it still holds our token (never another run's lock).
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockHeld(RuntimeError):
    """Another live run holds the lock; the message names it."""


class LockLost(RuntimeError):
    """The lock expired or was taken while we held it; stop before doing anything visible."""


@dataclass
class Lease:
    """A held lock: its key and token, and whether the heartbeat has seen it lost."""

    key: str
    token: str
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def id(self) -> str:
        return str(json.loads(self.token)["id"])

    def check(self) -> None:
        """Raise LockLost when the lock is no longer ours."""
        if self.lost:
            raise LockLost(f"lost the lock {self.key} while holding it (it expired or was taken)")


def new_token(what: str) -> str:
    return json.dumps(
        {
            "what": what,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "id": uuid.uuid4().hex,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )


def describe(raw: bytes | str | None) -> str:
    """A holder's token as a person reads it."""
    holder = _parse(raw)
    if holder is None:
        return repr(raw)
    return (
        f"{holder.get('what', '?')} on {holder.get('host', '?')}, pid {holder.get('pid', '?')}, "
        f"since {holder.get('since', '?')}"
    )


def is_stale(raw: bytes | str | None) -> bool:
    """True for a lock held by a process of this host that is no longer alive."""
    holder = _parse(raw)
    if holder is None or holder.get("host") != socket.gethostname():
        return False  # another host's holder: only its TTL can tell
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    if pid == os.getpid():
        # Ours if this process holds it; otherwise an earlier process that had our pid.
        return holder.get("id") not in _HELD_HERE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _parse(raw: bytes | str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _held(key: str, raw: bytes | str | None, busy: str) -> LockHeld:
    return LockHeld(f"{busy}: the lock {key} is held by {describe(raw)}")


@contextmanager
def redis_lock(
    client: redis.Redis, key: str, what: str, busy: str, ttl: int = TTL_SECONDS
) -> Iterator[Lease]:
    """Hold `key` for the block (synchronous client; the heartbeat is a thread).

    Raises LockHeld, with `busy` and the holder in the message, when a live run holds it."""
    lease = Lease(key, new_token(what))
    for _ in range(3):  # the holder may release between our SET and GET: try again
        if client.set(key, lease.token, nx=True, ex=ttl):
            break
        raw = client.get(key)
        if raw is None:
            continue
        if is_stale(raw) and client.eval(TAKE_OVER_SCRIPT, 1, key, raw, lease.token, ttl * 1000):
            break
        raise _held(key, raw, busy)
    else:
        raise _held(key, None, busy)

    def heartbeat() -> None:
        while not lease._stop.wait(ttl / 3):
            try:
                if not client.eval(EXTEND_SCRIPT, 1, key, lease.token, ttl * 1000):
                    lease.lost = True
                    return
            except redis.RedisError:
                continue  # Redis away for a moment: the TTL still covers a few misses

    thread = threading.Thread(target=heartbeat, name=f"lock {key}", daemon=True)
    thread.start()
    _HELD_HERE.add(lease.id)
    try:
        yield lease
    finally:
        _HELD_HERE.discard(lease.id)
        lease._stop.set()
        thread.join()
        client.eval(RELEASE_SCRIPT, 1, key, lease.token)


@asynccontextmanager
async def async_redis_lock(
    client: aioredis.Redis, key: str, what: str, busy: str, ttl: int = TTL_SECONDS
) -> AsyncIterator[Lease]:
    """Hold `key` for the block (asyncio client; the heartbeat is a task)."""
    lease = Lease(key, new_token(what))
    for _ in range(3):
        if await client.set(key, lease.token, nx=True, ex=ttl):
            break
        raw = await client.get(key)
        if raw is None:
            continue
        if is_stale(raw) and await client.eval(  # type: ignore[misc]
            TAKE_OVER_SCRIPT, 1, key, raw, lease.token, ttl * 1000
        ):
            break
        raise _held(key, raw, busy)
    else:
        raise _held(key, None, busy)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await client.eval(EXTEND_SCRIPT, 1, key, lease.token, ttl * 1000):  # type: ignore[misc]
                    lease.lost = True
                    return
            except redis.RedisError:
                continue

    task = asyncio.create_task(heartbeat())
    _HELD_HERE.add(lease.id)
    try:
        yield lease
    finally:
        _HELD_HERE.discard(lease.id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.eval(RELEASE_SCRIPT, 1, key, lease.token)  # type: ignore[misc]
