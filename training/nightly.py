"""The nightly job: drain, retrain on the window, compare with the live model, gate, publish.

One run, under a lock in Redis so that two runs cannot both publish:

1. drain the service's event stream into Parquet day partitions (training.drain);
2. take the last `window_days` days of events;
3. hold out the most recent day; tune (under a budget) and fit on the rest;
4. evaluate the new model, the live one (training.live_scorer) and popularity on that holdout;
5. gate: promote only when the new model's metric is not below the live model's by more than
   `tolerance` (relative), and its factors are finite and its coverage above a floor;
6. refit on the whole window, export, publish the user vectors and flip the pointer.

Exit codes for a scheduler: 0 promoted, 3 gated (the live model stays), 1 failure. A run
killed at any stage leaves the live model serving: the pointer moves only as publish's last
step, after every vector is written.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import redis
import redis.asyncio as aioredis

from recsvc.keys import Keys
from recsvc.publish import RELEASE_SCRIPT, publish
from recsvc.store import parse_pointer
from training.drain import drain
from training.evaluate import EvalSpec, FactorScorer, PopularityScorer, evaluate, evaluation_set
from training.events import load_events
from training.factors import FitParams, fit
from training.live_scorer import LiveModelScorer
from training.matrix import ConfidenceWeights, build_interactions
from training.pipeline import Stages, choose_params, export_trained
from training.splits import Dataset, Protocol, SplitSpec, split
from training.tuner import TuneBudget

PROMOTED, FAILED, GATED = 0, 1, 3
LOCK_SECONDS = 6 * 3600


class NightlyLocked(RuntimeError):
    """Another nightly run holds the lock."""


@dataclass(frozen=True)
class NightlySpec:
    events_dir: Path
    models_dir: Path
    window_days: int = 28
    metric: str = "ndcg_at_10"
    tolerance: float = 0.02  # the new model may be this much (relative) below the live one
    min_coverage: float = 0.0
    tune_seconds: float | None = 60.0
    tune_trials: int | None = None
    grace_seconds: int = 3600
    params: FitParams = field(default_factory=FitParams)


def run_nightly(url: str, keys: Keys, spec: NightlySpec) -> tuple[int, dict[str, Any]]:
    """One nightly run against the Redis at `url`; (exit code, report)."""
    client = redis.Redis.from_url(url, socket_timeout=60)
    token = f"started {datetime.now(UTC).isoformat()}"
    try:
        if not client.set(_lock(keys), token, nx=True, ex=LOCK_SECONDS):
            raise NightlyLocked(
                f"another nightly run holds {_lock(keys)} ({client.get(_lock(keys))!r}); "
                "this one exits without doing anything"
            )
        try:
            return _run(client, url, keys, spec)
        finally:  # only our own lock, atomically (as the publish lock is released)
            client.eval(RELEASE_SCRIPT, 1, _lock(keys), token)
    finally:
        client.close()


def _lock(keys: Keys) -> str:
    return f"{keys.prefix}:nightly:lock"


def _run(
    client: redis.Redis, url: str, keys: Keys, spec: NightlySpec
) -> tuple[int, dict[str, Any]]:
    started = time.perf_counter()
    stages = Stages()
    report: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat()}
    with stages.stage("drain"):
        report["drain"] = drain(client, spec.events_dir, keys).as_dict()
    with stages.stage("load"):
        dataset, report["data"] = _window(spec)
    split_spec = SplitSpec(protocol=Protocol.TEMPORAL, holdout_days=1)
    with stages.stage("split"):
        train, test = split(dataset, split_spec)
        evaluated = evaluation_set(train.interactions, test, EvalSpec())
    if len(evaluated.users) == 0:
        raise ValueError("no user of the holdout day has earlier interactions: nothing to gate on")
    budget = (
        TuneBudget(seconds=spec.tune_seconds or 60.0, max_trials=spec.tune_trials)
        if spec.tune_seconds or spec.tune_trials
        else None
    )
    with stages.stage("tune"):
        params, tuning = choose_params(train, split_spec, spec.params, budget, None, False)
    with stages.stage("fit_holdout"):
        factors = fit(train.interactions.confidence, params)
    index = dataset.interactions.index
    live = parse_pointer(client.get(keys.model_current))
    with stages.stage("evaluate"):
        scores = {
            "new": evaluate(FactorScorer(factors, index), evaluated, EvalSpec()).as_dict(),
            "popularity": evaluate(
                PopularityScorer(train.interactions), evaluated, EvalSpec()
            ).as_dict(),
        }
        live_dir = spec.models_dir / live.version if live else None
        if live_dir is not None and live_dir.is_dir():
            scorer = LiveModelScorer(live_dir, index)
            scores["live"] = evaluate(scorer, evaluated, EvalSpec()).as_dict()
    decision, reasons = _gate(factors.user, factors.item, scores, spec)
    report.update(
        params=params.as_dict(),
        tuning=tuning.as_dict() if tuning else None,
        metrics=scores,
        live_version=live.version if live else None,
        decision=decision,
        reasons=reasons,
    )
    if decision == "promote":
        with stages.stage("fit_all"):
            final = fit(dataset.interactions.confidence, params)
        with stages.stage("export"):
            metrics = {"nightly_holdout": scores["new"]}
            model_dir = export_trained(spec.models_dir, final, dataset, report["data"], metrics)
        with stages.stage("publish"):
            published = asyncio.run(_publish(url, keys, model_dir, spec.grace_seconds))
        report.update(model_dir=str(model_dir), published=published)
    report["stages"] = stages.records
    report["seconds"] = round(time.perf_counter() - started, 3)
    return (PROMOTED if decision == "promote" else GATED), report


def _window(spec: NightlySpec) -> tuple[Dataset, dict[str, Any]]:
    events, validation = load_events(spec.events_dir)
    last = pc.max(events.column("ts")).as_py()
    first = (last - timedelta(days=spec.window_days)).replace(hour=0, minute=0, second=0)
    events = events.filter(pc.greater_equal(events.column("ts"), first))
    weights = ConfidenceWeights()
    interactions = build_interactions(events, weights)
    data = {
        "window": {"first_event": str(first), "last_event": str(last)},
        "events": events.num_rows,
        "users": interactions.index.n_users,
        "nonzeros": interactions.nnz,
        "validation": validation.to_dict(),
    }
    return Dataset(interactions, events, weights), data


def _gate(
    users: np.ndarray, items: np.ndarray, scores: dict[str, Any], spec: NightlySpec
) -> tuple[str, list[str]]:
    reasons = []
    if not (np.isfinite(users).all() and np.isfinite(items).all()):
        reasons.append("the new factors hold NaN or infinite values")
    new = scores["new"]
    coverage = new.get("coverage_at_10", 0.0)
    if coverage < spec.min_coverage:
        reasons.append(f"coverage {coverage:.3f} below the floor {spec.min_coverage}")
    if "live" in scores:
        floor = scores["live"][spec.metric] * (1 - spec.tolerance)
        if new[spec.metric] < floor:
            reasons.append(
                f"{spec.metric} {new[spec.metric]:.4f} is below the live model's "
                f"{scores['live'][spec.metric]:.4f} by more than {spec.tolerance:.0%}"
            )
    else:
        reasons.append("no live model to compare with: promoted on the sanity checks alone")
        return "promote", reasons
    return ("gated" if reasons else "promote"), reasons


async def _publish(url: str, keys: Keys, model_dir: Path, grace: int) -> dict:
    async_client = aioredis.Redis.from_url(url, socket_timeout=60)
    try:
        return (await publish(async_client, keys, model_dir, grace)).as_dict()
    finally:
        await async_client.aclose()


def summary(code: int, report: dict[str, Any]) -> str:
    """The short human summary of a run's report."""
    lines = [f"nightly: {report.get('decision', 'failed')} (exit {code})"]
    drained, data = report.get("drain", {}), report.get("data", {})
    bad = data.get("validation", {}).get("rows_bad", 0)
    lines.append(
        f"  drained {drained.get('read', 0):,} events; window {data.get('events', 0):,} events, "
        f"{data.get('users', 0):,} users, {bad:,} bad rows"
    )
    if report.get("tuning"):
        lines.append(f"  tuner: {len(report['tuning'].get('trials', []))} trials")
    for reason in report.get("reasons", []):
        lines.append(f"  - {reason}")
    for name, scores in report.get("metrics", {}).items():
        lines.append(
            f"  {name:<10} P@10 {scores['precision_at_10']:.4f}  NDCG@10 {scores['ndcg_at_10']:.4f}"
            f"  product hit@5 {scores.get('product_hit_rate')}"
        )
    if "published" in report:
        lines.append(f"  published {report['published']['version']}")
    stages = report.get("stages", {})
    lines.append("  time: " + ", ".join(f"{k} {v['seconds']}s" for k, v in stages.items()))
    return "\n".join(lines)


def write_report(report_dir: Path, code: int, report: dict[str, Any]) -> Path:
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"nightly-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"exit_code": code, **report}, indent=2, default=str) + "\n")
    return path
