"""The search space and its sampler: every point asked lies inside the space, a point maps
to fit parameters and back, and the sampler learns only from what lies in its own space."""

from dataclasses import replace

import pytest

from training.models.factors import FitParams
from training.models.search import (
    EASE_LAMBDA_LOG10,
    EASE_RANK,
    FACTOR_CHOICES,
    ITERATION_CHOICES,
    FamilySearch,
    to_params,
    to_point,
)


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_every_point_asked_lies_inside_the_space(sampler: str) -> None:
    search = FamilySearch("als", FitParams(), items=100, seed=0, sampler=sampler)  # type: ignore[arg-type]
    for number in range(30):
        params = search.ask()
        assert params.algorithm == "als"
        assert params.factors in FACTOR_CHOICES and params.iterations in ITERATION_CHOICES
        assert 1e-3 <= params.regularization <= 1e2 and 10**-1.3 <= params.alpha <= 1e2
        assert params.confidence in ("linear", "log")
        search.tell(float(number % 7))


def test_ease_points_are_the_full_model_up_to_its_rank_cap() -> None:
    for items, rank in [(22, 22), (5_000, EASE_RANK)]:
        params = FamilySearch("ease", FitParams(), items=items, seed=1).ask()
        assert params.algorithm == "ease" and params.factors == rank
        low, high = EASE_LAMBDA_LOG10
        assert 10**low <= params.regularization <= 10**high


def test_a_point_maps_to_parameters_and_back() -> None:
    params = FitParams(factors=32, regularization=0.1, alpha=4.0, iterations=20)
    point = to_point(params)
    assert point is not None
    assert to_params(FitParams(), "als", point, items=100) == params


@pytest.mark.parametrize(
    "outside",
    [
        FitParams(factors=2),  # not a factor choice
        FitParams(regularization=0.0),
        FitParams(alpha=1e4),
        replace(FitParams(), algorithm="ease", regularization=0.05),  # λ below EASE's range
    ],
)
def test_parameters_outside_the_space_are_no_point(outside: FitParams) -> None:
    assert to_point(outside) is None


def test_the_sampler_learns_from_recorded_trials_of_its_own_family_only() -> None:
    search = FamilySearch("als", FitParams(), items=100, seed=0)
    search.record(FitParams(), 0.3)  # the defaults: inside the ALS space
    search.record(FitParams(factors=2), 0.4)  # outside: ignored
    search.record(replace(FitParams(), algorithm="ease", regularization=10.0), 0.5)
    search.record(FitParams(factors=32), float("-inf"))  # a failed fit
    assert [t.value for t in search.study.trials] == [0.3]


def test_a_failed_fit_is_told_as_failed_and_the_protocol_is_enforced() -> None:
    search = FamilySearch("als", FitParams(), items=100, seed=0)
    with pytest.raises(RuntimeError, match="no point"):
        search.tell(0.1)
    search.ask()
    with pytest.raises(RuntimeError, match="tell"):
        search.ask()
    search.tell(float("-inf"))
    assert search.study.trials[0].state.name == "FAIL"
