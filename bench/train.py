"""Benchmark of the offline pipeline at production scale.

Builds a synthetic world (default 1M users / 10k videos / 200 products / 10M events), then
runs the real commands as separate processes and measures, in the same run:

- each stage's wall time and peak memory (generate, load, build matrix, fit, evaluate);
- the whole `recsvc train` command's wall time, and implicit's `fit` alone on the same matrix
  with the same parameters and threads; `overhead_ratio` = the first ÷ the second.

Usage: python bench/train.py [--users N --videos N --products N --events N] [--keep]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIT_ALONE = """
import json, sys, time
from pathlib import Path
from threadpoolctl import threadpool_limits
from implicit.cpu.als import AlternatingLeastSquares
from training.data.events import load_events
from training.models.factors import FitParams, default_threads
from training.data.matrix import build_interactions
events, _ = load_events(Path(sys.argv[1]))
matrix = build_interactions(events).confidence
p = FitParams()
with threadpool_limits(limits=1, user_api="blas"):
    model = AlternatingLeastSquares(factors=p.factors, regularization=p.regularization,
        alpha=p.alpha, iterations=p.iterations, calculate_training_loss=False,
        num_threads=default_threads(), random_state=p.seed)
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
    print(json.dumps({"fit_seconds": time.perf_counter() - started, "nnz": matrix.nnz}))
"""


def run(command: list[str]) -> tuple[float, float, str]:
    """Run a process to completion: wall seconds, its own peak RSS in MB, its stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        stderr = process.stderr.read().decode() if process.stderr else ""
        out.seek(0)
        stdout = out.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{stderr[-3000:]}\n{stdout[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument("--keep", action="store_true", help="keep the generated world")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="recsvc-bench-"))
    world, factors = workdir / "world", workdir / "factors"
    recsvc = [sys.executable, "-m", "recsvc"]
    stages: dict[str, dict[str, float]] = {}
    try:
        seconds, rss, _ = run(
            [
                *recsvc,
                "synth",
                "--out",
                str(world),
                "--users",
                str(args.users),
                "--videos",
                str(args.videos),
                "--products",
                str(args.products),
                "--events",
                str(args.events),
            ]
        )
        stages["generate"] = {"seconds": round(seconds, 2), "peak_rss_mb": round(rss)}
        print(f"generate: {seconds:.1f}s, {rss:.0f} MB", file=sys.stderr)

        train_seconds, train_rss, stdout = run(
            [*recsvc, "train", "--world", str(world), "--out", str(factors), "--json"]
        )
        train = last_json(stdout)
        for name in ("load", "build_matrix", "fit"):
            stages[name] = train["stages"][name]
        print(f"train command: {train_seconds:.1f}s, {train_rss:.0f} MB", file=sys.stderr)

        _, _, stdout = run([sys.executable, "-c", FIT_ALONE, str(world / "events")])
        fit_alone = last_json(stdout)["fit_seconds"]
        print(f"implicit fit alone: {fit_alone:.1f}s", file=sys.stderr)

        eval_seconds, eval_rss, stdout = run(
            [*recsvc, "evaluate", "--world", str(world), "--protocol", "temporal", "--json"]
        )
        evaluation = last_json(stdout)
        stages["evaluate"] = evaluation["stages"]["evaluate"]
        stages["evaluate_command"] = {
            "seconds": round(eval_seconds, 2),
            "peak_rss_mb": round(eval_rss),
        }
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    result = {
        "benchmark": "train",
        "users": args.users,
        "videos": args.videos,
        "products": args.products,
        "events": args.events,
        "nonzeros": train["data"]["nonzeros"],
        "stages": stages,
        "train_command_seconds": round(train_seconds, 2),
        "train_command_peak_rss_mb": round(train_rss),
        "fit_alone_seconds": round(fit_alone, 2),
        "overhead_ratio": round(train_seconds / fit_alone, 3),
        "precision_at_10": evaluation["precision_at_10"],
        "popularity_precision_at_10": evaluation["baselines"]["popularity"]["precision_at_10"],
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
