"""Train/test protocols: stratification, determinism, and the temporal holdout."""

from datetime import timedelta

import numpy as np
import pytest

from tests.builders import EPOCH, block_events, event_table
from training.data.matrix import build_interactions, pair_keys
from training.data.splits import Dataset, Protocol, SplitSpec, split, stratified_mask


def dataset() -> Dataset:
    events = block_events(users_per_group=30, seed=1)
    return Dataset(build_interactions(events), events)


def test_every_group_keeps_round_ratio_of_its_pairs_in_train() -> None:
    groups = np.repeat(np.arange(5), [1, 2, 4, 8, 10])
    mask = stratified_mask(groups, 0.75, seed=42)
    per_group = [int(mask[groups == g].sum()) for g in range(5)]
    assert per_group == [1, 2, 3, 6, 8]  # round(0.75 n), halves to even


def test_hold_one_holds_out_a_pair_of_every_group_of_two_or_more() -> None:
    groups = np.repeat(np.arange(5), [1, 2, 3, 4, 10])
    mask = stratified_mask(groups, 0.8, seed=42, hold_one=True)
    per_group = [int(mask[groups == g].sum()) for g in range(5)]
    # round(0.8 n) would keep [1, 2, 2, 3, 8]: the group of 2 now holds one out, a lone
    # pair stays in train (nothing would be left to learn the group from)
    assert per_group == [1, 1, 2, 3, 8]


@pytest.mark.parametrize("protocol", [Protocol.RECOMMENDERS, Protocol.PER_USER])
def test_random_protocols_partition_the_pairs(protocol: Protocol) -> None:
    data = dataset()
    train, test = split(data, SplitSpec(protocol))
    all_keys = pair_keys(data.interactions.confidence)
    train_keys, test_keys = pair_keys(train.interactions.confidence), pair_keys(test.confidence)
    assert np.intersect1d(train_keys, test_keys).size == 0
    assert np.array_equal(np.union1d(train_keys, test_keys), all_keys)
    assert len(train_keys) / len(all_keys) == pytest.approx(0.75, abs=0.03)
    # purchases follow their pair
    assert train.interactions.purchases.nnz + test.purchases.nnz == data.interactions.purchases.nnz


def test_recommenders_protocol_stratifies_by_item_and_per_user_by_user() -> None:
    data = dataset()
    for protocol, axis in ((Protocol.RECOMMENDERS, 0), (Protocol.PER_USER, 1)):
        train, _ = split(data, SplitSpec(protocol))
        total = (data.interactions.confidence > 0).sum(axis=axis).A.ravel()
        kept = (train.interactions.confidence > 0).sum(axis=axis).A.ravel()
        assert np.array_equal(kept, np.round(total * 0.75)), protocol


def test_a_split_is_deterministic_for_a_seed_and_moves_with_it() -> None:
    data = dataset()
    first = pair_keys(split(data, SplitSpec(seed=7))[1].confidence)
    again = pair_keys(split(data, SplitSpec(seed=7))[1].confidence)
    other = pair_keys(split(data, SplitSpec(seed=8))[1].confidence)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_temporal_holds_out_the_last_days_and_drops_pairs_seen_before() -> None:
    last_day = EPOCH + timedelta(days=3)
    events = event_table(
        [
            {"user_id": "a", "item_id": "v1", "ts": EPOCH},
            {"user_id": "a", "item_id": "v2", "ts": EPOCH + timedelta(days=1)},
            {"user_id": "a", "item_id": "v1", "ts": last_day},  # seen before: not relevant
            {"user_id": "a", "item_id": "v3", "ts": last_day + timedelta(hours=5)},
            {"user_id": "b", "item_id": "v3", "ts": last_day},  # a cold user
        ]
    )
    data = Dataset(build_interactions(events), events)
    train, test = split(data, SplitSpec(Protocol.TEMPORAL, holdout_days=1))
    index = data.interactions.index
    assert train.events is not None and train.events.num_rows == 2
    assert train.interactions.confidence.toarray().tolist() == [[1, 1, 0], [0, 0, 0]]
    assert test.confidence.toarray().tolist() == [[0, 0, 1], [0, 0, 1]]
    assert index.user_ids.tolist() == ["a", "b"]
    two_days = split(data, SplitSpec(Protocol.TEMPORAL, holdout_days=3))[0]
    assert two_days.events is not None and two_days.events.num_rows == 1


def test_temporal_needs_timestamps() -> None:
    data = dataset()
    train, _ = split(data, SplitSpec())
    with pytest.raises(ValueError, match="needs event timestamps"):
        split(train, SplitSpec(Protocol.TEMPORAL))


@pytest.mark.parametrize("kwargs", [{"train_ratio": 1.0}, {"train_ratio": 0}, {"holdout_days": 0}])
def test_bad_split_specs_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SplitSpec(**kwargs)
