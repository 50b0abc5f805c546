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
    n: int | None = Field(None, ge=1, le=100, description="Videos wanted (default 20).")


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
    try:
        query = query_pairs(request.scope["query_string"].decode("latin-1"))
        return FeedQuery.model_validate(dict(query))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in errors]
        ) from None


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
        422: {"description": "A malformed query: `loc` names the parameter."},
        503: {"description": "No model loaded yet (start-up); retry after Retry-After."},
    },
    openapi_extra={"parameters": QUERY_PARAMETERS},
)
async def get_feed(request: Request) -> Response:
    """The user's feed. `degraded` is true when Redis could not be reached: then the feed is
    global popularity and carries no product (holdings and caps cannot be checked)."""
    # The runtime straight from the app (not a Depends) and the body rendered by orjson:
    # this is the hot path, and both were measured (see bench/serve.py).
    runtime: Runtime = request.app.state.runtime
    query = feed_query(request)
    user_id = query.user_id
    try:
        served = await runtime.batcher.feed(user_id, query.n or runtime.settings.feed_default_n)
    except NoModel as exc:
        raise unavailable(str(exc), runtime.settings.poll_seconds) from None
    feed = served.feed  # (its metrics are counted by the batcher, once per batch)
    body = {
        "request_id": served.request_id,
        "user_id": user_id,
        "model_version": served.model.version,
        "variant": ",".join(f"{a.experiment}:{a.variant}" for a in served.assignments)
        or DEFAULT_VARIANT,
        "experiments": [
            {"experiment": a.experiment, "variant": a.variant} for a in served.assignments
        ],
        "source": feed.source.value,
        "degraded": served.degraded,
        "items": feed.items,
    }
    return Response(orjson.dumps(body), media_type="application/json")
