"""The tuner's search against Optuna's TPE, with the same space, validation split, objective
and time budget, both refitted on the training part and scored on the test part.

Issue 15 asked whether a library built for the search (Optuna's TPE) gets more from the same
budget than the shipped search. This script measures it on the datasets of bench/quality.py
that have no time (MovieLens-100K, COIL 2000: no trending prior or recency phase, which TPE
would not change): the shipped tuner as `--tune` runs it (ALS and EASE sharing the time,
then revalidation) against TPE over the ALS space.

Optuna is not a dependency of recsvc: `pip install optuna` first (the script says so when it
is absent). Usage: python bench/search.py [--datasets ml100k,coil2000] [--seconds 120]
Last line: JSON with, per dataset, each search's trials, best validation score and test
figures, and `tpe_to_shipped` (the ratio of their test headlines).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from quality_data import SHARED_DATA, Missing, coil2000, ml100k

from training.data.matrix import ConfidenceWeights
from training.data.splits import split
from training.evaluation.evaluate import EvalSpec, FactorScorer, evaluate, evaluation_set
from training.models.factors import FitParams, ModelFitError, fit
from training.models.pipeline import Stages, load_dataset
from training.models.tuner import (
    ALPHA_LOG10,
    FACTOR_CHOICES,
    ITERATION_CHOICES,
    REGULARIZATION_LOG10,
    Objective,
    TuneBudget,
    tune,
)

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


def tpe(train: Any, split_spec: Any, seconds: float, seed: int) -> tuple[FitParams, int, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    inner = replace(split_spec, seed=split_spec.seed + 1, train_ratio=0.8)  # the tuner's
    fit_part, held_out = split(train, inner)
    validation = evaluation_set(fit_part.interactions, held_out, EvalSpec(max_users=5_000))
    objective = Objective()
    base = FitParams(seed=seed)

    def trial(t: Any) -> float:
        params = replace(
            base,
            factors=t.suggest_categorical("factors", list(FACTOR_CHOICES)),
            regularization=10 ** t.suggest_float("log10_regularization", *REGULARIZATION_LOG10),
            alpha=10 ** t.suggest_float("log10_alpha", *ALPHA_LOG10),
            confidence=t.suggest_categorical("confidence", ["linear", "log"]),
            iterations=t.suggest_categorical("iterations", list(ITERATION_CHOICES)),
        )
        t.set_user_attr("params", params.as_dict())
        try:
            factors = fit(fit_part.interactions.confidence, params)
        except ModelFitError:
            return float("-inf")
        scorer = FactorScorer(factors, fit_part.interactions.index)
        return objective.score(evaluate(scorer, validation, EvalSpec(max_users=5_000)))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(  # the shipped search's first trial: the defaults
        {
            "factors": base.factors,
            "log10_regularization": float(np.log10(base.regularization)),
            "log10_alpha": float(np.log10(base.alpha)),
            "confidence": base.confidence,
            "iterations": base.iterations,
        }
    )
    study.optimize(trial, timeout=seconds)
    best = FitParams.from_dict(study.best_trial.user_attrs["params"])
    return best, len(study.trials), float(study.best_value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="ml100k,coil2000")
    parser.add_argument("--seconds", type=float, default=120.0, help="budget per search")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", type=Path, default=SHARED_DATA)
    args = parser.parse_args()
    try:
        import optuna  # noqa: F401
    except ImportError:
        sys.exit("bench/search.py needs Optuna, which recsvc does not install: pip install optuna")
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
        started = time.perf_counter()
        shipped = tune(
            train, prepared.split, TuneBudget(args.seconds), base=FitParams(seed=args.seed)
        )
        shipped_seconds = time.perf_counter() - started
        started = time.perf_counter()
        best, trials, best_value = tpe(train, prepared.split, args.seconds, args.seed)
        tpe_seconds = time.perf_counter() - started
        ours, theirs = figures(shipped.best, train, evaluated), figures(best, train, evaluated)
        headline = HEADLINE[name]
        results[name] = {
            "shipped": {
                "trials": len(shipped.trials),
                "validation": shipped.best_score,
                "seconds": round(shipped_seconds, 1),
                "family": shipped.best.algorithm,
                **ours,
            },
            "tpe": {
                "trials": trials,
                "validation": best_value,
                "seconds": round(tpe_seconds, 1),
                "family": "als",
                **theirs,
            },
            "tpe_to_shipped": round(theirs[headline] / ours[headline], 4)  # type: ignore[operator]
            if ours[headline]
            else None,
        }
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
