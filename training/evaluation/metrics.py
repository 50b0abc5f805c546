"""Ranking metrics at k, with the definitions of the Microsoft Recommenders benchmark.

For each evaluated user, `hits[u, r]` says whether the item ranked r (0-based) is relevant,
and `n_relevant[u]` counts the user's relevant (held-out) items:

- precision@k = hits in the top k / k (k, not min(k, relevant): implicit's own
  `ranking_metrics_at_k` divides by the smaller one and is not P@k);
- recall@k = hits / relevant;
- NDCG@k with binary gains: sum of 1/log2(r + 2) over hits, divided by the same sum over
  the first min(relevant, k) ranks;
- MAP@k: the mean, over hits, of the precision at that hit's rank, summed and divided by
  min(relevant, k).

Each metric is averaged over users with at least one relevant item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from training.data.matrix import pair_keys


@dataclass(frozen=True)
class RankingMetrics:
    k: int
    users: int
    precision: float
    recall: float
    ndcg: float
    map: float
    coverage: float  # share of the candidate items that appear in someone's top k

    def as_dict(self) -> dict[str, float | int]:
        k = self.k
        return {
            f"precision_at_{k}": self.precision,
            f"recall_at_{k}": self.recall,
            f"ndcg_at_{k}": self.ndcg,
            f"map_at_{k}": self.map,
            f"coverage_at_{k}": self.coverage,
            "users": self.users,
        }


def hit_matrix(top: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """hits[u, r]: is item top[u, r] among row u's nonzeros of `relevant`?

    top: [n, k] item columns, -1 for an empty slot; relevant: [n, items] with sorted indices.
    """
    n, k = top.shape
    n_items = relevant.shape[1]
    relevant_keys = pair_keys(relevant)
    keys = np.arange(n, dtype=np.int64)[:, None] * n_items + top
    found = np.searchsorted(relevant_keys, keys)
    found = np.minimum(found, len(relevant_keys) - 1) if len(relevant_keys) else found
    hits = (top >= 0) & (len(relevant_keys) > 0)
    if len(relevant_keys):
        hits &= relevant_keys[found] == keys
    return hits


def ranking_metrics(
    top: np.ndarray, relevant: sp.csr_matrix, k: int, n_candidates: int
) -> RankingMetrics:
    """Metrics at k of ranked lists `top` [n, >=k] against the held-out `relevant` [n, items]."""
    top = top[:, :k]
    if top.shape[1] < k:  # fewer candidates than k: the empty slots are misses
        pad = np.full((top.shape[0], k - top.shape[1]), -1, dtype=top.dtype)
        top = np.hstack([top, pad])
    n_relevant = np.diff(relevant.indptr)
    evaluated = n_relevant > 0
    hits = hit_matrix(top, relevant)[evaluated].astype(np.float64)
    n_rel = n_relevant[evaluated].astype(np.float64)
    users = int(evaluated.sum())
    shown = top[evaluated]
    coverage = len(np.unique(shown[shown >= 0])) / n_candidates if n_candidates else 0.0
    if users == 0:
        return RankingMetrics(k, 0, 0.0, 0.0, 0.0, 0.0, coverage)

    ranks = np.arange(1, k + 1)
    precision_at_rank = np.cumsum(hits, axis=1) / ranks
    return RankingMetrics(
        k=k,
        users=users,
        precision=float(np.mean(hits.sum(axis=1) / k)),
        recall=float(np.mean(hits.sum(axis=1) / n_rel)),
        ndcg=float(np.mean(_ndcg(hits, n_rel, k))),
        map=float(np.mean((precision_at_rank * hits).sum(axis=1) / np.minimum(n_rel, k))),
        coverage=coverage,
    )


def _ndcg(hits: np.ndarray, n_rel: np.ndarray, k: int) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_rel, k).astype(int) - 1]
    return np.asarray((hits * discount).sum(axis=1) / ideal)


def per_user_ranking(top: np.ndarray, relevant: sp.csr_matrix, k: int) -> dict[str, np.ndarray]:
    """Precision, recall, NDCG and MAP at k of each user with a relevant item (rows of
    `relevant` in order), keyed as RankingMetrics.as_dict names them: what ranking_metrics
    averages, kept per user for intervals and paired comparisons."""
    top = top[:, :k]
    if top.shape[1] < k:
        pad = np.full((top.shape[0], k - top.shape[1]), -1, dtype=top.dtype)
        top = np.hstack([top, pad])
    n_relevant = np.diff(relevant.indptr)
    evaluated = n_relevant > 0
    hits = hit_matrix(top, relevant)[evaluated].astype(np.float64)
    n_rel = n_relevant[evaluated].astype(np.float64)
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return {
        f"precision_at_{k}": hits.sum(axis=1) / k,
        f"recall_at_{k}": hits.sum(axis=1) / np.maximum(n_rel, 1),
        f"ndcg_at_{k}": _ndcg(hits, n_rel, k),
        f"map_at_{k}": (precision_at_rank * hits).sum(axis=1) / np.maximum(np.minimum(n_rel, k), 1),
    }


def per_user_hits(top: np.ndarray, relevant: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each user's relevant pairs found in their list, and their relevant pairs: hit_rate is
    the first summed over the second summed."""
    return hit_matrix(top, relevant).sum(axis=1).astype(np.float64), np.diff(
        relevant.indptr
    ).astype(np.float64)


