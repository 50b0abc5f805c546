"""The report's verdict in plain words (training.ab.verdict): stop on a sample-ratio alarm or
a broken guardrail, ship or stop on a significant primary metric, stop at the scheduled end,
and otherwise keep running for the days the observed difference needs."""

from __future__ import annotations

import copy
import math
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

import pytest

from training.ab.verdict import verdicts

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def metric(name: str, **fields: Any) -> dict[str, Any]:
    row = {"metric": name, "control": 0.02, "treatment": 0.021, "control_std_error": 0.001,
           "treatment_std_error": 0.001, "relative_difference": 0.05, "ci_low": -0.05,
           "ci_high": 0.16, "p_value": 0.4, "adjusted_p": 0.8, "significant": False,
           "winner": None}  # fmt: skip
    return {**row, **fields}


def report(**definition: Any) -> dict[str, Any]:
    return {
        "alpha": 0.05,
        "definition": {"primary_metric": "attach_conversion", "guardrails": ["video_ctr"],
                       "end": None, **definition},  # fmt: skip
        "period": {"days": 4.0},
        "srm": {"alarm": False},
        "variants": [{"name": "a", "users": 2000}, {"name": "b", "users": 2000}],
        "comparisons": [{"treatment": "b", "control": "a",
                         "metrics": [metric("video_ctr"), metric("attach_conversion")]}],
    }  # fmt: skip


def decide(changed: dict[str, Any]) -> dict[str, Any]:
    [verdict] = verdicts(changed, NOW)
    return verdict


def test_a_sample_ratio_alarm_or_a_broken_guardrail_stops_it() -> None:
    alarm = report()
    alarm["srm"]["alarm"] = True
    assert decide(alarm)["decision"] == "stop" and "sample-ratio" in decide(alarm)["reason"]
    guard = report()
    worse = {"significant": True, "winner": "a", "relative_difference": -0.04, "adjusted_p": 0.001}
    guard["comparisons"][0]["metrics"][0] = metric("video_ctr", **worse)
    said = decide(guard)
    assert (
        said["decision"] == "stop" and "guardrail video_ctr is worse in b (-4.0%" in said["reason"]
    )


def test_a_significant_primary_metric_ships_or_stops() -> None:
    better = report()
    better["comparisons"][0]["metrics"][1] = metric("attach_conversion", significant=True,
                                                    winner="b", relative_difference=0.2,
                                                    adjusted_p=0.004)  # fmt: skip
    assert decide(better)["decision"] == "ship"
    assert "attach_conversion is better in b: +20.0%" in decide(better)["reason"]
    worse = copy.deepcopy(better)
    worse["comparisons"][0]["metrics"][1]["winner"] = "a"
    assert decide(worse)["decision"] == "stop"
    assert decide(report(primary_metric=None))["decision"] == "none"


def test_no_difference_yet_keeps_it_running_for_the_days_it_needs() -> None:
    said = decide(report())
    assert said["decision"] == "keep running"
    # relative variance per user: (0.001/0.021)² 2000 and (0.001/0.02)² 2000; 1,000 users/day
    v_t, v_c = (0.001 / 0.021) ** 2 * 2000, (0.001 / 0.02) ** 2 * 2000
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)
    needed = z * z * (v_t / 0.5 + v_c / 0.5) / math.log1p(0.05) ** 2
    assert said["days_more"] == math.ceil((needed - 4000) / 1000)
    assert said["mde_now"] == pytest.approx(math.expm1(z * math.sqrt(v_t / 2000 + v_c / 2000)))
    ended = decide(report(end="2026-12-01T00:00:00+00:00"))
    assert ended["decision"] == "stop" and "by the scheduled end" in ended["reason"]
