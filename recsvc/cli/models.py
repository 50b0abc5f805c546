"""The model versions in Redis and on disk: `recsvc publish`, `rollback`, `promote`, `prune` and
`models` (the registry does the work; these parse options and print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from recsvc.cli.common import Json, fail, run_with_redis, settings_with_redis
from recsvc.contract.keys import Keys
from recsvc.contract.manifest import ArtifactError, load_array, read_manifest


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

    settings = settings_with_redis()
    grace = settings.version_grace_seconds if grace_seconds is None else grace_seconds
    try:
        read_manifest(model_dir)
        users = len(load_array(model_dir / "user_ids.npy"))
    except ArtifactError as exc:
        fail(str(exc))
    with typer.progressbar(length=users, label="publishing user vectors") as bar:
        progress = bar.update

        async def work(client: Any, keys: Keys) -> Any:
            return await publish_vectors(client, keys, model_dir, grace, progress, challenger)

        try:
            report = run_with_redis(settings, work)
        except (ArtifactError, LockHeld, LockLost) as exc:
            fail(str(exc))
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

    settings = settings_with_redis()
    grace = settings.version_grace_seconds if grace_seconds is None else grace_seconds
    try:
        moved = run_with_redis(settings, lambda client, keys: roll_back(client, keys, grace, to))
    except (RollbackError, LockHeld, LockLost) as exc:
        fail(str(exc))
    typer.echo(
        f"rolled back from {moved['from']['version']} to {moved['to']['version']} "
        f"(generation {moved['to']['generation']})"
    )


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

    settings = settings_with_redis()
    grace = settings.version_grace_seconds if grace_seconds is None else grace_seconds
    try:
        moved = run_with_redis(
            settings, lambda client, keys: promote_challenger(client, keys, grace)
        )
    except (RollbackError, LockHeld, LockLost) as exc:
        fail(str(exc))
    before = moved["from"]["version"] if moved["from"] else "nothing"
    typer.echo(f"promoted the challenger {moved['to']['version']} to current (was {before})")


def prune(
    keep: Annotated[
        int | None, typer.Option(help="Versions to keep on disk (default: setting).", min=1)
    ] = None,
) -> None:
    """Remove model versions from disk beyond the newest K; never the current one, the
    challenger, or one whose vectors are still in Redis."""
    from recsvc.registry.locks import LockHeld, LockLost
    from recsvc.registry.versions import prune_versions

    settings = settings_with_redis()
    try:
        removed = run_with_redis(
            settings,
            lambda client, keys: prune_versions(
                client, keys, settings.models_dir, keep or settings.keep_versions
            ),
        )
    except (LockHeld, LockLost) as exc:
        fail(str(exc))
    typer.echo(f"removed {len(removed)} version(s) from {settings.models_dir}: {removed}")


def models(json_output: Json = False) -> None:
    """List the model versions in Redis and on disk, with their metrics; mark the current one
    (*) and the challenger (c)."""
    from recsvc.registry.versions import list_versions

    settings = settings_with_redis()
    infos = run_with_redis(
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
