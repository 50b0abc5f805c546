"""What places a video the model has not seen: a map from its metadata to the item space, and
how much a new video's first viewers should move it from there.

The map is ridge regression from a video's features (recsvc.contract.metadata: topics,
creator, series) to its factors, over the videos the model knows:

    v ≈ μ + Σ_f W_f,    W = (XᵀX + λI)⁻¹ Xᵀ (Y − μ)

with X the videos' 0/1 features, Y their factors and μ their mean. λ is chosen on a fifth of
the videos held out (the squared error of their predicted factors), then the map is fitted on
all. Exported beside the model (recsvc.contract.manifest.METADATA_MAP_FILE), it is what a
video published this morning is ranked by before anyone has watched it.

Once users watch it, the service solves the item side of ALS over their vectors with the
metadata vector as the prior (recsvc.feed.foldin.closed_form with `prior`): the prior's
weight says how many viewers' worth of evidence the metadata counts for. It is chosen here,
on known videos: each gets a few of its users (as a new video has a few viewers), and the
weight whose estimate comes nearest its fitted factors over them wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recsvc.contract.catalog import VideoRecord
from recsvc.contract.metadata import video_features
from recsvc.feed.foldin import closed_form
from recsvc.feed.fresh import MetadataMap as Placer

# Features kept in the map, the most common first: the solve is cubic in their number.
MAX_FEATURES = 2000
MAP_L2_GRID = (0.1, 1.0, 10.0, 100.0)
# Below this many videos with features the map is fitted with λ = 1 without a held-out part.
MIN_VALIDATED = 10
# The prior weights tried, in units of the users' Gram matrix's mean eigenvalue (what all
# the users' implicit zeros weigh in the solve), and the videos and viewers each is tried on.
PRIOR_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
PRIOR_VIDEOS = 200
PRIOR_VIEWERS = (1, 3, 10)


@dataclass(frozen=True)
class MetadataMap:
    features: np.ndarray  # [F] str, in row order
    weights: np.ndarray  # [1 + F, d] float32: row 0 the average video, 1 + f feature f
    l2: float

    def placer(self) -> Placer:
        """The map as the service applies it (recsvc.feed.fresh.MetadataMap)."""
        return Placer({str(f): i + 1 for i, f in enumerate(self.features)}, self.weights)


def fit_metadata_map(
    video_ids: Sequence[str],
    records: Mapping[str, VideoRecord],
    video_factors: np.ndarray,
    seed: int = 0,
) -> MetadataMap:
    """The map from features to factors over the model's videos (records may miss some)."""
    per_video = [video_features(records.get(str(v))) for v in video_ids]
    counts: dict[str, int] = {}
    for features in per_video:
        for feature in features:
            counts[feature] = counts.get(feature, 0) + 1
    vocabulary = sorted(counts, key=lambda f: (-counts[f], f))[:MAX_FEATURES]
    y = video_factors.astype(np.float64)
    mean = y.mean(axis=0) if len(y) else np.zeros(video_factors.shape[1])
    if not vocabulary:
        return MetadataMap(np.array([], dtype=str), mean[None, :].astype(np.float32), 0.0)
    x = _design(per_video, vocabulary)
    centred = y - mean
    with_features = np.flatnonzero(np.asarray(x.sum(axis=1)).ravel() > 0)
    l2 = _chosen_l2(x, centred, with_features, seed)
    weights = _ridge(x, centred, l2)
    table = np.vstack([mean[None, :], weights]).astype(np.float32)
    return MetadataMap(np.array(vocabulary, dtype=str), table, l2)


def _design(per_video: Sequence[Sequence[str]], vocabulary: Sequence[str]) -> sp.csr_matrix:
    column = {f: i for i, f in enumerate(vocabulary)}
    rows, cols = [], []
    for r, features in enumerate(per_video):
        for feature in features:
            if feature in column:
                rows.append(r)
                cols.append(column[feature])
    data = np.ones(len(rows))
    return sp.csr_matrix((data, (rows, cols)), shape=(len(per_video), len(vocabulary)))


def _ridge(x: sp.csr_matrix, y: np.ndarray, l2: float) -> np.ndarray:
    gram = (x.T @ x).toarray() + l2 * np.eye(x.shape[1])
    return np.asarray(np.linalg.solve(gram, np.asarray(x.T @ y)))


def _chosen_l2(x: sp.csr_matrix, y: np.ndarray, rows: np.ndarray, seed: int) -> float:
    """λ with the least squared error on a fifth of the videos with features, held out."""
    if len(rows) < MIN_VALIDATED:
        return 1.0
    shuffled = np.random.default_rng(seed).permutation(rows)
    held, kept = shuffled[: len(rows) // 5], shuffled[len(rows) // 5 :]
    errors = []
    for l2 in MAP_L2_GRID:
        predicted = x[held] @ _ridge(x[kept], y[kept], l2)
        errors.append(float(((predicted - y[held]) ** 2).sum()))
    return MAP_L2_GRID[int(np.argmin(errors))]


def cross_fitted(
    video_ids: Sequence[str],
    records: Mapping[str, VideoRecord],
    video_factors: np.ndarray,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Each video's metadata vector from a map fitted without it [V, d] (`folds` folds):
    what the map says of a video it has not seen, as of one published after training. The
    prior weight is chosen on these; in-sample vectors would flatter the metadata (a creator
    with one video would recall that video's factors exactly)."""
    order = np.random.default_rng(seed).permutation(len(video_ids))
    out = np.empty(video_factors.shape, dtype=np.float32)
    for fold in range(min(folds, len(video_ids))):
        held = order[fold::folds]
        kept = np.setdiff1d(order, held)
        mapped = fit_metadata_map([video_ids[i] for i in kept], records, video_factors[kept], seed)
        placer = mapped.placer()
        out[held] = [placer.vector(records.get(str(video_ids[i]))) for i in held]
    return out


def prior_weight(
    confidence: sp.csr_matrix,
    user_factors: np.ndarray,
    video_factors: np.ndarray,
    prior: np.ndarray,
    params: Mapping[str, object],
    seed: int = 0,
) -> float:
    """The weight of the metadata vector in the item-side closed form over a new video's
    first viewers: over up to PRIOR_VIDEOS known videos, each given 1, 3 and 10 of its users,
    the weight whose estimates come nearest their fitted factors (squared error).

    `confidence` is users × videos, the summed event confidences the model was trained on;
    `prior` the metadata map's vector of each video [V, d], fitted without it
    (`cross_fitted`)."""
    columns = confidence.tocsc()
    watched = np.flatnonzero(np.diff(columns.indptr) >= 2)
    if len(watched) == 0 or len(user_factors) == 0:
        return 1.0
    rng = np.random.default_rng(seed)
    sample = rng.choice(watched, size=min(PRIOR_VIDEOS, len(watched)), replace=False)
    users = user_factors.astype(np.float64)
    gram = users.T @ users
    scale = max(float(np.trace(gram)) / len(gram), 1e-6)
    grid = [scale * g for g in PRIOR_GRID]
    errors = np.zeros(len(grid))
    for video in sample:
        start, end = columns.indptr[video], columns.indptr[video + 1]
        viewers, values = columns.indices[start:end], columns.data[start:end]
        target = video_factors[video].astype(np.float64)
        for n in PRIOR_VIEWERS:
            chosen = rng.permutation(len(viewers))[: min(n, len(viewers))]
            for g, weight in enumerate(grid):
                estimate = closed_form(
                    users[viewers[chosen]], gram, values[chosen], params, weight, prior[video]
                )
                errors[g] += float(((estimate - target) ** 2).sum())
    return grid[int(np.argmin(errors))]
