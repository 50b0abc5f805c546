"""The A/B report's effect over time: for each day of the experiment, the primary metric's
relative difference and interval as a report made at the end of that day would have given
them.

Days are UTC calendar days (the drain's day partitions), from the day of the experiment's
first exposure to the day of its last. At the end of day d the report is rebuilt from the
exposures and events before midnight (UTC) after d: the users exposed up to then, and what
they had done by then, attributed and compared exactly as the full report does
(training.ab.counting, training.ab.stats.compare). The interval is the report's: a
confidence sequence in sequential mode, which stays valid read every day; in fixed-horizon
mode each day's interval is valid for that day alone, and following the curve until it
leaves 0 is the peeking that sequential mode exists for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from training.ab.attribution import DEFAULT_WINDOW, names_experiment
from training.ab.counting import no_users, user_aggregates
from training.ab.stats import METRICS, compare

_POINT = ("control", "treatment", "relative_difference", "ci_low", "ci_high", "p_value", "note")


def experiment_days(exposures: pa.Table, experiment: str) -> list[date]:
    """The UTC days from the experiment's first exposure to its last, both included."""
    times = exposures.filter(names_experiment(exposures, experiment)).column("ts")
    first, last = pc.min(times).as_py(), pc.max(times).as_py()
    if first is None or last is None:
        return []
    start, end = first.astimezone(UTC).date(), last.astimezone(UTC).date()
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def cumulative(
    exposures: pa.Table,
    events: pa.Table,
    experiment: str,
    metric: str,
    control: str,
    treatments: Sequence[str],
    *,
    window: timedelta = DEFAULT_WINDOW,
    durations: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    sequential: bool = False,
    tau2: float | None = None,
) -> dict[str, Any]:
    """The report's `cumulative`: `metric` and per treatment a `series` of one point per day
    (`day`, `users` of both variants so far, the values, difference, interval, p and note)."""
    index = [m.name for m in METRICS].index(metric)
    series: dict[str, list[dict[str, Any]]] = {name: [] for name in treatments}
    for day in experiment_days(exposures, experiment):
        cutoff = datetime.combine(day + timedelta(days=1), time(), UTC)
        data, _ = user_aggregates(
            _before(exposures, cutoff), _before(events, cutoff), experiment, window, durations
        )
        before = data.get(control) or no_users(control)
        for name in treatments:
            after = data.get(name) or no_users(name)
            row = compare(before, after, alpha=alpha, sequential=sequential, tau2=tau2)[index]
            result = row.as_dict()
            series[name].append(
                {
                    "day": day.isoformat(),
                    "users": {control: before.users, name: after.users},
                    **{key: result[key] for key in _POINT},
                }
            )
    return {
        "metric": metric,
        "series": [{"treatment": name, "points": points} for name, points in series.items()],
    }


def _before(table: pa.Table, cutoff: datetime) -> pa.Table:
    ts = table.column("ts")
    return table.filter(pc.fill_null(pc.less(ts, pa.scalar(cutoff, type=ts.type)), False))
