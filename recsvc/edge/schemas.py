"""The HTTP API's request and response bodies (pydantic), with examples for /docs."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from recsvc.contract.domain import (
    ID_PATTERN,
    Action,
    ItemType,
    Lifecycle,
    NotABool,
    ProductCategory,
)

MAX_EVENTS_PER_BATCH = 1000
MAX_HOLDINGS = 1000  # products in one profile PUT
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


class Source(StrEnum):
    """Where a feed's ranking came from."""

    CF = "cf"  # the user's published vector
    FOLD_IN = "fold_in"  # a vector folded in from the user's recent events
    SEGMENT_POPULARITY = "segment_popularity"
    POPULARITY = "popularity"


class ProductCard(BaseModel):
    product_id: str
    name: str
    category: ProductCategory
    risk_level: int
    disclosure: str | None
    score: float


class FeedItem(BaseModel):
    rank: int
    video_id: str
    score: float
    product: ProductCard | None


class ExperimentVariant(BaseModel):
    experiment: str
    variant: str


class FeedResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "request_id": "9f1c2a7b3e4d5f600000000000000001",
                    "user_id": "u00042",
                    "model_version": "20261125T101500123456Z-a1b2c3",
                    "variant": "ranker-2026-11:cf",
                    "experiments": [{"experiment": "ranker-2026-11", "variant": "cf"}],
                    "source": "cf",
                    "degraded": False,
                    "items": [
                        {
                            "rank": 1,
                            "video_id": "v0123",
                            "score": 0.92,
                            "product": {
                                "product_id": "p07",
                                "name": "Global Equity Fund",
                                "category": "fund",
                                "risk_level": 3,
                                "disclosure": "Capital at risk. Past performance ...",
                                "score": 0.41,
                            },
                        },
                        {"rank": 2, "video_id": "v0456", "score": 0.88, "product": None},
                    ],
                }
            ]
        }
    )

    request_id: str
    user_id: str
    model_version: str
    variant: str = Field(
        description='"default" for a user in no experiment, else "experiment:variant" '
        "pairs joined by commas"
    )
    experiments: list[ExperimentVariant] = Field(
        default_factory=list, description="The experiments the user is in, and their variants."
    )
    source: Source
    degraded: bool
    items: list[FeedItem]


class Event(BaseModel):
    """One thing a user did. `ts` without a zone is read as UTC; ids are deduplicated per user
    (the marker names the user and the event), so an event id must be unique for its user."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "e-000123",
                    "ts": "2026-11-25T10:15:00Z",
                    "user_id": "u00042",
                    "item_id": "v0123",
                    "item_type": "video",
                    "action": "view",
                    "watch_ratio": 0.8,
                    "request_id": "3f2a9c",
                }
            ]
        },
    )

    event_id: Id
    ts: datetime
    user_id: Id
    item_id: Id
    item_type: ItemType
    action: Action
    watch_ratio: Annotated[float | None, NotABool] = Field(None, ge=0, le=1, allow_inf_nan=False)
    request_id: Id | None = None
    amount: Annotated[float | None, NotABool] = Field(None, ge=0, allow_inf_nan=False)

    @field_validator("ts", mode="before")
    @classmethod
    def _iso_text(cls, ts: object) -> object:
        # pydantic would read a number as Unix seconds: `"ts": 0` would be an event of 1970
        if not isinstance(ts, str | datetime):
            raise ValueError("must be an ISO 8601 date-time string, e.g. 2026-11-25T10:15:00Z")
        return ts

    @field_validator("ts")
    @classmethod
    def _in_utc(cls, ts: datetime) -> datetime:
        try:
            return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        except OverflowError:
            raise ValueError("ts is out of range once converted to UTC") from None

    @field_validator("action")
    @classmethod
    def _purchases_are_products(cls, action: Action, info: ValidationInfo) -> Action:
        if action is Action.PURCHASE and info.data.get("item_type") is not ItemType.PRODUCT:
            raise ValueError("only a product can be purchased (item_type must be 'product')")
        return action


class EventBatch(BaseModel):
    events: list[Event] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH)


class EventsAccepted(BaseModel):
    received: int
    accepted: int = Field(description="New events appended to the stream.")
    duplicates: int = Field(description="Events whose event_id was already accepted.")
    not_applied: int = Field(
        description="Accepted purchases kept out of the user's holdings: the product is not in "
        "the catalogue, or the user already holds RECSVC_MAX_PURCHASED_PER_USER products from "
        "purchases. They are in the stream (the nightly job learns from them); a retry does "
        "not apply them."
    )


class Profile(BaseModel):
    """What upstream systems know about a user; PUT replaces it whole."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "risk_tolerance": 3,
                    "segment": "young_saver",
                    "lifecycle": "active",
                    "holdings": ["p03"],
                }
            ]
        },
    )

    risk_tolerance: Annotated[int | None, NotABool] = Field(None, ge=1, le=5)
    segment: Id | None = None
    lifecycle: Lifecycle | None = None
    holdings: list[Id] = Field(default_factory=list, max_length=MAX_HOLDINGS)


class UserProfile(BaseModel):
    """A user's profile as the service sees it: upstream's, with the products bought in
    events added to the holdings. No limit is checked here: a stored state must always be
    answered (Profile caps what one PUT may send)."""

    risk_tolerance: int | None = None
    segment: str | None = None
    lifecycle: Lifecycle | None = None
    holdings: list[str] = Field(
        default_factory=list,
        description=f"Upstream's (at most {MAX_HOLDINGS:,}) and those bought in purchase "
        "events (at most RECSVC_MAX_PURCHASED_PER_USER), sorted.",
    )


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(pattern="^(live|retired)$", examples=["retired"])
