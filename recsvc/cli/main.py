"""The `recsvc` command line: one app, with command groups discovered at run time.

Online commands live here; offline ones (synth, train, evaluate) are registered by the
`training` package through the `recsvc.commands` entry point, so that this package never
imports the training code and the serving image runs without it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError, read_manifest
from recsvc.contract.manifest import load_array
from recsvc.service.settings import Settings, SettingsError, load_settings
from recsvc.store.client import REDIS_ERRORS, async_client

T = TypeVar("T")

app = typer.Typer(
    name="recsvc",
    no_args_is_help=True,
    add_completion=False,
    help="Content recommendation and product attach for financial apps.",
    epilog="The offline commands (synth, train, evaluate) come with the 'train' extra.",
)
log = logging.getLogger("recsvc.cli.main")

# Libraries only the training extra installs: without them the offline commands are absent
# by design (the serving image). Any other import failure is a bug and is said out loud.
TRAINING_LIBRARIES = frozenset({"implicit", "scipy", "pyarrow", "threadpoolctl", "tqdm"})


@app.callback()
def root() -> None:
    """Content recommendation and product attach for financial apps."""


def load_command_groups() -> list[str]:
    """Register every installed command group; return the names that could not load."""
    missing = []
    for entry in entry_points(group="recsvc.commands"):
        try:
            register = entry.load()
        except ImportError as exc:
            if (exc.name or "").split(".")[0] not in TRAINING_LIBRARIES:
                typer.echo(f"recsvc: the {entry.name} commands failed to load: {exc}", err=True)
            log.debug("command group %s unavailable: %s", entry.name, exc)
            missing.append(entry.name)
            continue
        register(app)
    return missing


catalog_app = typer.Typer(no_args_is_help=True, help="Load catalogue records into Redis.")
experiments_app = typer.Typer(no_args_is_help=True, help="A/B experiments: load a definition.")
profiles_app = typer.Typer(no_args_is_help=True, help="Load user profiles into Redis.")
redis_app = typer.Typer(no_args_is_help=True, help="A private redis-server for demos.")
app.add_typer(catalog_app, name="catalog")
app.add_typer(experiments_app, name="experiments")
app.add_typer(profiles_app, name="profiles")
app.add_typer(redis_app, name="redis")

Json = Annotated[bool, typer.Option("--json", help="End with one JSON object on the last line.")]


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(str(exc), code=2)
    if settings.redis_url is None:
        _fail("RECSVC_REDIS_URL: not set (the Redis to use, e.g. redis://127.0.0.1:6379/0)", 2)
    return settings


def redacted(url: str) -> str:
    """A Redis URL fit for a log: its password (redis://user:secret@host) replaced."""
    return re.sub(r"(?<=://)([^:@/]*):[^@/]*@", r"\1:***@", url)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"recsvc: {message}", err=True)
    raise typer.Exit(code)


def _run_with_redis(settings: Settings, work: Callable[[Any, Keys], Awaitable[T]]) -> T:
    async def main() -> T:
        client = async_client(settings.redis_url or "", settings.redis_cluster, timeout=30)
        try:
            return await work(client, Keys(settings.redis_prefix))
        finally:
            await client.aclose()

    try:
        return asyncio.run(main())
    except REDIS_ERRORS as exc:
        _fail(f"Redis at {redacted(settings.redis_url or '')}: {exc}")
    except OSError as exc:  # the disk (a models directory), or a socket error redis let through
        _fail(str(exc))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
) -> None:
    """Run the HTTP service (one worker; scale with replicas). Configured by RECSVC_*."""
    from recsvc.edge import server
    from recsvc.edge.app import create_app
    from recsvc.service import logs

    try:
        settings = load_settings()
        log_json = settings.log_json
    except SettingsError as exc:
        settings, log_json, problem = None, _log_json_wanted(), str(exc)
    logs.configure(log_json, process=True)  # before the first line, ours or uvicorn's
    try:
        if settings is None:
            raise SettingsError(problem)
        service = create_app(settings)  # e.g. no API keys, no RECSVC_REDIS_URL
    except SettingsError as exc:
        # A log line like every other (an orchestrator's log pipeline reads JSON), then exit 2
        logging.getLogger("recsvc.cli.main").error("recsvc serve not started: %s", exc)
        raise typer.Exit(2) from None
    server.run(service, settings, host, port)


def _log_json_wanted() -> bool:
    """RECSVC_LOG_JSON read on its own, when the settings as a whole cannot be (JSON unless it
    says false, as its default is)."""
    value = os.environ.get("RECSVC_LOG_JSON", "true").strip().lower()
    return value not in ("0", "false", "no", "off")


