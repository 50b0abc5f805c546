"""Planning an experiment from what the service has already logged: for each metric, the
smallest effect it would detect (the minimum detectable effect, MDE) after a number of days,
and the days it would need for a given effect (`recsvc ab plan`).

Input: drained exposures and events (any experiments', or none: every feed the exposure log
holds counts), read as if all their users were one variant. Per metric, with R its value and
r_i = y_i - R x_i each user's residual (the report's delta method, training.ab.stats), the
relative variance per user is v = var(r) / (x̄² R²): the log of the metric measured over n
users has variance v / n. Two groups of p N and (1 - p) N users compared on the log ratio (as
the report does) have V = v (1/p + 1/(1 - p)) / N, and a two-sided test at α detects an
effect of e with probability `power` when log(1 + e) = (z_{1-α/2} + z_power) √V. So

    MDE(N) = exp((z_{1-α/2} + z_power) √(v (1/p + 1/(1-p)) / N)) - 1,
    N(e)   = (z_{1-α/2} + z_power)² v (1/p + 1/(1-p)) / log(1 + e)².

Users accumulate over days: N(d) is the distinct users of the log's first d days (for d past
the log's length, its last day's rate of new users carried on, and said). Fixed horizon, one
metric: with Holm across the report's six metrics, the primary metric is tested at α / 6 when
it is the smallest p; `comparisons` divides α for that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ab.attribution import DEFAULT_WINDOW
from training.ab.counting import user_aggregates
from training.ab.inputs import ReportError
from training.ab.stats import METRICS, Metric, VariantData

ALL = "plan"  # the one "experiment" every exposure is read as


@dataclass(frozen=True)
class Spread:
    """A metric's value over the log's users and its relative variance per user."""

    metric: str
    value: float | None
    users: int
    relative_variance: float | None  # v: Var(log of the metric over n users) = v / n


def history_as_one_variant(
    exposures: pa.Table, events: pa.Table, window: timedelta = DEFAULT_WINDOW
) -> VariantData:
    """Every user of the exposure log, as one variant (the per-user counts of the report)."""
    if not exposures.num_rows:
        raise ReportError("no exposures to plan from: drain the service's exposure log first")
    column = exposures.schema.get_field_index("experiments")
    tagged = exposures.set_column(
        column, "experiments", pa.array([f"{ALL}:all"] * exposures.num_rows)
    )
    data, _ = user_aggregates(tagged, events, ALL, window)
    return data["all"]


def spread(data: VariantData, metric: Metric) -> Spread:
    y, x = metric.columns(data)
    n = len(y)
    if n < 2 or x.sum() == 0 or y.sum() == 0:
        return Spread(metric.name, None if x.sum() == 0 else float(y.sum() / x.sum()), n, None)
    value = float(y.sum() / x.sum())
    residuals = y - value * x
    variance = float(residuals @ residuals) / (n - 1)
    return Spread(metric.name, value, n, variance / (float(x.mean()) ** 2 * value**2))


def multiplier(alpha: float, power: float, share: float, comparisons: int = 1) -> float:
    """(z_{1-α'/2} + z_power)² (1/p + 1/(1-p)) with α' = α / comparisons, so that
    N(e) = this · v / log(1 + e)²."""
    normal = NormalDist()
    z = normal.inv_cdf(1 - alpha / comparisons / 2) + normal.inv_cdf(power)
    return z * z * (1 / share + 1 / (1 - share))


def mde(
    relative_variance: float,
    users: float,
    alpha: float,
    power: float,
    share: float,
    comparisons: int = 1,
) -> float:
    """The relative effect detected with probability `power` over `users` users."""
    return math.expm1(
        math.sqrt(multiplier(alpha, power, share, comparisons) * relative_variance / users)
    )


def users_needed(
    relative_variance: float,
    effect: float,
    alpha: float,
    power: float,
    share: float,
    comparisons: int = 1,
) -> float:
    return (
        multiplier(alpha, power, share, comparisons) * relative_variance / math.log1p(effect) ** 2
    )


def users_by_day(exposures: pa.Table) -> list[int]:
    """Distinct users of the log's first 1, 2, ... days (days counted from its first exposure)."""
    ts = exposures.column("ts").cast(pa.int64()).to_numpy()
    users = pc.dictionary_encode(exposures.column("user_id").combine_chunks()).indices.to_numpy()
    day = (ts - ts.min()) // 86_400_000
    first_day = np.full(users.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first_day, users, day)
    return np.cumsum(np.bincount(first_day, minlength=int(day.max()) + 1)).tolist()


def plan(
    exposures: pa.Table,
    events: pa.Table,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    share: float = 0.5,
    effect: float = 0.05,
    days: Sequence[int] = (7, 14, 28),
    comparisons: int = 1,
    window: timedelta = DEFAULT_WINDOW,
) -> dict[str, Any]:
    """Per metric: its value, the MDE after each of `days`, and the days `effect` needs."""
    for name, value, low, high in (
        ("alpha", alpha, 0, 1),
        ("power", power, 0, 1),
        ("share", share, 0, 1),
    ):
        if not low < value < high:
            raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    if not effect > 0:
        raise ValueError(f"effect must be positive (0.05 is +5%), not {effect}")
    data = history_as_one_variant(exposures, events, window)
    cumulative = users_by_day(exposures)
    rate = cumulative[-1] - (cumulative[-2] if len(cumulative) > 1 else 0)

    def reached(d: int) -> float:
        return float(
            cumulative[d - 1]
            if d <= len(cumulative)
            else cumulative[-1] + rate * (d - len(cumulative))
        )

    metrics = []
    for metric in METRICS:
        s = spread(data, metric)
        row: dict[str, Any] = {
            "metric": s.metric,
            "value": s.value,
            "relative_variance": s.relative_variance,
        }
        if s.relative_variance is None:
            row.update(
                mde_by_days={},
                users_needed=None,
                days_needed=None,
                note="no variation to plan from",
            )
        else:
            row["mde_by_days"] = {
                str(d): mde(s.relative_variance, reached(d), alpha, power, share, comparisons)
                for d in days
            }
            needed = users_needed(s.relative_variance, effect, alpha, power, share, comparisons)
            row["users_needed"] = math.ceil(needed)
            row["days_needed"] = _days_to(needed, cumulative, rate)
        metrics.append(row)
    return {
        "alpha": alpha,
        "power": power,
        "share": share,
        "effect": effect,
        "comparisons": comparisons,
        "history_days": len(cumulative),
        "users_by_day": cumulative,
        "extrapolated_after_day": len(cumulative),
        "metrics": metrics,
    }


def _days_to(users: float, cumulative: list[int], rate: int) -> float | None:
    for day, reached in enumerate(cumulative, start=1):
        if reached >= users:
            return float(day)
    if rate <= 0:
        return None  # no new users on the log's last day: never, at that pace
    return round(len(cumulative) + (users - cumulative[-1]) / rate, 1)


def plan_text(result: dict[str, Any]) -> str:
    days = list(next((m["mde_by_days"] for m in result["metrics"] if m["mde_by_days"]), {}))
    lines = [
        f"Plan: two-sided test at alpha {result['alpha']:g}"
        + (f" / {result['comparisons']}" if result["comparisons"] > 1 else "")
        + f", power {result['power']:.0%}, {result['share']:.0%} of users in the treatment; "
        f"from {result['history_days']} day(s) of exposures "
        f"({result['users_by_day'][-1]:,} users; later days extrapolated at the last day's "
        "new users)",
        "",
        f"{'metric':<24} {'value':>10}  "
        + "  ".join(f"{'MDE ' + d + ' d':>10}" for d in days)
        + f"  {'days for +' + format(result['effect'], '.0%'):>14}",
    ]
    for m in result["metrics"]:
        value = "–" if m["value"] is None else f"{m['value']:.4g}"
        mdes = "  ".join(
            f"{'+' + format(m['mde_by_days'][d], '.1%'):>10}"
            if d in m["mde_by_days"]
            else f"{'–':>10}"
            for d in days
        )
        needed = "–" if m.get("days_needed") is None else f"{m['days_needed']:g}"
        lines.append(f"{m['metric']:<24} {value:>10}  {mdes}  {needed:>14}")
    lines += ["", "MDE: the smallest relative change the experiment would detect with that power."]
    return "\n".join(lines)
