"""The per-client token buckets."""

from __future__ import annotations

from recsvc.edge.limits import MAX_CLIENTS, RateLimiter, client_network


def test_a_client_gets_its_burst_then_one_request_per_interval() -> None:
    limiter = RateLimiter(per_second=2, burst=3)
    assert [limiter.take("a", now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a", now=0.0) == 0.5  # one token every half second
    assert limiter.take("a", now=0.5) == 0.0
    assert limiter.take("b", now=0.5) == 0.0  # another client has its own bucket


def test_tokens_never_pile_up_beyond_the_burst() -> None:
    limiter = RateLimiter(per_second=1, burst=2)
    limiter.take("a", now=0.0)
    allowed = [limiter.take("a", now=1000.0) for _ in range(4)]
    assert allowed.count(0.0) == 2


def test_memory_stays_bounded_whatever_addresses_a_flood_comes_from() -> None:
    limiter = RateLimiter(per_second=1, burst=5)
    for i in range(3 * MAX_CLIENTS):
        limiter.take(f"addr:{i}", now=i * 1e-6)  # all at once: no bucket has refilled
    assert len(limiter) <= MAX_CLIENTS
    limiter.take("late", now=1.0)
    assert limiter.take("late", now=1.0) == 0.0  # the newest client still has its burst


def test_an_ipv6_client_counts_by_its_64_network_and_a_mapped_ipv4_by_its_address() -> None:
    assert client_network("192.0.2.7") == "addr:192.0.2.7"
    same_host = {client_network(f"2001:db8:1:2::{i:x}") for i in range(1, 1000)}
    assert same_host == {"addr:2001:db8:1:2::/64"}  # rotating addresses share one bucket
    assert client_network("2001:db8:1:3::1") != client_network("2001:db8:1:2::1")
    assert client_network("::ffff:192.0.2.7") == "addr:192.0.2.7"  # a dual-stack socket
