"""A page is not a wall of one topic: with `RECSVC_MAX_VIDEOS_PER_TOPIC` (or a variant's
`max_videos_per_topic`) K, a page holds at most K videos of one catalogue topic before its
other videos, the ones passed over coming after them, best first; videos without topics are
never passed over. Through the real service, with the planted model (the insurance user's
best three videos are the insurance ones) and a catalogue giving each video its topic."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.http.builders import event_body, eventually
from tests.http.cards import everyone_in_variant, feed, planted_service, videos
from tests.http.planted import TOPICS, VIDEOS


def give_topics(client: httpx.Client) -> None:
    for video in VIDEOS:
        body = {"video_id": video, "title": video, "topics": [TOPICS[int(video[1])]]}
        response = client.put(f"/v1/catalog/videos/{video}", json=body)
        assert response.status_code == 200, response.text


def test_at_most_k_videos_of_one_topic_before_the_others(redis_url: str, models_dir: Path) -> None:
    with planted_service(redis_url, models_dir, max_videos_per_topic=2) as client:
        # no topics in the catalogue yet: nothing to limit
        assert videos(feed(client, "u-ins"))[:3] == ["v00", "v01", "v02"]
        give_topics(client)
        # two insurance videos, then the best of the others (ties: the lower index), and the
        # third insurance video after every topic has had its two (waited for: a catalogue
        # refresh during the puts may have read some videos' topics and not yet the others')
        limited = ["v00", "v01", "v10", "v11", "v20", "v21", "v30", "v31",
                   "v02", "v12", "v22", "v32"]  # fmt: skip
        assert eventually(lambda: videos(feed(client, "u-ins")) == limited)
        page = videos(feed(client, "u-ins"))
        assert page == limited  # and it stays so
        first = [TOPICS[int(v[1])] for v in page[:8]]
        assert max(first.count(topic) for topic in TOPICS) == 2


def test_off_by_default_and_settable_by_a_variant(redis_url: str, models_dir: Path) -> None:
    with planted_service(redis_url, models_dir) as client:
        give_topics(client)
        assert eventually(lambda: videos(feed(client, "u-ins"))[:3] == ["v00", "v01", "v02"])
        everyone_in_variant(client, "diversity", max_videos_per_topic=1)
        assert eventually(lambda: videos(feed(client, "u-ins"))[:4] == ["v00", "v10", "v20", "v30"])
        # the seen filter still comes first: a watched video is not on the page
        posted = client.post("/v1/events", json={"events": [event_body("u-ins", "v10", "view")]})
        assert posted.status_code == 202
        assert eventually(lambda: videos(feed(client, "u-ins"))[:4] == ["v00", "v11", "v20", "v30"])
