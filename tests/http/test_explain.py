"""Through the real service (issue 17): an operator asks why a user's page is what it is.
GET /v1/users/{id}/feed/explain gives the page the next feed would get, each score in its
parts and each card's checks, and uses nothing up (no daily cap, no exposure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders import APP_KEY, auth_header
from tests.http.cards import attached, feed, planted_service, set_profile, videos
from tests.http.planted import VIDEO_POPULARITY, VIDEOS

PARTS = ("model", "trending", "freshness", "popularity", "campaign")


@pytest.fixture
def client(redis_url: str, models_dir: Path) -> Any:
    with planted_service(redis_url, models_dir, daily_cap_per_product=2) as client:
        yield client


def explain(client: httpx.Client, user_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/users/{user_id}/feed/explain", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_each_score_is_the_sum_of_its_parts_and_each_card_shows_its_checks(
    client: httpx.Client,
) -> None:
    set_profile(client, "u-inv", risk_tolerance=5, holdings=["p-pen"])
    body = explain(client, "u-inv", n=6)
    assert videos(body) == ["v20", "v21", "v22", *videos(body)[3:]]  # the investor's topic
    assert [e["video_id"] for e in body["explanations"]] == videos(body)
    for item, why in zip(body["items"], body["explanations"], strict=True):
        parts = why["score"]
        assert parts["total"] == item["score"]
        assert sum(parts[name] for name in PARTS) == pytest.approx(item["score"], abs=1e-5)
    # the planted investor is the unit vector on the investing axis: u·v is the video's scale
    assert [why["score"]["model"] for why in body["explanations"][:3]] == pytest.approx(
        [1.0, 0.9, 0.8]
    )
    cards = {
        why["card"]["product_id"]: why["card"] for why in body["explanations"] if "card" in why
    }
    assert set(cards) == set(attached(body)) and "p-fund" in cards
    fund = cards["p-fund"]
    assert fund["checks"] == {
        "risk_level": 4,
        "risk_tolerance": 5,
        "risk_allowed_up_to": 5,
        "holdable_once": False,
        "held": False,
        "at_daily_cap": False,
        "daily_cap": 2,
        "disclosure_required": False,
        "disclosure_shown": True,  # the planted fund carries one, though not required
        "status": "live",
        "category": "fund",
        "category_count_today": 0,
        "category_cap": None,  # no cap on funds (RECSVC_CATEGORY_DAILY_CAPS, cap rules)
    }
    assert fund["campaigns"] == [] and fund["score"]["campaign"] == 0
    assert fund["score"]["user"] + fund["score"]["video"] == pytest.approx(
        fund["score"]["total"], abs=1e-5
    )
    assert "p-pen" not in cards  # held, and holdable once


def test_explaining_uses_no_daily_cap(client: httpx.Client) -> None:
    set_profile(client, "u-inv", risk_tolerance=5)
    for _ in range(4):  # twice the daily cap
        assert "p-fund" in attached(explain(client, "u-inv"))
    assert "p-fund" in attached(feed(client, "u-inv"))  # the cap is still whole
    assert "p-fund" in attached(feed(client, "u-inv"))
    # now at the cap: the explanation says so, and the card is gone
    after = explain(client, "u-inv")
    assert "p-fund" not in attached(after)


def test_a_user_nobody_knows_is_explained_by_popularity(client: httpx.Client) -> None:
    body = explain(client, "u-stranger", n=3)
    assert body["source"] == "popularity"
    # the planted popularity falls with the id: the page is its first three videos
    order = [v for _, v in sorted(zip(-VIDEO_POPULARITY, VIDEOS, strict=True))]
    assert videos(body) == order[:3]
    for item, why in zip(body["items"], body["explanations"], strict=True):
        assert why["score"]["model"] == 0 and why["score"]["popularity"] > 0
        assert why["score"]["popularity"] == pytest.approx(item["score"], abs=1e-5)


def test_it_takes_the_feeds_parameters_and_names_a_bad_one(client: httpx.Client) -> None:
    body = explain(client, "u-inv", exclude="v20", n=2)
    assert videos(body) == ["v21", "v22"]
    response = client.get("/v1/users/u-inv/feed/explain", params={"surface": "nowhere"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "surface"]


def test_it_is_for_operators_only(client: httpx.Client) -> None:
    response = client.get("/v1/users/u-inv/feed/explain", headers=auth_header(APP_KEY))
    assert response.status_code == 403, response.text
