"""The joint user × item matrix: confidences, column layout, purchases."""

from datetime import timedelta

import numpy as np
import pytest

from tests.builders import EPOCH, event_table
from training.data.matrix import ConfidenceWeights, aggregate, build_index, build_interactions


def test_a_view_weighs_by_its_watch_ratio_and_impressions_weigh_nothing() -> None:
    events = event_table(
        [
            {"user_id": "a", "item_id": "v1", "action": "view", "watch_ratio": 0.5},
            {"user_id": "a", "item_id": "v1", "action": "view", "watch_ratio": 0.25},
            {"user_id": "a", "item_id": "v2", "action": "impression"},
            {"user_id": "a", "item_id": "v3", "action": "view"},  # no ratio: full weight
        ]
    )
    weights = ConfidenceWeights(view=2.0)
    assert weights.per_event(events).tolist() == [1.0, 0.5, 0.0, 2.0]
    m = build_interactions(events, weights)
    assert m.index.video_ids.tolist() == ["v1", "v2", "v3"]
    assert m.confidence.toarray().tolist() == [[1.5, 0.0, 2.0]]  # v2 indexed, never weighted


def test_videos_come_first_then_products_and_same_ids_stay_distinct() -> None:
    events = event_table(
        [
            {"user_id": "b", "item_id": "x", "item_type": "product", "action": "purchase"},
            {"user_id": "a", "item_id": "x", "item_type": "video", "watch_ratio": 1.0},
            {"user_id": "a", "item_id": "w", "item_type": "product", "action": "click"},
        ]
    )
    m = build_interactions(events, ConfidenceWeights(click=4, purchase=16))
    assert m.index.item_ids.tolist() == ["x", "w", "x"]
    assert (m.index.n_videos, m.index.n_items) == (1, 3)
    assert m.index.user_ids.tolist() == ["a", "b"]
    assert m.confidence.toarray().tolist() == [[1.0, 4.0, 0.0], [0.0, 0.0, 16.0]]
    assert m.purchases.toarray().tolist() == [[0, 0, 0], [0, 0, 1]]


def test_aggregate_under_a_foreign_index_skips_unknown_users_and_items() -> None:
    known = event_table([{"user_id": "a", "item_id": "v1"}])
    index = build_index(known)
    more = event_table(
        [
            {"user_id": "a", "item_id": "v1"},
            {"user_id": "z", "item_id": "v1"},
            {"user_id": "a", "item_id": "v9"},
        ]
    )
    m = aggregate(more, index, ConfidenceWeights())
    assert m.confidence.shape == (1, 1)
    assert m.confidence.toarray().tolist() == [[1.0]]


def test_keep_pairs_keeps_purchases_of_kept_pairs_only() -> None:
    events = event_table(
        [
            {"user_id": "a", "item_id": "p", "item_type": "product", "action": "purchase"},
            {"user_id": "a", "item_id": "v", "watch_ratio": 1.0},
        ]
    )
    m = build_interactions(events)
    coo = m.confidence.tocoo()
    keep_product = coo.col == m.index.n_videos
    assert m.keep_pairs(keep_product).purchases.nnz == 1
    assert m.keep_pairs(~keep_product).purchases.nnz == 0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_weights_must_be_finite_and_non_negative(bad: float) -> None:
    with pytest.raises(ValueError, match="'click'"):
        ConfidenceWeights(click=bad)


def test_matrix_is_float32_csr_with_sorted_indices() -> None:
    m = build_interactions(event_table([{"user_id": "a", "item_id": f"v{i}"} for i in (3, 1, 2)]))
    assert m.confidence.dtype == np.float32
    assert m.confidence.has_sorted_indices


def test_a_replay_counts_up_to_the_watch_ratio_cap() -> None:
    """A watch ratio above 1 is a replay: a view weighs view × min(ratio, cap)."""
    events = event_table(
        [
            {"user_id": "a", "item_id": "v1", "watch_ratio": 3.0},
            {"user_id": "a", "item_id": "v2", "watch_ratio": 0.5},
            {"user_id": "a", "item_id": "v3", "watch_ratio": 1.5},
        ]
    )
    assert ConfidenceWeights().per_event(events).tolist() == [1.0, 0.5, 1.0]
    capped = ConfidenceWeights(view=2.0, watch_ratio_cap=2.0).per_event(events)
    assert capped.tolist() == [4.0, 1.0, 3.0]


@pytest.mark.parametrize("cap", [0.0, -1.0, float("nan"), float("inf")])
def test_a_watch_ratio_cap_that_is_not_positive_and_finite_is_refused(cap: float) -> None:
    with pytest.raises(ValueError, match="watch_ratio_cap"):
        ConfidenceWeights(watch_ratio_cap=cap)


def test_the_manifest_gets_the_weight_of_each_action_and_the_cap_apart() -> None:
    weights = ConfidenceWeights(click=2.0, watch_ratio_cap=3.0)
    assert weights.per_action() == {"impression": 0.0, "view": 1.0, "click": 2.0, "purchase": 16.0}


def test_recency_halves_an_events_weight_every_half_life_before_the_last_event() -> None:
    """Hand-worked: with a 2-day half-life, events 0, 2 and 4 days before the last one weigh
    1, 1/2 and 1/4 of what they would; off (0), every age counts the same."""
    last = EPOCH + timedelta(days=4)
    events = event_table(
        [
            {"user_id": "a", "item_id": "v1", "ts": last - timedelta(days=4)},
            {"user_id": "a", "item_id": "v2", "ts": last - timedelta(days=2)},
            {"user_id": "a", "item_id": "v3", "ts": last, "action": "click"},
        ]
    )
    assert ConfidenceWeights().per_event(events).tolist() == [1.0, 1.0, 4.0]
    recent = ConfidenceWeights(half_life_days=2.0).per_event(events)
    assert recent.tolist() == pytest.approx([0.25, 0.5, 4.0])
    m = build_interactions(events, ConfidenceWeights(half_life_days=2.0))
    assert m.confidence.toarray().tolist() == [pytest.approx([0.25, 0.5, 4.0])]


def test_a_negative_half_life_is_refused() -> None:
    with pytest.raises(ValueError, match="half_life_days"):
        ConfidenceWeights(half_life_days=-1.0)
