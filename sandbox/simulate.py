"""Users of a synthetic world who use a running service: they ask for feeds over HTTP and
respond to what they are shown by the world's ground truth.

For each simulated day, `users_per_day` users drawn from the world ask for a feed
(`GET /v1/feed`). For each video shown, in rank order, a user views it with the truth's
P(view | impression), times an attention factor that decays with rank. Having viewed, the user
clicks the attached card with P(click | card under that video). Having clicked, the user buys
with P(purchase | click). Every response becomes events posted back (`POST /v1/events`) with
the feed's `request_id`, exactly as an app would. So a ranking or an attach rule that fits the
world's people better earns more views, clicks and purchases, and an A/B report can find it.

The simulator calls the service as the app backend does, with the app API key in
`RECSVC_API_KEY`; `--experiments` needs the admin key, in `RECSVC_ADMIN_KEY`.

Purchase amounts come from the product's risk level (riskier products are bigger tickets):
`amount = 100 × (1 + risk)`. Watch ratios are drawn from Beta(2, 2).

With a `Clock` (a world with a clock, docs/synthetic-world.md), the simulation runs on the
world's own time from `Clock.start_ms`, compressed to `hour_seconds` of wall time per hour:
each simulated hour, the world's videos published in it are created through the catalogue
API (`PUT /v1/catalog/videos/{id}`, the admin key, `published_at` now: the service was
loaded with the catalogue as it stood at `start_ms`), then `users_per_day / 24` users drawn
for that hour ask for a feed and respond by the truth at the hour's middle (news fades,
interests drift, a video not published yet is not viewed); a user may come back in a later
hour. Without a clock, truth is read at the world's end and all of a day's users come at
once, each once.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sandbox.world.generate import DAY_MS, load_truth
from sandbox.world.truth import Truth

HOUR_MS = 3_600_000
RETRIES = 5  # a 429 or 503 is sent again this many times, after its Retry-After
MAX_RETRY_WAIT = 30.0  # seconds: a longer Retry-After is cut to this
PROGRESS_SECONDS = 5.0  # how often `progress` hears how far the simulation is
_LOCK = threading.Lock()  # the worker threads count into one report
ATTENTION_DECAY = 0.15  # P(examine rank r) = 1 / (1 + decay · (r - 1))
APP_KEY_VARIABLE = "RECSVC_API_KEY"
ADMIN_KEY_VARIABLE = "RECSVC_ADMIN_KEY"


class KeyRefused(ValueError):
    """The service answered 401 or 403: the key is missing, unknown or of the wrong kind."""


def _headers(variable: str, **headers: str) -> dict[str, str]:
    key = os.environ.get(variable)
    return {**headers, "Authorization": f"Bearer {key}"} if key else headers


def _check_key(exc: urllib.error.HTTPError, variable: str) -> None:
    if exc.code in (401, 403):
        detail = exc.read().decode(errors="replace")
        raise KeyRefused(f"the service refused the API key in {variable} ({exc.code}): {detail}")


@dataclass
class SimulationReport:
    days: int = 0
    feeds: int = 0
    failed_feeds: int = 0
    views: int = 0
    clicks: int = 0
    purchases: int = 0
    events_posted: int = 0
    failed_event_posts: int = 0
    videos_published: int = 0
    failed_publishes: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # "feed: HTTP 429" -> count
    retries: int = 0  # requests sent again after a 429 or 503 (their Retry-After honoured)
    expected_feeds: int = 0
    by_variant: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Clock:
    """The simulated instant of the first hour, and the wall seconds each hour lasts."""

    start_ms: int
    hour_seconds: float = 4.0

    def __post_init__(self) -> None:
        if not self.hour_seconds > 0:
            raise ValueError(f"hour_seconds must be positive, not {self.hour_seconds}")


class Behaviour:
    """How one world's users respond to a feed (pure: no I/O)."""

    def __init__(self, truth: Truth) -> None:
        self.truth = truth
        self.videos = {str(v): i for i, v in enumerate(truth.video_ids)}
        self.products = {str(p): i for i, p in enumerate(truth.product_ids)}

    def respond(
        self,
        user_id: str,
        body: dict[str, Any],
        rng: np.random.Generator,
        now: datetime,
        at_ms: int | None = None,
    ) -> list[dict[str, Any]]:
        """The events a user produces on this feed response, stamped `now`; the truth is read
        at the simulated instant `at_ms` (default: the world's end)."""
        truth = self.truth
        user = truth.user_rows(np.array([user_id]))
        items = [i for i in body["items"] if i["video_id"] in self.videos]
        if not items:
            return []
        videos = np.array([self.videos[i["video_id"]] for i in items])
        users = np.repeat(user, len(items))
        attention = 1.0 / (1.0 + ATTENTION_DECAY * np.arange(len(items)))
        viewed = rng.random(len(items)) < truth.view_probability(users, videos, at_ms) * attention
        events: list[dict[str, Any]] = []
        request_id = body["request_id"]
        stamp = now.isoformat()
        for position, item in enumerate(items):
            if not viewed[position]:
                continue
            ratio = float(np.clip(rng.beta(2, 2), 0.01, 1.0))
            events.append(_event(request_id, len(events), stamp, user_id, item["video_id"],
                                 "video", "view", watch_ratio=round(ratio, 3)))  # fmt: skip
            card = item.get("product")
            if not card or card["product_id"] not in self.products:
                continue
            product = np.array([self.products[card["product_id"]]])
            click = truth.click_probability(user, videos[position : position + 1], product, at_ms)
            if rng.random() >= click[0]:
                continue
            events.append(_event(request_id, len(events), stamp, user_id, card["product_id"],
                                 "product", "click"))  # fmt: skip
            if rng.random() < truth.purchase_probability(user, product, at_ms)[0]:
                amount = 100.0 * (1 + int(truth.product_risk[product[0]]))
                events.append(_event(request_id, len(events), stamp, user_id, card["product_id"],
                                     "product", "purchase", amount=amount))  # fmt: skip
        return events


