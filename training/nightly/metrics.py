"""The nightly job's outcome as Prometheus metrics, in the node exporter's textfile format.

After every run, whatever its outcome, `recsvc nightly --metrics-file FILE.prom` (or
RECSVC_NIGHTLY_METRICS_FILE) writes:

    recsvc_nightly_last_run_timestamp_seconds      when the last run ended (Unix time)
    recsvc_nightly_last_success_timestamp_seconds  when the last run that worked ended: promoted,
                                                   challenger or gated (0: none yet)
    recsvc_nightly_last_outcome{outcome}           1 for the last run's outcome, 0 for the others
    recsvc_nightly_duration_seconds                how long the last run took
    recsvc_nightly_metric{metric, model}           holdout metrics of the new model (candidate)
                                                   and the live one (current), when evaluated
    recsvc_ab_srm_alarm{experiment}                1 when a running experiment's daily report
                                                   (training.ab.daily) raised the
                                                   sample-ratio alarm, else 0

A gated night counts as a success: the job did its work and the live model stays because the
new one was not better, or there was nothing new. The file is written under a temporary name
beside it and renamed, so the collector never reads half of it; the last success is read back
from the file it replaces, so a failed run keeps it.

Why a file and not a Pushgateway: a Pushgateway is one more service to run, its series never
go stale, and keeping the last success through a failure would mean reading it back from
there; a file on a volume does the same with a rename (docs/runbook.md, the nightly job).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from training.nightly.run import FAILED, GATED
from training.nightly.spec import GATE_METRICS

OUTCOMES = ("promoted", "challenger", "gated", "failed")
METRICS = (*GATE_METRICS, "coverage_at_10", "product_hit_rate")
MODELS = {"new": "candidate", "live": "current"}  # the report's names -> the label's
LAST_SUCCESS = "recsvc_nightly_last_success_timestamp_seconds"


def outcome(code: int, report: dict[str, Any]) -> str:
    """promoted, challenger, gated or failed, from a run's exit code and report."""
    if code == FAILED:
        return "failed"
    if code == GATED:
        return "gated"
    return "challenger" if report.get("decision") == "challenger" else "promoted"


def write_metrics(
    path: Path, result: str, started: float, ended: float, report: dict[str, Any]
) -> None:
    """Write the metrics of a run with outcome `result` (one of OUTCOMES) that ran from
    `started` to `ended` (Unix times) to `path`, atomically."""
    if result not in OUTCOMES:
        raise ValueError(f"outcome {result!r} is not one of {', '.join(OUTCOMES)}")
    registry = CollectorRegistry()

    def gauge(name: str, text: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, text, labels, registry=registry)

    last_success = ended if result != "failed" else previous_success(path)
    gauge("recsvc_nightly_last_run_timestamp_seconds", "When the last run ended.").set(ended)
    gauge(LAST_SUCCESS, "When the last run that worked (not failed) ended; 0: none yet.").set(
        last_success
    )
    outcomes = gauge("recsvc_nightly_last_outcome", "1 for the last run's outcome.", ("outcome",))
    for name in OUTCOMES:
        outcomes.labels(name).set(1 if name == result else 0)
    gauge("recsvc_nightly_duration_seconds", "How long the last run took.").set(ended - started)
    metric = gauge(
        "recsvc_nightly_metric",
        "Holdout metrics of the last run: the new model (candidate) and the live one (current).",
        ("metric", "model"),
    )
    for report_name, model in MODELS.items():
        scores = report.get("metrics", {}).get(report_name, {})
        for name in METRICS:
            value = scores.get(name)
            if isinstance(value, int | float) and math.isfinite(value):
                metric.labels(name, model).set(value)
    srm = gauge(
        "recsvc_ab_srm_alarm",
        "1 when the daily report of a running experiment raised the sample-ratio alarm.",
        ("experiment",),
    )
    for name, daily in report.get("experiments", {}).items():
        if "srm_alarm" in daily:
            srm.labels(name).set(1 if daily["srm_alarm"] else 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)  # a temporary file beside it, then a rename


def previous_success(path: Path) -> float:
    """The last success recorded in the metrics file at `path`; 0 when there is none."""
    try:
        text = path.read_text(encoding="utf-8")
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == LAST_SUCCESS:
                    return float(sample.value)
    except (OSError, ValueError):
        pass  # no file yet, or not ours: no success known
    return 0.0
