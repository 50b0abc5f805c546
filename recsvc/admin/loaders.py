"""Bulk loads for upstream data: catalogue records (JSON lines) and user profiles (CSV).

Used by `recsvc catalog load` and `recsvc profiles load` (the demo loads a synthetic world's
catalogue and users this way). A bad line is an error naming the file, the line and the field;
nothing is written unless every line is good.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.domain import ID_PATTERN
from recsvc.contract.keys import Keys
from recsvc.contract.records import Profile
from recsvc.store.client import AsyncClient, transaction
from recsvc.store.gateway import new_revision
from recsvc.store.users import queue_profile

Record = TypeVar("Record", bound=BaseModel)
CHUNK = 1000


class LoadError(ValueError):
    """A line that cannot be loaded; the message names the file, line and field."""


def read_jsonl(path: Path, model: type[Record]) -> list[Record]:
    records = []
    with path.open() as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(model.model_validate(json.loads(line)))
            except json.JSONDecodeError as exc:
                raise LoadError(f"{path}:{line_no}: not JSON ({exc.msg})") from None
            except ValidationError as exc:
                raise LoadError(f"{path}:{line_no}: {_first_error(exc)}") from None
    return records


def read_profiles_csv(path: Path) -> list[tuple[str, Profile]]:
    """Columns user_id, risk_tolerance, segment, lifecycle, holdings ('|'-joined); empty
    cells are unknown."""
    profiles = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if "user_id" not in (reader.fieldnames or []):
            raise LoadError(f"{path}:1: no user_id column")
        for line_no, row in enumerate(reader, start=2):
            fields = {k: v for k, v in row.items() if k in Profile.model_fields and v}
            fields["holdings"] = [h for h in (row.get("holdings") or "").split("|") if h]
            if not re.match(ID_PATTERN, row["user_id"] or ""):
                raise LoadError(f"{path}:{line_no}: user_id: {row['user_id']!r} is not a valid id")
            try:
                profiles.append((row["user_id"], Profile.model_validate(fields)))
            except ValidationError as exc:
                raise LoadError(f"{path}:{line_no}: {_first_error(exc)}") from None
    return profiles


async def load_catalog(
    client: AsyncClient,
    keys: Keys,
    videos: Iterable[VideoRecord],
    products: Iterable[ProductRecord],
) -> str:
    """Write every record in one transaction with a new revision token; the token."""
    pipe = await transaction(client)
    video_map = {v.video_id: v.model_dump_json() for v in videos}
    product_map = {p.product_id: p.model_dump_json() for p in products}
    if video_map:
        pipe.hset(keys.catalog_videos, mapping=video_map)  # type: ignore[arg-type]
    if product_map:
        pipe.hset(keys.catalog_products, mapping=product_map)  # type: ignore[arg-type]
    revision = new_revision()
    pipe.set(keys.catalog_revision, revision)
    await pipe.execute()
    return revision


async def load_profiles(
    client: AsyncClient,
    keys: Keys,
    profiles: list[tuple[str, Profile]],
    progress: Callable[[int], None] | None = None,
) -> None:
    for start in range(0, len(profiles), CHUNK):
        pipe = client.pipeline(transaction=False)
        chunk = profiles[start : start + CHUNK]
        for user_id, profile in chunk:
            queue_profile(pipe, keys, user_id, profile)
        await pipe.execute()
        if progress:
            progress(len(chunk))


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "record"
    return f"{field}: {error['msg']}"
