"""Soak benchmark: mixed feed and event load on one `recsvc serve` for ten minutes, watching
the server's resident memory.

Sets up what bench/serve.py sets up (its functions, imported): a synthetic world (default
100k users, 10k videos, 200 products, 1.5M events) and an untuned ALS model, a private
redis-server on a free loopback port with the user vectors, catalogue and profiles, and
`recsvc serve` (one uvicorn worker, a separate process) on loopback, started with serve's app
and admin API keys; every request carries `Authorization: Bearer <app key>`.

Then an asyncio client in another process, with keep-alive connections:
1. a short closed-loop pre-run of the same mix measures the saturation rate (skipped with
   --rate);
2. the soak: an open-loop schedule at --load-fraction (0.3) of that rate, spread over
   --connections (16), for --duration (600 s), the first --warmup (60 s) a warm-up. 80% of
   requests are GET /v1/feed for a random user (85% users of the world, 10% a pool of new
   users who also send events, so their feeds come from fold-in, 5% never seen), 20% POST
   /v1/events with 1 to 16 views, clicks, impressions and purchases with fresh event ids,
   5% of them re-sent (duplicates). Latency runs from the scheduled send time, so a stall
   also counts against the requests queued behind it (and, reported beside it, from the
   actual send).

Events accumulate in Redis for the whole run (no drain): RECSVC_STREAM_MAX_LEN is set to
20M, well above what ten minutes send, so no event is refused as "stream full".

Every second the server's VmRSS (and RssAnon) is read from /proc/<pid>/status. Reported:
RSS after warm-up (median of the 5 s after it), at the end (median of the last 5 s), the max,
growth = (end - after warm-up) / after warm-up, and the growth of a least-squares line over
the post-warm-up samples (target: both under 5%); requests, errors (non-2xx by status,
connection errors by type) and p50/p99/max latency per kind after warm-up; Redis used_memory
at start and end; and what the service counted meanwhile (/metrics: feeds by source, events
by outcome, Redis errors, requests its own timing put within 0.1 s and 1 s, which tells a
stall in the server from one in the client or the machine). The work dir also gets rss.csv
(every sample) and latency.csv (per second). Absolute latencies and rates depend on the
machine (and on whatever else runs on it); the RSS growth is the figure that matters.

Usage: python bench/soak.py [--duration S --warmup S] [--rate R | --load-fraction F]
       [--connections C] [--users N --videos N --products N --events N] [--out DIR] [--fresh]
The work dir (default bench/out/soak) keeps the world and the model for the next run.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
from array import array
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import serve  # bench/serve.py: world, model, Redis and server set-up

HOST = serve.HOST
FEED_SHARE = 0.80  # the rest are event batches
NEW_USER_SHARE, NEVER_SEEN_SHARE = 0.10, 0.05  # of feed requests; the rest are world users
NEW_USERS = 20_000  # the pool of users unknown to the model who send events
NEW_USER_EVENT_SHARE = 0.20  # of events, sent by the new users
BATCH_SIZES = (1, 16)
DUPLICATE_SHARE = 0.05  # of events: one sent before, sent again
STREAM_MAX_LEN = 20_000_000
REQUEST_TIMEOUT = 5.0
RSS_WINDOW = 5.0  # seconds of samples whose median is "after warm-up" and "at the end"
TARGET_GROWTH = 0.05
LAG_WARNING_MS = 100.0  # sends later than this against the schedule: the rate was too high
START_DELAY = 3.0  # seconds between launching the load generator and its first request


@dataclass(frozen=True)
class LoadSpec:
    """What the load-generator process does (passed to it as JSON)."""

    port: int
    key: str
    ids_path: str
    world: str
    connections: int
    seconds: float
    warmup: float
    rate: float | None  # requests per second; None: closed loop (the saturation pre-run)
    start_at: float  # wall-clock time of the first request
    seed: int
    timeline_path: str  # per-second requests and latencies, as CSV


# --------------------------------------------------------------------------- load generator


class Mix:
    """The next request of the mix: a feed for a random user or a batch of events."""

    def __init__(self, spec: LoadSpec) -> None:
        self.rng = random.Random(spec.seed)
        self.port, self.key = spec.port, spec.key
        self.ids = Path(spec.ids_path).read_text().split()
        catalog = Path(spec.world) / "catalog"
        self.videos = read_ids(catalog / "videos.jsonl", "video_id")
        self.products = read_ids(catalog / "products.jsonl", "product_id")
        self.token = f"{spec.seed:x}{secrets.token_hex(3)}"
        self.sent = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=2000)
        self.events_sent = self.duplicates_sent = 0

    def next(self) -> tuple[str, bytes]:
        """The kind ("feed" or "events") and the raw HTTP/1.1 request."""
        if self.rng.random() < FEED_SHARE:
            return "feed", self.request("GET", f"/v1/feed?user_id={self.feed_user()}&n=20")
        size = self.rng.randint(*BATCH_SIZES)
        events = [self.event() for _ in range(size)]
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        return "events", self.request("POST", "/v1/events", body)

    def request(self, method: str, path: str, body: bytes = b"") -> bytes:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Authorization: Bearer {self.key}\r\n"
        )
        if method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        return (head + "\r\n").encode() + body

    def feed_user(self) -> str:
        draw = self.rng.random()
        if draw < NEVER_SEEN_SHARE:
            return f"nobody{self.rng.randrange(10_000_000):07d}"
        if draw < NEVER_SEEN_SHARE + NEW_USER_SHARE:
            return self.new_user()
        return self.rng.choice(self.ids)

    def new_user(self) -> str:
        return f"soaknew{self.rng.randrange(NEW_USERS):06d}"

    def event(self) -> dict[str, Any]:
        self.events_sent += 1
        if self.recent and self.rng.random() < DUPLICATE_SHARE:
            self.duplicates_sent += 1
            return self.rng.choice(self.recent)
        self.sent += 1
        user = self.new_user() if self.rng.random() < NEW_USER_EVENT_SHARE else None
        event: dict[str, Any] = {
            "event_id": f"soak-{self.token}-{self.sent:x}",
            "ts": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "user_id": user or self.rng.choice(self.ids),
        }
        draw = self.rng.random()
        if draw < 0.85:
            action = "view" if draw < 0.60 else "click" if draw < 0.75 else "impression"
            event |= {"item_id": self.rng.choice(self.videos), "item_type": "video"}
            event["action"] = action
            if action == "view":
                event["watch_ratio"] = round(self.rng.random(), 3)
        else:
            event |= {"item_id": self.rng.choice(self.products), "item_type": "product"}
            if draw < 0.95:
                event["action"] = "click"
            else:
                event |= {"action": "purchase", "amount": round(self.rng.uniform(10, 5000), 2)}
        self.recent.append(event)
        return event


def read_ids(path: Path, field: str) -> list[str]:
    return [json.loads(line)[field] for line in path.read_text().splitlines() if line.strip()]


class Recorder:
    """Outcomes per kind: completion time, latency and status of every request."""

    def __init__(self) -> None:
        self.done: dict[str, array[float]] = {"feed": array("d"), "events": array("d")}
        self.latency: dict[str, array[float]] = {"feed": array("d"), "events": array("d")}
        self.service: dict[str, array[float]] = {"feed": array("d"), "events": array("d")}
        self.statuses: dict[str, Counter[str]] = {"feed": Counter(), "events": Counter()}
        self.connection_errors: dict[str, Counter[str]] = {"feed": Counter(), "events": Counter()}
        self.lag = array("d")  # how late each request left against its schedule
        self.accepted = self.duplicates = 0

    def write_timeline(self, path: Path) -> None:
        """Per second since the start: requests, p99 and max latency (ms) of each kind."""
        seconds: dict[int, dict[str, list[float]]] = {}
        for kind, done in self.done.items():
            for t, lat in zip(done, self.latency[kind], strict=True):
                seconds.setdefault(int(t), {"feed": [], "events": []})[kind].append(lat)
        rows = ["second,feed_requests,feed_p99_ms,feed_max_ms,events_requests,events_p99_ms"]
        for second in sorted(seconds):
            cells = [str(second)]
            for kind in ("feed", "events"):
                ordered = sorted(seconds[second][kind])
                cells += [str(len(ordered)), str(percentile_ms(ordered, 0.99))]
                if kind == "feed":
                    cells.append(str(round(ordered[-1] * 1e3, 2) if ordered else 0.0))
            rows.append(",".join(cells))
        path.write_text("\n".join(rows) + "\n")

    def summary(self, warmup: float, elapsed: float) -> dict[str, Any]:
        kinds: dict[str, Any] = {}
        for kind, done in self.done.items():
            steady = sorted(
                lat for t, lat in zip(done, self.latency[kind], strict=True) if t >= warmup
            )
            sent = sorted(
                lat for t, lat in zip(done, self.service[kind], strict=True) if t >= warmup
            )
            kinds[kind] = {
                "requests": len(done),
                "requests_after_warmup": len(steady),
                "statuses": dict(self.statuses[kind]),
                "connection_errors": dict(self.connection_errors[kind]),
                "p50_ms": percentile_ms(steady, 0.50),
                "p99_ms": percentile_ms(steady, 0.99),
                "max_ms": round(steady[-1] * 1e3, 2) if steady else 0.0,
                "p50_sent_ms": percentile_ms(sent, 0.50),
                "p99_sent_ms": percentile_ms(sent, 0.99),
            }
        minutes = []
        for minute in range(int(elapsed // 60) + (1 if elapsed % 60 > 1 else 0)):
            row: dict[str, Any] = {"minute": minute + 1}
            for kind, done in self.done.items():
                window = sorted(
                    lat
                    for t, lat in zip(done, self.latency[kind], strict=True)
                    if minute * 60 <= t < (minute + 1) * 60
                )
                row[f"{kind}_requests"] = len(window)
                row[f"{kind}_p99_ms"] = percentile_ms(window, 0.99)
            minutes.append(row)
        return {
            "elapsed_s": round(elapsed, 2),
            "kinds": kinds,
            "per_minute": minutes,
            "schedule_lag_p99_ms": percentile_ms(sorted(self.lag), 0.99),
            "server_accepted": self.accepted,
            "server_duplicates": self.duplicates,
        }


def percentile_ms(ordered: list[float], q: float) -> float:
    return round(ordered[int(q * (len(ordered) - 1))] * 1e3, 2) if ordered else 0.0


class Schedule:
    """Send times: slot i at start + i / rate (open loop), or at once (closed loop)."""

    def __init__(self, start: float, seconds: float, rate: float | None) -> None:
        self.start, self.deadline, self.rate, self.slot = start, start + seconds, rate, 0

    def next(self) -> float | None:
        """The next request's scheduled time (perf_counter), or None when the run is over."""
        if self.rate is None:
            now = time.perf_counter()
            return now if now < self.deadline else None
        at = self.start + self.slot / self.rate
        self.slot += 1
        return at if at < self.deadline else None


