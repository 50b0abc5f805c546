"""Quality benchmark: recsvc's tuned path against simple peers, on one split per dataset.

Each dataset's candidates run in the same process, on the same split, in the same run.

For each dataset (MovieLens-100K, KuaiRand-Pure, COIL 2000: ../shared/data, skipped with a
message when absent; and a synthetic world generated for the run), it measures on ONE
train/test split and ONE evaluation set (training.evaluation.evaluate, same users, same
exclusions):

1. "recsvc tuned": what `recsvc evaluate --tune --tune-seconds S` does, by calling
   training.models.pipeline.run_evaluate with TuneBudget(S) and the default Objective.
   Its popularity baseline and evaluated users are checked to equal the peers' set, so the
   split is proven the same.
2. popularity (PopularityScorer);
3. last-24-hours popularity (temporal protocol only): items by users with an interaction in
   the 24 hours before the split's cutoff, ties broken by all-time popularity;
4. EASE full: B = ease_weights(X_train, λ), scores X_train·B (no low-rank cut); skipped when
   there are more than 20,000 items;
5. item-kNN cosine: cosine similarity of the item columns of X_train, each item's top K
   neighbours kept, scores X_train·S;
   (4 and 5 also choose their input X: recsvc's confidence matrix, or 1 per pair);
6. EASE + recency prior (temporal only): per user, EASE's scores standardised (z-score
   over the block), plus w · log1p(n_W) / log1p(max n_W), n_W an item's users in the last W
   hours before the cutoff; λ is EASE's (candidate 4), W and w chosen here from the tuner's
   own grid for its trending prior (training.models.trending).

Every peer's parameters are chosen on the tuner's own validation split (an inner split of the
training part: the same protocol with seed + 1 and train ratio 0.8, one pair of every group of
two or more held out, evaluated on at most 5,000 users; training.models.tuner.validation_spec),
by the tuner's objective (video NDCG@10 and product hit rate@5, equally weighted, a part the
data cannot measure left out); then refit on the whole training part. The test part is never
seen while choosing.

Headline metric: ml100k, kuairand and synthetic video NDCG@10; coil2000 product hit rate@5.
ratio_to_best_peer = recsvc tuned's headline / the best peer's on the test part (the best by
that test figure, which favours the peers); ratio_to_best_peer_by_metric does the same for
each metric the data measures. A parameter chosen at the edge of its grid is flagged
(at_grid_edge). "val." in the tables is the tuner's objective on its validation split (for
recsvc tuned, its best trial's: the maximum over many trials, so optimistic).

Usage: python bench/quality.py [--datasets ml100k,kuairand,coil2000,synthetic]
           [--tune-seconds 120] [--max-users N] [--seed 42] [--world-users 5000]
           [--events-per-user 20] [--data-dir ../shared/data] [--workdir DIR]
In a fresh clone: `.venv/bin/python bench/quality.py` (datasets absent from ../shared/data
are skipped). About 13-15 minutes on 2 cores: 4 × the 120 s tuning budget, plus the peers'
grids (EASE's inversions dominate: about 3 minutes on KuaiRand's 6,361 videos).
--max-users keeps a seeded sample of each real dataset's users (and caps the world's): a quick
check of the script, NOT the benchmark (the JSON says "benchmark_run": false).
Per dataset it prints a table (candidate, metrics, chosen parameters, seconds); the last line
of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from quality_data import SHARED_DATA, Missing, Prepared, coil2000, kuairand, ml100k, synthetic

from training.data.matrix import ConfidenceWeights, Interactions, ItemIndex, aggregate
from training.data.splits import Dataset, Protocol, split
from training.evaluation.evaluate import (
    EvalSpec,
    EvaluationSet,
    PopularityScorer,
    Scorer,
    ScorerReport,
    evaluate,
    evaluation_set,
)
from training.models.ease import EASE_MAX_ITEMS, ease_weights
from training.models.factors import FitParams
from training.models.pipeline import Stages, load_dataset, retired_items, run_evaluate
from training.models.trending import TRENDING_HOURS, TRENDING_WEIGHTS
from training.models.tuner import Objective, TuneBudget, validation_spec

DATASETS = ("ml100k", "kuairand", "coil2000", "synthetic")
HEADLINE = {
    "ml100k": "ndcg_at_10",
    "kuairand": "ndcg_at_10",
    "coil2000": "product_hit_at_5",
    "synthetic": "ndcg_at_10",
}
# What the tuner validates on (training.models.tuner.validation_spec): at most 5,000 users.
VALIDATION_SPEC = EvalSpec(max_users=5_000)
EVAL_SPEC = EvalSpec()  # what `recsvc evaluate` uses: k 10, product k 5, 20,000 users
EASE_LAMBDAS = (1.0, 10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 3000.0, 10000.0)
KNN_NEIGHBOURS = (20, 50, 100, 200, 500, 1000)
INPUTS = ("confidence", "binary")  # EASE and kNN: on recsvc's confidences, or on 1 per pair
RECENT_HOURS = 24.0
# the peer's prior grid is the tuner's own (training.models.trending), off included
PRIOR_HOURS = TRENDING_HOURS
PRIOR_WEIGHTS = (0.0, *TRENDING_WEIGHTS)
SCORE_BATCH = 1024


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- scorers -----------------------------------------------------------------------------


class MatrixScorer:
    """Scores = a user's training row times an items × items matrix (EASE's B, kNN's S).
    Only the matrix's video and product column blocks are kept (float32)."""

    def __init__(
        self,
        history: sp.csr_matrix,
        weights: np.ndarray | sp.csr_matrix,
        index: ItemIndex,
        name: str,
    ) -> None:
        self.history, self.name = history, name
        self._blocks = {
            "videos": self._columns(weights, index.videos),
            "products": self._columns(weights, index.products),
        }

    @staticmethod
    def _columns(weights: np.ndarray | sp.csr_matrix, block: slice) -> np.ndarray | sp.csr_matrix:
        if isinstance(weights, np.ndarray):
            return np.ascontiguousarray(weights[:, block], dtype=np.float32)
        return sp.csr_matrix(sp.csc_matrix(weights)[:, block])

    def _scores(self, users: np.ndarray, block: str) -> np.ndarray:
        product = self.history[users] @ self._blocks[block]
        dense = product.toarray() if sp.issparse(product) else product
        return np.asarray(dense, dtype=np.float32)

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        return self._scores(users, "videos")

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return self._scores(users, "products")


