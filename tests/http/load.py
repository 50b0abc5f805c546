"""A load generator for the fault tests: concurrent clients that request feeds and post
events against a running service at a steady pace, and record every answer they get.

Each client is an asyncio task on one event loop in a background thread, with a keep-alive
connection of its own. A client sends a request at each tick of its pace and waits for the
answer; ticks missed meanwhile are skipped, not caught up (so a stalled service is not hit by
a burst afterwards), and the other clients' requests keep arriving while some wait. Times are
`time.monotonic()`, the clock the test marks its faults with.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.builders import auth_header
from tests.http.builders import TestKeys, event_body

FEED_USERS = ("u-save", "u-ins", "u-inv", "u-credit", "u-unknown")  # planted, and one cold
EVENT_VIDEOS = ("v20", "v21", "v22", "v30")


@dataclass(frozen=True)
class Outcome:
    """One request and what came back (status 0: no HTTP answer at all, `error` says why)."""

    kind: str  # "feed" or "events"
    started: float
    ended: float
    status: int
    degraded: bool | None = None
    model_version: str | None = None
    source: str | None = None
    retry_after: str | None = None
    error: str | None = None
    request_id: str = ""  # sent as X-Request-Id: the service's access log names it

    @property
    def latency(self) -> float:
        return self.ended - self.started

    def within(self, start: float, end: float) -> bool:
        """Sent at or after `start` and answered by `end`."""
        return self.started >= start and self.ended <= end


class Load:
    """Feed and event clients against `base_url`, for the duration of a `with` block."""

    def __init__(
        self,
        base_url: str,
        feed_clients: int = 8,
        feeds_per_second: float = 25.0,  # per client
        event_clients: int = 1,
        event_posts_per_second: float = 10.0,  # per client, 3 events each
        feed_users: tuple[str, ...] = FEED_USERS,
    ) -> None:
        self.base_url = base_url
        self.feed_clients = feed_clients
        self.feed_interval = 1 / feeds_per_second
        self.event_clients = event_clients
        self.event_interval = 1 / event_posts_per_second
        self.feed_users = feed_users
        self._outcomes: list[Outcome] = []
        self._numbers = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._outcomes:  # the service has answered
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {self.base_url} within 10 s")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)

    @property
    def outcomes(self) -> list[Outcome]:
        return list(self._outcomes)  # a copy: the clients keep appending

    def feeds(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "feed"]

    def events(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.kind == "events"]

    async def _main(self) -> None:
        # Idle connections are dropped before the server's keep-alive (5 s) closes them: a
        # request must not race the server's close of the connection it reuses (seen once in
        # a loaded run as "Server disconnected without sending a response").
        limits = httpx.Limits(
            max_connections=self.feed_clients + self.event_clients, keepalive_expiry=2
        )
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=5.0, limits=limits, headers=auth_header()
        ) as client:
            clients = [self._feeds(client, i) for i in range(self.feed_clients)]
            clients += [self._events(client, i) for i in range(self.event_clients)]
            await asyncio.gather(*clients)

    async def _paced(self, interval: float, offset: float) -> AsyncIterator[None]:
        """Yield at every tick of `interval` seconds until stopped; missed ticks are skipped."""
        tick = time.monotonic() + offset
        while not self._stop.is_set():
            now = time.monotonic()
            if tick > now:
                await asyncio.sleep(tick - now)
            yield
            tick += interval * max(1, math.ceil((time.monotonic() - tick) / interval))

    async def _feeds(self, client: httpx.AsyncClient, number: int) -> None:
        offset = self.feed_interval * number / self.feed_clients  # spread the clients' ticks
        sent = 0
        async for _ in self._paced(self.feed_interval, offset):
            user = self.feed_users[(number + sent) % len(self.feed_users)]
            sent += 1
            await self._request(client, "feed", "GET", "/v1/feed", params={"user_id": user, "n": 3})

    async def _events(self, client: httpx.AsyncClient, number: int) -> None:
        sent = 0
        async for _ in self._paced(self.event_interval, 0.0):
            sent += 1
            batch = [
                event_body(f"u-load-{number}-{sent % 50}", EVENT_VIDEOS[(sent + k) % 4], "view")
                for k in range(3)
            ]
            await self._request(client, "events", "POST", "/v1/events", json={"events": batch})

    async def _request(
        self, client: httpx.AsyncClient, kind: str, method: str, path: str, **options: Any
    ) -> None:
        request_id = f"load-{kind}-{next(self._numbers)}"
        headers = {"X-Request-Id": request_id}
        started = time.monotonic()
        try:
            response = await client.request(method, path, headers=headers, **options)
        except httpx.HTTPError as exc:
            ended = time.monotonic()
            failed = Outcome(kind, started, ended, 0, error=repr(exc), request_id=request_id)
            self._outcomes.append(failed)
            return
        ended = time.monotonic()
        body: dict[str, Any] = {}
        if response.status_code == 200 and kind == "feed":
            body = response.json()
        self._outcomes.append(
            Outcome(
                kind,
                started,
                ended,
                response.status_code,
                degraded=body.get("degraded"),
                model_version=body.get("model_version"),
                source=body.get("source"),
                retry_after=response.headers.get("Retry-After"),
                error=None if response.status_code < 400 else response.text[:300],
                request_id=request_id,
            )
        )


def percentile(values: Iterable[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100) of `values`, which must not be empty."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def event_burst(base_url: str, posts: int) -> list[int]:
    """The statuses of `posts` event batches posted at once, each on its own connection (the
    service then holds as many Redis connections at once)."""

    async def burst() -> list[int]:
        limits = httpx.Limits(max_connections=posts)
        async with httpx.AsyncClient(
            base_url=base_url, timeout=5.0, limits=limits, headers=auth_header()
        ) as client:
            batches = [[event_body(f"u-burst-{i}", "v20", "view")] for i in range(posts)]
            responses = await asyncio.gather(
                *(client.post("/v1/events", json={"events": batch}) for batch in batches)
            )
        return [response.status_code for response in responses]

    return asyncio.run(burst())


class FeedLoop:
    """Threads that request one user's feed without pause and record every outcome (status,
    model version): what a switch of versions looks like to each client."""

    def __init__(self, base_url: str, threads: int = 3) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.outcomes: list[list[tuple[int, str | None]]] = [[] for _ in range(threads)]
        self.threads = [
            threading.Thread(target=self._run, args=(log,), daemon=True) for log in self.outcomes
        ]

    def _run(self, log: list[tuple[int, str | None]]) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10, auth=TestKeys()) as client:
            while not self.stop.is_set():
                try:
                    response = client.get("/v1/feed", params={"user_id": "u-save", "n": 3})
                except httpx.HTTPError as exc:
                    log.append((0, repr(exc)))
                    continue
                version = response.json().get("model_version") if response.is_success else None
                log.append((response.status_code, version))

    def __enter__(self) -> FeedLoop:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(10)

    def latest(self) -> set[str | None]:
        return {log[-1][1] for log in self.outcomes if log}
