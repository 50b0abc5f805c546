"""Live trending counts: per UTC hour, each video's views and clicks, as the INGEST script
counts them (recsvc.store.ingest) under Keys.trend (field `<video_id>|<action>`), in the event
stream's slot; and since when they are counted (Keys.trend_since)."""

from __future__ import annotations

import asyncio
from typing import Any

from recsvc.store.gateway import Gateway
from recsvc.store.ingest import TREND_KEEP_HOURS


class TrendStore(Gateway):
    """Reading the hours' trending counts: summed over the stream shards they are kept in
    (every layout in use while they are kept)."""

    def _trend_keys(self, hour: int) -> list[str]:
        counts = self.layouts.in_use(TREND_KEEP_HOURS * 3600 + 3600)
        tags = {self.keys.stream_tag(shard, n) for n in counts for shard in range(n)}
        return [self.keys.trend(hour, tag) for tag in sorted(tags)]

    async def trend_counts(
        self, hours: list[int], current_hour: int
    ) -> tuple[int, dict[int, dict[str, int]]]:
        """The hour since which events are counted (set to `current_hour` where no one has
        set it yet: Redis starts counting now, or lost the counts), and each hour's counts
        (`<video_id>|<action>` -> count; empty for an hour with none, or expired)."""
        per_hour = [self._trend_keys(hour) for hour in hours]

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.trend_since, current_hour, nx=True)
            pipe.get(self.keys.trend_since)
            for keys in per_hour:
                for key in keys:
                    pipe.hgetall(key)
            return await pipe.execute()

        replies = await self._call("trends", work)
        # tens of thousands of fields per hour at scale: decoded off the event loop
        counts = await asyncio.to_thread(_decoded, hours, per_hour, replies[2:])
        return int(replies[1]), counts

    async def trend_hours_held(self, hours: list[int]) -> set[int]:
        """Which of these hours have counts in Redis (EXISTS on each shard's: cheap, so a
        replica need not read an hour that holds nothing)."""
        if not hours:
            return set()
        per_hour = [self._trend_keys(hour) for hour in hours]

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for keys in per_hour:
                for key in keys:
                    pipe.exists(key)
            return await pipe.execute()

        replies = iter(await self._call("trends", work))
        return {
            hour
            for hour, keys in zip(hours, per_hour, strict=True)
            if sum(next(replies) for _ in keys)
        }


def _decoded(
    hours: list[int], per_hour: list[list[str]], replies: list[Any]
) -> dict[int, dict[str, int]]:
    """Each hour's counts, summed over its shards' replies (in `per_hour`'s order)."""
    counts: dict[int, dict[str, int]] = {}
    replies_left = iter(replies)
    for hour, keys in zip(hours, per_hour, strict=True):
        merged: dict[str, int] = {}
        for _ in keys:
            for field, count in (next(replies_left) or {}).items():
                name = _text(field)
                merged[name] = merged.get(name, 0) + int(count)
        counts[hour] = merged
    return counts


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
