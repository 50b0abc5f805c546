"""The `recsvc` command line: one app, with command groups discovered at run time.

The online commands are wired here from their modules (serve, models, load); the offline and
development ones are registered by `training` and `sandbox` through the `recsvc.commands`
entry point, so that this package never imports them and the serving image runs without them.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from importlib.metadata import entry_points

import typer

from recsvc.cli import load, models, serve

app = typer.Typer(
    name="recsvc",
    no_args_is_help=True,
    add_completion=False,
    help="Content recommendation and product attach for financial apps.",
    epilog="The offline commands (synth, train, evaluate) come with the 'train' extra.",
)
log = logging.getLogger("recsvc.cli")

# Libraries only the training extra installs: without them the offline commands are absent
# by design (the serving image). Any other import failure is a bug and is said out loud.
TRAINING_LIBRARIES = frozenset({"implicit", "scipy", "pyarrow", "threadpoolctl", "tqdm"})


@app.callback()
def root() -> None:
    """Content recommendation and product attach for financial apps."""


# In the order `recsvc --help` lists them.
app.command()(serve.serve)
app.command()(models.publish)
app.command()(models.rollback)
app.command()(models.promote)
app.command()(models.prune)
app.command()(models.models)
app.command()(serve.version)


def _group(name: str, summary: str, load_command: Callable[..., None]) -> None:
    group = typer.Typer(no_args_is_help=True, help=summary)
    group.command("load")(load_command)
    app.add_typer(group, name=name)


_group("campaigns", "Campaign rules: load a definition.", load.campaigns_load)
_group("catalog", "Load catalogue records into Redis.", load.catalog_load)
_group("experiments", "A/B experiments: load a definition.", load.experiments_load)
_group("profiles", "Load user profiles into Redis.", load.profiles_load)
streams = typer.Typer(no_args_is_help=True, help="The event, exposure and card streams.")
streams.command("shards")(load.streams_shards)
app.add_typer(streams, name="streams")


def load_command_groups() -> list[str]:
    """Register every installed command group; return the names that could not load.

    A group is missing quietly when its own package or a library of the training extra is
    not installed (the serving image); any other import failure is said on stderr."""
    missing = []
    for entry in entry_points(group="recsvc.commands"):
        try:
            register = entry.load()
        except ImportError as exc:
            absent = (exc.name or "").split(".")[0]
            if absent not in TRAINING_LIBRARIES | {entry.module.split(".")[0]}:
                typer.echo(f"recsvc: the {entry.name} commands failed to load: {exc}", err=True)
            log.debug("command group %s unavailable: %s", entry.name, exc)
            missing.append(entry.name)
            continue
        register(app)
    return missing


def one_line_paragraphs(text: str) -> str:
    """A docstring with each paragraph on one line (one that starts with \\b kept as it is).

    Docstrings are wrapped for the source; typer's help keeps a single line break as it is,
    so a paragraph wrapped at 95 characters reads broken at 80 columns."""
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def unwrap_help(group: typer.Typer) -> None:
    """Give typer the help of every command of `group` and its subgroups (whichever package
    registered it) as `one_line_paragraphs` of its docstring."""
    for command in group.registered_commands:
        text = command.help or inspect.getdoc(command.callback)
        if text:
            command.help = one_line_paragraphs(text)
    for subgroup in group.registered_groups:
        if subgroup.typer_instance is not None:
            unwrap_help(subgroup.typer_instance)


def main() -> None:
    """Console-script entry point."""
    load_command_groups()
    unwrap_help(app)
    app()
