"""Builders of the A/B report's tests: exposures and events as the drain writes them, the
planted experiment's definition, and `recsvc` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from training.data.drain import EXPOSURE_SCHEMA
from training.data.events import EVENT_SCHEMA

RECSVC = str(Path(sys.executable).with_name("recsvc"))
EXP = "attach-test"
DEFINITION = f"""
[[experiment]]
name = "{EXP}"
control = "control"

[[experiment.variant]]
name = "control"
weight = 0.4

[[experiment.variant]]
name = "treatment"
weight = 0.6
attach_user_weight = 2.0
"""
T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
DAY = timedelta(hours=24)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def exposure(
    request_id: str,
    user: str,
    hours: float,
    variant: str = "control",
    videos: Sequence[str] = ("v1", "v2"),
    products: Sequence[str | None] = ("p1", None),
    experiments: str | None = None,
    segment: str | None = None,
    lifecycle: str | None = None,
    surface: str | None = "home",
) -> dict[str, Any]:
    """One feed served; `products` is the card under each video; segment and lifecycle are
    the user's when shown (None: unknown)."""
    return {
        "request_id": request_id,
        "ts": at(hours),
        "user_id": user,
        "experiments": experiments or f"other:x,{EXP}:{variant}",
        "model_version": "20261101T000000Z",
        "videos": list(videos),
        "products": list(products),
        "segment": segment,
        "lifecycle": lifecycle,
        "surface": surface,
    }


def event(
    user: str,
    item: str,
    action: str,
    hours: float,
    request_id: str | None = None,
    watch_ratio: float | None = None,
    amount: float | None = None,
) -> dict[str, Any]:
    """An outcome; items named v... are videos, p... products."""
    return {
        "ts": at(hours),
        "user_id": user,
        "item_id": item,
        "item_type": "video" if item.startswith("v") else "product",
        "action": action,
        "watch_ratio": watch_ratio,
        "request_id": request_id,
        "amount": amount,
    }


def exposure_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=EXPOSURE_SCHEMA)


def event_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"event_id": f"e{i}", **row} for i, row in enumerate(rows)], schema=EVENT_SCHEMA
    )


def write_days(table: pa.Table, directory: Path) -> Path:
    """`table` as day partitions, the way `recsvc drain` writes them."""
    days = [ts.date().isoformat() for ts in table.column("ts").to_pylist()]
    for day in sorted(set(days)):
        part = directory / f"day={day}" / "part-1.parquet"
        part.parent.mkdir(parents=True)
        pq.write_table(table.filter(pa.array([d == day for d in days])), part)
    return directory


def recsvc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    wide = {**os.environ, "COLUMNS": "500", **(env or {})}
    return subprocess.run([RECSVC, *args], capture_output=True, text=True, check=False, env=wide)


def report_arguments(
    exposures: list[dict[str, Any]], events: list[dict[str, Any]], directory: Path
) -> list[str]:
    """--exposures, --events and --definition of the planted experiment, written under
    `directory`."""
    definition = directory / "experiments.toml"
    definition.write_text(DEFINITION)
    return [
        "--exposures",
        str(write_days(exposure_table(exposures), directory / "exposures")),
        "--events",
        str(write_days(event_table(events), directory / "events")),
        "--definition",
        str(definition),
    ]
