"""The contract every scorer passes (training.evaluation.evaluate.Scorer), as implicit runs one
set of tests over each of its models: a new model family joins `SCORERS` and passes these
before it may be compared with the others.

A scorer, given rows of users of the evaluation's index:
- has a name, which the reports print;
- returns one row per user and one column per video (per product), of floats, none NaN
  (−inf is how an item the scorer cannot rank says so);
- scores a user the same whatever other users share the batch, and the same on every call:
  evaluation goes in batches of any size, and two runs must agree;
- answers an empty batch with an empty array of the right width;
- evaluates to metrics between 0 and 1, and never ranks a retired item.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.builders import block_events
from training.data.matrix import Interactions, build_interactions
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.evaluation.evaluate import (
    EvalSpec,
    FactorScorer,
    OracleScorer,
    PopularityScorer,
    Scorer,
    evaluate,
    evaluation_set,
    ranked_products,
    ranked_videos,
)
from training.evaluation.live_scorer import LiveModelScorer
from training.models.export import export_factors
from training.models.factors import FitParams, fit


@dataclass(frozen=True)
class Planted:
    """Four planted groups of users, videos and products, split per user."""

    train: Interactions
    test: Interactions
    tmp_path: Path


@dataclass
class GroupTruth:
    """A ground truth that knows the planted groups (an item scores 1 for its group's users)."""

    user_ids: np.ndarray
    video_ids: np.ndarray
    product_ids: np.ndarray

    def _scores(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        user_group = np.array([u.split("-")[0][1:] for u in self.user_ids[rows]], dtype=str)
        item_group = np.array([i.split("-")[0][1:] for i in items], dtype=str)
        return (user_group[:, None] == item_group[None, :]).astype(np.float64)

    def video_scores(self, rows: np.ndarray) -> np.ndarray:
        return self._scores(rows, self.video_ids)

    def product_scores(self, rows: np.ndarray) -> np.ndarray:
        return self._scores(rows, self.product_ids)


def factor_scorer(planted: Planted) -> Scorer:
    params = FitParams(factors=8, iterations=5, regularization=0.05, alpha=10.0)
    return FactorScorer(fit(planted.train.confidence, params), planted.train.index)


def ease_scorer(planted: Planted) -> Scorer:
    params = FitParams(algorithm="ease", factors=8, regularization=20.0)
    return FactorScorer(fit(planted.train.confidence, params), planted.train.index, "ease")


def popularity_scorer(planted: Planted) -> Scorer:
    return PopularityScorer(planted.train)


def oracle_scorer(planted: Planted) -> Scorer:
    index = planted.train.index
    truth = GroupTruth(index.user_ids[::-1].copy(), index.video_ids, index.product_ids)
    return OracleScorer(truth, index)


def live_scorer(planted: Planted) -> Scorer:
    """The live model as the nightly job reads it back: exported to a model directory, then
    scored on the evaluation's index (tests/training/evaluation/test_live_scorer.py covers
    users and items it never saw)."""
    index = planted.train.index
    factors = fit(planted.train.confidence, FitParams(factors=8, iterations=5))
    popularity = np.asarray(planted.train.confidence.sum(axis=0)).ravel()[index.videos]
    directory = export_factors(
        planted.tmp_path / "models",
        factors,
        index,
        {},
        {},
        {"video_popularity.npy": popularity.astype(np.float32)},
    )
    return LiveModelScorer(directory, index)


SCORERS: dict[str, Callable[[Planted], Scorer]] = {
    "factors": factor_scorer,
    "ease": ease_scorer,
    "popularity": popularity_scorer,
    "oracle": oracle_scorer,
    "live": live_scorer,
}


@pytest.fixture
def planted(tmp_path: Path) -> Planted:
    events = block_events(groups=4, users_per_group=30, videos_per_group=12, products_per_group=3)
    data = Dataset(build_interactions(events), events)
    train, test = split(data, SplitSpec(Protocol.PER_USER))
    return Planted(train.interactions, test, tmp_path)


@pytest.fixture(params=sorted(SCORERS))
def scorer(request: pytest.FixtureRequest, planted: Planted) -> Scorer:
    return SCORERS[request.param](planted)


def test_a_scorer_has_a_name(scorer: Scorer) -> None:
    assert isinstance(scorer.name, str) and scorer.name.strip()


@pytest.mark.parametrize("kind", ["video", "product"])
def test_one_finite_or_minus_inf_float_per_user_and_item(
    scorer: Scorer, planted: Planted, kind: str
) -> None:
    index = planted.train.index
    users = np.arange(index.n_users)
    scores = np.asarray(getattr(scorer, f"{kind}_scores")(users))
    width = index.n_videos if kind == "video" else len(index.product_ids)
    assert scores.shape == (index.n_users, width)
    assert np.issubdtype(scores.dtype, np.floating)
    assert not np.isnan(scores).any()
    assert not np.isposinf(scores).any()


@pytest.mark.parametrize("kind", ["video", "product"])
def test_a_users_scores_do_not_depend_on_the_batch_or_the_call(
    scorer: Scorer, planted: Planted, kind: str
) -> None:
    score = getattr(scorer, f"{kind}_scores")
    users = np.arange(planted.train.index.n_users)
    whole = np.array(score(users))
    shuffled = np.random.default_rng(3).permutation(users)
    one_by_one = np.vstack([np.array(score(np.array([user]))) for user in shuffled])
    # The same batch in another order: equal to float32 rounding (OpenBLAS 0.3.31, numpy 2.4,
    # computes a row's products to the last bit differently at different places in a batch)
    assert np.allclose(np.array(score(shuffled)), whole[shuffled], rtol=1e-6, atol=1e-7)
    assert np.allclose(one_by_one, whole[shuffled], rtol=1e-5, atol=1e-6)
    assert np.array_equal(np.array(score(users)), whole)  # the same call: exactly


@pytest.mark.parametrize("kind", ["video", "product"])
def test_an_empty_batch_is_an_empty_array_of_the_right_width(
    scorer: Scorer, planted: Planted, kind: str
) -> None:
    index = planted.train.index
    scores = np.asarray(getattr(scorer, f"{kind}_scores")(np.array([], dtype=np.int64)))
    assert scores.shape == (0, index.n_videos if kind == "video" else len(index.product_ids))


def test_it_evaluates_to_metrics_in_range_and_never_ranks_a_retired_item(
    scorer: Scorer, planted: Planted
) -> None:
    index = planted.train.index
    retired = np.zeros(index.n_items, dtype=bool)
    retired[[0, 5, index.n_videos]] = True  # two videos and the first product
    spec = EvalSpec(k=5, product_k=2)
    data = evaluation_set(planted.train, planted.test, spec, retired)

    report = evaluate(scorer, data, spec)

    assert report.name == scorer.name
    metrics = report.videos
    for value in (metrics.ndcg, metrics.precision, metrics.recall, metrics.map, metrics.coverage):
        assert 0.0 <= value <= 1.0
    assert report.product_hit_rate is not None and 0.0 <= report.product_hit_rate <= 1.0
    top_videos = ranked_videos(scorer, data, spec)
    top_products = ranked_products(scorer, data, data.users, spec)
    assert not retired[index.videos][top_videos[top_videos >= 0]].any()
    assert not retired[index.products][top_products[top_products >= 0]].any()
