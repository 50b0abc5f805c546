"""Benchmark of `recsvc publish`: user vectors written per second against Redis's own SET rate.

Exports a model directory with N users (default 1M) × 64 random factors, starts a private
redis-server on a free port and publishes the vectors through recsvc.registry.publish (the code
`recsvc publish` runs). Then, in the same run and against the same (emptied) server, it runs
`redis-benchmark` with pipelined SETs (-P 64, its default 50 clients) of the same count and
value size (68 bytes, a packed 64-dimension vector). The publish time is the whole of
`recsvc publish`: verifying the model directory (checksums) and reading the factors included.

Prints the figures; the last line is JSON: users_per_s, redis_set_per_s, ratio
(= users_per_s ÷ redis_set_per_s; target ≥ 0.3) and bytes_per_user (growth of Redis
used_memory per user; target ≤ 200).

Usage: python bench/publish.py [--users N] [--dimension D] [--out DIR]
Needs the training extra (to export the model) and redis-benchmark on PATH (Debian's
redis-tools); without redis-benchmark it says so and reports the publish figures alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import redis
import redis.asyncio as aioredis

from recsvc.contract.keys import Keys
from recsvc.registry.publish import PublishReport, publish
from sandbox.embedded_redis import EmbeddedRedis
from training.models.export import export_model

TARGET_RATIO, TARGET_BYTES = 0.3, 200.0


def make_model(out: Path, users: int, dimension: int) -> Path:
    """A model directory with random factors: 1,000 videos, 50 products, `users` users."""
    rng = np.random.default_rng(42)
    items = rng.normal(size=(1050, dimension)).astype(np.float32)
    user_ids = np.array([f"u{i:07d}" for i in range(users)])
    arrays = {
        "user_factors.npy": rng.normal(size=(users, dimension)).astype(np.float32),
        "user_ids.npy": user_ids,
    }
    videos = np.array([f"v{i:04d}" for i in range(1000)])
    products = np.array([f"p{i:02d}" for i in range(50)])
    info = {"params": {"regularization": 0.05, "alpha": 1.0}}
    return export_model(out, items, videos, products, info, extra_arrays=arrays)


def publish_once(url: str, directory: Path) -> PublishReport:
    async def work() -> PublishReport:
        client = aioredis.Redis.from_url(url, socket_timeout=60)
        try:
            return await publish(client, Keys(), directory, grace_seconds=0)
        finally:
            await client.aclose()

    return asyncio.run(work())


def redis_set_rate(port: int, count: int, value_size: int) -> float | None:
    """redis-benchmark's pipelined SET rate, or None without redis-benchmark."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    command = [
        binary, "-h", "127.0.0.1", "-p", str(port), "-t", "set", "-n", str(count),
        "-P", "64", "-d", str(value_size), "-r", str(count), "--csv",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    match = re.search(r'"SET","([0-9.]+)"', result.stdout)
    if match is None:
        raise RuntimeError(f"unexpected redis-benchmark output: {result.stdout[-300:]}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--dimension", type=int, default=64)
    parser.add_argument("--out", type=Path, default=Path("bench/out/publish"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    started = time.perf_counter()
    directory = make_model(args.out / "models", args.users, args.dimension)
    print(f"model with {args.users:,} users exported in {time.perf_counter() - started:.1f}s")
    with EmbeddedRedis(args.out / "redis") as server:
        report = publish_once(server.url, directory)
        users_per_s = report.users / report.seconds
        print(
            f"recsvc publish: {report.users:,} users in {report.seconds:.2f}s = "
            f"{users_per_s:,.0f} users/s, {report.bytes_per_user:.1f} bytes per user"
        )
        redis.Redis(port=server.port).flushall()
        value_size = 4 + args.dimension
        set_rate = redis_set_rate(server.port, args.users, value_size)
    if set_rate is None:
        print("redis-benchmark not found on PATH: no baseline (install redis-tools)")
    else:
        print(f"redis-benchmark SET -P 64, {value_size}-byte values: {set_rate:,.0f} /s")
    ratio = None if set_rate is None else round(users_per_s / set_rate, 3)
    print(
        f"ratio {ratio} (target >= {TARGET_RATIO}), bytes per user {report.bytes_per_user} "
        f"(target <= {TARGET_BYTES})"
    )
    figures = {
        "benchmark": "publish",
        "users": report.users,
        "dimension": args.dimension,
        "users_per_s": round(users_per_s),
        "redis_set_per_s": None if set_rate is None else round(set_rate),
        "ratio": ratio,
        "bytes_per_user": report.bytes_per_user,
        "publish_seconds": report.seconds,
        "targets_met": {
            "ratio": ratio is not None and ratio >= TARGET_RATIO,
            "bytes": report.bytes_per_user <= TARGET_BYTES,
        },
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
