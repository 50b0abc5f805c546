"""Evaluation: who is evaluated, and how the model, popularity and an oracle compare."""

from dataclasses import dataclass

import numpy as np
import pytest

from tests.builders import block_events
from training.data.matrix import build_interactions
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.evaluation.evaluate import (
    EvalSpec,
    FactorScorer,
    OracleScorer,
    PopularityScorer,
    evaluate,
    evaluation_set,
    ranked_products,
    ranked_videos,
)
from training.models.factors import FitParams, fit


def planted_split(protocol: Protocol = Protocol.PER_USER):
    events = block_events(groups=4, users_per_group=40, videos_per_group=15, products_per_group=3)
    data = Dataset(build_interactions(events), events)
    return data, *split(data, SplitSpec(protocol))


@dataclass
class BlockTruth:
    """Knows the planted groups: an item scores 1 for users of its group."""

    user_ids: np.ndarray
    video_ids: np.ndarray
    product_ids: np.ndarray

    def _scores(self, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        user_group = np.array([u.split("-")[0][1:] for u in self.user_ids[rows]])
        item_group = np.array([i.split("-")[0][1:] for i in items])
        return (user_group[:, None] == item_group[None, :]).astype(float)

    def video_scores(self, rows: np.ndarray) -> np.ndarray:
        return self._scores(rows, self.video_ids)

    def product_scores(self, rows: np.ndarray) -> np.ndarray:
        return self._scores(rows, self.product_ids)


def test_the_model_finds_the_blocks_and_beats_popularity() -> None:
    data, train, test = planted_split()
    spec = EvalSpec(k=5, product_k=1)
    evaluated = evaluation_set(train.interactions, test, spec)
    factors = fit(train.interactions.confidence, FitParams(factors=8, regularization=0.1))
    model = evaluate(FactorScorer(factors, data.interactions.index), evaluated, spec)
    popular = evaluate(PopularityScorer(train.interactions), evaluated, spec)
    assert model.videos.precision > 1.5 * popular.videos.precision
    assert model.product_hit_rate is not None and popular.product_hit_rate is not None
    assert model.product_hit_rate > popular.product_hit_rate


def test_an_oracle_that_knows_the_held_out_items_is_perfect_even_with_ids_reordered() -> None:
    data, train, test = planted_split()
    index = data.interactions.index
    spec = EvalSpec(k=5)
    evaluated = evaluation_set(train.interactions, test, spec)
    held_out = test.confidence.toarray() > 0
    order = np.arange(index.n_users)[::-1]  # the truth lists users in reverse order

    class KnowsTheAnswer:
        user_ids = index.user_ids[order]
        video_ids = index.video_ids
        product_ids = index.product_ids

        def video_scores(self, rows: np.ndarray) -> np.ndarray:
            return held_out[order[rows]][:, index.videos].astype(float)

        def product_scores(self, rows: np.ndarray) -> np.ndarray:
            return held_out[order[rows]][:, index.products].astype(float)

    oracle = evaluate(OracleScorer(KnowsTheAnswer(), index), evaluated, spec)
    n_relevant = held_out[evaluated.users][:, index.videos].sum(axis=1)
    assert oracle.videos.precision == pytest.approx(np.mean(np.minimum(n_relevant, 5) / 5))
    assert oracle.videos.ndcg == pytest.approx(1.0)
    assert oracle.product_hit_rate == pytest.approx(1.0)


def test_an_oracle_missing_an_id_is_refused() -> None:
    data, _, _ = planted_split()
    index = data.interactions.index
    truth = BlockTruth(index.user_ids[1:], index.video_ids, index.product_ids)
    with pytest.raises(ValueError, match="no user"):
        OracleScorer(truth, index)


def test_only_users_with_training_and_held_out_data_are_evaluated() -> None:
    data, train, test = planted_split(Protocol.TEMPORAL)
    evaluated = evaluation_set(train.interactions, test, EvalSpec())
    has_train = np.diff(train.interactions.confidence.indptr)[evaluated.users] > 0
    has_test = np.diff(test.confidence.indptr)[evaluated.users] > 0
    assert has_train.all() and has_test.all()
    sampled = evaluation_set(train.interactions, test, EvalSpec(max_users=10, seed=1))
    assert len(sampled.users) == 10 and set(sampled.users) <= set(evaluated.users)


def test_popularity_puts_bought_products_before_merely_clicked_ones() -> None:
    _, train, _ = planted_split()
    scores = PopularityScorer(train.interactions).product_scores(np.array([0]))[0]
    bought = train.interactions.purchases.sum(axis=0).A.ravel()[train.interactions.index.products]
    assert (scores[bought > 0].min()) > (scores[bought == 0].max(initial=-1))


def test_retired_items_are_neither_ranked_nor_relevant_for_any_scorer() -> None:
    data, train, test = planted_split()
    index = data.interactions.index
    retired = np.zeros(index.n_items, dtype=bool)
    retired[[0, 1, 2, index.n_videos]] = True  # three videos and the first product
    spec = EvalSpec(k=5, product_k=2)
    evaluated = evaluation_set(train.interactions, test, spec, retired)
    assert not retired[evaluated.test.confidence.tocoo().col].any()

    class LovesRetired:
        """Scores the retired items highest: they must still never be ranked."""

        name = "loves-retired"

        def video_scores(self, rows: np.ndarray) -> np.ndarray:
            return np.tile(retired[index.videos].astype(float), (len(rows), 1))

        def product_scores(self, rows: np.ndarray) -> np.ndarray:
            return np.tile(retired[index.products].astype(float), (len(rows), 1))

    scorer = LovesRetired()
    top_videos = ranked_videos(scorer, evaluated, spec)
    top_products = ranked_products(scorer, evaluated, evaluated.users, spec)
    assert (top_videos >= 0).all() and (top_products >= 0).all()
    assert not retired[index.videos][top_videos].any()
    assert not retired[index.products][top_products].any()
    unmasked = evaluation_set(train.interactions, test, spec)
    assert retired[index.videos][ranked_videos(scorer, unmasked, spec)].any()  # it would have
