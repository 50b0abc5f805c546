"""The offline jobs as functions: train on everything, or split, fit and evaluate.

Each returns a JSON-ready report; the CLI only parses options and prints.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from recsvc.contract.catalog import VideoRecord
from recsvc.contract.manifest import METADATA_FEATURES_FILE, METADATA_MAP_FILE, TRENDING_FILE
from training.data.events import EventDataError, EventFormat, load_events
from training.data.matrix import ConfidenceWeights, ItemIndex, build_interactions
from training.data.segments import Segments, read_users_file, segment_popularity
from training.data.splits import Dataset, Protocol, SplitSpec, split, temporal_cutoff
from training.evaluation.attach import attach_hit_rate
from training.evaluation.evaluate import (
    EvalSpec,
    FactorScorer,
    OracleScorer,
    PopularityScorer,
    Scorer,
    TrendingScorer,
    Truth,
    evaluate,
    evaluation_set,
)
from training.evaluation.intervals import versus
from training.models.factors import Engine, Factors, FitParams, fit, save_factors
from training.models.today import choose_today_weight
from training.models.trending import last_event, trending_prior
from training.models.tuner import Objective, TuneBudget, TuneResult, tune
from training.models.tuner_phases import with_half_life


@dataclass(frozen=True)
class Source:
    """Where the interactions come from and, for a synthetic world, what it adds: a catalogue
    (its retired items are neither ranked nor relevant) and the ground truth (the oracle)."""

    path: Path
    fmt: EventFormat = EventFormat.AUTO
    max_bad_share: float = 0.01
    users: Path | None = None  # who is in which segment (CSV: user_id, segment)
    catalog: Path | None = None  # videos.jsonl and products.jsonl, with each item's status
    truth: Truth | None = None  # the world's ground truth: run_evaluate adds an oracle baseline


@dataclass
class Stages:
    """Wall time and peak resident memory after each stage of a job."""

    records: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.records[name] = {
            "seconds": round(time.perf_counter() - started, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def load_dataset(
    source: Source, weights: ConfidenceWeights, stages: Stages
) -> tuple[Dataset, dict]:
    """Load and validate the events and build the joint matrix."""
    with stages.stage("load"):
        events, validation = load_events(
            source.path, source.fmt, max_bad_share=source.max_bad_share
        )
    with stages.stage("build_matrix"):
        interactions = build_interactions(events, weights)
    if interactions.nnz == 0:
        raise EventDataError(
            f"no usable interactions in {source.path}: {validation.rows_accepted} events "
            "accepted, none with a positive confidence (views, clicks or purchases)"
        )
    ts = events.column("ts")
    window = {"first_event": str(pc.min(ts).as_py()), "last_event": str(pc.max(ts).as_py())}
    data = {
        "source": str(source.path),
        "validation": validation.to_dict(),
        "window": window,
        "users": interactions.index.n_users,
        "videos": interactions.index.n_videos,
        "products": interactions.index.n_items - interactions.index.n_videos,
        "nonzeros": interactions.nnz,
    }
    return Dataset(interactions, events, weights), data


def export_trained(
    models_dir: Path,
    factors: Factors,
    dataset: Dataset,
    data: dict,
    metrics: dict,
    segments: Segments | None = None,
    videos: Mapping[str, VideoRecord] | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> Path:
    """Export a fit as models_dir/<version>/ with popularity counts (per segment too, given
    the users' segments), the confidence weights fold-in needs, the user factors, and, given
    the videos' records, the map from their metadata to the item space (for videos published
    after training: training.models.metadata)."""
    from training.models.export import export_factors

    index = dataset.interactions.index
    seen = dataset.interactions.confidence.tocsc()
    users_per_item = np.diff(seen.indptr).astype(np.float32)
    purchases = np.asarray(dataset.interactions.purchases.sum(axis=0)).ravel()
    popularity = {
        "video_popularity.npy": users_per_item[index.videos],
        "product_popularity.npy": purchases[index.products].astype(np.float32),
    }
    if segments is not None:
        popularity.update(segment_popularity(segments, dataset.interactions))
    params: dict[str, Any] = {
        "confidence_weights": dataset.weights.per_action(),
        "watch_ratio_cap": dataset.weights.watch_ratio_cap,
    }
    fit_params = factors.params
    params["attach_weights"] = [fit_params.attach_user_weight, fit_params.attach_video_weight]
    if fit_params.trending_weight > 0 and dataset.events is not None:
        popularity[TRENDING_FILE] = trending_prior(
            dataset.events, index, dataset.weights, fit_params.trending_hours
        )
        params["trending"] = {
            "weight": fit_params.trending_weight,
            "hours": fit_params.trending_hours,
            "until": str(last_event(dataset.events)),
        }
    params.update(extra_params or {})
    if videos is not None:
        fresh_arrays, params["fresh"] = metadata_arrays(factors, dataset, videos)
        popularity.update(fresh_arrays)
    return export_factors(models_dir, factors, index, data["window"], metrics, popularity, params)


def metadata_arrays(
    factors: Factors, dataset: Dataset, videos: Mapping[str, VideoRecord]
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The metadata map's arrays and the `fresh` params (training.models.metadata)."""
    from training.models.metadata import cross_fitted, fit_metadata_map, prior_weight

    index = dataset.interactions.index
    video_ids = [str(v) for v in index.video_ids]
    video_factors = factors.item[: len(video_ids)]
    mapped = fit_metadata_map(video_ids, videos, video_factors)
    confidence = dataset.interactions.confidence.tocsc()[:, index.videos]
    weight = prior_weight(
        confidence.tocsr(),
        factors.user,
        video_factors,
        cross_fitted(video_ids, videos, video_factors),
        factors.params.as_dict(),
    )
    arrays = {METADATA_MAP_FILE: mapped.weights, METADATA_FEATURES_FILE: mapped.features}
    return arrays, {"regularization": weight, "metadata_l2": mapped.l2}


