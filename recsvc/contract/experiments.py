"""Experiment definitions: what an A/B test changes, for whom, and how users are assigned.

Defined in TOML (one `[[experiment]]` table each, its variants as `[[experiment.variant]]`),
validated as a whole (every number finite, shares within [0, 1]) before anything serves from
it, and kept in Redis so that every replica follows the same definition (`recsvc experiments
load FILE`, or the admin endpoint). A bad definition is refused with every problem named, and
the previous one keeps serving.

    [[experiment]]
    name = "ranker-2026-11"        # salt defaults to the name
    traffic = 0.5                  # share of (eligible) users in the experiment
    namespace = "ranking"          # optional: experiments of one namespace never overlap...
    range = [0.0, 0.5]             # ...when their ranges are disjoint
    control = "cf"                 # default: the first variant
    start = 2026-11-02T00:00:00Z   # optional: users are assigned from start...
    end = 2026-11-16T00:00:00Z     # ...until end (a TOML date-time; no offset: UTC)
    owner = "growth@bank"          # optional, for the report: who runs it,
    hypothesis = "Popularity sells as well as the model"   # what it tests,
    primary_metric = "attach_conversion"                   # the metric that decides it,
    guardrails = ["video_ctr"]     # and the metrics it must not harm

    [[experiment.variant]]
    name = "cf"
    weight = 0.5
    ranker = "cf"

    [[experiment.variant]]
    name = "popular"
    weight = 0.5
    ranker = "popular"

A variant may set: `ranker` (`cf` or `popular`), `model` (`current`, `challenger` or a
published version: its directory on disk, its user vectors in Redis; while they are not, its
variants get the current model and the replica lists the version in `missing_models`),
`attach` (false: no product card), `attach_user_weight`, `attach_video_weight`,
`max_attached_per_page`, `daily_cap_per_product`, `max_videos_per_topic`,
`freshness_weight`, `fresh_videos` (false: only the model's own videos),
`exploration_share`, `today_weight` (0: last night's vectors alone), `live_trending` (false:
the trending prior as exported). What it does not
set stays as the service's settings say. Two experiments that can share a user (different
namespaces, or none) must not set the same parameter: the service could not say which of
them a response measured.
"""

from __future__ import annotations

import difflib
import time
import tomllib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recsvc.contract import assignment
from recsvc.contract.domain import ID_PATTERN

CURRENT, CHALLENGER = "current", "challenger"
# Experiment and variant names: no ":" or "," (responses and exposures join them that way).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
WEIGHT_TOLERANCE = 1e-6
# The A/B report's metrics (training.ab.stats.METRICS computes them, in this order): what a
# definition may name as its primary metric and guardrails.
Metric = Literal[
    "video_ctr",
    "attach_click_rate",
    "attach_conversion",
    "purchases_per_user",
    "amount_per_user",
    "watch_seconds_per_user",
]
METRICS: tuple[str, ...] = get_args(Metric)


class Ranker(StrEnum):
    CF = "cf"  # the user's vector (or fold-in, or segment popularity for cold users)
    POPULAR = "popular"  # global popularity for everyone


class ExperimentError(ValueError):
    """A definition that cannot serve; the message names every problem found."""


# A share of users. Every number of a definition is finite (allow_inf_nan=False below):
# TOML allows `inf` and `nan`, and a share must be a whole number of buckets.
Share = Annotated[float, Field(ge=0, le=1)]


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN)
    weight: float = Field(ge=0, le=1)
    ranker: Ranker | None = None
    model: str | None = Field(None, pattern=ID_PATTERN)
    attach: bool | None = None
    attach_user_weight: float | None = Field(None, ge=0, le=100)
    attach_video_weight: float | None = Field(None, ge=0, le=100)
    max_attached_per_page: int | None = Field(None, ge=0, le=100)
    daily_cap_per_product: int | None = Field(None, ge=1, le=1000)
    max_videos_per_topic: int | None = Field(None, ge=0, le=100)
    freshness_weight: float | None = Field(None, ge=0, le=100)
    fresh_videos: bool | None = None
    exploration_share: float | None = Field(None, ge=0, le=0.5)
    today_weight: float | None = Field(None, ge=0, le=1)
    live_trending: bool | None = None

    def overrides(self) -> dict[str, Any]:
        """The parameters this variant sets (everything but its name and weight)."""
        return {k: getattr(self, k) for k in self.model_fields_set - {"name", "weight"}}


