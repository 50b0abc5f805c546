"""Calibration of the A/B report: how often do A/A experiments (two identical variants) come
out "significant"? At α = 0.05 the answer must be about 5% (target: between 2% and 8%).

Everything but the people is the real code: a synthetic world and a model trained on it,
published to a private Redis; `recsvc serve` on loopback; 100 A/A experiments defined at once
(each with its own salt, so each splits the users independently; their variants change
nothing, so they may all overlap); the world's users driving the service over HTTP
(sandbox.simulate: they see feeds and respond by the world's ground truth); exposure
logging by the service; the drain; attribution and the report for each experiment.

It prints, for the 100 experiments:
- false_positive_rate: the share whose report marks any metric significant (after Holm's
  correction across the metrics: the report's own decision rule);
- primary_false_positive_rate: the share with attach conversion p < 0.05;
- srm_alarms: sample-ratio alarms among them (expected about 0.1%);
- cuped_false_positive_rate: the same rule on the CUPED comparisons (training.ab.cuped), the
  day before the experiments being the pre-period (a day under one other experiment, so that
  its feeds are logged; both days' feeds go to users in proportion to their activity);
- cuped_interval_reduction: the median over the experiments of 1 − (CUPED interval's width /
  the plain one's) for CUPED_PRIMARY (video_ctr), and by metric (target ≥ 0.2);
- planted_srm_caught: whether the report raises the alarm when 20% of one variant's users
  lose their exposures (a logging bug planted in the first experiment's data; with 3,000
  users, 10% gives p of about 0.05, short of the alarm's 0.001).

Usage: python bench/aa.py [--experiments 100 --users 3000 --seed 0 --out DIR]
(`--users`: feeds a day, to users drawn by activity: a heavy user comes back several times)
In a fresh clone: `.venv/bin/python bench/aa.py` after scripts/test. About 2 minutes.
The last line of output is one JSON object.
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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import redis
from serve import (
    exit_on_sigterm,
    free_port,
    load_redis,
    recsvc_command,
    run,
    service_env,
    start_redis,
    start_server,
    stop_process,
    stop_redis,
    wait_ready,
)

from recsvc.contract.experiments import parse_experiments
from sandbox.simulate import load_experiments, simulate
from sandbox.world.generate import WorldSpec, generate_world, write_world
from training.ab.report import build_report, load_durations, load_exposures
from training.data.drain import EXPOSURES, drain
from training.data.events import load_events

ALPHA = 0.05
PRIMARY = "attach_conversion"
# CUPED's figure: the metric whose users' pre-period says most about them here (purchases are
# too rare, and heavy users exhaust the small catalogue, for the per-user means to carry over)
CUPED_PRIMARY = "video_ctr"
PLANTED_SHARE = 0.2  # of one variant's users whose exposures a planted bug drops


def definition(count: int) -> str:
    blocks = [
        f'[[experiment]]\nname = "aa-{i:03d}"\n\n'
        '[[experiment.variant]]\nname = "a"\nweight = 0.5\n\n'
        '[[experiment.variant]]\nname = "b"\nweight = 0.5\n'
        for i in range(count)
    ]
    return "\n".join(blocks)


def plant_srm(exposures: pa.Table, experiment: str, share: float, seed: int) -> pa.Table:
    """Drop every exposure of `share` of the users in the experiment's variant b."""
    marked = pc.match_substring(exposures.column("experiments"), f"{experiment}:b")
    users = np.unique(exposures.filter(marked).column("user_id").to_numpy(zero_copy_only=False))
    rng = np.random.default_rng(seed)
    lost = rng.choice(users, size=int(len(users) * share), replace=False)
    return exposures.filter(pc.invert(pc.is_in(exposures.column("user_id"), pa.array(lost))))


