"""The datasets of bench/quality.py as recsvc event sources, each with its protocol.

- ml100k: MovieLens-100K `u.data` as recsvc reads it (EventFormat.MOVIELENS: a rating is a
  view with watch ratio rating / 5), the Recommenders protocol.
- kuairand: KuaiRand-Pure's two feed logs, one event per row shown: a click is a "view" with
  the file's watch ratio (replays above 1 kept; recsvc accepts up to 100), anything else an
  "impression"; rows with duration 0 and no finite watch ratio dropped, exact
  (user, video, time_ms) repeats dropped (the first kept); temporal, the last day held out.
- coil2000: COIL 2000's `ticdata2000.txt`: one "purchase" of item_type "product" per product
  a customer holds (columns 65-86); no time (every event at one instant), per-user protocol.
- synthetic: a world of sandbox.world.generate, as `recsvc synth` writes it and
  `recsvc evaluate --world` reads it (catalogue and ground truth); temporal, last day.

Derived event files are written under a temporary work directory, never into the
repository. `max_users` keeps a seeded sample of the users (a quick run, not the benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.data.events import EVENT_SCHEMA, EventFormat, load_events
from training.data.splits import Protocol, SplitSpec
from training.models.pipeline import Source

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# COIL 2000 columns 65-85 (policies held per product, in the data's order), then 86.
COIL_PRODUCTS = (
    "third_party_private", "third_party_firms", "third_party_agriculture", "car",
    "delivery_van", "motorcycle", "lorry", "trailer", "tractor", "agricultural_machines",
    "moped", "life", "accident_private", "accident_family", "disability", "fire", "surfboard",
    "boat", "bicycle", "property", "social_security", "caravan",
)  # fmt: skip
COIL_FIRST_COLUMN = 64  # 0-based index of column 65
KUAIRAND_FILES = ("log_part1.parquet", "log_part2.parquet")
KUAIRAND_COLUMNS = ["user_id", "video_id", "time_ms", "is_click", "watch_ratio", "duration_ms"]
WATCH_RATIO_MAX = 100.0


class Missing(Exception):
    """The dataset's files are not there: the benchmark skips it."""


@dataclass(frozen=True)
class Prepared:
    """A dataset ready for recsvc: its source, its protocol and how it was derived."""

    name: str
    source: Source
    split: SplitSpec
    description: str
    notes: dict[str, int | str]


def _require(*paths: Path) -> None:
    absent = [str(p) for p in paths if not p.is_file()]
    if absent:
        raise Missing(f"not found: {', '.join(absent)}")


def _events_table(columns: dict[str, pa.Array]) -> pa.Table:
    n = len(next(iter(columns.values())))
    full = {field.name: columns.get(field.name, pa.nulls(n, field.type)) for field in EVENT_SCHEMA}
    return pa.table(full, schema=EVENT_SCHEMA)


def subsample_users(events: pa.Table, max_users: int | None, seed: int) -> pa.Table:
    """The events of a seeded sample of `max_users` users (all of them when None or fewer)."""
    users = np.unique(events.column("user_id").to_numpy(zero_copy_only=False).astype(str))
    if max_users is None or len(users) <= max_users:
        return events
    kept = np.random.default_rng(seed).choice(users, size=max_users, replace=False)
    return events.filter(pc.is_in(events.column("user_id"), pa.array(kept)))


def _write(events: pa.Table, work: Path, name: str) -> Path:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "events.parquet"
    pq.write_table(events, path)
    return path


def ml100k(data_dir: Path, work: Path, max_users: int | None, seed: int) -> Prepared:
    path = data_dir / "ml-100k" / "u.data"
    _require(path)
    spec = SplitSpec(Protocol.RECOMMENDERS)
    description = "MovieLens-100K u.data (ratings as views, watch ratio rating/5), recommenders"
    if max_users is None:
        return Prepared("ml100k", Source(path, EventFormat.MOVIELENS), spec, description, {})
    events, _ = load_events(path, EventFormat.MOVIELENS)
    sample = subsample_users(events, max_users, seed)
    notes: dict[str, int | str] = {"rows": sample.num_rows, "max_users": max_users}
    source = Source(_write(sample, work, "ml100k"), EventFormat.PARQUET)
    return Prepared("ml100k", source, spec, description, notes)


