"""Offline commands of the `recsvc` CLI: synth, train, evaluate.

Registered into recsvc's app through the `recsvc.commands` entry point.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from training.data.events import EventDataError, EventFormat
from training.data.matrix import ConfidenceWeights
from training.data.splits import Protocol, SplitSpec
from training.evaluation.evaluate import EvalSpec
from training.models.factors import FitParams, ModelFitError
from training.models.tuner import TuneBudget

if TYPE_CHECKING:
    from recsvc.service.settings import Settings

Interactions = Annotated[
    Path | None,
    typer.Option(
        "--interactions", help="Events: a CSV/Parquet file, a directory of them, or u.data."
    ),
]
Format = Annotated[EventFormat, typer.Option("--format", help="Format of --interactions.")]
World = Annotated[
    Path | None,
    typer.Option("--world", help="A synthetic world directory (recsvc synth): events and truth."),
]
Users = Annotated[
    Path | None,
    typer.Option(
        "--users",
        metavar="FILE",
        help="Users' segments for the model's segment popularity: a CSV with user_id and "
        "segment (the columns of a world's users.csv).",
    ),
]
MaxBadShare = Annotated[
    float, typer.Option(help="Fail when more than this share of rows is invalid.", min=0, max=1)
]
Weights = Annotated[
    str, typer.Option(help="Confidence per action, e.g. 'view=1,click=4,purchase=16'.")
]
Tune = Annotated[bool, typer.Option("--tune", help="Search hyper-parameters first.")]
TuneSeconds = Annotated[float, typer.Option(help="Tuner time budget in seconds.", min=1)]
TuneTrials = Annotated[int | None, typer.Option(help="Tuner trial budget.", min=1)]


class AlgorithmName(StrEnum):
    ALS = "als"
    BPR = "bpr"


Algorithm = Annotated[AlgorithmName, typer.Option(help="implicit's ALS or BPR.")]
Factors = Annotated[int, typer.Option(help="Embedding dimension.", min=1)]
Regularization = Annotated[float, typer.Option(help="L2 regularisation.", min=0)]
Alpha = Annotated[float, typer.Option(help="Confidence scale.", min=0)]
Iterations = Annotated[int, typer.Option(help="Training iterations.", min=1)]
Threads = Annotated[int | None, typer.Option(help="Fit threads (default: available CPUs).", min=1)]
Json = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]
ProtocolOption = Annotated[Protocol, typer.Option("--protocol", help="Train/test protocol.")]
Seed = Annotated[int, typer.Option(help="Random seed.")]
ExposuresDir = Annotated[
    Path, typer.Option(help="Exposures directory (day partitions), for A/B reports.")
]

LogConfidence = Annotated[
    bool, typer.Option("--log-confidence", help="Use log1p(confidence) before alpha.")
]

DEFAULTS = FitParams()


def make_params(
    algorithm: AlgorithmName,
    factors: int,
    regularization: float,
    alpha: float,
    log_confidence: bool,
    iterations: int,
    seed: int,
) -> FitParams:
    """FitParams from the command-line options."""
    return FitParams(
        algorithm="bpr" if algorithm is AlgorithmName.BPR else "als",
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        confidence="log" if log_confidence else "linear",
        iterations=iterations,
        seed=seed,
    )


def parse_weights(text: str) -> ConfidenceWeights:
    """'view=1,click=4' -> ConfidenceWeights; unknown actions and bad numbers are named."""
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if name not in ConfidenceWeights.__dataclass_fields__:
            raise typer.BadParameter(f"unknown action {name!r} in --weights")
        try:
            values[name] = float(number)
        except ValueError:
            raise typer.BadParameter(f"weight of {name!r} is not a number: {number!r}") from None
    try:
        return ConfidenceWeights(**values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def make_source(
    interactions: Path | None,
    fmt: EventFormat,
    world: Path | None,
    bad: float,
    users: Path | None = None,
) -> Any:
    from training.models.pipeline import Source

    if (interactions is None) == (world is None):
        raise typer.BadParameter("give exactly one of --interactions and --world")
    if users is not None and not users.is_file():
        raise typer.BadParameter(f"{users} is not a file", param_hint="--users")
    if world is not None:
        return Source.from_world(world, bad, users)
    assert interactions is not None
    return Source(interactions, fmt, None, bad, users)


def directory_option(path: Path, option: str) -> Path:
    """A path that is a directory or can become one; a file there is refused before any work."""
    if path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} exists and is not a directory", param_hint=option)
    return path


def emit(report: dict[str, Any], text: str, as_json: bool) -> None:
    typer.echo(text)
    if as_json:
        typer.echo(json.dumps(report, default=str))


def fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


def synth(
    out: Annotated[Path, typer.Option(help="Directory to write the world into.")] = Path(
        "data/world"
    ),
    users: Annotated[int, typer.Option(min=1)] = 20_000,
    videos: Annotated[int, typer.Option(min=1)] = 1_000,
    products: Annotated[int, typer.Option(min=1)] = 60,
    events: Annotated[int, typer.Option(min=1, help="Approximate number of events.")] = 400_000,
    days: Annotated[int, typer.Option(min=2)] = 14,
    seed: Seed = 42,
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace an existing world in --out.")
    ] = False,
) -> None:
    """Generate a synthetic financial-app world with a planted ground truth."""
    import shutil

    from sandbox.world.generate import WorldSpec, generate_world, write_world

    directory_option(out, "--out")
    if replace and (out / "world.json").exists():
        shutil.rmtree(out)  # only ever a directory that holds a world
    try:
        spec = WorldSpec(
            users=users, videos=videos, products=products, events=events, days=days, seed=seed
        )
        write_world(generate_world(spec), out)
    except (OSError, ValueError) as exc:
        fail(
            f"{exc} (--replace overwrites a previous world)"
            if isinstance(exc, FileExistsError)
            else str(exc)
        )
    typer.echo(
        f"wrote a world of {users:,} users, {videos:,} videos, {products:,} products to {out}"
    )


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
    protocol: ProtocolOption = Protocol.RECOMMENDERS,
    tune: Tune = False,
    tune_seconds: TuneSeconds = 120.0,
    tune_trials: TuneTrials = None,
    algorithm: Algorithm = AlgorithmName.ALS,
    factors: Factors = DEFAULTS.factors,
    regularization: Regularization = DEFAULTS.regularization,
    alpha: Alpha = DEFAULTS.alpha,
    log_confidence: LogConfidence = False,
    iterations: Iterations = DEFAULTS.iterations,
    seed: Seed = DEFAULTS.seed,
    threads: Threads = None,
    as_json: Json = False,
) -> None:
    """Fit ALS on every event and save the factors (--tune: search hyper-parameters first).

    With --models-dir, the exported model carries per-segment popularity when the users'
    segments are known: --users FILE, or a world's users.csv."""
    from training.evaluation.report import training_text
    from training.models.pipeline import run_train

    directory_option(out, "--out")
    try:
        params = make_params(
            algorithm, factors, regularization, alpha, log_confidence, iterations, seed
        )
        report = run_train(
            make_source(interactions, fmt, world, max_bad_share, users),
            out,
            params,
            weights=parse_weights(weights),
            budget=TuneBudget(tune_seconds, tune_trials) if tune else None,
            split_spec=SplitSpec(protocol),
            threads=threads,
            show_progress=sys.stderr.isatty(),
            models_dir=models_dir,
        )
    except (EventDataError, ModelFitError, ValueError, OSError) as exc:
        fail(str(exc))
    emit(report, training_text(report), as_json)


