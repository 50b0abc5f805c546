"""`recsvc state backfill`: seed the service's online state from history, before serving a
model trained on that history (docs/own-data.md, the bootstrap order)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from training.cli.options import (
    Format,
    Interactions,
    Json,
    MaxBadShare,
    emit,
    fail,
    service_settings,
)
from training.data.events import EventFormat

if TYPE_CHECKING:
    import pyarrow as pa

    from recsvc.contract.keys import Keys
    from recsvc.store.client import AsyncClient

USERS_PER_CALL = 500  # users seeded per Redis script: a few ms of Redis each


def backfill(
    interactions: Interactions = None,
    fmt: Format = EventFormat.AUTO,
    max_bad_share: MaxBadShare = 0.01,
    backfill_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Name of this backfill (default: a digest of the files). A user already "
            "seeded under it is skipped: run it again to resume.",
        ),
    ] = None,
    json_output: Json = False,
) -> None:
    """Seed each user's online state from their history: the latest events (the seen filter
    and fold-in read them) and the products they bought (never offered again when held once).
    Run it after the catalogue is loaded and before serving. Idempotent: a second run, or one
    resumed after a crash, changes nothing already done.

    Uses RECSVC_REDIS_URL, RECSVC_REDIS_PREFIX, RECSVC_REDIS_CLUSTER,
    RECSVC_RECENT_EVENTS_LIMIT and RECSVC_MAX_PURCHASED_PER_USER, like the service."""
    from recsvc.contract.keys import Keys
    from recsvc.store.client import REDIS_ERRORS, async_client
    from training.data.events import EventDataError, load_events

    if interactions is None:
        raise typer.BadParameter("give the history to seed from", param_hint="--interactions")
    settings = service_settings("the Redis whose user state to seed")
    try:
        events, validation = load_events(interactions, fmt, max_bad_share=max_bad_share)
    except (EventDataError, ValueError) as exc:
        fail(str(exc))
    name = backfill_id or f"history-{files_digest(interactions)}"
    keys = Keys(settings.redis_prefix)
    try:
        report = asyncio.run(
            seed(
                async_client(settings.redis_url or "", settings.redis_cluster),
                keys,
                name,
                events,
                settings.recent_events_limit,
                settings.max_purchased_per_user,
            )
        )
    except REDIS_ERRORS as exc:
        fail(f"backfill stopped ({exc}); run it again to resume: users done are skipped")
    report["validation"] = validation.to_dict()
    text = (
        f"backfill {name}: {report['users']:,} users in the history, {report['seeded']:,} "
        f"seeded, {report['skipped']:,} skipped (already seeded by this backfill); "
        f"{report['recent']:,} recent entries and {report['purchases']:,} purchased products "
        f"written ({report['over_limit']:,} over the per-user limit, "
        f"{report['unknown_products']:,} purchases of products not in the catalogue left out)"
    )
    if report["catalog_products"] == 0 and report["unknown_products"]:
        typer.secho(
            "warning: the catalogue in Redis holds no product: load it first "
            "(recsvc catalog load), then run this again to seed the purchases",
            fg=typer.colors.YELLOW,
            err=True,
        )
    emit(report, text, json_output)


async def seed(
    client: AsyncClient,
    keys: Keys,
    name: str,
    events: pa.Table,
    recent_limit: int,
    max_purchased: int,
) -> dict[str, Any]:
    """Seed every user of `events`, USERS_PER_CALL at a time; the counts."""
    from recsvc.store.backfill import Seeded, backfill_users
    from training.data.history import HistoryCounts, user_histories

    try:
        held = await client.hkeys(keys.catalog_products)
        products = {p.decode() if isinstance(p, bytes) else p for p in held}
        counts, total, batch = HistoryCounts(), Seeded(), []
        for history in user_histories(events, recent_limit, products, counts):
            batch.append(history)
            if len(batch) == USERS_PER_CALL:
                total.add(
                    await backfill_users(client, keys, name, batch, recent_limit, max_purchased)
                )
                batch = []
        total.add(await backfill_users(client, keys, name, batch, recent_limit, max_purchased))
    finally:
        await client.aclose()
    return {
        "backfill_id": name,
        "users": counts.users,
        "events": counts.events,
        "seeded": total.users,
        "skipped": total.skipped,
        "recent": total.recent,
        "purchases": total.purchases,
        "over_limit": total.over_limit,
        "unknown_products": counts.unknown_products,
        "catalog_products": len(products),
    }


def files_digest(path: Path) -> str:
    """A short digest of the event files under `path` (names relative to it, contents)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()[:16]