@dataclass
class FixedScores:
    """Scores computed once for a set of users (a validation grid reuses them)."""

    users: np.ndarray  # sorted rows
    videos: np.ndarray  # [users, videos]
    products: np.ndarray  # [users, products]
    name: str = "fixed"

    @classmethod
    def of(cls, scorer: Scorer, users: np.ndarray) -> FixedScores:
        batches = [users[i : i + SCORE_BATCH] for i in range(0, len(users), SCORE_BATCH)]
        videos = np.vstack([scorer.video_scores(b) for b in batches])
        products = np.vstack([scorer.product_scores(b) for b in batches])
        return cls(users, videos, products, scorer.name)

    def _positions(self, users: np.ndarray) -> np.ndarray:
        positions = np.searchsorted(self.users, users)
        if (positions >= len(self.users)).any() or (self.users[positions] != users).any():
            raise ValueError("scores asked for a user outside the precomputed set")
        return positions

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        return self.videos[self._positions(users)]

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return self.products[self._positions(users)]


@dataclass
class RecentPopularityScorer:
    """Items by users with an interaction in a recent window (PopularityScorer's counts over
    the window: products by purchases first), ties broken by all-time popularity."""

    recent: Interactions
    train: Interactions
    name: str = "popularity_24h"

    def __post_init__(self) -> None:
        one = np.zeros(1, dtype=np.int64)
        recent, ever = PopularityScorer(self.recent), PopularityScorer(self.train)
        self._videos = _lexical(recent.video_scores(one)[0], ever.video_scores(one)[0])
        self._products = _lexical(recent.product_scores(one)[0], ever.product_scores(one)[0])

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._videos, (len(users), len(self._videos)))

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self._products, (len(users), len(self._products)))


