"""The Redis feature cache, as the service uses it: one user's state in one round trip,
event ingestion, profiles, attach counters, the model pointer and the catalogue.

Every failure to reach Redis becomes RedisUnavailable. When Redis is down the store refuses
at once for `retry_seconds` (callers serve degraded or answer 503) instead of letting each
request wait out a timeout; the watcher's poll still probes and lifts the refusal when Redis
is back. Down means unreachable (a refused connection: at once) or slow (`breaker_failures`
timeouts within `breaker_window_seconds`): one slow call is not an outage, and must not
degrade every request of the replica.

The same code serves a single Redis and a Redis Cluster (recsvc.store.client): a batch's
scripts run once per hash slot on a Cluster, once in all on a single Redis. Event ingestion
differs in one respect. On a single Redis one script appends the new events to the stream and
updates their users' state, atomically. On a Cluster the stream and the users are in other
slots: one script appends the new events (skipping those already accepted) in the stream's
slot, then one per user slot updates the state of every event of the batch not yet applied
there. A failure between the two answers 503, and the client's retry finds its events
accepted (duplicates) and completes the state: nothing lost, nothing doubled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Container
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis as SingleRedis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.exceptions import (
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from recsvc.contract.domain import Action, ItemStatus, ItemType
from recsvc.contract.keys import Keys
from recsvc.contract.records import Event, Profile, UserProfile
from recsvc.store.breaker import Breaker
from recsvc.store.client import (
    AsyncClient,
    is_cluster,
    run_per_slot,
    service_client,
    slot_groups,
    transaction,
)
from recsvc.store.scripts import (
    CATALOG_CAS_SCRIPT,
    CATALOG_PUT_SCRIPT,
    COUNT_SCRIPT,
    EXPOSE_SCRIPT,
    INGEST_SCRIPT,
    READ_SCRIPT,
)

log = logging.getLogger("recsvc.store.state")
CAPS_TTL_SECONDS = 2 * 24 * 3600
# Two event batches in Redis at once keep it busy while the next one is sent, and a feed's
# read waits behind at most two scripts: a 1,000-event one runs 6 to 14 ms inside Redis
# (SLOWLOG, two shared cores), so 30 ms at worst against the 100 ms timeout. A batch stays one
# script, not split in smaller ones: a full stream refuses it whole, and on a single Redis its
# events and their users' state are written in one step. A batch that cannot start within 2 s
# answers 503 busy: well inside a client's usual timeout, and long enough that 100 batches of
# 1,000 sent at once are all taken (200 at once on two cores: about half answered busy).
INGEST_SLOTS = 2
INGEST_WAIT_SECONDS = 2.0
CATALOG_WRITE_ATTEMPTS = 50
DRAIN_GROUP = "nightly"  # the consumer group the nightly job drains the streams with
VIDEO_TAG = (ItemType.VIDEO.value + "|").encode()
T = TypeVar("T")


class RedisUnavailable(RuntimeError):
    """Redis could not be reached (or answered with an error) within the timeout."""


class BreakerOpen(RedisUnavailable):
    """Refused without calling Redis: it was found down a moment ago (see Breaker)."""


class IngestBusy(RuntimeError):
    """This replica has had more event batches to write than it lets Redis take at once, for
    longer than INGEST_WAIT_SECONDS: retry (Redis itself is fine)."""


class CatalogContended(RedisUnavailable):
    """One catalogue record kept changing while it was being written (a 503: retry)."""


class StreamFull(RuntimeError):
    """The event stream is at its maximum length: the nightly job has not drained it."""


@dataclass(frozen=True)
class RecentEvent:
    item_type: str
    item_id: str
    action: str
    watch_ratio: float | None


@dataclass(frozen=True)
class UserState:
    """Everything the feed needs about one user, read in one round trip."""

    vector: bytes | None = None
    risk_tolerance: int | None = None
    segment: str | None = None
    lifecycle: str | None = None
    holdings: frozenset[str] = frozenset()
    recent_raw: tuple[bytes, ...] = ()  # "item_type|item_id|action|ratio", newest first
    capped: frozenset[str] | None = None  # at today's cap; None: unknown (Redis down)

    def seen_videos(self) -> set[str]:
        # Parsed only as far as needed: this runs for every request.
        return {e.split(b"|", 2)[1].decode() for e in self.recent_raw if e.startswith(VIDEO_TAG)}

    @property
    def recent(self) -> list[RecentEvent]:
        """The recent events, parsed (fold-in needs them, for users without a vector)."""
        return [_recent(entry) for entry in self.recent_raw]


@dataclass(frozen=True)
class Exposure:
    """One feed served to a user in at least one experiment, as the report needs it."""

    request_id: str
    ts_ms: int
    user_id: str
    experiments: str  # "experiment:variant" pairs joined by commas
    model_version: str
    videos: list[str]  # in rank order
    products: list[str | None]  # the card under each video, or None

    def fields(self) -> list[str]:
        """The EXPOSE script's arguments (redis_scripts.EXPOSURE_FIELDS order)."""
        return [
            self.request_id,
            str(self.ts_ms),
            self.user_id,
            self.experiments,
            self.model_version,
            ",".join(self.videos),
            ",".join(p or "" for p in self.products),
        ]


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


