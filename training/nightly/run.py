"""The nightly job: drain, retrain on the window, compare with the live model, gate, publish.
This module runs the steps in order; the ideas they use live beside it: the window of events
(window), what the live side holds (live), the gate (decision), the report (report).

One run, under a lock in Redis (recsvc.registry.locks: renewed while the run lives, so a killed
run's lock lapses in two minutes, or at once for the next run on the same host):

1. drain the service's event stream into Parquet day partitions (training.data.drain), and
   finish the erasures of users erased since the last run (training.data.erasure: their
   rows leave the partitions, their last traces leave Redis), before anything reads them;
2. take the last `window_days` days of events (window), and the segments of their users (the
   profiles in Redis, or a users file) for the per-segment popularity the model carries;
3. hold out the last 24 hours (only what the live model has not been trained on: nothing new
   at all is exit 3); tune (under a budget) and fit on what came before;
4. evaluate the new model, the live one (training.evaluation.live_scorer) and popularity on
   that holdout;
5. gate (decision): promote only when the new model's factors are finite, its coverage is
   above a floor, every live catalogue item is known to it or explicitly new
   (training.data.catalog_check), and its metric is not below the live model's by more than
   `tolerance` (relative);
6. refit on the whole window, export, publish the user vectors and flip the pointer (with
   `challenger`, the challenger pointer: nothing goes live);
7. remove versions on disk beyond the newest `keep_versions` that Redis no longer holds.

Exit codes for a scheduler: 0 promoted (or published as challenger), 3 gated (the live model
stays), 1 failure. A run killed at any stage leaves the live model serving: the pointer moves
only as publish's last step, after every vector is written; events are acknowledged only
once durable on disk.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recsvc.contract.keys import Keys
from recsvc.contract.pause_points import pause_point
from recsvc.registry.locks import Lease, LockHeld, redis_lock
from recsvc.registry.publish import LiveChanged, publish
from recsvc.registry.versions import prune_versions
from recsvc.store.client import REDIS_ERRORS, SyncClient, async_client, sync_client
from recsvc.store.control import parse_pointer
from training.data.catalog_check import check_catalog
from training.data.drain import CARDS, EXPOSURES, drain
from training.data.erasure import finish_erasures
from training.data.segments import read_profiles, read_users_file
from training.data.splits import Protocol, SplitSpec, split_at
from training.evaluation.evaluate import (
    EvalSpec,
    PopularityScorer,
    ScorerReport,
    evaluate,
    evaluation_set,
)
from training.evaluation.intervals import (
    Interval,
    paired_mean_difference,
    paired_ratio_difference,
)
from training.evaluation.live_scorer import LiveModelScorer
from training.models.factors import fit
from training.models.pipeline import (
    Stages,
    choose_params,
    export_trained,
    model_scorer,
    tuned_data,
)
from training.models.today import choose_today_weight
from training.models.tuner import TuneBudget
from training.nightly.decision import decide, holdout_start, nothing_new
from training.nightly.live import live_catalog, trained_until
from training.nightly.spec import NightlySpec
from training.nightly.window import load_window

PROMOTED, FAILED, GATED = 0, 1, 3
LOCK_SECONDS = 120  # renewed while the run lives; a killed run's lock lapses after this
# Failures with a message that says it all: bad data, a fit that diverged, Redis, the disk,
# an artifact refused, a lock held or lost. Any other exception is reported with its
# traceback in the JSON report (and still exit 1, never a traceback on the terminal).
EXPECTED_ERRORS = (ValueError, RuntimeError, *REDIS_ERRORS, OSError)


def run_nightly(
    url: str, keys: Keys, spec: NightlySpec, cluster: bool = False
) -> tuple[int, dict[str, Any]]:
    """One nightly run against the Redis at `url` (a node of a Redis Cluster when `cluster`);
    (exit code, report).

    LockHeld when another run is in progress (nothing done, no report). Any other failure
    is exit 1 with the report of the stages done so far and the error."""
    client = sync_client(url, cluster, timeout=60)
    report: dict[str, Any] = {"started_at": datetime.now(UTC).isoformat()}
    started = time.perf_counter()
    stages = Stages()
    try:
        busy = "another nightly run is in progress; this one exits without doing anything"
        with redis_lock(client, nightly_lock(keys), "nightly run", busy, LOCK_SECONDS) as lease:
            try:
                code = _run(client, url, cluster, keys, spec, stages, report, lease)
            except Exception as exc:  # a batch job reports every failure, never a traceback
                code = FAILED
                report.update(decision="failed", error=f"{type(exc).__name__}: {exc}")
                if not isinstance(exc, EXPECTED_ERRORS):
                    report["traceback"] = traceback.format_exc()
    finally:
        client.close()
    report["stages"] = stages.records
    report["seconds"] = round(time.perf_counter() - started, 3)
    return code, report


def nightly_lock(keys: Keys) -> str:
    return keys.nightly_lock


@contextmanager
def _stage(stages: Stages, lease: Lease, name: str) -> Iterator[None]:
    pause_point(f"nightly:{name}")  # where a crash test kills the run
    lease.check()  # a run that lost its lock (another took it over) stops here
    with stages.stage(name):
        yield


def _run(
    client: SyncClient,
    url: str,
    cluster: bool,
    keys: Keys,
    spec: NightlySpec,
    stages: Stages,
    report: dict[str, Any],
    lease: Lease,
) -> int:
    with _stage(stages, lease, "drain"):
        report["drain"] = drain(client, spec.events_dir, keys, before_ack=lease.check).as_dict()
        if spec.exposures_dir is not None:  # for the A/B reports
            shown = drain(
                client, spec.exposures_dir, keys, before_ack=lease.check, stream=EXPOSURES
            )
            report["drain"]["exposures"] = shown.read
        if spec.cards_dir is not None:  # for the audit
            cards = drain(client, spec.cards_dir, keys, before_ack=lease.check, stream=CARDS)
            report["drain"]["cards"] = cards.read
    with _stage(stages, lease, "erase"):
        optional = (spec.exposures_dir, spec.cards_dir)
        folders = [spec.events_dir, *(folder for folder in optional if folder is not None)]
        report["erasures"] = finish_erasures(client, keys, folders).as_dict()
    with _stage(stages, lease, "load"):
        dataset, report["data"], last_event = load_window(spec)
    with _stage(stages, lease, "segments"):
        user_ids = dataset.interactions.index.user_ids.tolist()
        segments = (
            read_users_file(spec.users) if spec.users else read_profiles(client, keys, user_ids)
        )
        report["segments"] = segments.as_dict(user_ids)
    live = parse_pointer(client.get(keys.model_current))
    live_dir = spec.models_dir / live.version if live else None
    live_end = trained_until(live_dir)
    report.update(live_version=live.version if live else None, live_trained_until=live_end)
    stale = nothing_new(live_end, last_event)
    if stale is not None:
        report.update(decision=stale.decision, reasons=list(stale.reasons))
        return GATED
    cutoff = holdout_start(last_event, live_end)  # only what the live model has not seen
    report["holdout_from"] = cutoff
    with _stage(stages, lease, "split"):
        train, test = split_at(dataset, cutoff)
        evaluated = evaluation_set(train.interactions, test, EvalSpec())
    if len(evaluated.users) == 0:
        raise ValueError(
            f"no user active since {cutoff} has earlier interactions: nothing to gate on"
        )
    split_spec = SplitSpec(protocol=Protocol.TEMPORAL, holdout_days=1)  # the tuner's, in train
    budget = (
        TuneBudget(seconds=spec.tune_seconds or 60.0, max_trials=spec.tune_trials)
        if spec.tune_seconds or spec.tune_trials
        else None
    )
    with _stage(stages, lease, "tune"):
        params, tuning = choose_params(
            train, split_spec, spec.params, budget, None, False, spec.objective
        )
    train, dataset = tuned_data(train, tuning), tuned_data(dataset, tuning)
    report.update(params=params.as_dict(), tuning=tuning.as_dict() if tuning else None)
    with _stage(stages, lease, "fit_holdout"):
        factors = fit(train.interactions.confidence, params, engine=spec.engine)
    with _stage(stages, lease, "today"):
        today = choose_today_weight(factors, dataset, cutoff)
    report["today"] = today.as_dict()
    index = dataset.interactions.index
    with _stage(stages, lease, "evaluate"):
        scored = {
            "new": evaluate(model_scorer(factors, train), evaluated, EvalSpec()),
            "popularity": evaluate(PopularityScorer(train.interactions), evaluated, EvalSpec()),
        }
        if live_dir is not None and (live_dir / "manifest.json").is_file():
            scored["live"] = evaluate(LiveModelScorer(live_dir, index), evaluated, EvalSpec())
        scores = {name: result.as_dict() for name, result in scored.items()}
        difference, product_difference = paired_differences(scored, spec.metric)
        catalog = live_catalog(client, keys)
        checked = (
            check_catalog(
                catalog, index.video_ids, index.product_ids, last_event, spec.new_item_days
            )
            if catalog is not None
            else None
        )
    report.update(
        differences={
            spec.metric: difference.as_dict() if difference else None,
            "product_hit_rate": product_difference.as_dict() if product_difference else None,
        },
        metrics=scores,
        catalog_check=checked.as_dict() if checked else "no catalogue in Redis",
    )
    gate = decide(
        user_factors=factors.user,
        item_factors=factors.item,
        new=scores["new"],
        live=scores.get("live"),
        live_version=live.version if live else None,
        catalog=checked,
        spec=spec,
        difference=difference,
        product_difference=product_difference,
    )
    reasons = list(gate.reasons)
    report.update(decision=gate.decision, reasons=reasons)
    if gate.decision == "gated":
        return GATED
    with _stage(stages, lease, "fit_all"):
        final = fit(dataset.interactions.confidence, params, engine=spec.engine)
    with _stage(stages, lease, "export"):
        metrics = {"nightly_holdout": scores["new"]}
        model_dir = export_trained(
            spec.models_dir,
            final,
            dataset,
            report["data"],
            metrics,
            segments,
            catalog.videos if catalog is not None else None,
            {"today": {"weight": today.weight, "users": today.users}},
        )
    report["model_dir"] = str(model_dir)
    with _stage(stages, lease, "publish"):
        try:
            expected = live.version if live else None
            published = asyncio.run(_publish(url, cluster, keys, model_dir, spec, expected))
        except LiveChanged as exc:
            report.update(decision="gated", reasons=[*reasons, str(exc)])
            return GATED
    report["published"] = published
    if spec.challenger:
        report["decision"] = "challenger"  # published, not live: an A/B test decides
    with _stage(stages, lease, "prune"):
        try:
            report["pruned"] = asyncio.run(_prune(url, cluster, keys, spec))
        except (LockHeld, OSError, *REDIS_ERRORS) as exc:  # the model is live: still exit 0
            report["prune_warning"] = f"old versions not pruned this time: {exc}"
    return PROMOTED


def paired_differences(
    scored: dict[str, ScorerReport], metric: str
) -> tuple[Interval | None, Interval | None]:
    """New − live on the gate metric and on the product hit rate, paired over the holdout's
    users, with bootstrap intervals; None where there is no live model or nothing to pair."""
    new, live = scored["new"], scored.get("live")
    if live is None or metric not in new.per_user or len(new.per_user[metric]) == 0:
        return None, None
    difference = paired_mean_difference(new.per_user[metric], live.per_user[metric])
    products = None
    pairs = new.product_pairs_per_user
    if new.product_hits is not None and live.product_hits is not None and pairs is not None:
        products = paired_ratio_difference(new.product_hits, live.product_hits, pairs)
    return difference, products


async def _publish(
    url: str, cluster: bool, keys: Keys, model_dir: Path, spec: NightlySpec, expected: str | None
) -> dict:
    client = async_client(url, cluster, timeout=60)
    try:
        report = await publish(
            client,
            keys,
            model_dir,
            spec.grace_seconds,
            challenger=spec.challenger,
            expected_current=expected,
        )
        return report.as_dict()
    finally:
        await client.aclose()


async def _prune(url: str, cluster: bool, keys: Keys, spec: NightlySpec) -> list[str]:
    client = async_client(url, cluster, timeout=60)
    try:
        return await prune_versions(client, keys, spec.models_dir, spec.keep_versions)
    finally:
        await client.aclose()
