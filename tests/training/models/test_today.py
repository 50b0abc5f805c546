"""The weight of today's behaviour in a published vector (training.models.today), chosen on a
temporal split as the service meets it."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc

from tests.builders import EPOCH, block_events, event_table
from training.data.matrix import ConfidenceWeights, build_interactions
from training.data.splits import Dataset, split_at
from training.models.factors import FitParams, fit
from training.models.today import TODAY_GRID, choose_today_weight

DAYS = 6


def with_a_last_day(events: pa.Table, moved: bool, newcomers: int = 0) -> pa.Table:
    """Six days of block events, then a seventh on which every user of the first two groups
    watches six videos of the other group (`moved`) or of their own, and `newcomers` users
    never seen before watch six of group 0's."""
    rows = [
        {
            "event_id": f"new-{n}-{i}",
            "ts": EPOCH + timedelta(days=DAYS, minutes=n * 10 + i),
            "user_id": f"n{n:03d}",
            "item_id": f"v0-{i:02d}",
            "watch_ratio": 1.0,
        }
        for n in range(newcomers)
        for i in range(6)
    ]
    users = sorted({str(u) for u in events.column("user_id").to_pylist()})
    for n, user in enumerate(u for u in users if user_group(u) in "01"):
        group = user_group(user)
        shown = ("1" if group == "0" else "0") if moved else group
        for i in range(6):
            rows.append(
                {
                    "event_id": f"today-{n}-{i}",
                    "ts": EPOCH + timedelta(days=DAYS, minutes=n * 10 + i),
                    "user_id": user,
                    "item_id": f"v{shown}-{(n + i * 2) % 12:02d}",
                    "watch_ratio": 1.0,
                }
            )
    return pa.concat_tables([events, event_table(rows)])


def user_group(user: str) -> str:
    return user[1]


def choose(moved: bool, newcomers: int = 0) -> tuple[float, dict[float, float], int]:
    events = with_a_last_day(
        block_events(groups=3, users_per_group=20, days=DAYS), moved, newcomers
    )
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    cutoff = EPOCH + timedelta(days=DAYS)
    train, _ = split_at(dataset, cutoff)
    params = FitParams(factors=8, regularization=0.1, iterations=10, seed=1)
    factors = fit(train.interactions.confidence, params, threads=1)
    choice = choose_today_weight(factors, dataset, cutoff)
    return choice.weight, choice.ndcg, choice.users


def test_users_whose_taste_moved_today_are_served_more_of_today() -> None:
    weight, ndcg, users = choose(moved=True)
    assert users == 40  # the two groups that watched on the last day
    assert set(ndcg) == set(TODAY_GRID)
    assert weight > 0
    assert ndcg[weight] > ndcg[0.0] + 0.1  # last night's vector alone misses the move


def test_users_whose_taste_held_keep_most_of_their_published_vector() -> None:
    weight, ndcg, _ = choose(moved=False)
    moved_weight, _, _ = choose(moved=True)
    assert weight < moved_weight
    assert ndcg[weight] >= ndcg[1.0]


def test_users_new_today_do_not_choose_it() -> None:
    """They have no published vector to blend (the service folds them in alone): counting
    them as served a zero vector would push the weight up for everyone."""
    events = with_a_last_day(block_events(groups=3, users_per_group=20, days=DAYS), False, 60)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    cutoff = EPOCH + timedelta(days=DAYS)
    train, _ = split_at(dataset, cutoff)
    params = FitParams(factors=8, regularization=0.1, iterations=10, seed=1)
    factors = fit(train.interactions.confidence, params, threads=1)
    known = pc.invert(pc.starts_with(events.column("user_id"), "n"))
    without = Dataset(dataset.interactions, events.filter(known), dataset.weights)
    assert choose_today_weight(factors, dataset, cutoff) == choose_today_weight(
        factors, without, cutoff
    )
