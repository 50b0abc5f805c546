"""Where `recsvc train` and `recsvc evaluate` read their events: --interactions, or a synthetic
world (--world) with the users' segments, the catalogue and the ground truth it brings.

The only place the offline half reads a world: `sandbox` is imported here, lazily, for
--world alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from training.data.events import EventDataError, EventFormat

if TYPE_CHECKING:
    from training.evaluation.evaluate import Truth
    from training.models.pipeline import Source

WORLD_FILES = ("world.json", "events", "truth.npz")


def make_source(
    interactions: Path | None,
    fmt: EventFormat,
    world: Path | None,
    max_bad_share: float,
    users: Path | None = None,
    *,
    truth: bool = False,
) -> Source:
    """The source the options name (exactly one of --interactions and --world); `truth`:
    with a world's ground truth, for the oracle baseline."""
    from training.models.pipeline import Source

    if (interactions is None) == (world is None):
        raise typer.BadParameter("give exactly one of --interactions and --world")
    if users is not None and not users.is_file():
        raise typer.BadParameter(f"{users} is not a file", param_hint="--users")
    if world is not None:
        return world_source(world, max_bad_share, users, truth=truth)
    assert interactions is not None
    return Source(interactions, fmt, max_bad_share, users)


def world_source(
    world: Path, max_bad_share: float = 0.01, users: Path | None = None, *, truth: bool = False
) -> Source:
    """A world directory written by `recsvc synth`: its events, its users.csv unless `users`
    is given, its catalogue and (with `truth`) its ground truth; refused early when it is not
    one."""
    from training.models.pipeline import Source

    missing = [name for name in WORLD_FILES if not (world / name).exists()]
    if missing:
        raise EventDataError(
            f"{world} is not a synthetic world (recsvc synth): missing {', '.join(missing)}"
        )
    if users is None and (world / "users.csv").exists():
        users = world / "users.csv"
    return Source(
        world / "events",
        EventFormat.PARQUET,
        max_bad_share,
        users,
        catalog=world / "catalog",
        truth=read_truth(world) if truth else None,
    )


def read_truth(world: Path) -> Truth:
    """The world's ground truth, or an error that names the file."""
    from sandbox.world.generate import load_truth

    try:
        return load_truth(world)
    except (OSError, ValueError, KeyError) as exc:
        raise EventDataError(f"{world / 'truth.npz'} is unreadable: {exc}") from exc
