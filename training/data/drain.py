"""Drain the service's event stream into Parquet day partitions, each event id exactly once.

The stream (`recsvc:events`, see recsvc.contract.keys) is read with a consumer group: first the
entries delivered to this consumer by a run that died before acknowledging them, then new
ones. Each chunk is

1. converted to EVENT_SCHEMA rows;
2. stripped of event ids already written (by a run that died between its write and its
   acknowledgement) and of repeats within the chunk;
3. written per UTC day to `day=YYYY-MM-DD/part-<first>_<last stream id>.parquet` through a
   temporary file, fsync, atomic rename and fsync of the directory;
4. only then acknowledged and deleted from the stream (which frees room: the service refuses
   events when the stream is full rather than trimming them).

So a run killed at any point loses nothing, and the next one writes nothing twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from redis.exceptions import ResponseError

from recsvc.contract.keys import Keys
from recsvc.contract.pause_points import pause_point
from recsvc.contract.records import (
    CARD_PAGE_KINDS,
    CARD_PART_KINDS,
    CARD_PARTS,
    EXPOSURE_FIELDS,
    PAGE_CARD_FIELDS,
    page_card_values,
)
from recsvc.contract.shards import STREAMS
from recsvc.registry.locks import LockHeld, redis_lock
from recsvc.store.client import SyncClient
from recsvc.store.layouts import stored_layouts
from recsvc.store.streams import DRAIN_GROUP
from training.data.events import EVENT_SCHEMA

GROUP = DRAIN_GROUP  # the service reports this group's lag (recsvc_stream_entries)
CHUNK = 10_000


@dataclass
class DrainReport:
    read: int = 0
    written: int = 0
    already_written: int = 0  # ids found in the partitions: a previous run died before its ack
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # shards a follower (`recsvc drain --follow`) holds: it drains them, this run did not
    skipped_shards: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: DrainReport) -> None:
        self.read += other.read
        self.written += other.written
        self.already_written += other.already_written
        self.files += other.files
        self.skipped_shards += other.skipped_shards


@dataclass(frozen=True)
class Stream:
    """A stream the service appends to, and how its entries become Parquet rows."""

    name: str  # the stream's name in the key layout (Keys.stream)
    id_field: str  # unique per entry: what makes a rerun write nothing twice
    schema: pa.Schema
    row: Callable[[dict[str, str]], dict[str, Any]]


def drain(
    client: SyncClient,
    out: Path,
    keys: Keys | None = None,
    consumer: str = "nightly",
    chunk: int = CHUNK,
    progress: Callable[[int], None] | None = None,
    before_ack: Callable[[], None] | None = None,
    stream: Stream | None = None,
) -> DrainReport:
    """Move every entry of the stream (the events, unless `stream` says otherwise), every
    shard of every layout ever used (recsvc.contract.shards), into `out` (day partitions);
    return what was done. A shard a follower holds (training.data.follow) is left to it.

    `before_ack` runs before each acknowledgement (the nightly job checks there that it
    still holds its lock: two drains at once could write an entry twice)."""
    started = time.perf_counter()
    keys = keys or Keys()
    kind = stream or EVENTS
    report = DrainReport()
    written_ids: dict[str, set[str]] = {}  # day -> entry ids on disk, read lazily
    for tag, shards in shard_tags(client, keys).items():
        try:
            with shard_lease(client, keys, tag, f"drain by {consumer}") as lease:

                def check() -> None:
                    lease.check()
                    if before_ack:
                        before_ack()

                for key in shards[kind.name]:
                    shard = drain_shard(
                        client, key, out, kind, consumer, chunk, written_ids, progress, check
                    )
                    report.add(shard)
        except LockHeld:
            report.skipped_shards.append(tag)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def shard_tags(client: SyncClient, keys: Keys) -> dict[str, dict[str, list[str]]]:
    """Every shard of every layout ever used, by its tag: its key of each stream."""
    tags: dict[str, dict[str, list[str]]] = {}
    for n in stored_layouts(client, keys).ever():
        for shard in range(n):
            names = tags.setdefault(keys.stream_tag(shard, n), {name: [] for name in STREAMS})
            for name in STREAMS:
                names[name].append(keys.stream(name, shard, n))
    return tags


def shard_lease(client: SyncClient, keys: Keys, tag: str, what: str) -> Any:
    """The lock a drain holds on a shard (all three of its streams) while it drains it:
    LockHeld when another drain holds it."""
    return redis_lock(client, keys.drain_lease(tag), what, f"the shard {tag} is being drained")


def drain_shard(
    client: SyncClient,
    key: str,
    out: Path,
    kind: Stream,
    consumer: str,
    chunk: int,
    written_ids: dict[str, set[str]],
    progress: Callable[[int], None] | None = None,
    before_ack: Callable[[], None] | None = None,
    *,
    recheck_new: bool = True,
    keep_going: Callable[[], bool] | None = None,
) -> DrainReport:
    """Move one shard's entries into `out`, under the shard's lease: first the entries
    delivered to any consumer and never acknowledged (taken over: their reader died, or was
    this one), checked against the partitions as they are now; then new ones. `written_ids`
    caches the ids on disk per day across calls; `recheck_new` False checks new entries
    against their chunk only (a follower's: new entries are unique in the streams, and a
    day's ids would grow without bound in a long-running process). `keep_going`, asked
    before each chunk, stops the drain there when it says no (what is left stays pending or
    new, for the next drain)."""
    _ensure_group(client, key)
    report = DrainReport()
    if _take_over_pending(client, key, consumer):
        written_ids.clear()  # the partitions as they are now: a dead reader may have written
    for pending in (True, False):
        while True:
            if keep_going is not None and not keep_going():
                return report
            entries = _read(client, key, consumer, chunk, pending)
            if not entries:
                break
            ids = [entry_id for entry_id, _ in entries]
            rows = [kind.row(fields) for _, fields in entries]
            cache = written_ids if pending or recheck_new else {}
            checked = pending or recheck_new
            by_day = _new_rows_by_day(rows, out, cache, report, kind.id_field, checked)
            if before_ack and by_day:
                before_ack()  # no write once the shard's lease is lost: another drain has it
            for day, day_rows in sorted(by_day.items()):
                # the chunk's first and last ids: a takeover that reads the same entries in
                # other chunks never names a file another chunk wrote (it would replace it)
                span = f"{ids[0]}-{ids[-1]}".replace("-", "_")
                part = f"part-{_file_tag(key)}{span}.parquet"
                path = out / f"day={day}" / part
                write_durably(pa.Table.from_pylist(day_rows, schema=kind.schema), path)
                cache[day].update(row[kind.id_field] for row in day_rows)
                report.files.append(str(path))
                report.written += len(day_rows)
            pause_point("drain:before-ack", f"{len(ids)} events durable, not yet acknowledged")
            if before_ack:
                before_ack()
            _ack_and_delete(client, key, ids)
            report.read += len(ids)
            if progress:
                progress(len(ids))
    return report


def _ack_and_delete(client: SyncClient, key: str, ids: list[str]) -> None:
    """Acknowledge and delete in one transaction (one key: one slot): a drain killed between
    the two would leave entries acknowledged, so never read again, in the stream for good."""
    pipe = client.pipeline(transaction=True)
    pipe.xack(key, GROUP, *ids)
    pipe.xdel(key, *ids)
    pipe.execute()


def _file_tag(key: str) -> str:
    """What tells files of different shards apart (their stream ids may coincide): the
    shard's tag for a sharded stream, nothing for a single one (the names from before)."""
    start = key.find("{")
    return "" if start < 0 else key[start + 1 : key.index("}", start)].replace(":", "_") + "-"


def _take_over_pending(client: SyncClient, key: str, consumer: str) -> bool:
    """Make every entry delivered to another consumer and never acknowledged this one's (the
    shard's lease says no one else is reading it); whether there were any."""
    taken, start = False, "0-0"
    while True:
        # (not JUSTID: redis-py then drops the cursor)
        reply: Any = client.xautoclaim(key, GROUP, consumer, 0, start, count=CHUNK)
        start, claimed = _text(reply[0]), reply[1]
        taken = taken or bool(claimed)
        if start == "0-0":
            return taken


def _ensure_group(client: SyncClient, stream: str) -> None:
    try:
        client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def _read(
    client: SyncClient, stream: str, consumer: str, chunk: int, pending: bool
) -> list[tuple[str, dict[str, str]]]:
    """A chunk of this consumer's pending entries (pending=True) or of new ones."""
    reply: Any = client.xreadgroup(GROUP, consumer, {stream: "0" if pending else ">"}, count=chunk)
    if not reply:
        return []
    _, entries = reply[0]
    return [
        (_text(entry_id), {_text(k): _text(v) for k, v in fields.items()})
        for entry_id, fields in entries
        if fields  # a pending entry deleted meanwhile comes back without fields
    ]


def _new_rows_by_day(
    rows: list[dict[str, Any]],
    out: Path,
    written_ids: dict[str, set[str]],
    report: DrainReport,
    id_field: str,
    checked: bool = True,
) -> dict[str, list[dict[str, Any]]]:
    by_day: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        day = row["ts"].date().isoformat() if row["ts"] is not None else "unknown"
        if day not in written_ids:
            written_ids[day] = _ids_on_disk(out / f"day={day}", id_field) if checked else set()
        if row[id_field] in written_ids[day]:
            report.already_written += 1
            continue
        written_ids[day].add(row[id_field])
        by_day.setdefault(day, []).append(row)
    for day, day_rows in by_day.items():  # these are not on disk yet: written by the caller
        written_ids[day].difference_update(row[id_field] for row in day_rows)
    return by_day


def _ids_on_disk(folder: Path, id_field: str) -> set[str]:
    ids: set[str] = set()
    for path in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
        ids.update(pq.read_table(path, columns=[id_field]).column(0).to_pylist())
    return ids


def write_durably(
    table: Any, path: Path, write: Callable[[Any, Path], None] = pq.write_table
) -> None:
    """Temporary file (written by `write`: `table` as Parquet unless told), fsync, atomic
    rename, fsync of the directory: all or nothing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two writers never share one
    write(table, tmp)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or an unlink in `directory` durable."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _row(fields: dict[str, str]) -> dict[str, Any]:
    """One stream entry as a DRAINED_EVENT_SCHEMA row (empty strings are nulls)."""
    row: dict[str, Any] = {name: fields.get(name) or None for name in DRAINED_EVENT_SCHEMA.names}
    row["ts"] = _timestamp(row["ts"])
    for name in ("watch_ratio", "amount"):
        row[name] = _number(row[name])
    position = row["position"]
    row["position"] = int(position) if position and position.isdigit() else None
    return row


def _exposure_row(fields: dict[str, str]) -> dict[str, Any]:
    """One exposure entry as an EXPOSURE_SCHEMA row: the shown lists split again."""
    try:
        ts: datetime | None = datetime.fromtimestamp(int(fields.get("ts", "")) / 1000, UTC)
    except ValueError:
        ts = None
    videos = fields.get("videos", "")
    row: dict[str, Any] = {name: fields.get(name) or None for name in EXPOSURE_FIELDS}
    row["ts"] = ts
    row["videos"] = videos.split(",") if videos else []
    row["products"] = [p or None for p in fields.get("products", "").split(",")] if videos else []
    explored = fields.get("explored", "")
    row["explored"] = [int(rank) for rank in explored.split(",") if rank.isdigit()]
    return row


# The Parquet type of each exposure field; the fields and their order are the contract's.
EXPOSURE_TYPES = {
    "request_id": pa.string(),
    "ts": pa.timestamp("ms", tz="UTC"),
    "user_id": pa.string(),
    "experiments": pa.string(),  # "experiment:variant" pairs joined by commas
    "model_version": pa.string(),
    "videos": pa.list_(pa.string()),
    "products": pa.list_(pa.string()),  # the card under each video, or null
    "explored": pa.list_(pa.int32()),  # the ranks of the exploration slots (none before them)
    "surface": pa.string(),  # where the page was shown (null before surfaces)
    "segment": pa.string(),  # the user's profile when shown (null: unknown)
    "lifecycle": pa.string(),
}
EXPOSURE_SCHEMA = pa.schema([(name, EXPOSURE_TYPES[name]) for name in EXPOSURE_FIELDS])
# The events' columns, then where each happened (recsvc.contract.records.Event: the surface
# and the position on the page) for analysis by placement; the trainer reads EVENT_COLUMNS.
DRAINED_EVENT_SCHEMA = EVENT_SCHEMA.append(pa.field("surface", pa.string())).append(
    pa.field("position", pa.int32())
)
EVENTS = Stream("events", "event_id", DRAINED_EVENT_SCHEMA, _row)
EXPOSURES = Stream("exposures", "request_id", EXPOSURE_SCHEMA, _exposure_row)

# A page's card record (recsvc.contract.records.PageCards) as a Parquet row: the page's
# fields, then one list per card check (CARD_PARTS), a card per position.
CARD_PAGE_TYPES = {
    "request_id": pa.string(),
    "ts": pa.timestamp("ms", tz="UTC"),
    "user_id": pa.string(),
    "model_version": pa.string(),
    "surface": pa.string(),
    "experiments": pa.string(),
    "risk_tolerance": pa.int32(),  # null: unknown
    "risk_allowed_up_to": pa.int32(),
    "daily_cap": pa.int32(),
}
CARD_PART_TYPES = {
    "rank": pa.int32(),
    "video_id": pa.string(),
    "product_id": pa.string(),
    "risk_level": pa.int32(),
    "holdable_once": pa.bool_(),
    "held": pa.bool_(),
    "cap_count": pa.int32(),
    "disclosure_required": pa.bool_(),
    "disclosure_shown": pa.bool_(),
    "category": pa.string(),
    "category_count": pa.int32(),
    "category_cap": pa.int32(),  # NO_CATEGORY_CAP (-1): none
    "campaigns": pa.string(),  # rule names joined by "+", null: none
}
assert tuple(CARD_PART_TYPES) == CARD_PARTS
assert tuple(CARD_PAGE_TYPES) == tuple(n for n in PAGE_CARD_FIELDS if n != "cards")
CARD_SCHEMA = pa.schema(
    [*CARD_PAGE_TYPES.items(), *((name, pa.list_(kind)) for name, kind in CARD_PART_TYPES.items())]
)


# The Parquet type of each value the contract reads a record back as (page_card_values).
_KIND_TYPES = {str: pa.string(), int: pa.int32(), bool: pa.bool_()}
assert {n: _KIND_TYPES[k] for n, k in CARD_PART_KINDS.items()} == CARD_PART_TYPES
assert all(
    CARD_PAGE_TYPES[n] == (pa.timestamp("ms", tz="UTC") if k is datetime else _KIND_TYPES[k])
    for n, k in CARD_PAGE_KINDS.items()
)


def card_row(fields: dict[str, str]) -> dict[str, Any]:
    """One page's card entry as a CARD_SCHEMA row (recsvc.contract.records.page_card_values:
    the parsing the service's audit shares)."""
    return page_card_values(fields)


CARDS = Stream("cards", "request_id", CARD_SCHEMA, card_row)


def _timestamp(text: str | None) -> datetime | None:
    try:
        ts = datetime.fromisoformat(text or "")
    except ValueError:
        return None  # kept as a row with no ts: the loader counts it as a bad timestamp
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
