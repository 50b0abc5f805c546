"""`recsvc drain`: the service's event and exposure streams into Parquet day partitions
(training.data.drain does the work, under the nightly run's lock)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from training.cli.audit import CardsDir
from training.cli.options import ExposuresDir, Json, directory_option, emit, fail, service_settings


def drain(
    out: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: ExposuresDir = Path("data/exposures"),
    cards: CardsDir = Path("data/cards"),
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Keep draining until stopped (SIGTERM or Ctrl-C), a share of the shards per "
            "follower; run one or more.",
        ),
    ] = False,
    consumer: Annotated[
        str | None,
        typer.Option(help="With --follow: this follower's name (default: host and pid)."),
    ] = None,
    interval: Annotated[
        float, typer.Option(help="With --follow: seconds to wait when nothing came.", min=0.05)
    ] = 1.0,
    json_output: Json = False,
) -> None:
    """Move the service's event, exposure and card streams into Parquet day partitions (each
    entry once), every shard of each.

    Once, under the nightly run's lock (the shards a follower holds are left to it), or with
    --follow as a long-running process that keeps the streams short.
    Uses RECSVC_REDIS_URL, RECSVC_REDIS_CLUSTER and RECSVC_REDIS_PREFIX, like the service."""
    from recsvc.contract.keys import Keys
    from recsvc.contract.shards import LayoutError
    from recsvc.registry.locks import LockHeld, LockLost, redis_lock
    from recsvc.store.client import REDIS_ERRORS, sync_client
    from training.data.drain import CARDS, EXPOSURES
    from training.data.drain import drain as drain_stream
    from training.nightly.run import nightly_lock

    settings = service_settings("the Redis whose event stream to drain")
    directory_option(out, "--out")
    directory_option(exposures, "--exposures")
    directory_option(cards, "--cards")
    client = sync_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
    keys = Keys(settings.redis_prefix)
    if follow:
        folders = {"events": out, "exposures": exposures, "cards": cards}
        try:
            summary = _follow(client, keys, folders, consumer, interval)
        except (*REDIS_ERRORS, OSError, LayoutError) as exc:
            fail(f"drain --follow stopped, nothing unwritten was acknowledged: {exc}")
        finally:
            client.close()
        moved = ", ".join(f"{summary[k]['read']:,} {k}" for k in ("events", "exposures", "cards"))
        text = f"drain --follow {summary['consumer']} stopped after {summary['cycles']:,} cycles"
        emit(summary, f"{text}: drained {moved}", json_output)
        return
    busy = "a nightly run or another drain is in progress (two drains could write an event twice)"
    try:
        # The nightly run's lock: a drain is the first step of that job.
        with redis_lock(client, nightly_lock(keys), "drain", busy) as lease:
            report = drain_stream(client, out, keys, before_ack=lease.check)
            shown = drain_stream(client, exposures, keys, before_ack=lease.check, stream=EXPOSURES)
            carded = drain_stream(client, cards, keys, before_ack=lease.check, stream=CARDS)
    except (LockHeld, LockLost) as exc:
        fail(str(exc))
    except (*REDIS_ERRORS, OSError, LayoutError) as exc:
        fail(f"drain stopped, nothing unwritten was acknowledged: {exc}")
    finally:
        client.close()
    followed = sorted(set(report.skipped_shards))
    text = (
        f"drained {report.read:,} events into {out} ({len(report.files)} files, "
        f"{report.already_written:,} already written by an earlier run) and "
        f"{shown.read:,} exposures into {exposures} and {carded.read:,} cards into {cards} in "
        f"{report.seconds + shown.seconds + carded.seconds:.3f}s"
        + (f"; {len(followed)} shards left to their followers" if followed else "")
    )
    summary = {**report.as_dict(), "exposures": shown.as_dict(), "cards": carded.as_dict()}
    emit(summary, text, json_output)


def _follow(
    client: Any, keys: Any, folders: dict[str, Path], consumer: str | None, interval: float
) -> dict[str, Any]:
    """Run a follower until SIGTERM or SIGINT; what it did."""
    import logging
    import os
    import signal
    import socket
    import threading

    from training.data.follow import Follower

    log = logging.getLogger("recsvc.drain")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    last = [0.0]

    def progress(report: Any) -> None:
        if time.monotonic() - last[0] >= 60:  # a line a minute, counts only
            last[0] = time.monotonic()
            log.info("drain --follow %s: %s", name, json.dumps(report.as_dict()))

    follower = Follower(client, keys, folders, name, interval=interval, on_cycle=progress)
    return {"consumer": name, **follower.run(stop).as_dict()}