async def client(mix: Mix, schedule: Schedule, recorder: Recorder) -> None:
    """One keep-alive connection taking the next slot of the schedule until the run ends."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    while (at := schedule.next()) is not None:
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, request = mix.next()
        sent = time.perf_counter()
        recorder.lag.append(max(0.0, sent - at))
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(HOST, mix.port)
            writer.write(request)
            status, body = await asyncio.wait_for(serve.read_response(reader), REQUEST_TIMEOUT)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            recorder.connection_errors[kind][type(exc).__name__] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        finished = time.perf_counter()
        recorder.done[kind].append(finished - schedule.start)
        recorder.latency[kind].append(finished - at)
        recorder.service[kind].append(finished - sent)
        recorder.statuses[kind][str(status)] += 1
        if kind == "events" and status == 202:
            answer = json.loads(body)
            recorder.accepted += int(answer["accepted"])
            recorder.duplicates += int(answer["duplicates"])
    if writer is not None:
        writer.close()


async def generate_load(spec: LoadSpec) -> dict[str, Any]:
    mix, recorder = Mix(spec), Recorder()
    start = time.perf_counter() + max(0.0, spec.start_at - time.time())
    schedule = Schedule(start, spec.seconds, spec.rate)
    await asyncio.sleep(start - time.perf_counter())
    await asyncio.gather(*(client(mix, schedule, recorder) for _ in range(spec.connections)))
    result = recorder.summary(spec.warmup, time.perf_counter() - start)
    recorder.write_timeline(Path(spec.timeline_path))
    result |= {"events_sent": mix.events_sent, "duplicates_sent": mix.duplicates_sent}
    return result


def loadgen_main(spec_json: str) -> None:
    """Entry point of the load-generator process: prints its result as one JSON line."""
    print(json.dumps(asyncio.run(generate_load(LoadSpec(**json.loads(spec_json))))))


def start_loadgen(spec: LoadSpec, log: Path) -> subprocess.Popen[str]:
    """This file with --loadgen, in another process; its result on stdout, stderr in `log`."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--loadgen",
        json.dumps(spec.__dict__),
    ]
    with log.open("w") as err:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)


