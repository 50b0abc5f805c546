"""`recsvc drain --follow`: a long-running drain that keeps the streams short.

Each follower is a consumer (its own name) of the streams' consumer group, and owns a share of
the shards (recsvc.contract.shards): it holds a shard's lease (training.data.drain.shard_lease)
while it drains the shard's three streams, so no two drains read one shard at once. Every
cycle a follower

1. renews its heartbeat in `Keys.drain_followers` and counts the followers alive;
2. keeps at most its share of the shards (all shards of every layout ever used, divided by the
   followers alive, rounded up), letting go of the rest for a newcomer, and takes free shards
   up to its share (a shard whose follower died is free once its lease is: at once where the
   follower's process can be seen, after the lease's TTL elsewhere);
3. drains each shard it owns: on taking a shard, first every entry a dead reader was delivered
   and never acknowledged, checked against the partitions (it may have written them before
   it died), then new entries, a chunk at a time; each chunk durable on disk before it is
   acknowledged and deleted (training.data.drain.drain_shard);
4. sleeps for `interval` when a cycle found nothing to read.

Redis then holds the streams' last seconds, not a day: what stays is the dedup markers for the
dedup window (RECSVC_EVENT_DEDUP_DAYS). The nightly job's own drain skips the shards followers
hold and trains on the partitions.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsvc.contract.keys import Keys
from recsvc.registry.locks import Lease, LockHeld, LockLost
from recsvc.store.client import REDIS_ERRORS, SyncClient
from training.data.drain import (
    CARDS,
    CHUNK,
    EVENTS,
    EXPOSURES,
    DrainReport,
    Stream,
    drain_shard,
    shard_lease,
    shard_tags,
)

KINDS: tuple[Stream, ...] = (EVENTS, EXPOSURES, CARDS)


@dataclass
class FollowReport:
    """What a follower has done so far: entries read and written per stream, cycles run,
    shards taken and let go."""

    cycles: int = 0
    streams: dict[str, DrainReport] = field(
        default_factory=lambda: {kind.name: DrainReport() for kind in KINDS}
    )
    taken: int = 0
    released: int = 0
    owned: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "cycles": self.cycles,
            "taken": self.taken,
            "released": self.released,
            "owned": sorted(self.owned),
            **{
                name: {"read": r.read, "written": r.written, "already_written": r.already_written}
                for name, r in self.streams.items()
            },
        }


class Follower:
    """One `recsvc drain --follow` process: see the module's docstring."""

    def __init__(
        self,
        client: SyncClient,
        keys: Keys,
        folders: dict[str, Path],
        consumer: str,
        *,
        interval: float = 1.0,
        chunk: int = CHUNK,
        on_cycle: Callable[[FollowReport], None] | None = None,
    ) -> None:
        self.client, self.keys, self.folders = client, keys, folders
        self.consumer, self.interval, self.chunk = consumer, interval, chunk
        self.on_cycle = on_cycle
        self.report = FollowReport()
        self._held: dict[str, tuple[AbstractContextManager[Lease], Lease]] = {}
        self._stop = threading.Event()
        self._beat = 0.0  # time.monotonic() of the last heartbeat

    def run(self, stop: threading.Event) -> FollowReport:
        """Follow until `stop` is set (between chunks); then let every shard go."""
        self._stop = stop
        try:
            while not stop.is_set():
                read = self.cycle()
                if self.on_cycle:
                    self.on_cycle(self.report)
                if not read:
                    stop.wait(self.interval)
        finally:
            self.close()
        return self.report

    def cycle(self) -> int:
        """One pass: heartbeat, rebalance, drain what this follower owns; entries read. While
        the erasure sweep asks for every shard (Keys.drain_pause), none."""
        self.report.cycles += 1
        alive = self._heartbeat()
        if self.client.exists(self.keys.drain_pause):
            for tag in list(self._held):
                self._let_go(tag)
            self.report.owned = []
            return 0
        tags = shard_tags(self.client, self.keys)
        self._rebalance(sorted(tags), math.ceil(len(tags) / max(alive, 1)))
        read = 0
        for tag in sorted(self._held):
            _, lease = self._held[tag]
            try:
                read += self._drain(tags.get(tag, {}), lease)
            except LockLost:
                self._let_go(tag)
        self.report.owned = sorted(self._held)
        return read

    def close(self) -> None:
        for tag in list(self._held):
            self._let_go(tag)
        with contextlib.suppress(*REDIS_ERRORS):  # else its heartbeat expires on its own
            self.client.hdel(self.keys.drain_followers, self.consumer)

    # -- ownership ----------------------------------------------------------------------
    def _keep_going(self) -> bool:
        """Asked before each chunk: renews the heartbeat now and then, and says stop when
        the process is stopping or the erasure sweep asks for the shards."""
        if time.monotonic() - self._beat >= 2.0:
            self._heartbeat()
        return not self._stop.is_set() and not self.client.exists(self.keys.drain_pause)

    def _heartbeat(self) -> int:
        """Renew this follower's entry; the followers alive (expired entries removed)."""
        self._beat = time.monotonic()
        now = time.time()
        ttl = max(10.0, 5 * self.interval)
        self.client.hset(self.keys.drain_followers, self.consumer, str(now + ttl))
        entries: Any = self.client.hgetall(self.keys.drain_followers)
        dead = [name for name, until in entries.items() if float(until) < now]
        if dead:
            self.client.hdel(self.keys.drain_followers, *dead)
        return len(entries) - len(dead)

    def _rebalance(self, tags: list[str], share: int) -> None:
        for tag in list(self._held):
            if tag not in tags:
                self._let_go(tag)
        while len(self._held) > share:
            self._let_go(sorted(self._held)[-1])
        # start where this follower's name points, so that followers try different shards
        start = zlib.crc32(self.consumer.encode()) % max(len(tags), 1)
        for tag in tags[start:] + tags[:start]:
            if len(self._held) >= share:
                return
            if tag in self._held:
                continue
            context = shard_lease(self.client, self.keys, tag, f"drain --follow {self.consumer}")
            try:
                lease = context.__enter__()
            except LockHeld:
                continue
            self._held[tag] = (context, lease)
            self.report.taken += 1

    def _let_go(self, tag: str) -> None:
        context, _ = self._held.pop(tag)
        with contextlib.suppress(*REDIS_ERRORS):  # else the lease expires on its own
            context.__exit__(None, None, None)
        self.report.released += 1

    # -- draining -----------------------------------------------------------------------
    def _drain(self, streams: dict[str, list[str]], lease: Lease) -> int:
        """Drain one owned shard's streams; the entries read. The ids on disk are read only
        for entries delivered before and never acknowledged (drain_shard), and forgotten
        after: a long-running follower keeps no day's ids."""
        read = 0
        for kind in KINDS:
            for key in streams.get(kind.name, []):
                done = drain_shard(
                    self.client,
                    key,
                    self.folders[kind.name],
                    kind,
                    self.consumer,
                    self.chunk,
                    {},
                    before_ack=lease.check,
                    recheck_new=False,
                    keep_going=self._keep_going,
                )
                self.report.streams[kind.name].add(done)
                read += done.read
        return read
