"""The nightly run's data: the last `window_days` days of the drained events, as a Dataset.

Events stamped in the future (a device clock) are dropped and counted with the bad rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from training.data.events import load_events
from training.data.matrix import build_interactions
from training.data.splits import Dataset
from training.nightly.spec import NightlySpec

FUTURE_SLACK = timedelta(hours=1)  # events later than now + this are dropped as future_timestamp


def load_window(spec: NightlySpec) -> tuple[Dataset, dict[str, Any], datetime]:
    """The window's dataset, its description for the report, and its last event."""
    events, validation = load_events(spec.events_dir, max_bad_share=spec.max_bad_share)
    # An event stamped in the future (a device clock) would move the holdout day past every
    # real event and empty it: dropped, and counted with the bad rows.
    horizon = pa.scalar(datetime.now(UTC) + FUTURE_SLACK, type=events.schema.field("ts").type)
    future = pc.greater(events.column("ts"), horizon)
    dropped = pc.sum(future).as_py() or 0
    if dropped:
        events = events.filter(pc.invert(future))
    validation.bad_counts["future_timestamp"] = dropped
    validation.rows_accepted -= dropped
    if events.num_rows == 0:
        raise ValueError(f"no event in {spec.events_dir} at or before now")
    last = pc.max(events.column("ts")).as_py()
    start = last - timedelta(days=spec.window_days)
    start = start.replace(hour=0, minute=0, second=0, microsecond=0)
    events = events.filter(pc.greater_equal(events.column("ts"), start))
    first = pc.min(events.column("ts")).as_py()
    weights = spec.weights
    interactions = build_interactions(events, weights)
    data = {
        "window": {"first_event": str(first), "last_event": str(last)},
        "events": events.num_rows,
        "users": interactions.index.n_users,
        "nonzeros": interactions.nnz,
        "validation": validation.to_dict(),
    }
    return Dataset(interactions, events, weights), data, last
