"""The campaign rules every replica serves (TOML, recsvc.contract.campaigns):
PUT/GET /v1/admin/campaigns, POST /v1/admin/campaigns/validate and
POST /v1/admin/campaigns/dry-run. A definition is validated as a whole before it is stored; a
bad one is a 422 naming every problem (one that asks to override a seller's rule among them),
and the stored one keeps serving. Replicas pick a new one up on their next poll."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from recsvc.contract.campaigns import CampaignError, Campaigns, parse_campaigns
from recsvc.edge.deps import RuntimeDep, unavailable
from recsvc.edge.routes.experiments import TOML_BODY, definition_text
from recsvc.service.dry_run import DEFAULT_USERS, MAX_USERS, DryRunCancelled, dry_run
from recsvc.store.gateway import RedisUnavailable

router = APIRouter(prefix="/v1/admin", tags=["campaigns"])
# One dry run at a time per replica: each reads and ranks up to MAX_USERS users' pages twice.
DRY_RUN = asyncio.Lock()
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "The definition cannot serve: every problem is named."}
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: {"description": "Redis unreachable."}}


async def _validated(request: Request) -> tuple[str, Campaigns]:
    text = await definition_text(request, "campaign")
    try:
        return text, parse_campaigns(text)
    except CampaignError as exc:
        raise HTTPException(422, str(exc)) from None


@router.put("/campaigns", openapi_extra=TOML_BODY, responses={**REFUSED, **UNAVAILABLE})
async def put_campaigns(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Replace the campaign rules (a TOML document as the body); every replica serves them
    from its next poll."""
    text, campaigns = await _validated(request)
    try:
        revision = await runtime.store.put_campaigns(text)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return {"revision": revision, "campaigns": [c.name for c in campaigns.campaigns]}


@router.post("/campaigns/validate", openapi_extra=TOML_BODY, responses=REFUSED)
async def validate_campaigns(request: Request) -> dict[str, Any]:
    """Check a definition as PUT does, without storing it (the console's Validate)."""
    _, campaigns = await _validated(request)
    return {"valid": True, "campaigns": [c.name for c in campaigns.campaigns]}


@router.post(
    "/campaigns/dry-run",
    openapi_extra=TOML_BODY,
    responses={
        **REFUSED,
        409: {"description": "Another dry run is running on this replica."},
        503: {"description": "No model or catalogue loaded yet, or Redis unreachable."},
    },
)
async def dry_run_campaigns(
    request: Request,
    runtime: RuntimeDep,
    users: Annotated[int, Query(ge=1, le=MAX_USERS)] = DEFAULT_USERS,
    at: Annotated[
        datetime | None,
        Query(description="Judge the schedules at this instant (ISO 8601); default: now."),
    ] = None,
) -> dict[str, Any]:
    """What a definition would touch, without storing it: on a sample of up to `users` users
    with a profile, each rule's users targeted and pages acted on, and the pages that
    differ from those the rules serving now give (recsvc.service.dry_run)."""
    _, campaigns = await _validated(request)
    snapshot = runtime.serving.snapshot
    if snapshot.model is None or snapshot.rules is None:
        raise unavailable("no model or no catalogue loaded yet", runtime.settings.poll_seconds)
    instant = time.time() if at is None else _timestamp(at)
    if DRY_RUN.locked():
        raise HTTPException(409, "another dry run is running on this replica: try when it ends")
    async with DRY_RUN:
        try:
            report = await dry_run(
                snapshot,
                runtime.store,
                runtime.batcher.base_options,
                runtime.batcher.category_caps,
                campaigns,
                runtime.surfaces,
                users,
                instant,
                runtime.settings.feed_default_n,
                request.is_disconnected,
            )
        except RedisUnavailable as exc:
            raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
        except DryRunCancelled:
            raise HTTPException(400, "the dry run stopped: its caller went away") from None
    return {"valid": True, **report}


def _timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise HTTPException(422, "at: give a time zone (e.g. 2026-12-24T08:00:00Z)")
    if not EARLIEST <= moment < LATEST:
        raise HTTPException(422, f"at: from {EARLIEST.year} to {LATEST.year - 1}")
    return moment.timestamp()


@router.get("/campaigns", responses=UNAVAILABLE)
async def get_campaigns(runtime: RuntimeDep) -> dict[str, Any]:
    """The stored definition, and what this replica serves (each rule, and whether it
    applies now)."""
    try:
        revision, text = await runtime.store.campaigns()
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    snapshot = runtime.serving.snapshot
    now = time.time()
    return {
        "revision": revision,
        "definition": text,
        "serving_revision": snapshot.campaigns_revision,
        "refused_revision": next(iter(runtime.serving.refused_campaigns), None),
        "serving": [
            {**rule, "active_now": campaign.active(now)}
            for campaign, rule in zip(
                snapshot.campaigns.campaigns, snapshot.campaigns.as_dict(), strict=True
            )
        ],
    }
