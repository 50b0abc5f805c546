"""Replay of a synthetic day with fresh content through two running services: live against
nightly-only.

A world with a clock (docs/synthetic-world.md: videos published throughout the window, news
whose appeal fades within hours, users whose interests drift) is generated. A model is
trained on every day but the last, as the nightly job would (its blend of today's behaviour
chosen on its own last day; its map from metadata to the item space from the catalogue it
knew), and served twice, each service on its own private Redis:

- live: every live feature on: videos published since the model ranked from their metadata
  and then their first viewers, today's behaviour blended into published vectors, an
  exploration share (`--exploration`, 0.1), freshness (`--freshness`, weight 1, with the
  news half-life as the operator's default half-life);
- nightly: the same model with them off (`RECSVC_FRESH_VIDEOS=false`, no exploration, no
  freshness, no today blend): what the feed knew before issue 16.

The last day is then replayed hour by hour, compressed (`--hour-seconds` of wall time per
hour): the videos published in the hour are created through the catalogue API of both
services; a sample of the users the world has active in the hour, spread over it, ask each
service for a page of 10; each page is scored against the truth at that instant (NDCG@10,
relevance = the chance the user views the video if shown, over the videos available then
that the user has not seen); the user's views of each page, drawn from the same truth, are
posted back to the service that served it, so each learns from its own pages.

Reported: NDCG@10 of each, their ratio over the day and over the hours with fresh content
(target ≥ 1.3), and for every video published during the replay the wall-clock seconds from
its creation to its first page on the live service (p50, p99; videos never served counted
apart). Because the hours are compressed, ages are too: the live service's half-life is the
news half-life on the compressed clock, and its hour-bucketed trending counts would span the
whole replay (the model is trained without a trending prior, so neither uses one).

The default world is a news-heavy one (a small catalogue that heavy users have mostly seen,
60% of its videos published during the window, 50% news that draws more than an explainer
when fresh and halves every 12 hours): about 35–40% of the best page of a user on the last
day is that day's videos. In a world where fresh videos are rarely among the best (the
defaults of `WorldSpec`), live and nightly score alike.

Usage: python bench/replay.py [--users N --videos N --events N --days D]
       [--news-share S --fresh-share S --drift D] [--hour-seconds S --users-per-hour N]
       [--out DIR] [--seed N]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from serve import (
    ADMIN_KEY,
    APP_KEY,
    HOST,
    free_port,
    recsvc_command,
    run,
    service_env,
    start_redis,
    start_server,
    stop_process,
    stop_redis,
    wait_ready,
)

from sandbox.simulate import instant_ms, published_after, published_ms
from sandbox.world.generate import DAY_MS, WorldSpec, generate_world, write_world
from training.data.matrix import ConfidenceWeights, build_interactions
from training.data.splits import Dataset, split_at
from training.models.factors import FitParams, fit
from training.models.pipeline import catalog_videos, export_trained
from training.models.today import choose_today_weight

PAGE = 10
HOUR_MS = 3_600_000
TARGET_RATIO = 1.3
LIVE_SETTINGS = {"RECSVC_FRESH_VIDEOS": "true"}
NIGHTLY_SETTINGS = {"RECSVC_FRESH_VIDEOS": "false", "RECSVC_EXPLORATION_SHARE": "0"}


@dataclass
class Service:
    """One running service: its port, its Redis directory and what it has learned of users."""

    name: str
    port: int
    redis_dir: Path
    process: Any = None
    seen: dict[int, set[int]] = field(default_factory=dict)  # user row -> video rows viewed
    video_row: dict[str, int] = field(default_factory=dict)  # video id -> the truth's row
    ndcg: list[tuple[int, float]] = field(default_factory=list)  # (hour, NDCG@10)
    errors: int = 0


def request(port: int, method: str, path: str, body: Any = None, key: str = APP_KEY) -> Any:
    """One JSON request on loopback; the decoded body, or None on an HTTP error."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError:
        return None


def ndcg(page: list[int], relevance: np.ndarray, excluded: set[int]) -> float:
    """NDCG@10 of a page of video rows against graded relevance; the ideal page is the best
    10 videos available that the user has not seen."""
    gains = relevance.copy()
    if excluded:
        gains[list(excluded)] = 0.0
    discounts = 1.0 / np.log2(np.arange(2, PAGE + 2))
    ideal = float(np.sort(gains)[::-1][:PAGE] @ discounts[: min(PAGE, len(gains))])
    got = sum(float(gains[v]) * discounts[i] for i, v in enumerate(page[:PAGE]) if v >= 0)
    return got / ideal if ideal > 0 else 0.0


