"""`recsvc train`, `recsvc evaluate` and `recsvc export` (training.models.pipeline and
training.models.export do the work)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from recsvc.contract.manifest import DEFAULT_WATCH_RATIO_CAP
from training.cli.options import (
    DEFAULTS,
    Algorithm,
    AlgorithmName,
    Alpha,
    EngineName,
    EngineOption,
    Ensemble,
    Factors,
    Format,
    HalfLifeDays,
    Interactions,
    Iterations,
    Json,
    LogConfidence,
    MaxBadShare,
    ProductWeight,
    ProtocolOption,
    Regularization,
    Seed,
    Threads,
    TrendingHours,
    TrendingWeight,
    Tune,
    TuneSeconds,
    TuneTrials,
    Users,
    VideoWeight,
    WatchRatioCap,
    Weights,
    World,
    directory_option,
    emit,
    fail,
    make_objective,
    make_params,
    parse_weights,
)
from training.cli.source import make_source
from training.data.events import EventDataError, EventFormat
from training.data.splits import Protocol, SplitSpec
from training.evaluation.evaluate import EvalSpec
from training.models.factors import ModelFitError
from training.models.tuner import TuneBudget


def train(
    out: Annotated[Path, typer.Option(help="Directory for the factors.")] = Path("models/factors"),
    models_dir: Annotated[
        Path | None,
        typer.Option(help="Export a model version (ONNX + manifest) under this directory."),
    ] = None,
    interactions: Interactions = None,
    fmt: Format = EventFormat.AUTO,
    world: World = None,
    users: Users = None,
    max_bad_share: MaxBadShare = 0.01,
    weights: Weights = "",
    watch_ratio_cap: WatchRatioCap = DEFAULT_WATCH_RATIO_CAP,
    half_life_days: HalfLifeDays = 0.0,
    protocol: ProtocolOption = Protocol.RECOMMENDERS,
    tune: Tune = False,
    tune_seconds: TuneSeconds = 120.0,
    tune_trials: TuneTrials = None,
    video_weight: VideoWeight = 1.0,
    product_weight: ProductWeight = 1.0,
    algorithm: Algorithm = AlgorithmName.ALS,
    factors: Factors = DEFAULTS.factors,
    regularization: Regularization = DEFAULTS.regularization,
    alpha: Alpha = DEFAULTS.alpha,
    log_confidence: LogConfidence = False,
    iterations: Iterations = DEFAULTS.iterations,
    trending_hours: TrendingHours = DEFAULTS.trending_hours,
    trending_weight: TrendingWeight = DEFAULTS.trending_weight,
    ensemble: Ensemble = DEFAULTS.ensemble,
    seed: Seed = DEFAULTS.seed,
    threads: Threads = None,
    engine: EngineOption = EngineName.IMPLICIT,
    as_json: Json = False,
) -> None:
    """Fit ALS on every event and save the factors (--tune: search hyper-parameters first).

    With --models-dir, the exported model carries per-segment popularity when the users'
    segments are known: --users FILE, or a world's users.csv."""
    from training.evaluation.report import training_text
    from training.models.pipeline import run_train
    from training.models.spark_als import SparkUnavailable

    directory_option(out, "--out")
    try:
        params = make_params(
            algorithm,
            factors,
            regularization,
            alpha,
            log_confidence,
            iterations,
            seed,
            trending_hours,
            trending_weight,
            ensemble=ensemble,
        )
        report = run_train(
            make_source(interactions, fmt, world, max_bad_share, users),
            out,
            params,
            weights=parse_weights(weights, watch_ratio_cap, half_life_days),
            budget=TuneBudget(tune_seconds, tune_trials) if tune else None,
            objective=make_objective(video_weight, product_weight),
            split_spec=SplitSpec(protocol),
            threads=threads,
            show_progress=sys.stderr.isatty(),
            models_dir=models_dir,
            engine=engine.value,
        )
    except (EventDataError, ModelFitError, SparkUnavailable, ValueError, OSError) as exc:
        fail(str(exc))
    emit(report, training_text(report), as_json)


