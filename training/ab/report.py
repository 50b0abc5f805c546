"""The A/B report of one experiment: who saw which variant, what they did afterwards, and
whether the variants differ (the statistics are training.ab.stats').

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

Everything is columnar (pyarrow and numpy, no loop over events); window attribution is an
"as of" join, one sort each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsvc.contract.experiments import Experiment, ExperimentError, parse_experiments
from training.ab.stats import METRICS, VariantData, compare, sample_ratio_mismatch
from training.data.drain import EXPOSURE_SCHEMA

DEFAULT_WINDOW = timedelta(hours=24)
DEFAULT_DURATION_S = 60.0
VIDEO, PRODUCT = 0, 1  # item kinds


class ReportError(ValueError):
    """A report that cannot be made (no exposures, an unknown experiment, unreadable input)."""


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


def user_aggregates(
    exposures: pa.Table,
    events: pa.Table,
    experiment: str,
    window: timedelta = DEFAULT_WINDOW,
    durations: Mapping[str, float] | None = None,
) -> tuple[dict[str, VariantData], AttributionStats]:
    """One VariantData per variant seen in the experiment's exposures (attribution rules in
    the module docstring), and how the events were attributed."""
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


def build_report(
    exposures: pa.Table,
    events: pa.Table,
    experiment: Experiment,
    *,
    window: timedelta = DEFAULT_WINDOW,
    durations: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    sequential: bool = False,
    tau2: float | None = None,
) -> dict[str, Any]:
    """The experiment's report, JSON-ready: variants, each treatment against the control, the
    SRM check against the definition's weights, the attribution counts and notes.

    Raises ReportError when no user has an exposure of the experiment."""
    data, stats = user_aggregates(exposures, events, experiment.name, window, durations)
    if not data and not stats.users_excluded:
        raise ReportError(f"no exposures of experiment {experiment.name!r}")
    notes = list(stats.notes)
    weights = {v.name: v.weight for v in experiment.variants}
    unknown = sorted(set(data) - set(weights))
    if unknown:
        users = sum(data[name].users for name in unknown)
        notes.append(
            f"{users:,} user(s) in variant(s) {unknown}, not in the definition, are left out"
        )
    variants = {name: data.get(name) or _no_users(name) for name in weights}
    control = variants[experiment.control_variant]
    return {
        "experiment": experiment.name,
        "control": control.name,
        "alpha": alpha,
        "sequential": sequential,
        "window_hours": window / timedelta(hours=1),
        "variants": [
            {
                "name": name,
                "weight": weights[name],
                "users": variant.users,
                "exposures": int(variant.exposures.sum()),
                "metrics": _metric_values(variant),
            }
            for name, variant in variants.items()
        ],
        "comparisons": [
            {
                "treatment": name,
                "control": control.name,
                "metrics": [
                    {**result.as_dict(), "winner": _winner(result.as_dict(), control.name, name)}
                    for result in compare(
                        control, variant, alpha=alpha, sequential=sequential, tau2=tau2
                    )
                ],
            }
            for name, variant in variants.items()
            if name != control.name
        ],
        "srm": sample_ratio_mismatch(
            {name: variant.users for name, variant in variants.items()}, weights
        ).as_dict(),
        "attribution": {k: v for k, v in stats.as_dict().items() if k != "notes"},
        "notes": notes,
    }


def _winner(result: dict[str, Any], control: str, treatment: str) -> str | None:
    """The variant a significant difference favours (every metric here is better higher);
    None when the difference is not significant."""
    difference = result.get("relative_difference")
    if not result.get("significant") or difference is None or difference == 0:
        return None
    return treatment if difference > 0 else control


def report_text(report: dict[str, Any]) -> str:
    """The report as a terminal table: one row per metric and treatment, then SRM and
    attribution."""
    control = report["control"]
    mode = "sequential (always valid)" if report["sequential"] else "fixed horizon"
    confidence = f"{1 - report['alpha']:.0%}"
    lines = [
        f"A/B report: {report['experiment']} (control {control}; {mode}, alpha "
        f"{report['alpha']:g}; attribution window {report['window_hours']:g} h)",
        "",
        f"{'variant':<20} {'weight':>7} {'users':>10} {'exposures':>12}",
    ]
    for variant in report["variants"]:
        lines.append(
            f"{variant['name']:<20} {variant['weight']:>7.1%} {variant['users']:>10,} "
            f"{variant['exposures']:>12,}"
        )
    lines += [
        "",
        f"{'metric':<23} {control[:12]:>12} {'vs variant':<14} {'value':>10}  "
        f"{'difference [' + confidence + ' CI]':<28} {'p':>8} {'Holm p':>8}",
    ]
    for i, metric in enumerate(METRICS):
        for j, comparison in enumerate(report["comparisons"]):
            row = comparison["metrics"][i]
            name = metric.name if j == 0 else ""
            value = _value(row["control"], metric.kind) if j == 0 else ""
            mark = (
                f" * {row['winner']} wins"
                if row["significant"] and row.get("winner")
                else (" *" if row["significant"] else "")
            )
            lines.append(
                f"{name:<23} {value:>12} {comparison['treatment'][:14]:<14} "
                f"{_value(row['treatment'], metric.kind):>10}  {_difference(row):<28} "
                f"{_p(row['p_value']):>8} {_p(row['adjusted_p']):>8}{mark}"
            )
    srm = report["srm"]
    lines += [
        f"* significant after Holm correction across metrics at alpha {report['alpha']:g}",
        "",
        ("SRM ALARM: the split of users is not the definition's, do not trust the metrics: "
         if srm["alarm"] else "SRM ok: ") + srm["message"],
    ]  # fmt: skip
    a = report["attribution"]
    lines.append(
        f"attribution: {a['events_read']:,} events read; {a['attributed_by_request_id']:,} "
        f"attributed by request id, {a['attributed_by_window']:,} by window; "
        f"{a['not_attributed']:,} not attributed ({a['before_first_exposure']:,} before the "
        f"first exposure, {a['outside_window']:,} outside the window, {a['not_shown']:,} of "
        f"items not shown); {a['ignored']:,} ignored; {a['users_excluded']:,} users excluded"
    )
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def load_exposures(path: Path) -> pa.Table:
    """Every exposure file under `path` (day partitions, as `recsvc drain` writes them)."""
    if not path.is_dir():
        raise ReportError(f"{path}: no such directory of exposures")
    files = sorted(
        file
        for file in path.rglob("*.parquet")
        if not any(part[0] in "._" for part in file.relative_to(path).parts)
    )
    if not files:
        raise ReportError(f"{path}: no exposure files (*.parquet); has recsvc drain run?")
    tables = []
    for file in files:
        try:
            names = pq.read_schema(file).names
            missing = [name for name in EXPOSURE_SCHEMA.names if name not in names]
            if missing:
                raise ReportError(f"{file}: not an exposure file (no {', '.join(missing)} column)")
            table = pq.read_table(file, columns=EXPOSURE_SCHEMA.names)
            tables.append(table.cast(EXPOSURE_SCHEMA))
        except (OSError, pa.ArrowException) as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ReportError(f"{file}: unreadable exposure file: {first_line}") from None
    return pa.concat_tables(tables)


def load_durations(path: Path) -> dict[str, float]:
    """video_id -> duration_s from a JSON-lines catalogue (a world's catalog/videos.jsonl)."""
    durations = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    durations[str(record["video_id"])] = float(record["duration_s"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ReportError(
                        f"{path}:{number}: needs video_id and a numeric duration_s ({exc!r})"
                    ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportError(f"{path}: {exc}") from None
    return durations


def find_experiment(definition: str, name: str) -> Experiment:
    """The experiment called `name` in a TOML definition."""
    try:
        experiments = parse_experiments(definition).experiments
    except ExperimentError as exc:
        raise ReportError(f"the experiments' definition is not valid: {exc}") from None
    for experiment in experiments:
        if experiment.name == name:
            return experiment
    known = ", ".join(e.name for e in experiments) or "none"
    raise ReportError(f"unknown experiment {name!r} (the definition has: {known})")


def _no_users(name: str) -> VariantData:
    empty = np.zeros(0)
    return VariantData(name, *([empty] * 8))


def _metric_values(variant: VariantData) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for metric in METRICS:
        numerator = float(getattr(variant, metric.numerator).sum())
        if metric.denominator is None:
            denominator = float(variant.users)
        else:
            denominator = float(getattr(variant, metric.denominator).sum())
        values[metric.name] = numerator / denominator if denominator else None
    return values


def _value(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if kind == "ratio" else f"{value:,.3f}"


def _difference(row: dict[str, Any]) -> str:
    if row["relative_difference"] is None:
        return "-"
    text = f"{row['relative_difference']:+.1%}"
    if row["ci_low"] is not None:
        high = "inf" if row["ci_high"] is None else f"{row['ci_high']:+.1%}"
        text += f" [{row['ci_low']:+.1%}, {high}]"
    return text


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


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


def _flat_items(lists: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """The non-null items of a list column, with the row each comes from."""
    flat = pc.list_flatten(lists)
    row = pc.list_parent_indices(lists).to_numpy().astype(np.int64)
    valid = flat.is_valid()
    return row[valid.to_numpy(False)], flat.filter(valid)


def _latest_at_or_before(
    ref_key: np.ndarray, ref_ts: np.ndarray, key: np.ndarray, ts: np.ndarray
) -> np.ndarray:
    """For each (key, ts): the index of the reference row of the same key with the latest
    ref_ts <= ts, or -1. One sort of both sides, the references first at equal times."""
    n = len(ref_key)
    all_key = np.concatenate([ref_key, key])
    order = np.lexsort((np.arange(len(all_key)) >= n, np.concatenate([ref_ts, ts]), all_key))
    last_ref = np.maximum.accumulate(np.where(order < n, np.arange(len(order)), -1))
    queries = np.flatnonzero(order >= n)
    found = last_ref[queries]
    candidate = order[np.maximum(found, 0)]
    same = (found >= 0) & (all_key[candidate] == all_key[order[queries]])
    result = np.full(len(key), -1, dtype=np.int64)
    result[order[queries] - n] = np.where(same, candidate, -1)
    return result


def _distinct(values: np.ndarray) -> np.ndarray:
    """np.unique by one sort: numpy's hashing unique is many times slower on large arrays."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def _is_in(values: np.ndarray, distinct: np.ndarray) -> np.ndarray:
    """Which values are in `distinct` (sorted); the queries are searched in order, which
    keeps the search in cache."""
    if len(distinct) == 0:
        return np.zeros(len(values), dtype=bool)
    order = np.argsort(values)
    found = np.empty(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(distinct, values[order]), len(distinct) - 1)
    found[order] = distinct[at] == values[order]
    return found


def _positions(values: pa.ChunkedArray | pa.Array, value_set: pa.Array) -> np.ndarray:
    """Each value's position in value_set, -1 when absent; int64, for Arrow's int32 would
    overflow in the composite keys built from it."""
    return pc.fill_null(pc.index_in(values, value_set), -1).to_numpy().astype(np.int64)


def _ms(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.int64()).to_numpy(), dtype=np.int64)
