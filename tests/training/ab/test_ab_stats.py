"""The A/B statistics against hand calculations, and against simulated experiments whose true
effect is planted: intervals cover it at their nominal rate, the null is rejected at alpha,
the sequential mode survives daily peeking, and degenerate inputs give None with a note."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import fields
from statistics import NormalDist

import numpy as np
import pytest

from training.ab.stats import (
    DEFAULT_TAU2,
    METRICS,
    MetricResult,
    VariantData,
    compare,
    holm,
    sample_ratio_mismatch,
)

# Every test here also fails on a warning (a division by zero, an overflow, a NaN compared).
pytestmark = pytest.mark.filterwarnings("error")

COLUMNS = [field.name for field in fields(VariantData)[1:]]
Z_95 = NormalDist().inv_cdf(0.975)


def variant(name: str = "control", /, **columns: Sequence[float]) -> VariantData:
    """A hand-written variant: the columns given, every other column 1 per user."""
    users = len(next(iter(columns.values()))) if columns else 0
    return VariantData(
        name, **{c: np.asarray(columns.get(c, [1] * users), dtype=float) for c in COLUMNS}
    )


def defined(number: float | None) -> float:
    assert number is not None
    return number


def by_metric(results: list[MetricResult]) -> dict[str, MetricResult]:
    return {r.metric: r for r in results}


def simulated(
    rng: np.random.Generator, experiments: int, users: int, effect: float, name: str
) -> list[VariantData]:
    """`experiments` independent variants of `users` users each, with a planted effect.

    Users differ in activity (gamma) and in their click propensities (beta); the treatment
    multiplies both propensities by 1 + effect. Purchases follow clicks, amounts and watch
    time follow purchases and clicks, so the true relative difference of every metric is
    exactly `effect`.
    """
    shape = (experiments, users)
    exposures = 1 + rng.poisson(rng.gamma(2.0, 2.0, shape))
    videos_shown = rng.binomial(exposures * 6, 0.8)
    video_ctr = np.minimum(1.0, rng.beta(2, 38, shape) * (1 + effect))
    video_clicks = rng.binomial(videos_shown, video_ctr)
    attach_shown = rng.binomial(exposures, 0.7)
    attach_click_rate = np.minimum(1.0, rng.beta(1, 9, shape) * (1 + effect))
    attach_clicks = rng.binomial(attach_shown, attach_click_rate)
    attach_purchases = rng.binomial(attach_clicks, 0.3)
    amount = rng.gamma(2.0 * attach_purchases, 50.0)  # 0 for a user without purchases
    watch_seconds = rng.gamma(1.5 * video_clicks, 20.0)
    columns: list[np.ndarray] = [exposures, videos_shown, video_clicks, attach_shown]
    columns += [attach_clicks, attach_purchases, amount, watch_seconds]  # VariantData's order
    return [VariantData(name, *(column[i] for column in columns)) for i in range(experiments)]


def first_users(data: VariantData, users: int) -> VariantData:
    return VariantData(data.name, **{c: getattr(data, c)[:users] for c in COLUMNS})


# --- point estimates and their variances, by hand -------------------------------------------


def test_a_ratio_metric_is_the_sum_over_the_sum_with_the_delta_method_variance() -> None:
    # three users: clicks y = 0, 2, 3 on x = 1, 2, 5 videos shown
    result = by_metric(
        compare(
            variant(video_clicks=[0, 2, 3], videos_shown=[1, 2, 5]),
            variant("treatment", video_clicks=[1, 1], videos_shown=[2, 2]),
        )
    )
    ctr = result["video_ctr"]
    assert ctr.control == 5 / 8  # not the mean of the users' ratios, (0 + 1 + 0.6) / 3
    # delta method: (s_Y^2 - 2 R s_XY + R^2 s_X^2) / (n Xbar^2) with sample (co)variances
    r, s_yy, s_xy, s_xx, x_bar = 5 / 8, 7 / 3, 17 / 6, 13 / 3, 8 / 3
    expected_variance = (s_yy - 2 * r * s_xy + r**2 * s_xx) / (3 * x_bar**2)
    assert expected_variance == pytest.approx(0.022705078125)
    assert ctr.control_std_error == pytest.approx(math.sqrt(expected_variance))


def test_a_mean_metric_is_the_mean_per_user_with_the_sample_variance_over_n() -> None:
    result = by_metric(compare(variant(amount=[10, 0, 20]), variant("t", amount=[5, 5, 5, 9])))
    amount = result["amount_per_user"]
    assert amount.control == 10
    assert amount.control_std_error == pytest.approx(math.sqrt(100 / 3))  # s^2 = 200 / 2
    assert amount.treatment == 6
    assert amount.treatment_std_error == pytest.approx(math.sqrt(12 / 3 / 4))


def test_every_metric_is_reported_in_a_fixed_order_with_its_kind() -> None:
    results = compare(variant(amount=[1, 2]), variant("t", amount=[2, 3]))
    assert [(r.metric, r.kind) for r in results] == [
        ("video_ctr", "ratio"),
        ("attach_click_rate", "ratio"),
        ("attach_conversion", "ratio"),
        ("purchases_per_user", "mean"),
        ("amount_per_user", "mean"),
        ("watch_seconds_per_user", "mean"),
    ]
    assert [r.metric for r in results] == [m.name for m in METRICS]


# --- the relative difference: fixed horizon and sequential, formula by formula ---------------


@pytest.fixture(scope="module")
def effect_of_15_percent() -> tuple[VariantData, VariantData]:
    rng = np.random.default_rng(7)
    return simulated(rng, 1, 3000, 0.0, "control")[0], simulated(rng, 1, 3000, 0.15, "t")[0]


def log_ratio_and_variance(r: MetricResult) -> tuple[float, float]:
    """log(T / C) and its delta-method variance Var T / T^2 + Var C / C^2, from r's parts."""
    control, treatment = defined(r.control), defined(r.treatment)
    log_ratio = math.log(treatment / control)
    variance = (defined(r.treatment_std_error) / treatment) ** 2 + (
        defined(r.control_std_error) / control
    ) ** 2
    return log_ratio, variance


