"""Through the real service and a real Redis: views of a video count at once, and within
seconds every feed of a model with a trending prior ranks with the new counts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import redis

from recsvc.contract.keys import Keys
from tests.http.builders import (
    PLANTED_VERSION,
    event_body,
    eventually,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)
from tests.http.cards import feed, videos
from tests.http.planted import write_planted_model


def gauge(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, flags=re.MULTILINE)
    return float(found.group(1)) if found else -1.0


def planted_with_prior(redis_url: str, tmp_path: Path, counted_hours: int = 0) -> Path:
    """The planted model with a day-long trending prior (weight 10, 0 everywhere as exported)
    published, its catalogue loaded, and the counts kept for `counted_hours` (0: a new Redis,
    the first read starts them)."""
    models_dir = tmp_path / "models"
    write_planted_model(models_dir, PLANTED_VERSION, trending_weight=10.0)
    publish_model(redis_url, models_dir / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    if counted_hours:
        with redis.Redis.from_url(redis_url) as client:
            client.set(Keys().trend_since, int(time.time() // 3600) - counted_hours)
    return models_dir


def test_views_of_a_video_lift_it_in_every_feed_within_seconds(
    redis_url: str, tmp_path: Path
) -> None:
    # counts kept for two days: the model's day-long window is covered once its hours are read
    models_dir = planted_with_prior(redis_url, tmp_path, counted_hours=48)
    with serving(service_settings(redis_url, models_dir)) as client:
        # the exported prior is 0 everywhere: the insurance user gets insurance first
        assert videos(feed(client, "u-ins"))[:3] == ["v00", "v01", "v02"]
        posted = [event_body(f"viewer-{i}", "v32", "view") for i in range(5)]
        response = client.post("/v1/events", json={"events": posted})
        assert response.status_code == 202 and response.json()["accepted"] == 5
        # v32 (credit) is now the top video of the last 24 hours: at weight 10 it outweighs
        # the user's own scores (spread about 0.4)
        assert eventually(lambda: videos(feed(client, "u-ins"))[0] == "v32", timeout=15)
        assert videos(feed(client, "u-save"))[0] == "v32"  # every user with a vector
        assert eventually(lambda: gauge(client, "recsvc_trending_prior_live") == 1)


def test_the_replica_reports_when_it_read_the_counts_and_whether_the_prior_is_live(
    redis_url: str, tmp_path: Path
) -> None:
    models_dir = planted_with_prior(redis_url, tmp_path)
    with serving(service_settings(redis_url, models_dir)) as client:
        # a new Redis: counts kept from now on cover no day-long window yet
        read = "recsvc_trending_counts_read_timestamp_seconds"
        assert eventually(lambda: gauge(client, read) > 0)
        response = client.post("/v1/events", json={"events": [event_body("a", "v32", "view")]})
        assert response.status_code == 202
        assert gauge(client, "recsvc_trending_prior_live") == 0
        assert time.time() - gauge(client, read) < 60