def train_models(
    world_dir: Path, world: Any, cutoff_ms: int, models: Path, nightly: bool = True
) -> dict[str, Any]:
    """Fit on the events before the cutoff and export the live and (unless `nightly` is false)
    the nightly model (the same factors; the live one with the metadata map and the blend of
    today's behaviour chosen on its own last day)."""
    before = events_before(world, cutoff_ms)
    pq.write_table(before, models.parent / "history.parquet")  # backfills both services
    weights = ConfidenceWeights()
    dataset = Dataset(build_interactions(before, weights), before, weights)
    params = FitParams(factors=32, regularization=0.05, iterations=15, seed=1)
    last_day = datetime.fromtimestamp((cutoff_ms - DAY_MS) / 1000, UTC)
    train, _ = split_at(dataset, last_day)
    held = fit(train.interactions.confidence, params, threads=1)
    today = choose_today_weight(held, dataset, last_day)
    factors = fit(dataset.interactions.confidence, params, threads=1)
    records = catalog_videos(world_dir / "catalog")
    known = {v: r for v, r in records.items() if instant_ms(r.published_at) < cutoff_ms}
    window = {"window": {"last_event": str(pc.max(before.column("ts")).as_py())}}
    live = export_trained(
        models / "live", factors, dataset, window, {}, None, known,
        {"today": {"weight": today.weight, "users": today.users}},
    )  # fmt: skip
    exported = {"live": live, "today": today.as_dict()}
    if nightly:
        exported["nightly"] = export_trained(models / "nightly", factors, dataset, window, {})
    return exported


def events_before(world: Any, cutoff_ms: int) -> pa.Table:
    events = world.events
    cut = pa.scalar(datetime.fromtimestamp(cutoff_ms / 1000, UTC), events.schema.field("ts").type)
    return events.filter(pc.less(events.column("ts"), cut))


def start_service(
    service: Service, model: Path, work: Path, settings: dict[str, str]
) -> dict[str, str]:
    """Its Redis, the model published, the catalogue known at the cutoff, the profiles and
    the users' history (their recent events: the seen filter) loaded, `recsvc serve` ready;
    the environment of its `recsvc` commands."""
    world_dir, catalog_dir = work / "world", work / "catalog"
    url = start_redis(service.redis_dir)
    env = service_env(url, model.parent, RECSVC_POLL_SECONDS="0.5", **settings)
    recsvc = recsvc_command()
    run([*recsvc, "publish", str(model), "--json"], env)
    run([*recsvc, "catalog", "load", "--videos", str(catalog_dir / "videos.jsonl"),
         "--products", str(catalog_dir / "products.jsonl")], env)  # fmt: skip
    run([*recsvc, "profiles", "load", str(world_dir / "users.csv")], env)
    run([*recsvc, "state", "backfill", "--interactions", str(work / "history.parquet")], env)
    log = service.redis_dir / "serve.log"
    service.process = start_server(env, service.port, log)
    wait_ready(service.process, service.port, log, 60)
    return env


