"""POST /v1/events: a batch of what users did, appended to the Redis stream."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from fastapi.exceptions import RequestValidationError

from recsvc.contract.records import Event
from recsvc.edge.deps import Runtime, RuntimeDep, unavailable
from recsvc.edge.schemas import EventBatch, EventsAccepted
from recsvc.store.gateway import RedisUnavailable
from recsvc.store.ingest import IngestBusy, StreamFull

log = logging.getLogger("recsvc.edge.events")
router = APIRouter(prefix="/v1", tags=["events"])
STREAM_FULL_RETRY_SECONDS = 60
BUSY_RETRY_SECONDS = 1


@router.post(
    "/events",
    status_code=202,
    responses={
        422: {"description": "A malformed event: `loc` names the event's index and field."},
        503: {
            "description": "Redis unreachable, the stream full, or the replica busy writing "
            "other batches: retry the batch after Retry-After. Events a failed attempt did "
            "store come back as duplicates."
        },
    },
)
async def post_events(batch: EventBatch, runtime: RuntimeDep) -> EventsAccepted:
    """Accept a batch (1 to 1,000 events) as a whole or not at all; an event_id already
    accepted counts as a duplicate and is not appended again, so retries are safe. A purchase
    adds its product to the user's holdings only when the product is in the catalogue and the
    user holds fewer than RECSVC_MAX_PURCHASED_PER_USER from purchases: one user's state stays
    small, so no user can slow Redis down for the others (`not_applied` counts the rest)."""
    settings = runtime.settings
    latest = datetime.now(UTC) + timedelta(seconds=settings.max_future_seconds)
    future = [
        {
            "type": "value_error",
            "loc": ("body", "events", i, "ts"),
            "msg": f"ts is more than {settings.max_future_seconds}s in the future",
            "input": event.ts.isoformat(),
        }
        for i, event in enumerate(batch.events)
        if event.ts > latest
    ]
    if future:
        raise RequestValidationError(future)
    events = batch.events
    try:
        ingested = await runtime.store.ingest(
            events,
            max_len=settings.stream_max_len,
            dedup_seconds=max(1, round(settings.event_dedup_days * 86400)),
            recent_limit=settings.recent_events_limit,
            products=runtime.serving.snapshot.catalog.products,
            videos=runtime.serving.snapshot.catalog.videos,
            max_purchased=settings.max_purchased_per_user,
        )
    except RedisUnavailable as exc:
        runtime.metrics.events.labels("unavailable").inc(len(events))
        raise unavailable(f"events not accepted: {exc}", settings.redis_retry_seconds) from None
    except IngestBusy as exc:
        runtime.metrics.events.labels("busy").inc(len(events))
        raise unavailable(f"events not accepted: {exc}", BUSY_RETRY_SECONDS) from None
    except StreamFull as exc:
        runtime.metrics.events.labels("stream_full").inc(len(events))
        raise unavailable(f"events not accepted: {exc}", STREAM_FULL_RETRY_SECONDS) from None
    await _record_fresh_views(runtime, events)
    counted = runtime.metrics.events
    counted.labels("accepted").inc(ingested.accepted)
    counted.labels("duplicate").inc(ingested.duplicates)
    counted.labels("not_applied_unknown_product").inc(ingested.unknown_products)
    counted.labels("not_applied_state_full").inc(ingested.over_limit)
    return EventsAccepted(
        received=len(events),
        accepted=ingested.accepted,
        duplicates=ingested.duplicates,
        not_applied=ingested.not_applied,
    )


async def _record_fresh_views(runtime: Runtime, events: Sequence[Event]) -> None:
    """The batch's views and clicks of videos the current model does not know, recorded
    for their collaborative vectors (recsvc.service.fresh). After the batch was
    accepted: a failure here costs a video some of its first viewers, never an event (the
    stream has it, and the next nightly model learns from it); it is counted and logged."""
    rules = runtime.serving.snapshot.rules
    if rules is None or not len(rules.fresh):
        return
    fresh = rules.fresh.position
    views: dict[str, dict[str, str]] = {}
    for event in events:
        if event.item_type == "video" and event.item_id in fresh and event.action != "impression":
            ratio = "" if event.watch_ratio is None else repr(event.watch_ratio)
            field = f"{event.user_id}|{event.event_id}"
            views.setdefault(event.item_id, {})[field] = f"{event.user_id}|{event.action}|{ratio}"
    if not views:
        return
    try:
        await runtime.store.record_fresh_views(views)
    except RedisUnavailable as exc:
        runtime.metrics.fresh_views_lost.inc(sum(len(v) for v in views.values()))
        log.warning("first views of %d fresh videos not recorded: %s", len(views), exc)
