"""The records both halves read and write: an event as accepted into the stream, a user's
profile, a feed's exposure as logged for the A/B report, and where a feed's ranking came
from.

The HTTP edge takes these as request bodies (recsvc.edge.schemas), the store writes them to
Redis, and the offline half reads the drained events back; one definition for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from recsvc.contract.domain import (
    ID_PATTERN,
    MAX_POSITION,
    SURFACE_NAME_PATTERN,
    WATCH_RATIO_MAX,
    Action,
    ItemType,
    Lifecycle,
    NotABool,
)

MAX_HOLDINGS = 1000  # products in one profile PUT
Id = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]


class Source(StrEnum):
    """Where a feed's ranking came from."""

    CF = "cf"  # the user's published vector
    FOLD_IN = "fold_in"  # a vector folded in from the user's recent events
    SEGMENT_POPULARITY = "segment_popularity"
    POPULARITY = "popularity"
    CONTEXT = "context"  # a user without a vector, on a page related to a context item


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
    watch_ratio: Annotated[float | None, NotABool] = Field(
        None, ge=0, le=WATCH_RATIO_MAX, allow_inf_nan=False
    )
    request_id: Id | None = None
    amount: Annotated[float | None, NotABool] = Field(None, ge=0, allow_inf_nan=False)
    # Where it happened, so that outcomes can be analysed by placement: the app's surface
    # (recsvc.feed.placement, any surface name) and the item's 1-based position on the page.
    surface: str | None = Field(None, pattern=SURFACE_NAME_PATTERN, examples=["home"])
    position: Annotated[int | None, NotABool] = Field(None, ge=1, le=MAX_POSITION)

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


@dataclass(frozen=True)
class Exposure:
    """One feed served to a user in at least one experiment, as the report needs it."""

    request_id: str
    ts_ms: int
    user_id: str
    experiments: str  # "experiment:variant" pairs joined by commas
    model_version: str
    videos: list[str]  # in rank order
    products: list[str | None]  # the card under each video, or None
    # the 1-based ranks of the page's exploration slots (recsvc.feed.compute.explored_videos)
    explored: list[int] = field(default_factory=list)
    surface: str = "home"  # where the page was shown (recsvc.feed.placement)
    # the user's profile when it was shown ("" where unknown), for the report's breakdowns
    segment: str = ""
    lifecycle: str = ""

    def fields(self) -> list[str]:
        """The exposure as stream field values, in EXPOSURE_FIELDS order."""
        return [
            self.request_id,
            str(self.ts_ms),
            self.user_id,
            self.experiments,
            self.model_version,
            ",".join(self.videos),
            ",".join(p or "" for p in self.products),
            ",".join(str(rank) for rank in self.explored),
            self.surface,
            self.segment,
            self.lifecycle,
        ]


# The exposure stream's field names, in Exposure.fields() order: the EXPOSE script writes them
# (recsvc.store.streams) and the drain reads them back (training.data.drain). `ts_ms` is
# stored as `ts`.
EXPOSURE_FIELDS = tuple("ts" if f.name == "ts_ms" else f.name for f in fields(Exposure))


# The checks of one card in a page's record (PageCards.cards), in this order.
CARD_PARTS = (
    "rank",
    "video_id",
    "product_id",
    "risk_level",
    "holdable_once",
    "held",
    "cap_count",
    "disclosure_required",
    "disclosure_shown",
    "category",
    "category_count",
    "category_cap",
    "campaigns",
)
NO_CATEGORY_CAP = -1  # category_cap of a card whose category has no cap for the user


@dataclass(frozen=True)
class PageCards:
    """The product cards of one page served, with the checks that let each through: the
    compliance record (`recsvc audit`), one stream entry per page with cards, whoever the
    user. Packed so that recording costs a feed little: each card's CARD_PARTS joined by
    `|` (booleans 1 or 0), the cards by `;` (ids hold neither)."""

    request_id: str
    ts_ms: int
    user_id: str
    model_version: str
    surface: str
    experiments: str  # "experiment:variant" pairs joined by commas ("" in none)
    risk_tolerance: int | None  # None: unknown
    risk_allowed_up_to: int  # the highest level the user may be shown (unknown: the policy)
    daily_cap: int
    cards: str

    def fields(self) -> list[str]:
        """The page as stream field values, in PAGE_CARD_FIELDS order."""
        tolerance = "" if self.risk_tolerance is None else str(self.risk_tolerance)
        return [
            self.request_id,
            str(self.ts_ms),
            self.user_id,
            self.model_version,
            self.surface,
            self.experiments,
            tolerance,
            str(self.risk_allowed_up_to),
            str(self.daily_cap),
            self.cards,
        ]


# The card stream's field names, in PageCards.fields() order (`ts_ms` stored as `ts`).
PAGE_CARD_FIELDS = tuple("ts" if f.name == "ts_ms" else f.name for f in fields(PageCards))

