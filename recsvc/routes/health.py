"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from recsvc.deps import RuntimeDep
from recsvc.store import RedisUnavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (nothing else is checked)."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the body says why."}})
async def readyz(runtime: RuntimeDep) -> Any:
    """Ready when a model and a catalogue are loaded (feeds can be served) and Redis answers."""
    problems = []
    snapshot = runtime.serving.snapshot
    if snapshot.model is None:
        problems.append("no model loaded")
    if snapshot.catalog.revision is None:
        problems.append("no catalogue loaded (feeds are refused until one is)")
    try:
        await runtime.store.ping()
    except RedisUnavailable as exc:
        problems.append(str(exc))
    body = {"ready": not problems, "problems": problems, **runtime.serving.status()}
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
