"""Today's behaviour: how much a user's recent events should move their published vector.

The service serves a user with a published vector u and recent events the blend

    (1 − w) · u + w · x,    x the fold-in of the user's recent events

(recsvc.feed.compute.user_vector), so that a user whose taste moved today is not served last
night's taste all day. w is chosen here on a temporal split, as the service would meet it:
the model fitted on the days before the cutoff, each user's events after it in time order,
the first half as what the user did so far today and the second half's new videos as what
to find. The recent events folded in are the user's last RECENT_LIMIT events up to that
moment (the service keeps as many: RECSVC_RECENT_EVENTS_LIMIT). The weight with the best
mean NDCG@10 over these users wins; 0 (the published vector alone) where none is better.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recsvc.feed.foldin import fold_in, project
from training.data.splits import Dataset
from training.models.factors import Factors

TODAY_GRID = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0)
RECENT_LIMIT = 200
MAX_USERS = 2000
K = 10


@dataclass(frozen=True)
class TodayChoice:
    weight: float
    users: int  # the users it was chosen on
    ndcg: dict[float, float]  # mean NDCG@10 per weight tried

    def as_dict(self) -> dict[str, Any]:
        return {
            "weight": self.weight,
            "users": self.users,
            "ndcg_at_10": {str(w): round(v, 6) for w, v in self.ndcg.items()},
        }


def choose_today_weight(
    factors: Factors, dataset: Dataset, cutoff: datetime, seed: int = 0
) -> TodayChoice:
    """The blend weight, on `factors` fitted on `dataset`'s events before `cutoff` (the
    dataset holds every event, the ones after it included)."""
    events = dataset.events
    if events is None or events.num_rows == 0:
        return TodayChoice(0.0, 0, {})
    index = dataset.interactions.index
    n_videos = index.n_videos
    items = {str(item): i for i, item in enumerate(index.item_ids)}
    users = {str(user): u for u, user in enumerate(index.user_ids)}
    weights = replace(dataset.weights, half_life_days=0.0)  # the service does not decay
    confidence = weights.per_event(events)
    ts = events.column("ts").cast(pa.timestamp("ms", tz="UTC")).to_numpy(zero_copy_only=False)
    moment = cutoff.astimezone(UTC) if cutoff.tzinfo else cutoff
    cut = np.datetime64(moment.replace(tzinfo=None), "ms")
    user_column = events.column("user_id").to_numpy(zero_copy_only=False)
    item_column = events.column("item_id").to_numpy(zero_copy_only=False)
    today_users = np.unique(
        user_column[
            (ts >= cut)
            & (confidence > 0)
            & pc.equal(events.column("item_type"), "video").to_numpy(zero_copy_only=False)
        ]
    )
    rng = np.random.default_rng(seed)
    if len(today_users) > MAX_USERS:
        today_users = rng.choice(today_users, MAX_USERS, replace=False)
    wanted = set(map(str, today_users))
    per_user: dict[str, list[tuple[np.datetime64, int, float]]] = defaultdict(list)
    theirs = pc.is_in(events.column("user_id"), value_set=pa.array(today_users.tolist()))
    for event in np.flatnonzero(theirs.to_numpy(zero_copy_only=False) & (confidence > 0)):
        item = items.get(str(item_column[event]))
        if item is not None:
            per_user[str(user_column[event])].append((ts[event], item, float(confidence[event])))
    videos = factors.item[:n_videos].astype(np.float32)
    params = factors.params.as_dict()
    gram = factors.item.T.astype(np.float64) @ factors.item  # YᵀY, as exported for fold-in
    totals = np.zeros(len(TODAY_GRID))
    counted = 0
    for user in sorted(wanted):
        row = users.get(user)
        history = sorted(per_user.get(user, []), key=lambda e: e[0])
        if row is None or not history:
            continue
        earlier = [e for e in history if e[0] < cut]
        today = [e for e in history if e[0] >= cut]
        if not earlier or not factors.user[row].any():
            continue  # new today: served by fold-in alone, never a blend
        so_far, later = today[: len(today) // 2], today[len(today) // 2 :]
        seen = {item for _, item, _ in earlier + so_far}
        targets = {item for _, item, _ in later if item < n_videos} - seen
        recent = (earlier + so_far)[-RECENT_LIMIT:]
        if not so_far or not targets:
            continue
        folded = _fold(factors, gram, recent, params)
        published = videos @ factors.user[row]
        from_recent = videos @ folded
        blocked = np.array(sorted(i for i in seen if i < n_videos), dtype=np.int64)
        for g, weight in enumerate(TODAY_GRID):
            scores = (1 - weight) * published + weight * from_recent
            scores[blocked] = -np.inf
            totals[g] += _ndcg(scores, targets)
        counted += 1
    if counted == 0:
        return TodayChoice(0.0, 0, {})
    means = totals / counted
    best = int(np.argmax(means))  # the first best: the smaller weight on a tie
    return TodayChoice(
        TODAY_GRID[best], counted, dict(zip(TODAY_GRID, means.tolist(), strict=True))
    )


def _fold(
    factors: Factors,
    gram: np.ndarray,
    recent: list[tuple[Any, int, float]],
    params: Mapping[str, Any],
) -> np.ndarray:
    """The user's fold-in from these events, as the service computes it."""
    summed: dict[int, float] = defaultdict(float)
    for _, item, value in recent:
        summed[item] += value
    items = np.fromiter(summed.keys(), dtype=np.int64)
    values = np.fromiter(summed.values(), dtype=np.float64)
    if factors.projection is not None:
        return project(factors.projection, items, values, params)
    return fold_in(factors.item, gram, items, values, params)


def _ndcg(scores: np.ndarray, targets: set[int]) -> float:
    top = np.argsort(-scores, kind="stable")[:K]
    gains = [1.0 / np.log2(rank + 2) for rank, item in enumerate(top) if int(item) in targets]
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(len(targets), K)))
    return float(sum(gains) / ideal)
