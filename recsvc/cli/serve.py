"""`recsvc serve` (the HTTP service) and `recsvc version`."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import typer

from recsvc.service.settings import SettingsError, load_settings


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
        # A log line like every other (an orchestrator's log pipeline reads JSON), then exit 2;
        # the logger keeps the name it had before the CLI was split, for log queries.
        logging.getLogger("recsvc.cli").error("recsvc serve not started: %s", exc)
        raise typer.Exit(2) from None
    server.run(service, settings, host, port)


def _log_json_wanted() -> bool:
    """RECSVC_LOG_JSON read on its own, when the settings as a whole cannot be (JSON unless it
    says false, as its default is)."""
    value = os.environ.get("RECSVC_LOG_JSON", "true").strip().lower()
    return value not in ("0", "false", "no", "off")


def version() -> None:
    """Print the installed recsvc version."""
    from recsvc import __version__

    typer.echo(__version__)
