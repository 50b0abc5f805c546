"""Calibration of the planner (`recsvc ab plan`, training.ab.plan): an effect of the size it
says is detected with 80% power must be detected in about 80% of experiments.

Everything but the people is the real code, as in bench/aa.py: a synthetic world, a model,
`recsvc serve` on a private Redis with one experiment defined (so that feeds are logged as
exposures), one simulated day of `--users` users, the drain. The planner reads that day and
predicts, per metric, the minimum detectable effect (MDE) of a 50/50 experiment over its users
at α = 0.05 and 80% power. Then `--runs` experiments are replayed on the same users: each a new
random 50/50 split, the treatment's numerator multiplied by 1 + MDE (the planted effect), and
the report's own comparison (training.ab.stats.compare) decides; `detected_share` is the share
where the metric's p < α (target: within 10 points of `predicted_power`).

Usage: python bench/power.py [--users 3000 --runs 200 --metric attach_conversion --seed 0]
In a fresh clone: `.venv/bin/python bench/power.py` after scripts/test. About 2 minutes.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
from aa import definition, simulated_day
from serve import exit_on_sigterm

from training.ab.plan import history_as_one_variant, mde, spread
from training.ab.report import load_exposures
from training.ab.stats import METRICS, VariantData, compare
from training.data.events import load_events

ALPHA, POWER = 0.05, 0.8


def subset(data: VariantData, name: str, rows: np.ndarray) -> VariantData:
    return VariantData(name, *(np.asarray(getattr(data, f.name))[rows] for f in fields(data)[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=3000, help="Simulated users (one day).")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--metric", default="attach_conversion", choices=[m.name for m in METRICS])
    parser.add_argument("--out", type=Path, default=Path("bench/out/power"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    exit_on_sigterm()
    started = time.perf_counter()
    simulated_day(args.out, definition(1), args.users, args.seed)
    exposures = load_exposures(args.out / "exposures")
    events, _ = load_events(args.out / "events")
    data = history_as_one_variant(exposures, events)
    users = len(data.exposures)
    rng = np.random.default_rng(args.seed)
    results = {}
    for metric in METRICS:
        s = spread(data, metric)
        if s.relative_variance is None:
            continue
        effect = mde(s.relative_variance, users, ALPHA, POWER, 0.5)
        detected = 0
        for _ in range(args.runs):
            order = rng.permutation(users)
            control = subset(data, "control", order[: users // 2])
            treatment = subset(data, "treatment", order[users // 2 :])
            planted = np.asarray(getattr(treatment, metric.numerator)) * (1 + effect)
            values = {f.name: getattr(treatment, f.name) for f in fields(treatment)}
            treatment = VariantData(**{**values, metric.numerator: planted})
            row = next(
                r for r in compare(control, treatment, alpha=ALPHA) if r.metric == metric.name
            )
            detected += (
                row.p_value is not None
                and row.p_value < ALPHA
                and (row.relative_difference or 0) > 0
            )
        results[metric.name] = {
            "mde": round(effect, 4),
            "detected_share": round(detected / args.runs, 3),
        }
        print(
            f"{metric.name}: MDE +{effect:.1%}, detected in {detected}/{args.runs}", file=sys.stderr
        )
    primary = results[args.metric]
    print(json.dumps({
        "benchmark": "power",
        "users": users,
        "runs": args.runs,
        "alpha": ALPHA,
        "metric": args.metric,
        "predicted_power": POWER,
        "mde": primary["mde"],
        "detected_share": primary["detected_share"],
        "by_metric": results,
        "targets_met": {"detected_share": abs(primary["detected_share"] - POWER) <= 0.10},
        "seconds": round(time.perf_counter() - started, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
