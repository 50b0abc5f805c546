"""The nightly gate: whether the new model may go live, and why. Pure: figures in, a decision out.

Before any training (nothing_new): gated when no event is later than the live model's
training window, since there is nothing new to learn or to compare on.

After the evaluation (decide), gated for each of these that holds, with one reason each, in
this order:

1. the new factors hold NaN or infinite values;
2. the new model's coverage@10 is below `spec.min_coverage` (it collapsed onto few items);
3. more live catalogue items than `spec.max_unknown_items` are unknown to the new model and
   not explicitly new (the catalogue check's reasons); fewer is a note, not a reason;
4. the new model is worse than the live one beyond the noise: the paired difference on
   `spec.metric` over the holdout's users (new − live, with its bootstrap interval) lies
   wholly below −`spec.tolerance` × the live model's value; the same for the product hit
   rate when the holdout has purchases (else a note says products were not evaluated). A
   difference within the noise neither gates nor, being noise, counts as a loss. Without
   the intervals (a caller with point figures only), the new figure below the live one by
   more than the tolerance. Or there is a live model that could not be evaluated (not in
   the models dir).

Otherwise promoted: on the sanity checks alone when there is no live model yet. The
popularity baseline is reported beside the two models, but no rule compares with it.

The holdout both models are compared on (holdout_start) is the last 24 hours, but only what
the live model has not been trained on, so that the comparison is fair whenever the previous
run happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import numpy as np

from training.data.catalog_check import CatalogCheck
from training.evaluation.intervals import Interval
from training.nightly.spec import NightlySpec

Verdict = Literal["promote", "gated"]


@dataclass(frozen=True)
class Decision:
    decision: Verdict
    reasons: tuple[str, ...]  # why gated; or why promoted, and the notes


def nothing_new(live_end: datetime | None, last_event: datetime) -> Decision | None:
    """Gated when the last event is not after the end of the live model's training window
    (`live_end`, None when unknown); None when there is something new to train on."""
    if live_end is not None and live_end >= last_event:
        return Decision(
            "gated",
            (
                f"no event after the live model's training window (it ends {live_end}): "
                "nothing new to learn or to compare on; the live model stays",
            ),
        )
    return None


def holdout_start(last_event: datetime, live_end: datetime | None) -> datetime:
    """The first moment of the holdout: the last 24 hours, but after `live_end`."""
    cutoff = last_event - timedelta(days=1)
    if live_end is not None and live_end >= cutoff:
        cutoff = live_end + timedelta(milliseconds=1)
    return cutoff


def decide(
    *,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    new: Mapping[str, float],
    live: Mapping[str, float] | None,
    live_version: str | None,
    catalog: CatalogCheck | None,
    spec: NightlySpec,
    difference: Interval | None = None,
    product_difference: Interval | None = None,
) -> Decision:
    """The gate on the evaluated figures: the new model's factors and holdout metrics, the
    live model's metrics on the same holdout (None: not evaluated) and its version (None: no
    live model), the catalogue check (None: no catalogue in Redis), and the thresholds in
    `spec`. The sanity checks, then the comparison."""
    reasons = []
    if not (np.isfinite(user_factors).all() and np.isfinite(item_factors).all()):
        reasons.append("the new factors hold NaN or infinite values")
    coverage = new.get("coverage_at_10", 0.0)
    if coverage < spec.min_coverage:
        reasons.append(f"coverage {coverage:.3f} below the floor {spec.min_coverage}")
    notes = []
    if catalog is not None:
        unknown = len(catalog.unknown_videos) + len(catalog.unknown_products)
        if unknown > spec.max_unknown_items:
            reasons.extend(catalog.reasons())
        elif unknown:
            named = ", ".join(catalog.unknown_videos + catalog.unknown_products)
            notes.append(
                f"{unknown} live items unknown to the new model, within --max-unknown-items "
                f"{spec.max_unknown_items}: {named}"
            )
    compared = ""
    if live is not None and difference is not None:
        floor = -spec.tolerance * live[spec.metric]
        text = _difference(spec.metric, difference)
        if difference.high < floor:
            reasons.append(
                f"{text}: the new model is worse than the live one beyond the noise (the "
                f"interval is wholly below -{spec.tolerance:.0%} of the live "
                f"{live[spec.metric]:.4f})"
            )
        compared = f"{text}: not worse than the live model beyond the noise"
        live_rate = live.get("product_hit_rate")
        if product_difference is not None and live_rate is not None:
            text = _difference("product hit rate", product_difference)
            if product_difference.high < -spec.tolerance * live_rate:
                reasons.append(f"{text}: the new model is worse than the live one beyond the noise")
            notes.append(f"{text}: not worse beyond the noise")
        else:
            notes.append(
                "products not evaluated: no evaluated user bought on the holdout (or the live "
                "model knows no product); the gate decided on videos alone"
            )
    elif live is not None:
        floor = live[spec.metric] * (1 - spec.tolerance)
        if new[spec.metric] < floor:
            reasons.append(
                f"{spec.metric} {new[spec.metric]:.4f} is below the live model's "
                f"{live[spec.metric]:.4f} by more than {spec.tolerance:.0%}"
            )
    elif live_version is not None:
        reasons.append(
            f"the live model {live_version} is not in {spec.models_dir}, so it cannot be "
            "compared: copy it there, or roll back to a version that is"
        )
    if reasons:
        return Decision("gated", tuple(reasons))
    if live_version is None:
        return Decision(
            "promote", ("no live model yet: promoted on the sanity checks alone", *notes)
        )
    return Decision(
        "promote",
        (
            compared
            or f"{spec.metric} not below the live model's by more than {spec.tolerance:.0%}",
            *notes,
        ),
    )


def _difference(metric: str, difference: Interval) -> str:
    return (
        f"{metric} difference new - live {difference.value:+.4f}, 95% interval "
        f"[{difference.low:+.4f}, {difference.high:+.4f}]"
    )
