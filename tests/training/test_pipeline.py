"""The evaluate job as a whole: the held-out part never reaches the tuner or the fit, and
data that cannot be evaluated is an error, not a page of zeros."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

import training.models.pipeline
import training.models.tuner
from tests.builders import block_events, event_rows, write_events_csv
from training.data.events import EventDataError, load_events
from training.data.matrix import build_interactions, pair_keys
from training.data.splits import Dataset, Protocol, SplitSpec, split
from training.models.factors import FitParams, fit
from training.models.pipeline import Source, run_evaluate
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
    monkeypatch.setattr(training.models.pipeline, "fit", recording_fit)
    spec = SplitSpec(Protocol.RECOMMENDERS)
    run_evaluate(Source(path), spec, FitParams(factors=4), budget=TuneBudget(60, max_trials=3))

    events, _ = load_events(path)
    _, test = split(Dataset(build_interactions(events), events), spec)
    held_out = pair_keys(test.confidence)
    assert len(seen) == 4  # three trials and the final fit
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


def test_a_directory_that_is_not_a_world_is_refused_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "events").mkdir()
    with pytest.raises(EventDataError, match="not a synthetic world.*world.json, truth.npz"):
        Source.from_world(tmp_path)
