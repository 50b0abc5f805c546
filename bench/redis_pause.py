"""Benchmark of the feed's latency while Redis is paused: feeds in flight during CLIENT PAUSE
against the same feeds measured just before it, in the same run, and the Redis timeout.

Sets up what bench/serve.py sets up (its functions, imported): the world and the model of
bench/out/serve when a run of bench/serve.py left them there, else a small synthetic world
(5,000 users, 500 videos, 50 products, 100,000 events) and an untuned ALS model in the work
dir; a private redis-server with the user vectors, catalogue and profiles; and `recsvc serve`
(one worker) on loopback with RECSVC_REDIS_TIMEOUT_MS (--redis-timeout-ms, default 100, the
service's default).

Then 16 clients (asyncio, in a thread of this process, one keep-alive connection each) each
ask for a feed of a random user of the world --rate (10) times a second, skipping the ticks
missed while they wait for an answer, as the fault tests' clients do. For each of --rounds
(2) rounds, Redis is paused with CLIENT PAUSE ALL, then WRITE (every write and script held,
reads served), --pause-ms (2500) each; before each pause, --baseline-seconds (4) of healthy
load. A write sent right after the pause is held until it ends; once it returns and the
feeds are no longer degraded, the next baseline starts.

Reported per mode, over the rounds' feeds pooled (and per round): p50, p99 and max latency of
the feeds in flight during the pause (sent before it ended, answered after it began), how
many were degraded, and the same figures for the feeds answered in the baseline window just
before it; the service's own count of degraded feeds by cause and of Redis timeouts over the
pause (/metrics). Target: p99 during the pause < the Redis timeout + 20 ms. The baseline says
what the machine gives when nothing is wrong: a baseline p99 already far from the feed's
usual few milliseconds means a noisy machine, and the pause figures are suspect with it.

Usage: python bench/redis_pause.py [--rounds R --pause-ms MS --baseline-seconds S]
       [--clients C --rate R --redis-timeout-ms MS] [--users N ...] [--out DIR] [--fresh]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).parent))
import serve as bench_serve  # noqa: E402  (bench/serve.py: world, model, Redis, server)

HOST = bench_serve.HOST
HERE = Path(__file__).resolve().parent
SERVE_WORK = HERE / "out" / "serve"  # bench/serve.py's work dir: its world and model
SMALL_WORLD = {"users": 5_000, "videos": 500, "products": 50, "events": 100_000}
MODES = ("ALL", "WRITE")
REQUEST_TIMEOUT = 10.0
MARKER_KEY = "bench:pause-marker"  # outside the service's key prefix
TARGET_MARGIN_MS = 20.0
NOISY_BASELINE_P99_MS = 20.0  # bench/serve.py's feed target: a baseline over it is suspect


# --------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Feed:
    """One feed request: when it was sent and answered (time.monotonic), and what came back
    (status 0: no HTTP answer)."""

    started: float
    ended: float
    status: int
    degraded: bool | None

    @property
    def ms(self) -> float:
        return (self.ended - self.started) * 1000


class FeedLoad:
    """`clients` paced feed clients on one event loop in a background thread."""

    def __init__(self, port: int, ids: list[str], clients: int, rate: float) -> None:
        self.port, self.ids, self.clients, self.interval = port, ids, clients, 1 / rate
        self.feeds: list[Feed] = []
        self.errors: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> FeedLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(REQUEST_TIMEOUT + 5)

    def snapshot(self) -> list[Feed]:
        return list(self.feeds)

    async def _main(self) -> None:
        await asyncio.gather(*(self._client(number) for number in range(self.clients)))

    async def _client(self, number: int) -> None:
        rng = random.Random(bench_serve.SEED + number)
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        tick = time.monotonic() + self.interval * number / self.clients  # spread the clients
        while not self._stop.is_set():
            now = time.monotonic()
            if tick > now:
                await asyncio.sleep(tick - now)
            path = f"/v1/feed?user_id={rng.choice(self.ids)}&n={bench_serve.FEED_PAGE}"
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                f"{bench_serve.AUTH_HEADER}\r\n\r\n"
            ).encode()
            started = time.monotonic()
            status, degraded = 0, None
            try:
                if writer is None or reader is None:
                    reader, writer = await asyncio.open_connection(HOST, self.port)
                writer.write(request)
                status, body = await asyncio.wait_for(
                    bench_serve.read_response(reader), REQUEST_TIMEOUT
                )
                if status == 200:
                    degraded = bool(json.loads(body)["degraded"])
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                self.errors[type(exc).__name__] += 1
                if writer is not None:
                    writer.close()
                reader = writer = None
            self.feeds.append(Feed(started, time.monotonic(), status, degraded))
            tick += self.interval * max(1, math.ceil((time.monotonic() - tick) / self.interval))
        if writer is not None:
            writer.close()


# --------------------------------------------------------------------------- figures


def percentile(values: list[float], q: float) -> float:
    """Nearest rank, as the fault tests compute it; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def figures(feeds: list[Feed]) -> dict[str, Any]:
    latencies = [f.ms for f in feeds]
    return {
        "feeds": len(feeds),
        "degraded": sum(1 for f in feeds if f.degraded),
        "not_200": sum(1 for f in feeds if f.status != 200),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies, default=0.0), 2),
    }


