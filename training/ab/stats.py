"""The statistics of the A/B report: per-metric comparisons, Holm correction and the SRM check.

Input is one `VariantData` per variant: one row per user assigned to and exposed in it.

Metrics (each a `Metric`: name, kind, the `VariantData` fields it reads):

- ratio metrics, the sum of the numerator over the sum of the denominator across the
  variant's users: `video_ctr` = video_clicks / videos_shown, `attach_click_rate` =
  attach_clicks / attach_shown, `attach_conversion` = attach_purchases / attach_shown;
- mean metrics, per user: `purchases_per_user` (attach_purchases), `amount_per_user`
  (amount), `watch_seconds_per_user` (watch_seconds).

The user, not the feed or the click, is the unit of randomisation, so variances are
user-level. A ratio R = sum Y / sum X has correlated numerator and denominator within a
user; the delta method on the user pairs (x_i, y_i) gives Var R ~ (s_Y^2 - 2 R s_XY + R^2
s_X^2) / (n Xbar^2) (sample variances, ddof = 1), computed as the sample variance of the
residuals y_i - R x_i over n Xbar^2 (the same quantity, one pass). A per-user mean is the
ratio to x_i = 1, and the formula reduces to s_Y^2 / n.

The relative difference of treatment T against control C is T / C - 1. The delta method on
the ratio of two independent estimates gives Var(T / C) ~ (T / C)^2 (Var T / T^2 + Var C /
C^2). Tests and intervals are computed on the log ratio L = log(T / C), whose variance by
the same delta method is V = Var T / T^2 + Var C / C^2, and mapped back with exp(.) - 1.
Why the log scale: a ratio of two noisy estimates is right-skewed (a low control draw blows
it up) and L is much closer to normal, so intervals cover at their nominal rate with fewer
users; the interval is asymmetric and never goes below -100%; and the mixture of the
sequential test (below) is symmetric in L. L = 0 exactly when T / C - 1 = 0, so the p-value
tests the same null, and it is computed from the same z = L / sqrt(V) as the interval:
the interval excludes 0 exactly when p < alpha.

Fixed-horizon mode (the default) is valid when the report is read once, at a horizon fixed
in advance: p = 2 (1 - Phi(|z|)), interval exp(L +- z_{1-alpha/2} sqrt V) - 1.

Sequential mode is for a report read every day. It uses the normal-mixture mSPRT (Johari,
Pekelis and Walsh 2017; Howard et al. 2021) with mixing variance tau2 over the true L:
Lambda = sqrt(V / (V + tau2)) exp(tau2 L^2 / (2 V (V + tau2))), p = min(1, 1 / Lambda), and
the confidence sequence L +- sqrt(V (V + tau2) / tau2 (2 log(1/alpha) + log((V + tau2) / V))).
Under the null Lambda is a martingale (for L normal with the plugged-in V: asymptotically),
so P(p ever <= alpha) <= alpha however often one looks: peeking every day and stopping at
the first p < alpha does not inflate false positives, and the sequence covers the truth at
every look at once. The price is width: at any single look it is wider than the fixed
interval. tau2 defaults to 0.05^2 (`DEFAULT_TAU2`): the mixture puts its weight on effects
of about 5% (log 1.05 ~ 0.049), the smallest change worth shipping for, and the test is most
powerful near the effects it mixes over.

Holm-Bonferroni runs across the metrics of one comparison that have a p-value (always-valid
p-values are valid at any stopping time, so Holm applies to them too); `significant` is
adjusted_p < alpha. Intervals are per metric and not adjusted, so one may exclude 0 for a
metric that is not significant.

Degenerate inputs (a variant without users, a zero denominator, fewer than two users, no
variation between users, a value of 0) give None for every number they leave undefined and
a `note` saying why: none of them raises or warns, and no NaN or infinity reaches the
output (`as_dict()` is plain JSON). Malformed input (columns of different lengths, negative
or non-finite values, alpha outside (0, 1)) is refused with a ValueError naming it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from scipy.stats import chisquare

MetricKind = Literal["ratio", "mean"]

DEFAULT_TAU2 = 0.05**2
SRM_ALARM_P = 0.001
_MAX_EXPONENT = 700.0  # math.expm1 overflows a float a little above 709
# A relative standard error of 1e-9 comes from no real data, only from rounding in users that
# are all alike: below this the log ratio's variance counts as zero.
_ROUNDING_VARIANCE = 1e-18


@dataclass(frozen=True)
class VariantData:
    """User-level aggregates of one variant: element i of every array is the same user.

    Every array is 1-D, of the same length (the number of users), finite and non-negative
    (amount is the sum of purchase amounts; refunds are not netted here).
    """

    name: str
    exposures: np.ndarray  # feed responses shown to the user
    videos_shown: np.ndarray  # videos shown across those feeds
    video_clicks: np.ndarray  # views or clicks on the videos shown
    attach_shown: np.ndarray  # product cards shown
    attach_clicks: np.ndarray  # clicks on product cards
    attach_purchases: np.ndarray  # purchases of an attached product
    amount: np.ndarray  # sum of those purchases' amounts
    watch_seconds: np.ndarray  # watch time

    def __post_init__(self) -> None:
        shape = np.shape(self.exposures)
        for field in fields(self)[1:]:
            column = np.asarray(getattr(self, field.name))
            if column.ndim != 1 or column.shape != shape:
                raise ValueError(
                    f"variant {self.name!r}: {field.name} must be 1-D with one value per user, "
                    f"got shape {column.shape} (exposures: {shape})"
                )
            # two reductions instead of two masks: NaN fails `>=`, an infinity one of the bounds
            if column.size and not (column.min() >= 0 and column.max() < np.inf):
                raise ValueError(
                    f"variant {self.name!r}: {field.name} must be finite and non-negative"
                )

    @property
    def users(self) -> int:
        return len(self.exposures)


@dataclass(frozen=True)
class Metric:
    """A reported metric: sum(numerator) / sum(denominator), or per user without one."""

    name: str
    kind: MetricKind
    numerator: str  # a VariantData field
    denominator: str | None  # a VariantData field for a ratio; None for a per-user mean
    amount: bool = False  # an amount of money, shown with the report's currency

    def columns(self, data: VariantData) -> tuple[np.ndarray, np.ndarray]:
        """Each user's numerator and denominator (1 for a per-user mean), as floats."""
        y = np.asarray(getattr(data, self.numerator), dtype=np.float64)
        if self.denominator is None:
            return y, np.ones_like(y)
        return y, np.asarray(getattr(data, self.denominator), dtype=np.float64)