def test_fixed_horizon_is_a_z_test_on_the_log_ratio_with_the_delta_method_variance(
    effect_of_15_percent: tuple[VariantData, VariantData],
) -> None:
    for r in compare(*effect_of_15_percent):
        lr, v = log_ratio_and_variance(r)
        assert r.relative_difference == pytest.approx(defined(r.treatment) / defined(r.control) - 1)
        assert r.p_value == pytest.approx(2 * (1 - NormalDist().cdf(abs(lr) / math.sqrt(v))))
        assert r.ci_low == pytest.approx(math.exp(lr - Z_95 * math.sqrt(v)) - 1)
        assert r.ci_high == pytest.approx(math.exp(lr + Z_95 * math.sqrt(v)) - 1)
        assert not r.sequential


@pytest.mark.parametrize("tau2", [None, 0.01])
def test_sequential_mode_is_the_normal_mixture_msprt_and_its_confidence_sequence(
    effect_of_15_percent: tuple[VariantData, VariantData], tau2: float | None
) -> None:
    t2 = DEFAULT_TAU2 if tau2 is None else tau2
    for r in compare(*effect_of_15_percent, sequential=True, tau2=tau2, alpha=0.1):
        lr, v = log_ratio_and_variance(r)
        mixture = math.sqrt(v / (v + t2)) * math.exp(t2 * lr**2 / (2 * v * (v + t2)))
        half_width = math.sqrt(v * (v + t2) / t2 * (2 * math.log(1 / 0.1) + math.log((v + t2) / v)))
        assert r.sequential
        assert r.p_value == pytest.approx(min(1.0, 1 / mixture))
        assert r.ci_low == pytest.approx(math.exp(lr - half_width) - 1)
        assert r.ci_high == pytest.approx(math.exp(lr + half_width) - 1)