@app.command()
def publish(
    model_dir: Annotated[Path, typer.Argument(help="A model version directory.")],
    grace_seconds: Annotated[
        int | None, typer.Option(help="How long the previous vectors stay (default: setting).")
    ] = None,
    challenger: Annotated[
        bool,
        typer.Option(
            "--challenger", help="Publish as the challenger (for an A/B test): nothing goes live."
        ),
    ] = False,
    json_output: Json = False,
) -> None:
    """Write a model version's user vectors to Redis and make it the current model (or, with
    --challenger, the challenger)."""
    from recsvc.registry.locks import LockHeld, LockLost
    from recsvc.registry.publish import publish as publish_vectors

    settings = _settings()
    grace = settings.version_grace_seconds if grace_seconds is None else grace_seconds
    try:
        read_manifest(model_dir)
        users = len(load_array(model_dir / "user_ids.npy"))
    except ArtifactError as exc:
        _fail(str(exc))
    with typer.progressbar(length=users, label="publishing user vectors") as bar:
        progress = bar.update

        async def work(client: Any, keys: Keys) -> Any:
            return await publish_vectors(client, keys, model_dir, grace, progress, challenger)

        try:
            report = _run_with_redis(settings, work)
        except (ArtifactError, LockHeld, LockLost) as exc:
            _fail(str(exc))
    typer.echo(
        f"published {report.version} as the {report.role} model, generation "
        f"{report.generation}: {report.users:,} users "
        f"in {report.seconds:.1f}s, {report.bytes_per_user:.0f} bytes per user in Redis"
        + (
            f"; previous {report.previous_version} expires in {grace}s"
            if report.previous_version
            else ""
        )
    )
    if json_output:
        typer.echo(json.dumps(report.as_dict()))


@app.command()
def rollback(
    to: Annotated[str | None, typer.Option(help="The version to go back to.")] = None,
    grace_seconds: Annotated[
        int | None, typer.Option(help="How long the abandoned vectors stay (default: setting).")
    ] = None,
) -> None:
    """Point the service back at an earlier version at once (its vectors must still be in
    Redis); every replica hot-reloads it."""
    from recsvc.registry.locks import LockHeld, LockLost
    from recsvc.registry.versions import RollbackError
    from recsvc.registry.versions import rollback as roll_back

    settings = _settings()
    grace = settings.version_grace_seconds if grace_seconds is None else grace_seconds
    try:
        moved = _run_with_redis(settings, lambda client, keys: roll_back(client, keys, grace, to))
    except (RollbackError, LockHeld, LockLost) as exc:
        _fail(str(exc))
    typer.echo(
        f"rolled back from {moved['from']['version']} to {moved['to']['version']} "
        f"(generation {moved['to']['generation']})"
    )


@app.command()
def promote(
    grace_seconds: Annotated[
        int | None,
        typer.Option(help="How long the replaced current vectors stay (default: setting)."),
    ] = None,
) -> None:
    """Make the challenger the current model at once; every replica hot-reloads it. The model
    it replaces stays in Redis for the grace period, so `recsvc rollback` can bring it back."""
    from recsvc.registry.locks import LockHeld, LockLost
    from recsvc.registry.versions import RollbackError
    from recsvc.registry.versions import promote as promote_challenger

    settings = _settings()
    grace = settings.version_grace_seconds if grace_seconds is None else grace_seconds
    try:
        moved = _run_with_redis(
            settings, lambda client, keys: promote_challenger(client, keys, grace)
        )
    except (RollbackError, LockHeld, LockLost) as exc:
        _fail(str(exc))
    before = moved["from"]["version"] if moved["from"] else "nothing"
    typer.echo(f"promoted the challenger {moved['to']['version']} to current (was {before})")


@app.command()
def prune(
    keep: Annotated[
        int | None, typer.Option(help="Versions to keep on disk (default: setting).", min=1)
    ] = None,
) -> None:
    """Remove model versions from disk beyond the newest K; never the current one, the
    challenger, or one whose vectors are still in Redis."""
    from recsvc.registry.locks import LockHeld, LockLost
    from recsvc.registry.versions import prune_versions

    settings = _settings()
    try:
        removed = _run_with_redis(
            settings,
            lambda client, keys: prune_versions(
                client, keys, settings.models_dir, keep or settings.keep_versions
            ),
        )
    except (LockHeld, LockLost) as exc:
        _fail(str(exc))
    typer.echo(f"removed {len(removed)} version(s) from {settings.models_dir}: {removed}")


