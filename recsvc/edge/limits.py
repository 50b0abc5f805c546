"""Per-client request rate limits: one token bucket per client, in this replica's memory.

A client is its API key (by digest label), or its address where no key is needed; failed
authentications are limited per address too (recsvc.edge.gate). An IPv6 address counts by its /64
network, the block one host is usually given: else one host would have 2**64 buckets. The
limit is per replica: with N replicas behind a balancer a client gets up to N times the rate,
which is what a guard against a runaway client needs (a quota would live in Redis instead).
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

MAX_CLIENTS = 10_000  # buckets kept; idle (full) buckets are dropped beyond this


def client_network(host: str) -> str:
    """The bucket name of a client address: `addr:<IPv4>`, or `addr:<IPv6 /64 network>`."""
    if ":" not in host:
        return f"addr:{host}"
    try:
        address = ipaddress.IPv6Address(host)
    except ValueError:  # not an address (a unix socket's peer name, a proxy's label)
        return f"addr:{host}"
    if address.ipv4_mapped is not None:  # an IPv4 client of a dual-stack socket
        return f"addr:{address.ipv4_mapped}"
    return f"addr:{ipaddress.IPv6Network((address, 64), strict=False)}"


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def take(self, client: str, now: float | None = None) -> float:
        """Take one request's token: 0.0 when allowed, else the seconds until one is free."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(client)
        if bucket is None:
            if len(self._buckets) >= MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self._buckets[client] = _Bucket(float(self.burst), now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.per_second

    def _forget_idle(self, now: float) -> None:
        """Drop the buckets that have refilled (forgetting them changes nothing), else the
        oldest half: memory stays bounded whatever addresses a flood comes from."""
        refill = self.burst / self.per_second
        idle = [c for c, b in self._buckets.items() if now - b.updated >= refill]
        if len(idle) < len(self._buckets) // 2:
            by_age = sorted(self._buckets, key=lambda c: self._buckets[c].updated)
            idle = by_age[: len(self._buckets) // 2]
        for client in idle:
            del self._buckets[client]

    def __len__(self) -> int:
        return len(self._buckets)