def test_the_confidence_sequence_is_wider_and_the_always_valid_p_larger_than_fixed(
    effect_of_15_percent: tuple[VariantData, VariantData],
) -> None:
    fixed = compare(*effect_of_15_percent)
    always_valid = compare(*effect_of_15_percent, sequential=True)
    for f, s in zip(fixed, always_valid, strict=True):
        assert defined(s.ci_low) < defined(f.ci_low), f.metric
        assert defined(s.ci_high) > defined(f.ci_high), f.metric
        assert defined(s.p_value) >= defined(f.p_value), f.metric
        assert s.relative_difference == f.relative_difference


# --- calibration on simulated experiments with a planted effect ------------------------------

EXPERIMENTS = 300
CALIBRATED = ["video_ctr", "attach_conversion", "amount_per_user"]  # ratio, small rate, mean


@pytest.fixture(scope="module")
def simulated_results() -> dict[float, list[dict[str, MetricResult]]]:
    """Per planted effect (0 and +10%), the comparisons of 300 experiments of 1000 users."""
    rng = np.random.default_rng(2)
    controls = simulated(rng, EXPERIMENTS, 1000, 0.0, "control")
    return {
        effect: [
            by_metric(compare(c, t))
            for c, t in zip(controls, simulated(rng, EXPERIMENTS, 1000, effect, "t"), strict=True)
        ]
        for effect in (0.0, 0.1)
    }


@pytest.mark.parametrize("effect", [0.0, 0.1])
@pytest.mark.parametrize("metric", CALIBRATED)
def test_the_95_percent_interval_covers_the_planted_effect_about_95_percent_of_the_time(
    simulated_results: dict[float, list[dict[str, MetricResult]]], metric: str, effect: float
) -> None:
    results = [experiment[metric] for experiment in simulated_results[effect]]
    covered = np.mean([defined(r.ci_low) <= effect <= defined(r.ci_high) for r in results])
    assert 0.92 <= covered <= 0.98


@pytest.mark.parametrize("metric", CALIBRATED)
def test_without_an_effect_p_below_005_happens_about_5_percent_of_the_time(
    simulated_results: dict[float, list[dict[str, MetricResult]]], metric: str
) -> None:
    rejected = np.mean([defined(e[metric].p_value) < 0.05 for e in simulated_results[0.0]])
    assert 0.02 <= rejected <= 0.08


def test_the_interval_excludes_0_exactly_when_p_is_below_alpha(
    simulated_results: dict[float, list[dict[str, MetricResult]]],
) -> None:
    for experiment in simulated_results[0.1]:
        for r in experiment.values():
            assert r.ci_low is not None and r.ci_high is not None and r.p_value is not None
            assert (r.ci_low > 0 or r.ci_high < 0) == (r.p_value < 0.05), r


@pytest.mark.parametrize("sequential", [False, True])
def test_a_large_planted_effect_is_found_on_every_metric(sequential: bool) -> None:
    # +50% on 10,000 users a side: several hundred purchases, the rarest event, per variant
    rng = np.random.default_rng(3)
    control = simulated(rng, 1, 10_000, 0.0, "c")[0]
    treatment = simulated(rng, 1, 10_000, 0.5, "t")[0]
    for r in compare(control, treatment, sequential=sequential):
        assert defined(r.p_value) < 0.01 and r.significant, r
        assert 0.3 < defined(r.relative_difference) < 0.7, r


# --- sequential: peeking every day ----------------------------------------------------------


def crossed(r: MetricResult, alpha: float = 0.05) -> bool:
    return r.p_value is not None and r.p_value < alpha


