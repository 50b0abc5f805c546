"""The evaluate job as a whole: the held-out part never reaches the tuner or the fit, and
data that cannot be evaluated is an error, not a page of zeros. A synthetic world's parts
(its ground truth, its catalogue) come in through the Source, read by the caller."""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

import training.models.pipeline
import training.models.tuner
import training.models.tuner_phases
from tests.builders import block_events, event_rows, write_events_csv
from training.data.events import EventDataError, load_events
from training.data.matrix import ConfidenceWeights, Interactions, build_interactions, pair_keys
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.evaluation.evaluate import EvalSpec, EvaluationSet, evaluation_set
from training.models.factors import FitParams, fit
from training.models.pipeline import Source, run_evaluate, run_train
from training.models.tuner import TuneBudget


def test_no_held_out_pair_reaches_the_tuner_or_the_final_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(block_events(groups=3, users_per_group=25), path)
    seen: list[sp.csr_matrix] = []

    def recording_fit(matrix: sp.csr_matrix, params: FitParams, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append(matrix)
        return fit(matrix, params, **kwargs)  # type: ignore[arg-type]

    # a spy around the real fit: it records what each fit is given and changes nothing
    monkeypatch.setattr(training.models.tuner, "fit", recording_fit)
    monkeypatch.setattr(training.models.tuner_phases, "fit", recording_fit)
    monkeypatch.setattr(training.models.pipeline, "fit", recording_fit)
    spec = SplitSpec(Protocol.RECOMMENDERS)
    run_evaluate(Source(path), spec, FitParams(factors=4), budget=TuneBudget(60, max_trials=3))

    events, _ = load_events(path)
    _, test = split(Dataset(build_interactions(events), events), spec)
    held_out = pair_keys(test.confidence)
    # three trials; the leaders on two more validation splits (two ALS and one EASE, each
    # twice); the best as a seed ensemble on all three splits; the attach weights' refit; the
    # final fit
    assert len(seen) == 3 + 3 * 2 + 3 + 1 + 1
    for matrix in seen:
        assert not np.isin(pair_keys(matrix), held_out).any()


def test_a_split_with_nobody_to_evaluate_is_an_error(tmp_path: Path) -> None:
    path = write_events_csv(tmp_path / "one-day.csv", event_rows(30))  # all within one day
    with pytest.raises(ValueError, match="leaves no user with both training and held-out"):
        run_evaluate(Source(path), SplitSpec(Protocol.TEMPORAL), FitParams(factors=2))


def test_events_without_any_positive_interaction_are_an_error(tmp_path: Path) -> None:
    path = write_events_csv(tmp_path / "impressions.csv", event_rows(10, action="impression"))
    with pytest.raises(EventDataError, match="no usable interactions"):
        run_evaluate(Source(path), SplitSpec(), FitParams(factors=2))


def _group(ids: np.ndarray) -> np.ndarray:
    """The group of block_events' ids: u1-007, v1-03 and p1-0 are all in group 1."""
    return np.array([int(str(i)[1:].partition("-")[0]) for i in ids])


@dataclass
class PlantedTruth:
    """block_events' plan as a ground truth: a user likes their own group's items."""

    user_ids: np.ndarray
    video_ids: np.ndarray
    product_ids: np.ndarray

    def video_scores(self, user_rows: np.ndarray) -> np.ndarray:
        same = _group(self.user_ids[user_rows])[:, None] == _group(self.video_ids)[None, :]
        return same.astype(np.float32)

    def product_scores(self, user_rows: np.ndarray) -> np.ndarray:
        same = _group(self.user_ids[user_rows])[:, None] == _group(self.product_ids)[None, :]
        return same.astype(np.float32)


def test_a_ground_truth_given_with_the_source_adds_the_oracle_baseline(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    table = block_events(groups=3, users_per_group=25)
    pq.write_table(table, path)
    index = build_interactions(table).index
    truth = PlantedTruth(index.user_ids, index.video_ids, index.product_ids)
    spec, params = SplitSpec(Protocol.PER_USER), FitParams(factors=4, iterations=3)

    without = run_evaluate(Source(path), spec, params)
    report = run_evaluate(Source(path, truth=truth), spec, params)

    assert set(without["baselines"]) == {"popularity"}
    oracle, popularity = report["baselines"]["oracle"], report["baselines"]["popularity"]
    assert oracle["precision_at_10"] > popularity["precision_at_10"]


def test_the_items_a_catalogue_retires_are_left_out_of_the_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(block_events(groups=2, users_per_group=25), path)
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    videos = [{"video_id": "v0-00", "status": "retired"}, {"video_id": "v0-01", "status": "live"}]
    products = [{"product_id": "p1-0", "status": "retired"}]
    (catalog / "videos.jsonl").write_text("".join(json.dumps(v) + "\n" for v in videos))
    (catalog / "products.jsonl").write_text("".join(json.dumps(p) + "\n" for p in products))
    retired: list[set[str]] = []

    def recording_evaluation_set(
        train: Interactions, test: Interactions, spec: EvalSpec, mask: np.ndarray | None = None
    ) -> EvaluationSet:
        retired.append(set(train.index.item_ids[mask].tolist()) if mask is not None else set())
        return evaluation_set(train, test, spec, mask)

    # a spy around the real evaluation_set: it records the retired mask and changes nothing
    monkeypatch.setattr(training.models.pipeline, "evaluation_set", recording_evaluation_set)
    params = FitParams(factors=2, iterations=2)
    run_evaluate(Source(path, catalog=catalog), SplitSpec(Protocol.PER_USER), params)

    assert retired == [{"v0-00", "p1-0"}]


def test_an_unreadable_catalogue_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "events.parquet"
    pq.write_table(block_events(groups=2, users_per_group=25), path)
    missing = tmp_path / "no-catalog"
    with pytest.raises(EventDataError, match=f"{missing / 'videos.jsonl'} is unreadable"):
        run_evaluate(Source(path, catalog=missing), SplitSpec(Protocol.PER_USER), FitParams())


def test_the_exported_manifest_carries_the_weights_and_the_watch_ratio_cap(
    tmp_path: Path,
) -> None:
    """The service folds a user's recent events in with exactly what training used."""
    path = tmp_path / "events.parquet"
    pq.write_table(block_events(groups=2, users_per_group=10), path)
    weights = ConfidenceWeights(click=2.0, watch_ratio_cap=2.5)

    report = run_train(
        Source(path), tmp_path / "out", FitParams(factors=2), weights=weights,
        models_dir=tmp_path / "models",
    )  # fmt: skip

    params = json.loads((Path(report["model_dir"]) / "manifest.json").read_text())["params"]
    assert params["confidence_weights"] == weights.per_action()
    assert params["watch_ratio_cap"] == 2.5
