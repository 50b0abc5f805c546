"""Builders of test data: readable event rows, the files that hold them, big synthetic logs,
and event tables with a planted block structure that a model must find."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recsvc.contract.domain import EVENT_COLUMNS
from training.data.events import EVENT_SCHEMA

EPOCH = datetime(2026, 11, 1, tzinfo=UTC)


def event_row(i: int = 0, **fields: Any) -> dict[str, Any]:
    """One valid event (a view of a video), numbered `i`, with `fields` overriding defaults."""
    row: dict[str, Any] = {
        "event_id": f"e{i:04d}",
        "ts": EPOCH + timedelta(minutes=i),
        "user_id": f"u{i % 7}",
        "item_id": f"v{i % 5}",
        "item_type": "video",
        "action": "view",
        "watch_ratio": 0.5,
        "request_id": f"r{i}",
        "amount": None,
    }
    row.update(fields)
    return row


def event_rows(n: int, *, start: int = 0, **fields: Any) -> list[dict[str, Any]]:
    """`n` valid events numbered from `start` (unique event ids), `fields` applied to each."""
    return [event_row(i, **fields) for i in range(start, start + n)]


def write_events_csv(
    path: Path, rows: Iterable[dict[str, Any]], *, columns: Sequence[str] = EVENT_COLUMNS
) -> Path:
    """A CSV file with a header of `columns`; None is written as an empty field."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_text(row.get(name)) for name in columns])
    return path