@pytest.mark.slow
def test_peeking_daily_inflates_fixed_horizon_false_positives_but_not_always_valid_ones() -> None:
    # 100 A/A experiments, 40 new users per variant per day, the report read each of 30 days;
    # a day without a p-value (no purchase yet in control, say) is a day without a crossing.
    # With this seed: fixed horizon about 30% on every metric, always valid none.
    experiments, days, per_day = 100, 30, 40
    rng = np.random.default_rng(11)
    controls = simulated(rng, experiments, days * per_day, 0.0, "control")
    treatments = simulated(rng, experiments, days * per_day, 0.0, "treatment")
    ever_fixed = np.zeros((experiments, len(METRICS)), dtype=bool)
    ever_sequential = np.zeros_like(ever_fixed)
    for e in range(experiments):
        for day in range(1, days + 1):
            c, t = (first_users(v[e], day * per_day) for v in (controls, treatments))
            ever_fixed[e] |= [crossed(r) for r in compare(c, t)]
            ever_sequential[e] |= [crossed(r) for r in compare(c, t, sequential=True)]
    names = [m.name for m in METRICS]
    fixed_rate = dict(zip(names, ever_fixed.mean(axis=0), strict=True))
    sequential_rate = dict(zip(names, ever_sequential.mean(axis=0), strict=True))
    assert {m: rate for m, rate in sequential_rate.items() if rate > 0.06} == {}
    assert {m: rate for m, rate in fixed_rate.items() if rate <= 0.10} == {}


# --- Holm -----------------------------------------------------------------------------------


def test_holm_on_a_textbook_example() -> None:
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running max
    # makes the last 0.06; reported in the input's order
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_is_monotone_never_below_the_raw_p_and_capped_at_1() -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        raw = list(rng.uniform(0, 0.5, rng.integers(1, 12)))
        adjusted = holm(raw)
        order = np.argsort(raw, kind="stable")
        assert np.all(np.diff(np.asarray(adjusted)[order]) >= 0)
        assert all(r <= a <= 1 for r, a in zip(raw, adjusted, strict=True))
    assert holm([0.5, 0.6, 0.9]) == [1.0, 1.0, 1.0]
    assert holm([]) == []
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.1, 1.5])


def test_compare_adjusts_across_the_metrics_that_have_a_p_value() -> None:
    # no product cards in either variant: the two attach rates have no p and do not count
    control = variant(
        video_clicks=[1, 2, 0, 4],
        videos_shown=[5, 5, 5, 5],
        attach_shown=[0] * 4,
        attach_purchases=[0, 1, 2, 1],
        amount=[0, 9, 31, 7],
    )
    treatment = variant(
        "t",
        video_clicks=[3, 3, 4, 2, 5],
        videos_shown=[5] * 5,
        attach_shown=[0] * 5,
        attach_purchases=[1, 1, 2, 1, 2],
        amount=[5, 9, 21, 7, 30],
        watch_seconds=[3, 4, 3, 5, 6],
    )
    results = compare(control, treatment)
    tested = [r for r in results if r.p_value is not None]
    assert [r.metric for r in tested] == [
        "video_ctr",
        "purchases_per_user",
        "amount_per_user",
        "watch_seconds_per_user",
    ]
    raw = [defined(r.p_value) for r in tested]
    assert [r.adjusted_p for r in tested] == pytest.approx(holm(raw))
    assert all(r.significant == (defined(r.adjusted_p) < 0.05) for r in tested)
    untested = [r for r in results if r.p_value is None]
    assert all(r.adjusted_p is None and not r.significant for r in untested)


def test_significance_is_judged_on_the_holm_adjusted_p(
    simulated_results: dict[float, list[dict[str, MetricResult]]],
) -> None:
    results = [r for experiment in simulated_results[0.1] for r in experiment.values()]
    assert all(r.significant == (defined(r.adjusted_p) < 0.05) for r in results)
    # the distinction matters: some raw p-values below 0.05 do not survive the correction
    assert any(defined(r.p_value) < 0.05 and not r.significant for r in results)


# --- sample ratio mismatch ------------------------------------------------------------------


def test_an_even_split_raises_no_alarm() -> None:
    srm = sample_ratio_mismatch(
        {"control": 5000, "treatment": 5000}, {"control": 1, "treatment": 1}
    )
    assert srm.p_value == pytest.approx(1.0)
    assert not srm.alarm
    assert srm.message.startswith("no sample ratio mismatch")