def cutoff_catalog(world_dir: Path, out: Path, cutoff_ms: int) -> list[dict[str, Any]]:
    """The catalogue as it stood at the cutoff (written under `out`), and the videos published
    after it, in time order (the replay creates them)."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(world_dir / "catalog" / "products.jsonl", out / "products.jsonl")
    rows = [
        json.loads(line)
        for line in (world_dir / "catalog" / "videos.jsonl").read_text().splitlines()
    ]
    kept = [r for r in rows if published_ms(r) < cutoff_ms]
    (out / "videos.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    return published_after(world_dir / "catalog" / "videos.jsonl", cutoff_ms)


def replay(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    spec = world_spec(args)
    started = time.perf_counter()
    world = generate_world(spec)
    world_dir = work / "world"
    write_world(world, world_dir)
    truth = world.truth
    cutoff_ms = spec.end_ms - DAY_MS
    print(f"world {time.perf_counter() - started:.0f}s; training", file=sys.stderr, flush=True)
    models = train_models(world_dir, world, cutoff_ms, work / "models")
    later = cutoff_catalog(world_dir, work / "catalog", cutoff_ms)
    services = [
        Service("live", free_port(), work / "redis-live"),
        Service("nightly", free_port(), work / "redis-nightly"),
    ]
    try:
        live = {
            **LIVE_SETTINGS,
            "RECSVC_EXPLORATION_SHARE": str(args.exploration),
            "RECSVC_FRESHNESS_WEIGHT": str(args.freshness),
            # the operator's half-life for news, on the replay's compressed clock
            "RECSVC_FRESHNESS_HALF_LIFE_HOURS": str(args.news_half_life * args.hour_seconds / 3600),
        }
        for service, settings in zip(services, (live, NIGHTLY_SETTINGS), strict=True):
            service.redis_dir.mkdir()
            start_service(service, models[service.name], work, settings)
        rows = {str(v): i for i, v in enumerate(truth.video_ids)}
        for service in services:
            service.video_row = rows
        hours = replay_day(args, world, services, later, cutoff_ms)
    finally:
        for service in services:
            stop_process(service.process)
            stop_redis(service.redis_dir)
    return report(args, services, hours, models["today"], time.perf_counter() - started)


@dataclass
class Day:
    """What the replay keeps across hours: the videos created and when, their first page on
    the live service, the hours that had fresh videos, and the event numbering."""

    created: dict[str, float] = field(default_factory=dict)  # video id -> wall time
    first_served: dict[str, float] = field(default_factory=dict)
    fresh_hours: set[int] = field(default_factory=set)
    events: int = 0


def replay_day(
    args: argparse.Namespace,
    world: Any,
    services: list[Service],
    later: list[dict[str, Any]],
    cutoff_ms: int,
) -> dict[str, Any]:
    """Hour by hour: create the hour's videos, serve a sample of its active users, score the
    pages against the truth and post the users' views back to the service that served them."""
    truth = world.truth
    rng = np.random.default_rng(args.seed)
    active = active_users(world, cutoff_ms, truth)
    history = viewed_before(world, cutoff_ms, truth)
    for service in services:
        service.seen = {u: set(v) for u, v in history.items()}
    day = Day()
    pending = list(later)
    for hour in range(24):
        hour_started = time.monotonic()
        now_ms = cutoff_ms + hour * HOUR_MS + HOUR_MS // 2
        while pending and published_ms(pending[0]) < now_ms:
            create_video(pending.pop(0), services, day, hour)
        users = active.get(hour, np.array([], dtype=np.int64))
        if len(users) > args.users_per_hour:
            users = rng.choice(users, args.users_per_hour, replace=False)
        relevance = truth.view_propensity(users, now_ms) if len(users) else np.zeros((0, 0))
        for row, user in enumerate(users):  # spread over the hour, as users come
            for service in services:
                serve_user(service, truth, int(user), relevance[row], hour, day, rng)
            due = hour_started + (row + 1) * args.hour_seconds / (len(users) + 1)
            time.sleep(max(0.0, due - time.monotonic()))
        left = args.hour_seconds - (time.monotonic() - hour_started)
        if left > 0:
            time.sleep(left)
        print(f"hour {hour:2d}: {len(users)} users", file=sys.stderr, flush=True)
    delays = sorted(day.first_served[v] - day.created[v] for v in day.first_served)
    return {
        "fresh_hours": sorted(day.fresh_hours),
        "published": len(day.created),
        "served": len(delays),
        "delays": delays,
    }


def create_video(record: dict[str, Any], services: list[Service], day: Day, hour: int) -> None:
    """A video published now, created through both services' catalogue API."""
    record = {**record, "published_at": datetime.now(UTC).isoformat()}
    for service in services:
        path = f"/v1/catalog/videos/{record['video_id']}"
        if request(service.port, "PUT", path, record, ADMIN_KEY) is None:
            service.errors += 1
    day.created[record["video_id"]] = time.monotonic()
    day.fresh_hours.add(hour)


def serve_user(
    service: Service,
    truth: Any,
    user: int,
    relevance: np.ndarray,
    hour: int,
    day: Day,
    rng: np.random.Generator,
) -> None:
    """One page for the user from the service, scored; the user's views of it posted back."""
    user_id = str(truth.user_ids[user])
    body = request(service.port, "GET", f"/v1/feed?user_id={user_id}&n={PAGE}")
    if body is None:
        service.errors += 1
        return
    ids = [item["video_id"] for item in body["items"]]
    page = [service.video_row.get(v, -1) for v in ids]
    seen = service.seen.setdefault(user, set())
    service.ndcg.append((hour, ndcg(page, relevance, seen)))
    if service.name == "live":
        for video in ids:
            if video in day.created and video not in day.first_served:
                day.first_served[video] = time.monotonic()
    viewed = [v for v in page if v >= 0 and v not in seen and rng.random() < relevance[v]]
    seen.update(viewed)
    events = []
    for video in viewed:
        day.events += 1
        events.append({
            "event_id": f"r{day.events}", "ts": datetime.now(UTC).isoformat(),
            "user_id": user_id, "item_id": str(truth.video_ids[video]),
            "item_type": "video", "action": "view", "watch_ratio": 1.0,
        })  # fmt: skip
    if events and request(service.port, "POST", "/v1/events", {"events": events}) is None:
        service.errors += 1


