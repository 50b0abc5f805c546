"""What the offline commands share: their option types, the parsing of an option's value and
the way a command prints its result or fails."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from recsvc.contract.domain import WATCH_RATIO_MAX, Action
from recsvc.contract.manifest import DEFAULT_WATCH_RATIO_CAP
from training.data.events import EventFormat
from training.data.matrix import ConfidenceWeights
from training.data.splits import Protocol
from training.models.factors import FitParams
from training.models.tuner import Objective

if TYPE_CHECKING:
    from recsvc.service.settings import Settings

Interactions = Annotated[
    Path | None,
    typer.Option(
        "--interactions", help="Events: a CSV/Parquet file, a directory of them, or u.data."
    ),
]


def choices(values: type[StrEnum]) -> str:
    """An option's values for its help ('a, b or c'): a metavar listing them all would be cut
    in two at 80 columns."""
    names = [value.value for value in values]
    return f"{', '.join(names[:-1])} or {names[-1]}"


Format = Annotated[
    EventFormat,
    typer.Option(
        "--format", metavar="FORMAT", help=f"Format of --interactions: {choices(EventFormat)}."
    ),
]
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
# An example short enough for the help column at 80 columns (rich cuts a longer word).
Weights = Annotated[
    str,
    typer.Option(
        help="Confidence per action, e.g. 'click=2,purchase=8' (the rest keep their defaults)."
    ),
]
WatchRatioCap = Annotated[
    float,
    typer.Option(
        help="A view counts its watch ratio up to this: a replay (above 1) as this many views.",
        min=0.01,
        max=WATCH_RATIO_MAX,
    ),
]
HalfLifeDays = Annotated[
    float,
    typer.Option(
        help="Recency: an event's weight halves every this many days before the last event "
        "(0: off, all ages count the same).",
        min=0,
    ),
]
VideoWeight = Annotated[
    float,
    typer.Option(help="Tuner objective: weight of the video NDCG@10 (0 leaves it out).", min=0),
]
ProductWeight = Annotated[
    float,
    typer.Option(
        help="Tuner objective: weight of the product hit rate@5 (0 leaves it out).", min=0
    ),
]
Tune = Annotated[bool, typer.Option("--tune", help="Search hyper-parameters first.")]
TuneSeconds = Annotated[float, typer.Option(help="Tuner time budget in seconds.", min=1)]
TuneTrials = Annotated[int | None, typer.Option(help="Tuner trial budget.", min=1)]


class AlgorithmName(StrEnum):
    ALS = "als"
    BPR = "bpr"
    EASE = "ease"


Algorithm = Annotated[
    AlgorithmName,
    typer.Option(help="implicit's ALS or BPR, or low-rank EASE (--regularization is its λ)."),
]
Factors = Annotated[int, typer.Option(help="Embedding dimension.", min=1)]
Regularization = Annotated[float, typer.Option(help="L2 regularisation.", min=0)]
Alpha = Annotated[float, typer.Option(help="Confidence scale.", min=0)]
Iterations = Annotated[int, typer.Option(help="Training iterations.", min=1)]
Threads = Annotated[int | None, typer.Option(help="Fit threads (default: available CPUs).", min=1)]
Json = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]
ProtocolOption = Annotated[
    Protocol,
    typer.Option(
        "--protocol", metavar="PROTOCOL", help=f"Train/test protocol: {choices(Protocol)}."
    ),
]
Seed = Annotated[int, typer.Option(help="Random seed.")]


class EngineName(StrEnum):
    IMPLICIT = "implicit"
    SPARK = "spark"


EngineOption = Annotated[
    EngineName,
    typer.Option(
        "--engine",
        metavar="ENGINE",
        help=f"What fits ALS: {choices(EngineName)} (pyspark MLlib: the 'spark' extra and a "
        "Java 17 runtime; SPARK_MASTER says where, default local; --tune searches with "
        "implicit).",
    ),
]
ExposuresDir = Annotated[
    Path, typer.Option(help="Exposures directory (day partitions), for A/B reports.")
]

TrendingHours = Annotated[
    float,
    typer.Option(
        help="Trending prior: popularity over this many last hours of the data.", min=0.01
    ),
]
TrendingWeight = Annotated[
    float,
    typer.Option(
        help="Trending prior's weight, in units of a user's score spread (0: off; --tune "
        "chooses it on temporal data).",
        min=0,
    ),
]
Ensemble = Annotated[
    int,
    typer.Option(
        help="Fit this many seeds and put their factors side by side (a seed ensemble: the "
        "ranking of their mean score). --tune tries its best as an ensemble of four itself.",
        min=1,
    ),
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
    trending_hours: float = DEFAULTS.trending_hours,
    trending_weight: float = DEFAULTS.trending_weight,
    ensemble: int = DEFAULTS.ensemble,
) -> FitParams:
    """FitParams from the command-line options."""
    return FitParams(
        algorithm=algorithm.value,  # type: ignore[arg-type]
        factors=factors,
        regularization=regularization,
        alpha=alpha,
        confidence="log" if log_confidence else "linear",
        iterations=iterations,
        seed=seed,
        trending_hours=trending_hours,
        trending_weight=trending_weight,
        ensemble=ensemble,
    )


def parse_weights(
    text: str, watch_ratio_cap: float = DEFAULT_WATCH_RATIO_CAP, half_life_days: float = 0.0
) -> ConfidenceWeights:
    """'view=1,click=4' (and --watch-ratio-cap) -> ConfidenceWeights; unknown actions and bad
    numbers are named."""
    values: dict[str, float] = {
        "watch_ratio_cap": watch_ratio_cap,
        "half_life_days": half_life_days,
    }
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, number = part.partition("=")
        if name not in {action.value for action in Action}:
            raise typer.BadParameter(f"unknown action {name!r} in --weights")
        try:
            values[name] = float(number)
        except ValueError:
            raise typer.BadParameter(f"weight of {name!r} is not a number: {number!r}") from None
    try:
        return ConfidenceWeights(**values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def make_objective(video_weight: float, product_weight: float) -> Objective:
    """The tuner's objective from --video-weight and --product-weight."""
    try:
        return Objective(video_weight, product_weight)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--video-weight/--product-weight") from None


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