class Experiment(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    name: str = Field(pattern=NAME_PATTERN)
    salt: str = Field("", max_length=200)
    traffic: float = Field(1.0, gt=0, le=1)
    namespace: str | None = Field(None, pattern=ID_PATTERN)
    range: tuple[Share, Share] = (0.0, 1.0)
    control: str | None = None
    variants: list[Variant] = Field(alias="variant", min_length=2, max_length=20)
    # what the experiment is for, and when it runs (users are assigned only from start to end)
    start: datetime | None = None
    end: datetime | None = None
    owner: str | None = Field(None, max_length=200)
    hypothesis: str | None = Field(None, max_length=2000)
    primary_metric: Metric | None = None
    guardrails: list[Metric] = Field(default_factory=list, max_length=len(METRICS))

    @model_validator(mode="after")
    def _consistent(self) -> Experiment:
        problems = []
        shares = {"traffic": self.traffic, "range": self.range[0], "range end": self.range[1]}
        shares |= {f"variant {v.name} weight": v.weight for v in self.variants}
        for what, share in shares.items():
            if abs(share * assignment.BUCKETS - round(share * assignment.BUCKETS)) > 1e-6:
                problems.append(
                    f"{what} {share:g} is not a whole number of buckets: shares go in steps of "
                    "0.0001, so that every language computes the same assignment"
                )
        if self.traffic * assignment.BUCKETS < 1 - 1e-6:
            problems.append(f"traffic {self.traffic:g} admits nobody (less than one bucket)")
        low, high = self.range
        if not 0 <= low < high <= 1:
            problems.append(f"range must be [low, high) with 0 <= low < high <= 1, not {low, high}")
        weights = [v.weight for v in self.variants]
        problems += _split_problems(weights, [v.name for v in self.variants], self.control)
        if self.start is not None and self.end is not None and self.end <= self.start:
            problems.append(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )
        if len(set(self.guardrails)) != len(self.guardrails):
            problems.append(f"guardrails repeat: {list(self.guardrails)}")
        if self.primary_metric is not None and self.primary_metric in self.guardrails:
            problems.append(f"{self.primary_metric} is the primary metric and a guardrail")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, moment: datetime | None) -> datetime | None:
        """A TOML date-time without an offset is read as UTC."""
        if moment is None:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def running(self, at: float) -> bool:
        """Whether users are assigned at `at` (Unix seconds): from start until end."""
        start, end = self.start, self.end
        return (start is None or at >= start.timestamp()) and (end is None or at < end.timestamp())

    @property
    def hash_salt(self) -> str:
        return self.salt or self.name

    @property
    def control_variant(self) -> str:
        return self.control or self.variants[0].name

    def parameters(self) -> set[str]:
        return {key for v in self.variants for key in v.overrides()}


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    overrides: dict[str, Any]

    @property
    def label(self) -> str:
        """ "experiment:variant", as responses, exposures, card records and campaign targets
        name it."""
        return f"{self.experiment}:{self.variant}"