def finish_loadgen(process: subprocess.Popen[str], log: Path) -> dict[str, Any]:
    stdout, _ = process.communicate()
    if process.returncode != 0:
        sys.exit(f"the load generator exited with {process.returncode}:\n{log.read_text()[-3000:]}")
    return serve.last_json(stdout)


# --------------------------------------------------------------------------- server memory


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since the first soak request
    rss_kb: int
    anon_kb: int


def read_rss(pid: int) -> tuple[int, int]:
    """VmRSS and RssAnon of a process, in kB."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon"):
            fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["RssAnon"]


def watch_memory(
    server: subprocess.Popen[bytes], loadgen: subprocess.Popen[str], start_at: float
) -> list[Sample]:
    """One sample a second while the load runs; exit if the server dies."""
    samples: list[Sample] = []
    next_at = start_at
    last_report = start_at
    while loadgen.poll() is None:
        if server.poll() is not None:
            loadgen.kill()
            sys.exit(f"recsvc serve exited with {server.returncode} during the soak")
        now = time.time()
        if now >= next_at:
            rss, anon = read_rss(server.pid)
            samples.append(Sample(round(now - start_at, 3), rss, anon))
            next_at += 1.0
            if now - last_report >= 60:
                last_report = now
                print(
                    f"  {now - start_at:5.0f} s: server RSS {rss / 1024:.1f} MB",
                    file=sys.stderr,
                    flush=True,
                )
        time.sleep(max(0.0, min(next_at - time.time(), 0.2)))
    return samples


def median_mb(samples: list[Sample]) -> float:
    return statistics.median(s.rss_kb for s in samples) / 1024 if samples else 0.0


def memory_report(samples: list[Sample], warmup: float, duration: float) -> dict[str, Any]:
    """RSS after warm-up, at the end, max, and growth by two points and by a linear fit."""
    soak = [s for s in samples if 0 <= s.t <= duration]
    steady = [s for s in soak if s.t >= warmup]
    if len(steady) < 2:
        sys.exit(f"only {len(steady)} RSS samples after the warm-up: run longer")
    warm = median_mb([s for s in steady if s.t < warmup + RSS_WINDOW])
    end = median_mb([s for s in steady if s.t > steady[-1].t - RSS_WINDOW])
    fit = statistics.linear_regression([s.t for s in steady], [s.rss_kb / 1024 for s in steady])
    fitted_warm = fit.intercept + fit.slope * steady[0].t
    fit_growth = fit.slope * (steady[-1].t - steady[0].t) / fitted_warm
    anon_warm = statistics.median(s.anon_kb for s in steady if s.t < warmup + RSS_WINDOW) / 1024
    anon_end = statistics.median(s.anon_kb for s in steady if s.t > steady[-1].t - RSS_WINDOW)
    return {
        "rss_start_mb": round(soak[0].rss_kb / 1024, 1),
        "rss_warm_mb": round(warm, 1),
        "rss_end_mb": round(end, 1),
        "rss_max_mb": round(max(s.rss_kb for s in soak) / 1024, 1),
        "rss_growth": round((end - warm) / warm, 4),
        "rss_growth_fit": round(fit_growth, 4),
        "rss_slope_mb_per_hour": round(fit.slope * 3600, 2),
        "rss_anon_warm_mb": round(anon_warm, 1),
        "rss_anon_end_mb": round(anon_end / 1024, 1),
        "rss_samples": len(soak),
        "rss_per_minute_mb": [
            round(min(soak, key=lambda s: abs(s.t - mark)).rss_kb / 1024, 1)
            for mark in range(60, int(soak[-1].t) + 1, 60)
        ],
    }


def write_samples(samples: list[Sample], path: Path) -> None:
    """Every RSS sample as CSV (seconds since the first soak request, kB), for a closer look."""
    rows = [f"{s.t},{s.rss_kb},{s.anon_kb}" for s in samples]
    path.write_text("\n".join(["t_s,vmrss_kb,rssanon_kb", *rows]) + "\n")


# --------------------------------------------------------------------------- server state


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the service's /metrics, keyed by name and labels."""
    status, body = serve.get(port, "/metrics")
    if status != 200:
        return {}
    samples = {}
    for match in re.finditer(r"^(\w+)(?:\{(.*)\})? (\S+)$", body.decode(), re.M):
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def server_counters(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
) -> dict[str, dict[str, float]]:
    """What the service counted during the soak: feeds by source, events by outcome, Redis
    errors, refusals, degraded feeds, and requests its own timing put over 0.1 s and 1 s."""
    wanted = {
        "recsvc_feed_responses_total": "feed_sources",
        "recsvc_events_total": "events",
        "recsvc_redis_errors_total": "redis_errors",
        "recsvc_refused_requests_total": "refused",
        "recsvc_degraded_responses_total": "degraded",
    }
    counters: dict[str, dict[str, float]] = {name: {} for name in wanted.values()}
    counters["server_timed"] = {}
    timed = counters["server_timed"]
    for (name, labels), value in after.items():
        delta = value - before.get((name, labels), 0.0)
        label = dict(labels)
        if name in wanted:
            counters[wanted[name]]["/".join(label.values()) or "total"] = delta
            continue
        route = label.get("route", "").removeprefix("/v1/")
        if route not in ("feed", "events"):
            continue
        if name == "recsvc_request_seconds_count":
            timed[f"{route}_requests"] = timed.get(f"{route}_requests", 0.0) + delta
        elif name == "recsvc_request_seconds_bucket" and label.get("le") in ("0.1", "1.0"):
            key = f"{route}_within_{label['le']}s"
            timed[key] = timed.get(key, 0.0) + delta
    return counters


