"""The `recsvc` command line: one app, with command groups discovered at run time.

Online commands live here; offline ones (synth, train, evaluate) are registered by the
`training` package through the `recsvc.commands` entry point, so that this package never
imports the training code and the serving image runs without it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import typer

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


@app.command()
def version() -> None:
    """Print the installed recsvc version."""
    from recsvc import __version__

    typer.echo(__version__)


def main() -> None:
    """Console-script entry point."""
    load_command_groups()
    app()
