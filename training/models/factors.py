"""Collaborative-filtering factors: fitting implicit's ALS (or BPR), or low-rank EASE
(training.models.ease), saving and loading them.

BLAS runs single-threaded inside the fit: implicit parallelises over users itself, and a
multi-threaded OpenBLAS underneath it oversubscribes the cores (implicit warns about it).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from training.data.matrix import ItemIndex

Algorithm = Literal["als", "bpr", "ease"]
Confidence = Literal["linear", "log"]


class ModelFitError(RuntimeError):
    """The fit produced unusable factors (NaN or infinite values)."""


@dataclass(frozen=True)
class FitParams:
    """Hyper-parameters of one fit. The defaults are implicit's near-defaults, not tuned."""

    algorithm: Algorithm = "als"
    factors: int = 64
    regularization: float = 0.05  # EASE: its λ
    alpha: float = 1.0  # confidence scale: the matrix is multiplied by it
    confidence: Confidence = "linear"  # "log": cells become log1p(confidence) before alpha
    iterations: int = 15
    learning_rate: float = 0.01  # BPR only
    seed: int = 42
    # A seed ensemble: this many fits with seeds seed, seed + 1, ..., their factors side by
    # side (user · item is then the sum of the fits' scores, so the ranking is their mean's).
    # ALS's fit depends on its random start: on KuaiRand-Pure one configuration's test
    # NDCG@10 spans ±5% over seeds, and four seeds together scored above every one of them.
    # Fold-in solves each fit's block on its own (recsvc.feed.foldin). EASE is deterministic.
    ensemble: int = 1
    # The trending prior (training.models.trending): popularity over the last `trending_hours`
    # of the data, added to video scores with this weight (in units of the user's score
    # spread). 0 is off. Not used by the fit itself: the scorer, the export and the service do.
    trending_hours: float = 24.0
    trending_weight: float = 0.0
    # The attach score a · (u · p) + b · (v · p) of a product card under video v
    # (training.evaluation.attach): exported for the service, which uses them unless its
    # settings or an experiment variant say otherwise.
    attach_user_weight: float = 1.0
    attach_video_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("factors", "iterations", "ensemble"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.algorithm == "ease" and self.ensemble != 1:
            raise ValueError(
                f"EASE is deterministic: an ensemble of {self.ensemble} fits of it "
                "would repeat one fit; use ensemble 1"
            )
        if not (self.trending_hours > 0 and np.isfinite(self.trending_hours)):
            raise ValueError(f"trending_hours must be > 0, not {self.trending_hours}")
        if not (self.trending_weight >= 0 and np.isfinite(self.trending_weight)):
            raise ValueError(f"trending_weight must be >= 0, not {self.trending_weight}")
        attach = (self.attach_user_weight, self.attach_video_weight)
        if not all(np.isfinite(w) and w >= 0 for w in attach) or sum(attach) == 0:
            raise ValueError(f"attach weights must be >= 0 and not both 0, not {attach}")
        if self.regularization < 0 or self.alpha <= 0 or self.learning_rate <= 0:
            raise ValueError("regularization must be >= 0; alpha and learning_rate > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FitParams:
        return cls(**values)


@dataclass
class Factors:
    """User and item factors of one fit, rows aligned with an ItemIndex."""

    user: np.ndarray  # [U, d] float32
    item: np.ndarray  # [I, d] float32
    params: FitParams
    fit_seconds: float = 0.0
    # EASE only: items × d; a user's vector is their confidence row times it (their fold-in)
    projection: np.ndarray | None = None

    def scores(self, user_rows: np.ndarray, items: slice | np.ndarray) -> np.ndarray:
        """Dot products of the chosen users with the chosen items."""
        return self.user[user_rows] @ self.item[items].T


def default_threads() -> int:
    """Worker threads for the fit: the CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def confidence_matrix(matrix: sp.csr_matrix, params: FitParams) -> sp.csr_matrix:
    """The matrix implicit sees, after the confidence transform (alpha is applied by implicit)."""
    if params.confidence == "log":
        matrix = matrix.copy()
        matrix.data = np.log1p(matrix.data)
    return matrix.astype(np.float32)


Engine = Literal["implicit", "spark"]
ENGINES: tuple[Engine, ...] = ("implicit", "spark")


def fit(
    matrix: sp.csr_matrix,
    params: FitParams,
    *,
    threads: int | None = None,
    show_progress: bool = False,
    engine: Engine = "implicit",
) -> Factors:
    """Fit implicit's model on a users × items confidence matrix (an ensemble: each fit,
    side by side); with `engine` "spark", ALS on Spark (training.models.spark_als), factors
    of the same form."""
    if engine == "spark":
        from training.models.spark_als import fit_spark

        return fit_spark(matrix, params)
    if params.ensemble > 1:
        single = replace(params, ensemble=1)
        fits = [
            fit(matrix, replace(single, seed=params.seed + j), threads=threads,
                show_progress=show_progress)
            for j in range(params.ensemble)
        ]  # fmt: skip
        return Factors(
            np.ascontiguousarray(np.hstack([f.user for f in fits])),
            np.ascontiguousarray(np.hstack([f.item for f in fits])),
            params,
            sum(f.fit_seconds for f in fits),
        )
    import time

    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from implicit.recommender_base import ModelFitError as ImplicitFitError

    threads = threads or default_threads()
    data = confidence_matrix(matrix, params)
    bad = int((~np.isfinite(data.data)).sum())
    if bad:
        raise ModelFitError(f"the confidence matrix has {bad} non-finite values; refusing to fit")
    if params.algorithm == "ease":
        return _fit_ease(data, params)
    with threadpool_limits(limits=1, user_api="blas"):
        if params.algorithm == "als":
            model = AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                alpha=params.alpha,
                iterations=params.iterations,
                calculate_training_loss=False,
                num_threads=threads,
                random_state=params.seed,
            )
        else:
            model = BayesianPersonalizedRanking(
                factors=params.factors,
                learning_rate=params.learning_rate,
                regularization=params.regularization,
                iterations=params.iterations,
                num_threads=threads,
                random_state=params.seed,
            )
            data = (data * params.alpha).tocsr() if params.alpha != 1.0 else data
        started = time.perf_counter()
        try:
            model.fit(data, show_progress=show_progress)
        except ImplicitFitError as exc:  # implicit's own check: NaN factors
            raise ModelFitError(f"the fit with {params} produced non-finite factors") from exc
        seconds = time.perf_counter() - started
    user = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    item = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    if not (np.isfinite(user).all() and np.isfinite(item).all()):
        raise ModelFitError(f"the fit with {params} produced non-finite factors")
    return Factors(user=user, item=item, params=params, fit_seconds=seconds)


def _fit_ease(data: sp.csr_matrix, params: FitParams) -> Factors:
    from training.models.ease import EaseTooLarge, fit_ease

    try:
        user, item, projection, seconds = fit_ease(data, params.regularization, params.factors)
    except (EaseTooLarge, np.linalg.LinAlgError) as exc:
        raise ModelFitError(f"EASE with {params}: {exc}") from exc
    if not (np.isfinite(user).all() and np.isfinite(item).all()):
        raise ModelFitError(f"the fit with {params} produced non-finite factors")
    return Factors(user, item, params, seconds, projection)


FACTOR_FILES = ("user_factors.npy", "item_factors.npy", "user_ids.npy", "item_ids.npy")


def save_factors(factors: Factors, index: ItemIndex, out: Path, info: dict[str, Any]) -> None:
    """Write factors and labels as .npy (no pickles) plus a `training.json` description."""
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "user_factors.npy", factors.user, allow_pickle=False)
    np.save(out / "item_factors.npy", factors.item, allow_pickle=False)
    np.save(out / "user_ids.npy", index.user_ids.astype(str), allow_pickle=False)
    np.save(out / "item_ids.npy", index.item_ids.astype(str), allow_pickle=False)
    description = {
        "params": factors.params.as_dict(),
        "n_users": index.n_users,
        "n_videos": index.n_videos,
        "n_products": index.n_items - index.n_videos,
        "fit_seconds": round(factors.fit_seconds, 3),
        **info,
    }
    (out / "training.json").write_text(json.dumps(description, indent=2) + "\n")


def load_factors(directory: Path) -> tuple[Factors, ItemIndex, dict[str, Any]]:
    """Read back what save_factors wrote."""
    description = json.loads((directory / "training.json").read_text())
    arrays = {name: np.load(directory / name, allow_pickle=False) for name in FACTOR_FILES}
    n_videos = int(description["n_videos"])
    item_ids = arrays["item_ids.npy"]
    index = ItemIndex(arrays["user_ids.npy"], item_ids[:n_videos], item_ids[n_videos:])
    params = FitParams.from_dict(description["params"])
    factors = Factors(arrays["user_factors.npy"], arrays["item_factors.npy"], params)
    return factors, index, description