@dataclass(frozen=True)
class Poll:
    pointer: Pointer | None
    catalog_revision: str | None
    experiments_revision: str | None
    challenger: Pointer | None = None


@dataclass(frozen=True)
class Pointer:
    version: str
    generation: int


def utc_day(now: float | None = None) -> str:
    return time.strftime("%Y%m%d", time.gmtime(now))


def connect(url: str, timeout_ms: int, cluster: bool = False) -> AsyncClient:
    """An async client (of a Redis Cluster when `cluster`; the URL names any one node) with
    bounded timeouts and no retries: a slow Redis must not hold a request longer than the
    timeout."""
    return service_client(url, timeout_ms, cluster)


class FeatureStore:
    def __init__(
        self,
        client: AsyncClient,
        keys: Keys,
        retry_seconds: float = 1.0,
        on_error: Callable[[str, str], None] | None = None,
        *,
        breaker_failures: int = 3,
        breaker_window_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.keys = keys
        self.retry_seconds = retry_seconds
        self.on_error = on_error or (lambda operation, kind: None)
        self._breaker = Breaker(retry_seconds, breaker_failures, breaker_window_seconds)
        self._cluster = is_cluster(client)
        self._ingest = client.register_script(INGEST_SCRIPT)
        self._read = client.register_script(READ_SCRIPT)
        self._catalog_put = client.register_script(CATALOG_PUT_SCRIPT)
        self._catalog_cas = client.register_script(CATALOG_CAS_SCRIPT)
        # Event batches writing at once: each holds Redis for a few ms, and a burst of them
        # queued inside Redis would make every feed's read wait behind them (and time out)
        self._ingest_slots = asyncio.Semaphore(INGEST_SLOTS)
        self._count = client.register_script(COUNT_SCRIPT)
        self._expose = client.register_script(EXPOSE_SCRIPT)

    @property
    def available(self) -> bool:
        """Redis has not failed of late: the breaker is closed and no call timed out within
        its window. (The batcher gives a request whose deadline a busy CPU spent its own
        timeout only then.)"""
        return self._breaker.quiet

    async def _call(
        self, operation: str, work: Callable[[], Awaitable[T]], probe: bool = False
    ) -> T:
        if not probe and self._breaker.open:
            raise BreakerOpen(f"Redis unavailable (retrying in {self.retry_seconds}s)")
        try:
            result = await work()
        # Clients (and the open /readyz) get the kind of failure; the log gets Redis's own
        # words, which may name hosts and ports.
        except ResponseError as exc:  # Redis answered: an error, but Redis is up
            self.on_error(operation, "refused")
            log.error("Redis %s refused: %s", operation, exc)
            raise RedisUnavailable(f"Redis {operation} refused") from None
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            timeout = _timed_out(exc)
            kind = "timeout" if timeout else "unreachable"
            if self._breaker.failed(timeout):  # logged once per outage, not once per request
                log.warning(
                    "Redis %s failed (%s); degraded for %ss", operation, exc, self.retry_seconds
                )
            self.on_error(operation, kind)
            if not timeout and isinstance(self.client, SingleRedis):  # (a cluster client
                # does this per node) Idle pooled connections may lead to a server that is
                # gone: each would fail one call after Redis is back. Close them now.
                await self.client.connection_pool.disconnect(inuse_connections=False)
            raise RedisUnavailable(f"Redis {operation} failed: {kind}") from None
        # A success neither ends the window early nor clears the timeouts counted: in a
        # partial outage (writes stalled, reads answering, as under CLIENT PAUSE WRITE) the
        # poll's reads would otherwise reopen it at once, and each feed would wait a timeout
        # on a write again.
        return result

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

    async def log_exposures(self, exposures: list[Exposure], max_len: int) -> int:
        """Append exposures to their stream; the number dropped (the stream was full)."""
        if not exposures:
            return 0
        args: list[Any] = [max_len, len(exposures)]
        for exposure in exposures:
            args += exposure.fields()
        keys = [self.keys.exposures]
        appended = await self._call("exposures", lambda: self._expose(keys=keys, args=args))
        return 0 if int(appended) > 0 else len(exposures)

    async def poll(self) -> Poll:
        """The current-model pointer, the catalogue and experiments revisions and the
        challenger pointer, in one round trip (a probe: always tries). Pipelined GETs rather
        than an MGET: on a Cluster the three groups are in three slots."""

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.keys.model_current)
            pipe.get(self.keys.catalog_revision)
            pipe.get(self.keys.experiments_revision)
            pipe.get(self.keys.model_challenger)
            return await pipe.execute()

        raw_pointer, catalog, experiments, challenger = await self._call("poll", work, probe=True)
        return Poll(
            parse_pointer(raw_pointer),
            _str_or_none(catalog),
            _str_or_none(experiments),
            parse_pointer(challenger),
        )

    async def stream_stats(self) -> dict[str, int]:
        """Lengths of the event and exposure streams, and the events the nightly consumer
        group has not read yet (its lag; the whole stream before a first drain)."""

        async def work() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.keys.events)
            pipe.xlen(self.keys.exposures)
            pipe.xinfo_groups(self.keys.events)
            return await pipe.execute(raise_on_error=False)

        events, exposures, groups = await self._call("streams", work, probe=True)
        lag = events if isinstance(events, int) else 0
        if isinstance(groups, list):
            for group in groups:
                name = group.get("name", b"")
                if (name.decode() if isinstance(name, bytes) else name) == DRAIN_GROUP:
                    lag = int(group.get("lag") or 0) + int(group.get("pending") or 0)
        return {
            "events": events if isinstance(events, int) else 0,
            "exposures": exposures if isinstance(exposures, int) else 0,
            "events_not_drained": lag,
        }

    async def generation_of(self, version: str) -> int | None:
        """The newest generation of `version` whose vectors are still in Redis, if any."""
        raw = await self._call(
            "generations", lambda: self.client.hgetall(self.keys.model_generations)
        )
        now = time.time()
        found = []
        for field, value in raw.items():
            try:
                entry = json.loads(value)
            except ValueError:
                continue
            if entry.get("version") != version or entry.get("state") == "writing":
                continue
            if entry.get("state") == "expiring" and entry.get("expires_at", 0) < now:
                continue
            found.append(int(field))
        return max(found) if found else None

    async def experiments(self) -> tuple[str | None, str]:
        """The experiments' revision and TOML definition, read together."""

        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            pipe.get(self.keys.experiments_revision)
            pipe.get(self.keys.experiments_definition)
            return await pipe.execute()

        revision, definition = await self._call("experiments", work, probe=True)
        return _str_or_none(revision), (definition or b"").decode()

    async def put_experiments(self, definition: str) -> str:
        """Store a (validated) definition with a new revision; the revision."""
        revision = new_revision()

        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            pipe.set(self.keys.experiments_definition, definition)
            pipe.set(self.keys.experiments_revision, revision)
            return await pipe.execute()

        await self._call("experiments", work)
        return revision

    async def ping(self) -> bool:
        return bool(await self._call("ping", self.client.ping, probe=True))

    async def catalog_records(self) -> tuple[str | None, dict[bytes, bytes], dict[bytes, bytes]]:
        """The catalogue's revision and raw records, read in one transaction."""

        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            pipe.get(self.keys.catalog_revision)
            pipe.hgetall(self.keys.catalog_videos)
            pipe.hgetall(self.keys.catalog_products)
            return await pipe.execute()

        revision, videos, products = await self._call("catalog", work, probe=True)
        return _str_or_none(revision), videos, products

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
    ) -> Ingested:
        """Append new events to the stream and user state. A purchase enters its user's state
        only when its product is one of `products` (the catalogue's) and the user holds fewer
        than `max_purchased` from events; the others are counted.

        StreamFull, and nothing written, when the stream has no room for the batch."""
        try:
            await asyncio.wait_for(self._ingest_slots.acquire(), INGEST_WAIT_SECONDS)
        except TimeoutError:
            raise IngestBusy(
                f"this replica is busy writing other event batches (more than {INGEST_SLOTS} at "
                f"once for {INGEST_WAIT_SECONDS:g}s); nothing of this batch was written, retry"
            ) from None
        try:
            return await self._ingest_batch(
                events, max_len, dedup_seconds, recent_limit, products, max_purchased
            )
        finally:
            self._ingest_slots.release()

    async def _ingest_batch(
        self,
        events: list[Event],
        max_len: int,
        dedup_seconds: int,
        recent_limit: int,
        products: Container[str],
        max_purchased: int,
    ) -> Ingested:
        settings = [self.keys.prefix, max_len, dedup_seconds, recent_limit, max_purchased]
        users = [self.keys.user(e.user_id) for e in events]
        event_args = _event_args(events, products)
        if not self._cluster:  # one atomic script: the stream, then each event's user
            args = ["all", *settings, len(events), *event_args]
            keys = [self.keys.events, *users]
            replies = await self._call(
                "ingest", lambda: run_per_slot(self.client, self._ingest, [(keys, args)])
            )
            accepted, duplicates, unknown, over = replies[0]
        else:
            args = ["append", *settings, len(events), *event_args]
            calls = [([self.keys.events], args)]
            replies = await self._call(
                "ingest", lambda: run_per_slot(self.client, self._ingest, calls)
            )
            accepted, duplicates, unknown, over = replies[0]
            if accepted >= 0:  # duplicates too: a retry completes what a failure left undone
                unknown, over = await self._apply_events(event_args, users, settings)
        if accepted < 0:
            raise StreamFull(f"the event stream holds {max_len:,} events, its limit")
        return Ingested(int(accepted), int(duplicates), int(unknown), int(over))

    async def _apply_events(
        self, event_args: list[str], users: list[str], settings: list
    ) -> tuple[int, int]:
        """Cluster: each event's update of its user's state, once per slot of users; the
        purchases it kept out of state (unknown products, over the limit)."""
        calls = []
        for group in slot_groups(self.client, users):
            args = ["apply", *settings, len(group)]
            for i in group:
                args += event_args[i * EVENT_ARGS : (i + 1) * EVENT_ARGS]
            calls.append(([users[i] for i in group], args))
        replies = await self._call("ingest", lambda: run_per_slot(self.client, self._ingest, calls))
        return sum(int(r[1]) for r in replies), sum(int(r[2]) for r in replies)

    async def count_attached(
        self, day: str, attached: list[tuple[str, list[str]]], daily_cap: int
    ) -> list[set[str]]:
        """Add one to today's attach counter of each product on each page (user, products),
        while under the cap; per page, the products refused because at the cap already."""
        pages = [i for i, (_, products) in enumerate(attached) if products]
        refused: list[set[str]] = [set() for _ in attached]
        if not pages:
            return refused
        users = [self.keys.user(attached[i][0]) for i in pages]
        settings = [day, str(CAPS_TTL_SECONDS), str(daily_cap)]
        groups = slot_groups(self.client, users)
        calls = [
            (
                [users[i] for i in group],
                [*settings, *(",".join(attached[pages[i]][1]) for i in group)],
            )
            for group in groups
        ]
        replies = await self._call(
            "count_attached", lambda: run_per_slot(self.client, self._count, calls)
        )
        for group, reply in zip(groups, replies, strict=True):
            for item in reply:
                entry, product = item.decode().split("=", 1)
                refused[pages[group[int(entry) - 1]]].add(product)
        return refused

    async def put_profile(self, user_id: str, profile: Profile) -> None:
        async def work() -> list[Any]:
            pipe = await transaction(self.client)
            queue_profile(pipe, self.keys, user_id, profile)
            return await pipe.execute()

        await self._call("put_profile", work)

    async def get_profile(self, user_id: str) -> UserProfile:
        (state,) = await self.user_states([user_id], None, utc_day(), daily_cap=1)
        return UserProfile(
            risk_tolerance=state.risk_tolerance,
            segment=state.segment,
            lifecycle=state.lifecycle,  # type: ignore[arg-type]
            holdings=sorted(state.holdings),
        )

    async def put_catalog_record(
        self, hash_key: str, item_id: str, record: dict, keep_status: bool = False
    ) -> dict:
        """Create or replace one record and renew the catalogue's revision; the record as
        stored. With `keep_status` the stored record's status, if any, replaces the one given.
        One script inside Redis (CATALOG_PUT_SCRIPT) reads the stored status and writes the
        record with it, so a status set meanwhile (a retirement) is never undone, and PUTs at
        once never make each other retry. A stored record that cannot be read keeps
        `retired`, as the serving catalogue reads an unreadable video."""
        if keep_status:  # encoded here once per status; the script picks the stored one's
            variants = [
                {**record, "status": s.value} for s in (ItemStatus.LIVE, ItemStatus.RETIRED)
            ]
        else:
            variants = [record]
        keys = [hash_key, self.keys.catalog_revision]
        args = [item_id, new_revision(), *(json.dumps(v) for v in variants)]
        written = await self._call("put_catalog", lambda: self._catalog_put(keys=keys, args=args))
        return variants[int(written) - 1]

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

        return await self._call(operation, work)

    async def get_catalog_record(self, hash_key: str, item_id: str) -> dict | None:
        raw = await self._call("get_catalog", lambda: self.client.hget(hash_key, item_id))
        return None if raw is None else json.loads(raw)


