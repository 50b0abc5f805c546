"""Catalogue endpoints for upstream systems: product and video records and their status.

Every write bumps the catalogue revision; each replica picks the change up on its next poll
(every RECSVC_POLL_SECONDS), so a retired product stops being served everywhere within
seconds, without retraining.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path
from fastapi.exceptions import RequestValidationError

from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.domain import ID_PATTERN, MAX_ID_LENGTH, ItemStatus
from recsvc.edge.deps import Runtime, RuntimeDep, unavailable
from recsvc.edge.schemas import CatalogBulk, CatalogWritten, StatusUpdate
from recsvc.store.catalog import CatalogWrite
from recsvc.store.gateway import RedisUnavailable

router = APIRouter(prefix="/v1/catalog", tags=["catalogue"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such record."}}
REDIS_DOWN: dict[int | str, dict[str, Any]] = {503: {"description": "Redis unreachable."}}
ItemId = Annotated[str, Path(pattern=ID_PATTERN, max_length=MAX_ID_LENGTH)]
Record = TypeVar("Record", ProductRecord, VideoRecord)


class Kind(StrEnum):
    VIDEOS = "videos"
    PRODUCTS = "products"


def _hash(runtime: Runtime, kind: Kind) -> str:
    keys = runtime.store.keys
    return keys.catalog_videos if kind is Kind.VIDEOS else keys.catalog_products


async def _put(runtime: Runtime, kind: Kind, item_id: str, record: Record) -> Record:
    """Store the record; as stored. A PUT without `status` keeps the stored one (renaming a
    retired item must not revive it; a new record without status is live), read and written
    in one atomic step: a status PUT meanwhile is never undone."""
    keep_status = "status" not in record.model_fields_set
    try:
        stored = await runtime.store.put_catalog_record(
            _hash(runtime, kind), item_id, record.model_dump(mode="json"), keep_status
        )
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    return record.model_copy(update={"status": ItemStatus(stored["status"])})


def _check_id(path_id: str, body_id: str, field: str) -> None:
    """A 422 shaped like every other validation error: `loc` names the body's field."""
    if path_id != body_id:
        message = f"the id in the path ({path_id}) differs from the body's ({body_id})"
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("body", field), "msg": message, "input": body_id}]
        )


@router.put("/products/{product_id}", responses=REDIS_DOWN)
async def put_product(
    product_id: ItemId, record: ProductRecord, runtime: RuntimeDep
) -> ProductRecord:
    """Create or replace a product record."""
    _check_id(product_id, record.product_id, "product_id")
    return await _put(runtime, Kind.PRODUCTS, product_id, record)


@router.put("/videos/{video_id}", responses=REDIS_DOWN)
async def put_video(video_id: ItemId, record: VideoRecord, runtime: RuntimeDep) -> VideoRecord:
    """Create or replace a video record."""
    _check_id(video_id, record.video_id, "video_id")
    return await _put(runtime, Kind.VIDEOS, video_id, record)


@router.post("/bulk", responses=REDIS_DOWN)
async def put_records(bulk: CatalogBulk, runtime: RuntimeDep) -> CatalogWritten:
    """Create or replace many records at once (at most 1,000 of each kind): every record is
    validated first and a bad one is a 422 naming its list, index and field (every problem
    at once); then all are written in one atomic step with one new revision, or none. As with
    a single PUT, a record without `status` keeps the stored record's."""
    records: list[VideoRecord | ProductRecord] = [*bulk.videos, *bulk.products]
    writes = [
        CatalogWrite(
            _hash(runtime, Kind.VIDEOS if isinstance(r, VideoRecord) else Kind.PRODUCTS),
            r.video_id if isinstance(r, VideoRecord) else r.product_id,
            r.model_dump(mode="json"),
            keep_status="status" not in r.model_fields_set,
        )
        for r in records
    ]
    try:
        stored = await runtime.store.put_catalog_records(writes)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    kept = sum(
        w.keep_status and s["status"] == ItemStatus.RETIRED.value
        for w, s in zip(writes, stored, strict=True)
    )
    return CatalogWritten(videos=len(bulk.videos), products=len(bulk.products), kept_retired=kept)


async def _get(runtime: Runtime, kind: Kind, item_id: str) -> dict[str, Any]:
    try:
        record = await runtime.store.get_catalog_record(_hash(runtime, kind), item_id)
    except RedisUnavailable as exc:
        raise unavailable(str(exc), runtime.settings.redis_retry_seconds) from None
    if record is None:
        raise HTTPException(404, f"no {kind.value[:-1]} {item_id} in the catalogue")
    return record


async def _set_status(
    runtime: Runtime, kind: Kind, item_id: str, update: StatusUpdate
) -> dict[str, Any]:
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


# One route per kind (not /{kind}/...): templates that overlap would make one URL two
# resources in the schema.
@router.get("/products/{product_id}", responses={**NOT_FOUND, **REDIS_DOWN})
async def get_product(product_id: ItemId, runtime: RuntimeDep) -> dict[str, Any]:
    """The stored record of a product."""
    return await _get(runtime, Kind.PRODUCTS, product_id)


@router.get("/videos/{video_id}", responses={**NOT_FOUND, **REDIS_DOWN})
async def get_video(video_id: ItemId, runtime: RuntimeDep) -> dict[str, Any]:
    """The stored record of a video."""
    return await _get(runtime, Kind.VIDEOS, video_id)


@router.put("/products/{product_id}/status", responses={**NOT_FOUND, **REDIS_DOWN})
async def put_product_status(
    product_id: ItemId, update: StatusUpdate, runtime: RuntimeDep
) -> dict[str, Any]:
    """Retire (or revive) a product; it must have a record (PUT /v1/catalog/products/{id})."""
    return await _set_status(runtime, Kind.PRODUCTS, product_id, update)


@router.put("/videos/{video_id}/status", responses=REDIS_DOWN)
async def put_video_status(
    video_id: ItemId, update: StatusUpdate, runtime: RuntimeDep
) -> dict[str, Any]:
    """Retire (or revive) a video; one without a record gets a minimal one."""
    return await _set_status(runtime, Kind.VIDEOS, video_id, update)


@router.get("/videos/{video_id}/serving", responses=NOT_FOUND)
async def get_video_serving(video_id: ItemId, runtime: RuntimeDep) -> dict[str, Any]:
    """How this replica ranks a video now: by the model's own vector (`model`), or, for a
    video published since the model was trained, by the vector its metadata places it at
    (`metadata`) until `viewers` of its first viewers moved it (`collaborative`). 404 for a
    video this replica's model and catalogue do not rank (unknown, retired, or no model or
    catalogue loaded yet)."""
    snapshot = runtime.serving.snapshot
    model, rules = snapshot.model, snapshot.rules
    retired = snapshot.catalog.retired_videos()
    if model is None or rules is None or video_id in retired:
        raise HTTPException(404, f"video {video_id} is not ranked by this replica")
    vector, viewers = "model", None
    if video_id in rules.fresh.position:
        viewers = rules.fresh.viewers[rules.fresh.position[video_id]]
        vector = "collaborative" if viewers else "metadata"
    elif video_id not in rules.video_position:
        raise HTTPException(404, f"video {video_id} is not ranked by this replica")
    return {
        "video_id": video_id,
        "model_version": model.version,
        "vector": vector,
        "viewers": viewers,
    }
