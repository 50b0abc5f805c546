"""The trending prior: what was popular in the last hours of the data, added to the video score.

A video's prior is log1p(users who interacted with it in the `hours` before the data's last
event) / its maximum over videos: 1 for the most-watched video of the window, 0 for one nobody
watched in it. It enters a user's video scores as

    score[u, v] + weight · σ_u · prior[v]

where σ_u is the spread (population standard deviation) of the user's scores over the
videos. Adding weight · prior to the z-scored scores orders videos the same way, so `weight`
is in units of the user's own score spread and means the same for every family and scale:
at 1, the top trending video gains one standard deviation. A user with no vector (σ_u = 0)
is unaffected; the service ranks such users by popularity.

The service computes σ_u without scoring every video: σ_u² = uᵀ C u, with C the covariance
of the video factors (recsvc.feed.model). The tuner chooses `hours` and `weight` (0 is off) on
its validation split; the export writes the prior and the manifest records both.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from training.data.matrix import ConfidenceWeights, ItemIndex, aggregate

# One search space for every dataset: from a news cycle to a week, and from a tie-breaker
# to a prior that outweighs the model (0, off, is always a candidate).
TRENDING_HOURS = (3.0, 6.0, 24.0, 72.0, 168.0)
TRENDING_WEIGHTS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def last_event(events: pa.Table) -> datetime | None:
    """The moment the data ends (its last event), or None for no events."""
    value = pc.max(events.column("ts")).as_py() if events.num_rows else None
    return value  # type: ignore[no-any-return]


def trending_prior(
    events: pa.Table,
    index: ItemIndex,
    weights: ConfidenceWeights,
    hours: float,
    until: datetime | None = None,
) -> np.ndarray:
    """log1p(users per item in the `hours` up to `until`, the data's last event by default) /
    its maximum over the videos: a float32 array over the index's videos, in [0, 1]. Events
    that weigh nothing (impressions by default) do not count."""
    if hours <= 0:
        raise ValueError(f"the trending window must be > 0 hours, not {hours}")
    until = until or last_event(events)
    if until is None:
        return np.zeros(index.n_videos, dtype=np.float32)
    kind = events.schema.field("ts").type
    since = pa.scalar(until - timedelta(hours=hours), type=kind)
    recent = events.filter(pc.greater_equal(events.column("ts"), since))
    confidence = aggregate(recent, index, weights).confidence
    users = np.diff(confidence.tocsc().indptr)[index.videos].astype(np.float64)
    counts = np.log1p(users)
    top = counts.max(initial=0.0)
    return (counts / top if top > 0 else counts).astype(np.float32)


def blend(scores: np.ndarray, prior: np.ndarray, weight: float) -> np.ndarray:
    """scores [users, videos] + weight · each row's standard deviation · prior [videos]."""
    scores = np.asarray(scores, dtype=np.float32)
    if weight == 0 or scores.size == 0:
        return scores
    spread = scores.std(axis=1, keepdims=True)
    return scores + np.float32(weight) * spread * prior[None, :]