METRICS: tuple[Metric, ...] = (
    Metric("video_ctr", "ratio", "video_clicks", "videos_shown"),
    Metric("attach_click_rate", "ratio", "attach_clicks", "attach_shown"),
    Metric("attach_conversion", "ratio", "attach_purchases", "attach_shown"),
    Metric("purchases_per_user", "mean", "attach_purchases", None),
    Metric("amount_per_user", "mean", "amount", None, amount=True),
    Metric("watch_seconds_per_user", "mean", "watch_seconds", None),
)


@dataclass(frozen=True)
class MetricResult:
    """One metric, treatment against control; None where a number is undefined (see note).

    relative_difference, ci_low and ci_high are relative: 0.1 means treatment is 10% higher.
    The interval is a confidence sequence when `sequential`.
    """

    metric: str
    kind: MetricKind
    control: float | None
    treatment: float | None
    control_std_error: float | None
    treatment_std_error: float | None
    relative_difference: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    adjusted_p: float | None  # Holm across the metrics of this comparison
    significant: bool  # adjusted_p < alpha
    sequential: bool
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: do the users split across variants as the weights say?"""

    observed_users: dict[str, int]
    observed_shares: dict[str, float]
    expected_shares: dict[str, float]
    chi2: float | None
    p_value: float | None
    alarm: bool  # p < SRM_ALARM_P: the assignment or the exposure logging is broken
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    value: float | None
    variance: float | None
    note: str | None


def _variant_estimate(variant: VariantData, metric: Metric) -> Estimate:
    n = variant.users
    if n == 0:
        return Estimate(None, None, f"{variant.name} has no users")
    y = np.asarray(getattr(variant, metric.numerator), dtype=np.float64)
    # compare() lets numpy overflow to inf or NaN quietly: the checks below catch it
    if metric.denominator is None:  # a mean: the ratio to x_i = 1, written out
        x_sum = float(n)
        value = float(y.sum()) / x_sum
        residuals = y - value
    else:
        x = np.asarray(getattr(variant, metric.denominator), dtype=np.float64)
        x_sum = float(x.sum())
        if x_sum == 0:
            return Estimate(None, None, f"no {metric.denominator} in {variant.name}")
        value = float(y.sum()) / x_sum
        residuals = y - value * x
    # the residuals sum to 0, so their sample variance is a dot product over n - 1
    spread = float(residuals @ residuals) / max(n - 1, 1)
    x_bar = x_sum / n
    scale = n * x_bar * x_bar
    if not math.isfinite(value):
        return Estimate(None, None, f"{metric.name} in {variant.name} is beyond float range")
    if n < 2:
        return Estimate(value, None, f"{variant.name} has fewer than 2 users: no variance")
    if not (math.isfinite(spread) and 0 < scale < math.inf):
        note = f"the variance of {metric.name} in {variant.name} is beyond float range"
        return Estimate(value, None, note)
    return Estimate(value, spread / scale, None)


def compare(
    control: VariantData,
    treatment: VariantData,
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    tau2: float | None = None,
) -> list[MetricResult]:
    """Every metric of METRICS, treatment against control, Holm-adjusted across metrics.

    tau2: the mixing variance of the sequential test on the log ratio (DEFAULT_TAU2 when
    None); used only when `sequential`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    tau2 = DEFAULT_TAU2 if tau2 is None else tau2
    if not (math.isfinite(tau2) and tau2 > 0):
        raise ValueError(f"tau2 must be a positive number, got {tau2}")
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float limits
        rows = [_compare_metric(m, control, treatment, alpha, sequential, tau2) for m in METRICS]
    tested = [i for i, row in enumerate(rows) if row["p_value"] is not None]
    adjusted = dict(zip(tested, holm([rows[i]["p_value"] for i in tested]), strict=True))
    return [
        MetricResult(
            **row,
            adjusted_p=adjusted.get(i),
            significant=i in adjusted and adjusted[i] < alpha,
            sequential=sequential,
        )
        for i, row in enumerate(rows)
    ]


