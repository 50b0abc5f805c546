"""Through the real service (issue 17): surfaces with their own page size and cards, a context
item that makes the page "related to this item", `exclude`, and a page token that continues a
session without repeating a video. Every bad parameter is a 422 that names it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from recsvc.contract.keys import Keys
from tests.http.builders import eventually
from tests.http.cards import attached, everyone_in_variant, planted_service, set_profile, videos
from tests.http.planted import PRODUCTS, VIDEOS

SURFACES = {
    "product_page": {"page_size": 4, "product_categories": ["deposit", "pension"]},
    "after_video": {"attach": False},
    "related": {"context_weight": 1.0, "max_attached": 1},
}


def page(client: httpx.Client, user_id: str, **params: Any) -> dict[str, Any]:
    response = client.get("/v1/feed", params={"user_id": user_id, **params})
    assert response.status_code == 200, response.text
    return response.json()


def refused(client: httpx.Client, user_id: str, **params: Any) -> dict[str, Any]:
    """The one problem a 422 names: its parameter and message."""
    response = client.get("/v1/feed", params={"user_id": user_id, **params})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    return {"field": problem["loc"][-1], "msg": problem["msg"]}


def categories(body: dict[str, Any]) -> set[str]:
    return {item["product"]["category"] for item in body["items"] if item["product"]}


@pytest.fixture
def client(redis_url: str, models_dir: Path) -> Any:
    with planted_service(redis_url, models_dir, surfaces=json.dumps(SURFACES)) as client:
        yield client


def test_each_surface_has_its_page_size_and_its_cards(client: httpx.Client) -> None:
    home = page(client, "u-save")
    assert home["surface"] == "home" and len(home["items"]) == len(VIDEOS)  # 20 asked
    assert "p-dep" in attached(home)

    product_page = page(client, "u-save", surface="product_page")
    assert product_page["surface"] == "product_page"
    assert len(product_page["items"]) == 4  # its page size, no `n` asked
    assert attached(product_page) and categories(product_page) <= {"deposit", "pension"}
    # an `n` in the request wins over the surface's page size
    assert len(page(client, "u-save", surface="product_page", n=6)["items"]) == 6
    # the investor's best card is the fund: not a category this surface carries
    set_profile(client, "u-inv", risk_tolerance=5)
    investor = page(client, "u-inv", surface="product_page")
    assert "p-fund" in attached(page(client, "u-inv")) and "p-fund" not in attached(investor)

    after_video = page(client, "u-save", surface="after_video")
    assert videos(after_video) == videos(home) and attached(after_video) == []


def test_an_unknown_surface_is_a_422_that_lists_the_configured_ones(client: httpx.Client) -> None:
    problem = refused(client, "u-save", surface="checkout")
    assert problem["field"] == "surface"
    assert "'checkout'" in problem["msg"]
    assert "after_video, home, product_page, related" in problem["msg"]
    assert refused(client, "u-save", surface="Not A Name!")["field"] == "surface"


def test_a_page_token_continues_the_session_without_repeating_a_video(
    client: httpx.Client,
) -> None:
    first = page(client, "u-ins", n=4)
    second = page(client, "u-ins", n=4, page_token=first["next_page_token"])
    third = page(client, "u-ins", n=4, page_token=second["next_page_token"])
    shown = videos(first) + videos(second) + videos(third)
    assert len(shown) == 12 and len(set(shown)) == 12, shown
    assert videos(first) == ["v00", "v01", "v02", videos(first)[3]]  # the ranking, in order
    # the token is the session's: the same token again gives the same next page
    again = page(client, "u-ins", n=4, page_token=first["next_page_token"])
    assert videos(again) == videos(second)
    # a product card may come back on a later page: only videos are remembered
    assert set(PRODUCTS) >= set(attached(first) + attached(second) + attached(third))


def test_a_page_token_of_another_session_or_not_ours_is_refused(client: httpx.Client) -> None:
    token = page(client, "u-ins", n=4)["next_page_token"]
    for params in (
        {"user_id": "u-save"},  # another user
        {"user_id": "u-ins", "surface": "product_page"},  # another surface
        {"user_id": "u-ins", "context": "v10"},  # another context
    ):
        user = params.pop("user_id")
        problem = refused(client, user, page_token=token, **params)
        assert problem["field"] == "page_token"
        assert "another user, surface or context" in problem["msg"]
    for forged in ("not-a-token", token[: len(token) // 2], "A" * 40):
        problem = refused(client, "u-ins", page_token=forged)
        assert problem["field"] == "page_token" and "not a page token" in problem["msg"]


def test_excluded_videos_and_products_are_left_off_the_page(client: httpx.Client) -> None:
    before = page(client, "u-save")
    assert videos(before)[0] == "v10" and "p-dep" in attached(before)
    after = page(client, "u-save", exclude="v10,v11,p-dep")
    assert not {"v10", "v11"} & set(videos(after))
    assert videos(after)[0] == "v12"
    assert "p-dep" not in attached(after)
    # ids the catalogue does not have are harmless
    assert videos(page(client, "u-save", exclude="v-none,p-none")) == videos(before)


@pytest.mark.parametrize(
    ("exclude", "message"),
    [
        ("v10,bad id!", "'bad id!' is not an id"),
        (",".join(f"v{i}" for i in range(101)), "at most 100"),
    ],
)
def test_a_bad_exclude_is_a_422_naming_it(client: httpx.Client, exclude: str, message: str) -> None:
    problem = refused(client, "u-save", exclude=exclude)
    assert problem["field"] == "exclude" and message in problem["msg"]


def test_a_context_item_makes_the_page_related_to_it(client: httpx.Client) -> None:
    # The insurance user's page, related to an investing video: with the related surface's
    # context weight 1 the video's own direction is the query, at the user's length.
    related = page(client, "u-ins", surface="related", context="v20")
    assert related["context"] == "v20" and related["source"] == "cf"
    assert videos(related)[:2] == ["v21", "v22"]  # the video itself is not on the page
    assert "v20" not in videos(related)
    assert len(attached(related)) <= 1  # the surface's card limit
    # on home (weight 0.5) the user's own topic and the item's share the top
    blended = videos(page(client, "u-ins", context="v20"))
    assert blended[0] == "v00" and set(blended[1:3]) == {"v01", "v21"}
    assert set(blended[3:5]) == {"v02", "v22"}
    # a product as the context: the saver's page related to the fund
    assert videos(page(client, "u-save", surface="related", context="p-fund"))[:3] == [
        "v20",
        "v21",
        "v22",
    ]


def test_a_user_without_a_vector_gets_the_context_items_neighbours(client: httpx.Client) -> None:
    body = page(client, "u-never-seen", context="v10")
    assert body["source"] == "context"
    assert videos(body)[:2] == ["v11", "v12"]
    # the rules still hold: an unknown risk tolerance sees the lowest risk level only
    assert all(item["product"]["risk_level"] == 1 for item in body["items"] if item["product"])


def test_an_unknown_context_item_is_a_422_naming_it(client: httpx.Client) -> None:
    problem = refused(client, "u-ins", context="v-none")
    assert problem["field"] == "context" and "'v-none'" in problem["msg"]


def test_an_exposure_records_the_surface_and_the_users_profile(
    client: httpx.Client, redis_url: str
) -> None:
    """For the A/B report's breakdowns by surface, segment and lifecycle."""
    everyone_in_variant(client, "placement")
    assert eventually(lambda: page(client, "u-waiting")["variant"] == "placement:everyone")
    set_profile(client, "u-save", segment="young", lifecycle="active")
    page(client, "u-save", surface="product_page")
    page(client, "u-never-seen")

    def logged() -> set[tuple[str, ...]]:
        entries = redis.Redis.from_url(redis_url).xrange(Keys().exposures)
        fields = [{k.decode(): v.decode() for k, v in entry.items()} for _, entry in entries]
        names = ("user_id", "surface", "segment", "lifecycle")
        return {tuple(e[n] for n in names) for e in fields if e["user_id"] != "u-waiting"}

    assert eventually(lambda: len(logged()) == 2)
    assert logged() == {
        ("u-save", "product_page", "young", "active"),
        ("u-never-seen", "home", "", ""),
    }
