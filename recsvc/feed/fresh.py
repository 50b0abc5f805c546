"""Videos published after the model was trained: a second, small item table scored beside the
ranking graph.

A live catalogue video the model does not know gets a vector at once from its metadata (the
trainer's map, recsvc.contract.metadata and training.models.metadata), and, once users with
published vectors have watched it, the item-side closed form over their vectors with the
metadata vector as its prior (recsvc.service.fresh learns these). Both live in this table,
not in the graph: the graph's video factors are constants of the exported model, and a second
table costs one [B, d] × [d, n] product for n fresh videos, which stays small (the next
nightly model knows them; at most MAX_FRESH are held, the newest first). Re-exporting the
graph, or feeding the item matrix to it as an input, would copy every video's factors for a
change to a few. The scores, the rules (seen, retired, freshness) and the product choice
follow the graph's own formulas (training.models.export), so the two tables' candidates merge
by score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsvc.contract.catalog import Catalog, VideoRecord
from recsvc.contract.domain import ItemStatus
from recsvc.contract.manifest import (
    METADATA_FEATURES_FILE,
    METADATA_MAP_FILE,
    ArtifactError,
    Manifest,
    load_array,
)
from recsvc.contract.metadata import video_features
from recsvc.feed.freshness import Freshness, HalfLifeCache, published_seconds, topic_decay

# The most fresh videos held (the newest by published_at): a catalogue that publishes more
# between two nightly runs ranks the rest from the next model.
MAX_FRESH = 2000


@dataclass(frozen=True)
class MetadataMap:
    """The trainer's map from a video's features to the item space; a model exported without
    one places every new video at its average video."""

    rows: Mapping[str, int]  # feature -> row of weights
    weights: np.ndarray  # [1 + F, d]: row 0 the average video

    @classmethod
    def load(cls, directory: Path, manifest: Manifest, video_factors: np.ndarray) -> MetadataMap:
        if METADATA_MAP_FILE not in manifest.files:
            mean = video_factors.astype(np.float64).mean(axis=0, keepdims=True)
            return cls({}, mean.astype(np.float32))
        weights = load_array(directory / METADATA_MAP_FILE).astype(np.float32)
        features = load_array(directory / METADATA_FEATURES_FILE)
        expected = (len(features) + 1, manifest.dimension)
        if features.ndim != 1 or weights.shape != expected or not np.isfinite(weights).all():
            raise ArtifactError(
                f"{directory / METADATA_MAP_FILE}: shape {weights.shape}, expected {expected} "
                f"(one row per feature of {METADATA_FEATURES_FILE}, and the average), finite"
            )
        return cls({str(f): i + 1 for i, f in enumerate(features)}, weights)

    def vector(self, record: VideoRecord | None) -> np.ndarray:
        rows = [self.rows[f] for f in video_features(record) if f in self.rows]
        vector: np.ndarray = self.weights[0] + self.weights[rows].sum(axis=0)
        return vector


@dataclass(frozen=True)
class Learned:
    """A fresh video's collaborative vector and how many viewers' vectors it was solved from."""

    vector: np.ndarray
    viewers: int


@dataclass(frozen=True)
class FreshVideos:
    """The fresh table of one model under one catalogue revision."""

    ids: tuple[str, ...] = ()
    vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    metadata: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    viewers: tuple[int, ...] = ()  # 0: the metadata vector; else the viewers solved from
    topics: tuple[tuple[str, ...], ...] = ()
    published: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # [n, P] each fresh video's affinity with each product (V · Pᵀ, as in the graph)
    product_affinity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    position: Mapping[str, int] = field(default_factory=dict)
    unplaced: tuple[str, ...] = ()  # still at their metadata vector: exploration's candidates
    _half_lives: HalfLifeCache = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls,
        known: Mapping[str, int],
        placer: MetadataMap,
        products: np.ndarray,
        catalog: Catalog,
        learned: Mapping[str, Learned],
    ) -> FreshVideos:
        """The live catalogue videos not in `known` (the model's), the newest MAX_FRESH, each
        with its learned vector where there is one, else its metadata vector."""
        records = [
            r for v, r in catalog.videos.items() if v not in known and r.status is ItemStatus.LIVE
        ]
        stamps = {r.video_id: published_seconds(r.published_at) for r in records}
        records.sort(key=lambda r: (-np.nan_to_num(stamps[r.video_id], nan=-np.inf), r.video_id))
        records = records[:MAX_FRESH]
        if not records:
            return cls()
        metadata = np.stack([placer.vector(r) for r in records]).astype(np.float32)
        vectors = metadata.copy()
        viewers = []
        for j, record in enumerate(records):
            found = learned.get(record.video_id)
            if found is not None and found.vector.shape == vectors[j].shape:
                vectors[j] = found.vector
            viewers.append(found.viewers if found is not None else 0)
        ids = tuple(r.video_id for r in records)
        return cls(
            ids=ids,
            vectors=vectors,
            metadata=metadata,
            viewers=tuple(viewers),
            topics=tuple(tuple(dict.fromkeys(r.topics)) for r in records),
            published=np.array([stamps[v] for v in ids], dtype=np.float64),
            product_affinity=(vectors @ products.T).astype(np.float32),
            position={v: j for j, v in enumerate(ids)},
            unplaced=tuple(v for v, n in zip(ids, viewers, strict=True) if not n),
        )

    def freshness_decay(self, freshness: Freshness, now: float) -> np.ndarray:
        """Each fresh video's 2^(−age / its half-life) at `now` [n]."""
        return topic_decay(freshness, self.topics, self.published, now, self._half_lives)
