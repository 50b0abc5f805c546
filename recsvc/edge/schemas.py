"""The HTTP API's request and response bodies (pydantic), with examples for /docs."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.domain import (
    ProductCategory,
)
from recsvc.contract.records import Event, Id, Profile, Source

MAX_EVENTS_PER_BATCH = 1000
# per bulk request (and RECSVC_MAX_BODY_BYTES bounds its size): the catalogue's are written
# by one script, which holds Redis for every replica while it runs (about 20 ms for 1,000)
MAX_BULK_RECORDS = 1_000


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
    explored: bool = Field(
        False,
        description="An exploration slot (RECSVC_EXPLORATION_SHARE): a video published since "
        "the model, not ranked for this user (score 0, no card) but shown so that its first "
        "viewers place it.",
    )
    pinned: bool = Field(
        False,
        description="Put in this slot by a campaign's pin rule (GET /v1/admin/campaigns), "
        "where the video may be shown to the user.",
    )


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
    surface: str = Field("home", description="The surface the page was made for.")
    context: str | None = Field(None, description="The context item the page is related to.")
    items: list[FeedItem]
    next_page_token: str = Field(
        description="Pass as `page_token` for the session's next page (no video repeated)."
    )


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


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(pattern="^(live|retired)$", examples=["retired"])


class CatalogBulk(BaseModel):
    """Catalogue records to create or replace at once: all of them, or none when any is bad.
    A record without `status` keeps the stored record's (as a single PUT does)."""

    model_config = ConfigDict(extra="forbid")
    videos: list[VideoRecord] = Field(default_factory=list, max_length=MAX_BULK_RECORDS)
    products: list[ProductRecord] = Field(default_factory=list, max_length=MAX_BULK_RECORDS)

    @model_validator(mode="after")
    def _distinct(self) -> CatalogBulk:
        problems = [
            *_repeated("videos", [v.video_id for v in self.videos], "video_id"),
            *_repeated("products", [p.product_id for p in self.products], "product_id"),
        ]
        if not self.videos and not self.products:
            problems.append("no record: give videos, products or both")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class CatalogWritten(BaseModel):
    videos: int
    products: int
    kept_retired: int = Field(
        description="Records given without `status` whose stored record was retired: written, "
        "and still retired."
    )


class ProfileRecord(Profile):
    """A profile with the id of its user, for the bulk endpoint."""

    user_id: Id


class ProfilesBulk(BaseModel):
    """User profiles to replace at once: all of them, or none when any is bad."""

    model_config = ConfigDict(extra="forbid")
    profiles: list[ProfileRecord] = Field(min_length=1, max_length=MAX_BULK_RECORDS)

    @model_validator(mode="after")
    def _distinct(self) -> ProfilesBulk:
        problems = _repeated("profiles", [p.user_id for p in self.profiles], "user_id")
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _repeated(kind: str, ids: Sequence[str], field: str) -> list[str]:
    """One problem per record whose id an earlier record of the request already has."""
    first: dict[str, int] = {}
    problems = []
    for index, item in enumerate(ids):
        if item in first:
            problems.append(f"{kind}[{index}].{field}: {item} repeats {kind}[{first[item]}]")
        else:
            first[item] = index
    return problems
