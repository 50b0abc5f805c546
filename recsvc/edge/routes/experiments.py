"""PUT/GET /v1/admin/experiments: the experiments every replica serves (TOML, see
recsvc.contract.experiments). A definition is validated as a whole before it is stored; a bad one is
a 422 naming every problem (a pinned model version must be on disk and have its user vectors
in Redis), and the stored one keeps serving. Replicas pick a new one up on their next poll."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from recsvc.contract.experiments import ExperimentError
from recsvc.edge.deps import Runtime, RuntimeDep, unavailable
from recsvc.store.gateway import RedisUnavailable

router = APIRouter(prefix="/v1/admin", tags=["experiments"])
MAX_DEFINITION_BYTES = 256 * 1024
TOML_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/toml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


@router.put(
    "/experiments",
    openapi_extra=TOML_BODY,
    responses={
        422: {"description": "The definition cannot serve: every problem is named."},
        503: {"description": "Redis unreachable."},
    },
)
async def put_experiments(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Replace the experiments' definition (a TOML document as the body)."""
    text, names = await _validated(request, runtime)
    try:
        revision = await runtime.store.put_experiments(text)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return {"revision": revision, "experiments": names}


@router.post(
    "/experiments/validate",
    openapi_extra=TOML_BODY,
    responses={
        422: {"description": "The definition cannot serve: every problem is named."},
        503: {"description": "Redis unreachable."},
    },
)
async def validate_experiments(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Check a definition as PUT does, without storing it (the console's Validate)."""
    _, names = await _validated(request, runtime)
    return {"valid": True, "experiments": names}


async def _validated(request: Request, runtime: Runtime) -> tuple[str, list[str]]:
    """The body's definition, validated as one this replica can serve; its experiments' names.
    422 naming every problem, 503 when Redis cannot say whether pinned versions are published."""
    text = await definition_text(request)
    try:
        experiments = await runtime.serving.validate_experiments(text)
    except ExperimentError as exc:
        raise HTTPException(422, str(exc)) from None
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return text, [e.name for e in experiments.experiments]


async def definition_text(request: Request, what: str = "experiment") -> str:
    """The body as a definition's text: at most MAX_DEFINITION_BYTES of UTF-8, not empty."""
    body = await request.body()
    if len(body) > MAX_DEFINITION_BYTES:
        raise HTTPException(413, f"a definition is at most {MAX_DEFINITION_BYTES} bytes")
    if not body:  # a lost body must not stop every experiment; a comment alone does that
        raise HTTPException(422, f"no definition in the body (to end every {what}, send '# none')")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "the definition is not UTF-8 text") from None


@router.get("/experiments", responses={503: {"description": "Redis unreachable."}})
async def get_experiments(runtime: RuntimeDep) -> dict[str, Any]:
    """The stored definition, and what this replica serves."""
    try:
        revision, text = await runtime.store.experiments()
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    snapshot = runtime.serving.snapshot
    return {
        "revision": revision,
        "definition": text,
        "serving_revision": snapshot.experiments_revision,
        "refused_revision": next(iter(runtime.serving.refused_experiments), None),
        "serving": snapshot.experiments.as_dict(),
    }