class Experiments:
    """A validated set of experiments, ready to assign users."""

    def __init__(self, experiments: Iterable[Experiment], source: str = "") -> None:
        self.experiments = list(experiments)
        self.source = source  # the TOML text it came from (kept in Redis as is)
        self._edges = {
            e.name: assignment.boundaries([v.weight for v in e.variants]) for e in self.experiments
        }

    @classmethod
    def empty(cls) -> Experiments:
        return cls([])

    def __len__(self) -> int:
        return len(self.experiments)

    def assign(self, user_id: str, at: float | None = None) -> list[Assignment]:
        """Every experiment the user is in at `at` (Unix seconds; default now), with the
        variant and what it overrides."""
        found = []
        now = time.time() if at is None else at
        for experiment in self.experiments:
            if not experiment.running(now):
                continue
            salt = experiment.hash_salt
            if experiment.namespace is not None and not assignment.in_namespace(
                experiment.namespace, user_id, *experiment.range
            ):
                continue
            if not assignment.in_traffic(salt, user_id, experiment.traffic):
                continue
            index = assignment.variant_index(salt, user_id, self._edges[experiment.name])
            variant = experiment.variants[index]
            found.append(Assignment(experiment.name, variant.name, variant.overrides()))
        return found

    def models_used(self) -> set[str]:
        """The `model` values the variants name (current, challenger, versions)."""
        return {v.model for e in self.experiments for v in e.variants if v.model is not None}

    def pinned(self) -> list[tuple[str, str, str]]:
        """(experiment, variant, version) of every variant pinned to a model version."""
        return _pinned(self.experiments)

    def as_dict(self) -> list[dict[str, Any]]:
        return [e.model_dump(mode="json") for e in self.experiments]


def parse_experiments(
    text: str, version_exists: Callable[[str], bool] | None = None
) -> Experiments:
    """Validate a TOML definition; ExperimentError names every problem (experiment, variant,
    field) when it cannot serve."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentError(f"not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses on nested arrays: `x = [[[[...]]]]`
        raise ExperimentError("not a definition: nested too deeply") from None
    unknown = set(raw) - {"experiment"}
    if unknown:
        raise ExperimentError(
            f"unknown top-level key(s) {sorted(unknown)}: only [[experiment]] tables"
        )
    tables = raw.get("experiment", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ExperimentError("experiment must be [[experiment]] tables, one per experiment")
    experiments, problems = [], []
    for position, table in enumerate(tables, start=1):
        label = f"experiment {position} ({table.get('name', 'unnamed')!s})"
        variants = table.get("variant", [])
        if not isinstance(variants, list) or not all(isinstance(v, dict) for v in variants):
            problems.append(f"{label}: variant must be [[experiment.variant]] tables")
            continue
        try:
            experiments.append(Experiment.model_validate(table))
        except ValidationError as exc:
            errors = exc.errors()
            for error in errors:
                message = _message(error)
                where = _where(error["loc"], table)
                problems.append(f"{label}: {where}: {message}" if where else f"{label}: {message}")
            if all(error["loc"] for error in errors):  # the split was not checked: check it
                problems += [f"{label}: {p}" for p in _raw_split_problems(table, variants)]
    problems += _conflicts(experiments)
    if version_exists is not None:
        problems += [
            f"experiment {experiment}, variant {variant}: model version {version!r} does not "
            "exist in the models directory"
            for experiment, variant, version in _pinned(experiments)
            if not version_exists(version)
        ]
    if problems:
        raise ExperimentError("; ".join(problems))
    return Experiments(experiments, text)


async def require_published(
    experiments: Experiments, generation_of: Callable[[str], Awaitable[int | None]]
) -> None:
    """ExperimentError naming every variant pinned to a version whose user vectors are not in
    Redis (exported but never published, or expired): it would serve without them.

    `generation_of`: the newest live generation of a version (FeatureStore.generation_of).
    """
    published: dict[str, bool] = {}
    problems = []
    for experiment, variant, version in experiments.pinned():
        if version not in published:
            published[version] = await generation_of(version) is not None
        if not published[version]:
            problems.append(
                f"experiment {experiment}, variant {variant}: model version {version!r} has "
                "no user vectors in Redis (never published, or expired): publish it first "
                f"(`recsvc publish <models dir>/{version}`), or pin one that `recsvc models` "
                "lists in Redis"
            )
    if problems:
        raise ExperimentError("; ".join(problems))


def _pinned(experiments: Iterable[Experiment]) -> list[tuple[str, str, str]]:
    return [
        (experiment.name, variant.name, variant.model)
        for experiment in experiments
        for variant in experiment.variants
        if variant.model is not None and variant.model not in (CURRENT, CHALLENGER)
    ]


def _where(location: tuple[Any, ...], table: dict[str, Any]) -> str:
    """'variant 2 (popular).weight' from pydantic's location of an error."""
    parts: list[str] = []
    items = list(location)
    while items:
        key = items.pop(0)
        if key == "variant" and items and isinstance(items[0], int):
            index = items.pop(0)
            variants = table.get("variant", [])
            name = variants[index].get("name", "?") if index < len(variants) else "?"
            parts.append(f"variant {index + 1} ({name})")
        elif isinstance(key, int) and parts:  # an element of an array: `range[1]`
            parts[-1] += f"[{key}]"
        else:
            parts.append(str(key))
    return ".".join(parts)


