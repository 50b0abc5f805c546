"""The seed ensemble (FitParams.ensemble): fits side by side, folded in block by block as each
fit would fold in, served through the same artifact, and chosen by the tuner only when it
scores better on the same folds as its rival."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recsvc.contract.manifest import ArtifactError
from recsvc.feed.foldin import fold_in
from recsvc.feed.ranker import RankingModel
from tests.builders import block_events, block_model
from training.data.matrix import build_interactions
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.models.factors import FitParams, fit
from training.models.trending import TRENDING_WEIGHTS
from training.models.tuner import TuneBudget, tune
from training.models.tuner_phases import ENSEMBLE, Trial, neighbouring_weights, refit_seconds


def matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(3)
    confidences = sp.random(120, 40, density=0.15, random_state=3, format="csr", dtype=np.float32)
    confidences.data = rng.uniform(0.5, 4, confidences.nnz).astype(np.float32)
    return confidences


def test_an_ensemble_is_its_seeds_fits_side_by_side() -> None:
    params = FitParams(factors=4, iterations=5, seed=7, ensemble=3)
    together = fit(matrix(), params, threads=1)
    alone = [
        fit(matrix(), FitParams(factors=4, iterations=5, seed=s), threads=1) for s in (7, 8, 9)
    ]
    assert together.user.shape == (120, 12) and together.item.shape == (40, 12)
    np.testing.assert_array_equal(together.user, np.hstack([f.user for f in alone]))
    np.testing.assert_array_equal(together.item, np.hstack([f.item for f in alone]))
    # its score is the sum of the fits' scores: it ranks as their mean
    total = sum(f.user @ f.item.T for f in alone)
    np.testing.assert_allclose(together.user @ together.item.T, total, rtol=1e-4, atol=1e-5)
    assert together.params == params


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ensemble": 0}, "ensemble must be at least 1"),
        ({"algorithm": "ease", "ensemble": 2}, "EASE is deterministic"),
    ],
)
def test_a_bad_ensemble_is_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FitParams(**kwargs)


def test_fold_in_solves_each_fit_of_an_ensemble_on_its_own() -> None:
    params = FitParams(factors=4, iterations=5, regularization=0.2, alpha=3.0, ensemble=2)
    factors = fit(matrix(), params, threads=1)
    gram = factors.item.T @ factors.item
    manifest_params = params.as_dict()
    items, values = np.array([1, 5, 9, 30]), np.array([1.0, 2.5, 1.0, 4.0])
    got = fold_in(factors.item, gram, items, values, manifest_params)
    single = {**manifest_params, "ensemble": 1}
    by_block = [
        fold_in(factors.item[:, b : b + 4], gram[b : b + 4, b : b + 4], items, values, single)
        for b in (0, 4)
    ]
    np.testing.assert_allclose(got, np.concatenate(by_block), rtol=1e-5)
    # a joint solve over all eight columns is another vector: the blocks matter
    assert not np.allclose(got, fold_in(factors.item, gram, items, values, single), rtol=1e-3)


def test_an_ensemble_model_is_served_from_the_same_artifact(tmp_path: Path) -> None:
    params = FitParams(factors=3, iterations=3, ensemble=2)
    model_dir, factors = block_model(tmp_path, params)
    model = RankingModel.load(model_dir)
    assert model.manifest.dimension == 6 and model.manifest.params["ensemble"] == 2
    ranked = model.rank(factors.user[:2], np.zeros((2, model.n_videos), np.float32),
                        np.zeros((2, model.n_products), np.float32), 3)  # fmt: skip
    expected = np.argsort(-(factors.user[:2] @ factors.item[: model.n_videos].T), axis=1)[:, :3]
    np.testing.assert_array_equal(ranked.video_index, expected)


def test_a_manifest_whose_ensemble_does_not_divide_its_dimension_is_refused(
    tmp_path: Path,
) -> None:
    import json

    model_dir, factors = block_model(tmp_path, FitParams(factors=4, iterations=3))
    path = model_dir / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["params"]["ensemble"] = 3
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="ensemble of 3 fits cannot split a dimension of 4"):
        RankingModel.load(model_dir)


def test_the_ensemble_looks_at_the_chosen_weight_and_its_neighbours() -> None:
    at = FitParams(trending_hours=24.0, trending_weight=TRENDING_WEIGHTS[2])
    assert neighbouring_weights(at) == tuple((24.0, w) for w in TRENDING_WEIGHTS[1:4])
    off = FitParams(trending_hours=6.0, trending_weight=0.0)
    assert neighbouring_weights(off) == ((6.0, 0.0), (6.0, TRENDING_WEIGHTS[0]))
    top = FitParams(trending_weight=TRENDING_WEIGHTS[-1])
    assert [w for _, w in neighbouring_weights(top)] == list(TRENDING_WEIGHTS[-2:])


def test_an_ensembles_fit_is_estimated_from_one_fits_time_until_it_has_run() -> None:
    single = FitParams(factors=4)
    trials = [Trial(0, "search", single, 0.1, 2.0), Trial(1, "screen", single, 0.1, 0.3)]
    ensemble = FitParams(factors=4, ensemble=ENSEMBLE)
    assert refit_seconds(trials, ensemble) == 2.0 * ENSEMBLE
    trials.append(Trial(2, "screen", ensemble, 0.1, 5.0))
    assert refit_seconds(trials, ensemble) == 5.0


def test_on_random_splits_the_ensemble_is_scored_on_its_rivals_splits() -> None:
    from training.evaluation.evaluate import EvalSpec, evaluation_set
    from training.models.tuner import Objective, validation_spec
    from training.models.tuner_phases import Fold, ensemble_trials, revalidation_folds, served_score

    events = block_events(groups=4, users_per_group=30, videos_per_group=15)
    train = split(Dataset(build_interactions(events), events), SplitSpec(Protocol.PER_USER))[0]
    spec = validation_spec(SplitSpec(Protocol.PER_USER))
    fit_part, held_out = split(train, spec)
    folds = [Fold(fit_part, evaluation_set(fit_part.interactions, held_out, EvalSpec()))]
    folds += revalidation_folds(train, spec, EvalSpec(), None)
    rival = Trial(7, "revalidated", FitParams(factors=4, iterations=5), 0.5, 1.0)
    added = ensemble_trials([rival], rival, folds, EvalSpec(), Objective(), None, 1)
    assert len(added) == 1
    trial = added[0]
    assert trial.phase == "revalidated" and trial.number == 1  # chosen among with its rival
    assert trial.params == FitParams(factors=4, iterations=5, ensemble=ENSEMBLE)
    by_hand = [
        served_score(f, fit(f.part.interactions.confidence, trial.params, threads=1),
                     trial.params, EvalSpec(), Objective())
        for f in folds
    ]  # fmt: skip
    assert trial.score == pytest.approx(np.mean(by_hand))
    # a deadline that has passed leaves it out
    assert ensemble_trials([rival], rival, folds, EvalSpec(), Objective(), 0.0, 1) == []


def test_on_temporal_folds_the_ensemble_chooses_its_priors_weight_again() -> None:
    from tests.training.models.test_trending import trending_world

    spec = SplitSpec(Protocol.TEMPORAL, holdout_days=1)
    train, _ = split(trending_world(), spec)
    result = tune(train, spec, TuneBudget(60, max_trials=4), base=FitParams(factors=4),
                  threads=1)  # fmt: skip
    ensembles = [t for t in result.trials if t.params.ensemble == ENSEMBLE]
    screened = [t for t in ensembles if t.phase == "screen"]
    finalists = [t for t in ensembles if t.phase == "trending"]
    assert 2 <= len(screened) <= 3 and finalists
    singles = [t for t in result.trials if t.phase == "trending" and t.params.ensemble == 1]
    best_single = max((t for t in singles if t.number < screened[0].number), key=lambda t: t.score)
    assert {replace(t.params, trending_weight=0.0, ensemble=1) for t in screened} == {
        replace(best_single.params, trending_weight=0.0)
    }
    assert {(t.params.trending_hours, t.params.trending_weight) for t in screened} == set(
        neighbouring_weights(best_single.params)
    )
    late = [t for t in result.trials if t.phase in ("trending", "recency")]
    assert result.best_score == max(t.score for t in late)


def test_an_ease_choice_gets_no_ensemble() -> None:
    events = block_events(groups=4, users_per_group=30, videos_per_group=15)
    train = split(Dataset(build_interactions(events), events), SplitSpec(Protocol.PER_USER))[0]
    base = FitParams(algorithm="ease", factors=8, regularization=50.0)
    result = tune(train, SplitSpec(Protocol.PER_USER), TuneBudget(60, max_trials=3), base=base,
                  threads=1)  # fmt: skip
    assert all(t.params.ensemble == 1 for t in result.trials)