def _compare_metric(
    metric: Metric,
    control: VariantData,
    treatment: VariantData,
    alpha: float,
    sequential: bool,
    tau2: float,
) -> dict[str, Any]:
    c = _variant_estimate(control, metric)
    t = _variant_estimate(treatment, metric)
    return compare_estimates(metric, c, t, control.name, treatment.name, alpha, sequential, tau2)


def compare_estimates(
    metric: Metric,
    c: Estimate,
    t: Estimate,
    control: str,
    treatment: str,
    alpha: float,
    sequential: bool,
    tau2: float,
) -> dict[str, Any]:
    """One metric's row from the two variants' estimates (value and variance of the value):
    the relative difference, its interval and p-value on the log ratio (the docstring's)."""
    row: dict[str, Any] = {
        "metric": metric.name,
        "kind": metric.kind,
        "control": c.value,
        "treatment": t.value,
        "control_std_error": None if c.variance is None else math.sqrt(c.variance),
        "treatment_std_error": None if t.variance is None else math.sqrt(t.variance),
        "relative_difference": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "note": c.note or t.note,
    }
    if c.value is None or t.value is None:
        return row
    if c.value <= 0:
        row["note"] = f"{metric.name} is 0 in {control}: the relative difference is undefined"
        return row
    if t.value <= 0:
        row["relative_difference"] = -1.0
        row["note"] = f"{metric.name} is 0 in {treatment}: no interval on the log scale"
        return row
    # logs and square roots first, so that no square or quotient of extreme values overflows
    log_ratio = math.log(t.value) - math.log(c.value)
    if log_ratio >= _MAX_EXPONENT:
        row["note"] = "the ratio of the two values is too large to represent"
        return row
    row["relative_difference"] = math.expm1(log_ratio)
    if c.variance is None or t.variance is None:
        return row
    t_relative_error = math.sqrt(t.variance) / t.value
    c_relative_error = math.sqrt(c.variance) / c.value
    variance = t_relative_error * t_relative_error + c_relative_error * c_relative_error
    if variance < _ROUNDING_VARIANCE:
        row["note"] = "no variation between users in either variant: no interval or p-value"
        return row
    if not math.isfinite(variance):
        row["note"] = "the log ratio's variance is too large to represent"
        return row
    if sequential:
        p_value, half_width = _always_valid(log_ratio, variance, alpha, tau2)
    else:
        z = abs(log_ratio) / math.sqrt(variance)
        p_value = math.erfc(z / math.sqrt(2))
        half_width = NormalDist().inv_cdf(1 - alpha / 2) * math.sqrt(variance)
    row["p_value"] = p_value
    row["ci_low"] = math.expm1(log_ratio - half_width)
    if log_ratio + half_width < _MAX_EXPONENT:
        row["ci_high"] = math.expm1(log_ratio + half_width)
    else:
        row["note"] = "the interval's upper end is too large to represent: too few users"
    return row


