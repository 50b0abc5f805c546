"""Seeding users' state from history, in a real Redis (recsvc.store.backfill).

History goes behind what the service has ingested live: a user's recent list keeps its live
entries first and takes history, newest first, into the room left under the limit. Purchases
join the purchased set under the same limit as ingestion. A user is seeded once per backfill
id: running the same backfill again (or resuming one) changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import redis

from recsvc.contract.keys import Keys
from recsvc.store.backfill import Seeded, UserHistory, backfill_users
from recsvc.store.client import async_client

KEYS = Keys()


def run(url: str, name: str, users: Sequence[UserHistory], limit: int = 3, most: int = 2) -> Seeded:
    async def work() -> Seeded:
        client = async_client(url)
        try:
            return await backfill_users(client, KEYS, name, users, limit, most)
        finally:
            await client.aclose()

    return asyncio.run(work())


def recent(url: str, user: str) -> list[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return client.lrange(KEYS.recent(user), 0, -1)


def purchased(url: str, user: str) -> set[str]:
    with redis.Redis.from_url(url, decode_responses=True) as client:
        return client.smembers(KEYS.purchased(user))


ALICE = UserHistory(
    "alice", ["video|v3|view|1.5", "video|v2|impression|", "video|v1|view|0.5"], ["p-ins"]
)


def test_a_user_gets_their_latest_history_and_purchases(redis_url: str) -> None:
    seeded = run(redis_url, "h1", [ALICE, UserHistory("bob", ["product|p-dep|click|"])])
    assert (seeded.users, seeded.skipped, seeded.recent, seeded.purchases) == (2, 0, 4, 1)
    assert recent(redis_url, "alice") == list(ALICE.recent)
    assert purchased(redis_url, "alice") == {"p-ins"}
    assert recent(redis_url, "bob") == ["product|p-dep|click|"]


def test_the_same_backfill_again_changes_nothing(redis_url: str) -> None:
    run(redis_url, "h1", [ALICE])
    again = run(redis_url, "h1", [ALICE])
    assert (again.users, again.skipped, again.recent, again.purchases) == (0, 1, 0, 0)
    assert recent(redis_url, "alice") == list(ALICE.recent)


def test_a_resumed_backfill_seeds_only_the_users_not_done(redis_url: str) -> None:
    bob = UserHistory("bob", ["video|v9|view|1.0"])
    run(redis_url, "h1", [ALICE])  # a run that stopped after alice
    resumed = run(redis_url, "h1", [ALICE, bob])
    assert (resumed.users, resumed.skipped) == (1, 1)
    assert recent(redis_url, "alice") == list(ALICE.recent)
    assert recent(redis_url, "bob") == ["video|v9|view|1.0"]


def test_live_entries_stay_first_and_history_fills_the_room_left(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.lpush(KEYS.recent("alice"), "video|v7|view|1.0", "video|v8|click|")
    run(redis_url, "h1", [ALICE], limit=3)
    assert recent(redis_url, "alice") == ["video|v8|click|", "video|v7|view|1.0", ALICE.recent[0]]


def test_purchases_stop_at_the_per_user_limit_and_are_counted(redis_url: str) -> None:
    with redis.Redis.from_url(redis_url) as client:
        client.sadd(KEYS.purchased("carol"), "p-live")
    seeded = run(redis_url, "h1", [UserHistory("carol", [], ["p-live", "p-a", "p-b"])], most=2)
    assert (seeded.purchases, seeded.over_limit) == (1, 1)
    assert purchased(redis_url, "carol") == {"p-live", "p-a"}


def test_the_recent_list_never_exceeds_the_limit(redis_url: str) -> None:
    long = UserHistory("dave", [f"video|v{i}|view|" for i in range(10)])
    run(redis_url, "h1", [long], limit=4)
    assert recent(redis_url, "dave") == [f"video|v{i}|view|" for i in range(4)]
