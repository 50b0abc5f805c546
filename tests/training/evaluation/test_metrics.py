"""The metric functions against examples computed by hand."""

import math

import numpy as np
import pytest
import scipy.sparse as sp

from training.evaluation.metrics import (
    hit_matrix,
    hit_rate,
    per_user_ranking,
    ranking_metrics,
    top_k,
)


def relevant(rows: list[list[int]], n_items: int = 8) -> sp.csr_matrix:
    data = [(r, c) for r, cols in enumerate(rows) for c in cols]
    r, c = zip(*data, strict=True) if data else ([], [])
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(rows), n_items))


def test_one_user_by_hand() -> None:
    # ranked [3, 1, 2], relevant {1, 2, 5}: hits at ranks 2 and 3
    m = ranking_metrics(np.array([[3, 1, 2]]), relevant([[1, 2, 5]]), k=3, n_candidates=8)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.ndcg == pytest.approx(dcg / idcg)
    assert m.map == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert m.coverage == pytest.approx(3 / 8)
    assert m.users == 1


def test_precision_divides_by_k_not_by_the_relevant_count() -> None:
    # one relevant item found first: P@3 is 1/3 (implicit's "precision" would say 1)
    m = ranking_metrics(np.array([[0, 1, 2]]), relevant([[0]]), k=3, n_candidates=8)
    assert m.precision == pytest.approx(1 / 3)
    assert m.recall == 1.0
    assert m.ndcg == 1.0
    assert m.map == 1.0


def test_users_without_relevant_items_are_not_averaged() -> None:
    top = np.array([[0, 1], [0, 1], [4, 5]])
    m = ranking_metrics(top, relevant([[0], [], [7]]), k=2, n_candidates=8)
    assert m.users == 2
    assert m.precision == pytest.approx((1 / 2 + 0) / 2)
    assert m.recall == pytest.approx((1 + 0) / 2)


def test_empty_slots_are_misses_and_short_lists_are_padded() -> None:
    m = ranking_metrics(np.array([[2, -1]]), relevant([[2, 3]]), k=4, n_candidates=8)
    assert m.precision == pytest.approx(1 / 4)
    assert m.ndcg == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_map_counts_only_the_first_k_relevant() -> None:
    # 5 relevant, k=2, both hits: AP@2 = (1 + 1) / min(5, 2) = 1
    m = ranking_metrics(np.array([[0, 1]]), relevant([[0, 1, 2, 3, 4]]), k=2, n_candidates=8)
    assert m.map == 1.0
    assert m.recall == pytest.approx(2 / 5)


def test_hit_matrix_marks_exact_cells() -> None:
    hits = hit_matrix(np.array([[1, 2, -1], [0, 7, 6]]), relevant([[2], [6, 7]]))
    assert hits.tolist() == [[False, True, False], [False, True, True]]


def test_hit_rate_counts_pairs() -> None:
    rate, pairs = hit_rate(np.array([[1, 2], [3, 4]]), relevant([[2, 5], [6]]))
    assert pairs == 3
    assert rate == pytest.approx(1 / 3)
    assert hit_rate(np.array([[1]]), relevant([[]])) == (0.0, 0)


def test_top_k_orders_by_score_and_breaks_ties_by_lower_index() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    assert top_k(scores, 3).tolist() == [[1, 2, 4], [0, 1, 2]]
    assert top_k(scores, 4).tolist() == [[1, 2, 4, 3], [0, 1, 2, 3]]


def test_top_k_never_returns_excluded_or_nan_items() -> None:
    scores = np.array([[5.0, 1.0, np.nan, 2.0, 1.0]])
    exclude = sp.csr_matrix(np.array([[1, 0, 0, 0, 0]]))
    assert top_k(scores, 5, exclude).tolist() == [[3, 1, 4, -1, -1]]
    assert top_k(scores, 10).shape == (1, 5)
    assert top_k(np.empty((0, 5)), 3).shape == (0, 3)


def test_top_k_agrees_with_a_full_sort_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, size=(50, 40)).astype(np.float32)  # many ties
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :7]
    assert (top_k(scores, 7) == expected).all()


def test_ndcg_ideal_is_capped_at_k_when_more_items_are_relevant() -> None:
    # 4 relevant, k=2, hits at both ranks: the ideal is the first 2 ranks, so NDCG is 1
    m = ranking_metrics(np.array([[0, 1]]), relevant([[0, 1, 2, 3]]), k=2, n_candidates=8)
    assert m.ndcg == pytest.approx(1.0)
    miss_first = ranking_metrics(np.array([[5, 1]]), relevant([[0, 1, 2, 3]]), k=2, n_candidates=8)
    assert miss_first.ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_the_per_user_values_average_to_the_metrics() -> None:
    rng = np.random.default_rng(4)
    relevant = sp.random(40, 30, density=0.1, format="csr", random_state=5)
    relevant.data[:] = 1.0
    relevant.sort_indices()
    top = np.argsort(-rng.random((40, 30)), axis=1)[:, :10]
    metrics = ranking_metrics(top, relevant, 10, 30).as_dict()
    per_user = per_user_ranking(top, relevant, 10)
    for name, values in per_user.items():
        assert len(values) == metrics["users"]
        assert values.mean() == pytest.approx(metrics[name])
