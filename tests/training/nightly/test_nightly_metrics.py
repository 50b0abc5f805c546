"""The nightly job's metrics file: the node exporter's textfile format, the outcome of the last
run, a success kept through failures, replaced atomically. (Written by real runs:
test_nightly.py; its names against the alert rules: tests/http/test_alert_metrics.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from training.nightly.metrics import outcome, write_metrics

SCORES = {"ndcg_at_10": 0.25, "precision_at_10": 0.125, "coverage_at_10": 0.5, "users": 900}


def lines(path: Path) -> set[str]:
    return set(path.read_text().splitlines())


def test_a_gated_run_is_a_success_with_its_outcome_its_duration_and_both_models_metrics(
    tmp_path: Path,
) -> None:
    path = tmp_path / "recsvc_nightly.prom"
    report = {"metrics": {"new": SCORES, "live": {**SCORES, "ndcg_at_10": 0.5}, "popularity": {}}}
    write_metrics(path, "gated", 1000.0, 1090.0, report)
    assert {
        "# TYPE recsvc_nightly_last_run_timestamp_seconds gauge",
        "recsvc_nightly_last_run_timestamp_seconds 1090.0",
        "recsvc_nightly_last_success_timestamp_seconds 1090.0",
        'recsvc_nightly_last_outcome{outcome="gated"} 1.0',
        'recsvc_nightly_last_outcome{outcome="promoted"} 0.0',
        'recsvc_nightly_last_outcome{outcome="challenger"} 0.0',
        'recsvc_nightly_last_outcome{outcome="failed"} 0.0',
        "recsvc_nightly_duration_seconds 90.0",
        'recsvc_nightly_metric{metric="ndcg_at_10",model="candidate"} 0.25',
        'recsvc_nightly_metric{metric="ndcg_at_10",model="current"} 0.5',
        'recsvc_nightly_metric{metric="coverage_at_10",model="current"} 0.5',
    } <= lines(path)
    assert "users" not in path.read_text()  # a count, not a metric of the model


def test_a_failed_run_keeps_the_last_success_and_reports_no_model_metrics(tmp_path: Path) -> None:
    path = tmp_path / "recsvc_nightly.prom"
    write_metrics(path, "promoted", 900.0, 1000.0, {"metrics": {"new": SCORES}})
    write_metrics(path, "failed", 2000.0, 2005.0, {"error": "ValueError: no event"})
    assert {
        "recsvc_nightly_last_run_timestamp_seconds 2005.0",
        "recsvc_nightly_last_success_timestamp_seconds 1000.0",
        'recsvc_nightly_last_outcome{outcome="failed"} 1.0',
        'recsvc_nightly_last_outcome{outcome="promoted"} 0.0',
    } <= lines(path)
    assert "recsvc_nightly_metric{" not in path.read_text()


@pytest.mark.parametrize("before", [None, "not Prometheus text {"])
def test_a_failure_with_no_success_recorded_says_0(tmp_path: Path, before: str | None) -> None:
    path = tmp_path / "recsvc_nightly.prom"
    if before is not None:
        path.write_text(before)
    write_metrics(path, "failed", 10.0, 20.0, {})
    assert "recsvc_nightly_last_success_timestamp_seconds 0.0" in lines(path)


def test_the_file_is_replaced_by_a_rename_never_rewritten_in_place(tmp_path: Path) -> None:
    """A collector reading during a write sees the old file or the new one, whole."""
    path = tmp_path / "textfile" / "recsvc_nightly.prom"
    write_metrics(path, "promoted", 0.0, 1.0, {})
    first = path.stat().st_ino
    write_metrics(path, "gated", 2.0, 3.0, {})
    assert path.stat().st_ino != first
    assert [p.name for p in path.parent.iterdir()] == ["recsvc_nightly.prom"]  # no temp left


@pytest.mark.parametrize(
    ("code", "decision", "expected"),
    [
        (0, "promote", "promoted"),
        (0, "challenger", "challenger"),
        (3, "gated", "gated"),
        (1, "failed", "failed"),
    ],
)
def test_the_outcome_comes_from_the_exit_code_and_the_decision(
    code: int, decision: str, expected: str
) -> None:
    assert outcome(code, {"decision": decision}) == expected


def test_an_unknown_outcome_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outcome 'crashed' is not one of promoted"):
        write_metrics(tmp_path / "m.prom", "crashed", 0.0, 1.0, {})
    assert not (tmp_path / "m.prom").exists()
