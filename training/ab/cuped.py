"""CUPED (Deng, Xu, Kohavi and Walker 2013): each metric compared again with each user's
pre-experiment value as a covariate, which removes the part of the users' spread that was
there before the experiment and narrows the interval without moving what it estimates.

Pre-experiment data: every exposure and event before the experiment's first exposure (of any
experiment: the exposure log holds only feeds of users in one), counted per user as the
report counts (training.ab.counting), all users as one group. For a metric R = Σy / Σx (x = 1
for a per-user mean), a user's value in the experiment enters the report's delta method as
r_i = (y_i - R_v x_i) / x̄_v (so that R̂_v ≈ R_v + mean(r)); the covariate is the same
linearization over the pre-period, c_i = (y'_i - R' x'_i) / x̄', with two more covariates:
the feeds the user saw then (how active they are) and 1 (0 for a user without pre-period
data, whose other covariates are 0 too). With θ the least-squares coefficients of r on the
centred covariates over both variants' users (one covariate: θ = cov(r, c) / var(c)),

    R_v,cuped = R_v - (c̄_v - c̄)·θ,    Var(R_v,cuped) = var(r - (c - c̄)·θ) / n_v,

and the two variants are compared on the log ratio exactly as the report does
(training.ab.stats.compare_estimates), Holm across the metrics. Randomisation makes c
independent of the variant, so the estimate stays unbiased; the variance falls by the share
of r's variance that c explains (ρ²).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ab.attribution import DEFAULT_WINDOW, names_experiment
from training.ab.counting import user_aggregates, variant_users
from training.ab.stats import (
    DEFAULT_TAU2,
    METRICS,
    Estimate,
    Metric,
    VariantData,
    compare_estimates,
    holm,
)

PRE = "pre"  # the one "experiment" the pre-period's exposures are read as


def pre_period(
    exposures: pa.Table,
    events: pa.Table,
    experiment: str,
    window: timedelta = DEFAULT_WINDOW,
    durations: Mapping[str, float] | None = None,
) -> tuple[VariantData, list[str]] | None:
    """Every user's counts before the experiment's first exposure, and their ids; None when
    nothing came before it."""
    named = names_experiment(exposures, experiment)
    first = pc.min(exposures.filter(named).column("ts"))
    if not first.is_valid:
        return None
    before = pc.less(exposures.column("ts"), first)
    shown = exposures.filter(pc.fill_null(before, False))
    if not shown.num_rows:
        return None
    shown = shown.set_column(
        shown.schema.get_field_index("experiments"),
        "experiments",
        pa.array([f"{PRE}:all"] * shown.num_rows, pa.string()),
    )
    outcomes = events.filter(
        pc.fill_null(
            pc.less(events.column("ts"), first.cast(events.schema.field("ts").type)), False
        )
    )
    data, _ = user_aggregates(shown, outcomes, PRE, window, durations)
    return data["all"], variant_users(shown, PRE)["all"]


def cuped_compare(
    control: VariantData,
    treatment: VariantData,
    ids: Mapping[str, list[str]],
    pre: tuple[VariantData, list[str]],
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tau2: float | None = None,
) -> list[dict[str, Any]]:
    """Every metric, treatment against control, adjusted by the pre-period covariate."""
    before, before_ids = pre
    row_of = {user: i for i, user in enumerate(before_ids)}
    rows = []
    for metric in METRICS:
        columns = _covariates(before, metric)
        c_control = _for_users(columns, row_of, ids[control.name])
        c_treatment = _for_users(columns, row_of, ids[treatment.name])
        rows.append(_adjusted(metric, control, treatment, c_control, c_treatment, alpha,
                              sequential, tau2 or DEFAULT_TAU2))  # fmt: skip
    tested = [i for i, row in enumerate(rows) if row["p_value"] is not None]
    adjusted = dict(zip(tested, holm([rows[i]["p_value"] for i in tested]), strict=True))
    for i, row in enumerate(rows):
        row["adjusted_p"] = adjusted.get(i)
        row["significant"] = i in adjusted and adjusted[i] < alpha
    return rows


def _linearized(data: VariantData, metric: Metric) -> np.ndarray:
    """(y - R x) / x̄ per user of `data` (0 everywhere when the metric is undefined)."""
    y, x = metric.columns(data)
    if not len(y) or x.sum() == 0:
        return np.zeros_like(y)
    value = y.sum() / x.sum()
    return (y - value * x) / x.mean()


def _covariates(before: VariantData, metric: Metric) -> np.ndarray:
    """[users, 3] per pre-period user: the metric's linearized value, the feeds seen, and 1
    (a user without pre-period data gets a row of zeros: the third column tells them apart)."""
    return np.column_stack([_linearized(before, metric), before.exposures, np.ones(before.users)])


def _for_users(columns: np.ndarray, row_of: Mapping[str, int], users: list[str]) -> np.ndarray:
    rows = np.array([row_of.get(u, -1) for u in users], dtype=np.int64)
    out = np.zeros((len(users), columns.shape[1]))
    known = rows >= 0
    out[known] = columns[rows[known]]
    return out


def _adjusted(
    metric: Metric,
    control: VariantData,
    treatment: VariantData,
    c_control: np.ndarray,
    c_treatment: np.ndarray,
    alpha: float,
    sequential: bool,
    tau2: float,
) -> dict[str, Any]:
    r_control, r_treatment = _linearized(control, metric), _linearized(treatment, metric)
    r = np.concatenate([r_control, r_treatment])
    c = np.vstack([c_control, c_treatment])
    c_bar = c.mean(axis=0) if len(c) else np.zeros(c.shape[1])
    # θ by least squares over both variants' users (one covariate: cov(r, c) / var(c))
    theta = (
        np.linalg.lstsq(c - c_bar, r - r.mean(), rcond=None)[0]
        if len(r) > 1
        else np.zeros(c.shape[1])
    )
    estimates = [
        _estimate(data, metric, residuals, covariates, theta, c_bar)
        for data, residuals, covariates in (
            (control, r_control, c_control),
            (treatment, r_treatment, c_treatment),
        )
    ]
    row = compare_estimates(metric, estimates[0], estimates[1], control.name, treatment.name,
                            alpha, sequential, tau2)  # fmt: skip
    row["theta"] = [float(t) for t in theta]
    row["users_with_pre_period"] = int(np.count_nonzero(c[:, -1]))
    return row


def _estimate(
    data: VariantData,
    metric: Metric,
    residuals: np.ndarray,
    covariates: np.ndarray,
    theta: np.ndarray,
    c_bar: np.ndarray,
) -> Estimate:
    n = data.users
    y, x = metric.columns(data)
    if n < 2 or x.sum() == 0:
        return Estimate(None, None, f"too few users or no {metric.denominator} in {data.name}")
    value = float(y.sum() / x.sum()) - float((covariates.mean(axis=0) - c_bar) @ theta)
    adjusted = residuals - (covariates - c_bar) @ theta
    return Estimate(value, float(np.var(adjusted, ddof=1)) / n, None)


def interval_reductions(
    plain: list[dict[str, Any]], cuped: list[dict[str, Any]]
) -> dict[str, float | None]:
    """Per metric: 1 - (CUPED interval's width / the plain one's), on the log scale."""
    out: dict[str, float | None] = {}
    for before, after in zip(plain, cuped, strict=True):
        width, narrower = _log_width(before), _log_width(after)
        usable = width is not None and narrower is not None and width > 0
        out[before["metric"]] = 1 - narrower / width if usable else None  # type: ignore[operator]
    return out


def _log_width(row: Mapping[str, Any]) -> float | None:
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None or low <= -1:
        return None
    return float(np.log1p(high) - np.log1p(low))
