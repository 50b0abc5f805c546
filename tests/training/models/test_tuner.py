"""The tuner: it records every trial, starts from the defaults, respects its budget, is
reproducible, and only ever sees the training part."""

from dataclasses import replace

import numpy as np
import pytest

from tests.builders import block_events, event_table
from training.data.matrix import build_interactions, pair_keys
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.evaluation.evaluate import EvalSpec, ScorerReport
from training.evaluation.metrics import RankingMetrics
from training.models.factors import FitParams
from training.models.tuner import (
    EASE_SHARE_ITEMS,
    Objective,
    TuneBudget,
    tune,
    validation_spec,
)


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
    search = [t for t in result.trials if t.phase != "revalidated"]
    assert len(search) == 12
    assert search[0].phase == "default" and search[0].params == base
    assert {t.phase for t in search[1:]} == {"search"}
    # a random split: the choice is among the revalidated leaders, by their mean
    revalidated = [t for t in result.trials if t.phase == "revalidated"]
    assert revalidated and result.best_score == max(t.score for t in revalidated)
    assert result.best_score > search[0].score  # the search improved on a poor start
    assert len(result.as_dict()["trials"]) == len(result.trials)


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
    inner_fit, inner_valid = split(train, validation_spec(spec))
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


def test_an_empty_budget_is_refused() -> None:
    with pytest.raises(ValueError):
        TuneBudget(seconds=0)


def report(ndcg: float, users: int, hit_rate: float | None) -> ScorerReport:
    videos = RankingMetrics(k=10, users=users, precision=0.0, recall=0.0, ndcg=ndcg, map=0.0,
                            coverage=0.0)  # fmt: skip
    return ScorerReport("model", videos, hit_rate, 0 if hit_rate is None else 10)


@pytest.mark.parametrize(
    ("objective", "measured", "expected"),
    [
        pytest.param(Objective(), report(0.2, 50, 0.6), 0.4, id="equal weights: the mean"),
        pytest.param(Objective(1, 3), report(0.2, 50, 0.6), 0.5, id="weighted mean"),
        pytest.param(Objective(), report(0.0, 0, 0.6), 0.6, id="no video held out: products"),
        pytest.param(Objective(), report(0.2, 50, None), 0.2, id="no purchase: videos alone"),
        pytest.param(Objective(1, 0), report(0.2, 50, 0.6), 0.2, id="weight 0 leaves it out"),
        pytest.param(Objective(0, 1), report(0.0, 0, None), 0.0, id="nothing measured: 0"),
    ],
)
def test_the_objective_blends_the_parts_the_data_has(
    objective: Objective, measured: ScorerReport, expected: float
) -> None:
    assert objective.score(measured) == pytest.approx(expected)


@pytest.mark.parametrize("weights", [(0, 0), (-1, 1), (1, float("nan")), (float("inf"), 1)])
def test_objective_weights_that_are_negative_not_finite_or_both_zero_are_refused(
    weights: tuple[float, float],
) -> None:
    with pytest.raises(ValueError, match="objective weights"):
        Objective(*weights)


def products_only() -> Dataset:
    """Users in four groups, each buying eight of their group's twelve products: no video."""
    rng = np.random.default_rng(5)
    rows = [
        {"user_id": f"u{g}-{u}", "item_id": f"p{g}-{p}", "item_type": "product",
         "action": "purchase"}
        for g in range(4)
        for u in range(30)
        for p in rng.choice(12, 8, replace=False)
    ]  # fmt: skip
    events = event_table(rows)
    data = Dataset(build_interactions(events), events)
    return split(data, SplitSpec(Protocol.PER_USER))[0]


def test_on_products_only_the_tuner_tunes_on_the_product_hit_rate() -> None:
    """Before, the objective was video NDCG only: every trial scored 0 on products-only data
    and the defaults were kept whatever they were worth."""
    result = tune(
        products_only(), SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=6), threads=1
    )
    assert result.objective == "product hit rate@5"
    assert result.best_score > 0
    assert len({t.score for t in result.trials}) > 1  # the trials are told apart


def test_an_objective_that_measures_nothing_on_the_data_is_refused_before_any_trial() -> None:
    with pytest.raises(ValueError, match="measures nothing"):
        tune(
            products_only(),
            SplitSpec(Protocol.PER_USER),
            TuneBudget(60, max_trials=2),
            objective=Objective(video_weight=1, product_weight=0),
        )


