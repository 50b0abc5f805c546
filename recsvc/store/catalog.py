"""The catalogue in Redis: records by item, their status, and the revision every replica
watches to reload.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from redis.commands.core import AsyncScript

from recsvc.contract.domain import ItemStatus
from recsvc.store.client import (
    transaction,
)
from recsvc.store.gateway import (
    Gateway,
    RedisUnavailable,
    new_revision,
    str_or_none,
)

CATALOG_WRITE_ATTEMPTS = 50
# Catalogue writes in Redis at once, from one replica. A burst of admin PUTs (a back office
# re-sending its catalogue) otherwise queues every script inside Redis at once: the last ones
# wait past the Redis timeout (seen: 5 of 200 PUTs at once answered 503 on two loaded cores),
# and a feed's read waits behind them all. Waiting here costs nothing in Redis; a write that
# cannot start within CATALOG_WAIT_SECONDS is answered 503 with Retry-After.
CATALOG_SLOTS = 4
CATALOG_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class CatalogWrite:
    """One record to create or replace: in which hash, under which id."""

    hash_key: str
    item_id: str
    record: dict
    keep_status: bool = False  # the stored record's status, if any, wins over the record's


class CatalogBusy(RedisUnavailable):
    """This replica has had more catalogue writes than it lets Redis take at once, for
    longer than CATALOG_WAIT_SECONDS: retry (Redis itself is fine)."""


class CatalogContended(RedisUnavailable):
    """One catalogue record kept changing while it was being written (a 503: retry)."""


# Creates or replaces catalogue records, each keeping the stored record's status unless it
# gives its own, and renews the catalogue's revision, in one step: all of them or none, and
# concurrent PUTs never make each other retry (a WATCH on the hash did, for a write to any
# record). The caller sends each record encoded once per status; the script only decodes, to
# read the stored status (cjson.encode would turn an empty array into {}). A record stored
# without `status` is live; one that is not a JSON object, or has any other status, counts as
# retired: a record lost is never an item revived.
# KEYS: the revision key, then the catalogue hashes (all tagged {catalog}). ARGV: the new
# revision, then four per record: the position of its hash in KEYS, its id, the record to
# write when none is stored or the stored one is live, the record to write when it is retired
# ('' when the record gives its status: the first is written). Returns, per record, which was
# written: 1 or 2.
CATALOG_PUT_SCRIPT = """
local written = {}
for i = 2, #ARGV, 4 do
  local hash, id, chosen = KEYS[tonumber(ARGV[i])], ARGV[i + 1], 1
  local stored = redis.call('HGET', hash, id)
  if stored and ARGV[i + 3] ~= '' then
    local read, record = pcall(cjson.decode, stored)
    local status = 'retired'
    if read and type(record) == 'table' and string.match(stored, '^%s*{') then
      status = record['status']
      if status == nil then status = 'live' end
    end
    if status ~= 'live' then chosen = 2 end
  end
  redis.call('HSET', hash, id, ARGV[i + 1 + chosen])
  written[#written + 1] = chosen
end
redis.call('SET', KEYS[1], ARGV[1])
return written
"""

# The status PUT: replaces one catalogue record if it is still the one read (compare and set
# on the field, not a WATCH on the whole hash: writes to other records never conflict), and
# renews the catalogue's revision. KEYS: the catalogue hash, the revision key (both tagged
# {catalog}). ARGV: item id, '1' when the record was absent, the record as read, the new
# record, the new revision. Returns 1 when written, 0 when the record changed meanwhile (read
# it again).
CATALOG_CAS_SCRIPT = """
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '1' then
  if stored then return 0 end
elseif stored ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
redis.call('SET', KEYS[2], ARGV[5])
return 1
"""


class CatalogStore(Gateway):
    """Catalogue records and their revision."""

    @cached_property
    def _catalog_put(self) -> AsyncScript:
        return self.client.register_script(CATALOG_PUT_SCRIPT)

    @cached_property
    def _catalog_cas(self) -> AsyncScript:
        return self.client.register_script(CATALOG_CAS_SCRIPT)

    @cached_property
    def _catalog_slots(self) -> asyncio.Semaphore:
        return asyncio.Semaphore(CATALOG_SLOTS)

    @asynccontextmanager
    async def _catalog_turn(self) -> AsyncIterator[None]:
        """A turn to write the catalogue (at most CATALOG_SLOTS writes in Redis at once)."""
        try:
            await asyncio.wait_for(self._catalog_slots.acquire(), CATALOG_WAIT_SECONDS)
        except TimeoutError:
            raise CatalogBusy(
                f"this replica is busy writing other catalogue records (more than "
                f"{CATALOG_SLOTS} at once for {CATALOG_WAIT_SECONDS:g}s); nothing was written, "
                "retry"
            ) from None
        try:
            yield
        finally:
            self._catalog_slots.release()

    async def catalog_records(self) -> tuple[str | None, dict[bytes, bytes], dict[bytes, bytes]]:
        """The catalogue's revision and raw records, read in one transaction."""

        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            pipe.get(self.keys.catalog_revision)
            pipe.hgetall(self.keys.catalog_videos)
            pipe.hgetall(self.keys.catalog_products)
            return await pipe.execute()

        revision, videos, products = await self._call("catalog", work, probe=True)
        return str_or_none(revision), videos, products

    async def put_catalog_record(
        self, hash_key: str, item_id: str, record: dict, keep_status: bool = False
    ) -> dict:
        """Create or replace one record and renew the catalogue's revision; the record as
        stored (see put_catalog_records)."""
        [stored] = await self.put_catalog_records(
            [CatalogWrite(hash_key, item_id, record, keep_status)]
        )
        return stored

    async def put_catalog_records(self, writes: Sequence[CatalogWrite]) -> list[dict]:
        """Create or replace records and renew the catalogue's revision, all in one step;
        each record as stored. With `keep_status` the stored record's status, if any,
        replaces the one given. One script inside Redis (CATALOG_PUT_SCRIPT) reads the stored
        statuses and writes the records with them, so a status set meanwhile (a retirement)
        is never undone, and PUTs at once never make each other retry. A stored record that
        cannot be read keeps `retired`, as the serving catalogue reads an unreadable video."""
        hashes = sorted({w.hash_key for w in writes})
        args: list[str | int] = [new_revision()]
        variants = []
        for write in writes:
            if write.keep_status:  # encoded here once per status; the script picks one
                pair = [
                    {**write.record, "status": s.value}
                    for s in (ItemStatus.LIVE, ItemStatus.RETIRED)
                ]
            else:
                pair = [write.record]
            variants.append(pair)
            encoded = [json.dumps(v) for v in pair]
            args += [
                hashes.index(write.hash_key) + 2,
                write.item_id,
                encoded[0],
                encoded[1] if len(encoded) > 1 else "",
            ]
        keys = [self.keys.catalog_revision, *hashes]
        async with self._catalog_turn():
            written = await self._call(
                "put_catalog", lambda: self._catalog_put(keys=keys, args=args)
            )
        return [pair[int(chosen) - 1] for pair, chosen in zip(variants, written, strict=True)]

    async def set_catalog_status(
        self, hash_key: str, item_id: str, status: str, minimal: dict | None
    ) -> dict | None:
        """Set one record's status, atomically; a missing record becomes `minimal`, or None
        is returned (and nothing written) when that is None. A compare-and-set on the record,
        read again when it changed meanwhile, at most CATALOG_WRITE_ATTEMPTS times (then
        CatalogContended: a 503)."""

        def set_status(raw: bytes | str | None) -> dict | None:
            if raw is None and minimal is None:
                return None
            return {**(minimal or {}), **(json.loads(raw) if raw else {}), "status": status}

        return await self._rewrite_catalog("set_catalog_status", hash_key, item_id, set_status)

    async def _rewrite_catalog(
        self,
        operation: str,
        hash_key: str,
        item_id: str,
        change: Callable[[bytes | str | None], dict | None],
    ) -> dict | None:
        """Replace one record by `change(stored JSON or None)` and renew the catalogue's
        revision, atomically: a compare-and-set on that record (CATALOG_CAS_SCRIPT), read
        again and retried when it changed meanwhile. Writes to other records never conflict.
        None, and nothing written, when `change` returns None. The hash and the revision
        share the {catalog} tag."""

        async def work() -> dict | None:
            for _ in range(CATALOG_WRITE_ATTEMPTS):
                raw = await self.client.hget(hash_key, item_id)
                record = change(raw)
                if record is None:
                    return None
                keys = [hash_key, self.keys.catalog_revision]
                args = [item_id, "1" if raw is None else "0", raw or "", json.dumps(record)]
                if await self._catalog_cas(keys=keys, args=[*args, new_revision()]):
                    return record
            raise CatalogContended(
                f"catalogue record {item_id} changed {CATALOG_WRITE_ATTEMPTS} times while "
                "being written; retry"
            )

        async with self._catalog_turn():
            return await self._call(operation, work)

    async def get_catalog_record(self, hash_key: str, item_id: str) -> dict | None:
        raw = await self._call("get_catalog", lambda: self.client.hget(hash_key, item_id))
        return None if raw is None else json.loads(raw)
