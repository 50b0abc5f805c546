"""The live model scores a new dataset: its own vectors where it has them, popularity for
users it does not know, and −inf for items it never saw."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.data.matrix import ItemIndex
from training.evaluation.live_scorer import LiveModelScorer
from training.models.export import export_factors
from training.models.factors import Factors, FitParams

RNG = np.random.default_rng(7)


def index(users: list[str], videos: list[str], products: list[str]) -> ItemIndex:
    return ItemIndex(np.array(users), np.array(videos), np.array(products))


def live_model(tmp_path: Path) -> tuple[Path, Factors, ItemIndex]:
    old = index(["u1", "u2", "u3"], ["v1", "v2", "v3"], ["p1", "p2"])
    factors = Factors(
        user=RNG.normal(size=(3, 4)).astype(np.float32),
        item=RNG.normal(size=(5, 4)).astype(np.float32),
        params=FitParams(factors=4),
    )
    popularity = {"video_popularity.npy": np.array([5.0, 9.0, 1.0], dtype=np.float32)}
    directory = export_factors(tmp_path / "models", factors, old, {}, {}, popularity)
    return directory, factors, old


def test_on_its_own_index_it_scores_like_its_factors(tmp_path: Path) -> None:
    directory, factors, old = live_model(tmp_path)
    scorer = LiveModelScorer(directory, old)
    users = np.arange(3)
    assert np.allclose(scorer.video_scores(users), factors.scores(users, old.videos), atol=1e-5)
    assert np.allclose(scorer.product_scores(users), factors.scores(users, old.products), atol=1e-5)


def test_new_users_get_popularity_and_new_items_cannot_be_recommended(tmp_path: Path) -> None:
    directory, factors, old = live_model(tmp_path)
    new = index(["u0", "u2"], ["v0", "v1", "v3"], ["p2", "p9"])
    scorer = LiveModelScorer(directory, new)
    videos = scorer.video_scores(np.arange(2))
    assert videos[0].tolist() == [-np.inf, 5.0, 1.0]  # u0 unknown: popularity, v0 unknown
    assert np.isneginf(videos[1, 0])  # v0 is new to the live model
    expected = factors.user[1] @ factors.item[[0, 2]].T  # u2 on v1, v3
    assert np.allclose(videos[1, 1:], expected, atol=1e-5)
    products = scorer.product_scores(np.arange(2))
    assert np.isneginf(products[:, 1]).all()  # p9 is new
    assert np.isclose(products[1, 0], factors.user[1] @ factors.item[4], atol=1e-5)
