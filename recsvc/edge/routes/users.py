"""PUT/GET /v1/users/{user_id}/profile: what upstream systems know about a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from recsvc.contract.domain import ID_PATTERN, MAX_ID_LENGTH
from recsvc.contract.records import Profile, UserProfile
from recsvc.edge.deps import RuntimeDep, unavailable
from recsvc.store.gateway import RedisUnavailable

router = APIRouter(prefix="/v1/users", tags=["users"])
UserId = Annotated[str, Path(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH, examples=["u00042"])]


@router.put("/{user_id}/profile", responses={503: {"description": "Redis unreachable."}})
async def put_profile(user_id: UserId, profile: Profile, runtime: RuntimeDep) -> Profile:
    """Replace the user's risk tolerance, segment, lifecycle and holdings."""
    try:
        await runtime.store.put_profile(user_id, profile)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return profile


@router.get("/{user_id}/profile", responses={503: {"description": "Redis unreachable."}})
async def get_profile(user_id: UserId, runtime: RuntimeDep) -> UserProfile:
    """The user's profile as the service sees it (holdings include purchases from events)."""
    try:
        return await runtime.store.get_profile(user_id)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
