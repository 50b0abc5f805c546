"""Catalogue endpoints for upstream systems: product and video records and their status.

Every write bumps the catalogue revision; each replica picks the change up on its next poll
(every RECSVC_POLL_SECONDS), so a retired product stops being served everywhere within
seconds, without retraining.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path

from recsvc.catalog import ProductRecord, VideoRecord
from recsvc.deps import Runtime, RuntimeDep, unavailable
from recsvc.domain import ID_PATTERN, MAX_ID_LENGTH, ItemStatus
from recsvc.schemas import StatusUpdate
from recsvc.store import RedisUnavailable

router = APIRouter(prefix="/v1/catalog", tags=["catalogue"])
ItemId = Annotated[str, Path(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]


class Kind(StrEnum):
    VIDEOS = "videos"
    PRODUCTS = "products"


def _hash(runtime: Runtime, kind: Kind) -> str:
    keys = runtime.store.keys
    return keys.catalog_videos if kind is Kind.VIDEOS else keys.catalog_products


async def _put(runtime: Runtime, kind: Kind, item_id: str, record: dict[str, Any]) -> None:
    try:
        await runtime.store.put_catalog_record(_hash(runtime, kind), item_id, record)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None


def _check_id(path_id: str, body_id: str) -> None:
    if path_id != body_id:
        raise HTTPException(
            422, f"the id in the path ({path_id}) differs from the body's ({body_id})"
        )


async def _keep_status(runtime: Runtime, kind: Kind, item_id: str, record: Any) -> Any:
    """A PUT without `status` keeps the stored one: renaming a retired item must not revive
    it. (A new record without status is live.)"""
    if "status" in record.model_fields_set:
        return record
    try:
        stored = await runtime.store.get_catalog_record(_hash(runtime, kind), item_id)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    if stored is None or "status" not in stored:
        return record
    return record.model_copy(update={"status": ItemStatus(stored["status"])})


@router.put("/products/{product_id}")
async def put_product(
    product_id: ItemId, record: ProductRecord, runtime: RuntimeDep
) -> ProductRecord:
    """Create or replace a product record."""
    _check_id(product_id, record.product_id)
    record = await _keep_status(runtime, Kind.PRODUCTS, product_id, record)
    await _put(runtime, Kind.PRODUCTS, product_id, record.model_dump(mode="json"))
    return record


@router.put("/videos/{video_id}")
async def put_video(video_id: ItemId, record: VideoRecord, runtime: RuntimeDep) -> VideoRecord:
    """Create or replace a video record."""
    _check_id(video_id, record.video_id)
    record = await _keep_status(runtime, Kind.VIDEOS, video_id, record)
    await _put(runtime, Kind.VIDEOS, video_id, record.model_dump(mode="json"))
    return record


@router.get("/{kind}/{item_id}")
async def get_item(kind: Kind, item_id: ItemId, runtime: RuntimeDep) -> dict[str, Any]:
    """The stored record of a video or product."""
    try:
        record = await runtime.store.get_catalog_record(_hash(runtime, kind), item_id)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    if record is None:
        raise HTTPException(404, f"no {kind.value[:-1]} {item_id} in the catalogue")
    return record


@router.put("/{kind}/{item_id}/status")
async def put_status(
    kind: Kind, item_id: ItemId, update: StatusUpdate, runtime: RuntimeDep
) -> dict[str, Any]:
    """Retire (or revive) a video or product. A video without a record gets a minimal one;
    a product must have a record (PUT /v1/catalog/products/{id}) first."""
    minimal = {"video_id": item_id} if kind is Kind.VIDEOS else None
    try:
        record = await runtime.store.set_catalog_status(
            _hash(runtime, kind), item_id, update.status, minimal
        )
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    if record is None:
        raise HTTPException(404, f"no product {item_id} in the catalogue")
    return record
