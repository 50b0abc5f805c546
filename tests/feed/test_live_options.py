"""The live features' switches, per request (a service setting or an experiment variant):
`today_weight` overrides the model's blend of today's behaviour, `live_trending` false ranks
with the trending prior as exported (recsvc.feed.compute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsvc.contract import vectors
from recsvc.contract.user_state import UserState, recent_entry
from recsvc.feed.compute import FeedOptions, rank_inputs, user_vector
from recsvc.feed.model import ServingModel
from recsvc.service.snapshot import Snapshot
from tests.feed.test_fresh import catalog
from tests.http import planted


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ServingModel:
    directory = planted.write_planted_model(
        tmp_path_factory.mktemp("models"), "planted", trending_weight=2.0, today_weight=0.75
    )
    return ServingModel.load(Path(directory), generation=1)


def insurance_user_who_watched_investing() -> UserState:
    vector = np.array([1.0, 0, 0, 0], dtype=np.float32)
    recent = tuple(recent_entry("video", v, "view", 1.0).encode() for v in ("v20", "v21"))
    return UserState(vector=vectors.encode(vector), recent_raw=recent, capped=frozenset())


@pytest.mark.parametrize(("weight", "axis"), [(None, 2), (0.0, 0), (1.0, 2)])
def test_the_today_weight_overrides_the_models(
    model: ServingModel, weight: float | None, axis: int
) -> None:
    vector, _ = user_vector(model, insurance_user_who_watched_investing(), weight)
    assert vector is not None and int(np.argmax(vector)) == axis
    if weight == 0.0:
        np.testing.assert_allclose(vector, [1.0, 0, 0, 0], atol=0.01)


def test_live_trending_off_ranks_with_the_prior_as_exported(model: ServingModel) -> None:
    counts = {"v31": 50, "v32": 10}  # live counts: the credit videos trend
    live = model.with_live_trending(counts, revision=1)
    assert live.trending_live
    rules = Snapshot().with_model(live).with_catalog(catalog()).rules
    assert rules is not None
    state = insurance_user_who_watched_investing()
    options = [FeedOptions(), FeedOptions(live_trending=False)]
    inputs = rank_inputs(live, rules, [state, state], [5, 5], options)
    v31 = planted.VIDEOS.index("v31")
    assert inputs.video_bias[0, v31] > 0  # the live prior lifts it
    assert inputs.video_bias[1, v31] == 0  # the exported prior is 0 for every video
