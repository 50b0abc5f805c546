"""The live model as a scorer of a new dataset, so that the nightly job can evaluate it on the
same holdout as the model it trains, in the same run.

The live model is an exported model directory (models/<version>/). Its ids are matched to the
new dataset's index: a user it has a vector for is scored by that vector; a user it does not
know gets its video popularity, as the service would serve them (without fold-in); a video or
product it does not know scores −inf, since it could never recommend one. A model exported
with a trending prior adds it as the service does (recsvc.feed.model), over its own videos.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsvc.contract.manifest import TRENDING_FILE, load_array, read_manifest
from recsvc.feed.model import score_spread, video_covariance
from training.data.matrix import ItemIndex

UNKNOWN = -1


def positions(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each wanted id in `known`, or UNKNOWN."""
    known = np.asarray(known, dtype=str)
    if len(known) == 0:
        return np.full(len(wanted), UNKNOWN)
    order = np.argsort(known)
    found = np.minimum(np.searchsorted(known, wanted, sorter=order), len(known) - 1)
    result = order[found]
    return np.where(known[result] == np.asarray(wanted, dtype=str), result, UNKNOWN)


@dataclass
class LiveModelScorer:
    directory: Path
    index: ItemIndex
    name: str = "live"
    _user_vectors: np.ndarray = field(init=False, repr=False)
    _has_vector: np.ndarray = field(init=False, repr=False)
    _videos: np.ndarray = field(init=False, repr=False)
    _products: np.ndarray = field(init=False, repr=False)
    _popularity: np.ndarray = field(init=False, repr=False)
    _trending: np.ndarray | None = field(init=False, repr=False, default=None)
    _covariance: np.ndarray | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        manifest = read_manifest(self.directory)
        items = load_array(self.directory / "item_factors.npy").astype(np.float32)
        n_videos = len(manifest.video_ids)
        users = positions(load_array(self.directory / "user_ids.npy"), self.index.user_ids)
        factors = load_array(self.directory / "user_factors.npy").astype(np.float32)
        self._has_vector = users != UNKNOWN
        self._user_vectors = np.zeros((len(users), items.shape[1]), dtype=np.float32)
        self._user_vectors[self._has_vector] = factors[users[self._has_vector]]
        self._has_vector &= self._user_vectors.any(axis=1)
        video_pos = positions(np.array(manifest.video_ids), self.index.video_ids)
        product_pos = positions(np.array(manifest.product_ids), self.index.product_ids)
        self._videos = _rows(items[:n_videos], video_pos)
        self._products = _rows(items[n_videos:], product_pos)
        popularity = self.directory / "video_popularity.npy"
        live_popularity = (
            load_array(popularity) if popularity.exists() else np.zeros(n_videos, np.float32)
        )
        self._popularity = np.where(
            video_pos != UNKNOWN, live_popularity[np.maximum(video_pos, 0)], -np.inf
        ).astype(np.float32)
        if TRENDING_FILE in manifest.files:
            weight = float(manifest.params["trending"]["weight"])
            prior = load_array(self.directory / TRENDING_FILE).astype(np.float32)
            known = video_pos != UNKNOWN
            self._trending = np.where(known, weight * prior[np.maximum(video_pos, 0)], 0)
            self._covariance = video_covariance(items[:n_videos])

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        scores = self._scores(users, self._videos)
        if self._trending is not None and self._covariance is not None:
            spread = score_spread(self._user_vectors[users], self._covariance)
            scores += spread[:, None] * self._trending[None, :]
        cold = ~self._has_vector[users]
        scores[cold] = self._popularity
        return scores

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return self._scores(users, self._products)

    def _scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        known = np.isfinite(items[:, 0])
        scores = np.full((len(users), len(items)), -np.inf, dtype=np.float32)
        scores[:, known] = self._user_vectors[users] @ items[known].T
        return scores


def _rows(items: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Item factors in the new index's order; rows of unknown items are −inf."""
    rows = np.full((len(wanted), items.shape[1]), -np.inf, dtype=np.float32)
    rows[wanted != UNKNOWN] = items[wanted[wanted != UNKNOWN]]
    return rows
