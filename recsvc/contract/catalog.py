"""The catalogue as the service sees it: product records and the live/retired status of items.

Upstream systems write records into Redis (the catalogue API, or `recsvc catalog load`);
every replica keeps an immutable in-memory copy and replaces it when the catalogue's revision
counter moves, so a retirement reaches every replica within one poll interval.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from recsvc.contract.domain import (
    DISCLOSURE_REQUIRED,
    ID_PATTERN,
    MIN_DISCLOSURE_ALNUM,
    ItemStatus,
    NotABool,
    ProductCategory,
    disclosure_text,
    display_text,
    is_disclosure,
)

log = logging.getLogger("recsvc.contract.catalog")
Record = TypeVar("Record", bound=BaseModel)
DISPLAY_TEXT = (
    "Display text: NFC, surrounding whitespace stripped; no control, format (zero-width, "
    "bidirectional override or isolate), invisible, private-use or unassigned character."
)
# The validation context of records read back from Redis (see VideoRecord._title).
STORED: dict[str, bool] = {"stored": True}


class VideoRecord(BaseModel):
    """A video as upstream describes it; only the status matters for serving."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    video_id: str = Field(pattern=ID_PATTERN, examples=["v0042"])
    title: str = Field("", max_length=500, description=DISPLAY_TEXT)
    topics: list[str] = Field(default_factory=list, max_length=50)
    creator: str | None = Field(
        None,
        pattern=ID_PATTERN,
        description="Who made it (an id). With the topics and the series, what a video not yet "
        "in the model is placed by (recsvc.contract.metadata).",
    )
    series: str | None = Field(None, pattern=ID_PATTERN, description="The series it belongs to.")
    duration_s: Annotated[float | None, NotABool] = Field(None, ge=0, allow_inf_nan=False)
    published_at: str | None = None
    status: ItemStatus = ItemStatus.LIVE

    @field_validator("title")
    @classmethod
    def _title(cls, value: str, info: ValidationInfo) -> str:
        """Display text (domain.display_text); but a title stored before that rule is kept:
        no user is shown it, and an unreadable stored video would count as retired."""
        if (info.context or {}).get("stored"):
            return value
        return display_text(value)


class ProductRecord(BaseModel):
    """A product card; everything the attach rules and the response need."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    product_id: str = Field(pattern=ID_PATTERN, examples=["p07"])
    name: str = Field(
        min_length=1, max_length=200, examples=["Global Equity Fund"], description=DISPLAY_TEXT
    )
    category: ProductCategory
    risk_level: Annotated[int, NotABool] = Field(ge=1, le=5)
    disclosure: str | None = Field(
        None,
        max_length=2000,
        examples=["Representative APR 7.9%"],
        description=f"{DISPLAY_TEXT} At least {MIN_DISCLOSURE_ALNUM} letters or digits; null "
        "(or empty) for none. Credit products without one are never attached.",
    )
    holdable_once: StrictBool = False  # a JSON true or false: 0 and "yes" are refused
    topics: list[str] = Field(default_factory=list, max_length=50)
    published_at: str | None = None
    status: ItemStatus = ItemStatus.LIVE

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = display_text(value)
        if not name:
            raise ValueError("a name needs text, not only spaces")
        return name

    @field_validator("disclosure")
    @classmethod
    def _disclosure(cls, value: str | None) -> str | None:
        """No text (or only spaces) is no disclosure; any other must be one."""
        if value is None or not value.strip():
            return None
        return disclosure_text(value)

    @property
    def attachable(self) -> bool:
        """Live, and carrying the disclosure its category requires (domain.is_disclosure, also
        for a record that was never validated)."""
        if self.status is not ItemStatus.LIVE:
            return False
        return self.category not in DISCLOSURE_REQUIRED or is_disclosure(self.disclosure)


@dataclass(frozen=True)
class Catalog:
    """One revision of the catalogue. Videos without a record count as live; products without
    a record are never attached (their suitability cannot be checked)."""

    revision: str | None = None  # None: no catalogue loaded yet
    videos: Mapping[str, VideoRecord] = field(default_factory=dict)
    products: Mapping[str, ProductRecord] = field(default_factory=dict)

    def keeping_retired(self, previous: Catalog) -> Catalog:
        """This catalogue, with every video `previous` had retired and this one has no record
        of kept retired: a record lost (Redis data loss, a partial reload) never revives an
        item; only an explicit record saying `live` does."""
        lost = {
            video: record
            for video, record in previous.videos.items()
            if record.status is ItemStatus.RETIRED and video not in self.videos
        }
        if not lost:
            return self
        return Catalog(self.revision, {**self.videos, **lost}, self.products)

    def retired_videos(self) -> frozenset[str]:
        return frozenset(v for v, r in self.videos.items() if r.status is ItemStatus.RETIRED)

    @classmethod
    def from_raw(
        cls, revision: str | None, videos: Mapping[Any, Any], products: Mapping[Any, Any]
    ) -> Catalog:
        """Parse the JSON records of the two Redis hashes; a bad record is logged and fails
        closed: an unreadable video counts as retired, an unreadable product (one stored
        before the display-text rule included) is never attached (it has no record)."""
        parsed_videos = _parse(videos, VideoRecord, "video", STORED)
        for key in videos:
            video_id = key.decode() if isinstance(key, bytes) else str(key)
            if video_id not in parsed_videos:
                parsed_videos[video_id] = VideoRecord.model_construct(
                    video_id=video_id, status=ItemStatus.RETIRED
                )
        return cls(revision, parsed_videos, _parse(products, ProductRecord, "product"))


def _parse(
    raw: Mapping[Any, Any], model: type[Record], kind: str, context: Any = None
) -> dict[str, Record]:
    records: dict[str, Record] = {}
    for key, value in raw.items():
        item_id = key.decode() if isinstance(key, bytes) else str(key)
        try:
            records[item_id] = model.model_validate(json.loads(value), context=context)
        except (ValueError, ValidationError) as exc:
            log.error("catalogue %s %s: unreadable record skipped (%s)", kind, item_id, exc)
    return records
