"""The `recsvc.commands` entry point of the offline commands: `register(app)`."""

from __future__ import annotations

import typer

from training.cli.ab import ab_plan, ab_report
from training.cli.audit import audit
from training.cli.drain import drain
from training.cli.nightly import nightly
from training.cli.state import backfill
from training.cli.train import compare, evaluate, export, train


def register(app: typer.Typer) -> None:
    """Add the offline commands to the recsvc CLI."""
    app.command()(drain)
    app.command()(audit)
    app.command()(nightly)
    app.command()(train)
    app.command()(evaluate)
    app.command()(export)
    app.command()(compare)
    ab = typer.Typer(no_args_is_help=True, help="A/B experiments: the report, and planning.")
    ab.command("report")(ab_report)
    ab.command("plan")(ab_plan)
    app.add_typer(ab, name="ab")
    state = typer.Typer(no_args_is_help=True, help="The service's online state: seeding it.")
    state.command("backfill")(backfill)
    app.add_typer(state, name="state")
