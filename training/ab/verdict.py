"""What to do, in plain words, for each treatment of an experiment: ship it, keep running (and
for how many more days), or stop. Read from the report's own numbers, in this order:

1. **stop** when the sample-ratio check raises its alarm: the split of users does not match
   the weights, so no difference in the report can be trusted (find the fault first);
2. **stop** when a guardrail metric is significantly worse in the treatment (after Holm);
3. **no verdict** when the definition names no primary metric (the report still shows every
   metric);
4. **ship** when the primary metric is significantly better; **stop** when it is
   significantly worse;
5. otherwise **stop** when the experiment's scheduled end has passed (no difference found in
   the time it had); else **keep running**: the days still needed to detect the observed
   difference with 80% power at the report's α, at the rate users joined so far (training.ab.plan's
   arithmetic on the primary metric's observed variances), and the smallest effect the
   users so far could detect.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any

POWER = 0.8


def verdicts(report: dict[str, Any], now: datetime | None = None) -> list[dict[str, Any]]:
    """One verdict per comparison: `treatment`, `decision` (ship, keep running, stop, none),
    `reason`, and for keep running `days_more` and `mde_now`."""
    return [
        _verdict(report, comparison, now or datetime.now(UTC))
        for comparison in report["comparisons"]
    ]


def _verdict(report: dict[str, Any], comparison: dict[str, Any], now: datetime) -> dict[str, Any]:
    treatment, control = comparison["treatment"], comparison["control"]
    about = report.get("definition") or {}
    rows = {row["metric"]: row for row in comparison["metrics"]}

    def said(decision: str, reason: str, **more: Any) -> dict[str, Any]:
        return {"treatment": treatment, "decision": decision, "reason": reason, **more}

    if report["srm"]["alarm"]:
        return said(
            "stop",
            "the users' split does not match the weights (sample-ratio alarm): "
            "no difference here can be trusted; find the assignment or logging fault",
        )
    for metric in about.get("guardrails") or []:
        row = rows.get(metric)
        if row and row["significant"] and row.get("winner") == control:
            return said(
                "stop",
                f"guardrail {metric} is worse in {treatment} "
                f"({_percent(row['relative_difference'])}, p after Holm {row['adjusted_p']:.2g})",
            )
    primary = about.get("primary_metric")
    if not primary:
        return said("none", "the definition names no primary metric: read the metrics below")
    row = rows[primary]
    if row["significant"]:
        better = row.get("winner") == treatment
        return said(
            "ship" if better else "stop",
            f"{primary} is {'better' if better else 'worse'} in {treatment}: "
            f"{_percent(row['relative_difference'])} [{_percent(row['ci_low'])}, "
            f"{_percent(row['ci_high'])}], p after Holm {row['adjusted_p']:.2g}",
        )
    end = about.get("end")
    if end and datetime.fromisoformat(end) <= now:
        return said("stop", f"no significant difference in {primary} by the scheduled end ({end})")
    return _keep_running(report, comparison, row, primary, treatment, said)


def _keep_running(
    report: dict[str, Any],
    comparison: dict[str, Any],
    row: dict[str, Any],
    primary: str,
    treatment: str,
    said: Any,
) -> dict[str, Any]:
    users = {v["name"]: v["users"] for v in report["variants"]}
    n_t, n_c = users[treatment], users[comparison["control"]]
    days = (report.get("period") or {}).get("days")
    numbers: list[Any] = [
        row.get(k) for k in ("treatment_std_error", "control_std_error", "treatment", "control")
    ]
    if not all(isinstance(x, float | int) and x > 0 for x in numbers) or days is None:
        return said("keep running", f"too little data yet to say how long {primary} needs")
    se_t, se_c, value_t, value_c = (float(x) for x in numbers)
    # relative variance per user of each group: Var(log value) = v / n
    v_t = (se_t / value_t) ** 2 * n_t
    v_c = (se_c / value_c) ** 2 * n_c
    z = NormalDist().inv_cdf(1 - report["alpha"] / 2) + NormalDist().inv_cdf(POWER)
    mde_now = math.expm1(z * math.sqrt(v_t / n_t + v_c / n_c))
    observed = abs(math.log1p(row["relative_difference"] or 0.0))
    rate = (n_t + n_c) / max(days, 1.0)  # users joining per day so far (a first day: all)
    if observed < 1e-9:
        return said(
            "keep running",
            f"no difference in {primary} so far; the users so far could detect {_percent(mde_now)}",
            mde_now=mde_now,
            days_more=None,
        )
    share = n_t / (n_t + n_c)
    needed = z * z * (v_t / share + v_c / (1 - share)) / observed**2
    more = max(0.0, (needed - n_t - n_c) / rate)
    return said(
        "keep running",
        f"{primary} differs by {_percent(row['relative_difference'])}, not significantly yet: "
        f"about {math.ceil(more)} more day(s) at the current {rate:,.0f} users a day to detect "
        f"a difference that size with {POWER:.0%} power (the users so far detect "
        f"{_percent(mde_now)})",
        mde_now=mde_now,
        days_more=math.ceil(more),
    )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"
