"""The trending prior (training.models.trending): counted by hand, blended as the service
blends it, chosen by the tuner only where time exists, and exported so the service applies
the same blend through its ONNX bias input."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from recsvc.contract.manifest import TRENDING_FILE
from recsvc.feed.model import ServingModel
from tests.builders import block_events, block_model, event_row, event_table
from training.data.matrix import ConfidenceWeights, build_index, build_interactions
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.evaluation.evaluate import FactorScorer
from training.models.factors import FitParams, fit
from training.models.pipeline import Source, export_trained, model_scorer, run_evaluate
from training.models.trending import blend, trending_prior
from training.models.tuner import TuneBudget, tune

END = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def at(hours_before_end: float, user: str, item: str, action: str = "view") -> dict:
    ts = END - timedelta(hours=hours_before_end)
    return {"user_id": user, "item_id": item, "action": action, "ts": ts}


def test_the_prior_counts_users_in_the_window_by_hand() -> None:
    events = event_table(
        [
            at(0, "u1", "v-hot"),  # the last event: the window ends here
            at(1, "u2", "v-hot"),
            at(2, "u2", "v-hot"),  # the same user again: still two users
            at(3, "u3", "v-warm"),
            at(3, "u4", "v-warm", action="impression"),  # weighs 0: does not count
            at(30, "u5", "v-old"),  # outside a 24-hour window
            at(30, "u6", "v-old"),
        ]
    )
    index = build_index(events)
    prior = trending_prior(events, index, ConfidenceWeights(), hours=24)
    by_id = dict(zip(index.video_ids.tolist(), prior.tolist(), strict=True))
    assert by_id["v-hot"] == pytest.approx(1.0)  # log1p(2) / log1p(2)
    assert by_id["v-warm"] == pytest.approx(math.log1p(1) / math.log1p(2))
    assert by_id["v-old"] == 0.0
    wide = dict(
        zip(
            index.video_ids.tolist(),
            trending_prior(events, index, ConfidenceWeights(), 48),
            strict=True,
        )
    )
    assert wide["v-old"] == pytest.approx(1.0)  # two users in 48 hours, as many as v-hot


def test_the_blend_orders_as_z_scores_plus_the_weighted_prior() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(3.0, 2.0, size=(20, 30)).astype(np.float32)
    prior = rng.random(30).astype(np.float32)
    for weight in (0.0, 0.3, 3.0, 100.0):
        z = (scores - scores.mean(axis=1, keepdims=True)) / scores.std(axis=1, keepdims=True)
        want = np.argsort(-(z + weight * prior), axis=1, kind="stable")
        got = np.argsort(-blend(scores, prior, weight), axis=1, kind="stable")
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(blend(scores, prior, 0.0), scores)  # off is off


def test_the_service_blends_exactly_as_the_offline_scorer(tmp_path: Path) -> None:
    events = block_events(groups=3, users_per_group=20, videos_per_group=10)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    params = FitParams(factors=6, iterations=5, trending_hours=48, trending_weight=3.0)
    factors = fit(dataset.interactions.confidence, params, threads=1)
    data = {"window": {"first_event": "", "last_event": ""}}
    model_dir = export_trained(tmp_path, factors, dataset, data, {})
    model = ServingModel.load(model_dir, None)
    manifest = model.ranking.manifest
    assert TRENDING_FILE in manifest.files
    assert (
        manifest.params["trending"]["weight"] == 3.0 and manifest.params["trending"]["hours"] == 48
    )

    users = np.arange(dataset.interactions.index.n_users)
    offline = model_scorer(factors, dataset).video_scores(users)
    plain = FactorScorer(factors, dataset.interactions.index).video_scores(users)
    assert not np.allclose(offline, plain)  # the prior moves the scores
    served = factors.user @ model.ranking.item_factors[: model.ranking.n_videos].T
    served = served + model.trending_bias(factors.user)  # what rank_inputs adds to the bias
    np.testing.assert_allclose(served, offline, rtol=1e-4, atol=1e-4)
    zero_bias = np.zeros((len(users), model.ranking.n_products), np.float32)
    ranked = model.ranking.rank(factors.user, served - plain, zero_bias, k=5)
    want = np.argsort(-offline, axis=1, kind="stable")[:, :5]
    agree = (ranked.video_index == want).mean()
    assert agree > 0.99  # float32 ties aside, the graph ranks as the offline scorer


def test_a_model_without_the_prior_exports_none(tmp_path: Path) -> None:
    model_dir, factors = block_model(tmp_path, FitParams(factors=4, iterations=3))
    model = ServingModel.load(model_dir, None)
    assert TRENDING_FILE not in model.ranking.manifest.files and model.trending is None
    assert model.trending_bias(factors.user) is None


def trending_world(days: int = 6) -> Dataset:
    """Users who each watch a few random videos a day, and, each day, most users also watch
    that day's hit: a fresh video every day. Yesterday's hits predict today's nothing, the last
    hours predict the rest of the day: what a trending prior is for."""
    rng = np.random.default_rng(4)
    rows = []
    start = datetime(2026, 3, 1, tzinfo=UTC)
    for day in range(days):
        hit = f"v-hit{day}"
        for u in range(60):
            for _ in range(3):
                minute = int(rng.integers(0, 24 * 60))
                ts = start + timedelta(days=day, minutes=minute)
                rows.append(
                    {"user_id": f"u{u}", "item_id": f"v{int(rng.integers(0, 40))}", "ts": ts}
                )
            if rng.random() < 0.7:
                minute = int(rng.integers(0, 24 * 60))
                ts = start + timedelta(days=day, minutes=minute)
                rows.append({"user_id": f"u{u}", "item_id": hit, "ts": ts})
    events = event_table(rows)
    return Dataset(build_interactions(events), events, ConfidenceWeights())


def test_the_tuner_turns_the_prior_on_where_the_last_hours_predict() -> None:
    data = trending_world()
    spec = SplitSpec(Protocol.TEMPORAL, holdout_days=1)
    train, _ = split(data, spec)
    result = tune(train, spec, TuneBudget(60, max_trials=4), base=FitParams(factors=4), threads=1)
    singles = [t.phase for t in result.trials if t.params.ensemble == 1]
    # the grid on both leaders (31 points each) on the validation day, the best six of each on
    # every fold (the best as an ensemble, beside them: tests/training/models/test_ensemble.py)
    assert singles.count("screen") == 2 * 31 and singles.count("trending") == 2 * 6
    off = max(
        t.score for t in result.trials if t.phase == "screen" and t.params.trending_weight == 0
    )
    assert result.best.trending_weight > 0
    assert result.best_score > off  # chosen because it scored better on validation
    # the choice is among the trials scored on every fold
    assert result.best_score == max(
        t.score for t in result.trials if t.phase in ("trending", "recency")
    )


def test_the_prior_is_chosen_by_its_mean_over_the_validation_day_and_the_days_before() -> None:
    from training.evaluation.evaluate import EvalSpec, FactorScorer, evaluate, evaluation_set
    from training.models.factors import Factors, fit
    from training.models.tuner import Objective, validation_spec
    from training.models.tuner_phases import TEMPORAL_FOLDS, temporal_folds, trending_trials

    data = trending_world()
    spec = SplitSpec(Protocol.TEMPORAL, holdout_days=1)
    train, _ = split(data, spec)
    inner = validation_spec(spec)
    fit_part, held_out = split(train, inner)
    validation = evaluation_set(fit_part.interactions, held_out, EvalSpec())
    folds = temporal_folds(fit_part, validation, inner, EvalSpec(), None)
    assert len(folds) == TEMPORAL_FOLDS
    ends = [f.part.events.column("ts").to_pylist()[-1] for f in folds]  # type: ignore[union-attr]
    assert ends[0] > ends[1] > ends[2]  # each fold a day before the last
    params = FitParams(factors=4, iterations=5)
    trials = trending_trials([], [params], folds, EvalSpec(), Objective(), None, 1)
    screened = [t for t in trials if t.phase == "screen"]
    finalists = [t for t in trials if t.phase == "trending"]
    assert len(screened) == 31 and len(finalists) == 6
    assert {t.params for t in finalists} <= {t.params for t in screened}
    # a finalist's score, worked by hand: its mean over the three folds
    chosen = finalists[0].params
    by_hand = []
    for fold in folds:
        part, held = fold.part, fold.validation
        factors = fit(part.interactions.confidence, chosen, threads=1)
        scorer = FactorScorer(Factors(factors.user, factors.item, chosen), part.interactions.index)
        assert part.events is not None
        scorer.trending = trending_prior(
            part.events, part.interactions.index, part.weights, chosen.trending_hours
        )
        by_hand.append(Objective().score(evaluate(scorer, held, EvalSpec())))
    assert finalists[0].score == pytest.approx(np.mean(by_hand))


def test_a_per_pair_split_has_no_time_and_no_prior() -> None:
    events = block_events(groups=3, users_per_group=20)
    data = Dataset(build_interactions(events), events)
    spec = SplitSpec(Protocol.PER_USER)
    train, _ = split(data, spec)
    base = FitParams(factors=4, trending_weight=2.0)
    result = tune(train, spec, TuneBudget(60, max_trials=3), base=base, threads=1)
    assert not {"screen", "trending", "recency"} & {t.phase for t in result.trials}
    assert all(t.params.trending_weight == 0 for t in result.trials)


def test_evaluate_refuses_a_prior_on_a_split_without_times(tmp_path: Path) -> None:
    from tests.builders import write_events_csv

    rows = [event_row(i, user_id=f"u{i % 7}", item_id=f"v{i % 11}") for i in range(200)]
    path = write_events_csv(tmp_path / "events.csv", rows)
    params = replace(FitParams(factors=4, iterations=3), trending_weight=1.0)
    with pytest.raises(ValueError, match="trending weight of 1 needs event times"):
        run_evaluate(Source(path), SplitSpec(Protocol.PER_USER), params, threads=1)


def test_the_tuner_tries_recency_on_its_best_fit_and_keeps_the_best() -> None:
    from training.models.pipeline import tuned_data
    from training.models.tuner_phases import HALF_LIVES

    data = trending_world()
    spec = SplitSpec(Protocol.TEMPORAL, holdout_days=1)
    train, _ = split(data, spec)
    result = tune(train, spec, TuneBudget(60, max_trials=4), base=FitParams(factors=4), threads=1)
    recency = [t for t in result.trials if t.phase == "recency"]
    assert [t.half_life_days for t in recency] == list(HALF_LIVES)
    before = [t for t in result.trials if t.number < recency[0].number and t.phase == "trending"]
    assert {t.params for t in recency} == {max(before, key=lambda t: t.score).params}
    late = [t for t in result.trials if t.phase in ("trending", "recency")]
    best = max(late, key=lambda t: t.score)
    assert result.half_life_days == best.half_life_days
    rebuilt = tuned_data(train, result)
    if result.half_life_days is None:
        assert rebuilt is train
    else:  # the matrix the final fit sees is weighed as the winning trial's was
        assert rebuilt.weights.half_life_days == result.half_life_days
        assert rebuilt.interactions.confidence.sum() < train.interactions.confidence.sum()


def test_users_without_a_vector_are_ranked_by_popularity_alone(tmp_path: Path) -> None:
    from recsvc.contract.catalog import Catalog
    from recsvc.contract.user_state import UserState
    from recsvc.feed.attach import ItemRules
    from recsvc.feed.compute import FeedOptions, rank_inputs

    events = block_events(groups=3, users_per_group=20, videos_per_group=10)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    params = FitParams(factors=6, iterations=5, trending_hours=48, trending_weight=3.0)
    factors = fit(dataset.interactions.confidence, params, threads=1)
    model = ServingModel.load(export_trained(tmp_path, factors, dataset, {"window": {}}, {}), None)
    assert model.trending is not None
    manifest = model.ranking.manifest
    rules = ItemRules.compile(manifest.video_ids, manifest.product_ids, Catalog("r", {}, {}))
    cold = UserState(capped=frozenset())  # no vector, no events, no segment
    inputs = rank_inputs(model, rules, [cold], [5], [FeedOptions()])
    # σ_u = 0 without a vector: the prior adds nothing, as the offline evaluation measures
    np.testing.assert_array_equal(inputs.video_bias[0], model.video_popularity)


def test_a_manifest_naming_a_prior_without_its_file_is_refused(tmp_path: Path) -> None:
    import json

    from recsvc.contract.manifest import ArtifactError

    model_dir, factors = block_model(tmp_path, FitParams(factors=4, iterations=3))
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["params"]["trending"] = {"weight": 3.0, "hours": 24.0, "until": "x"}
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="params.trending is set and trending_prior.npy"):
        ServingModel.load(model_dir, None)


def test_export_refuses_factors_fitted_with_a_prior_and_keeps_attach_weights(
    tmp_path: Path,
) -> None:
    import json
    import subprocess
    import sys

    from training.models.factors import save_factors

    events = block_events(groups=2, users_per_group=10)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    recsvc = str(Path(sys.executable).with_name("recsvc"))
    index = dataset.interactions.index
    for name, params in {
        "prior": FitParams(factors=4, iterations=3, trending_weight=2.0),
        "attach": FitParams(factors=4, iterations=3, attach_video_weight=3.0),
    }.items():
        save_factors(
            fit(dataset.interactions.confidence, params, threads=1), index, tmp_path / name, {}
        )
    args = ["export", "--models-dir", str(tmp_path / "models"), "--factors"]
    refused = subprocess.run(
        [recsvc, *args, str(tmp_path / "prior")], capture_output=True, text=True
    )
    assert refused.returncode == 1 and "recsvc train --models-dir" in " ".join(
        refused.stderr.split()
    )
    done = subprocess.run([recsvc, *args, str(tmp_path / "attach")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (version,) = (tmp_path / "models").iterdir()
    assert json.loads((version / "manifest.json").read_text())["params"]["attach_weights"] == [
        1.0,
        3.0,
    ]


def test_recency_never_drops_an_old_event() -> None:
    events = event_table([at(0, "u1", "v-new"), at(24 * 400, "u1", "v-old")])  # 400 days old
    weights = ConfidenceWeights(half_life_days=1.0).per_event(events)
    assert weights[0] == pytest.approx(1.0) and 0 < weights[1] < 1e-30  # tiny, not zero
    matrix = build_interactions(events, ConfidenceWeights(half_life_days=1.0)).confidence
    assert matrix.nnz == 2  # the old pair is still a pair, not a negative


def test_publish_refuses_a_model_a_replica_would_refuse(tmp_path: Path) -> None:
    import json

    from recsvc.contract.manifest import ArtifactError
    from recsvc.registry.publish import read_user_vectors

    params = FitParams(factors=4, iterations=3, trending_weight=2.0)
    model_dir, factors = block_model(tmp_path, params)
    read_user_vectors(model_dir)  # a sound model reads
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["params"]["trending"]["weight"] = -1  # the graph loads; the replica refuses it
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="params.trending.weight"):
        read_user_vectors(model_dir)
