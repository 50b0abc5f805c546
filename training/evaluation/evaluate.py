"""Offline evaluation: rank held-out interactions with a model, the popularity baseline and,
on a synthetic world, the oracle that knows the planted truth.

Videos are ranked with every item the user had in training excluded, and every held-out
video interaction is relevant. Products are scored separately: the product hit rate is the
share of held-out purchases found among the user's top `product_k` product candidates (the
products the service would consider attaching), products the user had in training excluded
(as for videos: a held-out pair is never a training pair).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from training.data.matrix import Interactions, ItemIndex
from training.evaluation.metrics import (
    RankingMetrics,
    hit_rate,
    per_user_hits,
    per_user_ranking,
    ranking_metrics,
    top_k,
)
from training.models.factors import Factors
from training.models.trending import blend


class Scorer(Protocol):
    """Anything that scores every video and product of an index for some users."""

    name: str

    def video_scores(self, users: np.ndarray) -> np.ndarray: ...

    def product_scores(self, users: np.ndarray) -> np.ndarray: ...


@dataclass
class FactorScorer:
    """Dot products of the learnt user and item factors; with a trending prior over the
    videos, video scores are blended with it at the fit's `trending_weight`, as served."""

    factors: Factors
    index: ItemIndex
    name: str = "model"
    trending: np.ndarray | None = None  # [videos], training.models.trending.trending_prior

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        scores = self.factors.scores(users, self.index.videos)
        weight = self.factors.params.trending_weight
        if self.trending is None or weight == 0:
            return scores
        return blend(scores, self.trending, weight)

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return self.factors.scores(users, self.index.products)


@dataclass
class PopularityScorer:
    """Videos by how many users interacted with them; products by how often they were bought."""

    train: Interactions
    name: str = "popularity"

    def __post_init__(self) -> None:
        index = self.train.index
        users_per_item = np.diff(self.train.confidence.tocsc().indptr).astype(np.float32)
        bought = np.asarray(self.train.purchases.sum(axis=0)).ravel().astype(np.float32)
        self._videos = users_per_item[index.videos]
        # products never bought are still ordered, by interactions, after every bought one
        products = users_per_item[index.products]
        self._products = bought[index.products] * (products.max(initial=0) + 1) + products

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._videos, (len(users), len(self._videos)))

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._products, (len(users), len(self._products)))


@dataclass
class TrendingScorer:
    """Videos by a trending prior (users in the last hours of the training data), ties broken
    by all-time users; products as PopularityScorer. The baseline a model of a time-ordered
    log must beat, besides popularity."""

    prior: np.ndarray  # [videos], training.models.trending.trending_prior
    train: Interactions
    name: str = "trending_24h"

    def __post_init__(self) -> None:
        popularity = PopularityScorer(self.train)
        one = np.zeros(1, dtype=np.int64)
        ever = popularity.video_scores(one)[0]
        order = np.lexsort((ever, self.prior))  # by prior, then all-time users
        self._videos = np.empty(len(order), dtype=np.float32)
        self._videos[order] = np.arange(len(order), dtype=np.float32)
        self._products = popularity.product_scores(one)[0]

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._videos, (len(users), len(self._videos)))

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._products, (len(users), len(self._products)))


class Truth(Protocol):
    """What the oracle needs of a synthetic world's ground truth."""

    @property
    def user_ids(self) -> np.ndarray: ...

    @property
    def video_ids(self) -> np.ndarray: ...

    @property
    def product_ids(self) -> np.ndarray: ...

    def video_scores(self, user_rows: np.ndarray) -> np.ndarray: ...

    def product_scores(self, user_rows: np.ndarray) -> np.ndarray: ...


def _lookup(labels: np.ndarray, wanted: np.ndarray, what: str) -> np.ndarray:
    """Positions of `wanted` ids in `labels`; an id the truth does not know is an error."""
    order = np.argsort(labels)
    found = np.searchsorted(labels, wanted, sorter=order)
    found = np.minimum(found, len(labels) - 1)
    positions = order[found]
    missing = labels[positions] != wanted
    if missing.any():
        raise ValueError(f"the ground truth has no {what} {wanted[missing][0]!r}")
    return positions


@dataclass
class OracleScorer:
    """The synthetic world's own propensities: the best any model could do."""

    truth: Truth
    index: ItemIndex
    name: str = "oracle"

    def __post_init__(self) -> None:
        self._users = _lookup(self.truth.user_ids, self.index.user_ids, "user")
        self._videos = _lookup(self.truth.video_ids, self.index.video_ids, "video")
        self._products = _lookup(self.truth.product_ids, self.index.product_ids, "product")

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        return self.truth.video_scores(self._users[users])[:, self._videos]

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return self.truth.product_scores(self._users[users])[:, self._products]


