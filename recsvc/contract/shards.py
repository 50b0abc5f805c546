"""How the event, exposure and card streams are split into shards, and which layouts were used.

A contract module: the service appends to the streams, the drain and the nightly job read them.

**A layout** is a shard count N. A user's entries go to shard `crc32(user_id) % N` of each
stream, so one user's events stay in order in one shard. With N = 1 the streams keep the
names they had before sharding (`<p>:events`, `<p>:exposures`, `<p>:cards`). With N > 1, shard
i of all three streams carries one hash tag (`Keys.stream_tag`), chosen so that its Redis
Cluster slot lies in the i-th of N equal slot ranges: a cluster whose masters own equal
ranges (what `redis-cli --cluster create` makes) gets every master at least one shard as soon
as N is at least the number of masters. The dedup markers and trending counts of a shard's
events share its tag, so one script appends, dedups and counts in one slot.

**Changing N** (`recsvc streams shards N`) stores a new layout in Redis
(`Keys.stream_layouts`) that takes effect SWITCH_SECONDS later: every replica reads it on its
next poll, well before, and all switch at that time by their own clocks. Nothing moves:
entries stay in the shard they were appended to, and the drain reads every shard of every
layout ever used until it is empty. A user's shard changes with N, so from the change until
the dedup window after it an event is also looked for in the user's shard of the other
layout: a client's retry of an event accepted before the switch (or on a replica whose clock
switched a moment earlier) is a duplicate, not a second event.
"""

from __future__ import annotations

import binascii
import json
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache

MAX_SHARDS = 1024
# A change of layout takes effect this long after it is stored, so that every replica has
# polled it before (RECSVC_POLL_SECONDS is at most 5) and all switch at the same time.
SWITCH_SECONDS = 30.0
CLUSTER_SLOTS = 16384
STREAMS = ("events", "exposures", "cards")


def shard_of(user_id: str, shards: int) -> int:
    """The shard of a user's entries under a layout of `shards` (stable across processes)."""
    return zlib.crc32(user_id.encode()) % shards if shards > 1 else 0


def key_slot(key: str) -> int:
    """The Redis Cluster slot of a key: CRC16 (XMODEM) of its hash tag, or of the whole key."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % CLUSTER_SLOTS


@lru_cache(maxsize=4096)
def shard_tag(prefix: str, shard: int, shards: int) -> str:
    """The hash tag of shard `shard` of `shards` (N > 1): `<prefix>:s<N>.<i>.<j>`, with the
    first j whose slot lies in the middle half of the i-th of N equal slot ranges."""
    width = CLUSTER_SLOTS / shards
    low, high = (shard + 0.25) * width, (shard + 0.75) * width
    for j in range(100_000):
        tag = f"{prefix}:s{shards}.{shard}.{j}"
        if low <= binascii.crc_hqx(tag.encode(), 0) % CLUSTER_SLOTS < high:
            return tag
    raise AssertionError(f"no tag found for shard {shard} of {shards}")  # pragma: no cover


@dataclass(frozen=True)
class Layout:
    """A shard count and when it was in use (epoch seconds; `until` None: the current one)."""

    shards: int
    since: float
    until: float | None = None


class LayoutError(ValueError):
    """A shard count that cannot be used; the message says why."""


def check_shards(shards: int) -> int:
    if not 1 <= shards <= MAX_SHARDS:
        raise LayoutError(f"shards must be between 1 and {MAX_SHARDS}, not {shards}")
    return shards


@dataclass(frozen=True)
class Layouts:
    """Every layout used, oldest first; the last is the newest, which may start in the future
    (a change takes effect SWITCH_SECONDS after it is stored). No layout stored: one shard
    since ever (how a deployment from before sharding reads)."""

    history: tuple[Layout, ...] = (Layout(1, 0.0),)

    @property
    def current(self) -> int:
        """The newest layout: the one in effect, or about to be."""
        return self.history[-1].shards

    def in_effect(self, now: float | None = None) -> int:
        """The shard count new entries go to at `now` (default: the clock)."""
        at = time.time() if now is None else now
        for layout in reversed(self.history):
            if layout.since <= at:
                return layout.shards
        return self.history[0].shards

    def in_use(self, seconds: float, now: float | None = None) -> tuple[int, ...]:
        """The shard counts whose entries may be written within `seconds` before `now` or
        SWITCH_SECONDS after it: the one in effect first, then the others, each once. (An
        event retried across a change is looked for in all of them: replicas' clocks differ
        by a little, and a replica switches at its own clock's time.)"""
        at = time.time() if now is None else now
        counts = [self.in_effect(at)]
        for layout in reversed(self.history):
            ended = layout.until is not None and layout.until < at - seconds
            if not ended and layout.since <= at + SWITCH_SECONDS and layout.shards not in counts:
                counts.append(layout.shards)
        return tuple(counts)

    def ever(self) -> tuple[int, ...]:
        """Every shard count ever used or about to be (the newest first): where entries may
        remain."""
        return tuple(dict.fromkeys(layout.shards for layout in reversed(self.history)))

    def changed_to(
        self, shards: int, now: float | None = None, delay: float = SWITCH_SECONDS
    ) -> Layouts:
        """The layouts after a change to `shards`, in effect `delay` seconds from `now` (the
        same, when it is already the newest). A newest layout not in effect yet is replaced:
        nothing was written to it."""
        check_shards(shards)
        if shards == self.current:
            return self
        at = (time.time() if now is None else now) + delay
        history = list(self.history)
        while len(history) > 1 and history[-1].since > at - delay:
            history.pop()  # not in effect yet: never written
        last = history[-1]
        if last.shards == shards:
            return Layouts((*history[:-1], Layout(shards, last.since)))
        retired = Layout(last.shards, last.since, at)
        return Layouts((*history[:-1], retired, Layout(shards, at)))

    def to_json(self) -> str:
        return json.dumps(
            [{"shards": x.shards, "since": x.since, "until": x.until} for x in self.history]
        )

    @classmethod
    def from_json(cls, text: str | bytes | None) -> Layouts:
        """The stored layouts (None: none stored, one shard). LayoutError names what is wrong
        in a stored value that cannot be read."""
        if text is None:
            return cls()
        try:
            raw = json.loads(text)
            history = tuple(
                Layout(check_shards(int(x["shards"])), float(x["since"]), _until(x["until"]))
                for x in raw
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise LayoutError(f"the stored stream layouts cannot be read: {exc}") from exc
        if not history or history[-1].until is not None:
            raise LayoutError("the stored stream layouts name no current layout")
        return cls(history)


def _until(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