def hit_rate(top: np.ndarray, relevant: sp.csr_matrix) -> tuple[float, int]:
    """Share of the relevant (user, item) pairs found in the users' lists; and that pair count."""
    total = int(relevant.nnz)
    if total == 0:
        return 0.0, 0
    return float(hit_matrix(top, relevant).sum() / total), total


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Column indices of the k best scores per row, best first; ties go to the lower index.

    `exclude` [n, cols] marks cells that may not be recommended (already seen); excluded and
    non-finite cells never appear: their slots hold -1 when a row has fewer than k candidates.
    NaN scores count as excluded.
    """
    dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    scores = np.array(scores, dtype=dtype, copy=True)
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        scores[coo.row, coo.col] = -np.inf
    if scores.size and np.isnan(scores.max()):  # max propagates NaN: one pass, no mask
        scores[np.isnan(scores)] = -np.inf
    n, cols = scores.shape
    k = min(k, cols)
    if k == 0 or n == 0:
        return np.empty((n, k), dtype=np.int64)
    # k candidates per row, in no order; where a score equal to the k-th best was left out
    # (a tie at the cut, or fewer than k finite scores) the row takes the exact path, which
    # gives the ties to the lower index
    candidates = np.argpartition(scores, cols - k, axis=1)[:, cols - k :]
    values = np.take_along_axis(scores, candidates, axis=1)
    kth = values.min(axis=1, keepdims=True)
    tied = np.flatnonzero((scores == kth).sum(axis=1) > (values == kth).sum(axis=1))
    if tied.size:
        rows = scores[tied]
        candidates[tied] = _tied_candidates(rows, kth[tied], k)
        values[tied] = np.take_along_axis(rows, candidates[tied], axis=1)
    # best first, equal scores by lower index
    order = np.lexsort((candidates, -values), axis=1)
    top = np.take_along_axis(candidates, order, axis=1)
    top[~np.isfinite(np.take_along_axis(values, order, axis=1))] = -1
    return top


def _tied_candidates(scores: np.ndarray, kth: np.ndarray, k: int) -> np.ndarray:
    """The k columns of each row above its cut `kth`, then the lowest-index ones equal to it."""
    above = scores > kth
    at_cut = scores == kth
    needed = k - above.sum(axis=1, keepdims=True)
    chosen = above | (at_cut & (np.cumsum(at_cut, axis=1) <= needed))
    return np.nonzero(chosen)[1].reshape(len(scores), k)