def kuairand_events(data_dir: Path) -> tuple[pa.Table, dict[str, int | str]]:
    """KuaiRand-Pure's feed logs as recsvc events, and counts of what was dropped."""
    files = [data_dir / "kuairand-pure" / name for name in KUAIRAND_FILES]
    _require(*files)
    raw = pa.concat_tables([pq.read_table(f, columns=KUAIRAND_COLUMNS) for f in files])
    rows = raw.num_rows

    def column(name: str) -> np.ndarray:
        return raw.column(name).to_numpy(zero_copy_only=False)

    user, video, time_ms = column("user_id"), column("video_id"), column("time_ms")
    click = column("is_click") == 1
    ratio = np.asarray(raw.column("watch_ratio").fill_null(np.nan).to_numpy(), np.float64)
    no_ratio = ~np.isfinite(ratio)
    bad = (column("duration_ms") == 0) & no_ratio
    # exact repeats of (user, video, time_ms): the first row is kept
    order = np.lexsort((np.arange(rows), time_ms, video, user))
    key = np.stack([user[order], video[order], time_ms[order]], axis=1)
    repeat = np.zeros(rows, dtype=bool)
    repeat[order[1:]] = (key[1:] == key[:-1]).all(axis=1)
    keep = ~bad & ~repeat
    view = keep & click
    # a click whose ratio is not finite (duration > 0) stays a view with no ratio: weight 1
    ratio_kept = np.where(view & ~no_ratio, np.clip(ratio, 0.0, WATCH_RATIO_MAX), np.nan)
    row_number = np.arange(rows)[keep]
    events = _events_table(
        {
            "event_id": pa.array(np.char.add("kr-", row_number.astype(str))),
            "ts": pa.array(time_ms[keep], pa.timestamp("ms", tz="UTC")),
            "user_id": pa.array(user[keep].astype(str)),
            "item_id": pa.array(video[keep].astype(str)),
            "item_type": pa.array(np.full(int(keep.sum()), "video")),
            "action": pa.array(np.where(click[keep], "view", "impression")),
            "watch_ratio": pa.array(ratio_kept[keep].astype(np.float32), from_pandas=True),
        }
    )
    clicks_no_weight = int((view & (ratio == 0)).sum())
    notes: dict[str, int | str] = {
        "rows_read": rows,
        "dropped_duration_0_no_ratio": int(bad.sum()),
        "dropped_repeats": int((repeat & ~bad).sum()),
        "events": events.num_rows,
        "views": int(view.sum()),
        "views_with_watch_ratio_0": clicks_no_weight,
    }
    return events, notes


def kuairand(data_dir: Path, work: Path, max_users: int | None, seed: int) -> Prepared:
    events, notes = kuairand_events(data_dir)
    if max_users is not None:
        events = subsample_users(events, max_users, seed)
        notes |= {"max_users": max_users, "events_kept": events.num_rows}
    source = Source(_write(events, work, "kuairand"), EventFormat.PARQUET)
    description = (
        "KuaiRand-Pure feed logs (click = view with the file's watch ratio, else an "
        "impression), temporal, last day held out"
    )
    return Prepared(
        "kuairand", source, SplitSpec(Protocol.TEMPORAL, holdout_days=1), description, notes
    )


def coil_events(data_dir: Path) -> tuple[pa.Table, dict[str, int | str]]:
    """One purchase per (customer, product held) of COIL 2000's training file."""
    path = data_dir / "coil2000" / "ticdata2000.txt"
    _require(path)
    table = np.loadtxt(path, dtype=np.int64, ndmin=2)
    held = table[:, COIL_FIRST_COLUMN : COIL_FIRST_COLUMN + len(COIL_PRODUCTS)] > 0
    customers, products = np.nonzero(held)
    names = np.array([f"p_{name}" for name in COIL_PRODUCTS])
    user_ids = np.char.add("c", customers.astype(str))
    n = len(customers)
    moment = datetime(2000, 1, 1, tzinfo=UTC)  # the data has no time: one instant for all
    events = _events_table(
        {
            "event_id": pa.array(np.char.add(np.char.add(user_ids, "-"), names[products])),
            "ts": pa.array([moment] * n, pa.timestamp("ms", tz="UTC")),
            "user_id": pa.array(user_ids),
            "item_id": pa.array(names[products]),
            "item_type": pa.array(np.full(n, "product")),
            "action": pa.array(np.full(n, "purchase")),
        }
    )
    return events, {"customers": len(table), "holdings": n}


def coil2000(data_dir: Path, work: Path, max_users: int | None, seed: int) -> Prepared:
    events, notes = coil_events(data_dir)
    if max_users is not None:
        events = subsample_users(events, max_users, seed)
        notes |= {"max_users": max_users, "events_kept": events.num_rows}
    source = Source(_write(events, work, "coil2000"), EventFormat.PARQUET)
    description = "COIL 2000 holdings (one purchase per product held), per-user"
    return Prepared("coil2000", source, SplitSpec(Protocol.PER_USER), description, notes)


def synthetic(
    work: Path, users: int, events_per_user: int, max_users: int | None, seed: int
) -> Prepared:
    """A world as `recsvc synth --users N --events N·events_per_user --seed S` writes it,
    read as `recsvc evaluate --world` reads it (catalogue, ground truth)."""
    from sandbox.world.generate import WorldSpec, generate_world, write_world
    from training.cli.source import world_source

    users = min(users, max_users) if max_users is not None else users
    spec = WorldSpec(users=users, events=users * events_per_user, seed=seed)
    folder = work / "world"
    write_world(generate_world(spec), folder)
    description = (
        f"synthetic world ({spec.users:,} users, {spec.videos:,} videos, {spec.products} "
        f"products, ~{spec.events:,} events, {spec.days} days, seed {seed}), temporal, last day"
    )
    notes: dict[str, int | str] = {
        "users": spec.users,
        "videos": spec.videos,
        "products": spec.products,
        "events": spec.events,
        "days": spec.days,
    }
    return Prepared(
        "synthetic",
        world_source(folder, truth=True),
        SplitSpec(Protocol.TEMPORAL, holdout_days=1),
        description,
        notes,
    )
