"""Live trending counts: per UTC hour, each video's views and clicks, as the INGEST script
counts them (recsvc.store.ingest) under Keys.trend, in the event stream's slot."""

from __future__ import annotations

from typing import Any

from recsvc.store.gateway import Gateway


class TrendStore(Gateway):
    """Reading the hours' trending counts."""

    async def trend_counts(self, hours: list[int]) -> dict[int, dict[str, int]]:
        """Each hour's counts (video id -> count; empty for an hour with none, or expired)."""
        if not hours:
            return {}

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for hour in hours:
                pipe.hgetall(self.keys.trend(hour))
            return await pipe.execute()

        replies = await self._call("trends", work)
        return {
            hour: {_text(video): int(count) for video, count in (reply or {}).items()}
            for hour, reply in zip(hours, replies, strict=True)
        }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
