"""The attach hit rate (training.evaluation.attach), worked by hand on planted factors, and
the attach weights' path from the tuner through the export to the service.

Planted: two axes. User u0 lies on axis 0 ("a"); videos v-a (axis 0) and v-b (mostly axis 1,
a little axis 0); products p-a (axis 0), p-b (axis 1) and p-held (axis 0, held by u0 in
training). u0 watched v-w in training and bought p-b in the held-out part: the user alone
prefers p-a; under v-b, a video weight puts p-b on the page.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsvc.contract.user_state import UserState
from recsvc.feed.compute import FeedOptions, rank_inputs
from recsvc.feed.model import ServingModel
from tests.feed.test_sources_table import MODEL, RULES
from training.data.matrix import Interactions, ItemIndex
from training.evaluation.attach import ATTACH_WEIGHTS, attach_hit_rate, choose_attach_weights
from training.evaluation.evaluate import EvalSpec, EvaluationSet, FactorScorer
from training.models.factors import Factors, FitParams

VIDEOS = ["v-a", "v-b", "v-w"]
PRODUCTS = ["p-a", "p-b", "p-held"]
ITEMS = np.array(
    [[1.0, 0.0], [0.3, 1.0], [0.0, 0.1], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]], dtype=np.float32
)


def planted() -> tuple[FactorScorer, EvaluationSet]:
    index = ItemIndex(np.array(["u0"]), np.array(VIDEOS), np.array(PRODUCTS))
    factors = Factors(np.array([[1.0, 0.0]], np.float32), ITEMS, FitParams())
    shape = (1, 6)
    seen = sp.csr_matrix(([1.0, 16.0], ([0, 0], [2, 5])), shape=shape, dtype=np.float32)
    held = sp.csr_matrix(([16.0], ([0], [4])), shape=shape, dtype=np.float32)
    bought = sp.csr_matrix(([1.0], ([0], [4])), shape=shape, dtype=np.float32)
    train = Interactions(index, seen, sp.csr_matrix(([1.0], ([0], [5])), shape=shape))
    test = Interactions(index, held, bought)
    data = EvaluationSet(train, test, np.array([0]), 0, np.zeros(6, dtype=bool))
    return FactorScorer(factors, index), data


def test_the_user_alone_attaches_the_users_product_everywhere() -> None:
    scorer, data = planted()
    # page: v-a, v-b (v-w was watched); under both, p-a (p-held is held): p-b never shown
    assert attach_hit_rate(scorer, data, EvalSpec(k=2), (1.0, 0.0)) == (0.0, 1)


def test_a_video_weight_puts_the_videos_product_on_the_page() -> None:
    scorer, data = planted()
    # under v-b: 1·0 + 3·1.0 for p-b beats 1·1 + 3·0.3 for p-a; under v-a p-a; both shown
    assert attach_hit_rate(scorer, data, EvalSpec(k=2), (1.0, 3.0)) == (1.0, 1)
    # one card per page: the best-scoring pair, p-a under v-a (1 + 3·1 = 4 > 3 for p-b)
    assert attach_hit_rate(scorer, data, EvalSpec(k=2), (1.0, 3.0), max_attached=1) == (0.0, 1)


def test_a_held_product_is_never_attached() -> None:
    scorer, data = planted()
    # p-held scores 2 with the user: it would win every slot if holdings did not block it
    rate = attach_hit_rate(
        scorer, replace(data, test=replace(data.test)), EvalSpec(k=2), (1.0, 0.0)
    )
    assert rate == (0.0, 1)


def test_the_grid_moves_off_the_default_only_for_a_strictly_better_ratio() -> None:
    scorer, data = planted()
    weights, tried = choose_attach_weights(scorer, data, EvalSpec(k=2))
    assert tried[0]["weights"] == [1.0, 1.0] and len(tried) == len(ATTACH_WEIGHTS)
    assert tried[0]["attach_hit_rate"] == 0.0  # (1, 1): p-a under both videos
    assert weights != (1.0, 1.0) and max(t["attach_hit_rate"] for t in tried) == 1.0
    assert all(w[1] > 0 for w in ATTACH_WEIGHTS)  # never one card per page by design


def test_a_split_where_nothing_is_found_keeps_the_default() -> None:
    scorer, data = planted()
    # the held-out purchase is p-held, which training holds: no point can ever find it
    bought_held = sp.csr_matrix(([1.0], ([0], [5])), shape=(1, 6), dtype=np.float32)
    nothing = replace(data, test=replace(data.test, purchases=bought_held))
    weights, tried = choose_attach_weights(scorer, nothing, EvalSpec(k=2))
    assert {t["attach_hit_rate"] for t in tried} == {0.0} and weights == (1.0, 1.0)


def test_data_without_videos_or_purchases_measures_nothing() -> None:
    scorer, data = planted()
    nothing_bought = replace(data, test=replace(data.test, purchases=sp.csr_matrix((1, 6))))
    assert attach_hit_rate(scorer, nothing_bought, EvalSpec(k=2), (1.0, 1.0)) is None
    assert choose_attach_weights(scorer, nothing_bought, EvalSpec(k=2)) == ((1.0, 1.0), [])


@pytest.mark.parametrize(
    ("options", "model_weights", "served"),
    [
        (FeedOptions(), (1.0, 1.0), (1.0, 1.0)),
        (FeedOptions(), (1.0, 3.0), (1.0, 3.0)),  # settings unset: the model's choice
        (FeedOptions(attach_weights=(2.0, None)), (1.0, 3.0), (2.0, 3.0)),  # a setting wins
        (FeedOptions().with_overrides({"attach_video_weight": 0.5}), (1.0, 3.0), (1.0, 0.5)),
        # a setting that would leave both at 0 (cards chosen by nothing) leaves the model's
        (FeedOptions(attach_weights=(None, 0.0)), (0.0, 1.0), (0.0, 1.0)),
    ],
)
def test_the_service_serves_the_models_weights_unless_told_otherwise(
    options: FeedOptions, model_weights: tuple[float, float], served: tuple[float, float]
) -> None:
    model: ServingModel = replace(MODEL, attach_weights=model_weights)
    inputs = rank_inputs(model, RULES, [UserState(capped=frozenset())], [4], [options])
    assert inputs.weights == served


def test_the_tuned_weights_reach_the_manifest_and_the_service(tmp_path: Path) -> None:
    from tests.builders import block_events
    from training.data.matrix import ConfidenceWeights, build_interactions
    from training.data.splits import Dataset
    from training.models.factors import fit
    from training.models.pipeline import export_trained

    events = block_events(groups=2, users_per_group=10)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    params = FitParams(factors=4, iterations=3, attach_user_weight=1.0, attach_video_weight=10.0)
    factors = fit(dataset.interactions.confidence, params, threads=1)
    model_dir = export_trained(tmp_path, factors, dataset, {"window": {}}, {})
    model = ServingModel.load(model_dir, None)
    assert model.ranking.manifest.params["attach_weights"] == [1.0, 10.0]
    assert model.attach_weights == (1.0, 10.0)
