"""A replica learning fresh videos' vectors from their first viewers (recsvc.service.fresh,
recsvc.service.snapshot), on a real private Redis: every video gets its turn however many
others keep changing, and a model swapped out and back gets its learned vectors again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from recsvc.admin.loaders import load_catalog
from recsvc.contract.catalog import ProductRecord, VideoRecord
from recsvc.contract.keys import Keys
from recsvc.service import fresh as fresh_module
from recsvc.service.snapshot import Serving
from recsvc.store.gateway import connect
from recsvc.store.state import FeatureStore
from tests.http import planted
from tests.http.builders import PLANTED_VERSION, publish_model, run

NEW = ("v-new-a", "v-new-b", "v-new-c")
VIEWERS = ("u-save", "u-inv", "u-credit")  # published users of the planted model


def load_catalog_with(url: str, extra: list[VideoRecord]) -> None:
    """The planted catalogue and these videos the model does not know."""

    async def work() -> None:
        client = aioredis.Redis.from_url(url)
        try:
            videos = [VideoRecord.model_validate(r) for r in planted.video_records()] + extra
            products = [ProductRecord.model_validate(r) for r in planted.product_records()]
            await load_catalog(client, Keys(), videos, products)
        finally:
            await client.aclose()

    run(work())


def views_of(video: str, round_: int = 0) -> dict[str, dict[str, str]]:
    return {video: {f"{u}|e{round_}": f"{u}|view|1.0" for u in VIEWERS}}


async def learning_replica(url: str, models: Path) -> tuple[Serving, FeatureStore]:
    store = FeatureStore(connect(url, 1000), Keys())
    serving = Serving(store, models)
    serving.fresh.interval = 0.0  # a learning round at every refresh
    await serving.start()
    return serving, store


def viewers(serving: Serving) -> dict[str, int]:
    rules = serving.snapshot.rules
    assert rules is not None
    return dict(zip(rules.fresh.ids, rules.fresh.viewers, strict=True))


def test_every_fresh_video_gets_its_turn_and_a_model_swapped_back_keeps_them(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fresh_module, "MAX_SOLVED_PER_REFRESH", 1)
    models = tmp_path / "models"
    planted.write_planted_model(models, PLANTED_VERSION)
    generation = publish_model(redis_url, models / PLANTED_VERSION).generation
    load_catalog_with(redis_url, [VideoRecord(video_id=v, topics=["credit"]) for v in NEW])

    async def scenario() -> None:
        serving, store = await learning_replica(redis_url, models)
        try:
            for video in NEW:
                await store.record_fresh_views(views_of(video))
            # one video solved a round; the newest keeps changing, the others still get theirs
            for round_ in range(1, 4):
                await store.record_fresh_views(views_of(NEW[0], round_))
                await serving.refresh()
            assert viewers(serving) == {v: 3 for v in NEW}
            await serving.refresh()  # the newest's last events read: nothing left to solve
            # the model swapped out and back (a publish and a quick rollback): the learned
            # vectors come back without a new event
            assert await serving.load_version(PLANTED_VERSION, generation)
            assert set(viewers(serving).values()) == {0}
            await serving.refresh()
            assert viewers(serving) == {v: 3 for v in NEW}
        finally:
            await store.client.aclose()

    asyncio.run(scenario())
