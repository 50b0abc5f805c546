"""The tuner: it records every trial, starts from the defaults, respects its budget, is
reproducible, and only ever sees the training part."""

import numpy as np
import pytest

from tests.builders import block_events
from training.data.matrix import build_interactions, pair_keys
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.models.factors import FitParams
from training.models.tuner import TuneBudget, perturb, sample_params, tune


def training_part() -> Dataset:
    events = block_events(groups=4, users_per_group=30, videos_per_group=15)
    return split(Dataset(build_interactions(events), events), SplitSpec(Protocol.PER_USER))[0]


def test_trials_start_from_the_defaults_and_the_best_is_the_top_scorer() -> None:
    base = FitParams(factors=2, regularization=50.0, iterations=10)  # deliberately poor
    result = tune(
        training_part(),
        SplitSpec(Protocol.PER_USER),
        TuneBudget(60, max_trials=12),
        base=base,
        threads=1,
    )
    assert len(result.trials) == 12
    assert result.trials[0].phase == "default" and result.trials[0].params == base
    assert {t.phase for t in result.trials[1:]} == {"random", "refine"}
    assert result.best_score == max(t.score for t in result.trials)
    assert result.best_score > result.trials[0].score  # the search improved on a poor start
    assert len(result.as_dict()["trials"]) == 12


def test_tuning_is_reproducible() -> None:
    train = training_part()
    spec = SplitSpec(Protocol.PER_USER)
    first = tune(train, spec, TuneBudget(60, max_trials=6), threads=1)
    again = tune(train, spec, TuneBudget(60, max_trials=6), threads=1)
    assert [t.params for t in first.trials] == [t.params for t in again.trials]
    assert [t.score for t in first.trials] == [t.score for t in again.trials]


def test_the_validation_split_is_carved_from_the_training_part_only() -> None:
    events = block_events(groups=3, users_per_group=20)
    data = Dataset(build_interactions(events), events)
    train, test = split(data, SplitSpec())
    spec = SplitSpec()
    # the tuner's own split, as it makes it: every pair it fits or validates on is a train pair
    inner_fit, inner_valid = split(train, SplitSpec(seed=spec.seed + 1, train_ratio=0.8))
    train_keys = pair_keys(train.interactions.confidence)
    for part in (inner_fit.interactions.confidence, inner_valid.confidence):
        assert np.isin(pair_keys(part), train_keys).all()
        assert not np.isin(pair_keys(part), pair_keys(test.confidence)).any()
    result = tune(train, spec, TuneBudget(60, max_trials=2), threads=1)
    assert "seed 43" in result.validation and "ratio 0.8" in result.validation


def test_a_time_budget_stops_the_search() -> None:
    result = tune(training_part(), SplitSpec(Protocol.PER_USER), TuneBudget(seconds=1.0), threads=1)
    assert len(result.trials) >= 1
    assert result.seconds < 1.0 + 2 * max(t.seconds for t in result.trials) + 1.0


def test_samples_stay_inside_the_search_space() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        params = perturb(sample_params(rng, FitParams()), rng)
        assert 8 <= params.factors <= 256 and params.iterations >= 10
        assert params.regularization > 0 and params.alpha > 0
        assert params.confidence in ("linear", "log")


def test_an_empty_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        TuneBudget(seconds=0)
