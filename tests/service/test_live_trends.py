"""The trending prior served from live counts: every replica over one Redis turns the counts
of the model's window into the prior as the trainer computed it from events (weight ·
log1p(count) / its maximum), within a refresh of the events; without counts it serves the
prior as exported."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from recsvc.contract.keys import Keys
from recsvc.contract.records import Event
from recsvc.feed.model import ServingModel
from recsvc.service.snapshot import Serving
from recsvc.store.gateway import connect
from recsvc.store.state import FeatureStore
from tests.builders import block_events
from training.data.matrix import ConfidenceWeights, build_interactions
from training.data.splits import Dataset
from training.models.factors import FitParams, fit
from training.models.pipeline import export_trained


def model_with_prior(models_dir: Path, weight: float = 3.0) -> Path:
    events = block_events(groups=3, users_per_group=20, videos_per_group=10)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    params = FitParams(factors=6, iterations=5, trending_hours=24, trending_weight=weight)
    factors = fit(dataset.interactions.confidence, params, threads=1)
    data = {"window": {"first_event": "", "last_event": ""}}
    return export_trained(models_dir, factors, dataset, data, {})


def views(video: str, users: int, first: int = 0) -> list[Event]:
    now = datetime.now(UTC).isoformat()
    return [
        Event.model_validate(
            {
                "event_id": f"e-{video}-{first + u}",
                "ts": now,
                "user_id": f"u-{first + u}",
                "item_id": video,
                "item_type": "video",
                "action": "view",
            }
        )
        for u in range(users)
    ]


def test_every_replica_and_a_restarted_one_serve_the_prior_of_the_live_counts(
    redis_url: str, tmp_path: Path
) -> None:
    model_dir = model_with_prior(tmp_path)
    exported = ServingModel.load(model_dir, None)
    videos = exported.ranking.manifest.video_ids
    assert exported.trending_hours == 24 and exported.trending is not None
    quiet, hot = videos[-1], videos[0]

    async def main() -> list[np.ndarray | None]:
        client = connect(redis_url, 1000)
        store = FeatureStore(client, Keys())
        # counts kept for two days: a day-long window is covered once its hours are read
        await client.set(Keys().trend_since, int(time.time() // 3600) - 48)
        replicas = [Serving(store, tmp_path), Serving(store, tmp_path)]
        try:
            for replica in replicas:
                assert await replica.load_version(model_dir.name, None)
                await replica.refresh_trends()  # no counts yet: the prior as exported
                model = replica.snapshot.model
                assert model is not None and model.trending is not None
                np.testing.assert_array_equal(model.trending, exported.trending)
            batch = views(quiet, 9) + views(hot, 3, first=100)
            await store.ingest(batch, 10_000, 3600, 10, videos=set(videos))
            for replica in replicas:
                for _ in range(2):  # the hours read, then the counts applied
                    replica.trends._refreshed = float("-inf")  # due now, not in 5 s
                    await replica.refresh_trends()
            # a replica started afterwards (a restart) reads the same counts from Redis
            restarted = Serving(store, tmp_path)
            assert await restarted.load_version(model_dir.name, None)
            for _ in range(2):
                restarted.trends._refreshed = float("-inf")
                await restarted.refresh_trends()
            replicas.append(restarted)
            return [r.snapshot.model.trending for r in replicas if r.snapshot.model]
        finally:
            await client.aclose()

    first, second, restarted = asyncio.run(main())
    assert first is not None and second is not None and restarted is not None
    np.testing.assert_array_equal(first, second)  # every replica ranks with the same prior
    np.testing.assert_array_equal(first, restarted)  # the counts outlive a replica
    want = np.zeros(len(videos))
    want[videos.index(quiet)] = 3.0  # the top video of the window: the whole weight
    want[videos.index(hot)] = 3.0 * np.log1p(3) / np.log1p(9)
    np.testing.assert_allclose(first, want, rtol=1e-6)


def test_counts_of_no_video_of_the_model_leave_the_exported_prior(tmp_path: Path) -> None:
    model = ServingModel.load(model_with_prior(tmp_path), None)
    live = model.with_live_trending({"not-in-the-model": 40}, revision=1)
    assert live.trend_revision == 1 and live.trending is model.exported_trending


def test_counts_kept_for_less_than_the_window_leave_the_exported_prior(
    redis_url: str, tmp_path: Path
) -> None:
    model_dir = model_with_prior(tmp_path)
    exported = ServingModel.load(model_dir, None)
    videos = exported.ranking.manifest.video_ids

    async def main() -> ServingModel | None:
        client = connect(redis_url, 1000)
        store = FeatureStore(client, Keys())
        replica = Serving(store, tmp_path)
        try:
            assert await replica.load_version(model_dir.name, None)
            # a new Redis: the first read sets the counts' start to this hour
            await store.ingest(views(videos[-1], 9), 10_000, 3600, 10, videos=set(videos))
            for _ in range(3):
                replica.trends._refreshed = float("-inf")
                await replica.refresh_trends()
            assert replica.trends.since == int(time.time() // 3600)
            return replica.snapshot.model
        finally:
            await client.aclose()

    model = asyncio.run(main())
    assert model is not None and model.trend_revision >= 0
    assert model.trending is not None and exported.trending is not None
    np.testing.assert_array_equal(model.trending, exported.trending)
