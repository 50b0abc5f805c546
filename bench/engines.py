"""Engines benchmark: ALS on Spark (pyspark MLlib, local mode) against implicit's ALS with the
same tuned parameters, on MovieLens-100K under the recommenders protocol.

1. `run_evaluate` with the tuner (--tune-seconds, default 60; implicit) chooses the
   parameters on the training part's own validation split, as `recsvc evaluate --tune` does.
2. With those parameters and no further tuning, the same split is fitted and scored twice in
   this run: implicit, then Spark (training.models.spark_als, with its translation of alpha
   and regularisation). Reported: each engine's P@10 and NDCG@10 on the test part, fit
   seconds, and `spark_to_implicit_precision_ratio` (target: within 5%, >= 0.95).

Needs ../shared/data/ml-100k (skips with a message without it), pyspark and a Java 17 runtime.
Usage: python bench/engines.py [--tune-seconds S] [--seed N]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality_data import SHARED_DATA, Missing, ml100k  # noqa: E402

from training.evaluation.evaluate import EvalSpec  # noqa: E402
from training.models.factors import FitParams  # noqa: E402
from training.models.pipeline import run_evaluate  # noqa: E402
from training.models.tuner import Objective, TuneBudget  # noqa: E402


def scored(report: dict[str, Any], seconds: float) -> dict[str, Any]:
    return {
        "precision_at_10": round(report["precision_at_10"], 4),
        "ndcg_at_10": round(report["ndcg_at_10"], 4),
        "fit_seconds": round(report["stages"]["fit"]["seconds"], 2),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tune-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        try:
            prepared = ml100k(SHARED_DATA, Path(work), None, args.seed)
        except Missing as exc:
            print(f"skipped: {exc}", file=sys.stderr)
            print(json.dumps({"skipped": str(exc)}))
            return
        source, spec = prepared.source, prepared.split
        print(f"tuning on {prepared.description} ({args.tune_seconds:g} s) ...", flush=True)
        tuned = run_evaluate(
            source,
            spec,
            FitParams(seed=args.seed),
            budget=TuneBudget(args.tune_seconds),
            objective=Objective(),
            eval_spec=EvalSpec(),
        )
        params = FitParams.from_dict(tuned["params"])
        if params.algorithm != "als":
            raise SystemExit(f"the tuner chose {params.algorithm}: the Spark engine fits ALS")
        print(f"tuned: {params}", flush=True)
        results: dict[str, Any] = {}
        for engine in ("implicit", "spark"):
            started = time.perf_counter()
            report = run_evaluate(source, spec, params, eval_spec=EvalSpec(), engine=engine)
            results[engine] = scored(report, time.perf_counter() - started)
            print(f"{engine}: {results[engine]}", flush=True)
    ratio = results["spark"]["precision_at_10"] / results["implicit"]["precision_at_10"]
    print(
        json.dumps(
            {
                "dataset": "ml100k",
                "protocol": spec.protocol.value,
                "params": params.as_dict(),
                **results,
                "spark_to_implicit_precision_ratio": round(ratio, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