def _always_valid(
    estimate: float, variance: float, alpha: float, tau2: float
) -> tuple[float, float]:
    """The mSPRT p-value and the confidence sequence's half-width (formulas in the docstring)."""
    log_lambda = 0.5 * math.log(variance / (variance + tau2)) + tau2 * estimate**2 / (
        2 * variance * (variance + tau2)
    )
    p_value = 1.0 if log_lambda <= 0 else math.exp(-log_lambda)
    half_width = math.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )
    return p_value, half_width


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input's order, monotone in p and at most 1.

    The i-th smallest of m p-values is multiplied by (m - i + 1) and raised to the largest
    adjusted value before it; reject where adjusted < alpha.
    """
    for p in p_values:
        if not 0 <= p <= 1:
            raise ValueError(f"p-values must be between 0 and 1, got {p}")
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def sample_ratio_mismatch(
    observed_users: dict[str, int], expected_weights: dict[str, float]
) -> SrmResult:
    """Chi-square goodness of fit of the users per variant to the variants' weights.

    expected_weights need not sum to 1 (they are normalised). A variant of weight 0 that has
    users is an alarm outright (p = 0).
    """
    if set(observed_users) != set(expected_weights):
        raise ValueError(
            f"observed variants {sorted(observed_users)} differ from the expected "
            f"{sorted(expected_weights)}"
        )
    if any(n < 0 for n in observed_users.values()):
        raise ValueError(f"user counts must be non-negative, got {observed_users}")
    total_weight = sum(expected_weights.values())
    if any(w < 0 or not math.isfinite(w) for w in expected_weights.values()) or total_weight <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum: {expected_weights}")
    names = list(expected_weights)
    total = sum(observed_users.values())
    expected = {v: expected_weights[v] / total_weight for v in names}
    observed = {v: observed_users[v] / total if total else 0.0 for v in names}
    shares = (
        f"observed {', '.join(f'{v} {observed[v]:.2%}' for v in names)}; "
        f"expected {', '.join(f'{v} {expected[v]:.2%}' for v in names)}"
    )

    def result(chi2: float | None, p: float | None, message: str) -> SrmResult:
        alarm = p is not None and p < SRM_ALARM_P
        return SrmResult(dict(observed_users), observed, expected, chi2, p, alarm, message)

    if total == 0:
        return result(None, None, "no users in any variant: nothing to check")
    unexpected = [v for v in names if expected[v] == 0 and observed_users[v] > 0]
    if unexpected:
        return result(
            None, 0.0, f"sample ratio mismatch: users in {unexpected}, of weight 0; {shares}"
        )
    tested = [v for v in names if expected[v] > 0]
    if len(tested) < 2:
        return result(None, None, f"a single variant: nothing to check; {shares}")
    fit = chisquare([observed_users[v] for v in tested], [total * expected[v] for v in tested])
    chi2, p = float(fit.statistic), float(fit.pvalue)
    verdict = "sample ratio mismatch" if p < SRM_ALARM_P else "no sample ratio mismatch"
    return result(chi2, p, f"{verdict}: {shares} (chi-square p = {p:.2g})")
