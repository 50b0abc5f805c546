"""User state: one round trip for everything a feed needs of its users, the per-day attach
counters, and profiles (upstream's, with purchased products added).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript

from recsvc.contract.keys import Keys
from recsvc.contract.records import Profile, UserProfile
from recsvc.contract.user_state import UserState
from recsvc.store.client import (
    run_per_slot,
    slot_groups,
    transaction,
)
from recsvc.store.gateway import (
    Gateway,
    int_or_none,
    str_or_none,
    utc_day,
)

CAPS_TTL_SECONDS = 2 * 24 * 3600
PROFILE_SLOTS_AT_ONCE = 64  # a bulk profile write's transactions in flight (one per slot)


# Reads the state of a batch of users in one call. KEYS: each user (Keys.user). ARGV:
# prefix, '1' when there is a vector to read, its generation, the UTC day, the daily cap. Of
# today's attach counters only the products at the cap come back, and the counts per
# category (fields 'c|<category>'). One key per user, the rest built here: packing each
# argument was most of the client's cost (bench/serve.py).
READ_SCRIPT = """
local prefix, with_vector, generation, day = ARGV[1], ARGV[2] == '1', ARGV[3], ARGV[4]
local cap = tonumber(ARGV[5])
local vectors = prefix .. ':vec:' .. generation .. ':'
local out = {}
for _, user in ipairs(KEYS) do
  local vector = false
  if with_vector then
    vector = redis.call('GET', vectors .. string.sub(user, #prefix + 2))  -- '{u:<id>}'
  end
  local counts, capped, categories = redis.call('HGETALL', user .. ':caps:' .. day), {}, {}
  for i = 1, #counts, 2 do
    if string.sub(counts[i], 1, 2) == 'c|' then
      categories[#categories + 1] = string.sub(counts[i], 3)
      categories[#categories + 1] = counts[i + 1]
    elseif tonumber(counts[i + 1]) >= cap then capped[#capped + 1] = counts[i] end
  end
  out[#out + 1] = {vector, redis.call('HGETALL', user .. ':profile'),
    redis.call('SUNION', user .. ':holdings', user .. ':purchased'),
    redis.call('LRANGE', user .. ':recent', 0, -1),
    capped, categories}
end
return out
"""

# Counts attached products, each only while under the product's daily cap and its
# category's (if any): check and increment are one step, so concurrent feeds of one user
# cannot both take the last slot. KEYS: the user of each page (Keys.user; a user may have
# several pages). ARGV: UTC day, TTL of the counters, the daily cap, then each page's cards
# joined by ',', each "product=category=cap" (cap empty: none on the category). Returns
# "i=product" for each card refused because a cap is reached, i the page's position from 1
# (those cards are withdrawn), and "i=product=count=category count" for each card counted.
COUNT_SCRIPT = """
local day, ttl, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local refused, counted = {}, {}
for entry, user in ipairs(KEYS) do
  local key = user .. ':caps:' .. day
  for product, category, limit in string.gmatch(ARGV[3 + entry], '([^,=]+)=([^,=]*)=([^,=]*)') do
    local field = 'c|' .. category
    local under = tonumber(redis.call('HGET', key, product) or '0') < cap
    if under and limit ~= '' then
      under = tonumber(redis.call('HGET', key, field) or '0') < tonumber(limit)
    end
    if under then
      local count = redis.call('HINCRBY', key, product, 1)
      local in_category = redis.call('HINCRBY', key, field, 1)
      counted[#counted + 1] = entry .. '=' .. product .. '=' .. count .. '=' .. in_category
    else
      refused[#refused + 1] = entry .. '=' .. product
    end
  end
  redis.call('EXPIRE', key, ttl)
end
return {refused, counted}
"""


@dataclass(frozen=True)
class Counted:
    """One page's cards against the daily caps: those refused (a cap reached already) and
    each admitted one's count today, and its category's, itself included."""

    refused: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    category_counts: dict[str, int] = field(default_factory=dict)  # by product


@dataclass(frozen=True)
class Card:
    """A card to count: its product, its category, and the cap on the category for this
    user today (None: none)."""

    product_id: str
    category: str
    category_cap: int | None = None

    def arg(self) -> str:
        cap = "" if self.category_cap is None else str(self.category_cap)
        return f"{self.product_id}={self.category}={cap}"


class UserStore(Gateway):
    """A user's state on the request path, the attach counters and profiles."""

    @cached_property
    def _read(self) -> AsyncScript:
        return self.client.register_script(READ_SCRIPT)

    @cached_property
    def _count(self) -> AsyncScript:
        return self.client.register_script(COUNT_SCRIPT)

    # -- reads on the request path ------------------------------------------------------
    async def user_states(
        self, user_ids: list[str], generation: int | None, day: str, daily_cap: int
    ) -> list[UserState]:
        """Several users' vectors and states, in one round trip (one script per slot on a
        Cluster); `capped` holds the products attached `daily_cap` times today."""
        args = [
            self.keys.prefix,
            "0" if generation is None else "1",
            str(generation or 0),
            day,
            str(daily_cap),
        ]
        users = [self.keys.user(user_id) for user_id in user_ids]
        groups = slot_groups(self.client, users)
        calls = [([users[i] for i in group], args) for group in groups]
        replies = await self._call(
            "user_state", lambda: run_per_slot(self.client, self._read, calls)
        )
        states: list[UserState] = [UserState()] * len(user_ids)
        for group, reply in zip(groups, replies, strict=True):
            for position, state in zip(group, reply, strict=True):
                states[position] = _user_state(state)
        return states

    async def count_attached(
        self, day: str, attached: list[tuple[str, list[Card]]], daily_cap: int
    ) -> list[Counted]:
        """Add one to today's attach counter of each card's product and category on each
        page (user, cards), while under the caps; per page, the products refused because a
        cap is reached already and the admitted ones' counts."""
        pages = [i for i, (_, products) in enumerate(attached) if products]
        counted = [Counted() for _ in attached]
        if not pages:
            return counted
        users = [self.keys.user(attached[i][0]) for i in pages]
        settings = [day, str(CAPS_TTL_SECONDS), str(daily_cap)]
        groups = slot_groups(self.client, users)
        calls = [
            (
                [users[i] for i in group],
                [*settings, *(",".join(c.arg() for c in attached[pages[i]][1]) for i in group)],
            )
            for group in groups
        ]
        replies = await self._call(
            "count_attached", lambda: run_per_slot(self.client, self._count, calls)
        )
        for group, (refused, admitted) in zip(groups, replies, strict=True):
            for item in refused:
                entry, product = item.decode().split("=", 1)
                counted[pages[group[int(entry) - 1]]].refused.add(product)
            for item in admitted:
                entry, product, count, in_category = item.decode().split("=", 3)
                page = counted[pages[group[int(entry) - 1]]]
                page.counts[product] = int(count)
                page.category_counts[product] = int(in_category)
        return counted

    async def profiled_users(self, limit: int) -> tuple[list[str], bool]:
        """Up to `limit` users with a profile (in no set order), and whether that is all of
        them: a sample for the campaigns' dry run, by SCAN (on a Cluster, every master)."""
        pattern = self.keys.profile("*")
        head, tail = pattern.split("*")

        async def work() -> tuple[list[str], bool]:
            found: list[str] = []
            async for key in self.client.scan_iter(match=pattern, count=1000):
                text = key.decode() if isinstance(key, bytes) else key
                found.append(text[len(head) : len(text) - len(tail)])
                if len(found) > limit:
                    return found[:limit], False
            return found, True

        return await self._call("profiled_users", work)

    async def put_profile(self, user_id: str, profile: Profile) -> None:
        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            queue_profile(pipe, self.keys, user_id, profile)
            return await pipe.execute()

        await self._call("put_profile", work)

    async def put_profiles(self, profiles: Sequence[tuple[str, Profile]]) -> None:
        """Replace many users' profiles: one transaction per hash slot (on a single Redis, one
        in all). A failure part way leaves some slots written: replacing is idempotent, so
        the caller sends them all again."""
        groups = slot_groups(self.client, [self.keys.profile(u) for u, _ in profiles])

        async def one(group: list[int]) -> None:
            pipe = await transaction(self.client)
            for i in group:
                queue_profile(pipe, self.keys, *profiles[i])
            await pipe.execute()

        async def work() -> None:  # on a Cluster, a slot's transaction at a time would be
            for start in range(0, len(groups), PROFILE_SLOTS_AT_ONCE):  # one round trip each
                await asyncio.gather(*map(one, groups[start : start + PROFILE_SLOTS_AT_ONCE]))

        await self._call("put_profiles", work)

    async def get_profile(self, user_id: str) -> UserProfile:
        return profile_of(await self.get_user(user_id, None))

    async def get_user(self, user_id: str, generation: int | None) -> UserState:
        """One user's state: the vector under `generation` (if given), profile and recent
        events."""
        (state,) = await self.user_states([user_id], generation, utc_day(), daily_cap=1)
        return state


def profile_of(state: UserState) -> UserProfile:
    """The profile as the service sees it: upstream's, holdings with purchases added."""
    return UserProfile(
        risk_tolerance=state.risk_tolerance,
        segment=state.segment,
        lifecycle=state.lifecycle,  # type: ignore[arg-type]
        holdings=sorted(state.holdings),
    )


def queue_profile(
    pipe: Pipeline | ClusterPipeline, keys: Keys, user_id: str, profile: Profile
) -> None:
    """Queue the commands that replace one user's profile and upstream holdings (purchases
    seen in events are kept apart, in `:purchased`, and survive)."""
    fields = {
        name: str(value)
        for name, value in profile.model_dump(exclude={"holdings"}, mode="json").items()
        if value is not None
    }
    pipe.delete(keys.profile(user_id), keys.holdings(user_id))
    if fields:
        pipe.hset(keys.profile(user_id), mapping=fields)  # type: ignore[arg-type]
    if profile.holdings:
        pipe.sadd(keys.holdings(user_id), *profile.holdings)


def _user_state(reply: list[Any]) -> UserState:
    vector, profile, holdings, recent, capped, categories = reply
    fields = dict(zip(profile[::2], profile[1::2], strict=True))
    return UserState(
        vector=vector,
        risk_tolerance=int_or_none(fields.get(b"risk_tolerance")),
        segment=str_or_none(fields.get(b"segment")),
        lifecycle=str_or_none(fields.get(b"lifecycle")),
        holdings=frozenset(h.decode() for h in holdings),
        recent_raw=tuple(recent),
        capped=frozenset(product.decode() for product in capped),
        category_counts={
            categories[i].decode(): int(categories[i + 1]) for i in range(0, len(categories), 2)
        },
    )
