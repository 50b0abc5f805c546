"""The HTTP API's request and response bodies (pydantic), with examples for /docs."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from recsvc.contract.domain import (
    ProductCategory,
)
from recsvc.contract.records import Event, Source

MAX_EVENTS_PER_BATCH = 1000


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