def evaluate(
    interactions: Interactions = None,
    fmt: Format = EventFormat.AUTO,
    world: World = None,
    max_bad_share: MaxBadShare = 0.01,
    weights: Weights = "",
    protocol: ProtocolOption = Protocol.RECOMMENDERS,
    holdout_days: Annotated[int, typer.Option(help="Days held out (temporal).", min=1)] = 1,
    tune: Tune = False,
    tune_seconds: TuneSeconds = 120.0,
    tune_trials: TuneTrials = None,
    algorithm: Algorithm = AlgorithmName.ALS,
    factors: Factors = DEFAULTS.factors,
    regularization: Regularization = DEFAULTS.regularization,
    alpha: Alpha = DEFAULTS.alpha,
    log_confidence: LogConfidence = False,
    iterations: Iterations = DEFAULTS.iterations,
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
            algorithm, factors, regularization, alpha, log_confidence, iterations, seed
        )
        report = run_evaluate(
            make_source(interactions, fmt, world, max_bad_share),
            SplitSpec(protocol, holdout_days=holdout_days),
            params,
            weights=parse_weights(weights),
            budget=TuneBudget(tune_seconds, tune_trials) if tune else None,
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
        window = description.get("data", {}).get("window", {})
        out = export_factors(models_dir, fitted, index, window, {})
    except (OSError, ValueError, KeyError) as exc:
        fail(f"cannot export {factors}: {exc!r}")
    typer.echo(f"exported model version {out.name} to {out}")


def service_settings(redis_purpose: str) -> Settings:
    """The service's RECSVC_* settings, with a Redis URL; a bad or missing one fails naming
    the variable."""
    from recsvc.service.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    if settings.redis_url is None:
        fail(f"RECSVC_REDIS_URL: not set ({redis_purpose})")
    return settings


def drain(
    out: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: ExposuresDir = Path("data/exposures"),
    json_output: Json = False,
) -> None:
    """Move the service's event and exposure streams into Parquet day partitions (each entry
    once).

    Uses RECSVC_REDIS_URL, RECSVC_REDIS_CLUSTER and RECSVC_REDIS_PREFIX, like the service."""
    from recsvc.contract.keys import Keys
    from recsvc.registry.locks import LockHeld, LockLost, redis_lock
    from recsvc.store.client import REDIS_ERRORS, sync_client
    from training.data.drain import EXPOSURES
    from training.data.drain import drain as drain_stream
    from training.nightly.run import nightly_lock

    settings = service_settings("the Redis whose event stream to drain")
    directory_option(out, "--out")
    directory_option(exposures, "--exposures")
    client = sync_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
    keys = Keys(settings.redis_prefix)
    busy = "a nightly run or another drain is in progress (two drains could write an event twice)"
    try:
        # The nightly run's lock: a drain is the first step of that job.
        with redis_lock(client, nightly_lock(keys), "drain", busy) as lease:
            report = drain_stream(client, out, keys, before_ack=lease.check)
            shown = drain_stream(client, exposures, keys, before_ack=lease.check, stream=EXPOSURES)
    except (LockHeld, LockLost) as exc:
        fail(str(exc))
    except (*REDIS_ERRORS, OSError) as exc:
        fail(f"drain stopped, nothing unwritten was acknowledged: {exc}")
    finally:
        client.close()
    text = (
        f"drained {report.read:,} events into {out} ({len(report.files)} files, "
        f"{report.already_written:,} already written by an earlier run) and "
        f"{shown.read:,} exposures into {exposures} in {report.seconds + shown.seconds:.3f}s"
    )
    emit({**report.as_dict(), "exposures": shown.as_dict()}, text, json_output)


def nightly(
    events: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: ExposuresDir = Path("data/exposures"),
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
    tune_seconds: TuneSeconds = 60,
    tune_trials: TuneTrials = None,
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
            help="After every run, write its outcome, time and metrics here for the node "
            "exporter's textfile collector, which reads only *.prom files (docs/runbook.md).",
        ),
    ] = None,
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
    published as challenger), 3 gated (--gated-exit-code), 1 failure. Uses RECSVC_REDIS_URL,
    RECSVC_REDIS_PREFIX, RECSVC_REDIS_CLUSTER, RECSVC_MODELS_DIR, RECSVC_VERSION_GRACE_SECONDS
    and RECSVC_KEEP_VERSIONS."""
    from recsvc.contract.keys import Keys
    from recsvc.registry.locks import LockHeld
    from recsvc.store.client import REDIS_ERRORS
    from training.nightly.chart import write_history_chart
    from training.nightly.run import FAILED, GATED, NightlySpec, run_nightly, summary, write_report

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
            window_days=window_days,
            metric=metric,
            tolerance=tolerance,
            min_coverage=min_coverage,
            new_item_days=new_item_days,
            max_unknown_items=max_unknown_items,
            tune_seconds=tune_seconds,
            tune_trials=tune_trials,
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


def ab_report(
    experiment: Annotated[str, typer.Argument(help="The experiment's name.")],
    events: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: Annotated[
        Path, typer.Option(help="Exposures directory (day partitions, from recsvc drain).")
    ] = Path("data/exposures"),
    definition: Annotated[
        Path | None,
        typer.Option(
            help="The experiments' TOML definition (default: the one in Redis, read through "
            "RECSVC_REDIS_URL and RECSVC_REDIS_PREFIX)."
        ),
    ] = None,
    window_hours: Annotated[
        float,
        typer.Option(
            help="Events without a feed's request id count this long after one.",
            min=0,
            max=24 * 366,
        ),
    ] = 24.0,
    alpha: Annotated[float, typer.Option(help="Significance level.", min=0.0001, max=0.5)] = 0.05,
    sequential: Annotated[
        bool,
        typer.Option(
            "--sequential", help="Always-valid p-values and intervals, for a report read daily."
        ),
    ] = False,
    videos: Annotated[
        Path | None,
        typer.Option(help="videos.jsonl with each video's duration_s (watch time; else 60 s)."),
    ] = None,
    as_json: Json = False,
    html: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Also write the report as one self-contained HTML page, with a chart.",
        ),
    ] = None,
) -> None:
    """Compare an experiment's variants: per-metric differences, SRM check, attribution."""
    from datetime import timedelta

    from training.ab.report import (
        ReportError,
        build_report,
        find_experiment,
        load_durations,
        load_exposures,
        report_text,
    )
    from training.data.events import load_events

    try:
        if definition is None:
            from recsvc.contract.keys import Keys
            from recsvc.store.client import REDIS_ERRORS, sync_client

            settings = service_settings("the Redis that holds the experiments' definition")
            client = sync_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
            try:
                stored = client.get(Keys(settings.redis_prefix).experiments_definition)
            except REDIS_ERRORS as exc:
                fail(f"cannot read the experiments' definition from Redis: {exc}")
            finally:
                client.close()
            if stored is None:
                fail("no experiments' definition in Redis (recsvc experiments load FILE)")
            text = stored.decode() if isinstance(stored, bytes) else str(stored)
        else:
            text = definition.read_text(encoding="utf-8")
        chosen = find_experiment(text, experiment)
        shown = load_exposures(exposures)
        outcomes, loaded = load_events(events)
        durations = load_durations(videos) if videos is not None else None
        report = build_report(
            shown,
            outcomes,
            chosen,
            window=timedelta(hours=window_hours),
            durations=durations,
            alpha=alpha,
            sequential=sequential,
        )
    except (ReportError, EventDataError, OSError, UnicodeDecodeError) as exc:
        fail(str(exc))
    if loaded.rows_bad:
        report["notes"].append(f"{loaded.rows_bad:,} invalid event row(s) left out")
    text = report_text(report)
    if html is not None:
        from training.ab.html import write_html

        try:
            write_html(report, html)
        except OSError as exc:
            fail(f"cannot write the HTML report {html}: {exc.strerror or exc}")
        text += f"\nHTML report written to {html}"
    emit(report, text, as_json)


