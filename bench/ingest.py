"""Ingest benchmark: events/s on one Redis against a three-master Redis Cluster with sharded
streams, in the same run; then Redis memory over a long run with `recsvc drain --follow`.

Both parts drive the service's own ingestion code (recsvc.store: FeatureStore.ingest, the
INGEST script, one batch in flight per store as a replica holds it) from client processes,
with many users and fresh event ids, and the catalogue's trending counts on.

1. **Throughput.** A private redis-server (the streams in one shard: what a deployment on one
   master does) and a private cluster of three masters (--shards, default 6, shards), in
   alternating rounds (--rounds, default 3, of --seconds, default 15, each): --processes (2)
   client processes with --stores (4) stores each send batches of --batch (500) views as fast
   as they are answered. Reported per target: the median events/s over the rounds, and each
   master's Redis CPU (INFO used_cpu_user + used_cpu_sys) per 1,000 events and its busiest
   share of one core. `cluster_to_single_ratio` = cluster median / single median.
   On this two-core machine the three masters and the clients share two cores: the ratio is
   bounded by the cores, not by Redis; the per-master CPU figures say what each master
   would carry on a core of its own.
2. **Bytes per undrained event.** On the single Redis, emptied, 10 s of events: used_memory
   growth per event (the stream entry, its dedup marker, its user's recent list and the
   trending counts); after a drain, what remains per event; and the markers' share (their
   keys deleted: the memory freed per event).
3. **Memory under --follow.** On the cluster, --follow-rate (2,000) events/s for
   --follow-seconds (600) with two `recsvc drain --follow` processes draining into a temporary
   directory; the dedup window is --dedup-seconds (60), so the markers' share reaches its
   bound within the --warmup (120 s). used_memory summed over the masters every 5 s.
   `memory_growth_after_warmup` = (median of the last 30 s - median of the 30 s after the
   warm-up) / the latter; also the events the followers had not drained at the end.
   Redis memory is then bounded by the drain's lag plus the markers of one dedup window:
   bytes per marker x events per window (docs/capacity.md does the arithmetic).

Usage: python bench/ingest.py [--seconds S --rounds R --processes P --stores S --batch B]
       [--shards N] [--follow-seconds S --follow-rate R --dedup-seconds S --warmup S]
       [--out DIR]
The last line of output is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recsvc.contract.keys import Keys  # noqa: E402
from recsvc.contract.records import Event  # noqa: E402
from recsvc.store.client import async_client  # noqa: E402
from recsvc.store.state import FeatureStore  # noqa: E402
from sandbox.embedded_redis import EmbeddedCluster, EmbeddedRedis, free_port  # noqa: E402

KEYS = Keys()
VIDEOS = frozenset(f"v{i}" for i in range(500))
USERS = 200_000
RECSVC = str(Path(sys.executable).with_name("recsvc"))


def batch_of(worker: str, serial: int, size: int, users: int) -> list[Event]:
    """`size` views by `users` users, ids unique to this worker and batch."""
    now = datetime.now(UTC).isoformat()
    return [
        Event.model_validate(
            {
                "event_id": f"{worker}-{serial}-{i}",
                "ts": now,
                "user_id": f"u{(serial * size + i) * 7919 % users}",
                "item_id": f"v{(serial + i) % 500}",
                "item_type": "video",
                "action": "view",
                "watch_ratio": 0.6,
            }
        )
        for i in range(size)
    ]


async def _send(
    url: str, cluster: bool, worker: str, stores: int, batch: int, until: float, rate: float,
    dedup_seconds: int, users: int,
) -> int:  # fmt: skip
    """Send batches from `stores` stores until `until`; events accepted. `rate` > 0: at most
    that many events/s from this process, spread over its stores (an open-loop pace)."""
    client = async_client(url, cluster=cluster)
    accepted = 0

    async def one(k: int) -> None:
        nonlocal accepted
        store = FeatureStore(client, KEYS)
        await store.poll()
        serial, started = 0, time.monotonic()
        while time.monotonic() < until:
            events = batch_of(f"{worker}.{k}", serial, batch, users)
            done = await store.ingest(events, 10**8, dedup_seconds, 50, videos=VIDEOS)
            accepted += done.accepted
            serial += 1
            if rate > 0:
                due = started + serial * batch * stores / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))
            if serial % 20 == 0:
                await store.poll()

    try:
        await asyncio.gather(*(one(k) for k in range(stores)))
    finally:
        await client.aclose()
    return accepted


def _worker(args: tuple[Any, ...], out: Any) -> None:
    out.put(asyncio.run(_send(*args)))


def drive(
    url: str, cluster: bool, seconds: float, processes: int, stores: int, batch: int,
    tag: str, rate: float = 0.0, dedup_seconds: int = 86400, users: int = USERS,
) -> int:  # fmt: skip
    """Events accepted by `processes` client processes in `seconds`."""
    queue: Any = multiprocessing.get_context("fork").Queue()
    until = time.monotonic() + seconds
    workers = [
        multiprocessing.get_context("fork").Process(
            target=_worker,
            args=(
                (
                    url,
                    cluster,
                    f"{tag}.{p}",
                    stores,
                    batch,
                    until,
                    rate / processes,
                    dedup_seconds,
                    users,
                ),  # fmt: skip
                queue,
            ),
        )
        for p in range(processes)
    ]
    for worker in workers:
        worker.start()
    total = sum(queue.get(timeout=seconds + 120) for _ in workers)
    for worker in workers:
        worker.join()
    return int(total)


def cpu_seconds(ports: list[int]) -> list[float]:
    """Each server's CPU time so far (user + system)."""
    seconds = []
    for port in ports:
        with redis.Redis(port=port) as client:
            info: Any = client.info("cpu")
            seconds.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return seconds


