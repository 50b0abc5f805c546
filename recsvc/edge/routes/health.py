"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from recsvc.edge.deps import RuntimeDep
from recsvc.store.gateway import RedisUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the body says why."}})
async def readyz(runtime: RuntimeDep) -> Any:
    """Ready when feeds can be served: a model and a catalogue loaded. Redis down is a problem
    only with RECSVC_READY_WITHOUT_REDIS=false (by default the replica stays in the load
    balancer and serves degraded feeds); a Redis that can lose data only with
    RECSVC_REQUIRE_DURABLE_REDIS=true. Otherwise both are `warnings`, as is a model an
    experiment names that this replica cannot serve."""
    settings = runtime.settings
    problems: list[str] = []
    warnings: list[str] = []
    snapshot = runtime.serving.snapshot
    if snapshot.model is None:
        problems.append("no model loaded")
    if snapshot.catalog.revision is None:
        problems.append("no catalogue loaded (feeds are refused until one is)")
    redis_down = False
    try:
        await runtime.store.ping()
    except RedisUnavailable as exc:
        redis_down = True
        message = f"{exc}; feeds are served degraded"
        (warnings if settings.ready_without_redis else problems).append(message)
    if runtime.durability is not None and runtime.durability.problems:
        at_risk = list(runtime.durability.problems)
        (problems if settings.require_durable_redis else warnings).extend(at_risk)
    status = runtime.serving.status()
    for missing in status.get("missing_models", []):
        warnings.append(f"experiment model {missing} is not served (its variant gets the current)")
    body = {
        "ready": not problems,
        "problems": problems,
        "warnings": warnings,
        "redis_available": not redis_down,
        **status,
    }
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    model = runtime.serving.snapshot.model
    if model is not None:
        runtime.metrics.model_created.set(_unix_time(model.ranking.manifest.created_at))
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _unix_time(iso: str) -> float:
    """A manifest's created_at as Unix time; 0 when it cannot be read (the alert then fires)."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