def _event(
    request_id: str,
    number: int,
    ts: str,
    user_id: str,
    item_id: str,
    item_type: str,
    action: str,
    **extra: float,
) -> dict[str, Any]:
    return {
        "event_id": f"sim-{request_id}-{number}",
        "ts": ts,
        "user_id": user_id,
        "item_id": item_id,
        "item_type": item_type,
        "action": action,
        "request_id": request_id,
        **extra,
    }


def simulate(
    base_url: str,
    world_dir: Path,
    days: int = 1,
    users_per_day: int = 1000,
    seed: int = 0,
    concurrency: int = 16,
    timeout: float = 10.0,
    clock: Clock | None = None,
    progress: Callable[[SimulationReport], None] | None = None,
    progress_seconds: float = PROGRESS_SECONDS,
    by_activity: bool = False,
) -> SimulationReport:
    """Drive the service at `base_url` with the world's users for `days` simulated days (on
    the world's clock from `clock.start_ms`, if given); `progress` hears how far it is every
    `progress_seconds`. With `by_activity`, feeds go to users in proportion to their events in
    the world's log (a heavy user comes back several times a day), rather than one feed to
    each of `users_per_day` distinct users."""
    truth = load_truth(world_dir)
    activity = user_activity(world_dir, truth) if by_activity else None
    behaviour = Behaviour(truth)
    report = SimulationReport(expected_feeds=days * min(users_per_day, len(truth.user_ids)))
    if clock or by_activity:
        report.expected_feeds = days * users_per_day
    started = time.perf_counter()
    heard = [time.monotonic()]

    def tick() -> None:
        if progress and time.monotonic() - heard[0] >= progress_seconds:
            heard[0] = time.monotonic()
            report.seconds = round(time.perf_counter() - started, 3)
            progress(report)

    rng = np.random.default_rng(seed)
    later = published_after(world_dir / "catalog" / "videos.jsonl", clock.start_ms) if clock else []
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for day in range(days):
            if clock is None:
                jobs = _draw(rng, truth, users_per_day, activity)
                _serve(pool, base_url, behaviour, jobs, None, report,
                       timeout, tick)  # fmt: skip
                report.days = day + 1
                continue
            for hour in range(24):
                hour_started = time.monotonic()
                at_ms = clock.start_ms + day * DAY_MS + hour * HOUR_MS + HOUR_MS // 2
                while later and published_ms(later[0]) < at_ms:
                    _publish(base_url, later.pop(0), report, timeout)
                count = users_per_day // 24 + (hour < users_per_day % 24)
                jobs = _draw(rng, truth, count, activity)
                _serve(pool, base_url, behaviour, jobs, at_ms, report, timeout, tick)
                time.sleep(max(0.0, clock.hour_seconds - (time.monotonic() - hour_started)))
            report.days = day + 1
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def user_activity(world_dir: Path, truth: Truth) -> np.ndarray:
    """Each user's events in the world's log (at least 1: everyone may come)."""
    users = pq.read_table(world_dir / "events", columns=["user_id"]).column("user_id")
    counts = pc.value_counts(users)
    rows = truth.user_rows(counts.field("values").to_numpy(zero_copy_only=False))
    activity = np.ones(len(truth.user_ids))
    np.add.at(activity, rows, counts.field("counts").to_numpy())
    return activity