def catalog_videos(catalog: Path) -> dict[str, VideoRecord]:
    """The video records of a catalogue directory (its videos.jsonl), by id; a line that is
    not a valid record is an EventDataError naming the file and the line."""
    path = catalog / "videos.jsonl"
    records: dict[str, VideoRecord] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise EventDataError(f"{path} is unreadable: {exc!r}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = VideoRecord.model_validate_json(line)
        except ValueError as exc:
            raise EventDataError(f"{path}, line {number}: not a video record ({exc})") from None
        records[record.video_id] = record
    return records


def model_scorer(factors: Factors, train: Dataset) -> FactorScorer:
    """The model as the service ranks with it: factors plus, when the fit's params turn it on,
    the trending prior over the training data's last `trending_hours`."""
    scorer = FactorScorer(factors, train.interactions.index)
    params = factors.params
    if params.trending_weight > 0:
        if train.events is None:
            raise ValueError(
                f"a trending weight of {params.trending_weight:g} needs event times, and this "
                "split keeps none (per-pair protocols): use --protocol temporal, or a weight of 0"
            )
        scorer.trending = trending_prior(
            train.events, train.interactions.index, train.weights, params.trending_hours
        )
    return scorer


TRENDING_BASELINE = "trending_24h"


def baselines(train: Dataset) -> list[Scorer]:
    """Popularity and, where the training part has event times, last-24-hours popularity."""
    scorers: list[Scorer] = [PopularityScorer(train.interactions)]
    if train.events is not None and train.events.num_rows:
        index = train.interactions.index
        prior = trending_prior(train.events, index, train.weights, 24.0)
        scorers.append(TrendingScorer(prior, train.interactions, TRENDING_BASELINE))
    return scorers


def retired_items(catalog: Path, index: ItemIndex) -> np.ndarray:
    """Which items of the index the catalogue directory lists as retired (bool mask)."""
    retired: set[str] = set()
    for name in ("videos", "products"):
        path = catalog / f"{name}.jsonl"
        try:
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            retired.update(r[f"{name[:-1]}_id"] for r in rows if r["status"] != "live")
        except (OSError, ValueError, KeyError) as exc:
            raise EventDataError(f"{path} is unreadable: {exc!r}") from exc
    videos = np.isin(index.video_ids, list(retired))
    products = np.isin(index.product_ids, list(retired))
    return np.concatenate([videos, products])


def choose_params(
    train: Dataset,
    split_spec: SplitSpec,
    base: FitParams,
    budget: TuneBudget | None,
    threads: int | None,
    show_progress: bool,
    objective: Objective | None = None,
    eval_spec: EvalSpec | None = None,
    retired: np.ndarray | None = None,
) -> tuple[FitParams, TuneResult | None]:
    """The given parameters, or the tuner's best when a budget is given."""
    if budget is None:
        return base, None
    result = tune(
        train,
        split_spec,
        budget,
        base=base,
        objective=objective,
        eval_spec=eval_spec,
        retired=retired,
        threads=threads,
        show_progress=show_progress,
    )
    return result.best, result


def tuned_data(data: Dataset, tuning: TuneResult | None) -> Dataset:
    """`data` as the tuner chose to weigh it: rebuilt at its recency half-life, if it chose one."""
    if tuning is None or tuning.half_life_days is None:
        return data
    return with_half_life(data, tuning.half_life_days)


def run_train(
    source: Source,
    out: Path,
    params: FitParams,
    *,
    weights: ConfidenceWeights | None = None,
    budget: TuneBudget | None = None,
    objective: Objective | None = None,
    split_spec: SplitSpec | None = None,
    threads: int | None = None,
    show_progress: bool = False,
    models_dir: Path | None = None,
    engine: Engine = "implicit",
) -> dict[str, Any]:
    """Fit on every event of the source, save the factors under `out` and, given a
    `models_dir`, export a model version there."""
    started = time.perf_counter()
    stages = Stages()
    # A bad users file fails before the fit, not after it.
    segments = read_users_file(source.users) if models_dir and source.users else None
    dataset, data = load_dataset(source, weights or ConfidenceWeights(), stages)
    with stages.stage("tune"):
        params, tuning = choose_params(
            dataset, split_spec or SplitSpec(), params, budget, threads, show_progress, objective
        )
        dataset = tuned_data(dataset, tuning)
    with stages.stage("fit"):
        factors = fit(
            dataset.interactions.confidence,
            params,
            threads=threads,
            show_progress=show_progress,
            engine=engine,
        )
    report: dict[str, Any] = {
        "model": params.algorithm,
        "engine": engine,
        "params": params.as_dict(),
        "data": data,
        "weights": dataset.weights.__dict__,
        "tuning": tuning.as_dict() if tuning else None,
        "out": str(out),
    }
    with stages.stage("save"):
        save_factors(factors, dataset.interactions.index, out, {"data": data})
    if models_dir is not None:
        with stages.stage("export"):
            metrics = (
                {"tuner_validation": {"objective": tuning.objective, "score": tuning.best_score}}
                if tuning
                else {}
            )
            report["model_dir"] = str(
                export_trained(
                    models_dir,
                    factors,
                    dataset,
                    data,
                    metrics,
                    segments,
                    catalog_videos(source.catalog) if source.catalog is not None else None,
                )
            )
        if segments is not None:
            report["segments"] = segments.as_dict(dataset.interactions.index.user_ids.tolist())
    report["stages"] = stages.records
    report["fit_seconds"] = round(factors.fit_seconds, 3)
    report["seconds"] = round(time.perf_counter() - started, 3)
    return report


def run_evaluate(
    source: Source,
    split_spec: SplitSpec,
    params: FitParams,
    *,
    weights: ConfidenceWeights | None = None,
    budget: TuneBudget | None = None,
    objective: Objective | None = None,
    eval_spec: EvalSpec | None = None,
    threads: int | None = None,
    show_progress: bool = False,
    engine: Engine = "implicit",
) -> dict[str, Any]:
    """Split, (tune on the training part,) fit on the training part (with `engine`: the tuner
    fits with implicit), and score the held-out part."""
    started = time.perf_counter()
    stages = Stages()
    eval_spec = eval_spec or EvalSpec()
    dataset, data = load_dataset(source, weights or ConfidenceWeights(), stages)
    with stages.stage("split"):
        train, test = split(dataset, split_spec)
    index = dataset.interactions.index
    retired = retired_items(source.catalog, index) if source.catalog is not None else None
    evaluated = evaluation_set(train.interactions, test, eval_spec, retired)
    if len(evaluated.users) == 0:
        raise ValueError(
            f"the {split_spec.protocol.value} split leaves no user with both training and "
            f"held-out interactions ({evaluated.cold_users} held-out users have no training "
            "data); nothing to evaluate"
        )
    with stages.stage("tune"):
        params, tuning = choose_params(
            train, split_spec, params, budget, threads, show_progress, objective, eval_spec,
            retired,
        )  # fmt: skip
        train = tuned_data(train, tuning)
    with stages.stage("fit"):
        factors = fit(
            train.interactions.confidence,
            params,
            threads=threads,
            show_progress=show_progress,
            engine=engine,
        )
    model = model_scorer(factors, train)
    scorers = [model, *baselines(train)]
    if source.truth is not None:
        scorers.append(OracleScorer(source.truth, index))
    today = None
    if split_spec.protocol is Protocol.TEMPORAL:
        with stages.stage("today"):  # what the test day's own events add (training.models.today)
            cutoff = temporal_cutoff(dataset, split_spec.holdout_days)
            today = choose_today_weight(factors, dataset, cutoff).as_dict()
    with stages.stage("evaluate"):
        scored = {s.name: evaluate(s, evaluated, eval_spec) for s in scorers}
        comparisons = {
            # the trending baseline ranks products as popularity does: videos only
            name: versus(
                scored["model"],
                scored[name],
                eval_spec.k,
                eval_spec.product_k,
                products=name == "popularity",
            )
            for name in scored
            if name in ("popularity", TRENDING_BASELINE)
        }
        attach_weights = (params.attach_user_weight, params.attach_video_weight)
        attach = attach_hit_rate(model, evaluated, eval_spec, attach_weights)
    reports = {name: report.as_dict() for name, report in scored.items()}
    ours = reports.pop("model")
    return {
        **{key: value for key, value in ours.items() if key != "name"},
        "model": params.algorithm,
        "engine": engine,
        "params": params.as_dict(),
        "protocol": split_spec.protocol.value,
        "k": eval_spec.k,
        "product_k": eval_spec.product_k,
        "evaluated_users": len(evaluated.users),
        "cold_users": evaluated.cold_users,
        "baselines": reports,
        # the cards a page would carry (training.evaluation.attach), None where unmeasurable
        "attach": None
        if attach is None
        else {"weights": list(attach_weights), "hit_rate": attach[0], "pairs": attach[1]},
        "vs_popularity": comparisons["popularity"],
        **(
            {"vs_trending": comparisons[TRENDING_BASELINE]}
            if TRENDING_BASELINE in comparisons
            else {}
        ),
        "warnings": [w for c in comparisons.values() for w in c["warnings"]],
        "data": data,
        "tuning": tuning.as_dict() if tuning else None,
        "today": today,
        "stages": stages.records,
        "seconds": round(time.perf_counter() - started, 3),
    }
