"""The nightly run reads its window with the same data options as train and evaluate: the
share of bad rows it tolerates, the confidence per action and the watch-ratio cap."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.builders import event_row, event_rows, write_events_csv
from training.data.events import EventDataError
from training.data.matrix import ConfidenceWeights
from training.nightly.spec import NightlySpec
from training.nightly.window import load_window


def events_with_bad_rows(directory: Path, bad: int, total: int = 100) -> Path:
    """`total` events over two days (now-ish), `bad` of them with an unknown action."""
    start = datetime.now(UTC).replace(microsecond=0)
    rows = event_rows(total)
    for i, row in enumerate(rows):
        row["ts"] = start.replace(hour=0, minute=0, second=0) if i % 2 else start
    for i in range(bad):
        rows[i] = {**rows[i], "action": "like"}
    return write_events_csv(directory / "events.csv", rows)


def test_the_windows_bad_row_share_is_the_runs_option(tmp_path: Path) -> None:
    events = events_with_bad_rows(tmp_path, bad=3)
    strict = NightlySpec(events_dir=events, models_dir=tmp_path / "models")
    with pytest.raises(EventDataError, match="like"):
        load_window(strict)  # 3% bad over the default 1%

    tolerant = NightlySpec(events_dir=events, models_dir=tmp_path / "models", max_bad_share=0.05)
    dataset, data, _ = load_window(tolerant)
    assert data["validation"]["bad_counts"]["unknown_action"] == 3
    assert dataset.interactions.nnz > 0


def test_the_windows_confidence_uses_the_runs_weights_and_watch_ratio_cap(tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [event_row(0, ts=now, user_id="u", item_id="v", watch_ratio=4.0)]
    events = write_events_csv(tmp_path / "events.csv", rows)
    weights = ConfidenceWeights(view=2.0, watch_ratio_cap=3.0)
    spec = NightlySpec(events_dir=events, models_dir=tmp_path / "models", weights=weights)

    dataset, _, _ = load_window(spec)

    assert dataset.weights == weights
    assert dataset.interactions.confidence.toarray().tolist() == [[6.0]]  # 2 × min(4, 3)


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_bad_row_share_outside_zero_to_one_is_refused_before_any_work(
    tmp_path: Path, share: float
) -> None:
    with pytest.raises(ValueError, match="max_bad_share"):
        NightlySpec(events_dir=tmp_path, models_dir=tmp_path, max_bad_share=share)
