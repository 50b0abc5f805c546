"""The live trending counts a replica keeps: each recent UTC hour's counts read from Redis
(recsvc.store.trends), the hour under way and the one before it every TREND_REFRESH_SECONDS,
the older hours (closed, but an event stamped late may still land in them) at most
TREND_REREAD_HOURS at a time, each again after TREND_REREAD_SECONDS: a week of hours is read
over about three minutes, never in one burst that would hold Redis (an hour of 20,000 videos
takes Redis about 3 ms to send). A failed read waits for the
next refresh. Only the hours of the longest window a loaded model's prior uses are kept, and
each window's total is kept up to date by the changes alone.

A model's window is covered once every hour of it has been read and the counts have been kept
since before it began (Keys.trend_since): until then the model serves its prior as exported,
so a replica started on a new Redis, or on one that lost its counts, never ranks a week's
window from the last few minutes of events.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping

from recsvc.store.trends import TrendStore

TREND_REFRESH_SECONDS = 5.0
TREND_REREAD_SECONDS = 1800.0
TREND_REREAD_HOURS = 4


def window_hours(hours: float, now: float) -> list[int]:
    """The UTC hours a window of `hours` ending at `now` reads: the hour under way and the
    ceil(hours) before it (the window is counted in whole hours, so it reaches up to one
    hour further back than `hours`)."""
    current = int(now // 3600)
    return list(range(current - math.ceil(hours), current + 1))


class _Window:
    """One window's running total over the hours it holds (field -> count)."""

    def __init__(self) -> None:
        self.held: dict[int, dict[str, int]] = {}  # hour -> the counts added for it
        self.total: Counter[str] = Counter()

    def sync(self, wanted: Mapping[int, dict[str, int]]) -> None:
        dropped = False
        for hour in [h for h in self.held if h not in wanted]:
            self.total.subtract(self.held.pop(hour))
            dropped = True
        for hour, counts in wanted.items():
            held = self.held.get(hour)
            if held is counts:
                continue
            if held is not None:
                self.total.subtract(held)
                dropped = True
            self.total.update(counts)
            self.held[hour] = counts
        if dropped:
            self.total = +self.total  # no zero or negative entries kept


class LiveTrends:
    def __init__(self) -> None:
        self._hours: dict[int, tuple[dict[str, int], float]] = {}  # hour -> counts, read at
        self._windows: dict[float, _Window] = {}
        self._refreshed = float("-inf")
        self.since: int | None = None  # the hour since which Redis keeps the counts
        self.revision = 0  # grows with every refresh that changed a count
        self.read_unix = 0.0  # when the counts were last read (Unix time; 0: never)

    def due(self, now_monotonic: float) -> bool:
        return now_monotonic - self._refreshed >= TREND_REFRESH_SECONDS

    async def refresh(self, store: TrendStore, hours: float, now: float | None = None) -> bool:
        """Read what is due for windows of up to `hours`; True when any count changed."""
        now = time.time() if now is None else now
        read_at = time.monotonic()
        self._refreshed = read_at  # a failed read waits for the next refresh, too
        current = int(now // 3600)
        kept = window_hours(hours, now)
        older = [h for h in kept if h < current - 1]
        unread = [h for h in older if h not in self._hours]
        if unread:  # the hours that hold nothing are read at once, as empty
            held = await store.trend_hours_held(unread)
            for hour in unread:
                if hour not in held:
                    self._hours[hour] = ({}, read_at)
            unread = [h for h in unread if h in held]
        stale = sorted(
            (
                h
                for h in older
                if h in self._hours and read_at - self._hours[h][1] >= TREND_REREAD_SECONDS
            ),
            key=lambda h: self._hours[h][1],
        )
        wanted = [current - 1, current, *(unread + stale)[:TREND_REREAD_HOURS]]
        since, counts = await store.trend_counts(wanted, current)
        self.read_unix = time.time()
        changed = since != self.since
        self.since = since
        for hour in [h for h in self._hours if h not in kept]:
            del self._hours[hour]
            changed = True
        for hour, values in counts.items():
            old = self._hours.get(hour)
            if old is None or old[0] != values:
                self._hours[hour] = (values, read_at)
                changed = True
            else:
                self._hours[hour] = (old[0], read_at)
        if changed:
            self.revision += 1
        return changed

    def covered(self, hours: float, now: float | None = None) -> bool:
        """Whether the counts hold the whole window of `hours` ending at `now`."""
        window = window_hours(hours, time.time() if now is None else now)
        return (
            self.since is not None
            and self.since <= window[0]
            and all(h in self._hours for h in window)
        )

    def video_counts(
        self, hours: float, weights: Mapping[str, float], now: float | None = None
    ) -> Counter[str]:
        """Each video's count over a window of `hours` ending at `now` (window_hours), of the
        actions with a positive weight in `weights` (a model's confidence weights: what its
        trainer counted)."""
        now = time.time() if now is None else now
        window = self._windows.setdefault(hours, _Window())
        window.sync({h: self._hours[h][0] for h in window_hours(hours, now) if h in self._hours})
        counted: Counter[str] = Counter()
        for field, count in window.total.items():
            video, _, action = field.rpartition("|")
            if weights.get(action, 0.0) > 0:
                counted[video] += count
        return counted
