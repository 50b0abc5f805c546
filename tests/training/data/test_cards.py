"""The audit's reading of card records (training.data.cards): a record with every check
recorded and passed has no problem; each failed check and each missing one is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recsvc.contract.records import PAGE_CARD_FIELDS, PageCards
from training.data.cards import CHECKS, audited, cards_in_stream, each_card, problems
from training.data.drain import card_row

# a page with two cards: rank 2 (v1, p1, risk 3, holdable once, not held, 3rd today, its
# disclosure required and shown, the first fund card today, no cap on funds, no campaign)
# and rank 5 (v7, p2, risk 1, the 2nd deposit card today of a cap of 2, two campaign rules)
PAGE = PageCards(
    request_id="r1",
    ts_ms=int(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp() * 1000),
    user_id="u-1",
    model_version="m1",
    surface="home",
    experiments="",
    risk_tolerance=None,
    risk_allowed_up_to=3,
    daily_cap=3,
    cards="2|v1|p1|3|1|0|3|1|1|fund|1|-1|;5|v7|p2|1|0|0|1|0|0|deposit|2|2|spring+calm",
)


def entry(**changes: str) -> dict[str, str]:
    """PAGE as the stream holds it, with `changes` to its fields."""
    return dict(zip(PAGE_CARD_FIELDS, PAGE.fields(), strict=True)) | changes


def row(**changes: Any) -> dict[str, Any]:
    """PAGE's first card read back from the stream, with `changes`."""
    first, _ = each_card(card_row(entry()))
    return {**first, **changes}


def test_a_page_reads_back_as_its_cards() -> None:
    first, second = each_card(card_row(entry()))
    assert (first["card_id"], first["video_id"], first["product_id"]) == ("r1:2", "v1", "p1")
    assert (second["card_id"], second["rank"], second["risk_level"]) == ("r1:5", 5, 1)
    assert second["risk_allowed_up_to"] == 3 and second["user_id"] == "u-1"
    assert (first["category"], first["category_cap"], first["campaigns"]) == ("fund", -1, None)
    assert (second["category_count"], second["category_cap"]) == (2, 2)
    assert second["campaigns"] == "spring+calm"


def test_a_card_the_service_let_through_reads_back_whole_and_passes() -> None:
    back = row()
    assert back["risk_tolerance"] is None  # unknown stays unknown, not 0
    assert back["ts"] == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert (back["holdable_once"], back["held"], back["cap_count"]) == (True, False, 3)
    assert problems(back) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"risk_level": 4}, "risk level 4 above 3"),
        ({"held": True}, "held already, and holdable once"),
        ({"cap_count": 4}, "card 4 of a daily cap of 3"),
        ({"disclosure_shown": False}, "its disclosure was not shown"),
        ({"category_count": 3, "category_cap": 2}, "card 3 of fund of a daily cap of 2"),
    ],
)
def test_each_failed_check_is_named(changes: dict[str, Any], problem: str) -> None:
    assert problems(row(**changes)) == [problem]


@pytest.mark.parametrize("check", CHECKS)
def test_a_record_missing_a_check_cannot_be_answered_for(check: str) -> None:
    assert problems(row(**{check: None})) == [f"no record of {check}"]


def test_a_value_that_does_not_parse_or_is_missing_is_a_missing_check() -> None:
    garbled = entry(cards="2|v1|p1|3|1|0|many|1|1|fund|1|-1|;5|v7|p2")
    first, second = audited(cards_in_stream([garbled], "u-1", None))
    assert first["problems"] == ["no record of cap_count"]
    lacking = ["risk_level", "holdable_once", "held", "cap_count", "disclosure_required"]
    lacking += ["disclosure_shown", "category", "category_count", "category_cap"]
    assert second["problems"] == [f"no record of {c}" for c in lacking]
    # a record from before category caps (nine parts a card) cannot answer for them
    old = entry(cards="2|v1|p1|3|1|0|3|1|1")
    (card,) = audited(cards_in_stream([old], "u-1", None))
    assert card["problems"] == [f"no record of {c}" for c in lacking[-3:]]


def test_the_stream_gives_only_the_users_cards_since_the_time_asked() -> None:
    other = entry(user_id="u-2", request_id="r9")
    since = datetime(2026, 12, 1, 10, tzinfo=UTC)
    found = [c["card_id"] for c in cards_in_stream([entry(), other], "u-1", since)]
    assert found == ["r1:2", "r1:5"]
    assert cards_in_stream([entry()], "u-1", since + timedelta(seconds=1)) == []
