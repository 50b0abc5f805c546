"""Confidence intervals over users by the percentile bootstrap, and paired comparisons.

Users are resampled with replacement, `resamples` times; the interval is the central `level`
share of the resampled statistic. A metric that is a mean over users (NDCG) resamples the
per-user values; the product hit rate, a ratio of sums over users (pairs found / pairs),
resamples the users' numerators and denominators together. A paired comparison of two
scorers on the same users resamples the same users for both, so what the users have in common
cancels: the interval is of the difference itself, much narrower than two separate intervals
compared by eye.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95
CHUNK = 50  # resamples drawn at once: memory CHUNK × users


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high}


def _resampled(
    numerators: np.ndarray, denominators: np.ndarray | None, resamples: int, seed: int
) -> np.ndarray:
    """The statistic (mean, or ratio of sums) over `resamples` bootstrap samples of users."""
    n = len(numerators)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for start in range(0, resamples, CHUNK):
        size = min(CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n))
        top = numerators[picks].sum(axis=1)
        bottom = denominators[picks].sum(axis=1) if denominators is not None else n
        out[start : start + size] = top / np.maximum(bottom, 1e-300)
    return out


def _interval(value: float, samples: np.ndarray, level: float) -> Interval:
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(value), float(low), float(high))


def mean_interval(
    values: np.ndarray, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> Interval:
    """The mean over users and its bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        raise ValueError("no user to compute an interval over")
    return _interval(values.mean(), _resampled(values, None, resamples, seed), level)


def ratio_interval(
    numerators: np.ndarray,
    denominators: np.ndarray,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Σ numerators / Σ denominators over users, and its bootstrap interval."""
    top, bottom = np.asarray(numerators, float), np.asarray(denominators, float)
    if len(top) == 0 or bottom.sum() == 0:
        raise ValueError("no user to compute an interval over")
    return _interval(top.sum() / bottom.sum(), _resampled(top, bottom, resamples, seed), level)


def paired_mean_difference(
    a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> Interval:
    """mean(a) − mean(b) over the same users, and its paired bootstrap interval."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise ValueError(f"a paired comparison needs the same users: {a.shape} and {b.shape}")
    return mean_interval(a - b, resamples, level, seed)


def paired_ratio_difference(
    a_hits: np.ndarray,
    b_hits: np.ndarray,
    pairs: np.ndarray,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """hit rate(a) − hit rate(b) over the same users (the same pairs), and its interval."""
    return ratio_interval(
        np.asarray(a_hits, float) - np.asarray(b_hits, float), pairs, resamples, level, seed
    )


def versus(
    model: Any, baseline: Any, k: int, product_k: int, products: bool = True
) -> dict[str, Any]:
    """The model against a baseline scored on the same evaluation set (ScorerReports): each
    one's interval and the paired difference, for the video NDCG and the product hit rate
    where the data has them; and a warning for each the model does not win beyond its
    interval."""
    out: dict[str, Any] = {"baseline": baseline.name, "level": LEVEL, "metrics": {}}
    warnings = []
    ours, theirs = model.per_user.get(f"ndcg_at_{k}"), baseline.per_user.get(f"ndcg_at_{k}")
    if ours is not None and theirs is not None and len(ours):
        name = f"video NDCG@{k}"
        out["metrics"][f"ndcg_at_{k}"] = {
            "model": mean_interval(ours).as_dict(),
            baseline.name: mean_interval(theirs).as_dict(),
            "difference": (diff := paired_mean_difference(ours, theirs)).as_dict(),
        }
        if diff.low <= 0:
            warnings.append(_warning(name, baseline.name, diff))
    if products and model.product_hits is not None and baseline.product_hits is not None:
        name = f"product hit rate@{product_k}"
        pairs = model.product_pairs_per_user
        out["metrics"]["product_hit_rate"] = {
            "model": ratio_interval(model.product_hits, pairs).as_dict(),
            baseline.name: ratio_interval(baseline.product_hits, pairs).as_dict(),
            "difference": (
                diff := paired_ratio_difference(model.product_hits, baseline.product_hits, pairs)
            ).as_dict(),
        }
        if diff.low <= 0:
            warnings.append(_warning(name, baseline.name, diff))
    out["warnings"] = warnings
    return out


def _warning(metric: str, baseline: str, diff: Interval) -> str:
    return (
        f"the model does not beat {baseline} on {metric} beyond its {LEVEL:.0%} interval: "
        f"difference {diff.value:+.4f} [{diff.low:+.4f}, {diff.high:+.4f}]"
    )
