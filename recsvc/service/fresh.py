"""Learning fresh videos' collaborative vectors from their first viewers, on every replica.

A video the model does not know starts at its metadata vector (recsvc.feed.fresh). Its first
events are recorded in Redis (recsvc.store.fresh) by whichever replica accepted them; every
replica reads them every FRESH_REFRESH_SECONDS and, for a video whose recorded events
changed, solves the item side of ALS over the published vectors of its viewers, with the
metadata vector as the prior (recsvc.feed.foldin.closed_form; its weight as the trainer chose
it). With `min_viewers` viewers that have a vector the video's vector is the solution:
`collaborative`. Every replica reads the same events and the same vectors, so all of them
reach the same vector without talking to each other.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Mapping

import numpy as np

from recsvc.contract import vectors
from recsvc.feed.foldin import closed_form
from recsvc.feed.fresh import FreshVideos, Learned
from recsvc.feed.model import ServingModel
from recsvc.store.fresh import FreshStore

FRESH_REFRESH_SECONDS = 2.0
# Videos re-solved per refresh at most (the rest wait for the next): one refresh stays short.
MAX_SOLVED_PER_REFRESH = 200


class FreshLearner:
    """The collaborative vectors of the current model's fresh videos, kept up to date."""

    def __init__(self, min_viewers: int = 3, interval: float = FRESH_REFRESH_SECONDS) -> None:
        self.min_viewers = min_viewers
        self.interval = interval
        self.learned: dict[str, Learned] = {}
        self._events_seen: dict[str, int] = {}  # video -> recorded events when last solved
        self._solved_at: dict[str, float] = {}  # video -> when it was last read and solved
        self.model_key: tuple[str, int | None] | None = None  # whose vectors `learned` holds
        self.revision = 0  # grows whenever `learned` changes
        self._refreshed = float("-inf")

    def due(self, now_monotonic: float) -> bool:
        return now_monotonic - self._refreshed >= self.interval

    async def refresh(self, store: FreshStore, model: ServingModel, fresh: FreshVideos) -> None:
        """Read what is new for `fresh` (the model's fresh table) and solve again where it
        changed; `revision` grows when a vector did."""
        self._refreshed = time.monotonic()
        key = model.key
        if key != self.model_key:  # another model: other user vectors, another item space
            self.model_key, self.learned, self._events_seen = key, {}, {}
            self._solved_at = {}
            self.revision += 1
        if model.generation is None or model.user_gram is None or not len(fresh):
            return
        # How many events each video holds (one HLEN each); only those whose count moved are
        # read whole, the longest waiting first, at most MAX_SOLVED_PER_REFRESH at a time.
        sizes = await store.fresh_view_counts(list(fresh.ids))
        moved = [v for v, n in sizes.items() if n and n != self._events_seen.get(v)]
        moved.sort(key=lambda v: self._solved_at.get(v, float("-inf")))
        changed = moved[:MAX_SOLVED_PER_REFRESH]
        if not changed:
            return
        views = await store.fresh_views(changed)
        confidences = await asyncio.to_thread(
            lambda: {v: _confidences(views[v].values(), model) for v in changed}
        )
        users = sorted({u for per_user in confidences.values() for u in per_user})
        packed = await store.user_vectors(model.generation, users)
        solved = await asyncio.to_thread(self._solve, model, fresh, confidences, packed)
        now = time.monotonic()
        for video in changed:
            self._events_seen[video] = len(views[video])
            self._solved_at[video] = now
        if solved:
            self.learned.update(solved)
            self.revision += 1

    def _solve(
        self,
        model: ServingModel,
        fresh: FreshVideos,
        confidences: Mapping[str, Mapping[str, float]],
        packed: Mapping[str, bytes],
    ) -> dict[str, Learned]:
        dimension = model.ranking.manifest.dimension
        user_vectors = {}
        for user, raw in packed.items():
            try:
                user_vectors[user] = vectors.decode(raw, dimension)
            except ValueError:  # a vector of another model's dimension: not a viewer here
                continue
        assert model.user_gram is not None
        solved = {}
        for video, per_user in confidences.items():
            viewers = [u for u in per_user if u in user_vectors]
            if len(viewers) < self.min_viewers:
                continue
            rows = np.stack([user_vectors[u] for u in viewers])
            values = np.array([per_user[u] for u in viewers])
            prior = fresh.metadata[fresh.position[video]]
            vector = closed_form(
                rows,
                model.user_gram,
                values,
                model.ranking.manifest.params,
                model.fresh_regularization,
                prior,
            )
            if np.isfinite(vector).all():
                solved[video] = Learned(vector, len(viewers))
        return solved


def _confidences(events: object, model: ServingModel) -> dict[str, float]:
    """Each user's summed confidence from recorded `user|action|ratio` values, as the trainer
    and fold-in weigh them (the model's action weights, a view times its capped ratio)."""
    per_user: dict[str, float] = defaultdict(float)
    for value in events:  # type: ignore[attr-defined]
        user, _, rest = str(value).rpartition("|")
        user, _, action = user.rpartition("|")
        weight = model.weights.get(action, 0.0)
        if action == "view" and rest:
            try:
                weight *= min(float(rest), model.watch_ratio_cap)
            except ValueError:
                continue
        if user and weight > 0:
            per_user[user] += weight
    return dict(per_user)