def used_memory(ports: list[int]) -> int:
    total = 0
    for port in ports:
        with redis.Redis(port=port) as client:
            info: Any = client.info("memory")
            total += int(info["used_memory"])
    return total


def set_shards(url: str, cluster: bool, shards: int) -> None:
    async def work() -> None:
        client = async_client(url, cluster=cluster)
        try:
            await FeatureStore(client, KEYS).set_stream_shards(shards, delay=0)
        finally:
            await client.aclose()

    asyncio.run(work())


def throughput(
    single: EmbeddedRedis, cluster: EmbeddedCluster, args: argparse.Namespace
) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"single": [], "cluster": []}
    cpu: dict[str, list[list[float]]] = {"single": [], "cluster": []}
    events: dict[str, int] = {"single": 0, "cluster": 0}
    targets = {
        "single": (single.url, False, [single.port]),
        "cluster": (cluster.url, True, cluster.ports),
    }
    for round_ in range(args.rounds):
        for name, (url, is_cluster, ports) in targets.items():
            before = cpu_seconds(ports)
            started = time.monotonic()
            accepted = drive(
                url, is_cluster, args.seconds, args.processes, args.stores, args.batch,
                f"r{round_}{name}",
            )  # fmt: skip
            elapsed = time.monotonic() - started
            used = [a - b for a, b in zip(cpu_seconds(ports), before, strict=True)]
            rates[name].append(accepted / elapsed)
            cpu[name].append([u / elapsed for u in used])
            events[name] += accepted
            print(f"round {round_} {name}: {accepted / elapsed:,.0f} events/s, Redis CPU "
                  f"{', '.join(f'{u / elapsed:.0%}' for u in used)}", flush=True)  # fmt: skip
    report: dict[str, Any] = {}
    for name in targets:
        total_cpu = sum(sum(c) for c in cpu[name]) * args.seconds
        # what the target would take with its busiest master on a core of its own
        per_core = [r / max(c) for r, c in zip(rates[name], cpu[name], strict=True)]
        report[name] = {
            "events_per_second_median": round(statistics.median(rates[name])),
            "events_per_second": [round(r) for r in rates[name]],
            "redis_cpu_share_busiest_master": round(max(max(c) for c in cpu[name]), 3),
            "redis_cpu_ms_per_1000_events": round(1000 * total_cpu / events[name] * 1000, 2),
            "events_per_second_at_a_core_per_master": round(statistics.median(per_core)),
        }
    single, cluster_ = report["single"], report["cluster"]
    ratio = cluster_["events_per_second_median"] / single["events_per_second_median"]
    report["cluster_to_single_ratio"] = round(ratio, 3)
    at_a_core = "events_per_second_at_a_core_per_master"
    report["cluster_to_single_ratio_at_a_core_per_master"] = round(
        cluster_[at_a_core] / single[at_a_core], 3
    )
    return report