def service_counts(port: int) -> Counter[str]:
    """The service's degraded feeds by cause and Redis errors by kind, so far (/metrics)."""
    counts: Counter[str] = Counter()
    text = bench_serve.get(port, "/metrics")[1].decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "recsvc_degraded_responses_total":
                counts[f"degraded_{sample.labels['cause']}"] += int(sample.value)
            elif sample.name == "recsvc_redis_errors_total":
                counts[f"redis_{sample.labels['kind']}"] += int(sample.value)
    return counts


@dataclass(frozen=True)
class Pause:
    """One pause: its mode and round, the windows it defines (time.monotonic), and what the
    service counted over it."""

    mode: str
    round: int
    baseline_from: float
    paused: float  # just before CLIENT PAUSE was sent
    resumed: float  # paused + the pause: Redis held commands until then at least
    released: float  # when the write sent during the pause returned
    recovered: float | None  # when a feed sent after `released` was not degraded
    service: dict[str, int]

    def during(self, feeds: list[Feed]) -> list[Feed]:
        """In flight during the pause: sent before it ended, answered after it began."""
        return [f for f in feeds if f.started < self.resumed and f.ended > self.paused]

    def before(self, feeds: list[Feed]) -> list[Feed]:
        """The baseline: sent and answered in the healthy window just before the pause."""
        return [f for f in feeds if f.started >= self.baseline_from and f.ended < self.paused]


def pause_once(
    load: FeedLoad, port: int, redis_url: str, mode: str, number: int, args: argparse.Namespace
) -> Pause:
    """A healthy baseline window, then CLIENT PAUSE `mode`; returns once feeds are served
    without degradation again (or 30 s after the pause)."""
    baseline_from = time.monotonic()
    time.sleep(args.baseline_seconds)  # paces: the baseline's feeds
    counts_before = service_counts(port)
    with redis.Redis.from_url(redis_url) as client:
        paused = time.monotonic()
        client.execute_command("CLIENT", "PAUSE", args.pause_ms, mode)
        client.set(MARKER_KEY, number)  # a write: held until the pause ends, in either mode
        released = time.monotonic()
    deadline = released + 30
    recovered = None
    while recovered is None and time.monotonic() < deadline:
        healthy = [f.ended for f in load.snapshot() if f.started > released and not f.degraded]
        recovered = min(healthy) if healthy else None
        time.sleep(0.05)
    counts = service_counts(port)
    counts.subtract(counts_before)
    pause = Pause(
        mode=mode,
        round=number,
        baseline_from=baseline_from,
        paused=paused,
        resumed=paused + args.pause_ms / 1000,
        released=released,
        recovered=recovered,
        service={k: v for k, v in sorted(counts.items()) if v},
    )
    feeds = load.snapshot()
    during, before = figures(pause.during(feeds)), figures(pause.before(feeds))
    print(
        f"round {number} {mode:>5}: during {during['feeds']} feeds ({during['degraded']} "
        f"degraded) p50 {during['p50_ms']:.1f} p99 {during['p99_ms']:.1f} max "
        f"{during['max_ms']:.1f} ms; before p50 {before['p50_ms']:.1f} p99 "
        f"{before['p99_ms']:.1f} ms; service {pause.service}",
        file=sys.stderr,
        flush=True,
    )
    return pause


