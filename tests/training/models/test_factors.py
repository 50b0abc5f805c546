"""Fitting implicit's models: the planted structure is found, fits are reproducible, factors
round-trip through .npy files without pickles."""

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tests.builders import block_events
from training.data.matrix import build_interactions
from training.models.factors import FitParams, ModelFitError, fit, load_factors, save_factors


def checkerboard(n: int = 50) -> sp.csr_matrix:
    """Users and items in two halves; a user likes every item of its own half but its diagonal."""
    liked = np.fromfunction(lambda u, i: (u < n // 2) == (i < n // 2), (n, n), dtype=int)
    np.fill_diagonal(liked, False)
    return sp.csr_matrix(liked.astype(np.float32))


@pytest.mark.parametrize("algorithm", ["als", "bpr"])
def test_the_held_out_item_of_the_own_half_ranks_above_the_other_half(algorithm: str) -> None:
    matrix = checkerboard()
    params = FitParams(
        algorithm=algorithm, factors=3, regularization=0.01, iterations=50, learning_rate=0.05
    )
    factors = fit(matrix, params, threads=1)
    scores = factors.user @ factors.item.T
    n = matrix.shape[0]
    own = np.array([scores[u, u] for u in range(n)])
    other_half = np.array([scores[u, (u + n // 2) % n] for u in range(n)])
    assert (own > other_half).all()


def test_block_users_score_their_own_group_highest() -> None:
    data = build_interactions(block_events(groups=3, users_per_group=30))
    factors = fit(data.confidence, FitParams(factors=8, regularization=0.1, iterations=15))
    groups = np.array([uid.split("-")[0][1:] for uid in data.index.user_ids])
    item_groups = np.array([iid.split("-")[0][1:] for iid in data.index.item_ids])
    best = np.argmax(factors.user @ factors.item.T, axis=1)
    assert (item_groups[best] == groups).mean() == 1.0


def test_a_fit_is_reproducible_for_a_seed() -> None:
    matrix = checkerboard(30)
    first = fit(matrix, FitParams(factors=4, seed=3), threads=1)
    again = fit(matrix, FitParams(factors=4, seed=3), threads=1)
    other = fit(matrix, FitParams(factors=4, seed=4), threads=1)
    np.testing.assert_array_equal(first.user, again.user)
    np.testing.assert_array_equal(first.item, again.item)
    assert not np.array_equal(first.item, other.item)


def test_log_confidence_changes_what_the_model_sees() -> None:
    matrix = checkerboard(20) * 50
    linear = fit(matrix, FitParams(factors=4, confidence="linear"), threads=1)
    log = fit(matrix, FitParams(factors=4, confidence="log"), threads=1)
    assert not np.allclose(linear.item, log.item)


def test_non_finite_input_is_a_fit_error_not_silent_nan_factors() -> None:
    matrix = checkerboard(10)
    matrix.data[0] = np.nan
    with pytest.raises(ModelFitError, match="non-finite values"):
        fit(matrix, FitParams(factors=2, iterations=2), threads=1)


@pytest.mark.parametrize(
    "kwargs", [{"factors": 0}, {"iterations": 0}, {"alpha": 0}, {"regularization": -1}]
)
def test_bad_parameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        FitParams(**kwargs)


def test_factors_round_trip_without_pickles(tmp_path: Path) -> None:
    data = build_interactions(block_events(groups=2, users_per_group=5))
    factors = fit(data.confidence, FitParams(factors=4, iterations=3), threads=1)
    save_factors(factors, data.index, tmp_path, {"note": "x"})
    for name in ("user_ids.npy", "item_ids.npy"):
        assert np.load(tmp_path / name, allow_pickle=False).dtype.kind == "U"
    loaded, index, info = load_factors(tmp_path)
    np.testing.assert_array_equal(loaded.user, factors.user)
    np.testing.assert_array_equal(loaded.item, factors.item)
    assert loaded.params == factors.params
    assert index.item_ids.tolist() == data.index.item_ids.tolist()
    assert index.n_videos == data.index.n_videos
    assert info["note"] == "x"
