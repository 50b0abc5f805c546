"""Today's behaviour moves a published user's next feed: the published vector blended with the
fold-in of the user's recent events, by the model's `today` weight (training.models.today)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.http import planted
from tests.http.builders import (
    PLANTED_VERSION,
    event_body,
    load_planted_catalog,
    publish_model,
    service_settings,
    serving,
)


def first_videos(client: httpx.Client, user: str, n: int = 3) -> list[str]:
    response = client.get("/v1/feed", params={"user_id": user, "n": n})
    assert response.status_code == 200, response.text
    assert response.json()["source"] == "cf"
    return [item["video_id"] for item in response.json()["items"]]


@pytest.mark.parametrize(
    ("weight", "setting", "first_after"),
    [(0.75, None, "v22"), (0.0, None, "v00"), (0.75, 0.0, "v00")],
)
def test_a_view_changes_the_next_feed_of_a_published_user(
    redis_url: str, tmp_path: Path, weight: float, setting: float | None, first_after: str
) -> None:
    """The insurance user watches two investing videos. With the model's today weight of 0.75
    the third investing video leads the next feed; with none (last night's vector alone), or
    with RECSVC_TODAY_WEIGHT=0 over the model's, the insurance videos still do."""
    models = tmp_path / "models"
    planted.write_planted_model(models, PLANTED_VERSION, today_weight=weight)
    publish_model(redis_url, models / PLANTED_VERSION)
    load_planted_catalog(redis_url)
    with serving(service_settings(redis_url, models, today_weight=setting)) as client:
        assert first_videos(client, "u-ins") == ["v00", "v01", "v02"]
        events = [event_body("u-ins", v, "view", watch_ratio=1.0) for v in ("v20", "v21")]
        assert client.post("/v1/events", json={"events": events}).status_code == 202
        assert first_videos(client, "u-ins")[0] == first_after
