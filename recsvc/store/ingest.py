"""Event ingestion: a batch of validated events appended to the stream, deduplicated by
event id per user, and applied to its users' state.

On a single Redis one script appends the new events to the stream and updates their users'
state, atomically. On a Cluster the stream and the users are in other slots: one script
appends the new events (skipping those already accepted) in the stream's slot, then one per
user slot updates the state of every event of the batch not yet applied there. A failure
between the two answers 503, and the client's retry finds its events accepted (duplicates)
and completes the state: nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Container
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from redis.commands.core import AsyncScript

from recsvc.contract.domain import Action, ItemType
from recsvc.contract.records import Event
from recsvc.contract.shards import shard_of
from recsvc.store.client import (
    run_per_slot,
    slot_groups,
)
from recsvc.store.gateway import (
    Gateway,
)

# One event batch in Redis at a time, its arguments prepared before it takes its turn (so
# Redis is idle only for a round trip between batches), and a feed's read waits behind at most
# one script. A 1,000-event script runs 6 to 27 ms inside Redis (SLOWLOG, two shared cores;
# the trending counts added to it): two slots let a feed wait behind two, about half the 100 ms
# timeout, and a whole-suite run on loaded cores saw a bystander's feed time out. A batch stays
# one script, not split in smaller ones: a full stream refuses it whole, and on a single Redis
# its events and their users' state are written in one step. A batch that cannot start within
# 2 s answers 503 busy: well inside a client's usual timeout (200 batches of 1,000 sent at
# once on two cores: most are answered busy, and taken on the client's retry).
INGEST_SLOTS = 1
INGEST_WAIT_SECONDS = 2.0


class IngestBusy(RuntimeError):
    """This replica has had more event batches to write than it lets Redis take at once, for
    longer than INGEST_WAIT_SECONDS: retry (Redis itself is fine)."""


class StreamFull(RuntimeError):
    """The event stream is at its maximum length: the nightly job has not drained it."""


@dataclass(frozen=True)
class Ingested:
    """What became of a batch of events: new ones appended to the stream, duplicates, and
    purchases appended but kept out of their user's state (see INGEST_SCRIPT)."""

    accepted: int
    duplicates: int
    unknown_products: int = 0  # the product is not in the catalogue
    over_limit: int = 0  # the user's purchased set is full

    @property
    def not_applied(self) -> int:
        return self.unknown_products + self.over_limit


