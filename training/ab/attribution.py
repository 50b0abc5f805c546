"""Attribution of outcome events to the exposures of one experiment: which users are in the
report, in which variant, and which exposure (if any) each of their outcome events is due to.

Inputs: the service's exposures (training.data.drain.EXPOSURE_SCHEMA, one row per feed served to a
user in an experiment) and the outcome events (training.data.events.EVENT_SCHEMA, as
`load_events` returns them).

Users. A user is in the report when an exposure names the experiment ("experiment:variant"
in its `experiments` column); their variant is the one their exposures name. A user whose
exposures name two variants (the definition changed mid-way) is left out, counted in
`users_excluded` and noted. Exposures without a user or a timestamp are left out and counted.

Attribution. Only outcome events of the report's users are considered: a `view` or `click` of
a video, a `click` or `purchase` of a product; every other event is `ignored`. An outcome
event is

1. attributed by request id when its request_id is that of an exposure of this experiment to
   the same user, whatever its ts. It counts only if its item was shown in that exposure
   (the video among its videos, the product as one of its cards); if not, it is `not_shown`.
2. otherwise attributed by window when the user's latest exposure of this experiment at or
   before the event's ts is at most `window` earlier, and the item was shown (same rule) in
   one of the user's exposures at or before the event. If not, it is not attributed:
   `before_first_exposure` (no exposure yet), else `outside_window`, else `not_shown`.

Everything is columnar (pyarrow and numpy, no loop over events); window attribution is an
"as of" join, one sort each. What the attributed events count for is training.ab.counting's.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.ab.columnar import _distinct, _is_in, _latest_at_or_before, _ms, _positions

DEFAULT_WINDOW = timedelta(hours=24)


def names_experiment(exposures: pa.Table, experiment: str) -> pa.Array:
    """Which exposures name the experiment (`experiment:<variant>` as one of their
    comma-joined pairs), a boolean mask with no nulls."""
    pattern = rf"(^|,)\s*{re.escape(experiment)}:"
    named = pc.match_substring_regex(exposures.column("experiments"), pattern)
    return pc.fill_null(named, False)


@dataclass
class AttributionStats:
    """How the outcome events were attributed; the counts partition `events_read`."""

    events_read: int = 0
    attributed_by_request_id: int = 0
    attributed_by_window: int = 0
    not_attributed: int = 0  # = before_first_exposure + outside_window + not_shown
    before_first_exposure: int = 0
    outside_window: int = 0
    not_shown: int = 0
    ignored: int = 0  # impressions, other actions, users outside the report
    users_excluded: int = 0  # exposed in more than one variant
    exposures_unusable: int = 0  # no user or no timestamp
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Exposures:
    """The experiment's exposures of included users, with the users' codes and variants."""

    users: pa.Array  # included user ids; a user's code is the position here
    user_variant: np.ndarray  # variant code per user
    variants: list[str]
    user: np.ndarray  # user code per exposure
    ts: np.ndarray  # ms per exposure
    request_id: pa.Array
    videos: pa.Array
    products: pa.Array


def _experiment_exposures(table: pa.Table, experiment: str, stats: AttributionStats) -> _Exposures:
    usable = pc.and_(table.column("user_id").is_valid(), table.column("ts").is_valid())
    stats.exposures_unusable = table.num_rows - pc.sum(usable).as_py() if table.num_rows else 0
    table = table.filter(usable)
    pairs = pc.split_pattern(table.column("experiments").combine_chunks(), ",")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(pairs))
    prefix = f"{experiment}:"
    hit = pc.starts_with(flat, prefix)
    rows = pc.list_parent_indices(pairs).filter(hit).to_numpy()  # ascending
    first = np.ones(len(rows), dtype=bool)  # a row naming the experiment twice: the first
    first[1:] = rows[1:] != rows[:-1]
    rows = rows[first]
    variant_of_row = pc.utf8_slice_codeunits(flat.filter(hit), len(prefix)).filter(first)
    table = table.take(rows)
    users = pc.dictionary_encode(table.column("user_id").combine_chunks())
    variants = pc.dictionary_encode(variant_of_row)
    user = users.indices.to_numpy().astype(np.int64)
    variant = variants.indices.to_numpy().astype(np.int64)
    n_variants = max(len(variants.dictionary), 1)
    seen = _distinct(user * n_variants + variant)
    excluded = np.bincount(seen // n_variants, minlength=len(users.dictionary)) > 1
    user_variant = np.zeros(len(users.dictionary), dtype=np.int64)
    user_variant[seen // n_variants] = seen % n_variants
    if excluded.any():
        stats.users_excluded = int(excluded.sum())
        stats.notes.append(
            f"{stats.users_excluded:,} user(s) exposed in more than one variant of {experiment} "
            "(did the definition change mid-way?) are left out"
        )
    if stats.exposures_unusable:
        stats.notes.append(f"{stats.exposures_unusable:,} exposure(s) without a user or ts")
    keep = ~excluded[user]
    code = np.cumsum(~excluded) - 1  # old user code -> code among the included users
    table = table.filter(pa.array(keep))
    return _Exposures(
        users=users.dictionary.filter(pa.array(~excluded)),
        user_variant=user_variant[~excluded],
        variants=variants.dictionary.to_pylist(),
        user=code[user[keep]],
        ts=_ms(table.column("ts")),
        request_id=table.column("request_id").combine_chunks(),
        videos=table.column("videos").combine_chunks(),
        products=table.column("products").combine_chunks(),
    )


def _outcome_events(events: pa.Table, users: pa.Array, stats: AttributionStats) -> pa.Table:
    """Views and clicks of videos, clicks and purchases of products, by the report's users."""
    item_type, action = events.column("item_type"), events.column("action")
    video = pc.and_(pc.equal(item_type, "video"), pc.is_in(action, pa.array(["view", "click"])))
    product = pc.and_(
        pc.equal(item_type, "product"), pc.is_in(action, pa.array(["click", "purchase"]))
    )
    wanted = pc.and_(
        pc.and_(pc.or_(video, product), events.column("ts").is_valid()),
        pc.is_in(events.column("user_id"), users),
    )
    outcome = events.filter(pc.fill_null(wanted, False))
    stats.ignored = events.num_rows - outcome.num_rows
    return outcome


