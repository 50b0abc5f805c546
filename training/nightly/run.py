"""The nightly job: drain, retrain on the window, compare with the live model, gate, publish.

One run, under a lock in Redis (recsvc.registry.locks: renewed while the run lives, so a killed
run's lock lapses in two minutes, or at once for the next run on the same host):

1. drain the service's event stream into Parquet day partitions (training.data.drain);
2. take the last `window_days` days of events, and the segments of their users (the
   profiles in Redis, or a users file) for the per-segment popularity the model carries;
3. hold out the last 24 hours (only what the live model has not been trained on: nothing new
   at all is exit 3); tune (under a budget) and fit on what came before;
4. evaluate the new model, the live one (training.evaluation.live_scorer) and popularity on
   that holdout;
5. gate: promote only when the new model's factors are finite, its coverage is above a floor,
   every live catalogue item is known to it or explicitly new (training.data.catalog_check), and
   its metric is not below the live model's by more than `tolerance` (relative);
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
import json
import os
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsvc.contract.catalog import Catalog
from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError, read_manifest
from recsvc.contract.pause_points import pause_point
from recsvc.registry.locks import Lease, LockHeld, redis_lock
from recsvc.registry.publish import LiveChanged, publish
from recsvc.registry.versions import prune_versions
from recsvc.store.client import REDIS_ERRORS, SyncClient, async_client, sync_client
from recsvc.store.control import Pointer, parse_pointer
from training.data.catalog_check import CatalogCheck, check_catalog
from training.data.drain import EXPOSURES, drain
from training.data.events import load_events
from training.data.matrix import ConfidenceWeights, build_interactions
from training.data.segments import read_profiles, read_users_file
from training.data.splits import Dataset, Protocol, SplitSpec, split_at
from training.evaluation.evaluate import (
    EvalSpec,
    FactorScorer,
    PopularityScorer,
    evaluate,
    evaluation_set,
)
from training.evaluation.live_scorer import LiveModelScorer
from training.evaluation.report import segments_line
from training.models.factors import FitParams, fit
from training.models.pipeline import Stages, choose_params, export_trained
from training.models.tuner import TuneBudget

PROMOTED, FAILED, GATED = 0, 1, 3
LOCK_SECONDS = 120  # renewed while the run lives; a killed run's lock lapses after this
# Failures with a message that says it all: bad data, a fit that diverged, Redis, the disk,
# an artifact refused, a lock held or lost. Any other exception is reported with its
# traceback in the JSON report (and still exit 1, never a traceback on the terminal).
EXPECTED_ERRORS = (ValueError, RuntimeError, *REDIS_ERRORS, OSError)
FUTURE_SLACK = timedelta(hours=1)  # events later than now + this are dropped as future_timestamp
GATE_METRICS = ("ndcg_at_10", "precision_at_10", "recall_at_10", "map_at_10")


@dataclass(frozen=True)
class NightlySpec:
    events_dir: Path
    models_dir: Path
    exposures_dir: Path | None = None
    window_days: int = 28
    metric: str = "ndcg_at_10"
    tolerance: float = 0.02  # the new model may be this much (relative) below the live one
    min_coverage: float = 0.05  # coverage@10 below this: the model collapsed onto few items
    new_item_days: float = 7.0  # a live item unknown to the model is fine if this new
    max_unknown_items: int = 0  # live, old items the new model may not know (dead content)
    tune_seconds: float | None = 60.0
    tune_trials: int | None = None
    grace_seconds: int = 3600
    keep_versions: int = 5
    challenger: bool = False  # publish as the challenger: nothing goes live
    users: Path | None = None  # users' segments from this CSV, not from the Redis profiles
    params: FitParams = field(default_factory=FitParams)

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise ValueError(f"metric {self.metric!r} is not one of {', '.join(GATE_METRICS)}")
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"tolerance must be in [0, 1) (0.02 is 2%), not {self.tolerance}")
        if not 0 <= self.min_coverage <= 1:
            raise ValueError(f"min_coverage must be in [0, 1], not {self.min_coverage}")


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
    with _stage(stages, lease, "load"):
        dataset, report["data"], last_event = _window(spec)
    with _stage(stages, lease, "segments"):
        user_ids = dataset.interactions.index.user_ids.tolist()
        segments = (
            read_users_file(spec.users) if spec.users else read_profiles(client, keys, user_ids)
        )
        report["segments"] = segments.as_dict(user_ids)
    live = parse_pointer(client.get(keys.model_current))
    live_dir = spec.models_dir / live.version if live else None
    live_end = _trained_until(live_dir)
    report.update(live_version=live.version if live else None, live_trained_until=live_end)
    if live_end is not None and live_end >= last_event:
        report.update(
            decision="gated",
            reasons=[
                f"no event after the live model's training window (it ends {live_end}): "
                "nothing new to learn or to compare on; the live model stays"
            ],
        )
        return GATED
    # The holdout: the last 24 hours, but only what the live model has not seen, so that the
    # comparison is fair whenever the previous run happened.
    cutoff = last_event - timedelta(days=1)
    if live_end is not None and live_end >= cutoff:
        cutoff = live_end + timedelta(milliseconds=1)
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
        params, tuning = choose_params(train, split_spec, spec.params, budget, None, False)
    report.update(params=params.as_dict(), tuning=tuning.as_dict() if tuning else None)
    with _stage(stages, lease, "fit_holdout"):
        factors = fit(train.interactions.confidence, params)
    index = dataset.interactions.index
    with _stage(stages, lease, "evaluate"):
        scores = {
            "new": evaluate(FactorScorer(factors, index), evaluated, EvalSpec()).as_dict(),
            "popularity": evaluate(
                PopularityScorer(train.interactions), evaluated, EvalSpec()
            ).as_dict(),
        }
        if live_dir is not None and (live_dir / "manifest.json").is_file():
            scorer = LiveModelScorer(live_dir, index)
            scores["live"] = evaluate(scorer, evaluated, EvalSpec()).as_dict()
        catalog = _catalog(client, keys)
        checked = (
            check_catalog(
                catalog, index.video_ids, index.product_ids, last_event, spec.new_item_days
            )
            if catalog is not None
            else None
        )
    report.update(
        metrics=scores, catalog_check=checked.as_dict() if checked else "no catalogue in Redis"
    )
    decision, reasons = _gate(factors.user, factors.item, scores, checked, live, spec)
    report.update(decision=decision, reasons=reasons)
    if decision == "gated":
        return GATED
    with _stage(stages, lease, "fit_all"):
        final = fit(dataset.interactions.confidence, params)
    with _stage(stages, lease, "export"):
        metrics = {"nightly_holdout": scores["new"]}
        model_dir = export_trained(
            spec.models_dir, final, dataset, report["data"], metrics, segments
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


def _trained_until(directory: Path | None) -> datetime | None:
    """The last event a model version was trained on (from its manifest), if known."""
    if directory is None or not (directory / "manifest.json").is_file():
        return None
    try:
        last = read_manifest(directory).data_window.get("last_event")
        moment = datetime.fromisoformat(str(last))
    except (ArtifactError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _catalog(client: SyncClient, keys: Keys) -> Catalog | None:
    revision = client.get(keys.catalog_revision)
    if revision is None:
        return None
    videos, products = client.hgetall(keys.catalog_videos), client.hgetall(keys.catalog_products)
    text = revision.decode() if isinstance(revision, bytes) else str(revision)
    return Catalog.from_raw(text, videos, products)


def _window(spec: NightlySpec) -> tuple[Dataset, dict[str, Any], datetime]:
    events, validation = load_events(spec.events_dir)
    # An event stamped in the future (a device clock) would move the holdout day past every
    # real event and empty it: dropped, and counted with the bad rows.
    horizon = pa.scalar(datetime.now(UTC) + FUTURE_SLACK, type=events.schema.field("ts").type)
    future = pc.greater(events.column("ts"), horizon)
    dropped = pc.sum(future).as_py() or 0
    if dropped:
        events = events.filter(pc.invert(future))
    validation.bad_counts["future_timestamp"] = dropped
    validation.rows_accepted -= dropped
    if events.num_rows == 0:
        raise ValueError(f"no event in {spec.events_dir} at or before now")
    last = pc.max(events.column("ts")).as_py()
    start = last - timedelta(days=spec.window_days)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    events = events.filter(pc.greater_equal(events.column("ts"), start))
    first = pc.min(events.column("ts")).as_py()
    weights = ConfidenceWeights()
    interactions = build_interactions(events, weights)
    data = {
        "window": {"first_event": str(first), "last_event": str(last)},
        "events": events.num_rows,
        "users": interactions.index.n_users,
        "nonzeros": interactions.nnz,
        "validation": validation.to_dict(),
    }
    return Dataset(interactions, events, weights), data, last


def _gate(
    users: np.ndarray,
    items: np.ndarray,
    scores: dict[str, Any],
    checked: CatalogCheck | None,
    live: Pointer | None,
    spec: NightlySpec,
) -> tuple[str, list[str]]:
    """("promote" or "gated", the reasons): the sanity checks, then the comparison."""
    reasons = []
    if not (np.isfinite(users).all() and np.isfinite(items).all()):
        reasons.append("the new factors hold NaN or infinite values")
    new = scores["new"]
    coverage = new.get("coverage_at_10", 0.0)
    if coverage < spec.min_coverage:
        reasons.append(f"coverage {coverage:.3f} below the floor {spec.min_coverage}")
    notes = []
    if checked is not None:
        unknown = len(checked.unknown_videos) + len(checked.unknown_products)
        if unknown > spec.max_unknown_items:
            reasons.extend(checked.reasons())
        elif unknown:
            named = ", ".join(checked.unknown_videos + checked.unknown_products)
            notes.append(
                f"{unknown} live items unknown to the new model, within --max-unknown-items "
                f"{spec.max_unknown_items}: {named}"
            )
    if "live" in scores:
        floor = scores["live"][spec.metric] * (1 - spec.tolerance)
        if new[spec.metric] < floor:
            reasons.append(
                f"{spec.metric} {new[spec.metric]:.4f} is below the live model's "
                f"{scores['live'][spec.metric]:.4f} by more than {spec.tolerance:.0%}"
            )
    elif live is not None:
        reasons.append(
            f"the live model {live.version} is not in {spec.models_dir}, so it cannot be "
            "compared: copy it there, or roll back to a version that is"
        )
    if reasons:
        return "gated", reasons
    if live is None:
        return "promote", ["no live model yet: promoted on the sanity checks alone", *notes]
    return "promote", [
        f"{spec.metric} not below the live model's by more than {spec.tolerance:.0%}",
        *notes,
    ]


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


def summary(code: int, report: dict[str, Any]) -> str:
    """The short human summary of a run's report: what an engineer reads in the morning."""
    decision = report.get("decision", "failed")
    if "published" in report:
        decision = f"published as {report['published']['role']}"
    lines = [f"nightly: {decision} (exit {code})"]
    if "error" in report:
        lines.append(f"  error: {report['error']}")
    drained, data = report.get("drain", {}), report.get("data", {})
    if drained:
        lines.append(
            f"  drained {drained.get('read', 0):,} events "
            f"({drained.get('already_written', 0):,} already written by an earlier run) and "
            f"{drained.get('exposures', 0):,} exposures"
        )
    if data:
        window = data.get("window", {})
        lines.append(
            f"  window {window.get('first_event')} to {window.get('last_event')}: "
            f"{data.get('events', 0):,} events, {data.get('users', 0):,} users, "
            f"{data.get('nonzeros', 0):,} user-item pairs"
        )
        bad = {r: n for r, n in data.get("validation", {}).get("bad_counts", {}).items() if n}
        lines.append("  bad rows: " + (", ".join(f"{r} {n:,}" for r, n in bad.items()) or "none"))
    if "segments" in report:
        lines.append(f"  {segments_line(report)}")
    tuning = report.get("tuning")
    if tuning:
        trials = tuning.get("trials", [])
        lines.append(
            f"  tuner: {len(trials)} trials in {tuning.get('seconds')}s, best "
            f"{tuning.get('objective')} {_number(tuning.get('best_score'))}"
        )
        for trial in trials:
            score, params = _number(trial["score"]), _params(trial["params"])
            lines.append(f"    #{trial['number']:<3} {trial['phase']:<7} {score}  {params}")
    metrics = report.get("metrics", {})
    if metrics:
        lines.append(
            f"  holdout from {report.get('holdout_from')}: P@10, NDCG@10 "
            f"(live model {report.get('live_version')})"
        )
        for name, scores in metrics.items():
            lines.append(
                f"    {name:<16} {_number(scores.get('precision_at_10'))}  "
                f"{_number(scores.get('ndcg_at_10'))}"
            )
    checked = report.get("catalog_check")
    if isinstance(checked, dict):
        lines.append(
            f"  catalogue: {checked['live_videos']:,} live videos, {checked['live_products']:,} "
            f"live products; {len(checked['new_items'])} new and unknown to the model"
        )
    elif checked:
        lines.append(f"  catalogue: {checked}")
    for reason in report.get("reasons", []):
        lines.append(f"  - {reason}")
    if "published" in report:
        published = report["published"]
        lines.append(
            f"  published {published['version']} as {published['role']}: "
            f"{published['users']:,} users, generation {published['generation']}"
        )
    if report.get("prune_warning"):
        lines.append(f"  warning: {report['prune_warning']}")
    if report.get("pruned"):
        lines.append(f"  pruned from disk: {', '.join(report['pruned'])}")
    stages = report.get("stages", {})
    if stages:
        lines.append("  time: " + ", ".join(f"{k} {v['seconds']}s" for k, v in stages.items()))
    return "\n".join(lines)


def _params(params: dict[str, Any]) -> str:
    shown = ("factors", "regularization", "alpha", "confidence", "iterations")
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in params.items()
        if k in shown
    )


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def write_report(report_dir: Path, code: int, report: dict[str, Any]) -> Path:
    """The JSON report and its summary (.txt) under `report_dir`; the JSON's path."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / f"nightly-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    text = json.dumps({"exit_code": code, **report}, indent=2, default=str) + "\n"
    _write_atomically(path, text)
    _write_atomically(path.with_suffix(".txt"), summary(code, report) + "\n")
    return path


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
