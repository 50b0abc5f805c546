"""CUPED (training.ab.cuped): with users whose pre-experiment behaviour carries over, the
interval narrows and the estimate stays where it was; without a real effect it is
significant about as often as α says."""

from __future__ import annotations

import numpy as np

from training.ab.cuped import cuped_compare, interval_reductions
from training.ab.stats import VariantData, compare

USERS = 2000


def variant(name: str, shown: np.ndarray, clicks: np.ndarray) -> VariantData:
    zeros = np.zeros(len(shown))
    return VariantData(name, np.ones(len(shown)), shown, clicks, zeros, zeros, zeros, zeros, zeros)


def world(seed: int, lift: float = 0.0) -> tuple[VariantData, VariantData, dict, tuple]:
    """Users with lasting tastes (a view propensity each), seen for 20 videos before the
    experiment and 20 in it; the treatment's propensity times 1 + lift."""
    rng = np.random.default_rng(seed)
    taste = rng.beta(2, 5, USERS)
    shown = np.full(USERS, 20.0)
    before = rng.binomial(20, taste).astype(float)
    treated = rng.permutation(USERS) < USERS // 2
    during = rng.binomial(20, np.clip(taste * np.where(treated, 1 + lift, 1), 0, 1)).astype(float)
    ids = np.array([f"u{i}" for i in range(USERS)])
    control = variant("a", shown[~treated], during[~treated])
    treatment = variant("b", shown[treated], during[treated])
    pre = (variant("pre", shown, before), ids.tolist())
    return control, treatment, {"a": ids[~treated].tolist(), "b": ids[treated].tolist()}, pre


def test_the_interval_narrows_and_the_estimate_stays() -> None:
    control, treatment, ids, pre = world(seed=1, lift=0.05)
    plain = [r.as_dict() for r in compare(control, treatment)]
    adjusted = cuped_compare(control, treatment, ids, pre)
    reduction = interval_reductions(plain, adjusted)["video_ctr"]
    assert reduction is not None and reduction > 0.3  # taste explains much of the spread
    before, after = plain[0]["relative_difference"], adjusted[0]["relative_difference"]
    assert abs(after - 0.05) < abs(before - 0.05) + 0.02  # still about the planted +5%
    assert adjusted[0]["users_with_pre_period"] == USERS


def test_without_an_effect_it_is_significant_about_as_often_as_alpha() -> None:
    hits = sum(
        cuped_compare(*world(seed))[0]["p_value"] < 0.05  # type: ignore[misc]
        for seed in range(200)
    )
    assert 0.02 <= hits / 200 <= 0.09, hits
