"""The attach rules, over real HTTP against the planted model.

Under each ranked video the service may attach one product card. It never attaches a product
above the user's risk tolerance (unknown tolerance: the lowest level only, or nothing with
`unknown_risk_policy=none`), a product the user holds when it can be held once, a product
already attached `daily_cap_per_product` times to the user today, a retired product, or a
credit product without its disclosure; a page carries at most `max_attached_per_page`
products, each once. Retired and already-seen videos are never served.

With a zero user vector (popularity), the product under a video is the one closest to that
video: p-ins under insurance, p-dep under saving, p-fund (else p-pen) under investing, p-loan
under credit; p-nodisc would win under credit but has no disclosure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.http.builders import (
    TestKeys,
    event_body,
    eventually,
)
from tests.http.cards import (
    attached,
    feed,
    planted_service,
    post_events,
    set_profile,
    set_status,
    videos,
)
from tests.http.polls import wait_for_polls

RISK = {"p-dep": 1, "p-ins": 1, "p-nodisc": 1, "p-loan": 2, "p-pen": 2, "p-fund": 4}


@pytest.fixture
def uncapped(redis_url: str, models_dir: Path) -> Iterator[httpx.Client]:
    """A service whose daily cap never bites, for tests that ask for many feeds."""
    with planted_service(redis_url, models_dir, daily_cap_per_product=1000) as client:
        yield client


@pytest.mark.parametrize(
    ("tolerance", "expected"),
    [
        (1, {"p-dep", "p-ins"}),
        (2, {"p-dep", "p-ins", "p-loan", "p-pen"}),
        (3, {"p-dep", "p-ins", "p-loan", "p-pen"}),
        (4, {"p-dep", "p-ins", "p-loan", "p-fund"}),
        (5, {"p-dep", "p-ins", "p-loan", "p-fund"}),
    ],
)
def test_only_products_within_the_users_risk_tolerance_are_attached(
    redis_url: str, models_dir: Path, tolerance: int, expected: set[str]
) -> None:
    with planted_service(redis_url, models_dir, max_attached_per_page=10) as client:
        set_profile(client, "u-new", risk_tolerance=tolerance)
        products = attached(feed(client, "u-new"))
    assert all(RISK[p] <= tolerance for p in products), products
    assert set(products) == expected


def test_an_unknown_tolerance_allows_only_the_lowest_risk_level(service: httpx.Client) -> None:
    products = attached(feed(service, "u-inv"))  # investing: p-fund (4) and p-pen (2) fit best
    assert products
    assert all(RISK[p] == 1 for p in products), products


def test_with_policy_none_an_unknown_tolerance_gets_no_product(
    redis_url: str, models_dir: Path
) -> None:
    with planted_service(redis_url, models_dir, unknown_risk_policy="none") as client:
        assert attached(feed(client, "u-inv")) == []
        assert attached(feed(client, "u-new")) == []
        set_profile(client, "u-known", risk_tolerance=5)
        assert attached(feed(client, "u-known")) != []


@pytest.mark.parametrize("held_through", ["profile", "purchase event"])
def test_a_held_holdable_once_product_is_not_attached(
    service: httpx.Client, held_through: str
) -> None:
    set_profile(service, "u-inv", risk_tolerance=3)
    assert "p-pen" in attached(feed(service, "u-inv"))
    if held_through == "profile":
        set_profile(service, "u-inv", risk_tolerance=3, holdings=["p-pen"])
    else:
        post_events(service, event_body("u-inv", "p-pen", "purchase", item_type="product"))
    assert "p-pen" not in attached(feed(service, "u-inv"))


def test_a_held_product_that_can_be_held_many_times_is_still_attached(
    service: httpx.Client,
) -> None:
    set_profile(service, "u-save", risk_tolerance=1, holdings=["p-dep"])
    body = feed(service, "u-save", n=3)
    assert body["items"][0]["product"]["product_id"] == "p-dep"


def test_a_product_is_attached_at_most_daily_cap_times_per_user(
    redis_url: str, models_dir: Path
) -> None:
    with planted_service(redis_url, models_dir, daily_cap_per_product=2) as client:
        set_profile(client, "u-save", risk_tolerance=1)
        set_profile(client, "u-other", risk_tolerance=1)
        assert "p-dep" in attached(feed(client, "u-save", n=3))
        assert "p-dep" in attached(feed(client, "u-save", n=3))
        assert "p-dep" not in attached(feed(client, "u-save", n=3))
        assert "p-dep" in attached(feed(client, "u-other"))  # the cap is per user


def test_concurrent_feeds_of_one_user_never_exceed_the_daily_cap(
    redis_url: str, models_dir: Path
) -> None:
    """Check and count are one atomic step: 24 feeds at once, cap 1, each product once."""
    with planted_service(redis_url, models_dir, daily_cap_per_product=1) as client:
        set_profile(client, "u-inv", risk_tolerance=5)
        clients = [
            httpx.Client(base_url=str(client.base_url), timeout=10, auth=TestKeys())
            for _ in range(24)
        ]
        for own in clients:
            own.get("/healthz")  # connect first, so that the feeds leave together
        start = threading.Barrier(len(clients))

        def products_served(own: httpx.Client) -> list[str]:
            start.wait()
            return attached(feed(own, "u-inv"))

        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            served = [p for page in pool.map(products_served, clients) for p in page]
        for own in clients:
            own.close()
        assert served, "some product was attached"
        assert len(served) == len(set(served)), served


def test_a_profile_update_keeps_the_purchases_seen_in_events(service: httpx.Client) -> None:
    set_profile(service, "u-inv", risk_tolerance=3)
    post_events(service, event_body("u-inv", "p-pen", "purchase", item_type="product"))
    set_profile(service, "u-inv", risk_tolerance=3, segment="young")  # upstream knows nothing
    assert "p-pen" not in attached(feed(service, "u-inv"))
    assert "p-pen" in service.get("/v1/users/u-inv/profile").json()["holdings"]


@pytest.mark.parametrize(("max_attached", "expected"), [(0, 0), (1, 1), (3, 3), (10, 4)])
def test_a_page_carries_at_most_max_attached_per_page_products(
    redis_url: str, models_dir: Path, max_attached: int, expected: int
) -> None:
    """Four products fit a popularity page for tolerance 5 (one per topic)."""
    with planted_service(redis_url, models_dir, max_attached_per_page=max_attached) as client:
        set_profile(client, "u-new", risk_tolerance=5)
        assert len(attached(feed(client, "u-new"))) == expected


def test_no_product_appears_twice_on_a_page(service: httpx.Client) -> None:
    set_profile(service, "u-save", risk_tolerance=1)
    body = feed(service, "u-save", n=3)  # p-dep fits each of v10, v11, v12 best
    assert videos(body) == ["v10", "v11", "v12"]
    assert attached(body) == ["p-dep"]
    assert body["items"][0]["product"]["product_id"] == "p-dep"


def test_a_credit_product_without_its_disclosure_is_never_attached(
    uncapped: httpx.Client,
) -> None:
    set_profile(uncapped, "u-credit", risk_tolerance=5)
    first = feed(uncapped, "u-credit")
    cards = [item["product"] for item in first["items"] if item["product"]]
    assert "p-nodisc" not in attached(first)
    assert {"product_id": "p-loan", "disclosure": "APR 9.9%"}.items() <= cards[0].items()
    record = {"product_id": "p-nodisc", "name": "Quick Loan", "category": "credit"}
    record |= {"risk_level": 1, "disclosure": "APR 19.9%"}
    assert uncapped.put("/v1/catalog/products/p-nodisc", json=record).status_code == 200
    assert eventually(lambda: "p-nodisc" in attached(feed(uncapped, "u-credit")), timeout=5)


def test_a_retired_product_stops_being_attached_within_5s(uncapped: httpx.Client) -> None:
    set_profile(uncapped, "u-save", risk_tolerance=1)
    assert "p-dep" in attached(feed(uncapped, "u-save"))
    set_status(uncapped, "products", "p-dep", "retired")
    assert eventually(lambda: "p-dep" not in attached(feed(uncapped, "u-save")), timeout=5)
    assert all("p-dep" not in attached(feed(uncapped, "u-save")) for _ in range(5))
    set_status(uncapped, "products", "p-dep", "live")
    assert eventually(lambda: "p-dep" in attached(feed(uncapped, "u-save")), timeout=5)


def test_replacing_a_retired_record_without_a_status_keeps_it_retired(
    uncapped: httpx.Client, redis_url: str
) -> None:
    set_status(uncapped, "products", "p-dep", "retired")
    renamed = {"product_id": "p-dep", "name": "Easy Saver Plus", "category": "deposit"}
    response = uncapped.put("/v1/catalog/products/p-dep", json={**renamed, "risk_level": 1})
    assert response.status_code == 200 and response.json()["status"] == "retired"
    wait_for_polls(uncapped.get, redis_url, 2)  # the replica holds the replaced record
    assert "p-dep" not in attached(feed(uncapped, "u-save"))


def test_a_retired_video_stops_being_served_within_5s(uncapped: httpx.Client) -> None:
    assert videos(feed(uncapped, "u-save", n=3)) == ["v10", "v11", "v12"]
    set_status(uncapped, "videos", "v10", "retired")
    assert eventually(lambda: "v10" not in videos(feed(uncapped, "u-save")), timeout=5)
    assert videos(feed(uncapped, "u-save", n=2)) == ["v11", "v12"]
    assert "v10" not in videos(feed(uncapped, "u-new", n=100))  # nor to anyone else


def test_seen_videos_are_not_served_again(service: httpx.Client) -> None:
    post_events(
        service, event_body("u-save", "v10", "view"), event_body("u-save", "v11", "impression")
    )
    body = feed(service, "u-save", n=100)
    assert body["source"] == "cf"
    assert "v10" not in videos(body) and "v11" not in videos(body)
    assert len(body["items"]) == 10  # the twelve videos but the two seen
    assert videos(body)[0] == "v12"
    assert videos(feed(service, "u-ins", n=100)).count("v10") == 1  # seen is per user