# Appends a batch of validated events and updates each user's recent items and purchases.
# ARGV: mode, prefix, max stream length (of each shard), dedup TTL, recent limit, purchased
# limit, event count, then EVENT_ARGS (15) fields per event: the 9 of recsvc.contract.domain.
# EVENT_COLUMNS, `holdable` ('1' when a purchase's product is in the catalogue), then the UTC
# hour whose trending counts the event enters ('' for none) and when that hour's counts expire
# (epoch seconds), then the surface and the position it happened at ('' for none: recsvc.
# contract.records.Event), stored in the stream beside the columns, and last the hash tags of
# the user's shards in layouts retired within the dedup window (',' between; '': none), whose
# markers also make the event a duplicate (recsvc.contract.shards). An event's stream shard
# carries a hash tag (or is the tag itself: one shard), and its dedup marker (Keys.
# event_marker) and trending counts (Keys.trend) carry the same: a new event's count is added
# in the same step as its append, so a retried batch never counts an event twice. A purchase
# enters the user's purchased set only when holdable and while the set is under the limit
# (SCARD checked and SADD done in one step); else it is counted as not applied (the stream
# keeps it: the nightly job learns from it). One user's state stays bounded, so reading it
# stays fast. Modes:
# - 'all' (a single Redis), KEYS: each event's stream shard, then each event's user (Keys.user):
#   one atomic step. Refuses the whole batch when a shard has no room for its events (never
#   trims accepted events away), skips events already accepted (the markers), and updates the
#   users' state for the new ones. Returns {accepted, duplicates, purchases of products not in
#   the catalogue, purchases past the limit}, or {-1, 0, 0, 0} when refused.
# - 'append' (Cluster, one shard's slot), KEYS: the shard: the same for the batch's events of
#   that shard, users' state aside (the last two counts are 0). Markers of retired layouts are
#   in other slots: the caller looks for them first (IngestStore._accepted_before).
# - 'apply' (Cluster, one user slot), KEYS: each event's user, and only the 6 fields of each
#   event that the state needs (APPLY_FIELDS: event id, item type, item, action, watch ratio,
#   holdable): updates the state for every
#   event not yet applied (the marker Keys.event_applied), so that running it again after a
#   failure half-way (a retry of the batch) applies each event once. Returns {applied,
#   unknown products, past the limit}, counted over the events it applied.
INGEST_SCRIPT = """
local mode, prefix, maxlen, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local keep, most, n = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local unknown, full = 0, 0
local function apply(user, item_type, item, action, ratio, holdable)
  redis.call('LPUSH', user .. ':recent', item_type .. '|' .. item .. '|' .. action .. '|' .. ratio)
  redis.call('LTRIM', user .. ':recent', 0, keep - 1)
  if action ~= 'purchase' then return end
  local bought = user .. ':purchased'
  if holdable ~= '1' then
    unknown = unknown + 1
  elseif redis.call('SCARD', bought) < most or redis.call('SISMEMBER', bought, item) == 1 then
    redis.call('SADD', bought, item)
  else
    full = full + 1
  end
end
if mode == 'apply' then
  local applied = 0
  for i = 0, n - 1 do
    local o = 7 + i * 6  -- APPLY_FIELDS
    local user = KEYS[i + 1]
    if redis.call('SET', user .. ':ev:' .. ARGV[o + 1], '1', 'NX', 'EX', ttl) then
      apply(user, ARGV[o + 2], ARGV[o + 3], ARGV[o + 4], ARGV[o + 5], ARGV[o + 6])
      applied = applied + 1
    end
  end
  return {applied, unknown, full}
end
local function stream_of(i) if mode == 'all' then return KEYS[i + 1] end return KEYS[1] end
local function marker(tag, user, event_id)  -- Keys.event_marker
  return prefix .. ':ev:{' .. tag .. '}:' .. #user .. '/' .. user .. ':' .. event_id
end
local counts = {}
for i = 0, n - 1 do counts[stream_of(i)] = (counts[stream_of(i)] or 0) + 1 end
for stream, count in pairs(counts) do
  if redis.call('XLEN', stream) + count > maxlen then return {-1, 0, 0, 0} end
end
local accepted, duplicates = 0, 0
local expiring = {}  -- the trend hours given their expiry by this batch
for i = 0, n - 1 do
  local o = 7 + i * 15
  local event_id, ts, user, item = ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4]
  local item_type, action, ratio = ARGV[o + 5], ARGV[o + 6], ARGV[o + 7]
  local stream = stream_of(i)
  local tag = string.match(stream, '{(.-)}') or stream
  local seen = false
  if mode == 'all' then
    for old in string.gmatch(ARGV[o + 15], '[^,]+') do
      if redis.call('EXISTS', marker(old, user, event_id)) == 1 then seen = true end
    end
  end
  if not seen and redis.call('SET', marker(tag, user, event_id), '1', 'NX', 'EX', ttl) then
    redis.call('XADD', stream, '*', 'event_id', event_id, 'ts', ts, 'user_id', user,
      'item_id', item, 'item_type', item_type, 'action', action, 'watch_ratio', ratio,
      'request_id', ARGV[o + 8], 'amount', ARGV[o + 9],
      'surface', ARGV[o + 13], 'position', ARGV[o + 14])
    if mode == 'all' then apply(KEYS[n + i + 1], item_type, item, action, ratio, ARGV[o + 10]) end
    if ARGV[o + 11] ~= '' then
      local trend = prefix .. ':trend:{' .. tag .. '}:' .. ARGV[o + 11]  -- Keys.trend
      redis.call('HINCRBY', trend, item .. '|' .. action, 1)
      if not expiring[trend] then
        redis.call('EXPIREAT', trend, ARGV[o + 12])
        expiring[trend] = true
      end
    end
    accepted = accepted + 1
  else
    duplicates = duplicates + 1
  end
end
return {accepted, duplicates, unknown, full}
"""

EVENT_ARGS = 15  # the INGEST script's arguments per event
# The positions (in EVENT_ARGS) of the fields the 'apply' mode reads, in its order.
APPLY_FIELDS = (0, 4, 3, 5, 6, 9)
# An hour's trending counts are kept this long after it ends: the longest window the trainer's
# trending prior can choose (training.models.trending.TRENDING_HOURS, a week); a window of h
# hours reads the hour under way and the h before it.
TREND_KEEP_HOURS = 168
# The actions that count as a video's user in the trending counts: those the trainer's
# prior counts (positive confidence weight by default; an impression weighs 0).
TREND_ACTIONS = frozenset({Action.VIEW, Action.CLICK})


