"""Through the real service (issue 17): every product card served is recorded with the checks
that let it through, and `recsvc audit USER` answers for each of them, from the drained
partitions and the stream not drained yet. A record missing a check fails the audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis

from recsvc.contract.keys import Keys
from tests.http.builders import eventually
from tests.http.cards import attached, feed, planted_service, set_profile
from training.data.cards import each_card
from training.data.drain import CARD_SCHEMA, CARDS, card_row, drain

RECSVC = str(Path(sys.executable).with_name("recsvc"))
USERS = ("u-ins", "u-save", "u-inv", "u-credit", "u-stranger")


@pytest.fixture
def client(redis_url: str, models_dir: Path) -> Any:
    with planted_service(redis_url, models_dir, daily_cap_per_product=2) as client:
        yield client


def logged_pages(redis_url: str) -> list[dict[str, str]]:
    """The card stream's entries: one per page with cards."""
    entries = redis.Redis.from_url(redis_url).xrange(Keys().cards)
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


def logged_cards(redis_url: str) -> list[dict[str, Any]]:
    """The cards of the stream's pages, one row each, as the audit reads them."""
    return [card for page in logged_pages(redis_url) for card in each_card(card_row(page))]


def audit(redis_url: str, user: str, cards: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RECSVC_REDIS_URL": redis_url}
    command = [RECSVC, "audit", user, "--cards", str(cards), "--json", *extra]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_every_card_served_is_recorded_with_the_checks_that_let_it_through(
    client: httpx.Client, redis_url: str
) -> None:
    set_profile(client, "u-inv", risk_tolerance=5, holdings=["p-pen"])
    first, second = feed(client, "u-inv"), feed(client, "u-inv")
    served = [(body["request_id"], item) for body in (first, second) for item in body["items"]]
    shown = {(rid, item["rank"]): item for rid, item in served if item["product"]}
    assert eventually(lambda: len(logged_cards(redis_url)) == len(shown))
    assert len(logged_pages(redis_url)) == 2  # a record per page
    for record in logged_cards(redis_url):
        item = shown[(record["request_id"], record["rank"])]
        assert record["card_id"] == f"{record['request_id']}:{record['rank']}"
        assert (record["video_id"], record["product_id"]) == (
            item["video_id"],
            item["product"]["product_id"],
        )
        assert record["risk_level"] == item["product"]["risk_level"]
        assert (record["risk_tolerance"], record["risk_allowed_up_to"]) == (5, 5)
        assert record["held"] is False and record["daily_cap"] == 2
        assert record["disclosure_shown"] is (item["product"]["disclosure"] is not None)
        assert record["surface"] == "home" and record["experiments"] is None
    # the second page's cards are the day's second of each product
    counts = {(r["request_id"], r["product_id"]): r["cap_count"] for r in logged_cards(redis_url)}
    assert {counts[(second["request_id"], p)] for p in attached(second)} == {2}


def test_the_audit_answers_for_every_card_from_partitions_and_stream(
    client: httpx.Client, redis_url: str, tmp_path: Path
) -> None:
    set_profile(client, "u-inv", risk_tolerance=5)
    set_profile(client, "u-credit", risk_tolerance=2)
    pages = {user: [feed(client, user) for _ in range(3)] for user in USERS}
    cards_of = {u: sum(len(attached(b)) for b in bodies) for u, bodies in pages.items()}
    assert eventually(lambda: len(logged_cards(redis_url)) == sum(cards_of.values()))
    # drained into partitions; then one more page, whose cards are still in the stream
    drain(redis.Redis.from_url(redis_url), tmp_path / "cards", stream=CARDS)
    after = len(attached(feed(client, "u-inv")))
    cards_of["u-inv"] += after
    assert eventually(lambda: len(logged_cards(redis_url)) == after)  # drained pages leave
    for user in USERS:
        result = audit(redis_url, user, tmp_path / "cards")
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout.splitlines()[-1])
        assert report["failing"] == 0
        assert len(report["cards"]) == cards_of[user], user
        assert all(card["problems"] == [] for card in report["cards"])
        assert {c["user_id"] for c in report["cards"]} <= {user}
    inv = json.loads(audit(redis_url, "u-inv", tmp_path / "cards").stdout.splitlines()[-1])
    assert {c["risk_allowed_up_to"] for c in inv["cards"]} == {5}
    stranger = json.loads(
        audit(redis_url, "u-stranger", tmp_path / "cards").stdout.splitlines()[-1]
    )
    assert {c["risk_allowed_up_to"] for c in stranger["cards"]} <= {1}  # unknown: the lowest


def test_a_card_whose_record_lacks_a_check_fails_the_audit(redis_url: str, tmp_path: Path) -> None:
    page = {
        "request_id": "r1",
        "ts": None,
        "user_id": "u-1",
        "model_version": "m1",
        "surface": "home",
        "experiments": None,
        "risk_tolerance": 5,
        "risk_allowed_up_to": 5,
        "daily_cap": 3,
        "rank": [1],
        "video_id": ["v00"],
        "product_id": ["p-fund"],
        "risk_level": [None],  # the check that was not recorded
        "holdable_once": [False],
        "held": [False],
        "cap_count": [1],
        "disclosure_required": [False],
        "disclosure_shown": [True],
        "category": ["fund"],
        "category_count": [1],
        "category_cap": [-1],  # no cap on the category
        "campaigns": [None],
    }
    folder = tmp_path / "cards" / "day=2026-12-01"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist([page], CARD_SCHEMA), folder / "part.parquet")
    result = audit(redis_url, "u-1", tmp_path / "cards")
    assert result.returncode == 1
    assert "PROBLEM: no record of risk_level" in result.stdout
    over = page | {"request_id": "r2", "risk_level": [4], "cap_count": [4]}
    over |= {"risk_allowed_up_to": 3, "category_count": [3], "category_cap": [2]}
    pq.write_table(pa.Table.from_pylist([over], CARD_SCHEMA), folder / "part.parquet")
    report = json.loads(audit(redis_url, "u-1", tmp_path / "cards").stdout.splitlines()[-1])
    assert report["cards"][0]["problems"] == [
        "risk level 4 above 3",
        "card 4 of a daily cap of 3",
        "card 3 of fund of a daily cap of 2",
    ]