# What each value of a card record reads back as (page_card_values): the page's fields, then
# each card's CARD_PARTS. The drain stores them as the Parquet types of the same names
# (training.data.drain.CARD_SCHEMA); the audit reads them (training.data.cards, and the
# service's GET /v1/admin/users/{id}/audit).
CARD_PAGE_KINDS: dict[str, type] = {
    "request_id": str,
    "ts": datetime,  # from the record's epoch milliseconds, UTC
    "user_id": str,
    "model_version": str,
    "surface": str,
    "experiments": str,
    "risk_tolerance": int,  # None: unknown
    "risk_allowed_up_to": int,
    "daily_cap": int,
}
CARD_PART_KINDS: dict[str, type] = {
    "rank": int,
    "video_id": str,
    "product_id": str,
    "risk_level": int,
    "holdable_once": bool,
    "held": bool,
    "cap_count": int,
    "disclosure_required": bool,
    "disclosure_shown": bool,
    "category": str,
    "category_count": int,
    "category_cap": int,  # NO_CATEGORY_CAP: none
    "campaigns": str,  # None: no campaign rule
}
assert tuple(CARD_PAGE_KINDS) == tuple(n for n in PAGE_CARD_FIELDS if n != "cards")
assert tuple(CARD_PART_KINDS) == CARD_PARTS


def card_value(text: str, kind: type) -> Any:
    """One value of a card record from its stream text; None when it is empty or does not
    parse (the audit then names the check as missing: it cannot answer for the card). A
    boolean is 1 or 0; a time is epoch milliseconds."""
    try:
        if kind is datetime:
            return datetime.fromtimestamp(int(text) / 1000, UTC) if text.isdigit() else None
        if kind is int:
            return int(text) if text.lstrip("-").isdigit() else None
    except (ValueError, OverflowError, OSError):
        return None  # digits int() refuses ("²"), "--1", or a time out of range
    if kind is bool:
        return {"1": True, "0": False}.get(text)
    return text or None


def page_card_values(entry: Mapping[str, str]) -> dict[str, Any]:
    """One card stream entry (field name -> text) read back: each page field's value and, for
    each of CARD_PARTS, a list of the page's cards' values in page order (a card with fewer
    parts, e.g. recorded before a part existed, has None for the ones it lacks). The drain
    stores it as one row (training.data.drain.CARD_SCHEMA); each_card splits it by card."""
    page: dict[str, Any] = {
        name: card_value(entry.get(name, ""), kind) for name, kind in CARD_PAGE_KINDS.items()
    }
    cards = [card.split("|") for card in entry.get("cards", "").split(";") if card]
    for i, (name, kind) in enumerate(CARD_PART_KINDS.items()):
        page[name] = [card_value(parts[i], kind) if i < len(parts) else None for parts in cards]
    return page


def each_card(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A page's values (page_card_values, or a drained row) as one dict per card: the page's
    fields, the card's CARD_PARTS and `card_id` ("<request_id>:<rank>")."""
    shared = {name: page[name] for name in CARD_PAGE_KINDS}
    cards = []
    for i in range(len(page["rank"] or [])):
        card = dict(shared)
        for name in CARD_PARTS:
            values = page[name] or []
            card[name] = values[i] if i < len(values) else None
        card["card_id"] = f"{page['request_id']}:{card['rank']}"
        cards.append(card)
    return cards


@dataclass(frozen=True)
class CardShown:
    """One card of a page's record, as the audit reads it back (training.data.cards)."""

    card_id: str  # "<request_id>:<rank>": unique per card
    ts_ms: int
    user_id: str
    request_id: str
    model_version: str
    surface: str
    experiments: str
    rank: int  # the video's rank on the page, the card under it
    video_id: str
    product_id: str
    risk_level: int
    risk_tolerance: int | None  # None: unknown
    risk_allowed_up_to: int
    holdable_once: bool
    held: bool  # the user held it (allowed only when it is not holdable once)
    daily_cap: int
    cap_count: int  # this product's cards for the user today, this one included
    disclosure_required: bool
    disclosure_shown: bool
    category: str
    category_count: int  # cards of its category for the user today, this one included
    category_cap: int  # the cap on its category for the user then (NO_CATEGORY_CAP: none)
    campaigns: str | None  # the campaign rules that acted on it, joined by "+" (None: none)

    def failed_checks(self) -> list[str]:
        """The checks this card does not pass (none for a card the service let through)."""
        failed = []
        if self.risk_level > self.risk_allowed_up_to:
            failed.append(f"risk level {self.risk_level} above {self.risk_allowed_up_to}")
        if self.holdable_once and self.held:
            failed.append("held already, and holdable once")
        if self.cap_count > self.daily_cap:
            failed.append(f"card {self.cap_count} of a daily cap of {self.daily_cap}")
        if self.disclosure_required and not self.disclosure_shown:
            failed.append("its disclosure was not shown")
        if self.category_cap != NO_CATEGORY_CAP and self.category_count > self.category_cap:
            failed.append(
                f"card {self.category_count} of {self.category} of a daily cap of "
                f"{self.category_cap}"
            )
        return failed


# The fields that are checks: a card whose record lacks one cannot be answered for.
CARD_CHECKS = (
    "risk_level",
    "risk_allowed_up_to",
    "holdable_once",
    "held",
    "daily_cap",
    "cap_count",
    "disclosure_required",
    "disclosure_shown",
    "category",
    "category_count",
    "category_cap",
    "model_version",
)
_CARD_SHOWN_FIELDS = tuple(f.name for f in fields(CardShown) if f.name != "ts_ms")


def card_problems(card: Mapping[str, Any]) -> list[str]:
    """What is wrong with one card's record (a row of each_card): the checks missing from it,
    else the checks it fails (none for a card the service let through)."""
    missing = [name for name in CARD_CHECKS if card.get(name) is None]
    if missing:
        return [f"no record of {name}" for name in missing]
    values: dict[str, Any] = {name: card.get(name) for name in _CARD_SHOWN_FIELDS}
    return CardShown(ts_ms=0, **values).failed_checks()
