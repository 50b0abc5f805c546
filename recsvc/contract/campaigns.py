"""Campaign rules: what the growth team changes in the feed without an engineer, and when.

Defined in TOML like the experiments (one `[[campaign]]` table each), validated as a whole
with every problem named, kept in Redis with a revision and a history, and served by every
replica within a poll (`PUT /v1/admin/campaigns`, `recsvc campaigns load FILE`).

    [[campaign]]
    name = "isa-season"          # letters, digits, '_', '.', '-'
    kind = "boost"               # boost, bury, pin, exclude or cap
    topics = ["savings"]         # what it acts on: videos of these topics, these videos,
    categories = ["deposit"]     # products of these categories, these products
    strength = 1.0               # boost and bury: in units of the user's score spread
    priority = 0                 # conflicts: the higher first (then the earlier in the file)
    start = 2026-12-01T00:00:00Z # optional schedule (a TOML date-time; no offset: UTC)
    end = 2027-01-01T00:00:00Z
    quiet_hours = ["22:00", "07:00"]   # not applied from 22:00 to 07:00, in `timezone`
    timezone = "Europe/London"   # default UTC

    [campaign.target]            # optional: whom it applies to (unset: everyone)
    segments = ["mass"]
    lifecycles = ["new"]
    risk_tolerance = [1, 3]      # tolerances from 1 to 3 (an unknown one never matches)
    surfaces = ["home"]
    variants = ["ranker-2026-11:cf"]   # experiment:variant

The kinds:
- **boost** / **bury**: add (or take) `strength` × the user's score spread to the matching
  videos' scores, and to the matching products' attach scores;
- **pin**: put `video` at `slot` (1 = the top) of the page, where the video may be shown to
  the user (live, not seen, not excluded);
- **exclude**: the matching videos and products are never shown;
- **cap**: at most `daily_cap` cards of each of `categories` per user and UTC day.

Conflicts are resolved, not refused: boosts and buries add up; an exclusion beats every
boost and pin; of two pins of one slot (or one video) the higher priority wins, then the
earlier rule; of several caps on a category the lowest holds.

No rule can override the seller's rules: suitability (risk level against tolerance),
disclosure, retirement and holdings. Those are applied after the campaigns as blocks that
no boost lifts; a definition that asks to override them (`override`, `ignore_risk`,
`allow_retired`, ...) or to put a product card under a pinned video is refused, naming why.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from datetime import timezone as fixed_timezone
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from recsvc.contract.domain import ID_PATTERN, SURFACE_NAME_PATTERN, Lifecycle, ProductCategory
from recsvc.contract.experiments import NAME_PATTERN

MAX_CAMPAIGNS = 500
MAX_PROBLEMS = 100  # named in one refusal; past them, how many more
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
MAX_ITEMS = 1000  # ids (or topics) one rule names
MAX_STRENGTH = 100.0
VARIANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MAX_TOPIC_LENGTH = 200  # a catalogue topic is free text; a rule names it as the catalogue does

# The seller's rules no campaign may touch, and the words of a definition that asks to.
REGULATORY = "suitability (risk level against tolerance), disclosure, retirement and holdings"
OVERRIDE_WORDS = re.compile(
    r"override|ignore|bypass|skip|suitab|risk_level|disclos|retire|holding|held|allow_|force"
)


class Kind(StrEnum):
    BOOST = "boost"
    BURY = "bury"
    PIN = "pin"
    EXCLUDE = "exclude"
    CAP = "cap"


class CampaignError(ValueError):
    """A definition that cannot serve; the message names every problem found."""


class Target(BaseModel):
    """Whom a rule applies to: every field set must match (an empty list matches nobody)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    segments: list[str] | None = Field(None, max_length=100)
    lifecycles: list[Lifecycle] | None = None
    risk_tolerance: tuple[StrictInt, StrictInt] | None = None
    surfaces: list[str] | None = Field(None, max_length=100)
    variants: list[str] | None = Field(None, max_length=100)

    @field_validator("risk_tolerance")
    @classmethod
    def _tolerance(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not 1 <= value[0] <= value[1] <= 5:
            raise ValueError(f"must be [low, high] with 1 <= low <= high <= 5, not {list(value)}")
        return value

    @field_validator("surfaces")
    @classmethod
    def _surfaces(cls, value: list[str] | None) -> list[str] | None:
        bad = [s for s in value or [] if not re.match(SURFACE_NAME_PATTERN, s)]
        if bad:
            raise ValueError(f"not surface names: {bad}")
        return value

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: list[str] | None) -> list[str] | None:
        bad = [v for v in value or [] if not re.match(VARIANT_PATTERN, v)]
        if bad:
            raise ValueError(f"not 'experiment:variant' pairs: {bad}")
        return value