def test_a_3_percent_shortfall_of_10000_users_is_suspicious_but_below_the_alarm() -> None:
    # chi2 = 2 * 150^2 / 4850 = 9.28, p = 0.0023: the alarm waits for p < 0.001
    srm = sample_ratio_mismatch(
        {"control": 5000, "treatment": 4700}, {"control": 1, "treatment": 1}
    )
    assert srm.chi2 == pytest.approx(2 * 150**2 / 4850)
    assert 0.001 < defined(srm.p_value) < 0.01
    assert not srm.alarm


def test_a_4_percent_shortfall_raises_the_alarm_and_names_the_shares() -> None:
    srm = sample_ratio_mismatch(
        {"control": 5000, "treatment": 4600}, {"control": 0.5, "treatment": 0.5}
    )
    assert defined(srm.p_value) < 0.001 and srm.alarm
    assert srm.message.startswith(
        "sample ratio mismatch: observed control 52.08%, treatment 47.92%; "
        "expected control 50.00%, treatment 50.00%"
    )


def test_three_variants_with_unequal_weights_that_need_not_sum_to_1() -> None:
    weights = {"control": 2.0, "a": 1.0, "b": 1.0}
    fine = sample_ratio_mismatch({"control": 5000, "a": 2480, "b": 2520}, weights)
    assert fine.expected_shares == {"control": 0.5, "a": 0.25, "b": 0.25}
    assert not fine.alarm
    short = sample_ratio_mismatch({"control": 5000, "a": 2500, "b": 2250}, weights)
    # 2 degrees of freedom: the chi-square survival function is exp(-chi2 / 2)
    assert short.chi2 == pytest.approx(125**2 / 4875 + 62.5**2 / 2437.5 + 187.5**2 / 2437.5)
    assert short.p_value == pytest.approx(math.exp(-defined(short.chi2) / 2))
    assert short.alarm
    assert short.observed_shares["b"] == pytest.approx(2250 / 9750)


def test_users_in_a_variant_of_weight_0_are_an_alarm_and_bad_arguments_are_refused() -> None:
    srm = sample_ratio_mismatch({"control": 100, "off": 3}, {"control": 1.0, "off": 0.0})
    assert srm.alarm and srm.p_value == 0.0
    assert "['off']" in srm.message
    with pytest.raises(ValueError, match="differ from the expected"):
        sample_ratio_mismatch({"control": 1, "t": 1}, {"control": 1.0, "b": 1.0})
    with pytest.raises(ValueError, match="positive sum"):
        sample_ratio_mismatch({"control": 1, "t": 1}, {"control": 0.0, "t": 0.0})
    empty = sample_ratio_mismatch({"control": 0, "t": 0}, {"control": 1.0, "t": 1.0})
    assert empty.p_value is None and not empty.alarm


# --- degenerate inputs: None and a note, never an exception, a warning or a NaN ---------------


def assert_serialisable(results: list[MetricResult]) -> None:
    json.dumps([r.as_dict() for r in results], allow_nan=False)


def test_a_variant_without_users_leaves_every_comparison_undefined() -> None:
    results = compare(variant(amount=[1, 2, 3]), variant("treatment"))
    for r in results:
        assert r.treatment is None and r.relative_difference is None and r.p_value is None
        assert r.adjusted_p is None and not r.significant
        assert r.note == "treatment has no users"
    assert_serialisable(results)


def test_a_zero_denominator_leaves_only_that_ratio_undefined() -> None:
    videos = {"video_clicks": [0, 1, 3], "videos_shown": [2, 2, 4]}
    results = by_metric(
        compare(
            variant(attach_shown=[0, 0, 0], **videos),
            variant("t", attach_shown=[1, 0, 2], **videos),
        )
    )
    for name in ("attach_click_rate", "attach_conversion"):
        assert results[name].control is None and results[name].treatment is not None
        assert results[name].note == "no attach_shown in control"
    assert results["video_ctr"].control == 0.5 and results["video_ctr"].p_value is not None
    assert_serialisable(list(results.values()))


