"""The A/B report of one experiment, as a JSON-ready dict: who saw which variant, what they did
afterwards, and whether the variants differ.

The report is assembled here from the other modules' parts: the inputs from disk
(training.ab.inputs), the attribution of outcome events to exposures (training.ab.attribution),
the per-user counts (training.ab.counting) and the statistics (training.ab.stats). It is
rendered as a terminal table by training.ab.text and as an HTML page by training.ab.html.

The names the CLI, the bench and the tests import from here are re-exported (`__all__`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from recsvc.contract.experiments import Experiment
from training.ab.attribution import DEFAULT_WINDOW, AttributionStats, names_experiment
from training.ab.breakdown import breakdowns
from training.ab.counting import DEFAULT_DURATION_S, no_users, user_aggregates, variant_users
from training.ab.cumulative import cumulative
from training.ab.cuped import cuped_compare, interval_reductions, pre_period
from training.ab.inputs import (
    ReportError,
    find_experiment,
    find_in_history,
    load_durations,
    load_exposures,
)
from training.ab.stats import METRICS, VariantData, compare, sample_ratio_mismatch
from training.ab.text import report_text
from training.ab.verdict import verdicts

DEFAULT_CURRENCY = "EUR"

__all__ = [
    "DEFAULT_CURRENCY",
    "DEFAULT_DURATION_S",
    "DEFAULT_WINDOW",
    "AttributionStats",
    "ReportError",
    "build_report",
    "find_experiment",
    "find_in_history",
    "load_durations",
    "load_exposures",
    "report_text",
    "user_aggregates",
]


def build_report(
    exposures: pa.Table,
    events: pa.Table,
    experiment: Experiment,
    *,
    window: timedelta = DEFAULT_WINDOW,
    durations: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    sequential: bool = False,
    tau2: float | None = None,
    currency: str = DEFAULT_CURRENCY,
) -> dict[str, Any]:
    """The experiment's report, JSON-ready: variants, each treatment against the control, the
    SRM check against the definition's weights, the attribution counts and notes; CUPED, the
    breakdowns by segment, lifecycle and surface, the cumulative effect by day, the verdicts.

    currency: the ISO 4217 code the amounts are in (the events' `amount` carry none).
    Raises ReportError when no user has an exposure of the experiment, or on a currency that
    is not three capital letters."""
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ReportError(f"currency must be an ISO 4217 code such as EUR, got {currency!r}")
    data, stats = user_aggregates(exposures, events, experiment.name, window, durations)
    if not data and not stats.users_excluded:
        raise ReportError(f"no exposures of experiment {experiment.name!r}")
    notes = list(stats.notes)
    weights = {v.name: v.weight for v in experiment.variants}
    unknown = sorted(set(data) - set(weights))
    if unknown:
        users = sum(data[name].users for name in unknown)
        notes.append(
            f"{users:,} user(s) in variant(s) {unknown}, not in the definition, are left out"
        )
    variants = {name: data.get(name) or no_users(name) for name in weights}
    control = variants[experiment.control_variant]
    report: dict[str, Any] = {
        "experiment": experiment.name,
        "definition": _described(experiment),
        "period": _period(exposures, experiment.name),
        "control": control.name,
        "alpha": alpha,
        "sequential": sequential,
        "window_hours": window / timedelta(hours=1),
        "currency": currency,
        "variants": [
            {
                "name": name,
                "weight": weights[name],
                "users": variant.users,
                "exposures": int(variant.exposures.sum()),
                "metrics": _metric_values(variant),
            }
            for name, variant in variants.items()
        ],
        "comparisons": [
            {
                "treatment": name,
                "control": control.name,
                "metrics": [
                    {**result.as_dict(), "winner": _winner(result.as_dict(), control.name, name)}
                    for result in compare(
                        control, variant, alpha=alpha, sequential=sequential, tau2=tau2
                    )
                ],
            }
            for name, variant in variants.items()
            if name != control.name
        ],
        "srm": sample_ratio_mismatch(
            {name: variant.users for name, variant in variants.items()}, weights
        ).as_dict(),
        "attribution": {k: v for k, v in stats.as_dict().items() if k != "notes"},
        "notes": notes,
    }
    _add_cuped(report, exposures, events, experiment, variants, window, durations)
    mode: dict[str, Any] = {"alpha": alpha, "sequential": sequential, "tau2": tau2}
    report["breakdowns"] = breakdowns(exposures, experiment.name, variants, control.name, **mode)
    metric = experiment.primary_metric or METRICS[0].name
    report["cumulative"] = {
        **cumulative(
            exposures,
            events,
            experiment.name,
            metric,
            control.name,
            [c["treatment"] for c in report["comparisons"]],
            window=window,
            durations=durations,
            **mode,
        ),  # fmt: skip
        "primary": experiment.primary_metric is not None,
    }
    report["verdicts"] = verdicts(report)
    return report


def _add_cuped(
    report: dict[str, Any],
    exposures: pa.Table,
    events: pa.Table,
    experiment: Experiment,
    variants: Mapping[str, VariantData],
    window: timedelta,
    durations: Mapping[str, float] | None,
) -> None:
    """Each comparison again with CUPED (training.ab.cuped), when there is pre-period data
    (`cuped_pre_period_users`): `cuped` (the metric rows, adjusted) and
    `cuped_interval_reduction` per metric."""
    pre = pre_period(exposures, events, experiment.name, window, durations)
    report["cuped_pre_period_users"] = 0 if pre is None else pre[0].users
    if pre is None:  # no exposure before the experiment's first
        return
    ids = variant_users(exposures, experiment.name)
    control = variants[report["control"]]
    for comparison in report["comparisons"]:
        treatment = variants[comparison["treatment"]]
        if control.name not in ids or treatment.name not in ids:
            continue
        rows = cuped_compare(control, treatment, ids, pre, alpha=report["alpha"],
                             sequential=report["sequential"])  # fmt: skip
        for row in rows:
            row["winner"] = _winner(row, control.name, treatment.name)
        comparison["cuped"] = rows
        comparison["cuped_interval_reduction"] = interval_reductions(comparison["metrics"], rows)


def _winner(result: dict[str, Any], control: str, treatment: str) -> str | None:
    """The variant a significant difference favours (every metric here is better higher);
    None when the difference is not significant."""
    difference = result.get("relative_difference")
    if not result.get("significant") or difference is None or difference == 0:
        return None
    return treatment if difference > 0 else control


def _metric_values(variant: VariantData) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for metric in METRICS:
        numerator = float(getattr(variant, metric.numerator).sum())
        if metric.denominator is None:
            denominator = float(variant.users)
        else:
            denominator = float(getattr(variant, metric.denominator).sum())
        values[metric.name] = numerator / denominator if denominator else None
    return values


def _described(experiment: Experiment) -> dict[str, Any]:
    """What the definition says the experiment is for, and when it runs."""
    return {
        "owner": experiment.owner,
        "hypothesis": experiment.hypothesis,
        "primary_metric": experiment.primary_metric,
        "guardrails": list(experiment.guardrails),
        "start": experiment.start.isoformat() if experiment.start else None,
        "end": experiment.end.isoformat() if experiment.end else None,
    }


def _period(exposures: pa.Table, name: str) -> dict[str, Any]:
    """The first and last exposure of the experiment in the data, and the days between."""
    times = exposures.filter(names_experiment(exposures, name)).column("ts")
    first, last = pc.min(times).as_py(), pc.max(times).as_py()
    if first is None or last is None:
        return {"first_exposure": None, "last_exposure": None, "days": None}
    days = round((last - first).total_seconds() / 86400, 2)
    return {"first_exposure": first.isoformat(), "last_exposure": last.isoformat(), "days": days}
