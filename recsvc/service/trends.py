"""The live trending counts a replica keeps: each recent UTC hour's counts read from Redis
(recsvc.store.trends), the hour under way and the one before it every TREND_REFRESH_SECONDS,
the older hours (closed: an event stamped late may still land in them) every
TREND_REREAD_SECONDS. Only the hours of the longest window a loaded model's prior uses are
kept, so memory stays bounded by the videos watched in that window (at most a week and an
hour: TREND_KEEP_HOURS, how long Redis keeps an hour's counts). Every replica reads the same
counts, so every replica ranks with the same prior within seconds of the events.
"""

from __future__ import annotations

import math
import time
from collections import Counter

from recsvc.store.trends import TrendStore

TREND_REFRESH_SECONDS = 5.0
TREND_REREAD_SECONDS = 300.0


def window_hours(hours: float, now: float) -> list[int]:
    """The UTC hours a window of `hours` ending at `now` reads: the hour under way and the
    ceil(hours) before it (the window is counted in whole hours, so it reaches up to one
    hour further back than `hours`)."""
    current = int(now // 3600)
    return list(range(current - math.ceil(hours), current + 1))


class LiveTrends:
    def __init__(self) -> None:
        self._hours: dict[int, tuple[dict[str, int], float]] = {}  # hour -> counts, read at
        self._refreshed = float("-inf")
        self.revision = 0  # grows with every refresh that changed a count

    def due(self, now_monotonic: float) -> bool:
        return now_monotonic - self._refreshed >= TREND_REFRESH_SECONDS

    async def refresh(self, store: TrendStore, hours: float, now: float | None = None) -> bool:
        """Read what is due for windows of up to `hours`; True when any count changed."""
        now = time.time() if now is None else now
        read_at = time.monotonic()
        current = int(now // 3600)
        kept = window_hours(hours, now)
        wanted = [
            hour
            for hour in kept
            if hour >= current - 1
            or hour not in self._hours
            or read_at - self._hours[hour][1] >= TREND_REREAD_SECONDS
        ]
        counts = await store.trend_counts(wanted)
        changed = False
        for hour in [h for h in self._hours if h not in kept]:
            del self._hours[hour]
            changed = True
        for hour, values in counts.items():
            old = self._hours.get(hour)
            changed = changed or (old[0] if old else {}) != values
            self._hours[hour] = (values, read_at)
        self._refreshed = read_at
        if changed:
            self.revision += 1
        return changed

    def counts(self, hours: float, now: float | None = None) -> Counter[str]:
        """Each video's count over a window of `hours` ending at `now` (window_hours)."""
        now = time.time() if now is None else now
        total: Counter[str] = Counter()
        for hour in window_hours(hours, now):
            total.update(self._hours.get(hour, ({}, 0.0))[0])
        return total
