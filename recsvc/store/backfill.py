"""Seeding users' online state from their history (`recsvc state backfill`): the recent items
the seen filter and fold-in read, and the purchased products the attach rules hold against.

History is older than anything the service has ingested, so it goes behind it: a user's recent
list keeps its live entries first and takes history, newest first, only into the room left
under the limit; purchases join the purchased set under the same limit as ingestion. Each user
seeded is marked with the backfill's id (Keys.backfilled), in the same script: a second run of
the same backfill, or a run resumed after a crash, skips the users already done, so running it
again changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recsvc.contract.keys import Keys
from recsvc.store.client import AsyncClient, run_per_slot, slot_groups


@dataclass(frozen=True)
class UserHistory:
    """What history says of one user: recent entries (user_state.recent_entry), newest first,
    at most the service's recent limit; products bought (those the catalogue holds)."""

    user_id: str
    recent: Sequence[str]
    purchases: Sequence[str] = ()


@dataclass
class Seeded:
    """Counts of one backfill call (or a run's total)."""

    users: int = 0  # seeded now
    skipped: int = 0  # already seeded by this backfill
    recent: int = 0  # entries written
    purchases: int = 0  # products added to purchased sets
    over_limit: int = 0  # purchases left out: the set was full

    def add(self, other: Seeded) -> None:
        self.users += other.users
        self.skipped += other.skipped
        self.recent += other.recent
        self.purchases += other.purchases
        self.over_limit += other.over_limit


# KEYS: each user (Keys.user). ARGV: backfill id, recent limit, purchased limit, users, then
# per user: the number of recent entries, of purchases, the entries (newest first), the
# purchases. Returns {seeded, skipped, entries written, purchases added, over the limit}.
BACKFILL_SCRIPT = """
local id, keep, most, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seeded, skipped, written, added, over = 0, 0, 0, 0, 0
local o = 5
for i = 1, n do
  local user = KEYS[i]
  local n_recent, n_bought = tonumber(ARGV[o]), tonumber(ARGV[o + 1])
  local first = o + 2
  o = first + n_recent + n_bought
  if redis.call('GET', user .. ':backfill') == id then
    skipped = skipped + 1
  else
    local recent = user .. ':recent'
    local room = keep - redis.call('LLEN', recent)
    for j = 0, math.min(room, n_recent) - 1 do
      redis.call('RPUSH', recent, ARGV[first + j])
      written = written + 1
    end
    local bought = user .. ':purchased'
    for j = first + n_recent, first + n_recent + n_bought - 1 do
      local item = ARGV[j]
      if redis.call('SISMEMBER', bought, item) == 0 then
        if redis.call('SCARD', bought) < most then
          redis.call('SADD', bought, item)
          added = added + 1
        else
          over = over + 1
        end
      end
    end
    redis.call('SET', user .. ':backfill', id)
    seeded = seeded + 1
  end
end
return {seeded, skipped, written, added, over}
"""


async def backfill_users(
    client: AsyncClient,
    keys: Keys,
    backfill_id: str,
    users: Sequence[UserHistory],
    recent_limit: int,
    max_purchased: int,
) -> Seeded:
    """Seed each user's state from their history, once per backfill id (see the module)."""
    if not users:
        return Seeded()
    script = client.register_script(BACKFILL_SCRIPT)
    user_keys = [keys.user(u.user_id) for u in users]
    calls = []
    for group in slot_groups(client, user_keys):
        args: list[str | int] = [backfill_id, recent_limit, max_purchased, len(group)]
        for i in group:
            history = users[i]
            recent = list(history.recent[:recent_limit])
            args += [len(recent), len(history.purchases), *recent, *history.purchases]
        calls.append(([user_keys[i] for i in group], args))
    seeded = Seeded()
    for reply in await run_per_slot(client, script, calls):
        done, skipped, written, added, over = (int(x) for x in reply)
        seeded.add(Seeded(done, skipped, written, added, over))
    return seeded
