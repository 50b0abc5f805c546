"""The nightly half of a user's erasure (recsvc.store.erasure has the service's half).

DELETE /v1/users/{id} deletes the user's own keys at once and records the erasure
(Keys.erasures). What had to be searched for, `finish_erasures` removes, for every user
recorded, as the nightly job's stage after its drain:

- in Redis: any key left under the user's hash tag (a Redis Cluster's per-event markers, a
  vector of a generation the registry no longer lists), the dedup markers of their events,
  their entries among the viewers of new videos (Keys.fresh_viewers), and their entries still
  in the event and exposure streams (events accepted after the drain, exposures that are not
  drained);
- on disk: their rows in every event file of the nightly job's folders (Parquet and CSV at
  any depth, as its loader reads them: the drained day partitions, anything put beside them)
  and in the drained exposures, each file rewritten durably (temporary file, fsync, atomic
  rename) or removed when nothing else is left in it; a file it cannot rewrite fails the run
  and leaves the erasures pending;

and only then deletes the records. A run killed part way redoes the rest the next time (every
step finds what is left). The report carries counts only, never an id.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from recsvc.contract.keys import Keys
from recsvc.contract.shards import STREAMS
from recsvc.registry.locks import LockHeld
from recsvc.store.client import SyncClient
from recsvc.store.layouts import stored_layouts
from training.data.drain import fsync_directory, shard_lease, shard_tags, write_durably

SCAN_COUNT = 1000


class ErasureError(RuntimeError):
    """Users' rows that cannot be erased from a file (the file named)."""


STREAM_CHUNK = 10_000


@dataclass
class ErasureReport:
    users: int = 0  # erasures finished
    keys_deleted: int = 0
    viewer_entries_deleted: int = 0
    stream_entries_deleted: int = 0
    rows_removed: int = 0
    files_rewritten: int = 0
    files_removed: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def finish_erasures(client: SyncClient, keys: Keys, folders: Sequence[Path]) -> ErasureReport:
    """Remove what is left of every user recorded as erased, in Redis and in the day
    partitions under `folders`; then delete the records."""
    started = time.perf_counter()
    report = ErasureReport()
    users = {_text(u) for u in client.hkeys(keys.erasures)}  # type: ignore[union-attr]
    if not users:
        return report
    fresh = _sweep_keys(client, keys, users, report)
    _sweep_viewers(client, fresh, users, report)
    with every_shard_held(client, keys):  # no drain writes a file the sweep has passed
        ever = stored_layouts(client, keys).ever()
        for name in STREAMS:
            for stream in keys.every_stream(name, ever):
                _sweep_stream(client, stream, users, report)
        for folder in folders:
            _sweep_partitions(folder, users, report)
    client.hdel(keys.erasures, *sorted(users))
    report.users = len(users)
    report.seconds = round(time.perf_counter() - started, 3)
    return report


PAUSE_SECONDS = 600  # the pause lapses on its own this long after a sweep that died
HOLD_WAIT_SECONDS = 120.0  # how long the sweep waits for the followers to let go


@contextmanager
def every_shard_held(
    client: SyncClient, keys: Keys, wait: float = HOLD_WAIT_SECONDS
) -> Iterator[None]:
    """Hold every shard's drain lease for the block. `drain --follow` processes see the
    pause (Keys.drain_pause) and let go of theirs; a drain between two chunks finishes its
    chunk first. Without it a follower could read a user's entry before the sweep, write it
    after the sweep has passed its folder, and the user's event would stay on disk."""
    client.set(keys.drain_pause, "erasure sweep", ex=PAUSE_SECONDS)
    deadline = time.monotonic() + wait
    try:
        with ExitStack() as held:
            for tag in shard_tags(client, keys):
                while True:
                    try:
                        held.enter_context(shard_lease(client, keys, tag, "erasure sweep"))
                        break
                    except LockHeld as exc:
                        if time.monotonic() > deadline:
                            raise LockHeld(
                                f"the erasure sweep waited {wait:g}s for the drains to let go "
                                f"of the shards: {exc}"
                            ) from None
                        time.sleep(0.2)
            yield
    finally:
        client.delete(keys.drain_pause)