def _draw(
    rng: np.random.Generator, truth: Truth, count: int, activity: np.ndarray | None = None
) -> list[tuple[str, int]]:
    """`count` distinct users of the world (all of them if it has fewer), each with a seed;
    with `activity` (a weight per user), `count` feeds drawn by it: a user may come back."""
    if activity is None:
        size = min(count, len(truth.user_ids))
        chosen = rng.choice(len(truth.user_ids), size=size, replace=False)
    else:
        chosen = rng.choice(len(truth.user_ids), size=count, p=activity / activity.sum())
    seeds = rng.integers(0, 2**63, size=len(chosen))
    return [(str(truth.user_ids[u]), int(s)) for u, s in zip(chosen, seeds, strict=True)]


def _serve(
    pool: ThreadPoolExecutor,
    base_url: str,
    behaviour: Behaviour,
    jobs: list[tuple[str, int]],
    at_ms: int | None,
    report: SimulationReport,
    timeout: float,
    tick: Callable[[], None],
) -> None:
    """Each user asks for a feed, responds to it and posts the events; counted in `report`
    (`tick` after each)."""

    def one(job: tuple[str, int]) -> tuple[str, list[dict[str, Any]], bool]:
        user_id, user_seed = job
        body = _get_feed(base_url, user_id, timeout, report)
        if body is None:
            return "", [], False
        rng = np.random.default_rng(user_seed)
        events = behaviour.respond(user_id, body, rng, datetime.now(UTC), at_ms)
        posted = not events or _post_events(base_url, events, timeout, report)
        return str(body.get("variant", "")), events, posted

    for variant, events, posted in pool.map(one, jobs):
        tick()
        if not variant:
            report.failed_feeds += 1
            continue
        report.feeds += 1
        report.by_variant[variant] = report.by_variant.get(variant, 0) + 1
        report.views += sum(e["action"] == "view" for e in events)
        report.clicks += sum(e["action"] == "click" for e in events)
        report.purchases += sum(e["action"] == "purchase" for e in events)
        if posted:
            report.events_posted += len(events)
        else:
            report.failed_event_posts += 1


