"""A user's history as their online state (training.data.history): the latest events as
recent entries, newest first, and the products bought that the catalogue holds."""

from __future__ import annotations

from datetime import timedelta

from tests.builders import EPOCH, event_table
from training.data.history import HistoryCounts, user_histories


def test_each_users_latest_events_newest_first_and_their_catalogue_purchases() -> None:
    events = event_table(
        [
            {"user_id": "b", "item_id": "v1", "ts": EPOCH, "watch_ratio": 2.5},
            {"user_id": "a", "item_id": "v1", "ts": EPOCH, "watch_ratio": 0.5},
            {"user_id": "a", "item_id": "p-ins", "item_type": "product", "action": "purchase",
             "ts": EPOCH + timedelta(hours=2)},
            {"user_id": "a", "item_id": "v2", "action": "impression",
             "ts": EPOCH + timedelta(hours=1)},
            {"user_id": "a", "item_id": "p-gone", "item_type": "product", "action": "purchase",
             "ts": EPOCH + timedelta(hours=3)},
        ]
    )  # fmt: skip
    counts = HistoryCounts()

    histories = list(user_histories(events, 3, {"p-ins"}, counts))

    assert [h.user_id for h in histories] == ["a", "b"]
    a, b = histories
    assert list(a.recent) == [
        "product|p-gone|purchase|",
        "product|p-ins|purchase|",
        "video|v2|impression|",
    ]  # the limit keeps the three latest
    assert list(a.purchases) == ["p-ins"]  # p-gone is not in the catalogue
    assert list(b.recent) == ["video|v1|view|2.5"]  # a replay's ratio as given
    assert (counts.users, counts.events, counts.unknown_products) == (2, 5, 1)


def test_events_at_the_same_time_keep_their_order_the_later_row_newer() -> None:
    events = event_table(
        [
            {"user_id": "a", "item_id": "v1", "ts": EPOCH},
            {"user_id": "a", "item_id": "v2", "ts": EPOCH},
        ]
    )
    (history,) = user_histories(events, 10, set(), HistoryCounts())
    assert [entry.split("|")[1] for entry in history.recent] == ["v2", "v1"]


def test_no_events_no_histories() -> None:
    events = event_table([{"user_id": "a", "item_id": "v1"}]).slice(0, 0)
    assert list(user_histories(events, 10, set(), HistoryCounts())) == []
