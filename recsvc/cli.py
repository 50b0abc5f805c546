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
    epilog="Offline commands (synth, train, evaluate) need the training extra: "
    "pip install 'recsvc[train]'.",
)
log = logging.getLogger("recsvc.cli")


def load_command_groups() -> list[str]:
    """Register every installed command group; return the names that could not load."""
    missing = []
    for entry in entry_points(group="recsvc.commands"):
        try:
            register = entry.load()
        except ImportError as exc:  # the training extra is not installed
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
