"""The nightly gate as a table: one evaluated run's figures in, the decision and reasons out.

`decide` gates (the live model stays) for every rule that fails, with one reason each, in
this order: the new factors hold NaN or infinity; coverage@10 is below the floor; more live
catalogue items than allowed are unknown to the new model and not new; the gate metric is
below the live model's by more than the tolerance (relative) -- or, given the paired
difference over the holdout's users with its interval (as the nightly run gives it), worse
beyond the noise: the interval wholly below minus the tolerance, on videos and on products --
or the live model could not be evaluated. Otherwise it promotes: "on the sanity checks
alone" when there is no live model yet, with a note naming the unknown live items it let through.

Before any training, `nothing_new` gates a run with no event after the live model's training
window; `holdout_start` is where the holdout both models are compared on begins: the last
24 hours, but after the live model's training window. (Whole runs: test_nightly.py.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.data.catalog_check import CatalogCheck
from training.evaluation.intervals import Interval, paired_mean_difference
from training.nightly.decision import Decision, decide, holdout_start, nothing_new
from training.nightly.spec import NightlySpec

# The defaults: gate on ndcg_at_10, 2% tolerance, coverage floor 0.05, no unknown live item.
SPEC = NightlySpec(events_dir=Path("events"), models_dir=Path("models"))
FINITE = np.ones((4, 3), dtype=np.float32)
LIVE = {"ndcg_at_10": 0.5, "map_at_10": 0.25, "coverage_at_10": 0.4}
NEW = dict(LIVE)  # as good as the live model
LIVE_VERSION = "20261107T020000Z-live"


def with_nan(value: float) -> np.ndarray:
    factors = FINITE.copy()
    factors[2, 1] = value
    return factors


def catalogue(
    videos: tuple[str, ...] = (), products: tuple[str, ...] = (), new: tuple[str, ...] = ()
) -> CatalogCheck:
    """A catalogue check: the live items unknown to the model and not new, and the new ones."""
    return CatalogCheck(40, 6, list(new), list(videos), list(products))


def unknown(count: int, kind: str, ids: str) -> str:
    return (
        f"{count} live {kind} unknown to the new model and not new ({ids}): events missing "
        "from the window, or a catalogue to fix (retire them, or set published_at on new ones)"
    )


NOT_FINITE = "the new factors hold NaN or infinite values"
NOT_BELOW = "ndcg_at_10 not below the live model's by more than 2%"
FIRST_MODEL = "no live model yet: promoted on the sanity checks alone"
NOT_IN_MODELS_DIR = (
    f"the live model {LIVE_VERSION} is not in models, so it cannot be compared: copy it "
    "there, or roll back to a version that is"
)


def spec(**changes: Any) -> NightlySpec:
    return NightlySpec(events_dir=Path("events"), models_dir=Path("models"), **changes)


def decide_with(**changes: Any) -> Decision:
    """The gate on a run as good as the live model, but for `changes`."""
    figures: dict[str, Any] = {
        "user_factors": FINITE,
        "item_factors": FINITE,
        "new": NEW,
        "live": LIVE,
        "live_version": LIVE_VERSION,
        "catalog": catalogue(),
        "spec": SPEC,
        **changes,
    }
    return decide(**figures)


# (what differs from a run as good as the live model, decision, reasons)
GATE = [
    # -- the factors are finite
    pytest.param(
        {"user_factors": with_nan(np.nan)}, "gated", [NOT_FINITE],
        id="gated: a NaN in the user factors",
    ),
    pytest.param(
        {"item_factors": with_nan(-np.inf)}, "gated", [NOT_FINITE],
        id="gated: an infinity in the item factors",
    ),
    # -- coverage@10 at or above the floor
    pytest.param(
        {"new": {**NEW, "coverage_at_10": 0.04}}, "gated",
        ["coverage 0.040 below the floor 0.05"],
        id="gated: coverage below the floor",
    ),
    pytest.param(
        {"new": {"ndcg_at_10": 0.5}}, "gated", ["coverage 0.000 below the floor 0.05"],
        id="gated: no coverage figure counts as 0",
    ),
    pytest.param(
        {"new": {**NEW, "coverage_at_10": 0.25}, "spec": spec(min_coverage=0.25)},
        "promote", [NOT_BELOW],
        id="promoted: coverage exactly at the floor",
    ),
    # -- every live catalogue item known to the model, or new
    pytest.param(
        {"catalog": catalogue(videos=("v-old",))}, "gated", [unknown(1, "videos", "v-old")],
        id="gated: a live old video unknown to the model",
    ),
    pytest.param(
        {"catalog": catalogue(videos=("v-old",), products=("p-old",))}, "gated",
        [unknown(1, "videos", "v-old"), unknown(1, "products", "p-old")],
        id="gated: a reason per item type",
    ),
    pytest.param(
        {"catalog": catalogue(videos=("v-a", "v-b")), "spec": spec(max_unknown_items=1)},
        "gated", [unknown(2, "videos", "v-a, v-b")],
        id="gated: more unknown live items than --max-unknown-items",
    ),
    pytest.param(
        {"catalog": catalogue(videos=("v-a",), products=("p-a",)),
         "spec": spec(max_unknown_items=2)},
        "promote",
        [NOT_BELOW, "2 live items unknown to the new model, within --max-unknown-items 2: "
         "v-a, p-a"],
        id="promoted with a note: unknown live items within --max-unknown-items",
    ),
    pytest.param(
        {"catalog": catalogue(new=("v-new",))}, "promote", [NOT_BELOW],
        id="promoted: an unknown live item that is new",
    ),
    pytest.param(
        {"catalog": None}, "promote", [NOT_BELOW],
        id="promoted: no catalogue in Redis, nothing to check",
    ),
    # -- the gate metric not below the live model's by more than the tolerance
    pytest.param(
        {"new": {**NEW, "ndcg_at_10": 0.4899}}, "gated",
        ["ndcg_at_10 0.4899 is below the live model's 0.5000 by more than 2%"],
        id="gated: below the live model by more than the tolerance",
    ),
    pytest.param(
        {"new": {**NEW, "ndcg_at_10": 0.491}}, "promote", [NOT_BELOW],
        id="promoted: below the live model, within the tolerance",
    ),
    pytest.param(
        {"new": {**NEW, "ndcg_at_10": 0.375}, "spec": spec(tolerance=0.25)},
        "promote", ["ndcg_at_10 not below the live model's by more than 25%"],
        id="promoted: exactly at the tolerance",
    ),
    pytest.param(
        {"new": {**NEW, "ndcg_at_10": 0.4999}, "spec": spec(tolerance=0.0)}, "gated",
        ["ndcg_at_10 0.4999 is below the live model's 0.5000 by more than 0%"],
        id="gated: tolerance 0, any drop",
    ),
    pytest.param(
        {"new": {**NEW, "ndcg_at_10": 0.9}}, "promote", [NOT_BELOW],
        id="promoted: better than the live model",
    ),
    pytest.param(
        {"new": {**NEW, "ndcg_at_10": 0.1}, "spec": spec(metric="map_at_10")}, "promote",
        ["map_at_10 not below the live model's by more than 2%"],
        id="promoted: only the chosen metric is compared",
    ),
    pytest.param(
        {"new": {**NEW, "map_at_10": 0.2}, "spec": spec(metric="map_at_10")}, "gated",
        ["map_at_10 0.2000 is below the live model's 0.2500 by more than 2%"],
        id="gated: the chosen metric below the live model",
    ),
    # -- a live model that cannot be evaluated
    pytest.param(
        {"live": None}, "gated", [NOT_IN_MODELS_DIR],
        id="gated: the live model is not in the models dir",
    ),
    # -- no live model yet
    pytest.param(
        {"live": None, "live_version": None}, "promote", [FIRST_MODEL],
        id="promoted: no live model yet, on the sanity checks alone",
    ),
    pytest.param(
        {"live": None, "live_version": None, "new": {**NEW, "coverage_at_10": 0.0}}, "gated",
        ["coverage 0.000 below the floor 0.05"],
        id="gated: no live model yet, and a sanity check fails",
    ),
    # -- every failing rule, in order
    pytest.param(
        {
            "user_factors": with_nan(np.inf),
            "new": {**NEW, "coverage_at_10": 0.01, "ndcg_at_10": 0.1},
            "catalog": catalogue(products=("p-old",)),
        },
        "gated",
        [
            NOT_FINITE,
            "coverage 0.010 below the floor 0.05",
            unknown(1, "products", "p-old"),
            "ndcg_at_10 0.1000 is below the live model's 0.5000 by more than 2%",
        ],
        id="gated: every failing rule gives its reason, in order",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "decision", "reasons"), GATE)
def test_the_gate(changes: dict[str, Any], decision: str, reasons: list[str]) -> None:
    assert decide_with(**changes) == Decision(decision, tuple(reasons))


LAST_EVENT = datetime(2026, 11, 8, 23, 0, tzinfo=UTC)
NOTHING_NEW = (
    "no event after the live model's training window (it ends {}): nothing new to learn or "
    "to compare on; the live model stays"
)


@pytest.mark.parametrize(
    ("live_end", "expected"),
    [
        pytest.param(None, None, id="trains: no live model (or its window unknown)"),
        pytest.param(LAST_EVENT - timedelta(seconds=1), None, id="trains: a newer event"),
        pytest.param(LAST_EVENT, NOTHING_NEW, id="gated: the last event is the live model's"),
        pytest.param(LAST_EVENT + timedelta(days=1), NOTHING_NEW, id="gated: live model newer"),
    ],
)
def test_a_run_with_nothing_new_is_gated_before_training(
    live_end: datetime | None, expected: str | None
) -> None:
    gate = nothing_new(live_end, LAST_EVENT)
    if expected is None:
        assert gate is None
    else:
        assert gate == Decision("gated", (expected.format(live_end),))


@pytest.mark.parametrize(
    ("live_end", "start"),
    [
        pytest.param(None, LAST_EVENT - timedelta(days=1), id="no live model: the last 24 h"),
        pytest.param(
            LAST_EVENT - timedelta(days=3),
            LAST_EVENT - timedelta(days=1),
            id="live model older than a day: the last 24 h",
        ),
        pytest.param(
            LAST_EVENT - timedelta(days=1),
            LAST_EVENT - timedelta(days=1, milliseconds=-1),
            id="live window ends at the 24 h mark: after it",
        ),
        pytest.param(
            LAST_EVENT - timedelta(hours=2),
            LAST_EVENT - timedelta(hours=2, milliseconds=-1),
            id="live model trained on part of the day: only what it has not seen",
        ),
    ],
)
def test_the_holdout_is_the_last_day_the_live_model_has_not_seen(
    live_end: datetime | None, start: datetime
) -> None:
    assert holdout_start(LAST_EVENT, live_end) == start


# The paired rule: new − live over the holdout's users, with its 95% interval (live NDCG 0.5,
# so the 2% tolerance puts the floor at −0.01). A difference within the noise neither gates
# nor counts as a loss; one wholly below the floor gates.
NOISE = Interval(-0.02, -0.06, +0.02)  # a point drop of 4%, within the noise
WORSE = Interval(-0.05, -0.08, -0.02)  # worse beyond the noise and the tolerance
SLIGHT = Interval(-0.01, -0.015, -0.005)  # worse, but the interval reaches inside the tolerance
BETTER = Interval(+0.04, +0.01, +0.07)
NO_PRODUCTS = (
    "products not evaluated: no evaluated user bought on the holdout (or the live model knows "
    "no product); the gate decided on videos alone"
)


def paired(difference: Interval) -> str:
    return (
        f"ndcg_at_10 difference new - live {difference.value:+.4f}, 95% interval "
        f"[{difference.low:+.4f}, {difference.high:+.4f}]"
    )


PAIRED = [
    pytest.param(
        {"difference": NOISE, "new": {**NEW, "ndcg_at_10": 0.48}}, "promote",
        [f"{paired(NOISE)}: not worse than the live model beyond the noise", NO_PRODUCTS],
        id="promoted: a 4% point drop within the noise (the point rule would gate)",
    ),
    pytest.param(
        {"difference": WORSE}, "gated",
        [f"{paired(WORSE)}: the new model is worse than the live one beyond the noise (the "
         "interval is wholly below -2% of the live 0.5000)"],
        id="gated: worse beyond the noise, whatever the point figures say",
    ),
    pytest.param(
        {"difference": SLIGHT}, "promote",
        [f"{paired(SLIGHT)}: not worse than the live model beyond the noise", NO_PRODUCTS],
        id="promoted: worse, but not wholly beyond the tolerance",
    ),
    pytest.param(
        {"difference": SLIGHT, "spec": spec(tolerance=0.0)}, "gated",
        [f"{paired(SLIGHT)}: the new model is worse than the live one beyond the noise (the "
         "interval is wholly below -0% of the live 0.5000)"],
        id="gated: tolerance 0, worse beyond the noise",
    ),
    pytest.param(
        {"difference": BETTER, "live": {**LIVE, "product_hit_rate": 0.5},
         "product_difference": Interval(-0.2, -0.3, -0.1)},
        "gated",
        ["product hit rate difference new - live -0.2000, 95% interval [-0.3000, -0.1000]: "
         "the new model is worse than the live one beyond the noise"],
        id="gated: better on videos, worse on products beyond the noise",
    ),
    pytest.param(
        {"difference": BETTER, "live": {**LIVE, "product_hit_rate": 0.5},
         "product_difference": Interval(0.0, -0.05, 0.05)},
        "promote",
        [f"{paired(BETTER)}: not worse than the live model beyond the noise",
         "product hit rate difference new - live +0.0000, 95% interval [-0.0500, +0.0500]: "
         "not worse beyond the noise"],
        id="promoted: products evaluated and not worse",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "decision", "reasons"), PAIRED)
def test_the_gate_on_the_paired_difference(
    changes: dict[str, Any], decision: str, reasons: list[str]
) -> None:
    assert decide_with(**changes) == Decision(decision, tuple(reasons))


def test_a_noise_level_difference_neither_gates_nor_promotes_a_worse_model() -> None:
    """Through the real intervals: a new model equal to the live one up to per-user noise is
    promoted; one worse by 10% on every user, with the same noise, is gated."""
    rng = np.random.default_rng(7)
    live_users = rng.random(2000)
    noise = rng.normal(0, 0.1, 2000)
    live = {**LIVE, "ndcg_at_10": float(live_users.mean())}
    same = paired_mean_difference(live_users + noise, live_users)
    worse = paired_mean_difference(live_users * 0.9 + noise, live_users)
    assert decide_with(live=live, catalog=None, difference=same).decision == "promote"
    assert decide_with(live=live, catalog=None, difference=worse).decision == "gated"
