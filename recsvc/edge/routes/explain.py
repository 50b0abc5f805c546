"""GET /v1/users/{user_id}/feed/explain (admin): the page the user's next feed would get now,
each video's score in its parts and each card's with the checks that let it through
(recsvc.feed.explain). Read-only: no daily cap is used, no exposure is logged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from recsvc.edge.deps import RuntimeDep, unavailable
from recsvc.edge.routes.feed import DEFAULT_VARIANT, placement_of, validated_query
from recsvc.edge.routes.users import UserId
from recsvc.feed.explain import explained_page
from recsvc.feed.placement import DEFAULT_SURFACE
from recsvc.store.gateway import RedisUnavailable, utc_day

router = APIRouter(prefix="/v1/users", tags=["users"])


@router.get(
    "/{user_id}/feed/explain",
    responses={
        422: {"description": "A malformed parameter, as on GET /v1/feed."},
        503: {"description": "No model loaded yet, or Redis unreachable."},
    },
)
async def explain_feed(
    user_id: UserId,
    runtime: RuntimeDep,
    n: Annotated[int | None, Query(ge=1, le=100)] = None,
    surface: str = DEFAULT_SURFACE,
    context: str | None = None,
    exclude: str | None = None,
    page_token: str | None = None,
) -> dict[str, Any]:
    """The page GET /v1/feed would give this user now, with the same parameters (validated as
    there, FeedQuery), and why:
    `explanations` holds, per item, the score's parts (`model`, `trending`, `freshness`,
    `popularity`, `campaign`, `total`), the campaign rules that matched it (`campaigns`,
    `pinned`) and, under a card, its parts (`user`, `video`, `campaign`), its campaign rules
    and checks (risk level against tolerance, held once, today's cap, the disclosure, the
    status, its category's count today against the category's cap)."""
    given = {"n": n, "surface": surface, "context": context, "exclude": exclude}
    query = validated_query({"user_id": user_id, "page_token": page_token} | given)
    placement = placement_of(query, runtime)
    snapshot = runtime.serving.snapshot
    assignments = snapshot.experiments.assign(user_id)
    overrides = {k: v for a in assignments for k, v in a.overrides.items()}
    option = runtime.batcher.base_options.with_overrides(overrides).on_surface(placement.surface)
    model, rules = snapshot.resolve(option.model)
    if model is None or rules is None:
        raise unavailable("no model or no catalogue loaded yet", runtime.settings.poll_seconds)
    try:
        (state,) = await runtime.store.user_states(
            [user_id], model.generation, utc_day(), option.daily_cap
        )
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    size = query.n or placement.surface.page_size or runtime.settings.feed_default_n
    campaigns = runtime.batcher.campaigns(snapshot, rules, [assignments])
    feed, explanations = explained_page(model, rules, state, option, placement, size, campaigns)
    return {
        "user_id": user_id,
        "model_version": model.version,
        "variant": ",".join(a.label for a in assignments) or DEFAULT_VARIANT,
        "source": feed.source.value,
        "surface": placement.surface.name,
        "context": placement.context,
        "items": feed.items,
        "explanations": explanations,
    }