def _attribute(
    shown: _Exposures,
    shown_at: np.ndarray,
    shown_key: np.ndarray,
    span: int,
    outcome: pa.Table,
    key: np.ndarray,
    window: timedelta,
    stats: AttributionStats,
) -> np.ndarray:
    """Each outcome event's exposure, or -1 when not attributed (rules in the module
    docstring); the counts go to `stats`. shown_at and shown_key: the exposure and item key of
    every item shown; key: each event's item key."""
    user = _positions(outcome.column("user_id"), shown.users)
    ts = _ms(outcome.column("ts"))
    source = np.full(len(user), -1)
    matched = _positions(outcome.column("request_id"), shown.request_id)
    by_request = matched >= 0
    by_request[by_request] = shown.user[matched[by_request]] == user[by_request]
    exposure = matched[by_request]
    was_shown = _is_in(exposure * span + key[by_request], _distinct(shown_at * span + shown_key))
    source[np.flatnonzero(by_request)[was_shown]] = exposure[was_shown]
    stats.attributed_by_request_id = int(was_shown.sum())
    stats.not_shown = int((~was_shown).sum())

    rest = np.flatnonzero(~by_request)
    latest = _latest_at_or_before(shown.user, shown.ts, user[rest], ts[rest])
    before_first = latest < 0
    outside = ~before_first & (ts[rest] - shown.ts[latest] > window / timedelta(milliseconds=1))
    showed = _latest_at_or_before(
        shown.user[shown_at] * span + shown_key,
        shown.ts[shown_at],
        user[rest] * span + key[rest],
        ts[rest],
    )
    in_window = ~before_first & ~outside
    attributed = in_window & (showed >= 0)
    source[rest[attributed]] = shown_at[showed[attributed]]
    stats.attributed_by_window = int(attributed.sum())
    stats.before_first_exposure = int(before_first.sum())
    stats.outside_window = int(outside.sum())
    stats.not_shown += int((in_window & (showed < 0)).sum())
    stats.not_attributed = stats.before_first_exposure + stats.outside_window + stats.not_shown
    return source