def report(
    pauses: list[Pause], load: FeedLoad, args: argparse.Namespace, extra: dict[str, Any]
) -> dict[str, Any]:
    feeds = load.snapshot()
    target = args.redis_timeout_ms + TARGET_MARGIN_MS
    modes: dict[str, Any] = {}
    for mode in MODES:
        mine = [p for p in pauses if p.mode == mode]
        during = figures([f for p in mine for f in p.during(feeds)])
        before = figures([f for p in mine for f in p.before(feeds)])
        service: Counter[str] = Counter()
        for p in mine:
            service.update(p.service)
        modes[mode.lower()] = {
            "during": during,
            "before": before,
            "p99_over_before_ms": round(during["p99_ms"] - before["p99_ms"], 2),
            "p99_over_timeout_ms": round(during["p99_ms"] - args.redis_timeout_ms, 2),
            "target_met": during["p99_ms"] < target and during["not_200"] == 0,
            "service": dict(sorted(service.items())),
            "pause_held_ms": [round((p.released - p.paused) * 1000) for p in mine],
            "recovered_after_ms": [
                None if p.recovered is None else round((p.recovered - p.released) * 1000)
                for p in mine
            ],
            "per_round": [
                {
                    "during_p99_ms": figures(p.during(feeds))["p99_ms"],
                    "before_p99_ms": figures(p.before(feeds))["p99_ms"],
                }
                for p in mine
            ],
        }
    worst_before = max(m["before"]["p99_ms"] for m in modes.values())
    return {
        "benchmark": "redis_pause",
        "redis_timeout_ms": args.redis_timeout_ms,
        "target_p99_ms": target,
        "targets_met": {mode: result["target_met"] for mode, result in modes.items()},
        **modes,
        "baseline_noisy": worst_before > NOISY_BASELINE_P99_MS,
        "pause_ms": args.pause_ms,
        "rounds": args.rounds,
        "clients": args.clients,
        "feeds_per_second_per_client": args.rate,
        "feeds": len(feeds),
        "feeds_not_200": sum(1 for f in feeds if f.status != 200),
        "connection_errors": dict(load.errors),
        **extra,
        "cpus": os.cpu_count(),
    }


