"""Where a feed's ranking comes from, for users the model knows and users it does not.

In order: the user's published vector (`cf`); else a vector folded in from the user's recent
events (`fold_in`); else the popularity of the segment in the user's profile
(`segment_popularity`); else global popularity (`popularity`). The planted model makes each
source recognisable: global popularity decreases along the id order, "young" watches investing
(v2x), "retired" insurance (v0x), and each published user sits on one topic axis.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.http import planted
from tests.http.builders import event_body

BY_POPULARITY = sorted(
    planted.VIDEOS, key=lambda v: -float(planted.VIDEO_POPULARITY[planted.VIDEOS.index(v)])
)


def feed(client: httpx.Client, user_id: str, n: int = 12) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"user_id": user_id, "n": n})
    assert response.status_code == 200, response.text
    return response.json()


def videos(body: dict[str, Any]) -> list[str]:
    return [item["video_id"] for item in body["items"]]


def topic(axis: int) -> list[str]:
    """The topic's three videos in their planted order."""
    return [f"v{axis}0", f"v{axis}1", f"v{axis}2"]


def post(client: httpx.Client, user_id: str, *actions: tuple[str, str, str]) -> None:
    """Post (item_type, item_id, action) events for the user, time-stamped now."""
    events = [
        event_body(
            user_id,
            item_id,
            action,
            item_type,
            **({"watch_ratio": 1.0} if action == "view" else {}),
        )
        for item_type, item_id, action in actions
    ]
    response = client.post("/v1/events", json={"events": events})
    assert response.status_code == 202, response.text


def set_segment(client: httpx.Client, user_id: str, segment: str) -> None:
    response = client.put(f"/v1/users/{user_id}/profile", json={"segment": segment})
    assert response.status_code == 200, response.text


def test_an_unknown_user_without_events_gets_global_popularity(service: httpx.Client) -> None:
    body = feed(service, "u-stranger")
    assert body["source"] == "popularity"
    assert videos(body) == BY_POPULARITY


def test_a_popularity_feed_is_cut_to_n(service: httpx.Client) -> None:
    assert videos(feed(service, "u-stranger", n=4)) == BY_POPULARITY[:4]


@pytest.mark.parametrize(("segment", "axis"), list(planted.SEGMENTS.items()))
def test_a_user_with_a_segment_gets_the_segments_popular_videos_first(
    service: httpx.Client, segment: str, axis: int
) -> None:
    set_segment(service, "u-stranger", segment)
    body = feed(service, "u-stranger")
    assert body["source"] == "segment_popularity"
    assert videos(body)[:3] == topic(axis)


def test_a_segment_the_model_does_not_know_falls_back_to_global_popularity(
    service: httpx.Client,
) -> None:
    set_segment(service, "u-stranger", "astronauts")
    body = feed(service, "u-stranger")
    assert body["source"] == "popularity"
    assert videos(body) == BY_POPULARITY


@pytest.mark.parametrize("axis", [0, 1, 2, 3])
def test_views_fold_in_and_the_rest_of_that_topic_comes_first(
    service: httpx.Client, axis: int
) -> None:
    post(service, "u-stranger", ("video", f"v{axis}0", "view"))
    body = feed(service, "u-stranger")
    assert body["source"] == "fold_in"
    assert videos(body)[:2] == topic(axis)[1:]
    assert f"v{axis}0" not in videos(body)


def test_a_click_on_a_saving_product_folds_in_saving_videos_first(
    service: httpx.Client,
) -> None:
    post(service, "u-stranger", ("product", "p-dep", "click"))
    body = feed(service, "u-stranger")
    assert body["source"] == "fold_in"
    assert videos(body)[:3] == topic(1)


def test_impressions_alone_do_not_fold_in(service: httpx.Client) -> None:
    """An impression weighs nothing: popularity, without the videos already shown."""
    post(service, "u-stranger", ("video", "v00", "impression"), ("video", "v20", "impression"))
    body = feed(service, "u-stranger")
    assert body["source"] == "popularity"
    assert videos(body) == [v for v in BY_POPULARITY if v not in {"v00", "v20"}]


def test_recent_events_take_precedence_over_a_segment(service: httpx.Client) -> None:
    set_segment(service, "u-stranger", "young")  # investing
    post(service, "u-stranger", ("video", "v10", "view"), ("video", "v11", "view"))
    body = feed(service, "u-stranger")
    assert body["source"] == "fold_in"
    assert videos(body)[0] == "v12"


@pytest.mark.parametrize(("user_id", "axis"), list(planted.USERS.items()))
def test_a_published_user_is_ranked_by_their_vector(
    service: httpx.Client, user_id: str, axis: int
) -> None:
    body = feed(service, user_id)
    assert body["source"] == "cf"
    assert videos(body)[:3] == topic(axis)


def test_a_published_vector_takes_precedence_over_events_and_segment(
    service: httpx.Client,
) -> None:
    set_segment(service, "u-save", "young")
    post(service, "u-save", ("video", "v30", "view"), ("video", "v31", "view"))
    body = feed(service, "u-save")
    assert body["source"] == "cf"
    assert videos(body)[:3] == topic(1)