@app.command()
def models(json_output: Json = False) -> None:
    """List the model versions in Redis and on disk, with their metrics; mark the current one
    (*) and the challenger (c)."""
    from recsvc.registry.versions import list_versions

    settings = _settings()
    infos = _run_with_redis(
        settings, lambda client, keys: list_versions(client, keys, settings.models_dir)
    )
    for info in infos:
        mark = {"current": "*", "challenger": "c"}.get(info.state, " ")
        generation = "-" if info.generation is None else str(info.generation)
        users = "-" if info.users is None else f"{info.users:,}"
        typer.echo(
            f"{mark} {info.version}  generation {generation:>4}  {info.state:<9} users {users:>9}"
            f"  {'on disk' if info.on_disk else 'NOT ON DISK'}  {json.dumps(info.metrics)}"
        )
    if json_output:
        typer.echo(json.dumps([info.as_dict() for info in infos]))


@experiments_app.command("load")
def experiments_load(
    definition: Annotated[Path, typer.Argument(help="The experiments' TOML definition.")],
) -> None:
    """Validate a definition and store it in Redis: every replica serves it within a poll.
    A bad one is refused naming every problem, and the stored one keeps serving."""
    from recsvc.contract.experiments import ExperimentError, parse_experiments, require_published
    from recsvc.contract.manifest import is_version_dir
    from recsvc.store.gateway import RedisUnavailable
    from recsvc.store.state import FeatureStore

    settings = _settings()
    try:
        text = definition.read_text(encoding="utf-8")
        experiments = parse_experiments(
            text, lambda version: is_version_dir(settings.models_dir / version)
        )
    except (OSError, UnicodeDecodeError, ExperimentError) as exc:
        _fail(f"{definition}: {exc}")

    async def store(client: Any, keys: Keys) -> str:
        features = FeatureStore(client, keys)
        await require_published(experiments, features.generation_of)
        return await features.put_experiments(text)

    try:
        revision = _run_with_redis(settings, store)
    except ExperimentError as exc:
        _fail(f"{definition}: {exc}")
    except RedisUnavailable as exc:
        _fail(f"Redis at {redacted(settings.redis_url or '')}: {exc}")
    names = ", ".join(e.name for e in experiments.experiments) or "none"
    typer.echo(f"experiments revision {revision}: {names}")


@catalog_app.command("load")
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
        _fail("give --videos and/or --products, or --world", 2)
    settings = _settings()
    try:
        video_records = read_jsonl(videos, VideoRecord) if videos else []
        product_records = read_jsonl(products, ProductRecord) if products else []
    except (LoadError, OSError) as exc:
        _fail(str(exc))
    revision = _run_with_redis(
        settings, lambda client, keys: load_catalog(client, keys, video_records, product_records)
    )
    typer.echo(
        f"catalogue revision {revision}: {len(video_records):,} videos, "
        f"{len(product_records):,} products"
    )


@profiles_app.command("load")
def profiles_load(
    csv_path: Annotated[
        Path, typer.Argument(help="CSV: user_id, risk_tolerance, segment, lifecycle, holdings")
    ],
) -> None:
    """Write user profiles (replacing each user's profile and holdings)."""
    from recsvc.admin.loaders import LoadError, load_profiles, read_profiles_csv

    settings = _settings()
    try:
        profiles = read_profiles_csv(csv_path)
    except (LoadError, OSError) as exc:
        _fail(str(exc))
    with typer.progressbar(length=len(profiles), label="loading profiles") as bar:
        _run_with_redis(
            settings, lambda client, keys: load_profiles(client, keys, profiles, bar.update)
        )
    typer.echo(f"{len(profiles):,} profiles loaded")


@redis_app.command("start")
def redis_start(
    directory: Annotated[Path, typer.Option("--dir", help="Working directory (log, pid).")],
) -> None:
    """Start a private redis-server on a free loopback port; print its URL."""
    from sandbox.embedded_redis import EmbeddedRedis, EmbeddedRedisError

    try:
        server = EmbeddedRedis(directory).start()
    except EmbeddedRedisError as exc:
        _fail(str(exc))
    server.detach()
    typer.echo(server.url)


@redis_app.command("stop")
def redis_stop(
    directory: Annotated[Path, typer.Option("--dir", help="The directory given to start.")],
) -> None:
    """Stop the server `recsvc redis start --dir` started."""
    from sandbox.embedded_redis import EmbeddedRedis

    if not EmbeddedRedis.stop_detached(directory):
        typer.echo(f"recsvc: no redis-server running from {directory}", err=True)


@app.command()
def version() -> None:
    """Print the installed recsvc version."""
    from recsvc import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    load_command_groups()
    app()
