"""Live trending counts: per UTC hour, each video's views and clicks, as the INGEST script
counts them (recsvc.store.ingest) under Keys.trend (field `<video_id>|<action>`), in the event
stream's slot; and since when they are counted (Keys.trend_since)."""

from __future__ import annotations

import asyncio
from typing import Any

from recsvc.store.gateway import Gateway


class TrendStore(Gateway):
    """Reading the hours' trending counts."""

    async def trend_counts(
        self, hours: list[int], current_hour: int
    ) -> tuple[int, dict[int, dict[str, int]]]:
        """The hour since which events are counted (set to `current_hour` where no one has
        set it yet: Redis starts counting now, or lost the counts), and each hour's counts
        (`<video_id>|<action>` -> count; empty for an hour with none, or expired)."""

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.trend_since, current_hour, nx=True)
            pipe.get(self.keys.trend_since)
            for hour in hours:
                pipe.hgetall(self.keys.trend(hour))
            return await pipe.execute()

        replies = await self._call("trends", work)
        # tens of thousands of fields per hour at scale: decoded off the event loop
        counts = await asyncio.to_thread(_decoded, hours, replies[2:])
        return int(replies[1]), counts

    async def trend_hours_held(self, hours: list[int]) -> set[int]:
        """Which of these hours have counts in Redis (one EXISTS each: cheap, so a replica
        need not read an hour that holds nothing)."""
        if not hours:
            return set()

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for hour in hours:
                pipe.exists(self.keys.trend(hour))
            return await pipe.execute()

        replies = await self._call("trends", work)
        return {hour for hour, held in zip(hours, replies, strict=True) if held}


def _decoded(hours: list[int], replies: list[Any]) -> dict[int, dict[str, int]]:
    return {
        hour: {_text(field): int(count) for field, count in (reply or {}).items()}
        for hour, reply in zip(hours, replies, strict=True)
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