def active_users(world: Any, cutoff_ms: int, truth: Any) -> dict[int, np.ndarray]:
    """Per hour of the last day, the user rows with an impression in it."""
    events = world.events
    ts = events.column("ts").cast(pa.int64()).to_numpy()
    impressions = pc.equal(events.column("action"), "impression").to_numpy(zero_copy_only=False)
    mask = (ts >= cutoff_ms) & impressions
    hours = (ts[mask] - cutoff_ms) // HOUR_MS
    users = truth.user_rows(events.column("user_id").to_numpy(zero_copy_only=False)[mask])
    return {int(h): np.unique(users[hours == h]) for h in np.unique(hours)}


def viewed_before(world: Any, cutoff_ms: int, truth: Any) -> dict[int, set[int]]:
    """Each user row's video rows viewed before the cutoff: not in the ideal page (the
    services know them from the backfilled history, the last RECSVC_RECENT_EVENTS_LIMIT of
    each user's events, and do not show them again)."""
    before = events_before(world, cutoff_ms)
    views = before.filter(pc.equal(before.column("action"), "view"))
    users = truth.user_rows(views.column("user_id").to_numpy(zero_copy_only=False))
    rows = {str(v): i for i, v in enumerate(truth.video_ids)}
    videos = [rows[str(v)] for v in views.column("item_id").to_pylist()]
    seen: dict[int, set[int]] = {}
    for user, video in zip(users.tolist(), videos, strict=True):
        seen.setdefault(user, set()).add(video)
    return seen


def report(
    args: argparse.Namespace,
    services: list[Service],
    hours: dict[str, Any],
    today: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    live, nightly = services
    fresh = set(hours["fresh_hours"])

    def mean(service: Service, only_fresh: bool) -> float:
        values = [v for h, v in service.ndcg if not only_fresh or h in fresh]
        return statistics.fmean(values) if values else 0.0

    delays = hours["delays"]

    def quantile(q: float) -> float | None:
        return round(float(np.quantile(delays, q)), 2) if delays else None

    day_live, day_nightly = mean(live, False), mean(nightly, False)
    fresh_live, fresh_nightly = mean(live, True), mean(nightly, True)
    return {
        "benchmark": "replay",
        "world": {k: getattr(args, k) for k in WORLD_ARGUMENTS},
        "hour_seconds": args.hour_seconds,
        "exploration_share": args.exploration,
        "freshness_weight": args.freshness,
        "pages_per_service": len(live.ndcg),
        "live_ndcg_at_10": round(day_live, 4),
        "nightly_ndcg_at_10": round(day_nightly, 4),
        "live_to_nightly_ndcg_ratio_day": round(day_live / day_nightly, 3) if day_nightly else None,
        "live_to_nightly_ndcg_ratio": round(fresh_live / fresh_nightly, 3)
        if fresh_nightly
        else None,
        "target_ratio": TARGET_RATIO,
        "hours_with_fresh_content": len(fresh),
        "videos_published": hours["published"],
        "videos_served_live": hours["served"],
        "publish_to_served_p50_s": quantile(0.5),
        "publish_to_served_p99_s": quantile(0.99),
        "today_blend": today,
        "errors": {s.name: s.errors for s in services},
        "seconds": round(seconds, 1),
    }


WORLD_ARGUMENTS = ("users", "videos", "products", "events", "days", "fresh_share",
                   "news_share", "news_appeal", "news_half_life", "drift", "seed")  # fmt: skip


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    """The news-heavy world's options (the module's docstring says why these defaults)."""
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--videos", type=int, default=300)
    parser.add_argument("--products", type=int, default=40)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=4)
    parser.add_argument("--fresh-share", type=float, default=0.6)
    parser.add_argument("--news-share", type=float, default=0.5)
    parser.add_argument("--news-appeal", type=float, default=2.0)
    parser.add_argument("--news-half-life", type=float, default=12.0, help="hours")
    parser.add_argument("--drift", type=float, default=0.3)


def world_spec(args: argparse.Namespace) -> WorldSpec:
    return WorldSpec(
        users=args.users, videos=args.videos, products=args.products, events=args.events,
        days=args.days, seed=args.seed, fresh_share=args.fresh_share,
        news_share=args.news_share, news_appeal=args.news_appeal,
        news_half_life_hours=args.news_half_life, drift=args.drift,
    )  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_world_arguments(parser)
    parser.add_argument("--hour-seconds", type=float, default=4.0)
    parser.add_argument("--users-per-hour", type=int, default=30)
    parser.add_argument("--exploration", type=float, default=0.1, help="the live share")
    parser.add_argument("--freshness", type=float, default=1.0, help="the live weight")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="bench/out/replay")
    return parser.parse_args()


def main() -> None:
    result = replay(parse_args())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
