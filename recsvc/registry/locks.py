"""Locks in Redis for the jobs that must run one at a time: publish and rollback, the nightly run.

A lock is a key set with NX and a short TTL. Its value is a token naming the holder: what it
is doing, the host, the pid, a random id and since when. While the holder's block runs, a
heartbeat renews the TTL every third of it. So a lock lives as long as its holder, and at
most `ttl` seconds after the holder dies (SIGKILL, a lost node), wherever it ran.

Where the holder's process can be seen (the same boot and pid namespace: the same machine
or container), nobody needs to wait even that long. A lock whose process is gone, or whose
pid now belongs to a process that started later, is stale, and the next run takes it over at
once. The takeover is a compare-and-set on the stale token, so two runs cannot both take the
same lock over. Containers that share a host name but not a pid namespace wait for the TTL.

Release deletes the key only while it still holds our own token. When the heartbeat finds
the lock gone or taken, the lease is marked lost: work that must not happen without the lock
(a pointer flip) calls `Lease.check()` first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsvc.store.client import REDIS_ERRORS, AsyncClient, SyncClient

log = logging.getLogger("recsvc.registry.locks")

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
    # time.monotonic() until which the lock is surely ours: a renewal's time plus its TTL,
    # less a margin (a holder cut off from Redis learns nothing from the heartbeat)
    valid_until: float = float("inf")

    @property
    def id(self) -> str:
        return str(json.loads(self.token)["id"])

    def check(self) -> None:
        """Raise LockLost when the lock is no longer ours, or may not be: its last renewal is
        older than its TTL allows."""
        if self.lost or time.monotonic() > self.valid_until:
            raise LockLost(f"lost the lock {self.key} while holding it (it expired or was taken)")


def new_token(what: str) -> str:
    return json.dumps(
        {
            "what": what,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "namespace": _pid_namespace(),
            "started": _start_time(os.getpid()),
            "id": uuid.uuid4().hex,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    )


def _pid_namespace() -> str | None:
    """Where a pid means the same process as here: this boot and this pid namespace (two
    containers may share a host name and each have a pid 1). None off Linux."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """When a process started (clock ticks since boot), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


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
    """True for a lock whose holder is certainly dead: a process of this very pid namespace
    (same boot) that no longer exists, or whose pid now belongs to another process. Any
    other holder (another host or container, an unreadable token) only its TTL can end."""
    holder = _parse(raw)
    here = _pid_namespace()
    if holder is None or here is None or holder.get("namespace") != here:
        return False
    pid, started = holder.get("pid"), holder.get("started")
    if not isinstance(pid, int) or not isinstance(started, int):
        return False
    if _start_time(pid) != started:
        return True  # gone, or its pid reused by another process
    # The holder's process is alive. If it is this one, the lock is ours only while a lease
    # of ours holds it (a lease whose release failed has left it behind).
    return pid == os.getpid() and holder.get("id") not in _HELD_HERE


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
    client: SyncClient, key: str, what: str, busy: str, ttl: int = TTL_SECONDS
) -> Iterator[Lease]:
    """Hold `key` for the block (synchronous client; the heartbeat is a thread).

    Raises LockHeld, with `busy` and the holder in the message, when a live run holds it."""
    lease = Lease(key, new_token(what))
    margin = ttl / 6
    lease.valid_until = time.monotonic() + ttl - margin
    for _ in range(3):  # the holder may release between our SET and GET: try again
        if client.set(key, lease.token, nx=True, ex=ttl):
            break
        raw = client.get(key)
        if raw is None:
            continue
        if not is_stale(raw):
            raise _held(key, raw, busy)
        if client.eval(TAKE_OVER_SCRIPT, 1, key, raw, lease.token, ttl * 1000):
            break
        # Another run took the dead holder's lock over first: look again.
    else:
        raise _held(key, client.get(key), busy)

    def heartbeat() -> None:
        while not lease._stop.wait(ttl / 3):
            sent = time.monotonic()
            try:
                if not client.eval(EXTEND_SCRIPT, 1, key, lease.token, ttl * 1000):
                    lease.lost = True
                    return
                lease.valid_until = sent + ttl - margin
            except REDIS_ERRORS:
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
        try:
            client.eval(RELEASE_SCRIPT, 1, key, lease.token)
        except REDIS_ERRORS as exc:  # never hide the block's own outcome: the TTL ends it
            log.warning("could not release the lock %s (%s); it expires in %ss", key, exc, ttl)


@asynccontextmanager
async def async_redis_lock(
    client: AsyncClient, key: str, what: str, busy: str, ttl: int = TTL_SECONDS
) -> AsyncIterator[Lease]:
    """Hold `key` for the block (asyncio client; the heartbeat is a task)."""
    lease = Lease(key, new_token(what))
    for _ in range(3):
        if await client.set(key, lease.token, nx=True, ex=ttl):
            break
        raw = await client.get(key)
        if raw is None:
            continue
        if not is_stale(raw):
            raise _held(key, raw, busy)
        if await client.eval(TAKE_OVER_SCRIPT, 1, key, raw, lease.token, ttl * 1000):  # type: ignore[misc]
            break
    else:
        raise _held(key, await client.get(key), busy)

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                if not await client.eval(EXTEND_SCRIPT, 1, key, lease.token, ttl * 1000):  # type: ignore[misc]
                    lease.lost = True
                    return
            except REDIS_ERRORS:
                continue

    task = asyncio.create_task(heartbeat())
    _HELD_HERE.add(lease.id)
    try:
        yield lease
    finally:
        _HELD_HERE.discard(lease.id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        try:
            await client.eval(RELEASE_SCRIPT, 1, key, lease.token)  # type: ignore[misc]
        except REDIS_ERRORS as exc:
            log.warning("could not release the lock %s (%s); it expires in %ss", key, exc, ttl)