def redis_state(url: str) -> dict[str, int]:
    client = redis.Redis.from_url(url)
    try:
        used = int(client.info("memory")["used_memory"])
        return {"used_memory": used, "events": int(client.xlen("recsvc:events"))}
    finally:
        client.close()


# --------------------------------------------------------------------------- report


def report(
    args: argparse.Namespace,
    load: dict[str, Any],
    memory: dict[str, Any],
    extra: dict[str, Any],
) -> dict[str, Any]:
    kinds = load["kinds"]
    requests = {kind: kinds[kind]["requests"] for kind in kinds}
    errors: dict[str, int] = {}
    for kind, stats in kinds.items():
        for status, count in stats["statuses"].items():
            if not status.startswith("2"):
                errors[f"{kind}_{status}"] = count
        for name, count in stats["connection_errors"].items():
            errors[f"{kind}_{name}"] = count
    growth_ok = memory["rss_growth"] < TARGET_GROWTH and memory["rss_growth_fit"] < TARGET_GROWTH
    return {
        "benchmark": "soak",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "requests": sum(requests.values()),
        "requests_by_kind": requests,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "rps_target": extra.pop("rate"),
        "rps_achieved": round(sum(requests.values()) / load["elapsed_s"], 1),
        "p99_ms": {kind: kinds[kind]["p99_ms"] for kind in kinds},
        "latency_ms": {
            kind: {q: kinds[kind][f"{q}_ms"] for q in ("p50", "p99", "max", "p50_sent", "p99_sent")}
            for kind in kinds
        },
        "p99_sent_ms": {kind: kinds[kind]["p99_sent_ms"] for kind in kinds},
        "schedule_lag_p99_ms": load["schedule_lag_p99_ms"],
        **memory,
        "target": TARGET_GROWTH,
        "meets_target": growth_ok,
        "events_sent": load["events_sent"],
        "duplicates_sent": load["duplicates_sent"],
        "server_accepted": load["server_accepted"],
        "server_duplicates": load["server_duplicates"],
        "per_minute": load["per_minute"],
        **extra,
        "connections": args.connections,
        "users": args.users,
        "videos": args.videos,
        "products": args.products,
        "cpus": os.cpu_count(),
        "note": "latencies and rates depend on the machine and its other load; "
        "the server's RSS growth after warm-up is the figure that matters",
    }


