"""A/B experiment of the live feed against nightly-only, run by the A/B simulator on a world
with a clock: does the report name live the winner?

The world and the model are bench/replay.py's (a news-heavy world: 60% of the videos
published during the window, half of them news that fades within hours; the model trained
on every day but the last, with its metadata map and its blend of today's behaviour), with
four times the users and events (6,000 and 800,000): purchases are rare (about 2% of the
cards shown), and a day of 24,000 feeds gives a few hundred of them. One
`recsvc serve` on a private Redis, loaded with the catalogue as it stood at the cutoff, the
profiles and the users' history, serves one experiment of two variants, 50/50:

- `live`: the service's settings: new videos ranked from their metadata and then their
  first viewers, today's behaviour blended in, an exploration share (`--exploration`),
  freshness (`--freshness`, with the news half-life, on the compressed clock, as the
  operator's default half-life);
- `nightly`: the documented nightly-only variant (docs/experiments.md): `fresh_videos =
  false`, `exploration_share = 0`, `today_weight = 0`, `live_trending = false`,
  `freshness_weight = 0`.

The A/B simulator (`sandbox.simulate` with a `Clock`, as `recsvc simulate --clock-start
last-day` runs it) then plays the last day hour by hour (`--hour-seconds` of wall time per
hour): the hour's new videos are created through the catalogue API; `--users-per-day / 24`
users ask for a feed in each hour and view, click the attached card and buy by the truth at
that hour; their events go back to the service with the feed's request id. The events and
exposures are drained and the experiment's report built (training.ab.report, fixed horizon,
α = `--alpha`, 0.01).

Reported: each variant's users, live against nightly on every metric (relative difference,
interval, p and p after Holm, the winner the report names), the SRM check, and
`targets_met`: the report names live the winner of `video_ctr` and `attach_conversion` (p
after Holm < α), and no SRM alarm. The whole report is written to `report.json` in `--out`.

Usage: python bench/ab_live.py [--users-per-day N --hour-seconds S --alpha A] [world options
       of bench/replay.py] [--out DIR] [--seed N]
About 2.5 minutes. The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import redis
from replay import Service, add_world_arguments, cutoff_catalog, train_models, world_spec
from replay import start_service as start_replay_service
from serve import ADMIN_KEY, APP_KEY, exit_on_sigterm, free_port, stop_process, stop_redis

from recsvc.contract.experiments import parse_experiments
from sandbox.simulate import Clock, load_experiments, simulate
from sandbox.world.generate import DAY_MS, generate_world, write_world
from training.ab.report import build_report, load_durations, load_exposures
from training.data.drain import EXPOSURES, drain
from training.data.events import load_events

EXPERIMENT = "live-vs-nightly"
WINNING_METRICS = ("video_ctr", "attach_conversion")
DEFINITION = f"""[[experiment]]
name = "{EXPERIMENT}"
control = "nightly"

[[experiment.variant]]
name = "live"
weight = 0.5

