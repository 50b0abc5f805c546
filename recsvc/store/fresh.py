"""The first events on videos the model does not know (Keys.fresh_viewers): written once the
events are accepted, read by every replica to solve the videos' collaborative vectors
(recsvc.service.fresh).

Each video's hash maps an event id to `<user_id>|<action>|<watch ratio>`: writing an event
twice (a client's retry) writes the same field, so nothing counts twice. A hash holds at most
FRESH_EVENTS_MAX events (enough for a vector; the next nightly model learns from all of them,
from the stream) and expires FRESH_KEEP_SECONDS after its last write, so the keys of videos
no one watches any more go by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import cached_property
from typing import Any

from redis.commands.core import AsyncScript

from recsvc.store.client import run_per_slot
from recsvc.store.gateway import Gateway

FRESH_EVENTS_MAX = 500
FRESH_KEEP_SECONDS = 7 * 86400

# KEYS[1]: a video's hash. ARGV: the most fields it may hold, its TTL, then field/value pairs.
# Fields already there are rewritten (the same event again); new ones only while there is
# room. Returns the number of new fields written.
RECORD_SCRIPT = """
local room = tonumber(ARGV[1]) - redis.call('HLEN', KEYS[1])
local added = 0
for i = 3, #ARGV, 2 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  elseif added < room then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    added = added + 1
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return added
"""


class FreshStore(Gateway):
    """Recording and reading the viewers of fresh videos, and reading users' vectors."""

    @cached_property
    def _record_fresh(self) -> AsyncScript:
        return self.client.register_script(RECORD_SCRIPT)

    async def record_fresh_views(self, events: Mapping[str, Mapping[str, str]]) -> None:
        """Record, per fresh video, its events (event id -> `user|action|ratio`)."""
        calls = [
            (
                [self.keys.fresh_viewers(video)],
                [FRESH_EVENTS_MAX, FRESH_KEEP_SECONDS, *(x for p in fields.items() for x in p)],
            )
            for video, fields in events.items()
            if fields
        ]
        if calls:
            await self._call(
                "fresh_record", lambda: run_per_slot(self.client, self._record_fresh, calls)
            )

    async def fresh_view_counts(self, videos: list[str]) -> dict[str, int]:
        """How many events each video's record holds (0: none)."""
        replies = await self._per_key("hlen", [self.keys.fresh_viewers(v) for v in videos])
        return {video: int(n or 0) for video, n in zip(videos, replies, strict=True)}

    async def fresh_views(self, videos: list[str]) -> dict[str, dict[str, str]]:
        """Each video's recorded events (event id -> `user|action|ratio`)."""
        replies = await self._per_key("hgetall", [self.keys.fresh_viewers(v) for v in videos])
        return await asyncio.to_thread(_decoded, videos, replies)  # up to 500 fields a video

    async def user_vectors(self, generation: int, users: list[str]) -> dict[str, bytes]:
        """The published vectors of these users under a model generation (those that have one)."""
        replies = await self._per_key("get", [self.keys.vector(generation, u) for u in users])
        return {u: bytes(r) for u, r in zip(users, replies, strict=True) if r is not None}

    async def _per_key(self, command: str, keys: list[str]) -> list[Any]:
        """One read command per key, pipelined (one round trip; a Cluster's per node)."""
        if not keys:
            return []

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                getattr(pipe, command)(key)
            return await pipe.execute()

        return await self._call("fresh_read", work)


def _decoded(videos: list[str], replies: list[Any]) -> dict[str, dict[str, str]]:
    return {
        video: {_text(k): _text(v) for k, v in (reply or {}).items()}
        for video, reply in zip(videos, replies, strict=True)
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