def simulated_day(
    work: Path,
    text: str,
    users: int,
    seed: int,
    pre_text: str | None = None,
    by_activity: bool = False,
) -> Any:
    """A world and a model, `recsvc serve` on a private Redis with the experiments `text`
    defines, one simulated day of `users` feeds (one each to distinct users, or `by_activity`:
    to users in proportion to their activity), then the drain: `work`/events and
    `work`/exposures hold the day; the simulation's report is returned. With `pre_text`, a
    day under that definition comes first (the pre-experiment period CUPED reads)."""
    shutil.rmtree(work, ignore_errors=True)
    world, models = work / "world", work / "models"
    spec = WorldSpec(users=6000, videos=200, products=30, events=120_000, days=8, seed=21)
    write_world(generate_world(spec), world)
    recsvc = recsvc_command()
    run([*recsvc, "train", "--world", str(world), "--out", str(work / "factors"),
         "--models-dir", str(models), "--factors", "16", "--regularization", "0.15",
         "--alpha", "30", "--log-confidence", "--iterations", "10"])  # fmt: skip
    [model] = [p for p in models.iterdir() if (p / "manifest.json").exists()]
    url = start_redis(work / "redis")
    server = None
    try:
        env = service_env(url, models, RECSVC_LOG_JSON="false", RECSVC_POLL_SECONDS="0.5")
        os.environ["RECSVC_API_KEY"] = env["RECSVC_API_KEY"]  # simulate() runs in this process
        load_redis(env, model, world, {})
        os.environ["RECSVC_ADMIN_KEY"] = env["RECSVC_ADMIN_KEY"]
        (work / "experiments.toml").write_text(pre_text or text)
        run([*recsvc, "experiments", "load", str(work / "experiments.toml")], env)
        port = free_port()
        server = start_server(env, port, work / "serve.log")
        wait_ready(server, port, work / "serve.log", 60)
        time.sleep(1.5)  # the definition reaches the replica within a poll
        base = f"http://127.0.0.1:{port}"
        if pre_text is not None:
            before = simulate(
                base, world, users_per_day=users, seed=seed + 1, by_activity=by_activity
            )
            print(f"pre-period: {before.feeds:,} feeds", file=sys.stderr)
            load_experiments(base, text)
        ran = simulate(base, world, users_per_day=users, seed=seed, by_activity=by_activity)
        print(
            f"simulated {ran.feeds:,} feeds: {ran.views:,} views, {ran.clicks:,} clicks, "
            f"{ran.purchases:,} purchases in {ran.seconds}s",
            file=sys.stderr,
        )
        client = redis.Redis.from_url(url)
        drain(client, work / "events")
        drain(client, work / "exposures", stream=EXPOSURES)
    finally:
        stop_process(server)
        stop_redis(work / "redis")
    return ran


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=100)
    parser.add_argument("--users", type=int, default=3000, help="Simulated users (one day).")
    parser.add_argument("--out", type=Path, default=Path("bench/out/aa"))
    parser.add_argument("--seed", type=int, default=0, help="The simulated users' draws.")
    args = parser.parse_args()
    exit_on_sigterm()
    started = time.perf_counter()
    work = args.out
    text = definition(args.experiments)
    baseline = definition(1).replace("aa-000", "baseline")
    ran = simulated_day(work, text, args.users, args.seed, pre_text=baseline, by_activity=True)
    (work / "experiments.toml").write_text(text)  # what the reports read
    events, _ = load_events(work / "events")
    exposures = load_exposures(work / "exposures")
    durations = load_durations(work / "world" / "catalog" / "videos.jsonl")
    experiments = parse_experiments(text).experiments
    any_significant, primary_significant, srm_alarms, cuped_significant = 0, 0, 0, 0
    reductions: dict[str, list[float]] = {}
    for experiment in experiments:
        report = build_report(exposures, events, experiment, durations=durations, alpha=ALPHA)
        [comparison] = report["comparisons"]
        metrics = {m["metric"]: m for m in comparison["metrics"]}
        any_significant += any(m["significant"] for m in metrics.values())
        cuped_significant += any(m["significant"] for m in comparison.get("cuped", []))
        for name, reduction in comparison.get("cuped_interval_reduction", {}).items():
            if reduction is not None:
                reductions.setdefault(name, []).append(reduction)
        primary = metrics[PRIMARY]["p_value"]
        primary_significant += primary is not None and primary < ALPHA
        srm_alarms += bool(report["srm"]["alarm"])
    planted = build_report(
        plant_srm(exposures, experiments[0].name, PLANTED_SHARE, seed=1),
        events,
        experiments[0],
        durations=durations,
    )
    count = len(experiments)
    result = {
        "benchmark": "aa",
        "experiments": count,
        "users": ran.feeds,
        "purchases": ran.purchases,
        "alpha": ALPHA,
        "false_positive_rate": round(any_significant / count, 4),
        "cuped_false_positive_rate": round(cuped_significant / count, 4),
        "cuped_primary_metric": CUPED_PRIMARY,
        "cuped_interval_reduction": _median(reductions.get(CUPED_PRIMARY)),
        "cuped_interval_reduction_by_metric": {k: _median(v) for k, v in reductions.items()},
        "primary_false_positive_rate": round(primary_significant / count, 4),
        "srm_alarms": srm_alarms,
        "planted_srm_caught": bool(planted["srm"]["alarm"]),
        "planted_srm_share": PLANTED_SHARE,
        "planted_srm_p": planted["srm"]["p_value"],
        "targets_met": {
            "false_positive_rate": 0.02 <= any_significant / count <= 0.08,
            "cuped_false_positive_rate": 0.02 <= cuped_significant / count <= 0.08,
            "cuped_interval_reduction": (_median(reductions.get(CUPED_PRIMARY)) or 0) >= 0.2,
            "planted_srm_caught": bool(planted["srm"]["alarm"]),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"A/A: {any_significant}/{count} experiments with a significant metric (after Holm), "
        f"{primary_significant}/{count} with {PRIMARY} p < {ALPHA}; {srm_alarms} SRM alarms; "
        f"planted SRM caught: {result['planted_srm_caught']}",
        file=sys.stderr,
    )
    print(json.dumps(result))


def _median(values: list[float] | None) -> float | None:
    return round(float(np.median(values)), 4) if values else None


if __name__ == "__main__":
    main()
