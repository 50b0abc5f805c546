"""Dynamic batching of feed requests: the requests that arrive while one batch is being
served are served together as the next batch.

One batch costs one Redis round trip for every user's vector and state, one onnxruntime call
for every ranking, and one round trip for the attach counters, so the fixed cost of each is
shared. No request waits for a batch to fill: an idle batcher starts at once, and a busy one
takes whatever has queued (up to `max_batch`) as soon as the previous batch is done.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from recsvc.feed import Feed, build_feeds
from recsvc.serving import Serving, ServingModel
from recsvc.settings import Settings
from recsvc.store import FeatureStore, RedisUnavailable, UserState, utc_day

log = logging.getLogger("recsvc.batcher")


class NoModel(RuntimeError):
    """No model is loaded yet (start-up)."""


@dataclass(frozen=True)
class Served:
    feed: Feed
    model: ServingModel
    degraded: bool


@dataclass
class _Request:
    user_id: str
    n: int
    future: asyncio.Future[Served]


class FeedBatcher:
    def __init__(
        self, serving: Serving, store: FeatureStore, settings: Settings, max_batch: int = 64
    ) -> None:
        self.serving = serving
        self.store = store
        self.settings = settings
        self.max_batch = max_batch
        self._queue: list[_Request] = []
        self._busy = False
        self._task: asyncio.Task[None] | None = None  # held so that it is not collected
        self._ranker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recsvc-rank")

    def close(self) -> None:
        self._ranker.shutdown(wait=True)

    async def feed(self, user_id: str, n: int) -> Served:
        """This user's feed, served in the next batch."""
        future: asyncio.Future[Served] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(user_id, n, future))
        if not self._busy:
            self._busy = True
            self._task = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    await self._serve(batch)
                except Exception as exc:  # never leave a request waiting forever
                    log.exception("feed batch failed")
                    for request in batch:
                        if not request.future.done():
                            request.future.set_exception(exc)
        finally:
            self._busy = False

    async def _serve(self, batch: list[_Request]) -> None:
        snapshot = self.serving.snapshot
        model, rules = snapshot.model, snapshot.rules
        if model is None or rules is None:
            for request in batch:
                request.future.set_exception(NoModel("no model loaded yet"))
            return
        day = utc_day()
        users = [request.user_id for request in batch]
        degraded = False
        try:
            states = await self.store.user_states(users, model.generation, day)
        except RedisUnavailable:
            states, degraded = [UserState(attached_today=None)] * len(batch), True
        sizes = [request.n for request in batch]
        # Ranking runs on a worker thread: onnxruntime releases the GIL while it computes, so
        # the event loop goes on parsing and answering other requests meanwhile.
        feeds = await asyncio.get_running_loop().run_in_executor(
            self._ranker, build_feeds, model, rules, states, sizes, self.settings
        )
        withdrawn = False
        if not degraded:
            try:
                await self.store.count_attached(
                    day, [(u, f.attached) for u, f in zip(users, feeds, strict=True)]
                )
            except RedisUnavailable:
                # An attachment that cannot be counted could break the daily cap: withdraw.
                feeds = [f.without_products() for f in feeds]
                withdrawn = True
        for request, feed in zip(batch, feeds, strict=True):
            if not request.future.done():  # the client may have gone away
                request.future.set_result(Served(feed, model, degraded or withdrawn))
