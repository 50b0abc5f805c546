"""Fold-in in numpy gives implicit's own `recalculate_user` on the same model."""

import numpy as np
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from recsvc.feed.foldin import fold_in


@pytest.mark.parametrize("alpha", [1.0, 7.5])
def test_fold_in_matches_implicits_recalculate_user(alpha: float) -> None:
    rng = np.random.default_rng(1)
    matrix = sp.random(200, 60, density=0.1, random_state=1, format="csr", dtype=np.float32)
    matrix.data = rng.uniform(0.2, 5, matrix.nnz).astype(np.float32)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(
            factors=8, regularization=0.3, alpha=alpha, iterations=5, random_state=0, num_threads=1
        )
        model.fit(matrix, show_progress=False)
    gram = model.item_factors.T @ model.item_factors
    params = {"alpha": alpha, "regularization": 0.3, "confidence": "linear"}
    for user in range(20):
        row = matrix[user]
        with threadpool_limits(1, "blas"):
            expected = model.recalculate_user(user, row)
        got = fold_in(model.item_factors, gram, row.indices, row.data, params)
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)


def test_log_confidence_and_the_empty_history() -> None:
    rng = np.random.default_rng(2)
    items = rng.normal(size=(10, 4)).astype(np.float32)
    gram = items.T @ items
    params = {"alpha": 2.0, "regularization": 0.1, "confidence": "log"}
    raw = np.array([3.0, 1.0])
    logged = fold_in(items, gram, np.array([1, 4]), raw, params)
    linear = fold_in(
        items, gram, np.array([1, 4]), np.log1p(raw), {**params, "confidence": "linear"}
    )
    np.testing.assert_allclose(logged, linear, rtol=1e-6)
    assert not fold_in(items, gram, np.array([], int), np.array([]), params).any()