@dataclass(frozen=True)
class EvalSpec:
    k: int = 10
    product_k: int = 5
    max_users: int | None = 20_000  # evaluate a seeded sample of this many users at most
    seed: int = 42
    # users scored at once: a batch's score rows should stay in cache (256 users × 6,361
    # KuaiRand videos took half the time per user of 2,048)
    batch: int = 256


@dataclass
class ScorerReport:
    name: str
    videos: RankingMetrics
    product_hit_rate: float | None
    product_pairs: int
    # Per user, for intervals and paired comparisons (training.evaluation.intervals): video
    # NDCG of each user with a held-out video, and each buyer's pairs found and pairs, in the
    # evaluation set's user order (the same users for every scorer of one set).
    per_user: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    product_hits: np.ndarray | None = field(default=None, repr=False, compare=False)
    product_pairs_per_user: np.ndarray | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.videos.as_dict(),
            "product_hit_rate": self.product_hit_rate,
            "product_pairs": self.product_pairs,
        }


@dataclass
class EvaluationSet:
    """Who is evaluated and against what."""

    train: Interactions
    test: Interactions
    users: np.ndarray  # rows of the index
    cold_users: int  # held-out users with no training interaction (not evaluated)
    retired: np.ndarray  # [items] bool: never served, so never ranked and never relevant


def evaluation_set(
    train: Interactions,
    test: Interactions,
    spec: EvalSpec,
    retired: np.ndarray | None = None,
) -> EvaluationSet:
    """Users with a held-out interaction and at least one training interaction (sampled).

    Retired items (a bool mask over the items) are dropped from the held-out part: the service
    never serves them, so no scorer may rank them.
    """
    if retired is None:
        retired = np.zeros(train.index.n_items, dtype=bool)
    elif retired.any():
        test = test.keep_pairs(~retired[test.confidence.tocoo().col])
    has_test = np.diff(test.confidence.indptr) > 0
    has_train = np.diff(train.confidence.indptr) > 0
    users = np.flatnonzero(has_test & has_train)
    if spec.max_users is not None and len(users) > spec.max_users:
        rng = np.random.default_rng(spec.seed)
        users = np.sort(rng.choice(users, size=spec.max_users, replace=False))
    return EvaluationSet(train, test, users, int((has_test & ~has_train).sum()), retired)


def _batches(users: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(users), size):
        yield users[start : start + size]


def _ranked(
    score: Callable[[np.ndarray], np.ndarray],
    users: np.ndarray,
    exclude: sp.csr_matrix,
    retired: np.ndarray,
    k: int,
    batch: int,
) -> np.ndarray:
    def available(rows: np.ndarray) -> np.ndarray:
        return np.where(retired, -np.inf, score(rows))

    tops = [top_k(available(rows), k, exclude[rows]) for rows in _batches(users, batch)]
    return np.vstack(tops) if tops else np.empty((0, k), dtype=np.int64)


def ranked_videos(scorer: Scorer, data: EvaluationSet, spec: EvalSpec) -> np.ndarray:
    """Top-k video columns per evaluated user: training videos and retired ones excluded."""
    videos = data.train.index.videos
    seen = data.train.confidence[:, videos]
    return _ranked(scorer.video_scores, data.users, seen, data.retired[videos], spec.k, spec.batch)


def ranked_products(
    scorer: Scorer, data: EvaluationSet, users: np.ndarray, spec: EvalSpec
) -> np.ndarray:
    """Top product candidates (product-block columns) of some users, same exclusions."""
    products = data.train.index.products
    seen = data.train.confidence[:, products]
    return _ranked(
        scorer.product_scores, users, seen, data.retired[products], spec.product_k, spec.batch
    )


def evaluate(scorer: Scorer, data: EvaluationSet, spec: EvalSpec) -> ScorerReport:
    """Video ranking metrics and product hit rate of one scorer."""
    index = data.train.index
    users = data.users
    relevant = data.test.confidence[users][:, index.videos]
    relevant.sort_indices()
    live_videos = int((~data.retired[index.videos]).sum())
    top_videos = ranked_videos(scorer, data, spec)
    videos = ranking_metrics(top_videos, relevant, spec.k, live_videos)
    per_user = per_user_ranking(top_videos, relevant, spec.k)

    bought_test = data.test.purchases[users][:, index.products]
    if index.n_items == index.n_videos or bought_test.nnz == 0:
        return ScorerReport(scorer.name, videos, None, 0, per_user)
    bought_test.sort_indices()
    buyers = np.flatnonzero(np.diff(bought_test.indptr) > 0)
    top_products = ranked_products(scorer, data, users[buyers], spec)
    rate, pairs = hit_rate(top_products, bought_test[buyers])
    hits, pairs_per_user = per_user_hits(top_products, bought_test[buyers])
    return ScorerReport(scorer.name, videos, rate, pairs, per_user, hits, pairs_per_user)