def _split_problems(weights: list[float], names: list[str], control: str | None) -> list[str]:
    """What is wrong with an experiment's split of users among its variants."""
    problems = []
    total = sum(weights)
    if abs(total - 1) > WEIGHT_TOLERANCE:
        problems.append(f"variant weights sum to {total:g}, not 1")
    if len(set(names)) != len(names):
        problems.append(f"variant names repeat: {names}")
    if control is not None and control not in names:
        problems.append(f"control {control!r} is not one of the variants {names}")
    return problems


def _raw_split_problems(table: dict[str, Any], variants: list[dict[str, Any]]) -> list[str]:
    """The split's problems, read from the TOML as given (when other problems kept the
    experiment from being read whole): numbers that are not numbers are named elsewhere."""
    weights = [
        float(v["weight"])
        for v in variants
        if isinstance(v.get("weight"), int | float) and not isinstance(v.get("weight"), bool)
    ]
    names = [str(v.get("name")) for v in variants]
    control = table.get("control")
    if len(weights) < len(variants):
        weights = [1.0]  # a weight is missing or wrong, and named as such: no sum to check
    return _split_problems(weights, names, control if isinstance(control, str) else None)


def _message(error: Any) -> str:
    """Pydantic's message, said for a definition's author: an unknown key gets the closest
    known ones as suggestions."""
    if error["type"] == "string_pattern_mismatch" and error["ctx"]["pattern"] == NAME_PATTERN:
        return (
            f"{error['input']!r} is not a name: 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or a digit (no ':' or ',': responses join names with them)"
        )
    if error["type"] != "extra_forbidden":
        return str(error["msg"]).removeprefix("Value error, ")
    key = str(error["loc"][-1])
    in_variant = "variant" in error["loc"][:-1]
    known = list(Variant.model_fields) if in_variant else [*Experiment.model_fields, "variant"]
    known = [k for k in known if k != "variants"]
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
    where = "a variant" if in_variant else "an experiment"
    if close:
        return f"not a setting of {where} (did you mean {' or '.join(map(repr, close))}?)"
    return f"not a setting of {where} (known: {', '.join(sorted(known))})"


def _at_once(first: Experiment, second: Experiment) -> bool:
    """Whether the two can run at the same time (their schedules overlap, or one has none)."""
    starts = [e.start.timestamp() if e.start else float("-inf") for e in (first, second)]
    ends = [e.end.timestamp() if e.end else float("inf") for e in (first, second)]
    return max(starts) < min(ends)


def _conflicts(experiments: list[Experiment]) -> list[str]:
    problems = []
    names = [e.name for e in experiments]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"experiment name {name!r} is used twice")
    salts = [e.hash_salt for e in experiments]
    for salt in sorted({s for s in salts if salts.count(s) > 1}):
        users = [e.name for e in experiments if e.hash_salt == salt]
        problems.append(
            f"experiments {users} share the salt {salt!r}: their assignments would be the "
            "same split of users, so each would measure the other's change too"
        )
    for i, first in enumerate(experiments):
        for second in experiments[i + 1 :]:
            if not _at_once(first, second):
                continue  # one ends before the other starts: they never share a user
            if first.namespace is not None and first.namespace == second.namespace:
                if first.range[0] < second.range[1] and second.range[0] < first.range[1]:
                    problems.append(
                        f"experiments {first.name} and {second.name} share namespace "
                        f"{first.namespace} with overlapping ranges {first.range} and "
                        f"{second.range}"
                    )
                continue
            shared = first.parameters() & second.parameters()
            if shared:
                problems.append(
                    f"experiments {first.name} and {second.name} can share users and both set "
                    f"{sorted(shared)}: put them in one namespace with disjoint ranges"
                )
    return problems