class IngestStore(Gateway):
    """Accepting events: the stream, dedup markers and the users' state, INGEST_SLOTS batch
    at a time."""

    @cached_property
    def _ingest(self) -> AsyncScript:
        return self.client.register_script(INGEST_SCRIPT)

    @cached_property
    def _ingest_slots(self) -> asyncio.Semaphore:
        # Event batches writing at once: each holds Redis for a few ms, and a burst of them
        # queued inside Redis would make every feed's read wait behind them (and time out)
        return asyncio.Semaphore(INGEST_SLOTS)

    # -- writes -------------------------------------------------------------------------
    async def ingest(
        self,
        events: list[Event],
        max_len: int,
        dedup_seconds: int,
        recent_limit: int,
        *,
        products: Container[str] = frozenset(),
        max_purchased: int = 1000,
        videos: Container[str] = frozenset(),
    ) -> Ingested:
        """Append new events to the stream and user state. A purchase enters its user's state
        only when its product is one of `products` (the catalogue's) and the user holds fewer
        than `max_purchased` from events; the others are counted. Views and clicks of
        `videos` (the catalogue's) enter the live trending counts; of other ids, not.

        StreamFull when a stream shard has no room for the batch's events in it: on a single
        Redis nothing is written; on a Cluster the other shards' events are accepted (a retry
        finds them duplicates)."""
        now = time.time()
        shards = self.layouts.in_effect(now)
        retired = [n for n in self.layouts.in_use(dedup_seconds, now) if n != shards]
        streams = [self.keys.user_stream("events", e.user_id, shards) for e in events]
        old_tags = [self._old_tags(e.user_id, retired) for e in events]
        event_args = _event_args(events, products, videos, time.time(), old_tags)
        try:
            await asyncio.wait_for(self._ingest_slots.acquire(), INGEST_WAIT_SECONDS)
        except TimeoutError:
            raise IngestBusy(
                f"this replica is busy writing other event batches (one at a time, none free for "
                f"{INGEST_WAIT_SECONDS:g}s); nothing of this batch was written, retry"
            ) from None
        try:
            return await self._ingest_batch(
                events, streams, event_args, max_len, dedup_seconds, recent_limit, max_purchased
            )
        finally:
            self._ingest_slots.release()

    def _old_tags(self, user_id: str, retired: list[int]) -> str:
        """The tags of the user's shards in the retired layouts, where its markers may be."""
        tags = {self.keys.stream_tag(shard_of(user_id, n), n) for n in retired}
        return ",".join(sorted(tags))

    async def _ingest_batch(
        self,
        events: list[Event],
        streams: list[str],
        event_args: list[str],
        max_len: int,
        dedup_seconds: int,
        recent_limit: int,
        max_purchased: int,
    ) -> Ingested:
        settings = [self.keys.prefix, max_len, dedup_seconds, recent_limit, max_purchased]
        users = [self.keys.user(e.user_id) for e in events]
        # encoded once here: redis-py's own encoding of each argument is most of a batch's
        # client time (a profile of cluster ingestion: 45%)
        wire = [arg.encode() for arg in event_args]
        if not self._cluster:  # one atomic script: each event's shard, then each event's user
            args = ["all", *settings, len(events), *wire]
            keys = [*streams, *users]
            replies = await self._call(
                "ingest", lambda: run_per_slot(self.client, self._ingest, [(keys, args)])
            )
            accepted, duplicates, unknown, over = replies[0]
            if accepted < 0:
                raise StreamFull(f"an event stream shard holds {max_len:,} events, its limit")
            return Ingested(int(accepted), int(duplicates), int(unknown), int(over))
        seen = await self._accepted_before(events, event_args)
        by_stream: dict[str, list[int]] = {}
        for i, stream in enumerate(streams):
            if i not in seen:
                by_stream.setdefault(stream, []).append(i)
        calls = [
            ([stream], ["append", *settings, len(group), *_slices(wire, group)])
            for stream, group in by_stream.items()
        ]
        replies = (
            await self._call("ingest", lambda: run_per_slot(self.client, self._ingest, calls))
            if calls
            else []
        )
        refused = {
            i
            for group, r in zip(by_stream.values(), replies, strict=True)
            if r[0] < 0
            for i in group
        }
        accepted = sum(int(r[0]) for r in replies if r[0] >= 0)
        duplicates = len(seen) + sum(int(r[1]) for r in replies if r[0] >= 0)
        # duplicates too: a retry completes what a failure left undone
        applying = [i for i in range(len(events)) if i not in refused]
        unknown, over = await self._apply_events(wire, users, applying, settings)
        if full := len(refused):
            raise StreamFull(
                f"an event stream shard holds {max_len:,} events, its limit: {full:,} events "
                f"of the batch were not accepted ({accepted:,} were)"
            )
        return Ingested(accepted, duplicates, unknown, over)

    async def _accepted_before(self, events: list[Event], event_args: list[str]) -> set[int]:
        """Cluster: the positions of events whose marker is in the user's shard of a layout
        retired within the dedup window (other slots than the append's: looked for first)."""
        markers: list[tuple[int, str]] = []
        for i, event in enumerate(events):
            for tag in event_args[i * EVENT_ARGS + EVENT_ARGS - 1].split(","):
                if tag:
                    markers.append((i, self.keys.event_marker(tag, event.user_id, event.event_id)))
        if not markers:
            return set()

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for _, marker in markers:
                pipe.exists(marker)
            return await pipe.execute()

        found = await self._call("ingest", work)
        return {i for (i, _), hit in zip(markers, found, strict=True) if hit}

    async def _apply_events(
        self, event_args: list[bytes], users: list[str], positions: list[int], settings: list
    ) -> tuple[int, int]:
        """Cluster: the update of their users' state by the events at `positions`, once per
        slot of users; the purchases it kept out of state (unknown products, over the limit)."""
        if not positions:
            return 0, 0
        calls = []
        for group in slot_groups(self.client, [users[i] for i in positions]):
            chosen = [positions[k] for k in group]
            fields = [event_args[i * EVENT_ARGS + f] for i in chosen for f in APPLY_FIELDS]
            args = ["apply", *settings, len(chosen), *fields]
            calls.append(([users[i] for i in chosen], args))
        replies = await self._call("ingest", lambda: run_per_slot(self.client, self._ingest, calls))
        return sum(int(r[1]) for r in replies), sum(int(r[2]) for r in replies)


