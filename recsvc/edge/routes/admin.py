"""Read-only views for operators (the console, recsvc.edge.console, is built on them): the
models the pointers name, with their manifests, and the catalogue as a list (from the
replica's own copy, not Redis: a console typing into its search box must not load Redis).
Admin key."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Query

from recsvc.contract.catalog import ProductRecord, VideoRecord
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


@router.get("/catalog/{kind}")
async def catalog_list(
    kind: CatalogKind,
    runtime: RuntimeDep,
    status: str | None = Query(None, pattern="^(live|retired)$"),
    contains: str | None = Query(None, max_length=100, description="In the id or the title."),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
) -> dict[str, Any]:
    """The records of one kind as this replica serves them (its catalogue, reloaded within a
    poll of every change: no Redis read here), by id, filtered by status or text; `total`
    counts the matches before `offset` and `limit`. An unreadable video counts as retired;
    an unreadable product is not listed (it is never attached)."""
    catalog = runtime.serving.snapshot.catalog
    records: Mapping[str, VideoRecord | ProductRecord] = (
        catalog.videos if kind is CatalogKind.VIDEOS else catalog.products
    )
    needle = (contains or "").lower()
    matches = [
        item
        for item in _sorted_ids(catalog.revision, kind, records)
        if (status is None or records[item].status.value == status)
        and (not needle or needle in f"{item} {_label(records[item])}".lower())
    ]
    page = matches[offset : offset + limit]
    items = [{"id": item, **records[item].model_dump(mode="json")} for item in page]
    return {"total": len(matches), "catalog_revision": catalog.revision, "items": items}


def _label(record: VideoRecord | ProductRecord) -> str:
    return record.title if isinstance(record, VideoRecord) else record.name


_SORTED: dict[tuple[str | None, str], list[str]] = {}  # (revision, kind) -> ids, the last one


def _sorted_ids(revision: str | None, kind: CatalogKind, records: Mapping[str, Any]) -> list[str]:
    """The ids in order, sorted once per catalogue revision (a console pages through them)."""
    key = (revision, kind.value)
    if key not in _SORTED:
        for stale in [k for k in _SORTED if k[1] == kind.value]:
            del _SORTED[stale]
        _SORTED[key] = sorted(records)
    return _SORTED[key]