def summary(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    lines = [
        f"soak benchmark: {result['duration_s']:.0f} s ({result['warmup_s']:.0f} s warm-up), "
        f"{result['connections']} connections, open loop at {result['rps_target']:.0f} req/s "
        + (
            f"({result['load_fraction']:.0%} of the measured saturation "
            f"{result['saturation_rps']:.0f} req/s)"
            if result["saturation_rps"] is not None
            else "(--rate)"
        )
        + f"; achieved {result['rps_achieved']:.0f} req/s",
        f"  requests {result['requests']:,} {result['requests_by_kind']}, "
        f"errors {result['errors']} {result['errors_by_kind'] or ''}",
    ]
    for kind in ("feed", "events"):
        lines.append(
            f"  {kind:>6} after warm-up: p50 {lat[kind]['p50']:.2f} ms, "
            f"p99 {lat[kind]['p99']:.2f} ms, max {lat[kind]['max']:.2f} ms from the scheduled "
            f"time; from the send p50 {lat[kind]['p50_sent']:.2f} ms, p99 "
            f"{lat[kind]['p99_sent']:.2f} ms"
        )
    if result["schedule_lag_p99_ms"] > LAG_WARNING_MS:
        lines.append(
            f"  WARNING: sends fell behind the schedule (lag p99 "
            f"{result['schedule_lag_p99_ms']:.0f} ms): the machine did not keep up with the rate "
            "for a while, so latency from the scheduled time includes that backlog; compare the "
            "latency from the send and the server's own timing (server_timed)"
        )
    lines += [
        f"  server RSS: {result['rss_start_mb']} MB at start, {result['rss_warm_mb']} MB after "
        f"warm-up, {result['rss_end_mb']} MB at the end, max {result['rss_max_mb']} MB",
        f"  RSS growth {result['rss_growth']:+.2%} (two points), {result['rss_growth_fit']:+.2%} "
        f"(linear fit, {result['rss_slope_mb_per_hour']:+.1f} MB/hour); target < "
        f"{result['target']:.0%}: {'met' if result['meets_target'] else 'NOT met'}",
        f"  RSS by minute (MB): {result['rss_per_minute_mb']}",
        f"  Redis used_memory {result['redis_used_memory_start_mb']} -> "
        f"{result['redis_used_memory_end_mb']} MB; {result['stream_entries_end']:,} events in "
        f"the stream (not drained; max len {result['stream_max_len']:,})",
        f"  server counters: {result['server_counters']}",
        f"  ({result['note']})",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds, part of --duration")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--rate", type=float, help="requests per second (default: a share of the saturation)"
    )
    parser.add_argument(
        "--load-fraction", type=float, default=0.3, help="share of the saturation rate"
    )
    parser.add_argument(
        "--saturation-seconds", type=float, default=15.0, help="length of the pre-run"
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "out" / "soak",
        help="work dir; its world and model are reused (default bench/out/soak)",
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate world and model")
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)  # the load-generator process
    args = parser.parse_args()
    if not 0 <= args.warmup < args.duration - RSS_WINDOW:
        parser.error("--warmup must be at least 0 and leave more than 5 s of --duration")
    return args


def run_load(spec: LoadSpec, log: Path) -> dict[str, Any]:
    return finish_loadgen(start_loadgen(spec, log), log)


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    work: Path = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    model = serve.prepare_model(work, args, stages)
    ids_path, _ = serve.write_load_files(work, work / "world")
    redis_dir, server, loadgen = work / "redis", None, None
    try:
        url = serve.start_redis(redis_dir)
        # serve's environment: its app and admin API keys (RECSVC_APP_API_KEYS, ...)
        env = serve.service_env(url, work / "models", RECSVC_STREAM_MAX_LEN=str(STREAM_MAX_LEN))
        serve.load_redis(env, model, work / "world", stages)
        port, log = serve.free_port(), work / "server.log"
        server = serve.start_server(env, port, log)
        serve.wait_ready(server, port, log, timeout=120)
        print(f"recsvc serve ready on port {port} (pid {server.pid})", file=sys.stderr)

        def spec(seconds: float, warmup: float, rate: float | None, seed: int) -> LoadSpec:
            timeline = work / ("latency.csv" if rate is not None else "latency-prerun.csv")
            return LoadSpec(
                port, serve.APP_KEY, str(ids_path), str(work / "world"), args.connections,
                seconds, warmup, rate, time.time() + START_DELAY, seed, str(timeline),
            )  # fmt: skip

        saturation = None
        rate = args.rate
        if rate is None:
            print(f"saturation pre-run, {args.saturation_seconds:.0f} s ...", file=sys.stderr)
            pre = run_load(spec(args.saturation_seconds, 0, None, 1), work / "loadgen.log")
            saturation = sum(k["requests"] for k in pre["kinds"].values()) / pre["elapsed_s"]
            rate = args.load_fraction * saturation
            print(f"saturation {saturation:.0f} req/s; soak at {rate:.0f} req/s", file=sys.stderr)
        redis_start, metrics_start = redis_state(url), scrape(port)
        soak_spec = spec(args.duration, args.warmup, rate, serve.SEED)
        print(f"soak: {args.duration:.0f} s ...", file=sys.stderr, flush=True)
        loadgen = start_loadgen(soak_spec, work / "loadgen.log")
        samples = watch_memory(server, loadgen, soak_spec.start_at)
        write_samples(samples, work / "rss.csv")
        load = finish_loadgen(loadgen, work / "loadgen.log")
        redis_end = redis_state(url)
        counters = server_counters(metrics_start, scrape(port))
    finally:
        if loadgen is not None and loadgen.poll() is None:
            loadgen.kill()
        serve.stop_process(server)
        serve.stop_redis(redis_dir)
    extra = {
        "rate": round(rate, 1),
        "saturation_rps": round(saturation, 1) if saturation is not None else None,
        "load_fraction": args.load_fraction if args.rate is None else None,
        "redis_used_memory_start_mb": round(redis_start["used_memory"] / 2**20, 1),
        "redis_used_memory_end_mb": round(redis_end["used_memory"] / 2**20, 1),
        "stream_entries_end": redis_end["events"],
        "stream_max_len": STREAM_MAX_LEN,
        "drain": "none: events accumulate; stream max len set above ten minutes' worth",
        "server_counters": counters,
        "model_version": model.name,
        "setup_seconds": {k: round(v, 1) for k, v in stages.items()},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return report(args, load, memory_report(samples, args.warmup, args.duration), extra)


def main() -> None:
    args = parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    serve.exit_on_sigterm()
    result = benchmark(args)
    print(summary(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