def _lexical(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """One float64 score ordering by `first`, then by `second` (both >= 0)."""
    return first.astype(np.float64) * (float(second.max(initial=0)) + 1) + second


@dataclass
class PriorBlendScorer:
    """A base scorer's scores standardised per user and block, plus weight × prior."""

    base: Scorer
    prior: np.ndarray  # [items] in [0, 1]
    index: ItemIndex
    weight: float
    name: str = "ease_recency"

    @staticmethod
    def _standardised(scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=np.float32)
        if scores.shape[1] == 0:
            return scores
        centred = scores - scores.mean(axis=1, keepdims=True)
        spread = scores.std(axis=1, keepdims=True)
        return centred / np.where(spread > 0, spread, 1.0)

    def video_scores(self, users: np.ndarray) -> np.ndarray:
        z = self._standardised(self.base.video_scores(users))
        return z + np.float32(self.weight) * self.prior[self.index.videos]

    def product_scores(self, users: np.ndarray) -> np.ndarray:
        z = self._standardised(self.base.product_scores(users))
        return z + np.float32(self.weight) * self.prior[self.index.products]


# --- the peers' models ---------------------------------------------------------------------


def cosine_neighbours(
    x: sp.csr_matrix, most: int, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's `most` most cosine-similar other items over the columns of `x`: their
    columns and similarities, best first (similarity 0 where fewer exist)."""
    x = sp.csr_matrix(x, dtype=np.float32)
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
    normalised = sp.csr_matrix(x @ sp.diags(np.where(norms > 0, 1 / np.maximum(norms, 1e-30), 0)))
    columns = sp.csr_matrix(normalised.T)
    items = x.shape[1]
    most = min(most, max(items - 1, 1))
    neighbours = np.zeros((items, most), dtype=np.int64)
    similarity = np.zeros((items, most), dtype=np.float32)
    for start in range(0, items, chunk):
        rows = np.arange(start, min(start + chunk, items))
        block = np.asarray((columns[rows] @ normalised).toarray(), dtype=np.float32)
        block[np.arange(len(rows)), rows] = -np.inf  # an item is not its own neighbour
        top = np.argpartition(-block, most - 1, axis=1)[:, :most] if items > most else None
        if top is None:
            top = np.tile(np.arange(items), (len(rows), 1))[:, :most]
        values = np.take_along_axis(block, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        neighbours[rows] = np.take_along_axis(top, order, axis=1)
        similarity[rows] = np.maximum(np.take_along_axis(values, order, axis=1), 0)
    return neighbours, similarity


def knn_matrix(neighbours: np.ndarray, similarity: np.ndarray, k: int) -> sp.csr_matrix:
    """S with each item's (row's) top k neighbours; scores are X·S."""
    items = neighbours.shape[0]
    rows = np.repeat(np.arange(items), min(k, neighbours.shape[1]))
    cols, values = neighbours[:, :k].ravel(), similarity[:, :k].ravel()
    matrix = sp.csr_matrix((values, (rows, cols)), shape=(items, items), dtype=np.float32)
    matrix.eliminate_zeros()
    return matrix


def temporal_cutoff(events: pa.Table, holdout_days: int) -> datetime:
    """The moment a temporal split of `events` holds out from (training.data.splits)."""
    last = pc.max(events.column("ts")).as_py()
    last_day = last.replace(hour=0, minute=0, second=0, microsecond=0)
    return last_day - timedelta(days=holdout_days - 1)  # type: ignore[no-any-return]


def window(data: Dataset, cutoff: datetime, hours: float) -> Interactions:
    """The interactions of the `hours` before `cutoff` (the training events only)."""
    assert data.events is not None
    events = data.events
    kind = events.schema.field("ts").type
    since = pa.scalar(cutoff - timedelta(hours=hours), type=kind)
    recent = events.filter(pc.greater_equal(events.column("ts"), since))
    return aggregate(recent, data.interactions.index, data.weights)


def recency_prior(data: Dataset, cutoff: datetime, hours: float) -> np.ndarray:
    """log1p(users per item in the window) / its maximum, per item (float32, in [0, 1])."""
    recent = window(data, cutoff, hours).confidence
    counts = np.log1p(np.diff(recent.tocsc().indptr).astype(np.float64))
    top = counts.max(initial=0)
    return (counts / top if top > 0 else counts).astype(np.float32)


# --- selection on the validation split -----------------------------------------------------


@dataclass
class Context:
    """One dataset's split, the tuner's validation split, and what the peers share."""

    name: str
    protocol: Protocol
    train: Dataset
    evaluated: EvaluationSet
    fit_part: Dataset
    validation: EvaluationSet
    objective: Objective
    test_cutoff: datetime | None = None
    validation_cutoff: datetime | None = None
    shared: dict[str, Any] = field(default_factory=dict)

    def validate(self, scorer: Scorer) -> float:
        return self.objective.score(evaluate(scorer, self.validation, VALIDATION_SPEC))


@dataclass
class Outcome:
    """A candidate's test report, chosen parameters, validation score and seconds."""

    name: str
    report: ScorerReport | None = None
    params: dict[str, Any] = field(default_factory=dict)
    validation_score: float | None = None
    seconds: float = 0.0
    skipped: str | None = None
    tried: int = 0


def choose(
    context: Context, grid: Iterable[dict[str, Any]], make: Callable[..., Scorer]
) -> tuple[dict[str, Any], float, int]:
    """The grid point whose scorer (made on the validation split's fit part) scores best on
    the validation split; its score; and how many points were tried. Ties go to the first."""
    best: tuple[dict[str, Any], float] | None = None
    tried = 0
    for params in grid:
        score = context.validate(make(**params))
        tried += 1
        if best is None or score > best[1]:
            best = (params, score)
    assert best is not None
    return best[0], best[1], tried


def popularity(context: Context) -> Outcome:
    validation = context.validate(PopularityScorer(context.fit_part.interactions))
    scorer = PopularityScorer(context.train.interactions)
    return Outcome("popularity", evaluate(scorer, context.evaluated, EVAL_SPEC), {}, validation)


def recent_popularity(context: Context) -> Outcome:
    name = "popularity_24h"
    if context.test_cutoff is None or context.validation_cutoff is None:
        return Outcome(name, skipped="temporal protocol only")
    fit_part, train = context.fit_part, context.train
    inner = RecentPopularityScorer(
        window(fit_part, context.validation_cutoff, RECENT_HOURS), fit_part.interactions, name
    )
    scorer = RecentPopularityScorer(
        window(train, context.test_cutoff, RECENT_HOURS), train.interactions, name
    )
    report = evaluate(scorer, context.evaluated, EVAL_SPEC)
    return Outcome(name, report, {"hours": RECENT_HOURS}, context.validate(inner))


def as_input(matrix: sp.csr_matrix, kind: str) -> sp.csr_matrix:
    """The training matrix as a peer sees it: recsvc's confidences, or 1 per pair."""
    if kind == "confidence":
        return matrix
    binary = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    binary.data[:] = 1.0
    return binary


def at_edge(value: float, grid: tuple[float, ...] | tuple[int, ...]) -> bool:
    return value in (grid[0], grid[-1])


def ease(context: Context) -> Outcome:
    name = "ease"
    items = context.train.interactions.index.n_items
    if items > EASE_MAX_ITEMS:
        return Outcome(name, skipped=f"{items:,} items, more than EASE's {EASE_MAX_ITEMS:,}")
    inner = context.fit_part.interactions
    latest: dict[tuple[str, float], MatrixScorer] = {}

    def fitted(data: Interactions, kind: str, regularization: float) -> MatrixScorer:
        x = as_input(data.confidence, kind)
        return MatrixScorer(x, ease_weights(x, regularization), data.index, name)

    def make(input: str, regularization: float) -> Scorer:
        latest.clear()  # the latest only: the best is refitted below if it is not the latest
        latest[(input, regularization)] = fitted(inner, input, regularization)
        return latest[(input, regularization)]

    grid = [{"input": i, "regularization": r} for i in INPUTS for r in EASE_LAMBDAS]
    best, score, tried = choose(context, grid, make)
    kind, chosen = best["input"], best["regularization"]
    inner_scorer = latest.get((kind, chosen)) or fitted(inner, kind, chosen)
    scorer = fitted(context.train.interactions, kind, chosen)
    context.shared["ease"] = ({"input": kind, "lambda": chosen}, inner_scorer, scorer)
    params = {"input": kind, "lambda": chosen, "at_grid_edge": at_edge(chosen, EASE_LAMBDAS)}
    report = evaluate(scorer, context.evaluated, EVAL_SPEC)
    return Outcome(name, report, params, score, tried=tried)


def item_knn(context: Context) -> Outcome:
    name = "item_knn"
    inner = context.fit_part.interactions
    inputs = {kind: as_input(inner.confidence, kind) for kind in INPUTS}
    # a K beyond the other items is all of them: such grid points are one
    ks = tuple(sorted({min(k, max(inner.index.n_items - 1, 1)) for k in KNN_NEIGHBOURS}))
    similar = {kind: cosine_neighbours(x, max(ks)) for kind, x in inputs.items()}

    def make(input: str, k: int) -> Scorer:
        weights = knn_matrix(*similar[input], k)
        return MatrixScorer(inputs[input], weights, inner.index, name)

    grid = [{"input": i, "k": k} for i in INPUTS for k in ks]
    best, score, tried = choose(context, grid, make)
    train = context.train.interactions
    x = as_input(train.confidence, best["input"])
    weights = knn_matrix(*cosine_neighbours(x, best["k"]), best["k"])
    scorer = MatrixScorer(x, weights, train.index, name)
    report = evaluate(scorer, context.evaluated, EVAL_SPEC)
    params = {**best, "at_grid_edge": len(ks) > 1 and at_edge(best["k"], ks)}
    return Outcome(name, report, params, score, tried=tried)


def ease_recency(context: Context) -> Outcome:
    name = "ease_recency"
    if context.test_cutoff is None or context.validation_cutoff is None:
        return Outcome(name, skipped="temporal protocol only")
    if "ease" not in context.shared:
        return Outcome(name, skipped="EASE was skipped")
    chosen, inner_scorer, scorer = context.shared["ease"]  # EASE's input and λ, as chosen
    fit_part, train = context.fit_part, context.train
    index = fit_part.interactions.index
    base = FixedScores.of(inner_scorer, context.validation.users)
    priors = {h: recency_prior(fit_part, context.validation_cutoff, h) for h in PRIOR_HOURS}

    def make(hours: float, weight: float) -> Scorer:
        return PriorBlendScorer(base, priors[hours], index, weight, name)

    grid = [{"hours": h, "weight": w} for w in PRIOR_WEIGHTS for h in PRIOR_HOURS]
    grid = [p for p in grid if p["weight"] > 0 or p["hours"] == PRIOR_HOURS[0]]
    best, score, tried = choose(context, grid, make)
    prior = recency_prior(train, context.test_cutoff, best["hours"])
    blended = PriorBlendScorer(scorer, prior, train.interactions.index, best["weight"], name)
    report = evaluate(blended, context.evaluated, EVAL_SPEC)
    params = {**chosen, **best, "at_grid_edge": at_edge(best["weight"], PRIOR_WEIGHTS)}
    return Outcome(name, report, params, score, tried=tried)


PEERS: tuple[Callable[[Context], Outcome], ...] = (
    popularity,
    recent_popularity,
    ease,
    item_knn,
    ease_recency,
)


# --- one dataset ---------------------------------------------------------------------------


def metrics_of(report: ScorerReport) -> dict[str, float | None]:
    videos = report.videos
    has_videos = videos.users > 0
    return {
        "precision_at_10": videos.precision if has_videos else None,
        "ndcg_at_10": videos.ndcg if has_videos else None,
        "product_hit_at_5": report.product_hit_rate,
    }


def tuned_metrics(report: dict[str, Any]) -> dict[str, float | None]:
    has_videos = report["users"] > 0
    return {
        "precision_at_10": report["precision_at_10"] if has_videos else None,
        "ndcg_at_10": report["ndcg_at_10"] if has_videos else None,
        "product_hit_at_5": report["product_hit_rate"],
    }


def same_split(tuned: dict[str, Any], context: Context, ours: ScorerReport) -> None:
    """Refuse to compare unless run_evaluate's popularity baseline and evaluated users are
    exactly the peers' own: the proof that both saw one split and one evaluation set."""
    theirs = tuned["baselines"]["popularity"]
    checks = {
        "evaluated users": (tuned["evaluated_users"], len(context.evaluated.users)),
        "popularity precision@10": (theirs["precision_at_10"], ours.videos.precision),
        "popularity ndcg@10": (theirs["ndcg_at_10"], ours.videos.ndcg),
        "popularity product hit@5": (theirs["product_hit_rate"], ours.product_hit_rate),
    }
    for what, (a, b) in checks.items():
        same = a is None and b is None
        same = same or (a is not None and b is not None and math.isclose(a, b, abs_tol=1e-12))
        if not same:
            sys.exit(
                f"{context.name}: the peers' split differs from run_evaluate's ({what}: {a} vs {b})"
            )


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def rounded(values: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 5) if isinstance(v, float) else v for k, v in values.items()}