def trend_hour(event: Event, now: float, videos: Container[str]) -> int | None:
    """The UTC hour (since the epoch) whose trending counts `event` enters: the hour of its
    time, or of `now` for an event stamped in the future; None for an event that does not
    count (not a view or click of one of `videos`, a view watched for 0, or older than the
    counts are kept). Ids outside the catalogue never count, so no client can grow the
    counts with made-up ids."""
    if event.item_type is not ItemType.VIDEO or event.action not in TREND_ACTIONS:
        return None
    if event.item_id not in videos:
        return None
    if event.action is Action.VIEW and event.watch_ratio is not None and event.watch_ratio <= 0:
        return None  # a view of ratio 0 weighs nothing in training either
    hour = int(min(event.ts.timestamp(), now) // 3600)
    return hour if hour >= int(now // 3600) - TREND_KEEP_HOURS else None


def _slices(event_args: list[bytes], positions: list[int]) -> list[bytes]:
    """The INGEST script's arguments of the events at `positions`."""
    return [a for i in positions for a in event_args[i * EVENT_ARGS : (i + 1) * EVENT_ARGS]]


def _event_args(
    events: list[Event],
    products: Container[str],
    videos: Container[str],
    now: float,
    old_tags: list[str],
) -> list[str]:
    """The INGEST script's arguments for each event: its columns (EVENT_COLUMNS order),
    whether a purchase's product may enter its user's state (in `products`), and the hour of
    trending counts it enters with that hour's expiry (trend_hour), its surface and position,
    and the tags of its user's shards in retired layouts (`old_tags`)."""
    args: list[str] = []
    for e, tags in zip(events, old_tags, strict=True):
        holdable = e.action is Action.PURCHASE and e.item_id in products
        hour = trend_hour(e, now, videos)
        args += [
            e.event_id,
            e.ts.isoformat(),
            e.user_id,
            e.item_id,
            e.item_type.value,
            e.action.value,
            "" if e.watch_ratio is None else repr(e.watch_ratio),
            e.request_id or "",
            "" if e.amount is None else repr(e.amount),
            "1" if holdable else "",
            "" if hour is None else str(hour),
            "" if hour is None else str((hour + 1 + TREND_KEEP_HOURS) * 3600),
            e.surface or "",
            "" if e.position is None else str(e.position),
            tags,
        ]
    return args
