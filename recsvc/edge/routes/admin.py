"""Read-only views for operators (the console, recsvc.edge.console, is built on them): the
models the pointers name, with their manifests, and the catalogue as a list. Admin key."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Query

from recsvc.contract.manifest import ArtifactError, read_manifest
from recsvc.edge.deps import Runtime, RuntimeDep, unavailable
from recsvc.store.control import Pointer
from recsvc.store.gateway import RedisUnavailable

router = APIRouter(prefix="/v1/admin", tags=["operators"])
REDIS_DOWN: dict[int | str, dict[str, Any]] = {503: {"description": "Redis unreachable."}}
MAX_PAGE = 1000


class CatalogKind(StrEnum):
    VIDEOS = "videos"
    PRODUCTS = "products"


@router.get("/models", responses=REDIS_DOWN)
async def models(runtime: RuntimeDep) -> dict[str, Any]:
    """The current model and the challenger as the pointers in Redis name them, each with
    its manifest on this replica's disk (when, on what window, with which parameters and
    offline metrics), and what this replica serves."""
    try:
        poll = await runtime.store.poll()
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    current, challenger = await asyncio.gather(
        asyncio.to_thread(_described, runtime, poll.pointer),
        asyncio.to_thread(_described, runtime, poll.challenger),
    )
    return {"current": current, "challenger": challenger, "serving": runtime.serving.status()}


def _described(runtime: Runtime, pointer: Pointer | None) -> dict[str, Any] | None:
    if pointer is None:
        return None
    described: dict[str, Any] = {"version": pointer.version, "generation": pointer.generation}
    try:
        manifest = read_manifest(runtime.settings.models_dir / pointer.version)
    except ArtifactError as exc:
        return {**described, "problem": str(exc)}
    return {
        **described,
        "created_at": manifest.created_at,
        "dimension": manifest.dimension,
        "videos": len(manifest.video_ids),
        "products": len(manifest.product_ids),
        "data_window": manifest.data_window,
        "metrics": manifest.metrics,
        "params": manifest.params,
    }


@router.get("/catalog/{kind}", responses=REDIS_DOWN)
async def catalog_list(
    kind: CatalogKind,
    runtime: RuntimeDep,
    status: str | None = Query(None, pattern="^(live|retired)$"),
    contains: str | None = Query(None, max_length=100, description="In the id or the title."),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    """The stored records of one kind, by id, filtered by status or text; `total` counts
    the matches before `offset` and `limit`."""
    try:
        _, videos, products = await runtime.store.catalog_records()
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    raw = videos if kind is CatalogKind.VIDEOS else products
    records = [_record(item, value) for item, value in sorted(raw.items())]
    needle = (contains or "").lower()
    matches = [
        r
        for r in records
        if (status is None or r["status"] == status)
        and (not needle or needle in f"{r['id']} {r.get('title') or r.get('name') or ''}".lower())
    ]
    return {"total": len(matches), "items": matches[offset : offset + limit]}


def _record(item: bytes, value: bytes) -> dict[str, Any]:
    """A stored record with its id under `id`; one that cannot be read counts as retired
    (as the serving catalogue reads it) and says so."""
    try:
        record = json.loads(value)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return {"id": item.decode(), "status": "retired", "problem": "unreadable record"}
    return {**record, "id": item.decode(), "status": record.get("status") or "live"}