def run_dataset(prepared: Prepared, tune_seconds: float, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    name, source, split_spec = prepared.name, prepared.source, prepared.split
    log(f"[{name}] {prepared.description}")
    log(f"[{name}] recsvc tuned: run_evaluate with a {tune_seconds:g} s tuning budget ...")
    tuned = run_evaluate(
        source,
        split_spec,
        FitParams(seed=seed),
        budget=TuneBudget(tune_seconds),
        objective=Objective(),
        eval_spec=EVAL_SPEC,
    )
    log(f"[{name}] recsvc tuned: {tuned['seconds']:.1f} s; now the peers on the same split")

    # The same split and evaluation set as run_evaluate's, rebuilt with its own functions.
    dataset, _ = load_dataset(source, ConfidenceWeights(), Stages())
    train, test = split(dataset, split_spec)
    index = dataset.interactions.index
    retired = retired_items(source.catalog, index) if source.catalog is not None else None
    evaluated = evaluation_set(train.interactions, test, EVAL_SPEC, retired)
    # The tuner's validation split (training.models.tuner.tune), never the test part.
    inner_spec = validation_spec(split_spec)
    fit_part, held_out = split(train, inner_spec)
    validation = evaluation_set(fit_part.interactions, held_out, VALIDATION_SPEC)
    temporal = split_spec.protocol is Protocol.TEMPORAL
    context = Context(
        name,
        split_spec.protocol,
        train,
        evaluated,
        fit_part,
        validation,
        Objective(),
        temporal_cutoff(dataset.events, split_spec.holdout_days) if temporal else None,
        temporal_cutoff(train.events, split_spec.holdout_days) if temporal else None,
    )
    outcomes: list[Outcome] = []
    for peer in PEERS:
        peer_started = time.perf_counter()
        outcome = peer(context)
        outcome.seconds = time.perf_counter() - peer_started
        outcomes.append(outcome)
        log(f"[{name}] {outcome.name}: {outcome.skipped or f'{outcome.seconds:.1f} s'}")
    same_split(tuned, context, outcomes[0].report)  # type: ignore[arg-type]

    headline = HEADLINE[name]
    ours = tuned_metrics(tuned)
    peers: dict[str, Any] = {}
    for outcome in outcomes:
        if outcome.report is None:
            peers[outcome.name] = {"skipped": outcome.skipped}
            continue
        peers[outcome.name] = rounded(
            {
                **metrics_of(outcome.report),
                "validation_score": outcome.validation_score,
                "params": outcome.params,
                "grid_points": outcome.tried,
                "seconds": round(outcome.seconds, 2),
            }
        )
    scored = {n: p for n, p in peers.items() if p.get(headline) is not None}
    best_peer = max(scored, key=lambda n: scored[n][headline]) if scored else None
    by_metric = {
        metric: ratio(
            value,
            max((p[metric] for p in scored.values() if p.get(metric) is not None), default=None),
        )
        for metric, value in ours.items()
        if value is not None
    }
    tuning = tuned["tuning"]
    result: dict[str, Any] = {
        "description": prepared.description,
        "protocol": split_spec.protocol.value,
        "evaluated_users": tuned["evaluated_users"],
        "video_users": tuned["users"],  # evaluated users with a held-out video
        "product_pairs": tuned["product_pairs"],  # held-out purchases behind the hit rate
        "data": {k: tuned["data"][k] for k in ("users", "videos", "products", "nonzeros")},
        **({"derivation": prepared.notes} if prepared.notes else {}),
        **{k: round(v, 5) for k, v in ours.items() if v is not None},
        "headline": headline,
        "tuned": {
            "params": tuned["params"],
            "trials": len(tuning["trials"]),
            "validation_score": tuning["best_score"],
            "tune_seconds": tuning["seconds"],
            "seconds": tuned["seconds"],
            "warnings": tuned["warnings"],
        },
        "peers": peers,
        "best_peer": best_peer,
        "ratio_to_best_peer": ratio(ours[headline], scored[best_peer][headline])
        if best_peer
        else None,
        "ratio_to_best_peer_by_metric": by_metric,
    }
    if name == "synthetic":
        pop = tuned["baselines"]["popularity"]
        result["video_ratio_to_popularity"] = ratio(ours["precision_at_10"], pop["precision_at_10"])
        result["product_ratio_to_popularity"] = ratio(
            ours["product_hit_at_5"], pop["product_hit_rate"]
        )
        oracle = tuned["baselines"].get("oracle")
        if oracle:
            result["oracle"] = rounded(
                {
                    "precision_at_10": oracle["precision_at_10"],
                    "ndcg_at_10": oracle["ndcg_at_10"],
                    "product_hit_at_5": oracle["product_hit_rate"],
                }
            )
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_table(name, result)
    return result


# --- output --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _params(params: dict[str, Any]) -> str:
    shown = []
    for key, value in params.items():
        if key in {"learning_rate", "seed"} or (key == "at_grid_edge" and not value):
            continue
        shown.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(shown)


def print_table(name: str, result: dict[str, Any]) -> None:
    tuned = result["tuned"]
    print(
        f"\n{name}: {result['description']}; {result['evaluated_users']:,} users evaluated "
        f"({result['video_users']:,} with a held-out video, {result['product_pairs']:,} "
        "held-out purchases)"
    )
    header = (
        f"  {'candidate':<16}{'P@10':>8}{'NDCG@10':>9}{'hit@5':>8}{'val.':>8}{'secs':>8}  params"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    rows = [
        (
            "recsvc tuned",
            result,
            tuned["validation_score"],
            tuned["seconds"],
            f"{_params(tuned['params'])} ({tuned['trials']} trials)",
        )
    ]
    for peer, values in result["peers"].items():
        if "skipped" in values:
            rows.append((peer, {}, None, None, f"skipped: {values['skipped']}"))
            continue
        params = _params(values["params"])
        rows.append((peer, values, values["validation_score"], values["seconds"], params))
    if "oracle" in result:
        rows.append(("oracle (truth)", result["oracle"], None, None, "the world's propensities"))
    for label, values, val, secs, params in rows:
        print(
            f"  {label:<16}{_cell(values.get('precision_at_10')):>8}"
            f"{_cell(values.get('ndcg_at_10')):>9}{_cell(values.get('product_hit_at_5')):>8}"
            f"{_cell(val):>8}{'-' if secs is None else f'{secs:.1f}':>8}  {params}"
        )
    headline = result["headline"]
    print(
        f"  headline {headline}: recsvc tuned / best peer ({result['best_peer']}) = "
        f"{result['ratio_to_best_peer']}"
    )
    if name == "synthetic":
        print(
            f"  vs popularity: video P@10 ×{result['video_ratio_to_popularity']}, "
            f"product hit@5 ×{result['product_ratio_to_popularity']}"
        )
    for warning in tuned["warnings"]:
        print(f"  warning (recsvc evaluate): {warning}")
    sys.stdout.flush()


# --- main ----------------------------------------------------------------------------------


def prepare(name: str, args: argparse.Namespace, work: Path) -> Prepared:
    if name == "synthetic":
        return synthetic(work, args.world_users, args.events_per_user, args.max_users, args.seed)
    loader = {"ml100k": ml100k, "kuairand": kuairand, "coil2000": coil2000}[name]
    return loader(args.data_dir, work, args.max_users, args.seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--datasets", default=",".join(DATASETS), help=f"comma list of {', '.join(DATASETS)}"
    )
    parser.add_argument(
        "--tune-seconds", type=float, default=120.0, help="tuner budget per dataset"
    )
    parser.add_argument(
        "--max-users",
        type=int,
        default=None,
        help="keep a seeded sample of this many users per dataset: a quick run, not the benchmark",
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="fit seed (recsvc evaluate --seed), sample, world"
    )
    parser.add_argument("--world-users", type=int, default=5_000, help="synthetic world's users")
    parser.add_argument(
        "--events-per-user", type=int, default=20, help="synthetic world's events per user"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=SHARED_DATA, help="the shared data directory"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="derived files (default: a temp dir)"
    )
    args = parser.parse_args()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        parser.error(f"unknown dataset(s) {unknown}; choose among {', '.join(DATASETS)}")
    if args.tune_seconds <= 0 or (args.max_users is not None and args.max_users < 1):
        parser.error("--tune-seconds must be > 0 and --max-users >= 1")

    started = time.perf_counter()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="recsvc-quality-"))
    results: dict[str, Any] = {"benchmark": "quality"}
    try:
        for name in names:
            try:
                prepared = prepare(name, args, work)
            except Missing as exc:
                log(f"[{name}] skipped: {exc}")
                print(f"\n{name}: skipped ({exc})")
                results[name] = {"skipped": str(exc)}
                continue
            results[name] = run_dataset(prepared, args.tune_seconds, args.seed)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    results |= {
        "tune_seconds": args.tune_seconds,
        "max_users": args.max_users,
        "benchmark_run": args.max_users is None,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