def write_events_parquet(
    path: Path,
    rows: Iterable[dict[str, Any]],
    *,
    columns: Sequence[str] = EVENT_COLUMNS,
    schema: pa.Schema | None = None,
) -> Path:
    """A Parquet file of `rows` restricted to `columns`; types inferred unless `schema` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = [{name: row.get(name) for name in columns} for row in rows]
    if schema is None:
        table = pa.Table.from_pylist(records)
    else:
        table = pa.Table.from_pylist(records, schema=schema)
    pq.write_table(table, path)
    return path


def write_movielens(path: Path, ratings: Iterable[Sequence[Any]]) -> Path:
    """A MovieLens u.data file: one `user item rating unix_ts` line per rating, tab-separated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(str(value) for value in rating) + "\n" for rating in ratings]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_event_partitions(
    root: Path,
    *,
    n_rows: int,
    n_days: int,
    n_users: int,
    n_items: int,
    duplicates: int = 0,
    seed: int = 0,
) -> list[Path]:
    """Day partitions `root/day=YYYY-MM-DD/part-0.parquet` of a synthetic log, built vectorised.

    Ids look like production ones (`e0000000001`, `u0001234`, `v00042`); one item in ten is a
    product. The last `duplicates` rows repeat event ids of the first day, so exactly that many
    rows must come back as duplicate_event_id.
    """
    rng = np.random.default_rng(seed)
    per_day = -(-n_rows // n_days)
    event_numbers = np.arange(n_rows, dtype=np.int64)
    if duplicates:
        event_numbers[n_rows - duplicates :] = rng.choice(per_day, duplicates, replace=False)
    paths = []
    for day in range(n_days):
        rows = slice(day * per_day, min((day + 1) * per_day, n_rows))
        table = _synthetic_day(rng, event_numbers[rows], day, n_users, n_items)
        path = root / f"day={(EPOCH + timedelta(days=day)).date()}" / "part-0.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        paths.append(path)
    return paths


def _synthetic_day(
    rng: np.random.Generator, event_numbers: np.ndarray, day: int, n_users: int, n_items: int
) -> pa.Table:
    n = len(event_numbers)
    items = rng.integers(0, n_items, n)
    is_product = items % 10 == 0
    actions = np.where(is_product, rng.choice(["impression", "click", "purchase"], n), "view")
    seconds = int((EPOCH + timedelta(days=day)).timestamp()) + np.sort(rng.integers(0, 86_400, n))
    watch = np.where(actions == "view", rng.random(n, dtype=np.float32), np.nan)
    amount = np.where(actions == "purchase", rng.uniform(10, 5_000, n).round(2), np.nan)
    return pa.table(
        {
            "event_id": _ids("e", event_numbers, 10),
            "ts": pa.array(seconds * 1000, pa.timestamp("ms", tz="UTC")),
            "user_id": _ids("u", rng.integers(0, n_users, n), 7),
            "item_id": pc.if_else(is_product, _ids("p", items, 5), _ids("v", items, 5)),
            "item_type": pa.array(np.where(is_product, "product", "video")),
            "action": pa.array(actions),
            "watch_ratio": pa.array(watch, pa.float32(), from_pandas=True),
            "request_id": _ids("r", rng.integers(0, n, n) + day * n, 10),
            "amount": pa.array(amount, pa.float64(), from_pandas=True),
        }
    )


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def event_table(rows: list[dict]) -> pa.Table:
    """A normalised event table from dicts; missing fields get defaults, ids are numbered."""
    columns: dict[str, list] = {name: [] for name in EVENT_COLUMNS}
    for number, row in enumerate(rows):
        full = {
            "event_id": f"e{number}",
            "ts": EPOCH + timedelta(hours=number),
            "item_type": "video",
            "action": "view",
            "watch_ratio": None,
            "request_id": None,
            "amount": None,
            **row,
        }
        for name in EVENT_COLUMNS:
            columns[name].append(full[name])
    return pa.table(columns, schema=EVENT_SCHEMA)


def block_events(
    groups: int = 3,
    users_per_group: int = 40,
    videos_per_group: int = 12,
    products_per_group: int = 2,
    view_share: float = 0.6,
    days: int = 6,
    seed: int = 0,
) -> pa.Table:
    """Users in groups that view their own group's videos and buy their group's products.

    A model must find the blocks: the best unseen items of a user are in the user's group.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        videos = [f"v{g}-{i:02d}" for i in range(videos_per_group)]
        products = [f"p{g}-{i}" for i in range(products_per_group)]
        for u in range(users_per_group):
            user = f"u{g}-{u:03d}"
            for video in rng.choice(videos, int(view_share * len(videos)), replace=False):
                rows.append(
                    {"user_id": user, "item_id": str(video), "watch_ratio": rng.uniform(0.5, 1)}
                )
            product = str(rng.choice(products))
            rows.append(
                {
                    "user_id": user,
                    "item_id": product,
                    "item_type": "product",
                    "action": "purchase",
                    "amount": 100.0,
                }
            )
    order = rng.permutation(len(rows))
    span = timedelta(days=days).total_seconds()
    for rank, position in enumerate(order):
        rows[position]["ts"] = EPOCH + timedelta(seconds=span * rank / len(rows))
        rows[position]["event_id"] = f"e{rank}"
    return event_table(rows)


def cf_vs_popular(cf: float = 0.5, popular: float = 0.5, attach_off: bool = False) -> str:
    """The TOML of experiment "ranker": variant `cf` (ranker cf) against `popular` (ranker
    popular, its cards off with `attach_off`), weighted as given."""
    attach = "attach = false\n" if attach_off else ""
    return f"""
[[experiment]]
name = "ranker"

[[experiment.variant]]
name = "cf"
weight = {cf}
ranker = "cf"

[[experiment.variant]]
name = "popular"
weight = {popular}
ranker = "popular"
{attach}"""


def champion_vs_challenger(challenger: float = 0.5) -> str:
    """The TOML of experiment "champion": variant `live` (the current model) against
    `challenger` (the challenger model), with `challenger` of the traffic to the latter."""
    return f"""
[[experiment]]
name = "champion"

[[experiment.variant]]
name = "live"
weight = {1 - challenger}
model = "current"

[[experiment.variant]]
name = "challenger"
weight = {challenger}
model = "challenger"
"""


APP_KEY = "test-app-key-0123456789"  # what the test services accept from the app backend
ADMIN_KEY = "test-admin-key-0123456789"  # ... and from operators


def auth_header(key: str = APP_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cli_environment(redis_url: str, models_dir: Path) -> dict[str, str]:
    """The environment a `recsvc` command of a test runs in: its Redis, models directory and
    the test API keys."""
    return {
        **os.environ,
        "RECSVC_REDIS_URL": redis_url,
        "RECSVC_MODELS_DIR": str(models_dir),
        "RECSVC_LOG_JSON": "false",
        "RECSVC_APP_API_KEYS": APP_KEY,
        "RECSVC_ADMIN_API_KEYS": ADMIN_KEY,
        "RECSVC_API_KEY": APP_KEY,  # what clients (recsvc simulate) send
        "RECSVC_ADMIN_KEY": ADMIN_KEY,
    }


def block_model(out: Path, params: Any) -> tuple[Path, Any]:
    """Two planted groups of ten users (block_events), fitted with `params` (FitParams) on
    one thread and exported under `out`: the model directory and the factors."""
    from training.data.matrix import ConfidenceWeights, build_interactions
    from training.data.splits import Dataset
    from training.models.factors import fit
    from training.models.pipeline import export_trained

    events = block_events(groups=2, users_per_group=10)
    dataset = Dataset(build_interactions(events), events, ConfidenceWeights())
    factors = fit(dataset.interactions.confidence, params, threads=1)
    return export_trained(out, factors, dataset, {"window": {}}, {}), factors