def evaluate(
    interactions: Interactions = None,
    fmt: Format = EventFormat.AUTO,
    world: World = None,
    max_bad_share: MaxBadShare = 0.01,
    weights: Weights = "",
    watch_ratio_cap: WatchRatioCap = DEFAULT_WATCH_RATIO_CAP,
    half_life_days: HalfLifeDays = 0.0,
    protocol: ProtocolOption = Protocol.RECOMMENDERS,
    holdout_days: Annotated[int, typer.Option(help="Days held out (temporal).", min=1)] = 1,
    tune: Tune = False,
    tune_seconds: TuneSeconds = 120.0,
    tune_trials: TuneTrials = None,
    video_weight: VideoWeight = 1.0,
    product_weight: ProductWeight = 1.0,
    algorithm: Algorithm = AlgorithmName.ALS,
    factors: Factors = DEFAULTS.factors,
    regularization: Regularization = DEFAULTS.regularization,
    alpha: Alpha = DEFAULTS.alpha,
    log_confidence: LogConfidence = False,
    iterations: Iterations = DEFAULTS.iterations,
    trending_hours: TrendingHours = DEFAULTS.trending_hours,
    trending_weight: TrendingWeight = DEFAULTS.trending_weight,
    ensemble: Ensemble = DEFAULTS.ensemble,
    k: Annotated[int, typer.Option(help="Cut-off of the ranking metrics.", min=1)] = 10,
    product_k: Annotated[int, typer.Option(help="Product candidates per user.", min=1)] = 5,
    max_users: Annotated[
        int, typer.Option(help="Evaluate at most this many users.", min=1)
    ] = 20_000,
    seed: Seed = DEFAULTS.seed,
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """Split the events, fit on the training part and score the held-out part."""
    from training.evaluation.report import evaluation_text
    from training.models.pipeline import run_evaluate

    try:
        params = make_params(
            algorithm,
            factors,
            regularization,
            alpha,
            log_confidence,
            iterations,
            seed,
            trending_hours,
            trending_weight,
            ensemble=ensemble,
        )
        report = run_evaluate(
            make_source(interactions, fmt, world, max_bad_share, truth=True),
            SplitSpec(protocol, holdout_days=holdout_days),
            params,
            weights=parse_weights(weights, watch_ratio_cap, half_life_days),
            budget=TuneBudget(tune_seconds, tune_trials) if tune else None,
            objective=make_objective(video_weight, product_weight),
            eval_spec=EvalSpec(k=k, product_k=product_k, max_users=max_users),
            threads=threads,
            show_progress=sys.stderr.isatty(),
        )
    except (EventDataError, ModelFitError, ValueError, OSError) as exc:
        fail(str(exc))
    emit(report, evaluation_text(report), as_json)


def export(
    factors: Annotated[Path, typer.Option(help="A factors directory written by recsvc train.")],
    models_dir: Annotated[Path, typer.Option(help="Where model versions go.")] = Path("models"),
) -> None:
    """Export saved factors as a model version: ONNX ranking graph, arrays and manifest."""
    from training.models.export import export_factors
    from training.models.factors import load_factors

    directory_option(models_dir, "--models-dir")
    try:
        fitted, index, description = load_factors(factors)
        if fitted.params.trending_weight > 0:
            raise ValueError(
                f"these factors were fitted with a trending prior (weight "
                f"{fitted.params.trending_weight:g}), which needs the events to build: "
                "export with `recsvc train --models-dir` instead"
            )
        window = description.get("data", {}).get("window", {})
        params = {
            "attach_weights": [fitted.params.attach_user_weight, fitted.params.attach_video_weight]
        }
        out = export_factors(models_dir, fitted, index, window, {}, params=params)
    except (OSError, ValueError, KeyError) as exc:
        fail(f"cannot export {factors}: {exc}")
    typer.echo(f"exported model version {out.name} to {out}")


def compare(
    candidate: Annotated[
        list[str],
        typer.Option(
            help="A model to fit, NAME:key=value,... with fit parameters for keys, e.g. "
            "als:factors=32 (repeat it; the first is the reference).",
        ),
    ],
    interactions: Interactions = None,
    fmt: Format = EventFormat.AUTO,
    world: World = None,
    max_bad_share: MaxBadShare = 0.01,
    weights: Weights = "",
    watch_ratio_cap: WatchRatioCap = DEFAULT_WATCH_RATIO_CAP,
    half_life_days: HalfLifeDays = 0.0,
    protocol: ProtocolOption = Protocol.RECOMMENDERS,
    holdout_days: Annotated[int, typer.Option(help="Days held out (temporal).", min=1)] = 1,
    k: Annotated[int, typer.Option(help="Cut-off of the ranking metrics.", min=1)] = 10,
    product_k: Annotated[int, typer.Option(help="Product candidates per user.", min=1)] = 5,
    max_users: Annotated[
        int, typer.Option(help="Evaluate at most this many users.", min=1)
    ] = 20_000,
    seed: Seed = DEFAULTS.seed,
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """Fit several models on one split and compare them with the baselines: each one's
    metrics and its paired difference to the first, with 95% intervals over users."""
    from training.models.compare import compare_text, parse_candidate, run_compare

    try:
        candidates = [parse_candidate(text, seed) for text in candidate]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--candidate") from None
    try:
        report = run_compare(
            make_source(interactions, fmt, world, max_bad_share),
            SplitSpec(protocol, holdout_days=holdout_days),
            candidates,
            weights=parse_weights(weights, watch_ratio_cap, half_life_days),
            eval_spec=EvalSpec(k=k, product_k=product_k, max_users=max_users),
            threads=threads,
        )
    except (EventDataError, ModelFitError, ValueError, OSError) as exc:
        fail(str(exc))
    emit(report, compare_text(report), as_json)
