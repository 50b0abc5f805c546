"""GET /v1/feed: ranked videos with compliant product cards."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recsvc.contract.domain import ID_PATTERN, MAX_ID_LENGTH
from recsvc.edge.deps import Runtime, unavailable
from recsvc.edge.schemas import FeedResponse
from recsvc.feed.placement import (
    DEFAULT_SURFACE,
    HOME,
    MAX_EXCLUDED,
    MAX_TOKEN_LENGTH,
    PLAIN,
    SURFACE_NAME,
    PageTokenError,
    Placement,
    page_token,
    read_page_token,
    split_ids,
    surface_names,
)
from recsvc.service.batcher import NoModel

DEFAULT_VARIANT = "default"  # a user in no experiment


class FeedRoute(APIRoute):
    """A route whose endpoint takes the Request and returns a Response, called as it is.

    FastAPI's request handler would solve the endpoint's dependencies (it has none), parse
    the query string (the endpoint validates it, `feed_query`), look for a body and take
    the endpoint's context for error messages, on every request: about a twentieth of the
    feed's CPU time under load (bench/serve.py). Errors still reach the app's handlers
    (a 422 from `feed_query`, a 503), and the OpenAPI description is the route's as declared.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        if self.dependant.dependencies or self.body_field is not None:
            raise TypeError(f"{self.path}: a FeedRoute endpoint takes only the Request")
        endpoint: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return endpoint


router = APIRouter(prefix="/v1", tags=["feed"], route_class=FeedRoute)


class FeedQuery(BaseModel):
    """The feed's query parameters."""

    model_config = ConfigDict(extra="ignore")

    user_id: str = Field(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH, examples=["u00042"])
    n: int | None = Field(
        None, ge=1, le=100, description="Videos wanted (default: the surface's page size, else "
        "RECSVC_FEED_DEFAULT_N, 20).",
    )  # fmt: skip
    surface: str = Field(
        DEFAULT_SURFACE, pattern=SURFACE_NAME, description="Where the app shows the page "
        "(RECSVC_SURFACES): its page size, whether and which product cards it carries.",
        examples=["home"],
    )  # fmt: skip
    context: str | None = Field(
        None, pattern=ID_PATTERN, max_length=MAX_ID_LENGTH, description="A catalogue video or "
        "product: the page is related to it (its vector blended with the user's); the video "
        "itself is not on the page.", examples=["v0123"],
    )  # fmt: skip
    exclude: str | None = Field(
        None, max_length=MAX_EXCLUDED * (MAX_ID_LENGTH + 1), description=f"Ids of videos or "
        f"products to leave off the page, separated by commas (at most {MAX_EXCLUDED}).",
        examples=["v0001,p07"],
    )  # fmt: skip
    page_token: str | None = Field(
        None, max_length=MAX_TOKEN_LENGTH, description="The previous page's `next_page_token`: "
        "the next page of the same session (user, surface and context), repeating no video "
        "its earlier pages showed.",
    )  # fmt: skip


# Declared for the OpenAPI description; validated by FeedQuery in the route (see below).
QUERY_PARAMETERS = [
    {
        "name": name,
        "in": "query",
        "required": name in FeedQuery.model_json_schema().get("required", []),
        "schema": schema,
    }
    for name, schema in FeedQuery.model_json_schema()["properties"].items()
]


def feed_query(request: Request) -> FeedQuery:
    """Validate the query string; errors are FastAPI's usual 422 with loc ["query", field].

    Done by hand rather than as declared parameters: FastAPI's parameter machinery was a
    tenth of the feed's CPU time under load (bench/serve.py).
    """
    return validated_query(dict(query_pairs(request.scope["query_string"].decode("latin-1"))))


def validated_query(values: dict[str, Any]) -> FeedQuery:
    """The feed's parameters validated; a problem is a 422 naming its parameter."""
    try:
        return FeedQuery.model_validate(values)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in errors]
        ) from None


