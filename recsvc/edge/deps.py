"""What routes depend on, as typed aliases: `runtime: RuntimeDep` reads as a sentence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from recsvc.feed.placement import HOME, Surface
from recsvc.service.batcher import FeedBatcher
from recsvc.service.metrics import Metrics
from recsvc.service.settings import Settings
from recsvc.service.snapshot import Serving
from recsvc.store.durability import Durability
from recsvc.store.state import FeatureStore


@dataclass
class Runtime:
    """One replica's long-lived parts, built at start-up (see recsvc.edge.app)."""

    settings: Settings
    store: FeatureStore
    serving: Serving
    metrics: Metrics
    batcher: FeedBatcher
    durability: Durability | None = None  # None until Redis has answered once
    surfaces: Mapping[str, Surface] = field(default_factory=lambda: {HOME.name: HOME})


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def unavailable(detail: str, retry_after: float) -> HTTPException:
    """503 with Retry-After (whole seconds, at least 1)."""
    return HTTPException(503, detail, headers={"Retry-After": str(max(1, round(retry_after)))})
