"""ALS on Spark (pyspark MLlib, implicit preferences): the engine for data that outgrows one
machine (`recsvc train --engine spark`, `recsvc nightly --engine spark`; the `spark` extra).

It fits the same confidence matrix as implicit's ALS (training.models.factors.fit) and returns
factors in the same form (Factors: rows and columns of the ItemIndex), so the export, the gate
and the publish are the same. The matrix's cells go to Spark as an Arrow table of
(user, item, confidence); Spark's factors come back by id, and a row Spark never saw (a user or
item with no cell) stays zero, as implicit leaves it.

**The parameters mean the same thing.** Both minimise
sum c_ui (p_ui - x_u . y_i)^2 + regularisation, over every cell, with p_ui = 1 where the user
has a cell. They differ in two places, translated here so that one tuned FitParams serves both:

- confidence: implicit's c_ui is alpha * r_ui for an observed cell (1 elsewhere); Spark's is
  1 + alpha * r'_ui. Spark gets the cells r'_ui = r_ui - 1 / alpha, so its confidence is
  implicit's; a cell under 1 / alpha (implicit: a preference with confidence under 1) gets
  r' of almost 0 (Spark: a preference with confidence 1).
- regularisation: implicit adds lambda * I to each user's (and item's) normal equations;
  Spark adds regParam * n_u, n_u that user's observed cells (ALS-WR). Spark gets lambda divided
  by the size of the row a typical *cell* is in (sum n^2 / sum n, users' and items' geometric
  mean), so that the rows holding most of the data carry the penalty implicit gives them. (On
  MovieLens-100K that row is 2.3 times the mean row: dividing by the mean rows instead
  over-regularised Spark, P@10 0.407 against implicit's 0.429.)

Spark runs where `SPARK_MASTER` says, or spark-submit's `--master` when it launched the job
(deploy/spark/recsvc_job.py); else locally, `local[N]` with N the CPUs this process may use.
docs/spark.md shows a cluster and Kubernetes.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from training.models.factors import Factors, FitParams, ModelFitError, confidence_matrix

SPARK_MISSING = (
    "the Spark engine needs pyspark and a Java runtime: pip install 'recsvc[spark]' and a "
    "JDK 17 (Debian: openjdk-17-jre-headless)"
)


class SparkUnavailable(RuntimeError):
    """pyspark or Java is missing; the message says what to install."""


def spark_session(master: str | None = None) -> Any:
    """The Spark session (created once per process): `master`, else SPARK_MASTER, else local
    with the CPUs this process may use."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise SparkUnavailable(SPARK_MISSING) from exc
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2
    chosen = master or os.environ.get("SPARK_MASTER")
    builder = SparkSession.builder.appName("recsvc-train")
    if chosen or not _submitted():
        builder = builder.master(chosen or f"local[{threads}]")
    try:
        session = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", str(max(4, 2 * threads)))
            .config("spark.driver.memory", os.environ.get("SPARK_DRIVER_MEMORY", "4g"))
            .getOrCreate()
        )
        session.sparkContext.setLogLevel("ERROR")
        return session
    except Exception as exc:  # a missing JVM surfaces as a plain exception from py4j
        if "JAVA" in str(exc).upper():
            raise SparkUnavailable(f"{SPARK_MISSING}: {exc}") from exc
        raise


def _submitted() -> bool:
    """Whether spark-submit launched this process (it then says where Spark runs)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def spark_parameters(matrix: sp.csr_matrix, params: FitParams) -> dict[str, float]:
    """Spark's regParam and alpha for implicit's regularization and alpha (module docstring)."""
    per_user = np.diff(matrix.indptr).astype(np.float64)
    per_item = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float64)
    typical = float(np.sqrt(_cell_weighted(per_user) * _cell_weighted(per_item)))
    return {"regParam": params.regularization / typical, "alpha": params.alpha}


def _cell_weighted(counts: np.ndarray) -> float:
    """The size of the row a typical cell is in: sum n^2 / sum n (at least 1)."""
    total = counts.sum()
    return max(float((counts**2).sum() / total), 1.0) if total else 1.0


def fit_spark(matrix: sp.csr_matrix, params: FitParams, master: str | None = None) -> Factors:
    """Fit ALS on Spark on a users x items confidence matrix (an ensemble: each seed's fit,
    side by side, as implicit's)."""
    if params.algorithm != "als":
        raise ModelFitError(f"the Spark engine fits ALS only, not {params.algorithm!r}")
    if params.ensemble > 1:
        single = replace(params, ensemble=1)
        fits = [
            fit_spark(matrix, replace(single, seed=params.seed + j), master)
            for j in range(params.ensemble)
        ]
        return Factors(
            np.ascontiguousarray(np.hstack([f.user for f in fits])),
            np.ascontiguousarray(np.hstack([f.item for f in fits])),
            params,
            sum(f.fit_seconds for f in fits),
        )
    from pyspark.ml.recommendation import ALS

    data = confidence_matrix(matrix, params).tocoo()
    if not np.isfinite(data.data).all():
        raise ModelFitError("the confidence matrix has non-finite values; refusing to fit")
    # implicit's confidence alpha * r is Spark's 1 + alpha * r', with r' = r - 1 / alpha; a
    # cell below 1 / alpha (a short view) stays a preference of confidence about 1 (Spark
    # reads a negative r' as a preference of 0)
    shifted = np.maximum(data.data - 1.0 / params.alpha, 1e-6).astype(np.float32)
    cells = pa.table(
        {
            "user": pa.array(data.row.astype(np.int32)),
            "item": pa.array(data.col.astype(np.int32)),
            "confidence": pa.array(shifted),
        }
    )
    spark = spark_session(master)
    frame = spark.createDataFrame(cells)
    translated = spark_parameters(matrix, params)
    blocks = int(min(10, max(2, data.nnz // 100_000)))
    als = ALS(
        rank=params.factors,
        maxIter=params.iterations,
        regParam=translated["regParam"],
        alpha=translated["alpha"],
        implicitPrefs=True,
        nonnegative=False,
        userCol="user",
        itemCol="item",
        ratingCol="confidence",
        seed=params.seed,
        coldStartStrategy="nan",
        # Spark's default of 10 blocks a side costs more in scheduling than it saves on
        # small data; a block per 100,000 cells, 2 to 10
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    started = time.perf_counter()
    model = als.fit(frame)
    user = _dense(model.userFactors, matrix.shape[0], params.factors)
    item = _dense(model.itemFactors, matrix.shape[1], params.factors)
    seconds = time.perf_counter() - started
    if not (np.isfinite(user).all() and np.isfinite(item).all()):
        raise ModelFitError(f"the Spark fit with {params} produced non-finite factors")
    return Factors(user=user, item=item, params=params, fit_seconds=seconds)


def _dense(factors: Any, rows: int, rank: int) -> np.ndarray:
    """Spark's (id, features) rows as a [rows, rank] float32 array, zero where absent."""
    table = factors.toArrow()
    out = np.zeros((rows, rank), dtype=np.float32)
    ids = table.column("id").to_numpy()
    if len(ids):
        features = table.column("features").combine_chunks()
        values = features.flatten().to_numpy(zero_copy_only=False).reshape(len(ids), rank)
        out[ids] = values.astype(np.float32)
    return np.ascontiguousarray(out)
