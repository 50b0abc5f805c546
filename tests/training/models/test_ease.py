"""Low-rank EASE (training.models.ease): its scores converge to full EASE's as the rank grows,
a user's vector is their history times the exported projection, and the service's fold-in of
the same history gives the same vector (exact, no solve)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import training.models.ease
from recsvc.contract.records import Source
from recsvc.contract.user_state import UserState, recent_entry
from recsvc.feed.compute import user_vector
from recsvc.feed.model import ServingModel
from tests.builders import block_events
from training.data.matrix import build_interactions
from training.models.ease import ease_weights, fit_ease, low_rank
from training.models.export import export_factors
from training.models.factors import FitParams, ModelFitError, fit


def matrix(seed: int = 0, users: int = 60, items: int = 25) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < 0.2) * rng.integers(1, 5, (users, items))
    return sp.csr_matrix(dense.astype(np.float32))


def test_full_ease_is_the_closed_form_with_a_zero_diagonal() -> None:
    x = matrix()
    weights = ease_weights(x, 10.0)
    gram = (x.T @ x).toarray() + 10.0 * np.eye(x.shape[1])
    p = np.linalg.inv(gram)
    expected = np.eye(x.shape[1]) - p / np.diag(p)[None, :]
    assert np.allclose(np.diag(weights), 0.0)
    assert np.allclose(weights, expected, atol=1e-9)


def test_low_rank_scores_converge_to_full_eases_as_the_rank_grows() -> None:
    x = matrix()
    full = x @ ease_weights(x, 10.0)
    errors = []
    for rank in (2, 6, 12, 20, 25):
        projection, items = low_rank(ease_weights(x, 10.0), rank)
        errors.append(np.linalg.norm(x @ projection @ items.T - full) / np.linalg.norm(full))
    assert all(a >= b - 1e-12 for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[0] > 0.1 and errors[-1] < 1e-8, errors


def test_a_users_vector_is_their_history_times_the_projection() -> None:
    x = matrix()
    users, items, projection, _ = fit_ease(x, 10.0, 8)
    assert users.shape == (60, 8) and items.shape == (25, 8) and projection.shape == (25, 8)
    assert np.allclose(users, x @ projection, atol=1e-4)


def test_the_services_fold_in_of_a_users_history_is_their_trained_vector(tmp_path: Path) -> None:
    events = block_events(groups=2, users_per_group=12, videos_per_group=8)
    interactions = build_interactions(events)
    params = FitParams(algorithm="ease", factors=6, regularization=20.0)
    factors = fit(interactions.confidence, params)
    index = interactions.index
    directory = export_factors(tmp_path / "models", factors, index, {}, {})
    model = ServingModel.load(directory, None)
    assert model.projection is not None
    for row in (0, 5, 17):
        user = index.user_ids[row]
        mine = events.filter(np.asarray(events.column("user_id").to_pylist()) == user)
        recent = tuple(
            recent_entry(e["item_type"], e["item_id"], e["action"], e["watch_ratio"]).encode()
            for e in mine.to_pylist()
        )
        vector, source = user_vector(model, UserState(recent_raw=recent))
        assert source is Source.FOLD_IN and vector is not None
        assert np.allclose(vector, factors.user[row], atol=1e-4)


def test_a_catalogue_too_large_for_a_dense_item_matrix_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(training.models.ease, "EASE_MAX_ITEMS", 10)
    with pytest.raises(ModelFitError, match="at most 10 items"):
        fit(matrix(), FitParams(algorithm="ease", factors=4, regularization=10.0))