def test_a_single_user_has_a_value_but_no_variance() -> None:
    results = by_metric(compare(variant(amount=[4]), variant("t", amount=[6, 8])))
    amount = results["amount_per_user"]
    assert amount.control == 4 and amount.relative_difference == pytest.approx(0.75)
    assert amount.control_std_error is None and amount.p_value is None and amount.ci_low is None
    assert amount.note == "control has fewer than 2 users: no variance"


def test_users_all_alike_give_no_interval_rather_than_an_infinitely_sure_one() -> None:
    # three users who each click 1 of 3 videos and spend 0.1: in floating point the mean of
    # 0.1, 0.1, 0.1 is not 0.1, and that rounding must not pass for variance
    alike: dict[str, Sequence[float]] = {
        "video_clicks": [1] * 3,
        "videos_shown": [3] * 3,
        "amount": [0.1] * 3,
    }
    results = compare(variant(**alike), variant("t", **alike))
    for r in results:
        assert r.relative_difference == pytest.approx(0)
        assert r.p_value is None and r.ci_low is None
        assert r.note == "no variation between users in either variant: no interval or p-value"
    assert_serialisable(results)


def test_a_control_value_of_0_leaves_the_relative_difference_undefined() -> None:
    results = by_metric(
        compare(
            variant(attach_purchases=[0, 0, 0], amount=[0, 0, 0]),
            variant("t", attach_purchases=[0, 1, 0], amount=[0, 5, 0]),
        )
    )
    for name in ("attach_conversion", "purchases_per_user", "amount_per_user"):
        assert results[name].control == 0 and results[name].treatment is not None
        assert results[name].relative_difference is None and results[name].p_value is None
        assert results[name].note == f"{name} is 0 in control: the relative difference is undefined"


def test_a_treatment_value_of_0_is_minus_100_percent_without_an_interval() -> None:
    results = by_metric(compare(variant(amount=[0, 5, 9]), variant("t", amount=[0, 0])))
    amount = results["amount_per_user"]
    assert amount.relative_difference == -1.0
    assert amount.p_value is None and amount.ci_low is None
    assert amount.note == "amount_per_user is 0 in t: no interval on the log scale"


def test_a_confidence_sequence_beyond_any_float_has_no_upper_end() -> None:
    # two users: one clicks the single video shown, the other none of 1000; the log ratio's
    # variance is about 8 and, with effects of 1% in mind (tau2 = 0.01^2), the sequence's
    # half-width about 3300 on the log scale
    two = {"video_clicks": [1, 0], "videos_shown": [1, 1000]}
    results = by_metric(compare(variant(**two), variant("t", **two), sequential=True, tau2=1e-4))
    ctr = results["video_ctr"]
    assert ctr.ci_high is None and ctr.ci_low == pytest.approx(-1) and ctr.p_value == 1.0
    assert ctr.note == "the interval's upper end is too large to represent: too few users"
    assert_serialisable(list(results.values()))


def test_values_at_the_ends_of_the_float_range_give_notes_not_overflows() -> None:
    results = by_metric(
        compare(variant(amount=[1.7e308, 1.7e308]), variant("t", amount=[5e-324, 0]))
    )
    amount = results["amount_per_user"]
    assert amount.control is None and amount.relative_difference is None
    assert amount.note == "amount_per_user in control is beyond float range"
    assert_serialisable(list(results.values()))


# --- contract -------------------------------------------------------------------------------


def test_malformed_variants_and_arguments_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="amount must be 1-D with one value per user"):
        VariantData("c", **{c: np.ones(3) for c in COLUMNS} | {"amount": np.ones(2)})
    with pytest.raises(ValueError, match="watch_seconds must be finite and non-negative"):
        VariantData("c", **{c: np.ones(2) for c in COLUMNS} | {"watch_seconds": np.array([1, -1])})
    with pytest.raises(ValueError, match="amount must be finite"):
        VariantData("c", **{c: np.ones(2) for c in COLUMNS} | {"amount": np.array([1, np.nan])})
    with pytest.raises(ValueError, match="alpha"):
        compare(variant(), variant("t"), alpha=1.5)
    with pytest.raises(ValueError, match="tau2"):
        compare(variant(), variant("t"), sequential=True, tau2=0.0)
