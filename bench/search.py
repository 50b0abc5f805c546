"""The tuner's search with Optuna's TPE (shipped) against the same search walked at random:
the same space, validation split, objective, time budget and late phases; each choice
refitted on the training part and scored on the test part.

Issue 15 asked whether a library built for the search gets more from the same budget than
random search. This script measures it on the datasets of bench/quality.py that have no
time (MovieLens-100K, COIL 2000: no trending prior or recency phase, which the sampler does
not touch), running `tune` exactly as `--tune` does, once per sampler.

Usage: python bench/search.py [--datasets ml100k,coil2000] [--seconds 120]
Last line: JSON with, per dataset, each search's trials, family, best validation score and
test figures, and `tpe_to_random` (the ratio of their test headlines).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quality_data import SHARED_DATA, Missing, coil2000, ml100k

from training.data.matrix import ConfidenceWeights
from training.data.splits import split
from training.evaluation.evaluate import EvalSpec, FactorScorer, evaluate, evaluation_set
from training.models.factors import FitParams, fit
from training.models.pipeline import Stages, load_dataset
from training.models.tuner import TuneBudget, tune

HEADLINE = {"ml100k": "ndcg_at_10", "coil2000": "product_hit_at_5"}


def figures(params: FitParams, train: Any, evaluated: Any) -> dict[str, float | None]:
    factors = fit(train.interactions.confidence, params)
    report = evaluate(FactorScorer(factors, train.interactions.index), evaluated, EvalSpec())
    has_videos = report.videos.users > 0
    return {
        "ndcg_at_10": report.videos.ndcg if has_videos else None,
        "precision_at_10": report.videos.precision if has_videos else None,
        "product_hit_at_5": report.product_hit_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ml100k,coil2000")
    parser.add_argument("--seconds", type=float, default=120.0, help="budget per search")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    args = parser.parse_args()
    results: dict[str, Any] = {"benchmark": "search", "seconds_per_search": args.seconds}
    work = Path(tempfile.mkdtemp(prefix="recsvc-search-"))
    for name in [n.strip() for n in args.datasets.split(",") if n.strip()]:
        loader = {"ml100k": ml100k, "coil2000": coil2000}.get(name)
        if loader is None:
            parser.error(f"unknown dataset {name!r}: ml100k or coil2000")
        try:
            prepared = loader(args.data_dir, work, None, args.seed)
        except Missing as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            results[name] = {"skipped": str(exc)}
            continue
        dataset, _ = load_dataset(prepared.source, ConfidenceWeights(), Stages())
        train, test = split(dataset, prepared.split)
        evaluated = evaluation_set(train.interactions, test, EvalSpec())
        results[name] = {}
        for sampler in ("tpe", "random"):
            started = time.perf_counter()
            tuned = tune(
                train,
                prepared.split,
                TuneBudget(args.seconds),
                base=FitParams(seed=args.seed),
                sampler=sampler,  # type: ignore[arg-type]
            )
            results[name][sampler] = {
                "trials": len(tuned.trials),
                "validation": tuned.best_score,
                "seconds": round(time.perf_counter() - started, 1),
                "family": tuned.best.algorithm,
                **figures(tuned.best, train, evaluated),
            }
        headline = HEADLINE[name]
        ours, theirs = results[name]["tpe"][headline], results[name]["random"][headline]
        results[name]["tpe_to_random"] = round(ours / theirs, 4) if theirs else None
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