def test_a_search_keeps_to_the_base_family_ease_included() -> None:
    base = FitParams(algorithm="ease", factors=8, regularization=50.0)
    result = tune(training_part(), SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=6),
                  base=base)  # fmt: skip
    assert {t.params.algorithm for t in result.trials} == {"ease"}
    assert len({t.params.regularization for t in result.trials}) > 1  # λ is searched


def test_an_als_search_shares_its_time_with_ease_and_revalidates_both() -> None:
    from training.models.tuner_phases import REVALIDATE_LEADERS

    train = training_part()
    result = tune(train, SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=20), threads=1)
    search = [t for t in result.trials if t.phase != "revalidated"]
    families = [t.params.algorithm for t in search]
    # turns by trial count per searched parameter: ALS searches five, EASE two (λ, transform)
    assert families.count("als") == 14 and families.count("ease") == 6
    items = train.interactions.index.n_items
    assert {t.params.factors for t in search if t.params.algorithm == "ease"} == {items}  # full
    revalidated = [t for t in result.trials if t.phase == "revalidated"]
    for family in ("als", "ease"):  # the best few of each family, scored again
        own = sorted((t for t in search if t.params.algorithm == family), key=lambda t: -t.score)
        again = [t.params for t in revalidated if t.params.algorithm == family]
        assert len(again) == REVALIDATE_LEADERS and again[0] == own[0].params
    chosen = max(revalidated, key=lambda t: t.score).params
    attach = {"attach_user_weight": 1.0, "attach_video_weight": 1.0}  # chosen after, apart
    assert replace(result.best, **attach) == replace(chosen, **attach)


def test_ease_stays_out_where_it_is_costly() -> None:
    events = block_events(groups=2, users_per_group=40, videos_per_group=EASE_SHARE_ITEMS // 2 + 5)
    data = Dataset(build_interactions(events), events)
    train = split(data, SplitSpec(Protocol.PER_USER))[0]
    assert train.interactions.index.n_items > EASE_SHARE_ITEMS
    small = FitParams(factors=4, iterations=3)  # what is asked is the family, not the fit
    result = tune(train, SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=2), base=small,
                  threads=1)  # fmt: skip
    assert {t.params.algorithm for t in result.trials} == {"als"}


def test_the_objective_is_measured_at_the_evaluations_cut_offs() -> None:
    """`recsvc evaluate --k 5 --product-k 3` tunes for what it reports, not @10 and @5."""
    result = tune(
        training_part(), SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=2),
        eval_spec=EvalSpec(k=5, product_k=3), threads=1,
    )  # fmt: skip
    assert result.objective == "(1×video NDCG@5 + 1×product hit rate@3) / 2"


def test_the_attach_weights_are_chosen_on_validation_where_purchases_exist() -> None:
    from training.evaluation.attach import ATTACH_WEIGHTS

    events = block_events(groups=4, users_per_group=30, videos_per_group=10, products_per_group=3)
    data = Dataset(build_interactions(events), events)
    train = split(data, SplitSpec(Protocol.PER_USER))[0]
    result = tune(train, SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=4), threads=1)
    tried = [tuple(point["weights"]) for point in result.attach]
    assert tried[0] == (1.0, 1.0) and set(tried) == {(1.0, 1.0), *ATTACH_WEIGHTS}
    best = max(result.attach, key=lambda point: point["attach_hit_rate"])
    chosen = (result.best.attach_user_weight, result.best.attach_video_weight)
    assert chosen == tuple(best["weights"])  # the first of the best: the default on a tie
    assert result.as_dict()["attach"] == result.attach


def test_without_products_the_attach_weights_keep_their_defaults() -> None:
    import pyarrow.compute as pc

    events = block_events(groups=3, users_per_group=20)
    events = events.filter(pc.equal(events.column("item_type"), "video"))  # videos only
    data = Dataset(build_interactions(events), events)
    train = split(data, SplitSpec(Protocol.PER_USER))[0]
    result = tune(train, SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=2), threads=1)
    assert result.attach == []
    assert (result.best.attach_user_weight, result.best.attach_video_weight) == (1.0, 1.0)
