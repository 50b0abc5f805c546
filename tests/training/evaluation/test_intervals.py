"""Intervals over users (training.evaluation.intervals): the percentile bootstrap of a mean and
of a ratio of sums, paired differences, and the warning when the model does not beat
popularity beyond its interval."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluation.evaluate import ScorerReport
from training.evaluation.intervals import (
    mean_interval,
    paired_mean_difference,
    ratio_interval,
    versus,
)
from training.evaluation.metrics import RankingMetrics


def test_identical_users_give_a_zero_width_interval_at_the_value() -> None:
    interval = mean_interval(np.full(40, 0.3))
    assert (interval.value, interval.low, interval.high) == pytest.approx((0.3, 0.3, 0.3))
    ratio = ratio_interval(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert (ratio.value, ratio.low, ratio.high) == pytest.approx((0.5, 0.5, 0.5))


def test_two_users_by_hand() -> None:
    """Users scoring 0 and 1: a resample of two users has mean 0 (1/4), 0.5 (1/2) or 1 (1/4),
    so the central 95% runs from 0 to 1."""
    interval = mean_interval(np.array([0.0, 1.0]), resamples=4000)
    assert (interval.value, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_a_ratio_weighs_users_by_their_pairs() -> None:
    """hit rate = pairs found / pairs: a user with 9 of 9 outweighs one with 0 of 1."""
    interval = ratio_interval(np.array([9.0, 0.0]), np.array([9.0, 1.0]))
    assert interval.value == pytest.approx(0.9)


def test_95_percent_intervals_cover_the_true_mean_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for i in range(300):
        interval = mean_interval(rng.normal(2.0, 1.0, 200), resamples=400, seed=i)
        covered += interval.low <= 2.0 <= interval.high
    assert 0.91 <= covered / 300 <= 0.98, covered


def test_a_paired_difference_is_narrower_than_comparing_two_intervals() -> None:
    rng = np.random.default_rng(2)
    base = rng.random(500)
    model = base + 0.02 + rng.normal(0, 0.01, 500)  # the same users, a little better
    paired = paired_mean_difference(model, base)
    assert paired.low > 0  # the small, consistent gain is seen
    separate_a, separate_b = mean_interval(model), mean_interval(base)
    assert separate_a.low < separate_b.high  # by eye, the two intervals overlap
    assert paired.high - paired.low < (separate_a.high - separate_a.low) / 3


def report(name: str, ndcg: np.ndarray, hits: np.ndarray, pairs: np.ndarray) -> ScorerReport:
    videos = RankingMetrics(10, len(ndcg), 0.0, 0.0, float(ndcg.mean()), 0.0, 0.0)
    rate = float(hits.sum() / pairs.sum())
    return ScorerReport(name, videos, rate, int(pairs.sum()), {"ndcg_at_10": ndcg}, hits, pairs)


def test_a_noise_level_difference_is_warned_about_and_a_clear_win_is_not() -> None:
    rng = np.random.default_rng(3)
    popularity_ndcg = rng.random(300)
    pairs = np.ones(300)
    popularity_hits = (rng.random(300) < 0.5).astype(float)
    noise = report("model", popularity_ndcg + rng.normal(0, 0.05, 300), popularity_hits, pairs)
    clear_hits = np.maximum(popularity_hits, (rng.random(300) < 0.5).astype(float))
    clear = report("model", popularity_ndcg + 0.1, clear_hits, pairs)
    popularity = report("popularity", popularity_ndcg, popularity_hits, pairs)

    noisy = versus(noise, popularity, 10, 5)
    assert len(noisy["warnings"]) == 2
    assert "video NDCG@10" in noisy["warnings"][0] and "product hit rate@5" in noisy["warnings"][1]
    won = versus(clear, popularity, 10, 5)
    assert won["warnings"] == []
    assert won["metrics"]["ndcg_at_10"]["difference"]["low"] > 0
