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
(`Keys.stream_layouts`); every replica reads it on its next poll. Nothing moves: entries stay
in the shard they were appended to, and the drain reads every shard of every layout ever used
until it is empty. A user's shard changes with N, so for the dedup window after a change an
event is also looked for in the user's shard of each layout retired within that window: a
client's retry of an event accepted before the change is a duplicate, not a second event.
"""

from __future__ import annotations

import binascii
import json
import time
import zlib
from dataclasses import dataclass
from functools import lru_cache

MAX_SHARDS = 1024
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
    """Every layout used, oldest first; the last is the current one. No layout stored: one
    shard since ever (how a deployment from before sharding reads)."""

    history: tuple[Layout, ...] = (Layout(1, 0.0),)

    @property
    def current(self) -> int:
        return self.history[-1].shards

    def recent(self, seconds: float, now: float | None = None) -> tuple[int, ...]:
        """The shard counts in use within the last `seconds`: the current one first, then
        those retired since, newest first, each once."""
        since = (time.time() if now is None else now) - seconds
        counts = [self.current]
        for layout in reversed(self.history[:-1]):
            if layout.until is not None and layout.until >= since and layout.shards not in counts:
                counts.append(layout.shards)
        return tuple(counts)

    def ever(self) -> tuple[int, ...]:
        """Every shard count ever used (the current one first): where entries may remain."""
        return self.recent(float("inf"))

    def changed_to(self, shards: int, now: float | None = None) -> Layouts:
        """The layouts after a change to `shards` (the same, when it is already current)."""
        check_shards(shards)
        if shards == self.current:
            return self
        at = time.time() if now is None else now
        retired = Layout(self.current, self.history[-1].since, at)
        return Layouts((*self.history[:-1], retired, Layout(shards, at)))

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
