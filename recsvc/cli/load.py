"""Loading records into Redis: `recsvc catalog load`, `profiles load`, `experiments load` and
`campaigns load`
(recsvc.admin and the feature store do the work; these parse options and print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from recsvc.cli.common import fail, redacted, run_with_redis, settings_with_redis
from recsvc.contract.keys import Keys


def catalog_load(
    videos: Annotated[Path | None, typer.Option(help="videos.jsonl")] = None,
    products: Annotated[Path | None, typer.Option(help="products.jsonl")] = None,
    world: Annotated[Path | None, typer.Option(help="A synthetic world (its catalog/).")] = None,
) -> None:
    """Write video and product records into the catalogue (one transaction)."""
    from recsvc.admin.loaders import LoadError, load_catalog, read_jsonl
    from recsvc.contract.catalog import ProductRecord, VideoRecord

    if world is not None:
        videos, products = world / "catalog/videos.jsonl", world / "catalog/products.jsonl"
    if videos is None and products is None:
        fail("give --videos and/or --products, or --world", 2)
    settings = settings_with_redis()
    try:
        video_records = read_jsonl(videos, VideoRecord) if videos else []
        product_records = read_jsonl(products, ProductRecord) if products else []
    except (LoadError, OSError) as exc:
        fail(str(exc))
    revision = run_with_redis(
        settings, lambda client, keys: load_catalog(client, keys, video_records, product_records)
    )
    typer.echo(
        f"catalogue revision {revision}: {len(video_records):,} videos, "
        f"{len(product_records):,} products"
    )


def profiles_load(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV: user_id, risk_tolerance, segment, lifecycle, holdings")
    ],
) -> None:
    """Write user profiles (replacing each user's profile and holdings)."""
    from recsvc.admin.loaders import LoadError, load_profiles, read_profiles_csv

    settings = settings_with_redis()
    try:
        profiles = read_profiles_csv(csv_path)
    except (LoadError, OSError) as exc:
        fail(str(exc))
    with typer.progressbar(length=len(profiles), label="loading profiles") as bar:
        run_with_redis(
            settings, lambda client, keys: load_profiles(client, keys, profiles, bar.update)
        )
    typer.echo(f"{len(profiles):,} profiles loaded")


def experiments_load(
    definition: Annotated[Path, typer.Argument(help="The experiments' TOML definition.")],
) -> None:
    """Validate a definition and store it in Redis: every replica serves it within a poll.
    A bad one is refused naming every problem, and the stored one keeps serving."""
    from recsvc.contract.experiments import ExperimentError, parse_experiments, require_published
    from recsvc.contract.manifest import is_version_dir
    from recsvc.store.gateway import RedisUnavailable
    from recsvc.store.state import FeatureStore

    settings = settings_with_redis()
    try:
        text = definition.read_text(encoding="utf-8")
        experiments = parse_experiments(
            text, lambda version: is_version_dir(settings.models_dir / version)
        )
    except (OSError, UnicodeDecodeError, ExperimentError) as exc:
        fail(f"{definition}: {exc}")

    async def store(client: Any, keys: Keys) -> str:
        features = FeatureStore(client, keys)
        await require_published(experiments, features.generation_of)
        return await features.put_experiments(text)

    try:
        revision = run_with_redis(settings, store)
    except ExperimentError as exc:
        fail(f"{definition}: {exc}")
    except RedisUnavailable as exc:
        fail(f"Redis at {redacted(settings.redis_url or '')}: {exc}")
    names = ", ".join(e.name for e in experiments.experiments) or "none"
    typer.echo(f"experiments revision {revision}: {names}")


def campaigns_load(
    definition: Annotated[Path, typer.Argument(help="The campaign rules' TOML definition.")],
) -> None:
    """Validate campaign rules and store them in Redis: every replica serves them within a
    poll. A bad definition is refused naming every problem (a rule that asks to set aside a
    seller's rule among them), and the stored one keeps serving."""
    from recsvc.contract.campaigns import CampaignError, parse_campaigns
    from recsvc.store.gateway import RedisUnavailable
    from recsvc.store.state import FeatureStore

    settings = settings_with_redis()
    try:
        campaigns = parse_campaigns(definition.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, CampaignError) as exc:
        fail(f"{definition}: {exc}")

    async def store(client: Any, keys: Keys) -> str:
        return await FeatureStore(client, keys).put_campaigns(campaigns.source)

    try:
        revision = run_with_redis(settings, store)
    except RedisUnavailable as exc:
        fail(f"Redis at {redacted(settings.redis_url or '')}: {exc}")
    names = ", ".join(c.name for c in campaigns.campaigns) or "none"
    typer.echo(f"campaigns revision {revision}: {names}")


def streams_shards(
    shards: Annotated[
        int | None,
        typer.Argument(help="Split the streams into this many shards; none: show the layouts."),
    ] = None,
    after: Annotated[
        float,
        typer.Option(
            "--after",
            help="Seconds until the change takes effect: every replica polls it first, and all "
            "switch at that time.",
            min=0,
        ),
    ] = 30.0,
) -> None:
    """Show or change how many shards the event, exposure and card streams are split into
    (by user; recsvc.contract.shards). Every replica appends to the new layout from --after
    seconds on (it polls the change before); nothing already appended moves: the drain reads
    every layout's shards until they are empty, and an event retried across the change is
    still known as a duplicate."""
    from recsvc.contract.shards import LayoutError, Layouts
    from recsvc.store.gateway import RedisUnavailable
    from recsvc.store.state import FeatureStore

    settings = settings_with_redis()

    async def change(client: Any, keys: Keys) -> Layouts:
        store = FeatureStore(client, keys)
        if shards is None:
            return await store.stored_layouts()
        return await store.set_stream_shards(shards, delay=after)

    try:
        layouts = run_with_redis(settings, change)
    except (RedisUnavailable, LayoutError) as exc:
        fail(str(exc))
    typer.echo(
        json.dumps(
            {
                "shards": layouts.in_effect(),
                "newest": layouts.current,
                "history": [
                    {"shards": x.shards, "since": x.since, "until": x.until}
                    for x in layouts.history
                ],
            }
        )
    )
