"""Benchmark of the feed service over HTTP: /v1/feed against a trivial endpoint of the same app.

Builds (or reuses) a synthetic world — default 100k users, 10k videos, 200 products, 1.5M
events — and an untuned ALS model of 64 factors, publishes its user vectors to a private Redis,
loads the catalogue and the profiles, and starts `recsvc serve` (one worker) on loopback. Then
a load generator in another process (wrk, or failing that an asyncio client) keeps 32
connections busy, alternating in rounds between GET /healthz (the baseline: the same app,
server and event loop, no work) and GET /v1/feed for a random user (mostly users of the world,
some unknown), and reports the medians over the rounds:

- feed_rps, baseline_rps and ratio = feed ÷ baseline (target ≥ 0.5);
- feed_p50_ms, feed_p99_ms as the load generator sees them (target p99 ≤ 20 ms);
- redis_bytes_per_user: growth of Redis used_memory per user vector published
  (target ≤ 200 at 64 dimensions);
- every non-2xx response and socket error (a run with errors says so).

Usage: python bench/serve.py [--users N --videos N --products N --events N]
       [--seconds S --rounds R --connections C] [--out DIR] [--fresh]
       [--setting NAME=VALUE ...]   (a service setting, e.g. freshness_weight=1)
       [--campaigns N]              (N campaign rules loaded, every one in force: `campaign_rules`)
In a fresh clone: `.venv/bin/python bench/serve.py` after scripts/test or scripts/demo.
The work dir (default bench/out/serve) keeps the world and the model for the next run.
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
FEED_PAGE = 20
UNKNOWN_SHARE = 0.05  # share of feed requests for users the world does not have
WARMUP_SECONDS = 3.0
TARGET_RATIO, TARGET_P99_MS, TARGET_BYTES = 0.5, 20.0, 200.0
SEED = 42

LUA_SCRIPT = """-- written by bench/serve.py: GET /v1/feed for a random user
local ids = {}
for line in io.lines(%(ids_path)s) do ids[#ids + 1] = line end
math.randomseed(%(seed)d)
request = function()
  local id
  if math.random() < %(unknown)s then
    id = string.format("nobody%%07d", math.random(1, 9999999))
  else
    id = ids[math.random(#ids)]
  end
  return wrk.format("GET", "/v1/feed?user_id=" .. id .. "&n=%(page)d")
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One load-generator run against one endpoint."""

    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int


@dataclass(frozen=True)
class Target:
    """Where the load goes: the server's port and the user ids to pick from."""

    port: int
    ids_path: Path
    lua_path: Path
    connections: int
    generator: str  # "wrk" or "asyncio"


# --------------------------------------------------------------------------- processes

# The bench's own API keys (loopback only): the load sends the app key, as the app backend does.
APP_KEY = "bench-app-key-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"
AUTH_HEADER = f"Authorization: Bearer {APP_KEY}"


def service_env(redis_url: str, models: Path, **variables: str) -> dict[str, str]:
    """The environment of the bench's `recsvc` commands and server: Redis, models, keys;
    clients (recsvc simulate) find their keys in it too."""
    return {
        **os.environ,
        "RECSVC_REDIS_URL": redis_url,
        "RECSVC_MODELS_DIR": str(models),
        "RECSVC_APP_API_KEYS": APP_KEY,
        "RECSVC_ADMIN_API_KEYS": ADMIN_KEY,
        "RECSVC_API_KEY": APP_KEY,
        "RECSVC_ADMIN_KEY": ADMIN_KEY,
        **variables,
    }


def recsvc_command() -> list[str]:
    """The `recsvc` executable of this interpreter's environment (.venv/bin/recsvc)."""
    beside = Path(sys.executable).parent / "recsvc"
    if beside.is_file():
        return [str(beside)]
    return [sys.executable, "-m", "recsvc"]


def run(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run a command to completion and return its stdout; exit with its stderr on failure."""
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}\n{result.stdout[-2000:]}")
    return result.stdout


def timed(label: str, command: list[str], env: dict[str, str] | None = None) -> tuple[str, float]:
    """`run`, saying on stderr what runs and how long it took."""
    print(f"{label} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    stdout = run(command, env)
    seconds = time.perf_counter() - started
    print(f"{label}: {seconds:.1f}s", file=sys.stderr, flush=True)
    return stdout, seconds


def last_json(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout.strip().splitlines()[-1]))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if it does not exit within 15 s."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so that every `finally` stops what it started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


# --------------------------------------------------------------------------- world and model


def world_matches(world: Path, args: argparse.Namespace) -> bool:
    """True when `world` holds a world generated with these sizes and seed."""
    try:
        spec = json.loads((world / "world.json").read_text())["spec"]
    except (OSError, ValueError, KeyError):
        return False
    wanted = {"users": args.users, "videos": args.videos, "products": args.products}
    return (
        all(spec.get(k) == v for k, v in wanted.items())
        and spec.get("seed") == SEED
        and (spec.get("events") == args.events)
    )


def newest_model(models: Path) -> Path | None:
    """The newest model version under `models` (versions sort by time)."""
    if not models.is_dir():
        return None
    versions = sorted(p for p in models.iterdir() if (p / "manifest.json").is_file())
    return versions[-1] if versions else None


def prepare_model(work: Path, args: argparse.Namespace, stages: dict[str, float]) -> Path:
    """Generate the world and train a model unless reusable ones are there; the model dir."""
    recsvc = recsvc_command()
    world, factors, models = work / "world", work / "factors", work / "models"
    if args.fresh or not world_matches(world, args):
        _, stages["synth"] = timed(
            "generate the world",
            [
                *recsvc, "synth", "--out", str(world), "--users", str(args.users),
                "--videos", str(args.videos), "--products", str(args.products),
                "--events", str(args.events), "--seed", str(SEED), "--replace",
            ],
        )  # fmt: skip
        shutil.rmtree(factors, ignore_errors=True)
        shutil.rmtree(models, ignore_errors=True)
    else:
        print(f"reusing the world in {world}", file=sys.stderr)
    model = newest_model(models)
    if model is None:
        stdout, stages["train"] = timed(
            "train (ALS, default factors, 5 iterations)",
            [
                *recsvc, "train", "--world", str(world), "--out", str(factors),
                "--models-dir", str(models), "--iterations", "5", "--json",
            ],
        )  # fmt: skip
        model = Path(last_json(stdout)["model_dir"])
    else:
        print(f"reusing the model {model}", file=sys.stderr)
    return model


def write_load_files(work: Path, world: Path) -> tuple[Path, Path]:
    """The world's user ids, one per line, and the wrk script that picks among them."""
    with (world / "users.csv").open(newline="") as f:
        ids = [row["user_id"] for row in csv.DictReader(f)]
    ids_path, lua_path = work / "user_ids.txt", work / "feed.lua"
    ids_path.write_text("\n".join(ids) + "\n")
    lua_path.write_text(
        LUA_SCRIPT
        % {
            "ids_path": json.dumps(str(ids_path)),
            "seed": SEED,
            "unknown": UNKNOWN_SHARE,
            "page": FEED_PAGE,
        }
    )
    return ids_path, lua_path


# --------------------------------------------------------------------------- redis and server


def start_redis(directory: Path) -> str:
    """A private redis-server (never port 6379); its URL."""
    recsvc = recsvc_command()
    subprocess.run([*recsvc, "redis", "stop", "--dir", str(directory)], capture_output=True)
    url = run([*recsvc, "redis", "start", "--dir", str(directory)]).strip().splitlines()[-1]
    print(f"redis: {url}", file=sys.stderr)
    return url


def stop_redis(directory: Path) -> None:
    subprocess.run([*recsvc_command(), "redis", "stop", "--dir", str(directory)], check=False)


def load_redis(
    env: dict[str, str], model: Path, world: Path, stages: dict[str, float]
) -> dict[str, Any]:
    """Publish the user vectors, load catalogue and profiles; the publish report."""
    recsvc = recsvc_command()
    stdout, stages["publish"] = timed("publish", [*recsvc, "publish", str(model), "--json"], env)
    _, stages["catalog_load"] = timed(
        "catalog load", [*recsvc, "catalog", "load", "--world", str(world)], env
    )
    _, stages["profiles_load"] = timed(
        "profiles load", [*recsvc, "profiles", "load", str(world / "users.csv")], env
    )
    return last_json(stdout)


def campaign_rules(world: Path, count: int) -> str:
    """`count` campaign rules as a growth team would write them, all in force now (a rule out
    of its schedule costs a feed less): boosts and buries of topics, categories and videos,
    pins, exclusions and category caps, about half of them targeted (segment, lifecycle, risk
    tolerance, surface), the rest for everyone; drawn from the world with a fixed seed."""
    pick = random.Random(SEED)
    videos = [json.loads(line) for line in (world / "catalog" / "videos.jsonl").open()]
    products = [json.loads(line) for line in (world / "catalog" / "products.jsonl").open()]
    with (world / "users.csv").open(newline="") as f:
        segments = sorted({row["segment"] for row in csv.DictReader(f)})
    topics = sorted({t for v in videos for t in v.get("topics") or ()})
    categories = sorted({p["category"] for p in products})
    video_ids = [v["video_id"] for v in videos]
    product_ids = [p["product_id"] for p in products]
    targets = [
        "",
        f'[campaign.target]\nsegments = ["{pick.choice(segments)}"]\n',
        '[campaign.target]\nlifecycles = ["new", "active"]\n',
        "[campaign.target]\nrisk_tolerance = [2, 5]\n",
        "",
        '[campaign.target]\nsurfaces = ["home"]\n',
    ]

    def listed(ids: list[str], n: int) -> str:
        return json.dumps(pick.sample(ids, min(n, len(ids))))

    kinds = [
        lambda: f'kind = "boost"\ntopics = ["{pick.choice(topics)}"]\nstrength = 0.5\n',
        lambda: f'kind = "bury"\ntopics = ["{pick.choice(topics)}"]\nstrength = 0.3\n',
        lambda: f'kind = "boost"\ncategories = ["{pick.choice(categories)}"]\nstrength = 0.5\n',
        lambda: f'kind = "pin"\nvideo = "{pick.choice(video_ids)}"\nslot = {pick.randint(1, 5)}\n',
        lambda: f'kind = "exclude"\nvideos = {listed(video_ids, 20)}\n',
        lambda: f'kind = "cap"\ncategories = ["{pick.choice(categories)}"]\ndaily_cap = 2\n',
        lambda: f'kind = "boost"\nproducts = {listed(product_ids, 5)}\nstrength = 1\n',
    ]
    rules = []
    for i in range(count):
        body = kinds[i % len(kinds)]()
        schedule = "start = 2026-01-01T00:00:00Z\nend = 2100-01-01T00:00:00Z\n" if i % 2 else ""
        target = targets[i % len(targets)]
        rules.append(f'[[campaign]]\nname = "rule-{i:03d}"\n{body}{schedule}{target}')
    return "\n".join(rules)


def start_server(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`recsvc serve` (one worker) on loopback, its output in `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [*recsvc_command(), "serve", "--host", HOST, "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def get(port: int, path: str) -> tuple[int, bytes]:
    """One GET on loopback: status and body (an HTTP error status is returned, not raised)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(server: subprocess.Popen[bytes], port: int, log: Path, timeout: float) -> None:
    """Until GET /readyz answers 200; exit with the server's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"recsvc serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if get(port, "/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"recsvc serve not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def feed_sources(port: int) -> dict[str, float]:
    """Feeds served so far by source of the ranking, and degraded ones, from /metrics."""
    text = get(port, "/metrics")[1].decode()
    counts: dict[str, float] = {}
    for match in re.finditer(r'^recsvc_feed_responses_total\{source="(\w+)"\} (\S+)$', text, re.M):
        counts[match.group(1)] = float(match.group(2))
    degraded = re.findall(r"^recsvc_degraded_responses_total(?:\{[^}]*\})? (\S+)$", text, re.M)
    counts["degraded"] = sum(float(value) for value in degraded)
    return counts


# --------------------------------------------------------------------------- load: wrk


def wrk_command(target: Target, endpoint: str, seconds: float) -> list[str]:
    command = [
        "wrk", "-t1", f"-c{target.connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "5s", "--latency", "-H", AUTH_HEADER,
    ]  # fmt: skip
    if endpoint == "feed":
        command += ["-s", str(target.lua_path)]
    return [*command, f"http://{HOST}:{target.port}/" + ("healthz" if endpoint != "feed" else "")]


def to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def parse_wrk(output: str) -> LoadResult:
    """Requests/sec, the --latency 50% and 99% lines, non-2xx/3xx and socket errors."""

    def number(pattern: str) -> float:
        match = re.search(pattern, output, re.M)
        if match is None:
            raise ValueError(f"wrk output without /{pattern}/:\n{output}")
        return float(match.group(1))

    def percentile(p: int) -> float:
        match = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
        if match is None:
            raise ValueError(f"wrk output without the {p}% latency:\n{output}")
        return to_ms(match.group(1), match.group(2))

    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return LoadResult(
        requests=int(number(r"^\s*(\d+) requests in")),
        rps=number(r"^Requests/sec:\s+([\d.]+)"),
        p50_ms=percentile(50),
        p99_ms=percentile(99),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def run_wrk(target: Target, endpoint: str, seconds: float) -> LoadResult:
    command = wrk_command(target, endpoint, seconds)
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr}\n{result.stdout}")
    return parse_wrk(result.stdout)


# --------------------------------------------------------------------------- load: asyncio


def run_asyncio_process(target: Target, endpoint: str, seconds: float) -> LoadResult:
    """The asyncio load generator, in another process (this file with --loadgen)."""
    spec = {
        "port": target.port,
        "ids_path": str(target.ids_path),
        "connections": target.connections,
        "endpoint": endpoint,
        "seconds": seconds,
    }
    command = [sys.executable, str(Path(__file__).resolve()), "--loadgen", json.dumps(spec)]
    return LoadResult(**last_json(run(command)))


class Paths:
    """Request paths for one endpoint: /healthz, or /v1/feed for a random user."""

    def __init__(self, endpoint: str, ids: list[str]) -> None:
        self.endpoint, self.ids, self.rng = endpoint, ids, random.Random(SEED)

    def next(self) -> str:
        if self.endpoint != "feed":
            return "/healthz"
        if self.rng.random() < UNKNOWN_SHARE:
            user = f"nobody{self.rng.randrange(1, 10_000_000):07d}"
        else:
            user = self.rng.choice(self.ids)
        return f"/v1/feed?user_id={user}&n={FEED_PAGE}"


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: status and body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next(
        (int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length")),
        None,
    )
    if length is None:
        raise ConnectionError("a response without Content-Length")
    return status, await reader.readexactly(length)


async def one_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response; its status."""
    return (await read_response(reader))[0]


async def connection_loop(
    port: int, paths: Paths, deadline: float, latencies: list[float], counts: dict[str, int]
) -> None:
    """One keep-alive connection sending GETs back to back until the deadline."""
    writer: asyncio.StreamWriter | None = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            request = f"GET {paths.next()} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{AUTH_HEADER}\r\n\r\n"
            started = time.perf_counter()
            writer.write(request.encode())
            status = await asyncio.wait_for(one_response(reader), 5)
            latencies.append(time.perf_counter() - started)
            if not 200 <= status < 300:
                counts["non_2xx"] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            counts["socket_errors"] += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def asyncio_load(spec: dict[str, Any]) -> LoadResult:
    ids = Path(spec["ids_path"]).read_text().split()
    paths = Paths(spec["endpoint"], ids)
    latencies: list[float] = []
    counts = {"non_2xx": 0, "socket_errors": 0}
    started = time.perf_counter()
    deadline = started + float(spec["seconds"])
    await asyncio.gather(
        *(
            connection_loop(spec["port"], paths, deadline, latencies, counts)
            for _ in range(spec["connections"])
        )
    )
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    return LoadResult(
        requests=len(latencies),
        rps=len(latencies) / elapsed,
        p50_ms=ordered[int(0.50 * (len(ordered) - 1))] * 1e3,
        p99_ms=ordered[int(0.99 * (len(ordered) - 1))] * 1e3,
        **counts,
    )


def loadgen_main(spec_json: str) -> None:
    """Entry point of the load-generator process: prints one LoadResult as JSON."""
    print(json.dumps(asdict(asyncio.run(asyncio_load(json.loads(spec_json))))))


# --------------------------------------------------------------------------- measurement


def load(target: Target, endpoint: str, seconds: float) -> LoadResult:
    if target.generator == "wrk":
        return run_wrk(target, endpoint, seconds)
    return run_asyncio_process(target, endpoint, seconds)


def measure(target: Target, seconds: float, rounds: int) -> dict[str, list[LoadResult]]:
    """Warm-up, then `rounds` × (baseline, feed), each `seconds` long."""
    load(target, "feed", WARMUP_SECONDS)
    load(target, "baseline", WARMUP_SECONDS / 2)
    results: dict[str, list[LoadResult]] = {"baseline": [], "feed": []}
    for i in range(rounds):
        for endpoint in ("baseline", "feed"):
            result = load(target, endpoint, seconds)
            results[endpoint].append(result)
            print(
                f"round {i + 1}/{rounds} {endpoint:>8}: {result.rps:8.0f} req/s, "
                f"p50 {result.p50_ms:6.2f} ms, p99 {result.p99_ms:6.2f} ms, "
                f"errors {result.non_2xx + result.socket_errors}",
                file=sys.stderr,
                flush=True,
            )
    return results


def median(results: list[LoadResult], field: str) -> float:
    return float(statistics.median(getattr(r, field) for r in results))


def error_counts(results: dict[str, list[LoadResult]]) -> dict[str, int]:
    counts = {
        f"{endpoint}_{kind}": sum(getattr(r, kind) for r in runs)
        for endpoint, runs in results.items()
        for kind in ("non_2xx", "socket_errors")
    }
    return {**counts, "total": sum(counts.values())}


def report(
    results: dict[str, list[LoadResult]],
    publish: dict[str, Any],
    dimension: int,
    args: argparse.Namespace,
    extra: dict[str, Any],
) -> dict[str, Any]:
    feed, baseline = results["feed"], results["baseline"]
    feed_rps, baseline_rps = median(feed, "rps"), median(baseline, "rps")
    ratio = feed_rps / baseline_rps if baseline_rps else 0.0
    feed_p99 = median(feed, "p99_ms")
    bytes_per_user = float(publish["bytes_per_user"])
    return {
        "benchmark": "serve",
        "feed_rps": round(feed_rps, 1),
        "baseline_rps": round(baseline_rps, 1),
        "ratio": round(ratio, 3),
        "feed_p50_ms": round(median(feed, "p50_ms"), 2),
        "feed_p99_ms": round(feed_p99, 2),
        "baseline_p50_ms": round(median(baseline, "p50_ms"), 2),
        "baseline_p99_ms": round(median(baseline, "p99_ms"), 2),
        "redis_bytes_per_user": bytes_per_user,
        "users": args.users,
        "videos": args.videos,
        "products": args.products,
        "events": args.events,
        "dimension": dimension,
        "published_users": publish["users"],
        "load_generator": extra.pop("load_generator"),
        "connections": args.connections,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "errors": error_counts(results),
        "per_round": {
            "feed_rps": [round(r.rps, 1) for r in feed],
            "baseline_rps": [round(r.rps, 1) for r in baseline],
            "feed_p99_ms": [round(r.p99_ms, 2) for r in feed],
        },
        "targets_met": {
            "ratio": ratio >= TARGET_RATIO,
            "p99": feed_p99 <= TARGET_P99_MS,
            "bytes": bytes_per_user <= TARGET_BYTES,
        },
        **extra,
        "cpus": os.cpu_count(),
    }


def summary(result: dict[str, Any]) -> str:
    met = result["targets_met"]
    errors = result["errors"]["total"]
    lines = [
        f"serve benchmark: {result['users']:,} users, {result['videos']:,} videos, "
        f"{result['products']} products, {result['dimension']} dimensions; "
        f"{result['load_generator']}, {result['connections']} connections, "
        f"{result['rounds']} rounds of {result['seconds_per_run']} s (medians)",
        f"  /v1/feed   {result['feed_rps']:9.1f} req/s  p50 {result['feed_p50_ms']:6.2f} ms  "
        f"p99 {result['feed_p99_ms']:6.2f} ms",
        f"  /healthz   {result['baseline_rps']:9.1f} req/s  p50 {result['baseline_p50_ms']:6.2f} "
        f"ms  p99 {result['baseline_p99_ms']:6.2f} ms",
        f"  ratio {result['ratio']:.3f} (target >= {TARGET_RATIO}: {met['ratio']}), "
        f"feed p99 target <= {TARGET_P99_MS} ms: {met['p99']}, "
        f"{result['redis_bytes_per_user']:.1f} bytes per user in Redis "
        f"(target <= {TARGET_BYTES}: {met['bytes']})",
        f"  feeds by source: {result['feed_sources']}",
    ]
    if errors:
        lines.append(f"  WARNING: {errors} failed requests {result['errors']}: figures suspect")
    else:
        lines.append("  no failed requests")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--events", type=int, default=1_500_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per endpoint per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "out" / "serve",
        help="work dir; its world and model are reused (default bench/out/serve)",
    )
    parser.add_argument("--fresh", action="store_true", help="regenerate world and model")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a service setting for this run, e.g. freshness_weight=1 (RECSVC_FRESHNESS_WEIGHT); "
        "repeatable",
    )
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "asyncio"],
        default="auto",
        help="auto: wrk when on PATH, else the asyncio client",
    )
    parser.add_argument(
        "--campaigns",
        type=int,
        default=0,
        metavar="N",
        help="load N campaign rules of every kind, all in force, drawn from the world (issue 17 "
        "asks for 50)",
    )
    parser.add_argument("--loadgen", help=argparse.SUPPRESS)  # the load-generator process
    return parser.parse_args()


def settings_env(settings: list[str]) -> dict[str, str]:
    """`name=value` pairs as the service's environment variables (RECSVC_NAME)."""
    env = {}
    for setting in settings:
        name, sep, value = setting.partition("=")
        if not sep or not name.strip():
            sys.exit(f"--setting {setting!r}: expected NAME=VALUE, e.g. freshness_weight=1")
        env[f"RECSVC_{name.strip().upper()}"] = value.strip()
    return env


def choose_generator(wanted: str) -> str:
    if wanted == "auto":
        return "wrk" if shutil.which("wrk") else "asyncio"
    if wanted == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not on PATH (use --load-generator asyncio)")
    return wanted


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    work: Path = args.out.resolve()
    work.mkdir(parents=True, exist_ok=True)
    stages: dict[str, float] = {}
    model = prepare_model(work, args, stages)
    dimension = int(json.loads((model / "manifest.json").read_text())["dimension"])
    ids_path, lua_path = write_load_files(work, work / "world")
    generator = choose_generator(args.load_generator)
    redis_dir, server = work / "redis", None
    try:
        env = service_env(start_redis(redis_dir), work / "models") | settings_env(args.setting)
        publish = load_redis(env, model, work / "world", stages)
        if args.campaigns:
            rules = work / "campaigns.toml"
            rules.write_text(campaign_rules(work / "world", args.campaigns))
            run([*recsvc_command(), "campaigns", "load", str(rules)], env)
        port, log = free_port(), work / "server.log"
        server = start_server(env, port, log)
        wait_ready(server, port, log, timeout=120)
        print(f"recsvc serve ready on port {port}; load: {generator}", file=sys.stderr)
        target = Target(port, ids_path, lua_path, args.connections, generator)
        results = measure(target, args.seconds, args.rounds)
        sources = feed_sources(port)
    finally:
        stop_process(server)
        stop_redis(redis_dir)
    extra = {
        "load_generator": generator,
        "settings": sorted(args.setting),
        "campaign_rules": args.campaigns,
        "model_version": model.name,
        "feed_sources": sources,
        "setup_seconds": {k: round(v, 1) for k, v in stages.items()},
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    return report(results, publish, dimension, args, extra)


def main() -> None:
    args = parse_args()
    if args.loadgen:
        loadgen_main(args.loadgen)
        return
    exit_on_sigterm()
    result = benchmark(args)
    print(summary(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