def summary(result: dict[str, Any]) -> str:
    lines = [
        f"redis-pause benchmark: {result['clients']} clients x "
        f"{result['feeds_per_second_per_client']} feeds/s, {result['rounds']} round(s) of "
        f"CLIENT PAUSE ALL and WRITE, "
        f"{result['pause_ms']} ms each; Redis timeout {result['redis_timeout_ms']} ms, "
        f"target p99 during the pause < {result['target_p99_ms']:.0f} ms "
        f"({result['users']:,} users, model {result['model_version']})"
    ]
    for mode in ("all", "write"):
        m = result[mode]
        d, b = m["during"], m["before"]
        lines.append(
            f"  {mode.upper():>5}: during {d['feeds']:4d} feeds ({d['degraded']} degraded) "
            f"p50 {d['p50_ms']:6.1f}  p99 {d['p99_ms']:6.1f}  max {d['max_ms']:6.1f} ms | "
            f"before {b['feeds']:4d} feeds p50 {b['p50_ms']:5.1f}  p99 {b['p99_ms']:5.1f}  "
            f"max {b['max_ms']:6.1f} ms | target met: {m['target_met']}"
        )
    if result["baseline_noisy"]:
        lines.append(
            f"  WARNING: a baseline p99 over {NOISY_BASELINE_P99_MS:.0f} ms: a noisy machine, "
            "the figures are suspect"
        )
    if result["feeds_not_200"] or result["connection_errors"]:
        lines.append(
            f"  WARNING: {result['feeds_not_200']} feeds not answered 200, connection errors "
            f"{result['connection_errors']}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- set-up and main


def choose_work(args: argparse.Namespace) -> Path:
    """Where the world and the model are: bench/out/serve when it holds both and no size was
    asked for (its sizes become the args'), else the work dir, with the small world."""
    asked = any(getattr(args, size) is not None for size in SMALL_WORLD)
    if not args.fresh and not asked and bench_serve.newest_model(SERVE_WORK / "models"):
        try:
            spec = json.loads((SERVE_WORK / "world" / "world.json").read_text())["spec"]
            for size in SMALL_WORLD:
                setattr(args, size, spec[size])
        except (OSError, ValueError, KeyError):
            pass
        else:
            if bench_serve.world_matches(SERVE_WORK / "world", args):
                print(f"reusing the world and the model in {SERVE_WORK}", file=sys.stderr)
                return SERVE_WORK
    for size, value in SMALL_WORLD.items():
        if not asked or getattr(args, size) is None:
            setattr(args, size, value)
    work: Path = args.out.resolve()
    return work


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause-ms", type=int, default=2500)
    parser.add_argument("--baseline-seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=10.0, help="feeds per second per client")
    parser.add_argument("--redis-timeout-ms", type=int, default=100)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before the first")
    for size, value in SMALL_WORLD.items():
        parser.add_argument(
            f"--{size}", type=int, help=f"a world of this size (default: bench/out/serve's, "
            f"else {value:,})",
        )  # fmt: skip
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE / "out" / "redis_pause",
        help="work dir: Redis, the server's log, and the small world when bench/out/serve "
        "has none (default bench/out/redis_pause)",
    )
    parser.add_argument(
        "--fresh", action="store_true", help="ignore bench/out/serve; regenerate the small world"
    )
    return parser.parse_args()


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    source = choose_work(args)
    stages: dict[str, float] = {}
    model = bench_serve.prepare_model(source, args, stages)
    world = source / "world"
    work: Path = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    ids_path, _ = bench_serve.write_load_files(work, world)
    ids = ids_path.read_text().split()
    redis_dir, server = work / "redis", None
    pauses: list[Pause] = []
    try:
        redis_url = bench_serve.start_redis(redis_dir)
        env = bench_serve.service_env(
            redis_url, model.parent, RECSVC_REDIS_TIMEOUT_MS=str(args.redis_timeout_ms)
        )
        bench_serve.load_redis(env, model, world, stages)
        port, log = bench_serve.free_port(), work / "server.log"
        server = bench_serve.start_server(env, port, log)
        bench_serve.wait_ready(server, port, log, timeout=120)
        print(f"recsvc serve ready on port {port}", file=sys.stderr, flush=True)
        with FeedLoad(port, ids, args.clients, args.rate) as load:
            time.sleep(args.warmup)  # paces: warm-up, not measured
            for number in range(1, args.rounds + 1):
                for mode in MODES:
                    pauses.append(pause_once(load, port, redis_url, mode, number, args))
        if server.poll() is not None:
            sys.exit(f"recsvc serve died:\n{log.read_text()[-3000:]}")
    finally:
        bench_serve.stop_process(server)
        bench_serve.stop_redis(redis_dir)
    extra = {
        "users": args.users,
        "videos": args.videos,
        "products": args.products,
        "events": args.events,
        "model_version": model.name,
        "setup_seconds": {k: round(v, 1) for k, v in stages.items()},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return report(pauses, load, args, extra)


def main() -> None:
    args = parse_args()
    bench_serve.exit_on_sigterm()
    result = benchmark(args)
    print(summary(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
