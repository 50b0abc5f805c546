"""A model as the feed uses it: the verified ranking graph and what the fallbacks need.

Loaded from a model directory (files only: the snapshot watcher decides when, and which).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recsvc.contract.manifest import (
    DEFAULT_CONFIDENCE_WEIGHTS,
    DEFAULT_WATCH_RATIO_CAP,
    PROJECTION_FILE,
    ArtifactError,
    load_array,
)
from recsvc.feed.ranker import RankingModel


@dataclass(frozen=True)
class ServingModel:
    """A verified model directory plus what the fallbacks need, and its Redis generation
    (None when it was loaded from disk without a pointer: then there are no user vectors)."""

    ranking: RankingModel
    generation: int | None
    video_popularity: np.ndarray  # [V] log1p(users per video)
    segment_popularity: dict[str, np.ndarray]  # segment -> [V]
    item_position: dict[str, int]  # joint index: videos then products
    weights: dict[str, float]
    watch_ratio_cap: float = DEFAULT_WATCH_RATIO_CAP
    # items × dimension, for families whose fold-in is the confidence row times it (EASE)
    projection: np.ndarray | None = None

    @property
    def version(self) -> str:
        return self.ranking.manifest.version

    @classmethod
    def load(cls, directory: Path, generation: int | None) -> ServingModel:
        ranking = RankingModel.load(directory)
        manifest = ranking.manifest
        popularity = _optional(directory, "video_popularity.npy", ranking.n_videos)
        segments: dict[str, np.ndarray] = {}
        if "segment_ids.npy" in manifest.files:
            ids = load_array(directory / "segment_ids.npy")
            table = load_array(directory / "segment_video_popularity.npy")
            if table.shape != (len(ids), ranking.n_videos):
                raise ArtifactError(
                    f"{directory / 'segment_video_popularity.npy'}: shape {table.shape}, "
                    f"expected {(len(ids), ranking.n_videos)}"
                )
            rows = np.log1p(table).astype(np.float32)
            segments = {str(s): row for s, row in zip(ids, rows, strict=True)}
        items = [*manifest.video_ids, *manifest.product_ids]
        projection = None
        if PROJECTION_FILE in manifest.files:
            projection = load_array(directory / PROJECTION_FILE).astype(np.float32)
            expected = (len(items), manifest.dimension)
            if projection.shape != expected:
                raise ArtifactError(
                    f"{directory / PROJECTION_FILE}: shape {projection.shape}, expected {expected}"
                )
        return cls(
            ranking=ranking,
            generation=generation,
            video_popularity=np.log1p(popularity).astype(np.float32),
            segment_popularity=segments,
            item_position={item: i for i, item in enumerate(items)},
            weights={**DEFAULT_CONFIDENCE_WEIGHTS, **manifest.params.get("confidence_weights", {})},
            watch_ratio_cap=float(manifest.params.get("watch_ratio_cap", DEFAULT_WATCH_RATIO_CAP)),
            projection=projection,
        )


def _optional(directory: Path, name: str, size: int) -> np.ndarray:
    path = directory / name
    if not path.exists():
        return np.zeros(size, dtype=np.float32)
    array = load_array(path)
    if array.shape != (size,):
        raise ArtifactError(f"{path}: shape {array.shape}, expected {(size,)}")
    return array.astype(np.float32)