def _sweep_keys(
    client: SyncClient, keys: Keys, users: set[str], report: ErasureReport
) -> list[str]:
    """Delete the users' keys (their hash tag) and their events' dedup markers; return the
    keys of new videos' viewers (searched next)."""
    markers = f"{keys.prefix}:ev:{{"
    fresh_head, fresh_tail = f"{keys.prefix}:fresh:", ":viewers"
    doomed, fresh = [], []
    for raw in client.scan_iter(match=f"{keys.prefix}:*", count=SCAN_COUNT):
        key = _text(raw)
        if _owner(key, markers) in users:
            doomed.append(key)
        elif key.startswith(fresh_head) and key.endswith(fresh_tail):
            fresh.append(key)
    for key in doomed:  # keys of many slots: one at a time (a Cluster routes each)
        report.keys_deleted += int(client.delete(key))  # type: ignore[arg-type]
    return fresh


def _owner(key: str, markers: str) -> str | None:
    """The user a key belongs to: the id in its `{u:<id>}` hash tag, or in a dedup marker's
    `<markers><shard's tag>}:<bytes of the id>/<id>:<event id>`; None for any other key."""
    tag = key.find("{u:")
    if tag >= 0:
        end = key.find("}", tag)
        return key[tag + 3 : end] if end > 0 else None
    if not key.startswith(markers):
        return None
    _, closed, rest = key[len(markers) :].partition("}:")
    if not closed:
        return None
    length, _, tail = rest.partition("/")
    if not length.isdigit():
        return None  # a marker of the format before issue 13: it expires on its own
    return tail.encode()[: int(length)].decode(errors="replace")


def _sweep_viewers(
    client: SyncClient, hashes: Iterable[str], users: set[str], report: ErasureReport
) -> None:
    for key in hashes:
        entries = client.hgetall(key)  # at most FRESH_EVENTS_MAX
        theirs = [f for f, v in entries.items() if _text(v).split("|", 1)[0] in users]  # type: ignore[union-attr]
        if theirs:
            report.viewer_entries_deleted += int(client.hdel(key, *theirs))  # type: ignore[arg-type]


def _sweep_stream(client: SyncClient, stream: str, users: set[str], report: ErasureReport) -> None:
    start = "-"
    while True:
        entries = client.xrange(stream, min=start, count=STREAM_CHUNK)
        if not entries:
            return
        theirs = [i for i, fields in entries if _text(fields.get(b"user_id", b"")) in users]  # type: ignore[union-attr]
        if theirs:
            report.stream_entries_deleted += int(client.xdel(stream, *theirs))  # type: ignore[arg-type]
        start = "(" + _text(entries[-1][0])
        if len(entries) < STREAM_CHUNK:
            return


def _sweep_partitions(folder: Path, users: set[str], report: ErasureReport) -> None:
    """Every event file under `folder` the nightly job's loader would read (Parquet and CSV at
    any depth; names starting with '.' or '_' are not read), rewritten without the users' rows.
    Another kind of file there (MovieLens' u.data) is an ErasureError: the run fails and the
    erasures stay pending, rather than a model learning from rows it could not erase."""
    erased = pa.array(sorted(users), pa.string())
    files = sorted(
        path
        for path in (folder.rglob("*") if folder.is_dir() else [])
        if path.is_file() and not any(part[0] in "._" for part in path.relative_to(folder).parts)
    )
    for path in files:
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise ErasureError(
                f"{path}: cannot erase users' rows from this kind of file; remove them by hand "
                "(the erasures stay pending until a run finishes them)"
            )
        table = pq.read_table(path) if suffix == ".parquet" else _read_csv(path)
        if "user_id" not in table.column_names:
            continue
        theirs = pc.fill_null(
            pc.is_in(table.column("user_id").cast(pa.string()), value_set=erased), False
        )
        count = int(pc.sum(theirs).as_py() or 0)
        if not count:
            continue
        kept = table.filter(pc.invert(theirs))
        if kept.num_rows:
            write_durably(kept, path, pq.write_table if suffix == ".parquet" else pacsv.write_csv)
            report.files_rewritten += 1
        else:
            path.unlink()
            fsync_directory(path.parent)
            report.files_removed += 1
        report.rows_removed += count


def _read_csv(path: Path) -> pa.Table:
    """A CSV file with every column read as text, so that it is written back as it was."""
    with path.open(newline="", encoding="utf-8") as handle:
        names = next(csv.reader(handle), [])
    types = {name: pa.string() for name in names}
    return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types=types))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
