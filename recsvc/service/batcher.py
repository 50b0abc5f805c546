"""Dynamic batching of feed requests: the requests that arrive while one batch is being
served are served together as the next batch.

One batch costs one Redis round trip for every user's vector and state, one onnxruntime call
for every ranking, and one round trip for the attach counters, so the fixed cost of each is
shared. No request waits for a batch to fill: a batch starts at once when fewer than
`max_in_flight` (2) are being served, else as soon as one finishes, with whatever has queued
(up to `max_batch`). Two in flight keep the event loop busy while a batch waits for Redis or
for the ranking.

A request waits for Redis at most the Redis timeout in all, counted from its arrival: one
queued behind a batch stalled on a slow Redis must not then wait a whole timeout more in its
own batch. Past that deadline its batch is served degraded, as for any Redis failure, while
the Redis call runs on to its own timeout (so that it still counts as one, and the store stops
calling a Redis that does not answer). Unless Redis has not failed of late: then the wait was
a busy CPU's, and the request still gets its answer from a Redis that is fine.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from recsvc.contract.experiments import Assignment
from recsvc.contract.records import Exposure, PageCards
from recsvc.contract.user_state import UserState
from recsvc.feed.attach import ItemRules
from recsvc.feed.audit import page_cards
from recsvc.feed.campaigns import CampaignContext, compiled_for
from recsvc.feed.compute import Feed, FeedOptions, build_feeds
from recsvc.feed.model import ServingModel
from recsvc.feed.placement import PLAIN, Placement
from recsvc.service import logs
from recsvc.service.metrics import Metrics
from recsvc.service.settings import Settings
from recsvc.service.snapshot import Serving, Snapshot
from recsvc.store.gateway import BreakerOpen, RedisUnavailable, utc_day
from recsvc.store.state import FeatureStore
from recsvc.store.users import Card, Counted

log = logging.getLogger("recsvc.service.batcher")
T = TypeVar("T")
MIN_REDIS_WAIT = 0.005  # less left than this: a call is not worth starting (see _by)


class NoModel(RuntimeError):
    """No model is loaded yet (start-up)."""


class _Degraded(Exception):
    """A batch's Redis call failed or was not made; `cause` is the metric's label."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True)
class Served:
    request_id: str
    feed: Feed
    model: ServingModel
    degraded: bool
    assignments: list[Assignment]


@dataclass
class _Request:
    user_id: str
    n: int
    future: asyncio.Future[Served]
    redis_deadline: float  # event-loop time by which its Redis calls must have answered
    request_id: str  # the HTTP request's (X-Request-ID): the feed's, exposures' and events'
    placement: Placement  # its surface, context item and the items to leave out


