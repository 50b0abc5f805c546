"""Which segment each user is in, and the per-segment popularity a model carries with it.

Production keeps a user's segment in the profile in Redis (`<prefix>:{u:<id>}:profile`, field
`segment`, written by `recsvc profiles load` and `PUT /v1/users/{id}/profile`); a users file
(CSV with `user_id` and `segment`, the columns of a synthetic world's users.csv) can stand in
for it. The table (users per video within each segment) is what the service ranks by for a
user with no vector and no recent events (recsvc.feed.compute: `segment_popularity`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from recsvc.contract.keys import Keys
from recsvc.store.client import SyncClient
from training.data.events import EventDataError
from training.data.matrix import Interactions

CHUNK = 2000  # profiles read per pipeline (one round trip per node on a Cluster)
SEGMENT_FILES = ("segment_ids.npy", "segment_video_popularity.npy")


@dataclass(frozen=True)
class Segments:
    """Users' segments and where they were read from (for the job's report)."""

    of: Mapping[str, str]  # user id -> segment (users without one are absent)
    source: str

    def as_dict(self, user_ids: Sequence[str]) -> dict[str, object]:
        known = [self.of[u] for u in user_ids if u in self.of]
        return {"source": self.source, "users": len(known), "segments": len(set(known))}


def read_users_file(path: Path) -> Segments:
    """The segments of a users CSV (columns user_id and segment; others ignored)."""
    options = pacsv.ConvertOptions(
        column_types={"user_id": pa.string(), "segment": pa.string()},
        include_columns=["user_id", "segment"],
    )
    try:
        users = pacsv.read_csv(path, convert_options=options)
    except (OSError, pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        raise EventDataError(f"{path}: not a users file with user_id and segment: {exc}") from exc
    ids, names = users.column("user_id").to_pylist(), users.column("segment").to_pylist()
    pairs = zip(ids, names, strict=True)
    return Segments({user: segment for user, segment in pairs if user and segment}, str(path))


def read_profiles(client: SyncClient, keys: Keys, user_ids: Sequence[str]) -> Segments:
    """The segments in the Redis profiles of `user_ids` (the users a model is trained on).

    Read by key, not by SCAN: only the trained users matter, and a pipeline of HGETs is
    routed per key, so it works the same on a single Redis and on a Cluster."""
    found: dict[str, str] = {}
    for start in range(0, len(user_ids), CHUNK):
        chunk = user_ids[start : start + CHUNK]
        pipe = client.pipeline(transaction=False)
        for user in chunk:
            pipe.hget(keys.profile(user), "segment")
        for user, segment in zip(chunk, pipe.execute(), strict=True):
            if segment:
                found[user] = segment.decode() if isinstance(segment, bytes) else str(segment)
    return Segments(found, "profiles in Redis")


def segment_popularity(segments: Segments, interactions: Interactions) -> dict[str, np.ndarray]:
    """Users per video within each segment: segment_ids [S] and a [S, V] float32 table, as
    model files; none when no trained user has a segment."""
    index = interactions.index
    labels = np.array([segments.of.get(u, "") for u in index.user_ids.tolist()])
    segment_ids = np.array(sorted(set(labels.tolist()) - {""}))
    if len(segment_ids) == 0:
        return {}
    videos = (interactions.confidence[:, index.videos] > 0).tocsr()
    table = np.zeros((len(segment_ids), index.n_videos), dtype=np.float32)
    for s, segment in enumerate(segment_ids):
        table[s] = np.asarray(videos[labels == segment].sum(axis=0)).ravel()
    return dict(zip(SEGMENT_FILES, (segment_ids, table), strict=True))
