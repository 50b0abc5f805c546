"""PUT/GET /v1/users/{user_id}/profile: what upstream systems know about a user, and POST
/v1/users/profiles/bulk for many at once; DELETE /v1/users/{user_id}: the user's erasure
(recsvc.store.erasure)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from recsvc.contract.domain import ID_PATTERN, MAX_ID_LENGTH
from recsvc.contract.records import Profile, UserProfile
from recsvc.edge.deps import RuntimeDep, unavailable
from recsvc.edge.schemas import ProfilesBulk
from recsvc.store.gateway import RedisUnavailable
from recsvc.store.users import profile_of

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


@router.post("/profiles/bulk", responses={503: {"description": "Redis unreachable."}})
async def put_profiles(bulk: ProfilesBulk, runtime: RuntimeDep) -> dict[str, int]:
    """Replace many users' profiles at once (at most 1,000): every record is validated first
    and a bad one is a 422 naming its index and field (every problem at once); nothing is
    written unless all are good. A 503 part way may leave some written: send them all again
    (replacing a profile is idempotent)."""
    profiles = [(p.user_id, Profile(**p.model_dump(exclude={"user_id"}))) for p in bulk.profiles]
    try:
        await runtime.store.put_profiles(profiles)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return {"profiles": len(profiles)}


@router.get("/{user_id}", responses={503: {"description": "Redis unreachable."}})
async def get_user(user_id: UserId, runtime: RuntimeDep) -> dict[str, Any]:
    """What the service holds of the user (admin): the profile, whether the current model
    has a vector for them, and their recent events, newest first (the seen filter and the
    fold-in read these)."""
    model = runtime.serving.snapshot.model
    try:
        state = await runtime.store.get_user(user_id, model.generation if model else None)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return {
        "user_id": user_id,
        "profile": profile_of(state).model_dump(),
        "model_version": model.version if model else None,
        "has_vector": state.vector is not None,
        "recent": [asdict(event) for event in state.recent],
    }


@router.get("/{user_id}/profile", responses={503: {"description": "Redis unreachable."}})
async def get_profile(user_id: UserId, runtime: RuntimeDep) -> UserProfile:
    """The user's profile as the service sees it (holdings include purchases from events)."""
    try:
        return await runtime.store.get_profile(user_id)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None


class Erasure(BaseModel):
    user_id: str
    keys_deleted: int  # of the user's own keys, at once
    erased_at: str
    completed_by: str  # what removes the rest


@router.delete("/{user_id}", responses={503: {"description": "Redis unreachable."}})
async def erase_user(user_id: UserId, runtime: RuntimeDep) -> Erasure:
    """Erase the user (admin): at once, their vectors, profile, holdings, purchases, recent
    items and caps; at the next nightly run, their events and exposures (in Redis and in the
    drained partitions), the dedup markers of their events and their place among the viewers
    of new videos, so the next model never learns from them. Idempotent: a second call
    deletes nothing more and records the erasure again."""
    erased_at = datetime.now(UTC)
    try:
        deleted = await runtime.store.erase_user(user_id, erased_at)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return Erasure(
        user_id=user_id,
        keys_deleted=deleted,
        erased_at=erased_at.isoformat(),
        completed_by="the next nightly run",
    )
