"""Through the real service: with RECSVC_FRESHNESS_WEIGHT a video published now rises in the
feeds of users with a vector, by its topic's half-life; a variant's freshness_weight of 0
turns it off for its users."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.http.builders import eventually
from tests.http.cards import everyone_in_variant, feed, planted_service, videos
from tests.http.planted import TOPICS, VIDEOS


def publish_times(client: httpx.Client, fresh: str, hours_ago: float) -> None:
    """`fresh` published `hours_ago`, every other video a year ago."""
    now = datetime.now(UTC)
    for video in VIDEOS:
        age = timedelta(hours=hours_ago) if video == fresh else timedelta(days=365)
        body = {
            "video_id": video,
            "title": video,
            "topics": [TOPICS[int(video[1])]],
            "published_at": (now - age).isoformat(),
        }
        response = client.put(f"/v1/catalog/videos/{video}", json=body)
        assert response.status_code == 200, response.text


def test_a_video_published_now_rises_by_its_topics_half_life(
    redis_url: str, models_dir: Path
) -> None:
    settings = {
        "freshness_weight": 10.0,
        "freshness_topic_half_lives": "credit=1",  # v3x: an hour; the others two weeks
    }
    with planted_service(redis_url, models_dir, **settings) as client:
        publish_times(client, "v31", hours_ago=0.0)
        # the insurance user's own scores spread about 0.4: at weight 10 a video published
        # now gains about 4, more than any of their scores
        assert eventually(lambda: videos(feed(client, "u-ins"))[0] == "v31")
        publish_times(client, "v31", hours_ago=10.0)  # ten half-lives old: 10·0.4·2^-10
        assert eventually(lambda: videos(feed(client, "u-ins"))[:3] == ["v00", "v01", "v02"])
        publish_times(client, "v21", hours_ago=10.0)  # investing: two weeks' half-life
        assert eventually(lambda: videos(feed(client, "u-ins"))[0] == "v21")

        everyone_in_variant(client, "freshness", freshness_weight=0)
        assert eventually(lambda: videos(feed(client, "u-ins"))[:3] == ["v00", "v01", "v02"])
