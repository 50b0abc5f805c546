"""What each user of the experiment saw and did: the per-user counts (VariantData, one per
variant) that the statistics of training.ab.stats compare. Which user is in which variant, and
which exposure an outcome event is due to, is training.ab.attribution's.

Counting, per user (VariantData; "the event's exposure" is the request's exposure, or by
window the latest of the user's exposures at or before the event that showed the item):

- exposures; videos_shown: videos in them; attach_shown: product cards (non-null products);
- video_clicks: distinct (exposure, video) pairs with an attributed view or click, so that a
  view and a click of one video count once and video_ctr is at most 1;
- attach_clicks: distinct (exposure, product) pairs with an attributed click;
- attach_purchases: attributed purchases, each one; amount: the sum of their amounts;
- watch_seconds: each attributed view's watch_ratio times its video's duration in seconds
  (from `durations`; a video without one counts DEFAULT_DURATION_S, and a note says so).
A null watch_ratio or amount counts 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ab.attribution import (
    DEFAULT_WINDOW,
    AttributionStats,
    _attribute,
    _experiment_exposures,
    _outcome_events,
)
from training.ab.columnar import _distinct, _flat_items, _positions
from training.ab.stats import VariantData

DEFAULT_DURATION_S = 60.0
VIDEO, PRODUCT = 0, 1  # item kinds


def user_aggregates(
    exposures: pa.Table,
    events: pa.Table,
    experiment: str,
    window: timedelta = DEFAULT_WINDOW,
    durations: Mapping[str, float] | None = None,
) -> tuple[dict[str, VariantData], AttributionStats]:
    """One VariantData per variant seen in the experiment's exposures (attribution rules in
    training.ab.attribution's docstring), and how the events were attributed."""
    stats = AttributionStats(events_read=events.num_rows)
    shown = _experiment_exposures(exposures, experiment, stats)
    n_users = len(shown.users)
    exposures_per_user = np.bincount(shown.user, minlength=n_users)
    lengths = pc.fill_null(pc.list_value_length(shown.videos), 0).to_numpy()
    videos_shown = np.bincount(shown.user, weights=lengths, minlength=n_users)
    card_exposure, card_item = _flat_items(shown.products)
    attach_shown = np.bincount(shown.user[card_exposure], minlength=n_users)
    video_exposure, video_item = _flat_items(shown.videos)

    # items coded against one dictionary; an item key (kind, item) is below `span`
    items = pc.unique(pa.concat_arrays([video_item, card_item]))
    span = 2 * (len(items) + 1)
    shown_at = np.concatenate([video_exposure, card_exposure])
    shown_kind = np.repeat([VIDEO, PRODUCT], [len(video_exposure), len(card_exposure)])
    shown_key = shown_kind * (len(items) + 1) + 1
    shown_key += _positions(pa.concat_arrays([video_item, card_item]), items)

    outcome = _outcome_events(events, shown.users, stats)
    video = pc.equal(outcome.column("item_type"), "video").to_numpy(False)
    item = _positions(outcome.column("item_id"), items)
    key = np.where(video, VIDEO, PRODUCT) * (len(items) + 1) + item + 1
    source = _attribute(shown, shown_at, shown_key, span, outcome, key, window, stats)
    counted = _count_outcomes(outcome, source, shown.user, item, items, n_users, durations, stats)
    data = {}
    for code, name in enumerate(shown.variants):
        mine = shown.user_variant == code
        if mine.any():
            data[name] = VariantData(
                name,
                exposures=exposures_per_user[mine].astype(np.float64),
                videos_shown=videos_shown[mine],
                attach_shown=attach_shown[mine].astype(np.float64),
                **{column: values[mine] for column, values in counted.items()},
            )
    return data, stats


def no_users(name: str) -> VariantData:
    """A variant that served nobody."""
    empty = np.zeros(0)
    return VariantData(name, *([empty] * 8))


def variant_users(exposures: pa.Table, experiment: str) -> dict[str, list[str]]:
    """Each variant's user ids, in the order of user_aggregates' arrays for it."""
    shown = _experiment_exposures(exposures, experiment, AttributionStats())
    ids = np.asarray(shown.users.to_pylist(), dtype=object)
    return {
        name: ids[shown.user_variant == code].tolist()
        for code, name in enumerate(shown.variants)
        if (shown.user_variant == code).any()
    }


def _count_outcomes(
    outcome: pa.Table,
    source: np.ndarray,
    exposure_user: np.ndarray,
    item: np.ndarray,
    items: pa.Array,
    n_users: int,
    durations: Mapping[str, float] | None,
    stats: AttributionStats,
) -> dict[str, np.ndarray]:
    """Per user: video_clicks, attach_clicks, attach_purchases, amount and watch_seconds."""
    attributed = source >= 0
    video = attributed & pc.equal(outcome.column("item_type"), "video").to_numpy(False)
    product = attributed & ~video
    action = outcome.column("action")
    view, click = (pc.equal(action, name).to_numpy(False) for name in ("view", "click"))
    width = len(items) + 1

    def distinct_pairs(mask: np.ndarray) -> np.ndarray:
        pairs = _distinct(source[mask] * width + item[mask])
        return np.bincount(exposure_user[pairs // width], minlength=n_users).astype(np.float64)

    def per_user(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        user = exposure_user[source[mask]]
        chosen = None if weights is None else weights[mask]
        return np.bincount(user, weights=chosen, minlength=n_users).astype(np.float64)

    purchase = product & pc.equal(action, "purchase").to_numpy(False)
    amount = pc.fill_null(outcome.column("amount"), 0.0).to_numpy()
    watched = video & view
    ratio = pc.fill_null(outcome.column("watch_ratio"), 0.0).to_numpy().astype(np.float64)
    known = durations or {}
    seconds = np.array([known.get(i, math.nan) for i in items.to_pylist()] + [math.nan])
    unknown = np.isnan(seconds[item[watched]])
    if watched.any() and durations is None:
        stats.notes.append(
            f"no video durations given: watch time counts every video as {DEFAULT_DURATION_S:g} s"
        )
    elif unknown.any():
        stats.notes.append(
            f"{int(unknown.sum()):,} attributed view(s) of videos without a duration counted "
            f"as {DEFAULT_DURATION_S:g} s"
        )
    duration = np.where(np.isnan(seconds), DEFAULT_DURATION_S, seconds)[item]
    return {
        "video_clicks": distinct_pairs(video),
        "attach_clicks": distinct_pairs(product & click),
        "attach_purchases": per_user(purchase),
        "amount": per_user(purchase, amount),
        "watch_seconds": per_user(watched, ratio * duration),
    }