def world_instant(world_dir: Path, text: str) -> int:
    """An instant on a world's clock, in epoch milliseconds: ISO 8601 (UTC unless it says),
    or `last-day`, the start of the world's last day."""
    if text == "last-day":
        return load_truth(world_dir).end_ms - DAY_MS
    try:
        return instant_ms(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 instant nor 'last-day'") from None


def published_ms(record: dict[str, Any]) -> int:
    """A catalogue record's `published_at` in epoch milliseconds (0 when it has none)."""
    return instant_ms(record.get("published_at"))


def instant_ms(text: str | None) -> int:
    """An ISO 8601 instant (UTC unless it says) in epoch milliseconds; 0 for none."""
    if not text:
        return 0
    moment = datetime.fromisoformat(text)
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def published_after(videos_jsonl: Path, start_ms: int) -> list[dict[str, Any]]:
    """The catalogue's videos published at or after `start_ms`, in time order."""
    with videos_jsonl.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    later = [r for r in rows if published_ms(r) >= start_ms]
    return sorted(later, key=published_ms)


def _publish(
    base_url: str, record: dict[str, Any], report: SimulationReport, timeout: float
) -> None:
    """A video published now, created through the catalogue API (the admin key)."""
    record = {**record, "published_at": datetime.now(UTC).isoformat()}
    request = urllib.request.Request(
        f"{base_url}/v1/catalog/videos/{record['video_id']}",
        data=json.dumps(record).encode(),
        headers=_headers(ADMIN_KEY_VARIABLE, **{"Content-Type": "application/json"}),
        method="PUT",
    )
    if _request("publish", request, timeout, report, ADMIN_KEY_VARIABLE) is None:
        report.failed_publishes += 1
    else:
        report.videos_published += 1


def load_experiments(base_url: str, definition: str, timeout: float = 30) -> None:
    """Store an experiments definition through the admin endpoint and wait until the replica
    serves that revision (or says it refused it)."""
    url = f"{base_url}/v1/admin/experiments"
    headers = _headers(ADMIN_KEY_VARIABLE)
    request = urllib.request.Request(url, data=definition.encode(), headers=headers, method="PUT")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            revision = json.loads(response.read())["revision"]
    except urllib.error.HTTPError as exc:
        _check_key(exc, ADMIN_KEY_VARIABLE)
        raise ValueError(f"the service refused the definition: {exc.read().decode()}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reading = urllib.request.Request(url, headers=headers)
        with urllib.request.urlopen(reading, timeout=10) as response:
            state = json.loads(response.read())
        if state.get("serving_revision") == revision:
            return
        if state.get("refused_revision") == revision:
            raise ValueError(f"the replica refused revision {revision}; see its log")
        time.sleep(0.1)
    raise ValueError(f"the service did not serve revision {revision} within {timeout:.0f}s")


def _get_feed(
    base_url: str, user_id: str, timeout: float, report: SimulationReport
) -> dict[str, Any] | None:
    url = f"{base_url}/v1/feed?user_id={user_id}"
    body = _request("feed", urllib.request.Request(url, headers=_headers(APP_KEY_VARIABLE)),
                    timeout, report, APP_KEY_VARIABLE)  # fmt: skip
    return body if isinstance(body, dict) else None


def _post_events(
    base_url: str, events: list[dict[str, Any]], timeout: float, report: SimulationReport
) -> bool:
    request = urllib.request.Request(
        f"{base_url}/v1/events",
        data=json.dumps({"events": events}).encode(),
        headers=_headers(APP_KEY_VARIABLE, **{"Content-Type": "application/json"}),
        method="POST",
    )
    return _request("events", request, timeout, report, APP_KEY_VARIABLE) is not None


def _request(
    what: str,
    request: urllib.request.Request,
    timeout: float,
    report: SimulationReport,
    key_variable: str,
) -> Any:
    """Send a request; its JSON body (True when it has none), or None when it failed, the
    failure counted in `report.failures` by what and why (the status, a timeout, a refused
    connection). A 429 or 503 is sent again, up to RETRIES times, after the Retry-After it
    names (at most MAX_RETRY_WAIT seconds; 1 s when it names none) and a random quarter of it
    more, so that clients told alike do not all come back at once: every request here is
    safe to repeat (a GET, or writes the service deduplicates or replaces)."""
    for attempt in range(RETRIES + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
            return json.loads(raw) if raw else True
        except urllib.error.HTTPError as exc:
            _check_key(exc, key_variable)
            with exc:
                wait = _retry_after(exc.headers.get("Retry-After"))
            if exc.code in (429, 503) and attempt < RETRIES:
                with _LOCK:
                    report.retries += 1
                time.sleep(wait * (1 + 0.25 * random.random()))
                continue
            reason = f"HTTP {exc.code}"
        except TimeoutError:
            reason = "timeout"
        except urllib.error.URLError as exc:
            reason = "timeout" if isinstance(exc.reason, TimeoutError) else "unreachable"
        except ValueError:
            reason = "not JSON"
        with _LOCK:
            key = f"{what}: {reason}"
            report.failures[key] = report.failures.get(key, 0) + 1
        return None
    return None  # not reached: the last attempt returns or records its failure


def _retry_after(value: str | None) -> float:
    try:
        wait = float(value or 1.0)
    except ValueError:
        return 1.0  # an HTTP date: wait a second rather than parse it
    return min(max(wait, 0.0), MAX_RETRY_WAIT) if math.isfinite(wait) else 1.0