def simulate(
    world: Annotated[Path, typer.Option(help="The synthetic world whose users to simulate.")],
    url: Annotated[str, typer.Option(help="The running service.")] = "http://127.0.0.1:8000",
    days: Annotated[int, typer.Option(help="Simulated days.", min=1)] = 1,
    users_per_day: Annotated[
        int, typer.Option(help="Users asking for a feed each day.", min=1)
    ] = 1000,
    concurrency: Annotated[int, typer.Option(help="Users at once.", min=1, max=256)] = 16,
    experiments: Annotated[
        Path | None,
        typer.Option(help="An experiments definition (TOML) to serve first (admin endpoint)."),
    ] = None,
    seed: Seed = 0,
    json_output: Json = False,
) -> None:
    """Drive a running service with a world's users: they ask for feeds and respond to them
    (views, clicks on attached products, purchases) by the world's ground truth."""
    from sandbox.simulate import load_experiments
    from sandbox.simulate import simulate as run_simulation

    if not (world / "truth.npz").is_file():
        raise typer.BadParameter(f"{world} is not a world (no truth.npz)", param_hint="--world")
    try:
        if experiments is not None:
            load_experiments(url.rstrip("/"), experiments.read_text(encoding="utf-8"))
        report = run_simulation(url.rstrip("/"), world, days, users_per_day, seed, concurrency)
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        fail(f"simulation stopped: {exc}")
    if report.feeds == 0:
        fail(f"no feed was served by {url}: is the service running there?")
    text = (
        f"{report.feeds:,} feeds over {report.days} day(s) ({report.failed_feeds:,} failed): "
        f"{report.views:,} views, {report.clicks:,} clicks, {report.purchases:,} purchases; "
        f"by variant {report.by_variant} in {report.seconds}s"
    )
    emit(report.as_dict(), text, json_output)


def register(app: typer.Typer) -> None:
    """Add the offline commands to the recsvc CLI."""
    app.command()(drain)
    app.command()(nightly)
    app.command()(synth)
    app.command()(train)
    app.command()(evaluate)
    app.command()(export)
    app.command()(simulate)
    ab = typer.Typer(no_args_is_help=True, help="A/B experiments: the report.")
    ab.command("report")(ab_report)
    app.add_typer(ab, name="ab")