class FeedBatcher:
    def __init__(
        self,
        serving: Serving,
        store: FeatureStore,
        settings: Settings,
        max_batch: int = 64,
        max_in_flight: int = 2,
        min_batch: int = 8,
        metrics: Metrics | None = None,
    ) -> None:
        self.serving = serving
        self.store = store
        self.settings = settings
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self.min_batch = min_batch
        self.metrics = metrics
        self.base_options = FeedOptions(
            max_attached=settings.max_attached_per_page,
            attach_weights=(settings.attach_user_weight, settings.attach_video_weight),
            daily_cap=settings.daily_cap_per_product,
            unknown_risk=settings.unknown_risk_policy,
            max_per_topic=settings.max_videos_per_topic,
            freshness=settings.freshness,
            fresh_videos=settings.fresh_videos,
            exploration_share=settings.exploration_share,
            today_weight=settings.today_weight,
        )
        self.category_caps = settings.category_caps
        self.redis_timeout = settings.redis_timeout_ms / 1000
        self._queue: list[_Request] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()  # held so that they are not collected

    async def feed(self, user_id: str, n: int, placement: Placement = PLAIN) -> Served:
        """This user's feed, served in the next batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Served] = loop.create_future()
        request_id = logs.request_id.get() or logs.new_id()
        deadline = loop.time() + self.redis_timeout
        self._queue.append(_Request(user_id, n, future, deadline, request_id, placement))
        # Idle: start at once. Busy: a second batch only once enough requests wait for it
        # (a batch of one pays the round trips of a full one).
        if self._in_flight == 0 or (
            self._in_flight < self.max_in_flight and len(self._queue) >= self.min_batch
        ):
            self._start_batch()
        return await future

    def _start_batch(self) -> None:
        batch = self._queue[: self.max_batch]
        del self._queue[: self.max_batch]
        self._in_flight += 1
        task = asyncio.create_task(self._serve_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_batch(self, batch: list[_Request]) -> None:
        # Yield once first, so that requests arriving in the same loop turn join the batch.
        await asyncio.sleep(0)
        extra = self._queue[: self.max_batch - len(batch)]
        del self._queue[: len(extra)]
        batch += extra
        try:
            await self._serve(batch)
        except BaseException as exc:  # never leave a request waiting forever
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("feed batch failed")
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._in_flight -= 1
            if self._queue and self._in_flight < self.max_in_flight:
                self._start_batch()

    async def _serve(self, batch: list[_Request]) -> None:
        snapshot = self.serving.snapshot
        model, rules = snapshot.model, snapshot.rules
        if model is None or rules is None:
            for request in batch:
                if not request.future.done():
                    request.future.set_exception(NoModel("no model or no catalogue loaded yet"))
            return
        # Each request's experiments and options; requests that can share a model call and a
        # daily cap are served together (without experiments: the whole batch).
        assigned = [snapshot.experiments.assign(request.user_id) for request in batch]
        groups: dict[tuple[Any, ...], list[int]] = {}
        options = []
        for i, assignments in enumerate(assigned):
            overrides = {k: v for a in assignments for k, v in a.overrides.items()}
            option = self.base_options.with_overrides(overrides)
            if batch[i].placement is not PLAIN:
                option = option.on_surface(batch[i].placement.surface)
            options.append(option)
            groups.setdefault(option.batch_key, []).append(i)
        day = utc_day()
        # The groups are served concurrently, each on its own: one group's failure (a model
        # that cannot rank) fails only its requests, and no variant waits for another's.
        # A single group (no experiment splits the batch) needs no task of its own.
        calls = [
            self._serve_members(
                snapshot,
                key[0],
                [batch[i] for i in members],
                [options[i] for i in members],
                [assigned[i] for i in members],
                day,
            )  # fmt: skip
            for key, members in groups.items()
        ]
        served = [await calls[0]] if len(calls) == 1 else await asyncio.gather(*calls)
        exposures = [exposure for group, _ in served for exposure in group]
        cards = [card for _, group in served for card in group]
        if exposures or cards:  # logged off the batch: it holds no serving slot, adds no latency
            task = asyncio.create_task(self._log_served(exposures, cards))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve_members(
        self,
        snapshot: Snapshot,
        model_key: str,
        group: list[_Request],
        options: list[FeedOptions],
        assigned: list[list[Assignment]],
        day: str,
    ) -> tuple[list[tuple[_Request, UserState, Served]], list[PageCards]]:
        """Serve one group and answer its requests; the exposures and the cards to log."""
        try:
            model, rules = snapshot.resolve(model_key)
            assert model is not None and rules is not None  # resolve falls back to current
            campaigns = self.campaigns(snapshot, rules, assigned)
            feeds, states, counts, cause = await self._serve_group(
                model, rules, group, options, day, campaigns
            )
        except Exception as exc:
            log.exception("feed group (model %s) failed", model_key)
            for request in group:
                if not request.future.done():
                    request.future.set_exception(exc)
            return [], []
        exposures = []
        cards: list[PageCards] = []
        now = int(time.time() * 1000)
        members = zip(group, feeds, states, counts, assigned, options, strict=True)
        for request, feed, state, counted, assignments, option in members:
            served = Served(request.request_id, feed, model, cause is not None, assignments)
            if not request.future.done():  # the client may have gone away
                request.future.set_result(served)
            if assignments:
                exposures.append((request, state, served))
            if feed.attached:
                cards.append(
                    page_cards(
                        request_id=request.request_id,
                        ts_ms=now,
                        user_id=request.user_id,
                        model_version=model.version,
                        surface=request.placement.surface.name,
                        experiments=",".join(a.label for a in assignments),
                        feed=feed,
                        state=state,
                        rules=rules,
                        unknown_risk=option.unknown_risk,
                        daily_cap=option.daily_cap,
                        counts=counted.counts,
                        category_counts=counted.category_counts,
                    )
                )
        self._count(feeds, cause)
        return exposures, cards

    def campaigns(
        self, snapshot: Snapshot, rules: ItemRules, assigned: list[list[Assignment]]
    ) -> CampaignContext | None:
        """The campaign rules for requests with these assignments, judged now (None: no
        rule and no category cap)."""
        if not len(snapshot.campaigns) and not self.category_caps:
            return None
        return CampaignContext(
            compiled_for(snapshot.campaigns, rules, self.category_caps),
            time.time(),
            [frozenset(a.label for a in its) for its in assigned],
        )

    async def _log_served(
        self, exposures: list[tuple[_Request, UserState, Served]], cards: list[PageCards]
    ) -> None:
        """The exposures, then the cards (each lost, and counted, when Redis cannot take
        them)."""
        if exposures:
            await self._log_exposures(exposures)
        if not cards:
            return
        try:
            dropped = await self.store.log_cards(cards, self.settings.card_stream_max_len)
        except RedisUnavailable:
            dropped = len(cards)
        if dropped and self.metrics is not None:
            self.metrics.cards_dropped.inc(dropped)

    async def _log_exposures(self, served: list[tuple[_Request, UserState, Served]]) -> None:
        """One exposure per feed served to a user in an experiment (even a degraded one: it
        was shown); lost, and counted, when Redis cannot take them."""
        now = int(time.time() * 1000)
        exposures = [
            Exposure(
                request_id=s.request_id,
                ts_ms=now,
                user_id=request.user_id,
                experiments=",".join(a.label for a in s.assignments),
                model_version=s.model.version,
                videos=[item["video_id"] for item in s.feed.items],
                products=[(item["product"] or {}).get("product_id") for item in s.feed.items],
                explored=[item["rank"] for item in s.feed.items if item.get("explored")],
                surface=request.placement.surface.name,
                segment=state.segment or "",
                lifecycle=state.lifecycle or "",
            )
            for request, state, s in served
        ]
        try:
            dropped = await self.store.log_exposures(
                exposures, self.settings.exposure_stream_max_len
            )
        except RedisUnavailable:
            dropped = len(exposures)
        if self.metrics is None:
            return
        if dropped:
            self.metrics.exposures_dropped.inc(dropped)
            return
        for _, _, s in served:
            for a in s.assignments:
                self.metrics.exposures.labels(a.experiment, a.variant).inc()

    async def _serve_group(
        self,
        model: ServingModel,
        rules: ItemRules,
        batch: list[_Request],
        options: list[FeedOptions],
        day: str,
        campaigns: CampaignContext | None = None,
    ) -> tuple[list[Feed], list[UserState], list[Counted], str | None]:
        """The feeds of requests with one batch key, the users' states they were made from,
        each card's counts today, and why they are degraded (None: they are not):
        breaker_open, deadline or redis_error."""
        users = [request.user_id for request in batch]
        daily_cap = options[0].daily_cap
        deadline = min(request.redis_deadline for request in batch)
        cause: str | None = None
        try:
            states = await self._redis(
                deadline, lambda: self.store.user_states(users, model.generation, day, daily_cap)
            )
        except _Degraded as exc:
            states, cause = [UserState(capped=None)] * len(batch), exc.cause
        sizes = [request.n for request in batch]
        # Ranked on the event loop. Measured slower on a worker thread, whether the whole of
        # build_feeds or only the onnxruntime call went there: the hand-over and the GIL cost
        # more than the overlap gains (bench/serve.py).
        placements = [request.placement for request in batch]
        plain = all(placement is PLAIN for placement in placements)
        feeds = build_feeds(
            model, rules, states, sizes, options, None if plain else placements, campaigns
        )
        if cause is not None:
            return feeds, states, [Counted() for _ in feeds], cause
        attached = [(u, cards(rules, f)) for u, f in zip(users, feeds, strict=True)]
        try:
            counted = await self._redis(
                deadline, lambda: self.store.count_attached(day, attached, daily_cap)
            )
        except _Degraded as exc:
            # An attachment that cannot be counted could break the daily cap: withdraw.
            withdrawn = [f.without_products(None) for f in feeds]
            return withdrawn, states, [Counted() for _ in feeds], exc.cause
        # A refused card: another page of the same user took the last slot first.
        kept = [f.without_products(c.refused) for f, c in zip(feeds, counted, strict=True)]
        return kept, states, counted, None

    async def _redis(self, deadline: float, call: Callable[[], Awaitable[T]]) -> T:
        """`call()` by the deadline; else _Degraded, saying why."""
        try:
            return await _by(deadline, call, self.store.available)
        except TimeoutError:
            raise _Degraded("deadline") from None
        except BreakerOpen:
            raise _Degraded("breaker_open") from None
        except RedisUnavailable:
            raise _Degraded("redis_error") from None

    def _count(self, feeds: list[Feed], cause: str | None) -> None:
        """Feed metrics, once per batch (per request they were a measurable cost)."""
        if self.metrics is None:
            return
        self.metrics.batch_size.observe(len(feeds))
        for source, count in Counter(feed.source.value for feed in feeds).items():
            self.metrics.feed_source.labels(source).inc(count)
        self.metrics.feed_items.inc(sum(len(feed.items) for feed in feeds))
        explored = sum(1 for feed in feeds for item in feed.items if item.get("explored"))
        if explored:
            self.metrics.explored.inc(explored)
        self.metrics.attached.inc(sum(len(feed.attached) for feed in feeds))
        if cause is not None:
            self.metrics.degraded.labels(cause).inc(len(feeds))


def cards(rules: ItemRules, feed: Feed) -> list[Card]:
    """A page's cards to count, each with its category and the cap on it for the user."""
    found = []
    for product_id in feed.attached:
        category = rules.product_categories[rules.product_position[product_id]]
        found.append(Card(product_id, category, feed.applied.caps.get(category)))
    return found


async def _by(deadline: float, call: Callable[[], Awaitable[T]], healthy: bool) -> T:
    """The result of `call()`, or TimeoutError at `deadline` (event-loop time). A call under
    way is not cancelled: it ends by its own Redis timeout, which the store counts as a
    failure. With a `healthy` store (no recent failure) and the deadline (nearly) spent, the
    wait was the CPU's, not Redis's: the call gets its own timeout, as any other."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining < MIN_REDIS_WAIT:
        if not healthy:
            raise TimeoutError
        remaining = math.inf
    task = asyncio.ensure_future(call())
    task.add_done_callback(_retrieved)  # a call left running past the deadline fails alone
    return await asyncio.wait_for(asyncio.shield(task), remaining)


def _retrieved(task: asyncio.Future[Any]) -> None:
    """Mark the outcome seen: the store has counted and logged the failure already."""
    if not task.cancelled():
        task.exception()
