"""The nightly job's daily A/B reports (training.ab.daily): each running experiment's
report, HTML and JSON, under the reports directory, and its SRM alarm in the metrics file."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

from tests.training.ab.builders import (
    DEFINITION,
    EXP,
    T0,
    event,
    event_table,
    exposure,
    exposure_table,
    write_days,
)
from training.ab.daily import daily_reports
from training.nightly.metrics import write_metrics

ENDED = """
[[experiment]]
name = "over"
end = "2026-01-01T00:00:00Z"
[[experiment.variant]]
name = "a"
weight = 0.5
[[experiment.variant]]
name = "b"
weight = 0.5
"""


def planted(tmp_path: Path, treated_share: float) -> tuple[Path, Path]:
    """200 users over two days, `treated_share` of them in the treatment (0.6 expected)."""
    rows, outcomes = [], []
    for i in range(200):
        variant = "treatment" if i < 200 * treated_share else "control"
        rows.append(exposure(f"r{i}", f"u{i}", hours=i % 40, variant=variant))
        outcomes.append(event(f"u{i}", "v1", "view", i % 40 + 0.1, f"r{i}", watch_ratio=0.5))
    events = write_days(event_table(outcomes), tmp_path / "events")
    return events, write_days(exposure_table(rows), tmp_path / "exposures")


def test_each_running_experiment_gets_its_report_of_the_day(tmp_path: Path) -> None:
    events, exposures = planted(tmp_path, 0.6)
    now = T0 + timedelta(days=2)
    summaries = daily_reports(DEFINITION + ENDED, events, exposures, tmp_path / "reports", now)
    assert set(summaries) == {EXP}  # "over" ended: no report
    summary = summaries[EXP]
    folder = tmp_path / "reports" / "experiments" / EXP
    assert summary["json"] == str(folder / "2026-11-04.json")
    report = json.loads((folder / "2026-11-04.json").read_text())
    assert report["experiment"] == EXP and report["sequential"] is True
    assert summary["users"] == 200 and summary["srm_alarm"] is False
    page = (folder / "2026-11-04.html").read_text()
    assert "<html" in page and "Glossary" in page


def test_a_planted_sample_ratio_mismatch_is_an_alarm_in_the_metrics(tmp_path: Path) -> None:
    events, exposures = planted(tmp_path, 0.85)  # 85% where 60% is expected
    summaries = daily_reports(
        DEFINITION, events, exposures, tmp_path / "reports", T0 + timedelta(days=2)
    )
    assert summaries[EXP]["srm_alarm"] is True
    metrics = tmp_path / "nightly.prom"
    write_metrics(metrics, "gated", time.time() - 5, time.time(), {"experiments": summaries})
    assert f'recsvc_ab_srm_alarm{{experiment="{EXP}"}} 1.0' in metrics.read_text()


def test_no_exposures_yet_is_said_and_writes_nothing(tmp_path: Path) -> None:
    summaries = daily_reports(
        DEFINITION, tmp_path / "events", tmp_path / "exposures", tmp_path / "reports"
    )
    assert "no such directory of exposures" in summaries[EXP]["error"]
    assert not (tmp_path / "reports").exists()
