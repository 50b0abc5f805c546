"""The service's configuration: one typed object read from `RECSVC_*` environment variables.

Validated when the service starts; a bad value is a SettingsError that names the variable.
Nothing here does I/O at import time.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsvc.contract.domain import ProductCategory
from recsvc.feed.attach import UnknownRiskPolicy
from recsvc.feed.freshness import DEFAULT_HALF_LIFE_HOURS, Freshness, parse_half_lives
from recsvc.feed.placement import Surface, parse_surfaces

ENV_PREFIX = "RECSVC_"


class SettingsError(ValueError):
    """A configuration value that cannot be used; the message names the variable."""


class Settings(BaseSettings):
    """Every knob of the service; each field is the variable RECSVC_<FIELD NAME>."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    redis_url: str | None = Field(None, description="Redis URL, e.g. redis://host:6379/0.")
    redis_cluster: bool = Field(
        False, description="The URL names one node of a Redis Cluster (discovers the rest)."
    )
    redis_prefix: str = Field("recsvc", pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    redis_timeout_ms: int = Field(100, ge=1, le=10_000, description="Per-command timeout.")
    redis_retry_seconds: float = Field(
        1.0, ge=0, le=60, description="After Redis is found down, serve degraded this long."
    )
    redis_breaker_failures: int = Field(
        3, ge=1, le=1000, description="Timeouts within RECSVC_REDIS_BREAKER_WINDOW_SECONDS that "
        "count as Redis down (one slow call is not an outage; a refused connection is at once).",
    )  # fmt: skip
    redis_breaker_window_seconds: float = Field(1.0, gt=0, le=60)
    require_durable_redis: bool = Field(
        False, description="Not ready while Redis is configured so that accepted events or the "
        "catalogue can be lost (eviction, no AOF); else a warning at start-up and in /readyz.",
    )  # fmt: skip
    ready_without_redis: bool = Field(
        True, description="Stay ready (in the load balancer) while Redis is down, serving "
        "degraded feeds, as long as a model and a catalogue are loaded.",
    )  # fmt: skip
    models_dir: Path = Field(Path("models"), description="Where model versions live.")
    poll_seconds: float = Field(
        1.0, gt=0, le=5, description="How often the model pointer and catalogue are polled."
    )
    feed_default_n: int = Field(20, ge=1, le=100)
    max_attached_per_page: int = Field(3, ge=0, le=100)
    daily_cap_per_product: int = Field(3, ge=1, le=1000)
    category_daily_caps: str = Field(
        "", description='Cards of a product category one user may be shown per UTC day, a '
        'JSON object: `{"wealth": 1, "fund": 2}` (a category not named: only the per-product '
        "cap). Campaign cap rules can lower these for their users, never raise them.",
    )  # fmt: skip
    freshness_weight: float = Field(
        0.0, ge=0, le=100, description="A video published now gains this many of the user's "
        "score standard deviations, halving with each half-life of its age; 0: off.",
    )  # fmt: skip
    freshness_half_life_hours: float = Field(
        DEFAULT_HALF_LIFE_HOURS, gt=0, le=24 * 3650,
        description="The half-life of a video's freshness where its topics set none.",
    )  # fmt: skip
    freshness_topic_half_lives: str = Field(
        "", description="Half-lives per catalogue topic, `topic=hours,topic=hours` (a video "
        "of several topics takes the shortest).",
    )  # fmt: skip
    fresh_videos: bool = Field(
        True, description="Rank the live catalogue videos the model does not know (published "
        "since it was trained) from their metadata, then from their first viewers.",
    )  # fmt: skip
    exploration_share: float = Field(
        0.0, ge=0, le=0.5, description="This share of a page's slots shows new videos no "
        "viewer has placed yet, at random (0: off); the page's own videos move down.",
    )  # fmt: skip
    today_weight: float | None = Field(
        None, ge=0, le=1, description="The blend of a published vector with the fold-in of "
        "the user's recent events; unset: the model's (chosen by the nightly job); 0: off.",
    )  # fmt: skip
    fresh_min_viewers: int = Field(
        3, ge=1, le=1000, description="Viewers with a published vector a fresh video needs "
        "before its vector is solved from theirs (until then: its metadata vector).",
    )  # fmt: skip
    max_videos_per_topic: int = Field(
        0, ge=0, le=100, description="At most this many videos of one catalogue topic before "
        "a page's other videos (a video counts for each of its topics); 0: no limit.",
    )  # fmt: skip
    surfaces: str = Field(
        "", description='The app\'s surfaces, a JSON object: `{"home": {}, "product_page": '
        '{"page_size": 6, "product_categories": ["deposit"]}, "after_video": {"attach": '
        "false}}`; each takes page_size, attach, max_attached, product_categories and "
        "context_weight (docs/api.md). `home` is always there; a feed names its `surface`.",
    )  # fmt: skip
    unknown_risk_policy: UnknownRiskPolicy = UnknownRiskPolicy.LOWEST
    attach_user_weight: float | None = Field(
        None, ge=0, description="a in a·(user·product) + b·(video·product); unset: the model's."
    )
    attach_video_weight: float | None = Field(
        None, ge=0, description="b in that score; unset: the model's."
    )
    recent_events_limit: int = Field(200, ge=1, le=10_000)
    stream_max_len: int = Field(1_000_000, ge=1000)
    exposure_stream_max_len: int = Field(
        5_000_000, ge=1000, description="Exposures kept undrained before new ones are dropped."
    )
    card_stream_max_len: int = Field(
        5_000_000, ge=1000, description="Cards' compliance records kept undrained before new "
        "ones are dropped (and counted: recsvc_cards_dropped_total).",
    )  # fmt: skip
    event_dedup_days: float = Field(
        7, ge=0.01, le=90, description="How long an accepted event id is remembered: its "
        "dedup marker's life (fractions allowed: 0.05 is 72 minutes; the markers are most of "
        "Redis's memory at scale, docs/capacity.md).",
    )  # fmt: skip
    max_purchased_per_user: int = Field(
        1000, ge=1, le=100_000, description="Products bought (from events) kept in one user's "
        "state; purchases past it, or of products not in the catalogue, stay in the stream only.",
    )  # fmt: skip
    max_future_seconds: int = Field(300, ge=0, description="Clock skew allowed on event ts.")
    version_grace_seconds: int = Field(3600, ge=0, description="How long old vectors stay.")
    keep_versions: int = Field(
        5, ge=1, le=1000, description="Model versions kept on disk, besides any still in Redis."
    )
    app_api_keys: str = Field(
        "", repr=False, description="Comma-separated keys of the app backend (feed, events)."
    )
    admin_api_keys: str = Field(
        "", repr=False, description="Comma-separated admin keys (models, experiments, catalogue, "
        "profiles)."
    )  # fmt: skip
    allow_unauthenticated: bool = Field(
        False, description="Serve without API keys (a warning at start-up). Never in production."
    )
    max_body_bytes: int = Field(
        1_000_000, ge=1024, le=100_000_000, description="Largest request body accepted."
    )
    rate_limit_per_second: float = Field(
        0, ge=0, description="Requests per second per client (API key, else address); 0 = off."
    )
    rate_limit_burst: int = Field(100, ge=1, description="Requests a client may send at once.")
    auth_failures_per_second: float = Field(
        1.0, gt=0, description="Requests with a missing, unknown or wrong-kind key allowed per "
        "second per client address (key guessing is never free).",
    )  # fmt: skip
    auth_failures_burst: int = Field(20, ge=1)
    header_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="A connection that has not sent a request's headers "
        "within this long is closed.",
    )  # fmt: skip
    body_timeout_seconds: float = Field(
        30.0, gt=0, le=3600, description="A request whose body has not arrived within this "
        "long of its headers is answered 408 and closed.",
    )  # fmt: skip
    keep_alive_seconds: float = Field(5.0, gt=0, le=300, description="Idle keep-alive limit.")
    max_connections: int = Field(
        0, ge=0, description="Open connections per process past which new ones are closed at "
        "once; 0: derived from the descriptor limit (RLIMIT_NOFILE minus a reserve).",
    )  # fmt: skip
    log_json: bool = True
    access_log: bool = False

    @field_validator("freshness_topic_half_lives")
    @classmethod
    def _half_lives(cls, value: str) -> str:
        parse_half_lives(value)  # ValueError names the bad part
        return value

    @field_validator("surfaces")
    @classmethod
    def _surfaces(cls, value: str) -> str:
        parse_surfaces(value)  # SurfacesError names the surface and its field
        return value

    @field_validator("category_daily_caps")
    @classmethod
    def _category_caps(cls, value: str) -> str:
        parse_category_caps(value)
        return value

    @property
    def category_caps(self) -> dict[str, int]:
        """RECSVC_CATEGORY_DAILY_CAPS by category."""
        return parse_category_caps(self.category_daily_caps)

    @property
    def surface_map(self) -> dict[str, Surface]:
        """The surfaces by name (parsed anew: the app keeps its own, recsvc.edge.deps)."""
        return parse_surfaces(self.surfaces)

    @property
    def freshness(self) -> Freshness:
        return Freshness(
            self.freshness_weight,
            self.freshness_half_life_hours,
            parse_half_lives(self.freshness_topic_half_lives),
        )

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value


def load_settings(**overrides: object) -> Settings:
    """Read the environment (and overrides); a bad value names its variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{ENV_PREFIX}{field.upper()}: {error['msg']}")
        raise SettingsError("; ".join(problems)) from None


def parse_category_caps(text: str) -> dict[str, int]:
    """A JSON object of product category to cards per user and day; ValueError naming the
    category or value that is wrong."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not a JSON object: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError('must be a JSON object, e.g. {"wealth": 1}')
    known = {c.value for c in ProductCategory}
    caps = {}
    for category, cap in raw.items():
        if category not in known:
            raise ValueError(f"{category!r} is not a product category (known: {sorted(known)})")
        if isinstance(cap, bool) or not isinstance(cap, int) or not 0 <= cap <= 1000:
            raise ValueError(f"{category}: {cap!r} is not a whole number of cards from 0 to 1000")
        caps[category] = cap
    return caps