def invalid(field: str, message: str, value: str | None) -> RequestValidationError:
    """A 422 in FastAPI's shape, naming the query parameter."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}]
    )


def placement_of(query: FeedQuery, runtime: Runtime) -> Placement:
    """The request's surface, context and hidden items; a 422 naming what is wrong."""
    surface = runtime.surfaces.get(query.surface)
    if surface is None:
        known = surface_names(runtime.surfaces)
        raise invalid(
            "surface", f"no surface {query.surface!r} (configured: {known})", query.surface
        )
    if query.context is None and query.exclude is None and query.page_token is None:
        return PLAIN if surface is HOME else Placement(surface)
    hidden_videos: set[str] = set()
    hidden_products: frozenset[str] = frozenset()
    if query.context is not None:
        catalog = runtime.serving.snapshot.catalog
        if query.context not in catalog.videos and query.context not in catalog.products:
            raise invalid(
                "context", f"no video or product {query.context!r} in the catalogue", query.context
            )
        hidden_videos.add(query.context)
    if query.exclude is not None:
        try:
            excluded = split_ids(query.exclude)
        except ValueError as exc:
            raise invalid("exclude", str(exc), None) from None
        hidden_videos |= excluded
        hidden_products = excluded
    shown: tuple[str, ...] = ()
    if query.page_token is not None:
        try:
            shown = read_page_token(query.page_token, query.user_id, surface.name, query.context)
        except PageTokenError as exc:
            raise invalid("page_token", str(exc), None) from None
        hidden_videos.update(shown)
    return Placement(surface, query.context, frozenset(hidden_videos), hidden_products, shown)


def query_pairs(raw: str) -> list[tuple[str, str]]:
    """`parse_qsl(raw, keep_blank_values=True)`; split by hand where nothing is escaped (no
    `%`, no `+`), as nearly every query is: a third of the time."""
    if "%" in raw or "+" in raw:
        return parse_qsl(raw, keep_blank_values=True)
    return [(name, value) for name, _, value in (p.partition("=") for p in raw.split("&") if p)]


@router.get(
    "/feed",
    response_model=FeedResponse,
    responses={
        422: {
            "description": "A malformed query, an unknown surface or context item, or a page "
            "token of another session: `loc` names the parameter."
        },
        503: {"description": "No model loaded yet (start-up); retry after Retry-After."},
    },
    openapi_extra={"parameters": QUERY_PARAMETERS},
)
async def get_feed(request: Request) -> Response:
    """The user's feed on a surface. `degraded` is true when Redis could not be reached: then
    the feed is global popularity and carries no product (holdings and caps cannot be
    checked). `next_page_token` asks for the session's next page."""
    # The runtime straight from the app (not a Depends) and the body rendered by orjson:
    # this is the hot path, and both were measured (see bench/serve.py).
    runtime: Runtime = request.app.state.runtime
    query = feed_query(request)
    user_id = query.user_id
    placement = placement_of(query, runtime)
    size = query.n or placement.surface.page_size or runtime.settings.feed_default_n
    try:
        served = await runtime.batcher.feed(user_id, size, placement)
    except NoModel as exc:
        raise unavailable(str(exc), runtime.settings.poll_seconds) from None
    feed = served.feed  # (its metrics are counted by the batcher, once per batch)
    body = {
        "request_id": served.request_id,
        "user_id": user_id,
        "model_version": served.model.version,
        "variant": ",".join(a.label for a in served.assignments) or DEFAULT_VARIANT,
        "experiments": [
            {"experiment": a.experiment, "variant": a.variant} for a in served.assignments
        ],
        "source": feed.source.value,
        "degraded": served.degraded,
        "surface": placement.surface.name,
        "context": placement.context,
        "items": feed.items,
        "next_page_token": page_token(
            user_id,
            placement.surface.name,
            placement.context,
            (*placement.shown, *(item["video_id"] for item in feed.items)),
        ),
    }
    return Response(orjson.dumps(body), media_type="application/json")