[[experiment.variant]]
name = "nightly"
weight = 0.5
fresh_videos = false
exploration_share = 0
today_weight = 0
live_trending = false
freshness_weight = 0
"""


def run_experiment(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.perf_counter()
    spec = world_spec(args)
    world = generate_world(spec)
    world_dir = work / "world"
    write_world(world, world_dir)
    cutoff_ms = spec.end_ms - DAY_MS
    print(f"world {time.perf_counter() - started:.0f}s; training", file=sys.stderr, flush=True)
    models = train_models(world_dir, world, cutoff_ms, work / "models", nightly=False)
    cutoff_catalog(world_dir, work / "catalog", cutoff_ms)
    service = Service("live", free_port(), work / "redis")
    service.redis_dir.mkdir()
    settings = {
        "RECSVC_FRESH_VIDEOS": "true",
        "RECSVC_EXPLORATION_SHARE": str(args.exploration),
        "RECSVC_FRESHNESS_WEIGHT": str(args.freshness),
        # the operator's half-life for news, on the simulation's compressed clock
        "RECSVC_FRESHNESS_HALF_LIFE_HOURS": str(args.news_half_life * args.hour_seconds / 3600),
    }
    os.environ.update(RECSVC_API_KEY=APP_KEY, RECSVC_ADMIN_KEY=ADMIN_KEY)  # the simulator's
    try:
        env = start_replay_service(service, models["live"], work, settings)
        base_url = f"http://127.0.0.1:{service.port}"
        load_experiments(base_url, DEFINITION)
        print("simulating the last day", file=sys.stderr, flush=True)
        ran = simulate(
            base_url, world_dir, days=1, users_per_day=args.users_per_day, seed=args.seed,
            concurrency=8, clock=Clock(cutoff_ms, args.hour_seconds),
        )  # fmt: skip
        print(
            f"simulated {ran.feeds:,} feeds ({ran.failed_feeds} failed): {ran.views:,} views, "
            f"{ran.clicks:,} clicks, {ran.purchases:,} purchases; {ran.videos_published} "
            f"videos published in {ran.seconds}s",
            file=sys.stderr,
            flush=True,
        )
        client = redis.Redis.from_url(env["RECSVC_REDIS_URL"])
        drain(client, work / "events")
        drain(client, work / "exposures", stream=EXPOSURES)
    finally:
        stop_process(service.process)
        stop_redis(service.redis_dir)
    events, _ = load_events(work / "events")
    [experiment] = parse_experiments(DEFINITION).experiments
    report = build_report(
        load_exposures(work / "exposures"),
        events,
        experiment,
        durations=load_durations(world_dir / "catalog" / "videos.jsonl"),
        alpha=args.alpha,
    )
    (work / "report.json").write_text(json.dumps(report, indent=2))
    return summary(args, report, ran.as_dict(), models["today"], time.perf_counter() - started)


def summary(
    args: argparse.Namespace,
    report: dict[str, Any],
    simulation: dict[str, Any],
    today: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    [comparison] = report["comparisons"]
    metrics = {
        m["metric"]: {
            "live": m["treatment"],
            "nightly": m["control"],
            "relative_difference": m["relative_difference"],
            "interval": [m["ci_low"], m["ci_high"]],
            "p_value": m["p_value"],
            "adjusted_p": m["adjusted_p"],
            "winner": m["winner"],
        }
        for m in comparison["metrics"]
    }
    wins = {name: metrics[name]["winner"] == "live" for name in WINNING_METRICS}
    srm_alarm = bool(report["srm"]["alarm"])
    return {
        "benchmark": "ab_live",
        "world": {k: getattr(args, k) for k in ("users", "videos", "events", "days", "seed")},
        "hour_seconds": args.hour_seconds,
        "users_per_day": args.users_per_day,
        "alpha": args.alpha,
        "simulation": simulation,
        "users_by_variant": {v["name"]: v["users"] for v in report["variants"]},
        "metrics": metrics,
        "srm": {"p_value": report["srm"]["p_value"], "alarm": srm_alarm},
        "live_wins": wins,
        "targets_met": {"live_wins": all(wins.values()), "no_srm_alarm": not srm_alarm},
        "today_blend": today,
        "seconds": round(seconds, 1),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_world_arguments(parser)
    # replay's world with four times the users (and events: the same history per user), so
    # that a day of 24,000 feeds, four per user, has a few hundred purchases
    parser.set_defaults(users=6000, events=800_000)
    parser.add_argument("--users-per-day", type=int, default=24_000)
    parser.add_argument("--hour-seconds", type=float, default=4.0)
    parser.add_argument("--exploration", type=float, default=0.1, help="the live share")
    parser.add_argument("--freshness", type=float, default=1.0, help="the live weight")
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", default="bench/out/ab_live")
    return parser.parse_args()


def main() -> None:
    exit_on_sigterm()
    print(json.dumps(run_experiment(parse_args())))


if __name__ == "__main__":
    main()
