"""The audit's reading of card records (training.data.cards): a record with every check
recorded and passed has no problem; each failed check and each missing one is named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recsvc.contract.records import CARD_FIELDS, CardShown
from training.data.cards import CHECKS, audited, cards_in_stream, problems
from training.data.drain import card_row

SHOWN = CardShown(
    card_id="r1:2",
    ts_ms=int(datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp() * 1000),
    user_id="u-1",
    request_id="r1",
    model_version="m1",
    surface="home",
    experiments="",
    rank=2,
    video_id="v1",
    product_id="p1",
    risk_level=3,
    risk_tolerance=None,
    risk_allowed_up_to=3,
    holdable_once=True,
    held=False,
    daily_cap=3,
    cap_count=3,
    disclosure_required=True,
    disclosure_shown=True,
)


def row(**changes: Any) -> dict[str, Any]:
    """SHOWN as the stream holds it, read back as a partition row, with `changes`."""
    fields = dict(zip(CARD_FIELDS, SHOWN.fields(), strict=True))
    return {**card_row(fields), **changes}


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
    ],
)
def test_each_failed_check_is_named(changes: dict[str, Any], problem: str) -> None:
    assert problems(row(**changes)) == [problem]


@pytest.mark.parametrize("check", CHECKS)
def test_a_record_missing_a_check_cannot_be_answered_for(check: str) -> None:
    assert problems(row(**{check: None})) == [f"no record of {check}"]


def test_a_stream_entry_with_a_value_that_does_not_parse_is_a_missing_check() -> None:
    fields = dict(zip(CARD_FIELDS, SHOWN.fields(), strict=True)) | {"cap_count": "many"}
    (card,) = audited(cards_in_stream([fields], "u-1", None))
    assert card["problems"] == ["no record of cap_count"]


def test_the_stream_gives_only_the_users_cards_since_the_time_asked() -> None:
    fields = dict(zip(CARD_FIELDS, SHOWN.fields(), strict=True))
    other = fields | {"user_id": "u-2", "card_id": "r9:1"}
    since = datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert [c["card_id"] for c in cards_in_stream([fields, other], "u-1", since)] == ["r1:2"]
    assert cards_in_stream([fields], "u-1", since + timedelta(seconds=1)) == []
