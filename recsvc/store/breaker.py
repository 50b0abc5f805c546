"""The store's circuit breaker: when to stop calling a Redis that looks down.

A refused or broken connection means Redis is down: stop at once. A timeout alone does not:
one slow call (a large key, a busy moment) must not take Redis away from every request of the
replica, so only several timeouts within a short window open the breaker. While open, calls
are refused without touching Redis (feeds degrade, writes answer 503) until `retry_seconds`
have passed; the store's poll keeps probing meanwhile.
"""

from __future__ import annotations

import time
from collections import deque


class Breaker:
    """When the store stops calling Redis, for `retry_seconds`: at once on a failure to reach
    it, or when `failures` calls time out within `window_seconds`. A success does not close it
    early, nor forget the timeouts (see FeatureStore._call)."""

    def __init__(self, retry_seconds: float, failures: int, window_seconds: float) -> None:
        self.retry_seconds = retry_seconds
        self.failures = failures
        self.window_seconds = window_seconds
        self._timeouts: deque[float] = deque(maxlen=failures)  # the latest ones
        self._open_until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._open_until

    @property
    def quiet(self) -> bool:
        """Closed, and no timeout within the window."""
        now = time.monotonic()
        recent = bool(self._timeouts) and now - self._timeouts[-1] < self.window_seconds
        return now >= self._open_until and not recent

    def failed(self, timeout: bool) -> bool:
        """Count a failure; whether it opened the breaker (it was closed)."""
        now = time.monotonic()
        if timeout:
            self._timeouts.append(now)
            if len(self._timeouts) < self.failures:
                return False
            if now - self._timeouts[0] > self.window_seconds:
                return False
        opened = now >= self._open_until
        self._open_until = now + self.retry_seconds
        return opened