class Campaign(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN)
    kind: Kind
    priority: StrictInt = Field(0, ge=-1000, le=1000)
    topics: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    videos: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    categories: list[ProductCategory] = Field(default_factory=list)
    products: list[str] = Field(default_factory=list, max_length=MAX_ITEMS)
    strength: StrictFloat | StrictInt | None = Field(None, gt=0, le=MAX_STRENGTH)
    video: str | None = Field(None, pattern=ID_PATTERN)
    slot: StrictInt | None = Field(None, ge=1, le=100)
    daily_cap: StrictInt | None = Field(None, ge=0, le=1000)
    start: datetime | None = None
    end: datetime | None = None
    quiet_hours: tuple[str, str] | None = None
    timezone: str = "UTC"
    target: Target = Field(default_factory=lambda: Target.model_validate({}))
    owner: str | None = Field(None, max_length=200)
    note: str | None = Field(None, max_length=2000)

    @field_validator("start", "end")
    @classmethod
    def _in_utc(cls, moment: datetime | None) -> datetime | None:
        """In UTC (a date-time without an offset is read as UTC; a TOML date is midnight)."""
        if moment is None:
            return None
        try:
            utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        except OverflowError:
            utc = None
        if utc is None or not EARLIEST <= utc < LATEST:
            raise ValueError(f"must be from {EARLIEST.year} to {LATEST.year - 1}")
        return utc

    @field_validator("videos", "products")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        bad = [i for i in value if not re.match(ID_PATTERN, i)]
        if bad:
            raise ValueError(f"not ids: {bad[:5]}")
        return value

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not 0 < len(t.strip()) <= MAX_TOPIC_LENGTH]
        if bad:
            raise ValueError(f"not topics (1 to {MAX_TOPIC_LENGTH} characters): {bad[:5]}")
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: tuple[str, str] | None) -> tuple[str, str] | None:
        if value is None:
            return None
        bad = [v for v in value if not CLOCK.match(v)]
        if bad:
            raise ValueError(f"times of day are HH:MM (00:00 to 23:59), not {bad}")
        if value[0] == value[1]:
            raise ValueError(f"from {value[0]} to {value[1]} is no time at all")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory, e.g. "America"
            raise ValueError(
                f"{value!r} is not a time zone (an IANA name, e.g. Europe/London)"
            ) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        problems = _kind_problems(self)
        if self.start is not None and self.end is not None and self.end <= self.start:
            problems.append(
                f"end {self.end.isoformat()} is not after start {self.start.isoformat()}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def active(self, at: float) -> bool:
        """Whether the rule applies at `at` (Unix seconds): within start to end, outside the
        quiet hours (read in the rule's time zone)."""
        if self.start is not None and at < self.start.timestamp():
            return False
        if self.end is not None and at >= self.end.timestamp():
            return False
        if self.quiet_hours is None:
            return True
        local = datetime.fromtimestamp(at, self.zone).time()
        begin, finish = (_clock(t) for t in self.quiet_hours)
        quiet = begin <= local < finish if begin < finish else local >= begin or local < finish
        return not quiet

    @property
    def zone(self) -> ZoneInfo | fixed_timezone:
        return UTC if self.timezone == "UTC" else ZoneInfo(self.timezone)

    def targets(
        self,
        segment: str | None,
        lifecycle: str | None,
        risk_tolerance: int | None,
        surface: str,
        variants: Iterable[str],
    ) -> bool:
        """Whether the rule applies to this user on this surface."""
        target = self.target
        if target.segments is not None and segment not in target.segments:
            return False
        if target.lifecycles is not None and lifecycle not in target.lifecycles:
            return False
        if target.risk_tolerance is not None:
            low, high = target.risk_tolerance
            if risk_tolerance is None or not low <= risk_tolerance <= high:
                return False
        if target.surfaces is not None and surface not in target.surfaces:
            return False
        return target.variants is None or not set(target.variants).isdisjoint(variants)

    @property
    def signed_strength(self) -> float:
        """The score added to what a boost or bury matches (0 for the other kinds)."""
        strength = self.strength or 0.0
        return {Kind.BOOST: strength, Kind.BURY: -strength}.get(self.kind, 0.0)


# Which fields each kind needs (at least one of a group) and which it may not set.
MATCHING = ("topics", "videos", "categories", "products")
KIND_FIELDS: dict[Kind, tuple[str, ...]] = {
    Kind.BOOST: (*MATCHING, "strength"),
    Kind.BURY: (*MATCHING, "strength"),
    Kind.PIN: ("video", "slot"),
    Kind.EXCLUDE: MATCHING,
    Kind.CAP: ("categories", "daily_cap"),
}


def _kind_problems(campaign: Campaign) -> list[str]:
    kind = campaign.kind
    allowed = KIND_FIELDS[kind]
    a_rule = f"{'an' if kind is Kind.EXCLUDE else 'a'} {kind} rule"
    problems = []
    for name in (*MATCHING, "strength", "video", "slot", "daily_cap"):
        value = getattr(campaign, name)
        if value not in (None, []) and name not in allowed:
            problems.append(f"{a_rule} does not take {name}")
    if kind in (Kind.BOOST, Kind.BURY, Kind.EXCLUDE) and not any(
        getattr(campaign, name) for name in MATCHING
    ):
        problems.append(f"{a_rule} names what it acts on: {', '.join(MATCHING)}")
    if kind in (Kind.BOOST, Kind.BURY) and campaign.strength is None:
        problems.append(f"{a_rule} needs a strength (in units of the user's score spread)")
    if kind is Kind.PIN and (campaign.video is None or campaign.slot is None):
        problems.append("a pin rule needs a video and a slot (1 = the top)")
    if kind is Kind.CAP and (not campaign.categories or campaign.daily_cap is None):
        problems.append("a cap rule needs categories and a daily_cap (cards per user and day)")
    return problems


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class Campaigns:
    """A validated set of campaign rules, in the order of the definition."""

    campaigns: tuple[Campaign, ...] = ()
    source: str = ""  # the TOML text it came from (kept in Redis as is)

    def __len__(self) -> int:
        return len(self.campaigns)

    def active(self, at: float) -> tuple[Campaign, ...]:
        """The rules that apply at `at`, by priority (higher first; then definition order)."""
        running = [c for c in self.campaigns if c.active(at)]
        return tuple(sorted(running, key=lambda c: -c.priority))

    def as_dict(self) -> list[dict[str, Any]]:
        return [c.model_dump(mode="json", exclude_defaults=True) for c in self.campaigns]


def parse_campaigns(text: str) -> Campaigns:
    """Validate a TOML definition; CampaignError names every problem (rule, field)."""
    try:
        raw = tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark is no content
    except tomllib.TOMLDecodeError as exc:
        raise CampaignError(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise CampaignError("not a definition: nested too deeply") from None
    unknown = set(raw) - {"campaign"}
    if unknown:
        raise CampaignError(f"unknown top-level key(s) {sorted(unknown)}: only [[campaign]] tables")
    tables = raw.get("campaign", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise CampaignError("campaign must be [[campaign]] tables, one per rule")
    if len(tables) > MAX_CAMPAIGNS:
        raise CampaignError(f"{len(tables)} rules: at most {MAX_CAMPAIGNS}")
    campaigns, problems = [], []
    for position, table in enumerate(tables, start=1):
        label = f"campaign {position} ({_short(table.get('name', 'unnamed'))})"
        overrides = _override_attempts(table)
        if overrides:
            problems += [f"{label}: {o}" for o in overrides]
            continue
        try:
            campaigns.append(Campaign.model_validate(table))
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(_short(part) for part in error["loc"])
                message = _message(error)
                problems.append(f"{label}: {where}: {message}" if where else f"{label}: {message}")
    names = [c.name for c in campaigns]
    problems += [
        f"campaign name {n!r} is used twice" for n in sorted(set(names)) if names.count(n) > 1
    ]
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"and {len(problems) - MAX_PROBLEMS} more problems"]
    if problems:
        raise CampaignError("; ".join(problems))
    return Campaigns(tuple(campaigns), text)


def _short(value: object, most: int = 64) -> str:
    """A value as a refusal names it: at most `most` characters."""
    text = str(value)
    return text if len(text) <= most else text[: most - 1] + "…"


def _override_attempts(table: dict[str, Any]) -> list[str]:
    """What in a rule's table asks to set aside a seller's rule: refused, naming it."""
    found = []
    refusal = f"no campaign can override {REGULATORY}"
    target = table.get("target")
    keys = [*table, *(f"target.{k}" for k in target)] if isinstance(target, dict) else [*table]
    known = {*Campaign.model_fields, *(f"target.{k}" for k in Target.model_fields)}
    for key in keys:
        if key not in known and OVERRIDE_WORDS.search(key.lower()):
            found.append(f"{_short(key)!r} would set aside a seller's rule: {refusal}")
    kind = table.get("kind")
    if isinstance(kind, str) and kind not in set(Kind) and OVERRIDE_WORDS.search(kind.lower()):
        found.append(f"kind {_short(kind)!r}: {refusal}")
    if kind == Kind.PIN and ("product" in table or "products" in table):
        found.append(
            "a pin cannot put a product card under its video: cards are chosen by the rules "
            f"of suitability and holdings for each user ({refusal})"
        )
    return found


def _message(error: Any) -> str:
    if error["type"] != "extra_forbidden":
        return str(error["msg"]).removeprefix("Value error, ")
    key = _short(error["loc"][-1])
    in_target = "target" in error["loc"][:-1]
    known = list(Target.model_fields) if in_target else list(Campaign.model_fields)
    close = difflib.get_close_matches(key, known, n=2, cutoff=0.6)
    where = "a rule's target" if in_target else "a campaign rule"
    if close:
        return f"not a setting of {where} (did you mean {' or '.join(map(repr, close))}?)"
    return f"not a setting of {where} (known: {', '.join(sorted(known))})"
