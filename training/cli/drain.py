"""`recsvc drain`: the service's event and exposure streams into Parquet day partitions
(training.data.drain does the work, under the nightly run's lock)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from training.cli.audit import CardsDir
from training.cli.options import ExposuresDir, Json, directory_option, emit, fail, service_settings


def drain(
    out: Annotated[Path, typer.Option(help="Events directory (day partitions).")] = Path(
        "data/events"
    ),
    exposures: ExposuresDir = Path("data/exposures"),
    cards: CardsDir = Path("data/cards"),
    json_output: Json = False,
) -> None:
    """Move the service's event, exposure and card streams into Parquet day partitions (each
    entry once).

    Uses RECSVC_REDIS_URL, RECSVC_REDIS_CLUSTER and RECSVC_REDIS_PREFIX, like the service."""
    from recsvc.contract.keys import Keys
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
    busy = "a nightly run or another drain is in progress (two drains could write an event twice)"
    try:
        # The nightly run's lock: a drain is the first step of that job.
        with redis_lock(client, nightly_lock(keys), "drain", busy) as lease:
            report = drain_stream(client, out, keys, before_ack=lease.check)
            shown = drain_stream(client, exposures, keys, before_ack=lease.check, stream=EXPOSURES)
            carded = drain_stream(client, cards, keys, before_ack=lease.check, stream=CARDS)
    except (LockHeld, LockLost) as exc:
        fail(str(exc))
    except (*REDIS_ERRORS, OSError) as exc:
        fail(f"drain stopped, nothing unwritten was acknowledged: {exc}")
    finally:
        client.close()
    text = (
        f"drained {report.read:,} events into {out} ({len(report.files)} files, "
        f"{report.already_written:,} already written by an earlier run) and "
        f"{shown.read:,} exposures into {exposures} and {carded.read:,} cards into {cards} in "
        f"{report.seconds + shown.seconds + carded.seconds:.3f}s"
    )
    summary = {**report.as_dict(), "exposures": shown.as_dict(), "cards": carded.as_dict()}
    emit(summary, text, json_output)