def undrained_bytes(single: EmbeddedRedis, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """used_memory per event with its marker, then per event once drained (the marker)."""
    with redis.Redis(port=single.port) as client:
        client.flushall()
        base = used_memory([single.port])
        accepted = drive(single.url, False, 10, 1, 2, args.batch, "bytes")
        held = used_memory([single.port]) - base
        out = work / "bytes"
        subprocess.run(
            [RECSVC, "drain", "--out", str(out / "events"), "--exposures",
             str(out / "exposures"), "--cards", str(out / "cards")],
            env={**os.environ, "RECSVC_REDIS_URL": single.url}, check=True, capture_output=True,
        )  # fmt: skip
        after = used_memory([single.port]) - base
        for batch in _chunks(client.scan_iter(match=f"{KEYS.prefix}:ev:*", count=10_000)):
            client.unlink(*batch)
        markers = after - (used_memory([single.port]) - base)
        client.flushall()
    return {
        "events": accepted,
        "users": min(accepted, USERS),
        "bytes_per_undrained_event": round(held / accepted),
        # the dedup markers, and the users' recent lists and trending counts the events left
        "bytes_per_event_after_drain": round(after / accepted),
        "bytes_per_dedup_marker": round(markers / accepted),
    }


def _chunks(keys: Any, size: int = 1000) -> Any:
    batch: list[Any] = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def follow_memory(cluster: EmbeddedCluster, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    cluster.flushall()
    set_shards(cluster.url, True, args.shards)
    env = {**os.environ, "RECSVC_REDIS_URL": cluster.url, "RECSVC_REDIS_CLUSTER": "true"}
    out = work / "follow"
    followers = [
        subprocess.Popen(
            [
                RECSVC,
                "drain",
                "--follow",
                "--consumer",
                f"bench-{k}",
                "--interval",
                "0.5",
                "--json",
                "--out",
                str(out / "events"),
                "--exposures",
                str(out / "exposures"),
                "--cards",
                str(out / "cards"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for k in range(2)
    ]
    samples: list[tuple[float, int]] = []
    queue: Any = multiprocessing.get_context("fork").Queue()
    sender = multiprocessing.get_context("fork").Process(
        target=lambda: queue.put(
            drive(
                cluster.url,
                True,
                args.follow_seconds,
                1,
                4,
                100,
                "follow",
                rate=args.follow_rate,
                dedup_seconds=args.dedup_seconds,
                users=args.follow_users,
            )  # fmt: skip
        )
    )
    started = time.monotonic()
    sender.start()
    while sender.is_alive():
        samples.append((time.monotonic() - started, used_memory(cluster.ports)))
        if len(samples) % 12 == 0:
            print(f"{samples[-1][0]:.0f} s: used_memory {samples[-1][1] / 1e6:.1f} MB", flush=True)
        time.sleep(5)
    sender.join()
    sent = queue.get(timeout=60)
    with redis.RedisCluster.from_url(cluster.url) as client:
        left = sum(client.xlen(s) for s in KEYS.streams("events", args.shards))
    for process in followers:
        process.send_signal(signal.SIGTERM)
    summaries = [
        json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in followers
    ]

    def median_between(low: float, high: float) -> float:
        return statistics.median(m for t, m in samples if low <= t < high)

    after_warmup = median_between(args.warmup, args.warmup + 30)
    end = median_between(samples[-1][0] - 30, samples[-1][0] + 1)
    return {
        "seconds": args.follow_seconds,
        "rate": args.follow_rate,
        "events_sent": sent,
        "events_drained": sum(s["events"]["written"] for s in summaries),
        "events_left_in_streams": left,
        "dedup_seconds": args.dedup_seconds,
        "used_memory_after_warmup_mb": round(after_warmup / 1e6, 2),
        "used_memory_end_mb": round(end / 1e6, 2),
        "used_memory_max_mb": round(max(m for _, m in samples) / 1e6, 2),
        "memory_growth_after_warmup": round((end - after_warmup) / after_warmup, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--stores", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--follow-seconds", type=float, default=600.0)
    parser.add_argument("--follow-rate", type=float, default=2000.0)
    parser.add_argument("--dedup-seconds", type=int, default=60)
    parser.add_argument("--follow-users", type=int, default=2000)
    parser.add_argument("--warmup", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.follow_seconds < args.warmup + 60:
        parser.error("--follow-seconds must be at least --warmup + 60")
    work = Path(args.out or tempfile.mkdtemp(prefix="recsvc-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    single = EmbeddedRedis(work / "single", free_port()).start()
    cluster = EmbeddedCluster(work / "cluster").start()
    try:
        set_shards(cluster.url, True, args.shards)
        report: dict[str, Any] = {"shards": args.shards, "masters": 3, "cores": os.cpu_count()}
        report["throughput"] = throughput(single, cluster, args)
        report["bytes"] = undrained_bytes(single, args, work)
        report["follow"] = follow_memory(cluster, args, work)
    finally:
        cluster.stop()
        single.stop()
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    report["cluster_to_single_ratio"] = report["throughput"]["cluster_to_single_ratio"]
    report["memory_growth_after_warmup"] = report["follow"]["memory_growth_after_warmup"]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