def new_revision() -> str:
    """A catalogue revision token. Random rather than a counter: a Redis that lost its data
    and was reloaded must not repeat a revision a replica already holds."""
    return uuid.uuid4().hex


EVENT_ARGS = 10  # the INGEST script's arguments per event


def _event_args(events: list[Event], products: Container[str]) -> list[str]:
    """The INGEST script's arguments for each event: its columns (EVENT_COLUMNS order), then
    whether a purchase's product may enter its user's state (in `products`)."""
    args: list[str] = []
    for e in events:
        holdable = e.action is Action.PURCHASE and e.item_id in products
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
        ]
    return args


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


def parse_pointer(raw: bytes | str | None) -> Pointer | None:
    """The model pointer; None when absent or malformed (then the replica keeps its model)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return Pointer(str(value["version"]), int(value["generation"]))
    except (ValueError, KeyError, TypeError) as exc:
        log.error("malformed model pointer %r ignored (%s)", raw, exc)
        return None


def _user_state(reply: list[Any]) -> UserState:
    vector, profile, holdings, recent, capped = reply
    fields = dict(zip(profile[::2], profile[1::2], strict=True))
    return UserState(
        vector=vector,
        risk_tolerance=_int_or_none(fields.get(b"risk_tolerance")),
        segment=_str_or_none(fields.get(b"segment")),
        lifecycle=_str_or_none(fields.get(b"lifecycle")),
        holdings=frozenset(h.decode() for h in holdings),
        recent_raw=tuple(recent),
        capped=frozenset(product.decode() for product in capped),
    )


def _recent(entry: bytes) -> RecentEvent:
    item_type, item_id, action, ratio = entry.decode().split("|")
    return RecentEvent(item_type, item_id, action, float(ratio) if ratio else None)


def _timed_out(exc: BaseException) -> bool:
    """A timeout (Redis slow) rather than a failure to reach it. No free connection in the
    pool within the timeout counts as one: every connection is waiting on Redis."""
    timeouts = (RedisTimeoutError, TimeoutError)
    return isinstance(exc, timeouts) or isinstance(exc.__cause__, timeouts)


def _int_or_none(raw: bytes | None) -> int | None:
    return None if raw is None else int(raw)


def _str_or_none(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw
