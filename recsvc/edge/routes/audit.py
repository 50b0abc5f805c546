"""GET /v1/admin/users/{user_id}/audit (admin): the product cards a user was served, each with
the checks that let it through and what is wrong with its record, from the card stream not
drained yet (recsvc.contract.records.PageCards). The service never reads the drained
partitions: `recsvc audit USER --cards DIR` reads both (training.data.cards), with the same
parsing (recsvc.contract.records.page_card_values) and the same checks (card_problems)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from redis.exceptions import RedisClusterException, RedisError

from recsvc.contract.records import (
    card_problems,
    each_card,
    page_card_values,
)
from recsvc.edge.deps import RuntimeDep, unavailable
from recsvc.edge.routes.users import UserId
from recsvc.store.client import AsyncClient

router = APIRouter(prefix="/v1/admin", tags=["operators"])
log = logging.getLogger("recsvc.edge.routes.audit")

SOURCE = "stream"  # the card stream not drained yet: all the service can read
DEFAULT_MAX_ENTRIES = 100_000  # stream entries (pages with cards, any user's) read at most
MAX_ENTRIES_LIMIT = 1_000_000
CHUNK = 1000  # entries per XRANGE: one reply well within the service's Redis timeout
# The scan starts this long before `since` (by the entries' ids, Redis's clock when each was
# appended, just after the page was served): a Redis clock behind the service's by less
# than this loses no card.
SINCE_SLACK_MS = 3_600_000


class AuditedCard(BaseModel):
    """One card served, as its record says (null: the record lacks that value, or it does
    not parse), and what is wrong with it."""

    request_id: str | None = Field(description="The feed's request id.")
    ts: datetime | None = Field(description="When the page was served (UTC).")
    user_id: str | None
    model_version: str | None
    surface: str | None
    experiments: str | None = Field(description='"experiment:variant" pairs (null: none).')
    risk_tolerance: int | None = Field(description="The user's then (null: unknown).")
    risk_allowed_up_to: int | None = Field(description="The highest risk level allowed.")
    daily_cap: int | None = Field(description="Cards of one product per user and day.")
    rank: int | None = Field(description="The video's rank on the page: the card under it.")
    video_id: str | None
    product_id: str | None
    risk_level: int | None
    holdable_once: bool | None
    held: bool | None = Field(description="The user held it already.")
    cap_count: int | None = Field(description="This product's cards today, this one included.")
    disclosure_required: bool | None
    disclosure_shown: bool | None
    category: str | None
    category_count: int | None = Field(description="Its category's cards today, this one included.")
    category_cap: int | None = Field(description="The cap on its category (-1: none).")
    campaigns: str | None = Field(description='Campaign rules that acted, "+"-joined.')
    card_id: str = Field(description='"<request_id>:<rank>": unique per card.')
    problems: list[str] = Field(
        description='Empty: every check recorded and passed. Else each check missing ("no '
        'record of risk_level") or failed ("risk level 4 above 3").'
    )


class CardAudit(BaseModel):
    """A user's cards from the undrained card stream, oldest first."""

    user_id: str
    since: datetime | None = Field(description="Cards served from this instant (UTC).")
    source: Literal["stream"] = Field(
        description="Where the cards were read: the card stream not drained yet. Cards "
        "drained to partitions are not here: `recsvc audit USER --cards DIR` reads both."
    )
    scanned_entries: int = Field(description="Stream entries read (every user's pages).")
    complete: bool = Field(
        description="Every entry from `since` on was read; false: max_entries ran out first "
        "(the newest cards are missing: narrow `since` or raise max_entries)."
    )
    cards: list[AuditedCard]
    failing: int = Field(description="Cards with a check missing or failed.")


RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"description": "`since` is not an ISO date or time, or max_entries is out of range."},
    503: {
        "description": "Redis unreachable: the card stream could not be read.",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
}


@router.get("/users/{user_id}/audit", response_model=CardAudit, responses=RESPONSES)
async def audit_user(
    user_id: UserId,
    runtime: RuntimeDep,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            description="Only cards served from this ISO date or time (UTC unless it says).",
            examples=["2026-12-01"],
        ),
    ] = None,
    max_entries: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_ENTRIES_LIMIT,
            description="Stream entries to read at most (each a page with cards, any user's).",
        ),
    ] = DEFAULT_MAX_ENTRIES,
) -> dict[str, Any]:
    """Every product card served to the user that is still in the card stream (not drained
    yet), each with the checks that let it through (the product's risk level against what
    the user may be shown, held or not when it can be held once, the day's count against the
    daily cap, the disclosure, its category's count against the category's cap, the campaign
    rules that acted on it, the model, the surface) and its `problems`: a check the record
    lacks (the audit cannot answer for that card) or one it fails. `failing` counts the cards
    with a problem.

    **Source: the undrained stream only.** The service has no access to the partitions the
    nightly drain writes (`data/cards`): once drained, a card is listed by
    `recsvc audit USER --cards DIR` (which reads both, with the same checks) and no longer
    here. The stream is read oldest first (every user's pages: it is not kept per user),
    from an hour before `since` by the time Redis appended each page (a Redis clock behind
    the service's by less than that loses no card), `max_entries` entries at most (default
    100,000; 1,000,000 at most), in short reads that let other requests through; `complete`
    says whether that reached its end."""
    start = _since(since)
    first = "-" if start is None else str(max(0, _epoch_ms(start) - SINCE_SLACK_MS))
    try:
        pages, scanned, complete = await _scan_shards(
            runtime.store.client, _card_streams(runtime, user_id), user_id, first, max_entries
        )
    except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
        log.warning("audit: the card stream could not be read: %s", exc)
        detail = "Redis unavailable: the card stream could not be read"
        raise unavailable(detail, runtime.settings.redis_retry_seconds) from None
    cards = [card for page in pages for card in each_card(page_card_values(page))]
    kept = [c for c in cards if start is None or (c["ts"] is not None and c["ts"] >= start)]
    kept.sort(key=lambda c: (c["ts"] is None, c["ts"] or start or _EPOCH, c["card_id"]))
    audited = [{**card, "problems": card_problems(card)} for card in kept]
    return {
        "user_id": user_id,
        "since": start,
        "source": SOURCE,
        "scanned_entries": scanned,
        "complete": complete,
        "cards": audited,
        "failing": sum(1 for card in audited if card["problems"]),
    }


_EPOCH = datetime.fromtimestamp(0, UTC)


def _since(text: str | None) -> datetime | None:
    """`since` as a UTC instant (a date: its midnight; no zone: UTC); 422 when it is none."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "since"),
                    "msg": f"{text!r} is not an ISO date or time, e.g. 2026-12-01",
                }
            ]
        ) from None


def _epoch_ms(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds() * 1000)


def _card_streams(runtime: Any, user_id: str) -> list[str]:
    """The card stream shards that may hold the user's pages: theirs in each layout used."""
    return runtime.store.keys.user_streams("cards", user_id, runtime.store.layouts.ever())


async def _scan_shards(
    client: AsyncClient, streams: list[str], user_id: str, first: str, max_entries: int
) -> tuple[list[dict[str, str]], int, bool]:
    """_scan over each of `streams` in turn, `max_entries` in all."""
    pages: list[dict[str, str]] = []
    scanned, complete = 0, True
    for stream in streams:
        found, read, whole = await _scan(client, stream, user_id, first, max_entries - scanned)
        pages += found
        scanned += read
        complete = complete and whole
    return pages, scanned, complete


async def _scan(
    client: AsyncClient, stream: str, user_id: str, first: str, max_entries: int
) -> tuple[list[dict[str, str]], int, bool]:
    """The user's entries in the stream from entry id `first` on (as field -> text), the
    entries read, and whether that reached the stream's end: at most `max_entries`, in
    chunks (each a short command; other requests run between them)."""
    wanted = user_id.encode()
    pages: list[dict[str, str]] = []
    scanned, start = 0, first
    while scanned < max_entries:
        count = min(CHUNK, max_entries - scanned)
        entries: Any = await client.xrange(stream, min=start, count=count)
        scanned += len(entries)
        for _, values in entries:
            if values.get(b"user_id") == wanted:
                pages.append({_text(k): _text(v) for k, v in values.items()})
        if len(entries) < count:
            return pages, scanned, True
        start = "(" + _text(entries[-1][0])
    rest = await client.xrange(stream, min=start, count=1)
    return pages, scanned, not rest


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
