"""A model as the feed uses it: the verified ranking graph and what the fallbacks need.

Loaded from a model directory (files only: the snapshot watcher decides when, and which).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from recsvc.contract.catalog import Catalog
from recsvc.contract.manifest import (
    DEFAULT_ATTACH_WEIGHTS,
    DEFAULT_CONFIDENCE_WEIGHTS,
    DEFAULT_WATCH_RATIO_CAP,
    PROJECTION_FILE,
    TRENDING_FILE,
    USER_GRAM_FILE,
    ArtifactError,
    Manifest,
    load_array,
)
from recsvc.feed.fresh import FreshVideos, Learned, MetadataMap
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
    # the video factors' covariance [d, d] (a user's score spread over the videos is
    # sqrt(uᵀ C u)), and the trending prior times its weight [V] (None: the model has none)
    video_covariance: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    trending: np.ndarray | None = None
    # the prior's window in hours (None: no live prior), the weighted prior as exported (what
    # `trending` falls back to without live counts), and the revision of the live counts
    # `trending` was computed from (recsvc.service.trends; -1: none yet)
    trending_hours: float | None = None
    trending_weight: float = 0.0
    exported_trending: np.ndarray | None = None
    trend_revision: int = -1
    trending_live: bool = False  # `trending` comes from the live counts, not the export
    # (a, b) of the attach score, as the trainer chose them (params.attach_weights); a model
    # without them gets (1, 1), what every model before them was served with
    attach_weights: tuple[float, float] = DEFAULT_ATTACH_WEIGHTS
    # Videos published since training (recsvc.feed.fresh): where their metadata places them,
    # the users' Gram matrix XᵀX (None: the model has none, and new videos keep their metadata
    # vector), and the weight of the metadata vector as the prior of their item-side solve
    placer: MetadataMap | None = None
    user_gram: np.ndarray | None = None
    fresh_regularization: float = 1.0
    # a published vector's blend with the fold-in of the user's recent events (0: off), as
    # the trainer chose it on a temporal split (training.models.today; params.today.weight)
    today_weight: float = 0.0

    @property
    def version(self) -> str:
        return self.ranking.manifest.version

    @cached_property
    def popularity_spread(self) -> float:
        """The spread (standard deviation) of the video popularity over the videos: the unit
        of a campaign's boost for a row ranked by popularity (recsvc.feed.compute.boost_unit)."""
        finite = self.video_popularity[np.isfinite(self.video_popularity)]
        return float(finite.std()) if len(finite) else 0.0

    @cached_property
    def attach_spread(self) -> float:
        """The spread (standard deviation) of v·p over the model's videos and products: the
        unit of a campaign's boost of a product for a row whose attach score has no user
        term (recsvc.feed.compute.product_unit). Over at most 2,000 videos, evenly spaced."""
        n_videos = self.ranking.n_videos
        factors = self.ranking.item_factors
        if n_videos == 0 or self.ranking.n_products == 0:
            return 0.0
        step = max(1, n_videos // 2000)
        affinity = factors[:n_videos:step] @ factors[n_videos:].T
        return float(np.std(affinity))

    @property
    def key(self) -> tuple[str, int | None]:
        """Which model and user vectors: its version and generation."""
        return self.version, self.generation

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
        trending, weight, hours = _trending(directory, ranking)
        covariance = video_covariance(ranking.item_factors[: ranking.n_videos])
        return cls(
            ranking=ranking,
            generation=generation,
            video_popularity=np.log1p(popularity).astype(np.float32),
            segment_popularity=segments,
            item_position={item: i for i, item in enumerate(items)},
            weights={**DEFAULT_CONFIDENCE_WEIGHTS, **manifest.params.get("confidence_weights", {})},
            watch_ratio_cap=float(manifest.params.get("watch_ratio_cap", DEFAULT_WATCH_RATIO_CAP)),
            projection=projection,
            trending=trending,
            video_covariance=covariance,
            trending_hours=hours,
            trending_weight=weight,
            exported_trending=trending,
            attach_weights=_attach_weights(directory, manifest.params),
            placer=MetadataMap.load(directory, manifest, ranking.item_factors[: ranking.n_videos]),
            user_gram=_user_gram(directory, manifest),
            fresh_regularization=_fresh_regularization(directory, manifest.params),
            today_weight=_today_weight(directory, manifest.params),
        )

    def fresh_videos(self, catalog: Catalog, learned: Mapping[str, Learned]) -> FreshVideos:
        """The catalogue's live videos this model does not know, placed in its item space."""
        placer = self.placer or MetadataMap({}, np.zeros((1, self.ranking.manifest.dimension)))
        n_videos = self.ranking.n_videos
        known = {v: i for v, i in self.item_position.items() if i < n_videos}
        products = self.ranking.item_factors[n_videos:]
        return FreshVideos.build(known, placer, products, catalog, learned)

    def with_live_trending(self, counts: Mapping[str, int], revision: int) -> ServingModel:
        """This model with its trending prior computed from live counts (video id -> its
        views and clicks in the model's window) as the trainer computed it from events:
        weight · log1p(count) / its maximum over the model's videos. As exported where none
        of the model's videos has a count (no events yet, or Redis lost them)."""
        if self.exported_trending is None or self.trending_hours is None:
            return replace(self, trend_revision=revision)
        ids = self.ranking.manifest.video_ids
        counts_array = np.fromiter((counts.get(v, 0) for v in ids), np.float64, len(ids))
        logged = np.log1p(counts_array)
        top = logged.max(initial=0.0)
        if top <= 0:
            exported = self.exported_trending
            return replace(self, trending=exported, trend_revision=revision, trending_live=False)
        live = (self.trending_weight * logged / top).astype(np.float32)
        return replace(self, trending=live, trend_revision=revision, trending_live=True)

    def trending_bias(
        self, users: np.ndarray, live: bool = True, spread: np.ndarray | None = None
    ) -> np.ndarray | None:
        """w · σ_u · prior for each user row [B, d] -> [B, V] (the prior from the live counts,
        or with `live` False as exported); None without a prior. `spread`: the rows' σ_u
        where the caller has them (`score_spread`)."""
        prior = self.trending if live else self.exported_trending
        if prior is None:
            return None
        if spread is None:
            spread = score_spread(users, self.video_covariance)
        return np.asarray(spread[:, None] * prior[None, :], dtype=np.float32)


def video_covariance(videos: np.ndarray) -> np.ndarray:
    """The population covariance [d, d] of the video factors [V, d]."""
    centred = videos.astype(np.float64) - videos.astype(np.float64).mean(axis=0)
    return np.asarray(centred.T @ centred / max(len(videos), 1), dtype=np.float32)


def score_spread(users: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Each user row's standard deviation of u · v over the videos: sqrt(uᵀ C u) [B]."""
    quadratic = np.einsum("bd,de,be->b", users, covariance, users)
    return np.asarray(np.sqrt(np.maximum(quadratic, 0)), dtype=np.float32)


def _attach_weights(directory: Path, params: dict[str, Any]) -> tuple[float, float]:
    weights = params.get("attach_weights", DEFAULT_ATTACH_WEIGHTS)
    valid = (
        isinstance(weights, (list, tuple))
        and len(weights) == 2
        and all(isinstance(w, (int, float)) and np.isfinite(w) and w >= 0 for w in weights)
        and sum(weights) > 0
    )
    if not valid:
        raise ArtifactError(
            f"{directory / 'manifest.json'}: params.attach_weights must be two numbers >= 0, "
            f"not both 0, not {weights!r}"
        )
    return float(weights[0]), float(weights[1])


def _trending(
    directory: Path, ranking: RankingModel
) -> tuple[np.ndarray | None, float, float | None]:
    """The weighted prior, its weight and its window in hours (None where the manifest gives
    none: the prior is then served as exported only)."""
    manifest = ranking.manifest
    if TRENDING_FILE not in manifest.files:
        if manifest.params.get("trending"):
            raise ArtifactError(
                f"{directory / 'manifest.json'}: params.trending is set and {TRENDING_FILE} is "
                "not among the files"
            )
        return None, 0.0, None
    settings = manifest.params.get("trending")
    weight = settings.get("weight") if isinstance(settings, dict) else None
    if not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0:
        raise ArtifactError(
            f"{directory / 'manifest.json'}: params.trending.weight must be a number >= 0 "
            f"when {TRENDING_FILE} is present, not {weight!r}"
        )
    prior = load_array(directory / TRENDING_FILE)
    in_range = np.isfinite(prior).all() and prior.min(initial=0) >= 0 and prior.max(initial=0) <= 1
    if prior.shape != (ranking.n_videos,) or not in_range or weight > 1e6:
        raise ArtifactError(
            f"{directory / TRENDING_FILE}: shape {prior.shape} (expected {(ranking.n_videos,)}), "
            f"values outside [0, 1] or a weight {weight!r} beyond 1e6"
        )
    hours = settings.get("hours") if isinstance(settings, dict) else None
    if hours is not None and (
        not isinstance(hours, (int, float)) or not np.isfinite(hours) or not 0 < hours <= 168
    ):
        raise ArtifactError(
            f"{directory / 'manifest.json'}: params.trending.hours must be a number in "
            f"(0, 168], not {hours!r}"
        )
    window = None if hours is None else float(hours)
    return (float(weight) * prior).astype(np.float32), float(weight), window


def _user_gram(directory: Path, manifest: Manifest) -> np.ndarray | None:
    if USER_GRAM_FILE not in manifest.files:
        return None
    gram = load_array(directory / USER_GRAM_FILE).astype(np.float64)
    expected = (manifest.dimension, manifest.dimension)
    if gram.shape != expected or not np.isfinite(gram).all():
        raise ArtifactError(
            f"{directory / USER_GRAM_FILE}: shape {gram.shape}, expected {expected}, finite"
        )
    return gram


def _fresh_regularization(directory: Path, params: dict[str, Any]) -> float:
    """The prior weight of a new video's item-side solve: as the trainer chose it, else the
    fit's own regularization (what ALS used on both sides), else 1."""
    fresh = params.get("fresh")
    value = fresh.get("regularization") if isinstance(fresh, dict) else None
    if value is None:
        value = params.get("regularization", 1.0)
    if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
        raise ArtifactError(
            f"{directory / 'manifest.json'}: params.fresh.regularization (or the fit's "
            f"regularization) must be a number > 0, not {value!r}"
        )
    return float(value)


def _today_weight(directory: Path, params: dict[str, Any]) -> float:
    today = params.get("today")
    weight = today.get("weight", 0.0) if isinstance(today, dict) else 0.0
    if not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise ArtifactError(
            f"{directory / 'manifest.json'}: params.today.weight must be a number in [0, 1], "
            f"not {weight!r}"
        )
    return float(weight)


def _optional(directory: Path, name: str, size: int) -> np.ndarray:
    path = directory / name
    if not path.exists():
        return np.zeros(size, dtype=np.float32)
    array = load_array(path)
    if array.shape != (size,):
        raise ArtifactError(f"{path}: shape {array.shape}, expected {(size,)}")
    return array.astype(np.float32)
