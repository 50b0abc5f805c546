"""Where a page is shown and what the app already showed: surfaces, a context item, the
items to leave out and the page token that continues a session.

A **surface** is a place in the app that shows feeds (the home feed, a product page, the
screen after a video). Each has its own page size, whether it carries product cards, how
many, and of which categories (RECSVC_SURFACES). A **context item** (a video or a product)
turns the page into "related to this item": the item's vector, blended with the user's, is
the query; every rule of the seller holds as on any page. **Exclude** and the **page
token** hide videos (and, for exclude, products) from the page: the token lists what the
session's earlier pages showed, so the next page repeats none of them.

Pure values and their parsing (no I/O): the route builds a Placement per request, and
recsvc.feed.compute applies it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsvc.contract.domain import ID_PATTERN, SURFACE_NAME_PATTERN, ProductCategory

DEFAULT_SURFACE = "home"
# The videos a page token remembers, at most MAX_TOKEN_VIDEOS in TOKEN_BUDGET bytes of ids:
# past them the oldest pages may repeat (a session of 25 pages of 20 short ids, or 90 ids of
# 64 characters). The token then stays under MAX_TOKEN_LENGTH characters, inside a URL.
MAX_TOKEN_VIDEOS = 500
TOKEN_BUDGET = 6_000
MAX_TOKEN_LENGTH = 8_500
MAX_EXCLUDED = 100  # ids in one request's `exclude`
SURFACE_NAME = SURFACE_NAME_PATTERN


class SurfaceConfig(BaseModel):
    """One surface's configuration, as RECSVC_SURFACES gives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    page_size: int | None = Field(
        None, ge=1, le=100, description="Videos per page when the request names no `n`; "
        "unset: RECSVC_FEED_DEFAULT_N.",
    )  # fmt: skip
    attach: bool = Field(True, description="Whether pages on this surface carry product cards.")
    max_attached: int | None = Field(
        None, ge=0, le=100, description="At most this many cards per page on this surface "
        "(with RECSVC_MAX_ATTACHED_PER_PAGE or a variant's, the lower); unset: theirs.",
    )  # fmt: skip
    product_categories: list[ProductCategory] | None = Field(
        None, description="Only cards of these categories; unset: every category."
    )
    context_weight: float = Field(
        0.5, ge=0, le=1, description="With a context item, its share of the query vector "
        "(1: the item alone, 0: the user alone; a user without a vector: the item alone).",
    )  # fmt: skip


@dataclass(frozen=True)
class Surface:
    name: str
    page_size: int | None = None
    attach: bool = True
    max_attached: int | None = None
    product_categories: frozenset[ProductCategory] | None = None
    context_weight: float = 0.5


HOME = Surface(DEFAULT_SURFACE)


class SurfacesError(ValueError):
    """RECSVC_SURFACES cannot be used; the message names the surface and the field."""


def parse_surfaces(text: str) -> dict[str, Surface]:
    """RECSVC_SURFACES: a JSON object of surface name to SurfaceConfig. The `home` surface
    always exists (with the replica's defaults unless configured)."""
    surfaces = {DEFAULT_SURFACE: HOME}
    if not text.strip():
        return surfaces
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SurfacesError(f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(raw, dict):
        raise SurfacesError('must be a JSON object of surface names, e.g. {"home": {}}')
    problems = []
    for name, config in raw.items():
        if not re.match(SURFACE_NAME, name):
            problems.append(f"{name!r}: a surface name is 1-32 of a-z, 0-9, _ and -, from a letter")
            continue
        try:
            parsed = SurfaceConfig.model_validate(config)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(str(part) for part in error["loc"]) or "(the surface)"
                problems.append(f"{name}.{where}: {error['msg']}")
            continue
        categories = parsed.product_categories
        surfaces[name] = Surface(
            name,
            page_size=parsed.page_size,
            attach=parsed.attach,
            max_attached=parsed.max_attached,
            product_categories=None if categories is None else frozenset(categories),
            context_weight=parsed.context_weight,
        )
    if problems:
        raise SurfacesError("; ".join(problems))
    return surfaces


@dataclass(frozen=True)
class Placement:
    """One request's surface, context item and the items it must leave out."""

    surface: Surface = HOME
    context: str | None = None
    hidden_videos: frozenset[str] = frozenset()  # excluded, shown on earlier pages, context
    hidden_products: frozenset[str] = frozenset()  # excluded
    # the videos the session's earlier pages showed (the page token's), oldest first
    shown: tuple[str, ...] = field(default=())


PLAIN = Placement()


class PageTokenError(ValueError):
    """A page token that is not one this service issued for this user and surface."""


def page_token(user_id: str, surface: str, context: str | None, shown: Iterable[str]) -> str:
    """The token for the page after one that showed `shown` (every page's so far, oldest
    first): URL-safe text of at most MAX_TOKEN_LENGTH characters, keeping the latest videos
    that fit TOKEN_BUDGET bytes. It is not secret (it lists what the app showed the user) and
    a forged one can only hide videos from the user who sends it. Not compressed: it is made
    for every feed, and zlib cost ten times the rest."""
    kept: list[str] = []
    room = TOKEN_BUDGET
    for video in reversed(list(shown)):
        room -= len(video) + 3  # its quotes and comma
        if room < 0 or len(kept) == MAX_TOKEN_VIDEOS:
            break
        kept.append(video)
    kept.reverse()
    body = orjson.dumps({"u": user_id, "s": surface, "c": context, "v": kept})
    return base64.urlsafe_b64encode(body).decode().rstrip("=")


def read_page_token(token: str, user_id: str, surface: str, context: str | None) -> tuple[str, ...]:
    """The videos shown on the session's earlier pages; PageTokenError when the token is not
    one of ours, or was issued for another user, surface or context."""
    try:
        body = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise PageTokenError("not a page token this service issued") from None
    if not isinstance(body, dict) or not isinstance(body.get("v"), list):
        raise PageTokenError("not a page token this service issued")
    if body.get("u") != user_id or body.get("s") != surface or body.get("c") != context:
        raise PageTokenError(
            "issued for another user, surface or context: a session's pages share all three"
        )
    videos = body["v"]
    if len(videos) > MAX_TOKEN_VIDEOS or not all(isinstance(v, str) for v in videos):
        raise PageTokenError("not a page token this service issued")
    return tuple(videos)


def split_ids(raw: str, limit: int = MAX_EXCLUDED) -> frozenset[str]:
    """`exclude`: ids separated by commas, each an id (ValueError names the bad one)."""
    ids = [part for part in raw.split(",") if part]
    if len(ids) > limit:
        raise ValueError(f"at most {limit} ids, got {len(ids)}")
    for item in ids:
        if not re.fullmatch(ID_PATTERN[1:-1], item):
            raise ValueError(f"{item[:40]!r} is not an id")
    return frozenset(ids)


def surface_names(surfaces: Mapping[str, Surface]) -> str:
    return ", ".join(sorted(surfaces))
