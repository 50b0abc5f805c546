"""`recsvc nightly`: the nightly job (training.nightly.run does the work) and the metrics
file a scheduler's alerts read."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recsvc.contract.manifest import DEFAULT_WATCH_RATIO_CAP
from training.cli.audit import CardsDir

if TYPE_CHECKING:
    from recsvc.service.settings import Settings
from training.cli.options import (
    DEFAULTS,
    Algorithm,
    AlgorithmName,
    Alpha,
    EngineName,
    EngineOption,
    Ensemble,
    ExposuresDir,
    Factors,
    HalfLifeDays,
    Iterations,
    LogConfidence,
    MaxBadShare,
    ProductWeight,
    Regularization,
    Seed,
    TrendingHours,
    TrendingWeight,
    TuneSeconds,
    TuneTrials,
    VideoWeight,
    WatchRatioCap,
    Weights,
    directory_option,
    fail,
    make_objective,
    make_params,
    parse_weights,
    service_settings,
)


def nightly(
    events: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: ExposuresDir = Path("data/exposures"),
    cards: CardsDir = Path("data/cards"),
    window_days: Annotated[int, typer.Option(help="Days of events to train on.", min=2)] = 28,
    metric: Annotated[
        str,
        typer.Option(
            help="The metric the gate compares: ndcg_at_10, precision_at_10, "
            "recall_at_10 or map_at_10."
        ),
    ] = "ndcg_at_10",
    tolerance: Annotated[
        float,
        typer.Option(
            help="How much (relative: 0.02 is 2%) below the live model is still promoted.",
            min=0,
            max=0.99,
        ),
    ] = 0.02,
    min_coverage: Annotated[
        float,
        typer.Option(
            help="Coverage@10 floor: below it the model collapsed onto few items.", min=0, max=1
        ),
    ] = 0.05,
    new_item_days: Annotated[
        float,
        typer.Option(help="A live item the model does not know passes if published this recently."),
    ] = 7.0,
    max_unknown_items: Annotated[
        int,
        typer.Option(
            help="Old live items the new model may not know (dead content) and pass.", min=0
        ),
    ] = 0,
    max_bad_share: MaxBadShare = 0.01,
    weights: Weights = "",
    watch_ratio_cap: WatchRatioCap = DEFAULT_WATCH_RATIO_CAP,
    half_life_days: HalfLifeDays = 0.0,
    tune: Annotated[
        bool,
        typer.Option(
            "--tune/--no-tune",
            help="Search hyper-parameters from the options below, or fit with them as given.",
        ),
    ] = True,
    tune_seconds: TuneSeconds = 60,
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
    challenger: Annotated[
        bool,
        typer.Option(
            "--challenger",
            help="Publish the new model as the challenger (for an A/B test), not live.",
        ),
    ] = False,
    reports: Annotated[
        Path, typer.Option(help="Where the reports and the metrics-history chart go.")
    ] = Path("data/reports"),
    users: Annotated[
        Path | None,
        typer.Option(
            "--users",
            metavar="FILE",
            help="Users' segments from this CSV (user_id, segment) instead of the user "
            "profiles in Redis.",
        ),
    ] = None,
    metrics_file: Annotated[
        Path | None,
        typer.Option(
            "--metrics-file",
            metavar="FILE.prom",
            envvar="RECSVC_NIGHTLY_METRICS_FILE",
            show_envvar=False,  # named in the command's help: rich would cut it in this column
            help="After every run, write its outcome, time and metrics here for the node "
            "exporter's textfile collector, which reads only *.prom files (docs/runbook.md).",
        ),
    ] = None,
    engine: EngineOption = EngineName.IMPLICIT,
    gated_exit_code: Annotated[
        int,
        typer.Option(
            help="Exit code of a gated run: 0 for a scheduler that counts any other as a failed "
            "job (the report and the metrics file still say gated).",
            min=0,
            max=255,
        ),
    ] = 3,
) -> None:
    """Drain, retrain, compare with the live model, gate, publish, prune. Exit 0 promoted (or
    published as challenger), 3 gated (--gated-exit-code), 1 failure. The data and model
    options are train's and evaluate's. Uses RECSVC_REDIS_URL,
    RECSVC_REDIS_PREFIX, RECSVC_REDIS_CLUSTER, RECSVC_MODELS_DIR, RECSVC_VERSION_GRACE_SECONDS
    and RECSVC_KEEP_VERSIONS.

    --metrics-file defaults to RECSVC_NIGHTLY_METRICS_FILE."""
    from recsvc.contract.keys import Keys
    from recsvc.registry.locks import LockHeld
    from recsvc.store.client import REDIS_ERRORS
    from training.nightly.chart import write_history_chart
    from training.nightly.report import summary, write_report
    from training.nightly.run import FAILED, GATED, run_nightly
    from training.nightly.spec import NightlySpec

    started = time.time()
    settings = service_settings("the Redis the service uses")
    directory_option(reports, "--reports")
    if users is not None and not users.is_file():
        raise typer.BadParameter(f"{users} is not a file", param_hint="--users")
    if metrics_file is not None and metrics_file.suffix != ".prom":  # the collector's only kind
        raise typer.BadParameter(
            f"{metrics_file} does not end in .prom", param_hint="--metrics-file"
        )
    if metrics_file is not None and metrics_file.is_dir():
        raise typer.BadParameter(f"{metrics_file} is a directory", param_hint="--metrics-file")
    try:
        spec = NightlySpec(
            events_dir=events,
            models_dir=settings.models_dir,
            exposures_dir=exposures,
            cards_dir=cards,
            window_days=window_days,
            metric=metric,
            tolerance=tolerance,
            min_coverage=min_coverage,
            new_item_days=new_item_days,
            max_unknown_items=max_unknown_items,
            tune_seconds=tune_seconds if tune else None,
            tune_trials=tune_trials if tune else None,
            max_bad_share=max_bad_share,
            weights=parse_weights(weights, watch_ratio_cap, half_life_days),
            objective=make_objective(video_weight, product_weight),
            engine=engine.value,
            params=make_params(
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
            ),
            grace_seconds=settings.version_grace_seconds,
            keep_versions=settings.keep_versions,
            challenger=challenger,
            users=users,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        code, report = run_nightly(
            settings.redis_url or "", Keys(settings.redis_prefix), spec, settings.redis_cluster
        )
    except LockHeld as exc:
        record_metrics(metrics_file, FAILED, {}, started)
        fail(str(exc))
    except REDIS_ERRORS as exc:
        record_metrics(metrics_file, FAILED, {}, started)
        fail(f"nightly run could not start, the live model is untouched: {exc}")
    if code != FAILED:
        report["experiments"] = experiment_reports(settings, events, exposures, reports)
    record_metrics(metrics_file, code, report, started)
    path = write_report(reports, code, report)
    chart = reports / "metrics-history.png"
    for warning in write_history_chart(reports, chart, metric):
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    typer.echo(summary(code, report))
    typer.echo(f"report: {path} (summary {path.with_suffix('.txt').name}, chart {chart.name})")
    if code == FAILED:
        typer.secho(
            f"error: nightly run failed, the live model is untouched: {report.get('error')}",
            fg=typer.colors.RED,
            err=True,
        )
    raise typer.Exit(gated_exit_code if code == GATED else code)


def experiment_reports(
    settings: Settings, events: Path, exposures: Path, reports: Path
) -> dict[str, dict[str, Any]]:
    """Today's report of every running experiment (training.ab.daily), each written under
    `reports`/experiments; a failure is a warning: the model work is done."""
    from recsvc.contract.keys import Keys
    from recsvc.store.client import REDIS_ERRORS, sync_client
    from training.ab.daily import daily_reports

    client = sync_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
    try:
        stored = client.get(Keys(settings.redis_prefix).experiments_definition)
        definition = stored.decode() if isinstance(stored, bytes) else stored
        summaries = daily_reports(definition, events, exposures, reports)
    except (*REDIS_ERRORS, OSError) as exc:
        typer.secho(f"warning: no experiment reports: {exc}", fg=typer.colors.YELLOW, err=True)
        return {}
    finally:
        client.close()
    for name, summary in summaries.items():
        if "error" in summary:
            typer.secho(
                f"warning: no report for experiment {name}: {summary['error']}",
                fg=typer.colors.YELLOW,
                err=True,
            )
        else:
            alarm = " SRM ALARM" if summary["srm_alarm"] else ""
            typer.echo(f"experiment {name}: {summary['html']}{alarm}")
    return summaries


def record_metrics(path: Path | None, code: int, report: dict[str, Any], started: float) -> None:
    """The run's metrics file, when asked for. One that cannot be written is a warning, not a
    failure: the model work is done, and the no-success alert sees a file that stops changing."""
    from training.nightly.metrics import outcome, write_metrics

    if path is None:
        return
    try:
        write_metrics(path, outcome(code, report), started, time.time(), report)
    except OSError as exc:
        typer.secho(
            f"warning: metrics not written to {path}: {exc}", fg=typer.colors.YELLOW, err=True
        )
